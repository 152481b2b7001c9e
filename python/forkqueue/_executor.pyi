"""Type stubs of forkqueue._executor (the engine, Executor; Pool is in
_pool.pyi). Public as forkqueue.futures.Executor / Pool."""
import concurrent.futures
from concurrent.futures.process import BrokenProcessPool
from typing import (Any, Callable, Iterable, Iterator, List, Optional, Tuple,
                    TypeVar)

from ._pool import Pool as Pool

_T = TypeVar("_T")

__all__ = [
    "Executor",
    "Pool",
    "WorkerCrashedError",
    "default_workers",
]

def default_workers() -> int: ...

class WorkerCrashedError(BrokenProcessPool):
    signal: Optional[int]
    exitcode: Optional[int]
    def __init__(self, message: str, signal: Optional[int] = ...,
                 exitcode: Optional[int] = ...) -> None: ...

class Executor(concurrent.futures.Executor):
    def __init__(self, max_workers: Optional[int] = ...,
                 initializer: Optional[Callable[..., Any]] = ...,
                 initargs: Tuple[Any, ...] = ...,
                 max_tasks_per_child: Optional[int] = ..., *,
                 mp_context: Any = ...) -> None: ...
    def submit(  # type: ignore[override]
            self, fn: Callable[..., _T], /, *args: Any,
               timeout: Optional[float] = ...,
               **kwargs: Any) -> concurrent.futures.Future[_T]: ...
    def map(self, fn: Callable[..., _T], *iterables: Iterable[Any],
            timeout: Optional[float] = ...,
            chunksize: int = ...) -> Iterator[_T]: ...
    def shutdown(self, wait: bool = ..., *,
                 cancel_futures: bool = ...) -> None: ...
