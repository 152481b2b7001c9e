# Stubs for forkqueue.futures.remote_exception.
from forkqueue.futures import (RemoteError as RemoteError,
                               RemoteException as RemoteException,
                               RemoteTraceback as RemoteTraceback,
                               get_remote_traceback as get_remote_traceback,
                               is_remote_exception as is_remote_exception)

__all__ = [
    "RemoteException",
    "RemoteTraceback",
    "RemoteError",
    "is_remote_exception",
    "get_remote_traceback",
]
