from typing import Any

from .process import ProcessWorker

class RemoteServer:
    req_addr: tuple[str, int]
    addr: tuple[str, int] | None
    closed: bool
    close_on_none: bool
    handshake_timeout: float
    stats: dict[str, int]
    def __init__(self, addr: Any = ..., close_on_none: bool = ..., *,
                 authkey: str | bytes | None = ...,
                 handshake_timeout: float = ...,
                 max_pending: int = ...,
                 ssl_context: Any = ...) -> None: ...
    def open_socket(self) -> None: ...
    def run(self) -> None: ...

class RemoteServerProcess(ProcessWorker):
    def __init__(self, addr: Any, name: str | None = ...,
                 close_on_none: bool = ..., *,
                 authkey: str | bytes | None = ...,
                 **server_kwargs: Any) -> None: ...
    @property
    def addr(self) -> tuple[str, int] | None: ...
    def terminate(self, timeout: float = ..., force: bool = ...) -> bool: ...

def spawn_server(addr: Any, close_on_none: bool = ...,
                 **kwargs: Any) -> RemoteServerProcess: ...
def run_server(addr: Any, install_handlers: bool = ...,
               close_on_none: bool = ..., **kwargs: Any) -> None: ...
def setup_main(path: str | None) -> None: ...
