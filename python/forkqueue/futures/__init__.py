"""forkqueue.futures: processes and threads that are futures.

The interface of ``mpservice.multiprocessing`` and ``mpservice.threading``
on forkqueue: :class:`Process` (forked), :class:`SpawnProcess` and
:class:`Thread` with ``result()``/``exception()``/``done()`` and a
``join()`` that re-raises; exceptions that keep their remote traceback;
log records of children handled by the parent's loggers; shared memory
blocks; a server process for managed objects; and the usual queue and
synchronisation names. ``Pool`` and ``Executor`` run on the forkqueue core
(see ``forkqueue._executor``).
"""

from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION

from .._remote_exc import (RemoteError, RemoteException, RemoteTraceback,
                           get_remote_traceback, is_remote_exception)
from ._errors import InvalidStateError, ProcessKilledError, TimeoutError
from ._process import Process, SpawnProcess
from ._wait import as_completed, wait
from .threading import Thread
from ._iterqueue import IterableQueue, StopRequested
from ._sync import (Array, Barrier, BoundedSemaphore, Condition, Event, JoinableQueue,
                    Lock, Manager, MP_SPAWN_CTX, Queue, RawArray, RawValue, RLock,
                    Semaphore, SimpleQueue, SpawnContext, SyncManager, Value,
                    cpu_count)
from .runner import ProcessRunnee, ProcessRunner
from .._memblock import MemoryBlock
from .server_process import (MemoryBlockProxy, ServerProcess, managed, managed_array,
                             managed_dict, managed_iterator, managed_list,
                             managed_memoryblock, managed_namespace, managed_value)

__all__ = [
    "Process", "SpawnProcess", "Thread", "wait", "as_completed",
    "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION",
    "TimeoutError", "InvalidStateError", "ProcessKilledError",
    "RemoteException", "RemoteTraceback", "RemoteError",
    "is_remote_exception", "get_remote_traceback",
    "Pool", "Executor",
    "MemoryBlock", "MemoryBlockProxy", "ServerProcess", "managed",
    "managed_list", "managed_dict", "managed_value", "managed_array",
    "managed_namespace", "managed_iterator", "managed_memoryblock",
    "ProcessRunner", "ProcessRunnee", "IterableQueue", "StopRequested",
    "Queue", "SimpleQueue", "JoinableQueue", "Manager", "SyncManager", "Event",
    "Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Barrier",
    "Value", "Array", "RawValue", "RawArray", "cpu_count", "MP_SPAWN_CTX", "SpawnContext",
]

for _c in (InvalidStateError, ProcessKilledError, TimeoutError, Process,
           SpawnProcess, Thread, SpawnContext):
    _c.__module__ = __name__
del _c


def __getattr__(name):
    if name in ("Executor", "Pool"):
        from .. import _executor
        return getattr(_executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
