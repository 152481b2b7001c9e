"""Exceptions that keep their traceback across a process boundary.

Pickling an exception keeps its type and arguments but drops its traceback
(and ``__cause__``). The helpers here carry the traceback as text: the
receiving side gets an exception of the original type whose ``__cause__`` is
a :class:`RemoteTraceback` holding the sender's formatted traceback, prefixed
by ``[<process or thread name>] ``.

Shared by every face that ships an exception out of a child (futures, and
any other face that needs it). Two layers:

- :class:`RemoteException`, the public wrapper: pickling it yields, once
  unpickled, the original exception (not a RemoteException) with the remote
  traceback as its cause. It survives any pickle-based transport, including
  the standard library's queues.
- :func:`dump_outcome` / :func:`load_outcome`, the private form used on the
  face's own channels: the exception is pickled separately from its
  traceback text, so an exception that cannot be pickled or rebuilt on the
  receiving side still arrives, as a :class:`RemoteError` carrying the
  original type name, message and traceback (never a hang, never a lost
  outcome).
"""

import multiprocessing
import pickle
import threading
import traceback
from types import TracebackType
from typing import Optional, Union

__all__ = [
    "RemoteException",
    "RemoteTraceback",
    "RemoteError",
    "is_remote_exception",
    "get_remote_traceback",
]


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in another process or
    thread; set as that exception's ``__cause__`` once it arrives.

    ``str()`` of it is the traceback text, so Python prints it above the
    exception ("The above exception was the direct cause of ...").
    """

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb

    def __reduce__(self):
        return (type(self), (self.tb,))


class RemoteError(Exception):
    """Stands in for a remote exception whose own type could not be pickled
    or rebuilt where it arrived (a class defined inside a function, an
    ``__init__`` that needs other arguments than ``args``, an attribute that
    cannot be pickled, ...).

    ``type_name`` is the original class's qualified name, ``str()`` starts
    with it; the remote traceback is the ``__cause__`` as usual.
    """

    def __init__(self, type_name: str, message: str = ""):
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self):
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


def is_remote_exception(e) -> bool:
    """True if ``e`` arrived from elsewhere with its traceback (its
    ``__cause__`` is a :class:`RemoteTraceback`)."""
    return isinstance(e, BaseException) and isinstance(e.__cause__, RemoteTraceback)


def get_remote_traceback(e) -> str:
    """The traceback text of a remote exception (see
    :func:`is_remote_exception`)."""
    return e.__cause__.tb


def current_name() -> str:
    """The name that prefixes a traceback made here: the thread's name in a
    thread other than the main one, else the process's name."""
    t = threading.current_thread()
    if t is not threading.main_thread():
        return t.name
    return multiprocessing.current_process().name


def format_remote(exc: BaseException, tb=None, name: Optional[str] = None) -> str:
    """``[name] Traceback (most recent call last): ...`` for ``exc``."""
    if tb is None:
        tb = exc.__traceback__
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if name is None:
        name = multiprocessing.current_process().name
    return f"[{name}] {text}"


def traceback_text(exc: BaseException, tb=None) -> str:
    """The traceback text that wrapping ``exc`` keeps: a fresh one if the
    exception carries a traceback (it was raised here), the remote one if it
    arrived from elsewhere and was not raised again; ``ValueError`` if it
    has neither."""
    if isinstance(tb, str):
        return tb
    if isinstance(tb, TracebackType):
        return format_remote(exc, tb)
    if tb is not None:
        raise ValueError(f"expecting no traceback but got: {tb}")
    if exc.__traceback__ is not None:
        return format_remote(exc)
    if is_remote_exception(exc):
        return get_remote_traceback(exc)
    # (It was never raised: wrap exceptions inside the 'except' block that
    # caught them.)
    raise ValueError(f"{exc!r} does not contain traceback info")


