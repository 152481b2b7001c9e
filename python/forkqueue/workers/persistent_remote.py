"""`PersistentRemoteWorker`: a persistent worker on a worker server."""
from .persistent import PersistentWorker
from .remote import RemoteWorker

__all__ = ["PersistentRemoteWorker"]


class PersistentRemoteWorker(PersistentWorker, RemoteWorker):
    """Calls its target once per ``enqueue``d input, on a worker server.
    With ``context=ID`` (and target None) it uses the target, arguments
    and state of the `RemoteContext` registered under ID."""

    def __init__(self, target, results_pipe=None, **kwargs):
        super().__init__(target, results_pipe=results_pipe, **kwargs)
