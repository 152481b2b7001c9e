"""Type stubs of the C extension forkqueue._forkqueue."""

from collections.abc import Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, NoReturn, final

CORE_VERSION: str

def core_version() -> str: ...
def cpu_count() -> int: ...
def _shutdown_all() -> None: ...

_Progress = Callable[[int, int | None], object] | bool | None

class ForkQueueException(RuntimeError):
    """A job failed: its exception, or the death of its worker."""

    backtrace: str
    jobid: Any
    exception: BaseException | None
    signal: int | None
    exitcode: int | None

@final
class ResultIterator(Generator[Any, None, None]):
    def __iter__(self) -> ResultIterator: ...
    def __next__(self) -> Any: ...
    def send(self, value: None, /) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ..., /) -> Any: ...
    def close(self) -> None: ...

class ForkQueue:
    numforks: int
    ordered: bool
    reraise: bool
    retn_ids: bool
    timeout: float
    @property
    def finished(self) -> bool: ...
    def __init__(
        self,
        numforks: int | None = 16,
        initfunc: Callable[..., object] | None = None,
        reraise: bool = True,
        ordered: bool = True,
        retn_ids: bool = False,
        env: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        initargs: Iterable[Any] = (),
        max_jobs_per_worker: int | None = None,
    ) -> None: ...
    def add(
        self,
        func: Callable[..., Any],
        args: Iterable[Any],
        argsv: Mapping[str, Any] | None = None,
        jobid: Any = None,
        timeout: float | None = None,
    ) -> None: ...
    def poll(self, timeout: float | None = 0) -> bool: ...
    def wait(self) -> None: ...
    def yield_results(self) -> ResultIterator: ...
    def results(
        self, poll: bool = False, interval: float | None = None
    ) -> ResultIterator: ...
    def process(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        argsv: Mapping[str, Any] | None = None,
        interval: float | None = None,
        *,
        progress: _Progress = None,
    ) -> ResultIterator: ...
    def map(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        progress: _Progress = None,
    ) -> ResultIterator: ...
    def finish(self) -> None: ...
    def cancel(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def _stats(self) -> dict[str, int]: ...
    def _worker_pids(self) -> list[int]: ...
    def __enter__(self) -> ForkQueue: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False] | None: ...

# ---- channel part (channel.c) ----

class Channel:
    """A child process connected to this one by a channel of framed messages.

    Made by fork_channel(); payloads are bytes (pickling is the caller's).
    """

    @property
    def pid(self) -> int:
        """The child's pid in the parent; 0 in the child."""
    @property
    def returncode(self) -> int | None:
        """None until reaped; then the exit status, or -signal."""
    @property
    def closed(self) -> bool: ...
    def send(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def recv(self, timeout: float | None = None) -> bytes | None: ...
    def poll(self, timeout: float | None = 0) -> bool: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int | None: ...
    def kill(self, sig: int, /) -> None: ...

def fork_channel() -> Channel: ...
def child_exit(code: int = 0) -> NoReturn: ...
def wait_channels(
    chans: Iterable[Channel], timeout: float | None = None
) -> list[Channel]: ...
def _channel_cleanup(sig: int = 0, timeout: float = 0.0, /) -> int: ...