def _rebuild(exc, tb):
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def _rebuild_bare(cls, args, state):
    # The class's own __init__ is skipped: BaseException.__new__ sets args,
    # the instance dict is restored as pickle would.
    exc = cls.__new__(cls, *args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


def portable(exc: BaseException):
    """Something that pickles into ``exc``'s type and contents wherever it
    is unpickled, or into a :class:`RemoteError` naming it when that cannot
    be done. Checked by a round trip here, so a class whose ``__init__``
    cannot take back its ``args`` is rebuilt without calling it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        pass
    cls = type(exc)
    state = getattr(exc, "__dict__", None) or None
    try:
        bare = _Bare(cls, tuple(exc.args), state)
        pickle.loads(pickle.dumps(bare))
        return bare
    except Exception:
        pass
    return RemoteError(f"{cls.__module__}.{cls.__qualname__}", _safe_str(exc))


class _Bare:
    """Pickles into an exception of class ``cls`` without calling its
    ``__init__``."""

    def __init__(self, cls, args, state):
        self.cls, self.args, self.state = cls, args, state

    def __reduce__(self):
        return (_rebuild_bare, (self.cls, self.args, self.state))


def _safe_str(exc) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<str() of {type(exc).__name__} failed>"


class RemoteException:
    """Wraps an exception so that it keeps its traceback when pickled.

    ``pickle.loads(pickle.dumps(RemoteException(e)))`` is ``e`` again (of
    ``type(e)``, not a RemoteException) with ``__cause__`` set to a
    :class:`RemoteTraceback` holding the traceback text. ``tb`` may give the
    traceback (object or text) when ``e`` does not carry it; an exception
    that was never raised has none and raises ``ValueError``.

    A RemoteException is not itself an exception and cannot be raised.
    """

    def __init__(self, exc: BaseException,
                 tb: Optional[Union[TracebackType, str]] = None):
        if not isinstance(exc, BaseException):
            raise TypeError(f"RemoteException wraps an exception, got {exc!r}")
        self.exc = exc
        self.tb = traceback_text(exc, tb)

    def __repr__(self):
        return f"{type(self).__name__}({self.exc!r})"

    def __str__(self):
        return f"{type(self).__name__}('{_safe_str(self.exc)}')"

    def __reduce__(self):
        return (_rebuild, (portable(self.exc), self.tb))


# ---- the private outcome format of the faces' own channels ---------------

def dump_outcome(value=None, exc: Optional[BaseException] = None,
                 tb: Optional[str] = None) -> bytes:
    """Pickles a result or an exception (with its traceback text) so that
    :func:`load_outcome` always gets an outcome back: the exception is
    pickled on its own, and its type name, message and traceback text ride
    beside it in case it cannot be unpickled on the other side."""
    if exc is None:
        try:
            return pickle.dumps((0, value), pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # an unpicklable result is the child's error
            exc = TypeError(f"cannot pickle the result {type(value).__qualname__!r}: {e}")
            tb = format_remote(exc, None) + "".join(
                traceback.format_exception_only(type(e), e))
    if tb is None:
        tb = traceback_text(exc) if (exc.__traceback__ is not None
                                     or is_remote_exception(exc)) else ""
    cls = type(exc)
    try:
        inner = pickle.dumps(portable(exc), pickle.HIGHEST_PROTOCOL)
    except Exception:
        inner = b""
    return pickle.dumps(
        (1, (inner, f"{cls.__module__}.{cls.__qualname__}", _safe_str(exc), tb)),
        pickle.HIGHEST_PROTOCOL)


def load_outcome(data: bytes):
    """``(value, exc)`` from :func:`dump_outcome`'s bytes; ``exc`` carries
    the remote traceback as its ``__cause__``."""
    kind, payload = pickle.loads(data)
    if kind == 0:
        return payload, None
    inner, type_name, message, tb = payload
    exc = None
    if inner:
        try:
            exc = pickle.loads(inner)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, message)
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    return None, exc

