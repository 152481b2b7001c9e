"""`PersistentThreadWorker`: a persistent worker in a thread."""
import queue

from .persistent import _END, PersistentWorker
from .thread import ThreadWorker
from .worker import WorkerTerminatedError

__all__ = ["PersistentThreadWorker"]

_TERMINATE = object()


class PersistentThreadWorker(PersistentWorker, ThreadWorker):
    """Calls its target once per ``enqueue``d input, in a thread."""

    def __init__(self, target, results_pipe=None, **kwargs):
        self._inputs = queue.SimpleQueue()
        self._outputs = queue.SimpleQueue()
        super().__init__(target, results_pipe, **kwargs)

    def _reset_for_restart(self):
        super()._reset_for_restart()
        self._inputs = queue.SimpleQueue()
        self._outputs = queue.SimpleQueue()
        self._startup.clear()
        self._finished = False
        self._ident = None

    # parent side
    def _p_send_input(self, args, kwargs):
        self._inputs.put((args, kwargs))

    def _p_send_close(self):
        self._inputs.put(None)

    def _p_fetch(self, block, timeout):
        return self._outputs.get(block, timeout)  # queue.Empty if none

    def _pool_fetch_ready(self):
        out = []
        get = self._outputs.get_nowait
        while True:
            try:
                v = get()
            except queue.Empty:
                return out, False
            if v is _END:
                return out, True
            out.append(v)

    def _release_child(self):
        # wakes the thread if it is idle, waiting for input
        self._inputs.put(_TERMINATE)

    # worker side
    def _c_next_input(self):
        item = self._inputs.get()
        if item is _TERMINATE:
            raise WorkerTerminatedError()
        return item

    def _c_send_result(self, value):
        self._outputs.put(value)
        wake = self._pool_wakeup
        if wake is not None:
            wake()

    def _on_finished(self):
        self._outputs.put(_END)
        wake = self._pool_wakeup
        if wake is not None:
            wake()


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .persistent import WorkerClosedError  # noqa: F401
from .utils import LocalPipe, get_logger  # noqa: F401

logger = get_logger(__name__)
