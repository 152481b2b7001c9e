from typing import Any, Callable, Iterable, Sequence

from .persistent_process import PersistentProcessWorker as PersistentProcessWorker
from .remote import ConnectionClosedError as ConnectionClosedError
from .remote import recv_msg as recv_msg
from .remote import sanitize_target_host as sanitize_target_host
from .remote import send_msg as send_msg
from .remote import set_keepalive as set_keepalive
from .remote_pickle import SupportRemoteGetState as SupportRemoteGetState
from .remote_pickle import dumps as dumps
from .remote_pickle import loads as loads
from .utils import BraceStyleAdapter
from .utils import get_logger as get_logger

__all__ = [
    "RemoteContext",
]

logger: BraceStyleAdapter

class RemoteContext:
    def __init__(self, ctx_id: Any, host: str | Sequence[Any] | None = ...,
                 target: Callable[..., Any] | None = ...,
                 args: Iterable[Any] | None = ...,
                 kwargs: dict[str, Any] | None = ...,
                 extra_state: dict[str, Any] | None = ..., *,
                 authkey: str | bytes | None = ...,
                 ssl_context: Any = ...) -> None: ...
    @property
    def context_id(self) -> Any: ...
    @property
    def host(self) -> tuple[str, int]: ...
    def is_alive(self) -> bool: ...
    def close(self) -> None: ...
    def wait(self, *args: Any, **kwargs: Any) -> bool: ...
    def terminate(self, *args: Any, _release_remote_ctrl: bool = ...,
                  **kwargs: Any) -> bool: ...
    def __getstate__(self, remote: bool = ...) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...
    def call(self, *args: Any, **kwargs: Any) -> Any: ...
    def __enter__(self) -> RemoteContext: ...
    def __exit__(self, *exc: Any) -> None: ...
