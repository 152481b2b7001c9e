from typing import Any, Callable, Iterable, Literal, overload

from .persistent import PersistentWorker as PersistentWorker
from .utils import BraceStyleAdapter
from .utils import Pipe as Pipe
from .utils import foreign_raise as foreign_raise
from .utils import get_logger as get_logger
from .worker import Worker as Worker
from .worker import WorkerType as WorkerType

__all__ = [
    "Pool",
    "PoolError",
]

logger: BraceStyleAdapter

WINDOW: int
WINDOW_BYTES: int
REFILL_AT: int
COALESCE_MAX_S: float
COALESCE_MIN_S: float
QUEUE_S: float
FIRST_ROUND: int
END_S: float

class PoolError(RuntimeError):
    partial_results: list[Any] | None
    def __init__(self, msg: str, partial_results: list[Any] | None = ...) -> None: ...

class Pool:
    timeout: float | None
    force: bool | None
    def __init__(self, target: Callable[..., Any] | None,
                 results_queue: Any = ..., args: Iterable[Any] | None = ...,
                 kwargs: dict[str, Any] | None = ..., retry: bool = ...,
                 close_timeout: float | None = ...,
                 force_terminate: bool | None = ...,
                 name: str | None = ...) -> None: ...
    @property
    def workers(self) -> list[PersistentWorker]: ...
    def add_worker(self, worker_type: WorkerType | type, name: str | None = ...,
                   userid: Any = ..., target: Callable[..., Any] | None = ...,
                   args: Iterable[Any] | None = ...,
                   kwargs: dict[str, Any] | None = ...,
                   **worker_kwargs: Any) -> PersistentWorker: ...
    def attach(self, worker: Worker) -> None: ...
    def handle_new_worker(self, worker: Worker) -> None: ...
    # (also None, whatever return_results, when every worker is dead)
    @overload
    def run(self, *input_sources: Iterable[Any] | Callable[[Worker], Any],
            worker_callback: Callable[..., Any] | None = ...,
            enqueue_fn: Callable[..., Any] | None = ...,
            worker_extra_pending_inputs: int = ...,
            return_results: Literal[True] = ...) -> list[Any]: ...
    @overload
    def run(self, *input_sources: Iterable[Any] | Callable[[Worker], Any],
            worker_callback: Callable[..., Any] | None = ...,
            enqueue_fn: Callable[..., Any] | None = ...,
            worker_extra_pending_inputs: int = ...,
            return_results: bool = ...) -> list[Any] | None: ...
    def close(self, timeout: float | None = ..., force: bool | None = ...) -> None: ...
    def terminate(self, timeout: float | None = ..., force: bool | None = ...) -> None: ...
    def restart_workers(self, timeout: float | None = ..., **kwargs: Any) -> None: ...
    def __enter__(self) -> Pool: ...
    def __exit__(self, *exc: Any) -> None: ...
