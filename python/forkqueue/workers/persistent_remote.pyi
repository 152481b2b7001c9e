from typing import Any

from .persistent import PersistentWorker
from .persistent import WorkerClosedError as WorkerClosedError
from .remote import ConnectionClosedError as ConnectionClosedError
from .remote import RemoteWorker
from .remote import recv_msg as recv_msg
from .remote import send_msg as send_msg
from .utils import BraceStyleAdapter
from .utils import LocalPipe as LocalPipe
from .utils import get_logger as get_logger
from .utils import is_windows as is_windows

__all__ = [
    "PersistentRemoteWorker",
]

class PersistentRemoteWorker(PersistentWorker, RemoteWorker):
    def __init__(self, target: Any, results_pipe: Any = ...,
                 **kwargs: Any) -> None: ...
    def wait(self, *args: Any, **kwargs: Any) -> bool: ...

logger: BraceStyleAdapter
