import socket
from typing import Any, Sequence

from .remote_pickle import SupportRemoteGetStateMeta
from .utils import BraceStyleAdapter
from .utils import Pipe as Pipe
from .utils import SupportClassPropertiesMeta as SupportClassPropertiesMeta
from .utils import classproperty as classproperty
from .utils import foreign_raise as foreign_raise
from .utils import get_hostname as get_hostname
from .utils import get_logger as get_logger
from .utils import gettid as gettid
from .utils import is_windows as is_windows
from .utils import setproctitle as setproctitle
from .utils import setthreadtitle as setthreadtitle
from .worker import Worker as Worker
from .worker import WorkerTerminatedError as WorkerTerminatedError
from .worker import WorkerType as WorkerType

__all__ = [
    "RemoteWorker",
    "RemoteWorkerMeta",
    "default_port",
    "sanitize_target_host",
    "client_main_path",
    "ConnectionClosedError",
    "GracefulExitError",
    "send_msg",
    "recv_msg",
    "set_linger",
    "set_keepalive",
]

default_port: int
logger: BraceStyleAdapter

class ConnectionClosedError(Exception): ...
class GracefulExitError(Exception): ...
class RemoteWorkerMeta(SupportRemoteGetStateMeta, SupportClassPropertiesMeta): ...

def send_msg(sock: socket.socket, msg: Any, comment: Any = ...) -> None: ...
def recv_msg(sock: socket.socket, state_overwrites: dict[str, Any] | None = ...,
             comment: Any = ...) -> Any: ...
def set_linger(sock: socket.socket, enable: bool, timeout: int) -> None: ...
def set_keepalive(sock: socket.socket, enable: bool, time: int | None = ...,
                  interval: int | None = ...,
                  probes: int | None = ...) -> None: ...
def sanitize_target_host(host: str | Sequence[Any] | None) -> tuple[str, int]: ...
def client_main_path() -> str | None: ...

class RemoteWorker(Worker, metaclass=RemoteWorkerMeta):
    def __init__(self, *args: Any, host: str | Sequence[Any] | None = ...,
                 context: Any = ..., main_path: str | None = ...,
                 authkey: str | bytes | None = ...,
                 ssl_context: Any = ..., **kwargs: Any) -> None: ...
    def __getstate__(self, remote: bool = ...) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...
    @property
    def is_remote_side(self) -> bool: ...
    def wait(self, timeout: float | None = ...,
             remote_timeout: float | None = ...) -> bool: ...
    def terminate(self, timeout: float = ..., force: bool = ...,
                  remote_timeout: float | None = ..., *,
                  _release_remote_ctrl: bool = ...) -> bool: ...
