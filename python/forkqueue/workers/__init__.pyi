from .._auth import AuthenticationError as AuthenticationError
from ._wire import RemoteTraceback as RemoteTraceback
from ._wire import WorkerError as WorkerError
from . import remote_pickle as remote_pickle
from .persistent import PersistentWorker as PersistentWorker
from .persistent import WorkerClosedError as WorkerClosedError
from .persistent_process import PersistentProcessWorker as PersistentProcessWorker
from .persistent_remote import PersistentRemoteWorker as PersistentRemoteWorker
from .persistent_thread import PersistentThreadWorker as PersistentThreadWorker
from .pool import Pool as Pool
from .pool import PoolError as PoolError
from .process import ProcessWorker as ProcessWorker
from .remote import RemoteWorker as RemoteWorker
from .remote_context import RemoteContext as RemoteContext
from .remote_server import RemoteServer as RemoteServer
from .remote_server import RemoteServerProcess as RemoteServerProcess
from .remote_server import spawn_server as spawn_server
from .thread import ThreadWorker as ThreadWorker
from .worker import Worker as Worker
from .worker import WorkerTerminatedError as WorkerTerminatedError
from .worker import WorkerType as WorkerType
from .remote import sanitize_target_host as sanitize_target_host
from .remote_pickle import Pickler as Pickler
from .remote_pickle import SupportRemoteGetState as SupportRemoteGetState
from .remote_pickle import dump as dump
from .remote_pickle import dumps as dumps
from .remote_pickle import load as load
from .remote_pickle import loads as loads
from .remote_server import run_server as run_server
from .worker import autoclose_active_children as autoclose_active_children
from .remote import ConnectionClosedError as ConnectionClosedError
from .remote import GracefulExitError as GracefulExitError
from .remote import RemoteWorkerMeta as RemoteWorkerMeta
from .remote import default_port as default_port
from .remote import recv_msg as recv_msg
from .remote import send_msg as send_msg
from .remote import set_keepalive as set_keepalive
from .remote import set_linger as set_linger
from .remote_pickle import RemotePickler as RemotePickler
from .remote_pickle import SupportRemoteGetStateMeta as SupportRemoteGetStateMeta
from .remote_pickle import remote_dump as remote_dump
from .remote_pickle import remote_dumps as remote_dumps
from .remote_pickle import remote_load as remote_load
from .remote_pickle import remote_loads as remote_loads
from .utils import ABUSIVE as ABUSIVE
from .utils import DETAILS as DETAILS
from .utils import STATUS as STATUS
from .utils import BraceMessage as BraceMessage
from .utils import BraceStyleAdapter as BraceStyleAdapter
from .utils import LazyModule as LazyModule
from .utils import LocalPipe as LocalPipe
from .utils import Pipe as Pipe
from .utils import PipeEndpoint as PipeEndpoint
from .utils import Queue as Queue
from .utils import SupportClassPropertiesMeta as SupportClassPropertiesMeta
from .utils import active_sleep as active_sleep
from .utils import active_wait as active_wait
from .utils import add_module_properties as add_module_properties
from .utils import classproperty as classproperty
from .utils import foreign_raise as foreign_raise
from .utils import get_hostname as get_hostname
from .utils import get_logger as get_logger
from .utils import gettid as gettid
from .utils import is_windows as is_windows
from .utils import python_is_at_least as python_is_at_least
from .utils import python_is_exactly as python_is_exactly
from .utils import setproctitle as setproctitle
from .utils import setthreadtitle as setthreadtitle
from .utils import staticproperty as staticproperty
from .utils import typename as typename

__all__ = [
    "Worker",
    "WorkerType",
    "WorkerTerminatedError",
    "ThreadWorker",
    "ProcessWorker",
    "RemoteWorker",
    "PersistentWorker",
    "PersistentThreadWorker",
    "PersistentProcessWorker",
    "PersistentRemoteWorker",
    "WorkerClosedError",
    "Pool",
    "PoolError",
    "RemoteServer",
    "RemoteServerProcess",
    "spawn_server",
    "RemoteContext",
    "remote_pickle",
    "AuthenticationError",
    "WorkerError",
    "RemoteTraceback",
]
