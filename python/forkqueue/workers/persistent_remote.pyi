from typing import Any

from .persistent import PersistentWorker
from .remote import RemoteWorker

class PersistentRemoteWorker(PersistentWorker, RemoteWorker):
    def __init__(self, target: Any, results_pipe: Any = ...,
                 **kwargs: Any) -> None: ...
