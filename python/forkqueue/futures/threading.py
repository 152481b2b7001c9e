"""Threads that are futures: ``Thread``, ``wait``, ``as_completed``.

A :class:`Thread` is a ``threading.Thread`` whose outcome stays on the
object: ``join()`` re-raises the target's exception (on every call),
``result()``/``exception()``/``done()`` behave as on a
``concurrent.futures.Future``, and ``await thread`` works in asyncio.
"""

import asyncio
import concurrent.futures
import ctypes
import threading
import traceback
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION
from typing import Optional

from .._remote_exc import RemoteTraceback, format_remote
from ._errors import InvalidStateError, TimeoutError
from ._wait import as_completed, wait

__all__ = ["InvalidStateError", "TimeoutError", "Thread", "FIRST_COMPLETED",
           "FIRST_EXCEPTION", "ALL_COMPLETED", "wait", "as_completed"]


class Thread(threading.Thread):
    """``threading.Thread`` plus the future interface.

    The target's return value is ``result()``; an exception it raises is
    kept (with its traceback text as a :class:`RemoteTraceback` cause),
    returned by ``exception()`` and raised by ``join()`` and ``result()``.
    ``SystemExit`` with code None or 0 counts as success.
    """

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None,
                 *, daemon=None):
        super().__init__(group, target, name, args, kwargs, daemon=daemon)
        self._future_ = concurrent.futures.Future()
        self._fq_thrown = None

    @staticmethod
    def handle_exception(exc):
        """Called in the thread when the target raises; prints a one-line
        note (override to log instead). Must not raise."""
        print(f"Exception in {threading.current_thread().name}: {exc!r}")

    def run(self):
        fut = self._future_
        try:
            if self._target is None:
                value = None
            else:
                value = self._target(*self._args, **self._kwargs)
        except SystemExit as e:
            if e.code is None or e.code == 0:
                _set(fut, None, None)
            else:
                self._failed(e)
        except BaseException as e:
            self._failed(e)
        else:
            _set(fut, value, None)
        finally:
            # No cycle through the target's arguments (which may hold self).
            self._target = self._args = self._kwargs = None

    def _failed(self, e):
        if isinstance(e, _Thrown) and self._fq_thrown is not None:
            e = self._fq_thrown.with_traceback(e.__traceback__)
        try:
            self.handle_exception(e)
        except BaseException:
            pass
        tb = e.__traceback__
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next  # from the target's frame on
        if self.daemon:
            # Nobody may join a daemonic thread: show its error here.
            try:
                traceback.print_exception(type(e), e, tb)
            except BaseException:
                pass
        try:
            text = format_remote(e, tb, name=self.name)
        except BaseException:
            text = f"[{self.name}] {type(e).__name__}"
        # The cause is built from the text only: the exception's own class
        # is never re-instantiated, so no class can make this step fail.
        e.__cause__ = RemoteTraceback(text)
        e.__traceback__ = None
        _set(self._future_, None, e)

    def _outcome_ready(self):
        # A subclass whose run() does not call ours leaves the future unset:
        # once the thread has ended, that is success with no result.
        if not self._future_.done() and self._started.is_set() and not self.is_alive():
            _set(self._future_, None, None)

    def join(self, timeout: Optional[float] = None):
        """Waits like ``threading.Thread.join``; if the thread has ended
        with an exception, raises it (again on every call)."""
        super().join(timeout)
        if self.is_alive():
            return None
        self._outcome_ready()
        exc = self._future_.exception()
        if exc is not None:
            raise exc
        return None

    def done(self) -> bool:
        """True once the thread was started and has ended."""
        return self._started.is_set() and not self.is_alive()

    def result(self, timeout: Optional[float] = None):
        """The target's return value; raises its exception, or
        :class:`TimeoutError` if not done within ``timeout`` seconds."""
        super().join(timeout)
        if self.is_alive():
            raise TimeoutError
        self._outcome_ready()
        return self._future_.result()

    def exception(self, timeout: Optional[float] = None):
        """The target's exception or None; :class:`TimeoutError` if not done
        within ``timeout`` seconds."""
        super().join(timeout)
        if self.is_alive():
            raise TimeoutError
        self._outcome_ready()
        return self._future_.exception()

    def throw(self, exc) -> None:
        """Raises ``exc`` (an exception class or instance) inside the thread,
        at its next Python instruction (not while it blocks in C code).
        :class:`InvalidStateError` if the thread is not running."""
        if not self.is_alive():
            raise InvalidStateError("The thread is not running")
        if isinstance(exc, BaseException):
            # The C API takes a class: an instance rides on the thread and
            # replaces the stand-in class once it is raised there.
            self._fq_thrown = exc
            exc = _Thrown
        elif not (isinstance(exc, type) and issubclass(exc, BaseException)):
            raise TypeError(f"throw() takes an exception class or instance, got {exc!r}")
        tid = self.ident
        n = ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(tid), ctypes.py_object(exc))
        if n == 0:
            raise InvalidStateError("The thread is not running")
        if n > 1:  # cannot happen with a valid id; undo rather than spray
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), None)
            raise SystemError(f"PyThreadState_SetAsyncExc reached {n} threads")

    def terminate(self) -> None:
        """Ends the thread by raising ``SystemExit`` in it (repeated until
        it ends); afterwards ``join()`` does not raise and ``result()`` is
        None. A thread blocked in C code ends only once it returns to
        Python."""
        while self.is_alive():
            try:
                self.throw(SystemExit)
            except InvalidStateError:
                break
            super().join(0.01)
        super().join()

    def __await__(self):
        if not self._started.is_set():
            raise InvalidStateError(f"thread {self.name!r} was not started")
        return asyncio.wrap_future(self._future_).__await__()


class _Thrown(BaseException):
    """Stand-in raised by Thread.throw(instance)."""


def _set(fut, value, exc):
    if fut.done():
        return
    try:
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)
    except concurrent.futures.InvalidStateError:
        pass
