from typing import Any

from .process import ProcessWorker as ProcessWorker
from .remote import ConnectionClosedError as ConnectionClosedError
from .remote import default_port as default_port
from .remote import recv_msg as recv_msg
from .remote import send_msg as send_msg
from .remote import set_keepalive as set_keepalive
from .remote import set_linger as set_linger
from .utils import BraceStyleAdapter
from .utils import foreign_raise as foreign_raise
from .utils import get_logger as get_logger
from .utils import is_windows as is_windows
from .worker import WorkerTerminatedError as WorkerTerminatedError

__all__ = [
    "RemoteServer",
    "RemoteServerProcess",
    "spawn_server",
    "run_server",
]

logger: BraceStyleAdapter
SERVER_STOP_GRACE: float

class RemoteServer:
    req_addr: tuple[str, int]
    addr: tuple[str, int] | None
    closed: bool
    close_on_none: bool
    handshake_timeout: float
    stats: dict[str, int]
    def __init__(self, addr: Any, close_on_none: bool = ..., *,
                 authkey: str | bytes | None = ...,
                 handshake_timeout: float = ...,
                 max_pending: int = ...,
                 ssl_context: Any = ...) -> None: ...
    def open_socket(self) -> None: ...
    def install_handlers(self) -> None: ...
    def break_accept(self) -> None: ...
    def run(self) -> None: ...

class RemoteServerProcess(ProcessWorker):
    def __init__(self, addr: Any, name: str | None = ...,
                 close_on_none: bool = ..., *,
                 authkey: str | bytes | None = ...,
                 **server_kwargs: Any) -> None: ...
    def run(self) -> Any: ...
    @property
    def addr(self) -> tuple[str, int] | None: ...
    def terminate(self, timeout: float = ..., force: bool = ...) -> bool: ...

def spawn_server(addr: Any, close_on_none: bool = ...,
                 **kwargs: Any) -> RemoteServerProcess: ...
def run_server(addr: Any, install_handlers: bool = ...,
               close_on_none: bool = ..., **kwargs: Any) -> None: ...
def setup_main(path: str | None) -> None: ...
