from typing import Any

from .utils import BraceStyleAdapter
from .utils import Pipe as Pipe
from .utils import classproperty as classproperty
from .utils import foreign_raise as foreign_raise
from .utils import get_logger as get_logger
from .utils import gettid as gettid
from .utils import setproctitle as setproctitle
from .utils import setthreadtitle as setthreadtitle
from .worker import Worker as Worker
from .worker import WorkerTerminatedError as WorkerTerminatedError
from .worker import WorkerType as WorkerType

__all__ = [
    "ProcessWorker",
]

class ProcessWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def exit_reason(self) -> str | None: ...

logger: BraceStyleAdapter
