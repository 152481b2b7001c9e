from typing import Any

from .persistent import PersistentWorker
from .persistent import WorkerClosedError as WorkerClosedError
from .thread import ThreadWorker
from .utils import BraceStyleAdapter
from .utils import LocalPipe as LocalPipe
from .utils import get_logger as get_logger

__all__ = [
    "PersistentThreadWorker",
]

class PersistentThreadWorker(PersistentWorker, ThreadWorker):
    def __init__(self, target: Any, results_pipe: Any = ...,
                 **kwargs: Any) -> None: ...

logger: BraceStyleAdapter
