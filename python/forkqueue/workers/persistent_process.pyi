from typing import Any

from .persistent import PersistentWorker
from .process import ProcessWorker

class PersistentProcessWorker(PersistentWorker, ProcessWorker):
    def __init__(self, target: Any, results_pipe: Any = ...,
                 **kwargs: Any) -> None: ...
