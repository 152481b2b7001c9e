"""Which class a `WorkerType` names (for the ``create`` factories)."""
from .worker import WorkerType


def worker_class(worker_type, persistent):
    if persistent:
        from .persistent_process import PersistentProcessWorker
        from .persistent_remote import PersistentRemoteWorker
        from .persistent_thread import PersistentThreadWorker
        table = {WorkerType.THREAD: PersistentThreadWorker,
                 WorkerType.PROCESS: PersistentProcessWorker,
                 WorkerType.REMOTE: PersistentRemoteWorker}
    else:
        from .process import ProcessWorker
        from .remote import RemoteWorker
        from .thread import ThreadWorker
        table = {WorkerType.THREAD: ThreadWorker,
                 WorkerType.PROCESS: ProcessWorker,
                 WorkerType.REMOTE: RemoteWorker}
    return table[worker_type]
