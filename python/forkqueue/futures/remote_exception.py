"""Exceptions that keep their traceback when pickled (see
``forkqueue._remote_exc``): ``RemoteException``, ``RemoteTraceback``,
``is_remote_exception``, ``get_remote_traceback``."""

from .._remote_exc import (RemoteError, RemoteException, RemoteTraceback,
                           get_remote_traceback, is_remote_exception)

__all__ = ["RemoteException", "RemoteTraceback", "RemoteError",
           "is_remote_exception", "get_remote_traceback"]
