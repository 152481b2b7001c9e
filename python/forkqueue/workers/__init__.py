"""forkqueue.workers: one worker API over threads, forked processes and
remote processes, persistent workers and a pool (the API of pyworkers).

Programs written for pyworkers run with their imports changed from
``pyworkers.X`` to ``forkqueue.workers``. See ``docs/python-workers.md``.
"""
import warnings as _warnings

# `python3 -m forkqueue.workers.remote_server` (pyworkers' way to start a
# server) runs a module this package has imported already; runpy warns
# about that, and it is harmless here: the module's main only starts the
# server.
_warnings.filterwarnings(
    "ignore", category=RuntimeWarning, module="runpy",
    message=r"'forkqueue\.workers\.remote_server' found in sys\.modules")

from .._auth import AuthenticationError
from ._wire import RemoteTraceback, WorkerError
from .persistent import PersistentWorker, WorkerClosedError
from .persistent_process import PersistentProcessWorker
from .persistent_remote import PersistentRemoteWorker
from .persistent_thread import PersistentThreadWorker
from .pool import Pool, PoolError
from .process import ProcessWorker
from .remote import RemoteWorker
from .remote_context import RemoteContext
from .remote_server import RemoteServer, RemoteServerProcess, spawn_server
from .thread import ThreadWorker
from .worker import Worker, WorkerTerminatedError, WorkerType
from . import remote_pickle
from .remote import sanitize_target_host
from .remote_pickle import (Pickler, SupportRemoteGetState, dump, dumps,
                            load, loads)
from .remote_server import run_server
from .worker import autoclose_active_children
from .remote import (ConnectionClosedError, GracefulExitError,
                     RemoteWorkerMeta, default_port, recv_msg, send_msg,
                     set_keepalive, set_linger)
from .remote_pickle import (RemotePickler, SupportRemoteGetStateMeta,
                            remote_dump, remote_dumps, remote_load,
                            remote_loads)
from .utils import (ABUSIVE, DETAILS, STATUS, BraceMessage,
                    BraceStyleAdapter, LazyModule, LocalPipe, Pipe,
                    PipeEndpoint, Queue, SupportClassPropertiesMeta,
                    active_sleep, active_wait, add_module_properties,
                    classproperty, foreign_raise, get_hostname, get_logger,
                    gettid, is_windows, python_is_at_least,
                    python_is_exactly, setproctitle, setthreadtitle,
                    staticproperty, typename)

__all__ = [
    "Worker", "WorkerType", "WorkerTerminatedError", "ThreadWorker",
    "ProcessWorker", "RemoteWorker", "PersistentWorker",
    "PersistentThreadWorker", "PersistentProcessWorker",
    "PersistentRemoteWorker", "WorkerClosedError", "Pool", "PoolError",
    "RemoteServer", "RemoteServerProcess", "spawn_server", "RemoteContext",
    "remote_pickle", "AuthenticationError", "WorkerError", "RemoteTraceback",
]

# Programs whose `from pyworkers.<module> import name` lines became
# `from forkqueue.workers import name` find every public name of pyworkers'
# modules here too (beside `__all__`, so `import *` stays small).

# No handler here: as in pyworkers, what workers and pools log at WARNING
# and above (a failed worker's traceback, a pool worker that died) reaches
# stderr through Python's last-resort handler unless the program sets up
# logging itself.
