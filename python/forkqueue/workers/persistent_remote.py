"""`PersistentRemoteWorker`: a persistent worker on a worker server."""
from .persistent import PersistentWorker
from .remote import RemoteWorker

__all__ = ["PersistentRemoteWorker"]


class PersistentRemoteWorker(PersistentWorker, RemoteWorker):
    """Calls its target once per ``enqueue``d input, on a worker server.
    With ``context=ID`` (and target None) it uses the target, arguments
    and state of the `RemoteContext` registered under ID."""

    def __init__(self, target, results_pipe=None, **kwargs):
        super().__init__(target, results_pipe, **kwargs)

    # The kind's loop (see LinkedWorker._c_run_all), not PersistentWorker's
    # "none" that comes first in the method order.
    _c_run_all = RemoteWorker._c_run_all

    def wait(self, *args, **kwargs):
        """Closes the input, then waits like `RemoteWorker.wait`
        (``timeout=None, remote_timeout=None``)."""
        return self._close_and_wait(*args, **kwargs)


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .persistent import WorkerClosedError  # noqa: F401
from .remote import (ConnectionClosedError, recv_msg,  # noqa: F401
                     send_msg)
from .utils import LocalPipe, get_logger, is_windows  # noqa: F401

logger = get_logger(__name__)
