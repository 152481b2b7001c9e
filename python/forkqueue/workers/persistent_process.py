"""`PersistentProcessWorker`: a persistent worker in a forked process."""
from .persistent import PersistentWorker
from .process import ProcessWorker

__all__ = ["PersistentProcessWorker"]


class PersistentProcessWorker(PersistentWorker, ProcessWorker):
    """Calls its target once per ``enqueue``d input, in a forked process."""

    def __init__(self, target, results_pipe=None, **kwargs):
        super().__init__(target, results_pipe, **kwargs)

    # The kind's loop (see LinkedWorker._c_run_all), not PersistentWorker's
    # "none" that comes first in the method order.
    _c_run_all = ProcessWorker._c_run_all

    def __getstate__(self, remote=False):
        return self.__dict__.copy()

    def __setstate__(self, state):
        self.__dict__.update(state)


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .persistent import WorkerClosedError  # noqa: F401
from .utils import Pipe  # noqa: F401

from .utils import get_logger  # noqa: E402

logger = get_logger(__name__)
