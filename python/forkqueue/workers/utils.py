"""Small helpers shared by the worker kinds (not part of the public API).

``classproperty`` makes ``is_thread``, ``worker_type`` and friends readable
on classes and on instances alike; ``foreign_raise`` delivers an exception
to another thread of this process (the cooperative stage of terminating a
thread worker).
"""
import ctypes
import platform
import threading

__all__ = ["classproperty", "get_hostname", "gettid", "foreign_raise",
           "cancel_foreign_raise"]


class classproperty:
    """A read-only property evaluated on the class: ``Cls.prop`` and
    ``obj.prop`` both call ``fget(cls)``."""

    def __init__(self, fget):
        self.fget = fget
        self.__doc__ = getattr(fget, "__doc__", None)

    def __get__(self, inst, cls=None):
        if cls is None:
            cls = type(inst)
        return self.fget(cls)

    def __set__(self, inst, value):
        raise AttributeError("can't set attribute")


_hostname = None


def get_hostname():
    """This machine's name, as workers report it in their ``id``."""
    global _hostname
    if _hostname is None:
        _hostname = platform.node()
    return _hostname


def gettid(thread=None):
    """The kernel's id of a thread (the calling one by default)."""
    if thread is not None:
        return thread.native_id
    return threading.get_native_id()


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


def foreign_raise(ident, exc_type):
    """Raise ``exc_type`` in the Python thread ``ident`` at its next
    bytecode. Returns False if there is no such thread (it ended)."""
    n = _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    if n > 1:  # cannot happen for a valid ident; undo rather than spread
        cancel_foreign_raise(ident)
        raise SystemError("PyThreadState_SetAsyncExc affected several threads")
    return n == 1


def cancel_foreign_raise(ident):
    """Drop an exception set by ``foreign_raise`` that was not raised yet."""
    _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object())
