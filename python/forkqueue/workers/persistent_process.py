"""`PersistentProcessWorker`: a persistent worker in a forked process."""
from .persistent import PersistentWorker
from .process import ProcessWorker

__all__ = ["PersistentProcessWorker"]


class PersistentProcessWorker(PersistentWorker, ProcessWorker):
    """Calls its target once per ``enqueue``d input, in a forked process."""

    def __init__(self, target, results_pipe=None, **kwargs):
        super().__init__(target, results_pipe=results_pipe, **kwargs)
