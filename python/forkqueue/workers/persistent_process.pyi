from typing import Any

from .persistent import PersistentWorker
from .persistent import WorkerClosedError as WorkerClosedError
from .process import ProcessWorker
from .utils import BraceStyleAdapter
from .utils import Pipe as Pipe

__all__ = [
    "PersistentProcessWorker",
]

class PersistentProcessWorker(PersistentWorker, ProcessWorker):
    def __init__(self, target: Any, results_pipe: Any = ...,
                 **kwargs: Any) -> None: ...
    def __getstate__(self, remote: bool = ...) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...

logger: BraceStyleAdapter
