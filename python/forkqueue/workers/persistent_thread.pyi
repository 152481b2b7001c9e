from typing import Any

from .persistent import PersistentWorker
from .thread import ThreadWorker

class PersistentThreadWorker(PersistentWorker, ThreadWorker):
    def __init__(self, target: Any, results_pipe: Any = ...,
                 **kwargs: Any) -> None: ...
