from .utils import BraceStyleAdapter
from .utils import classproperty as classproperty
from .utils import foreign_raise as foreign_raise
from .utils import get_logger as get_logger
from .utils import gettid as gettid
from .utils import setthreadtitle as setthreadtitle
from .worker import Worker as Worker
from .worker import WorkerTerminatedError as WorkerTerminatedError
from .worker import WorkerType as WorkerType

__all__ = [
    "ThreadWorker",
]

class ThreadWorker(Worker):
    def terminate(self, timeout: float = ..., force: bool = ...) -> bool: ...

logger: BraceStyleAdapter
