"""The future of a ``forkqueue.lazy`` process job: a
``concurrent.futures.Future`` that is cheap to make and to complete.

A plain ``Future`` builds a ``threading.Condition`` (and its ``RLock``) when
it is made and runs the condition's ``notify_all()`` (Python code) when it
completes, though nobody waits on most of the futures of a lazy program:
``total += fork(f, x)`` in a loop makes one per call and waits once, at the
end. Here every future shares one module lock, ``_mutex``, for its state,
and gets a condition of its own (on that lock) only when a thread waits on
it. Completing a future nobody waits on is: take the lock, store, release.

Everything ``concurrent.futures`` and ``asyncio`` use keeps working:
``_condition``, ``_waiters`` (read by ``wait()`` and ``as_completed()``
with the condition held) and ``_done_callbacks`` are made on first use,
under ``_mutex``; since every condition shares that lock, ``wait()``
taking the conditions of many futures in turn takes one reentrant lock
many times. ``_seq`` orders the futures by submission (see
``ResultProxy._fq_evaluate``)."""

import concurrent.futures as _cf
import itertools
import os
import threading
from concurrent.futures._base import (CANCELLED, CANCELLED_AND_NOTIFIED,
                                      FINISHED, LOGGER, PENDING, RUNNING)

_mutex = threading.RLock()
_seqs = itertools.count()


def _after_fork_in_child():
    # Another thread of the parent may have held it at the fork.
    global _mutex
    _mutex = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _LazyFuture(_cf.Future):
    """A Future with its condition, waiter list and callback list made on
    first use. Thread-safe as a Future."""

    def __init__(self):
        # No super().__init__(): it would build the condition.
        self._state = PENDING
        self._result = None
        self._exception = None
        self._cond = None
        self._wl = None
        self._cbs = None
        self._seq = next(_seqs)

    # -- what concurrent.futures reads directly ---------------------------

    @property
    def _condition(self):
        c = self._cond
        if c is None:
            with _mutex:
                c = self._cond
                if c is None:
                    c = self._cond = threading.Condition(_mutex)
        return c

    @property
    def _waiters(self):
        w = self._wl
        if w is None:
            with _mutex:
                w = self._wl
                if w is None:
                    w = self._wl = []
        return w

    @property
    def _done_callbacks(self):
        with _mutex:
            if self._cbs is None:
                self._cbs = []
            return self._cbs

    # -- state ------------------------------------------------------------

    def cancelled(self):
        return self._state in (CANCELLED, CANCELLED_AND_NOTIFIED)

    def running(self):
        return self._state == RUNNING

    def done(self):
        return self._state in (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)

    def _notify(self):
        # With _mutex held.
        c = self._cond
        if c is not None:
            c.notify_all()

    def cancel(self):
        with _mutex:
            st = self._state
            if st in (RUNNING, FINISHED):
                return False
            if st in (CANCELLED, CANCELLED_AND_NOTIFIED):
                return True
            self._state = CANCELLED
            self._notify()
        self._invoke_callbacks()
        return True

    def set_running_or_notify_cancel(self):
        with _mutex:
            st = self._state
            if st == PENDING:
                self._state = RUNNING
                return True
            if st == CANCELLED:
                self._state = CANCELLED_AND_NOTIFIED
                for w in self._wl or ():
                    w.add_cancelled(self)
                return False
            LOGGER.critical("Future %s in unexpected state: %s", id(self),
                            st)
            raise RuntimeError("Future in unexpected state")

    def set_result(self, result):
        with _mutex:
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED):
                raise _cf.InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = FINISHED
            if self._wl:
                for w in self._wl:
                    w.add_result(self)
            if self._cond is not None:
                self._cond.notify_all()
        if self._cbs:
            self._invoke_callbacks()

    def set_exception(self, exception):
        with _mutex:
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED):
                raise _cf.InvalidStateError(f"{self._state}: {self!r}")
            self._exception = exception
            self._state = FINISHED
            for w in self._wl or ():
                w.add_exception(self)
            self._notify()
        if self._cbs:
            self._invoke_callbacks()

    def _invoke_callbacks(self):
        for cb in self._cbs or ():
            try:
                cb(self)
            except Exception:
                LOGGER.exception("exception calling callback for %r", self)

    def add_done_callback(self, fn):
        with _mutex:
            if not self.done():
                if self._cbs is None:
                    self._cbs = []
                self._cbs.append(fn)
                return
        try:
            fn(self)
        except Exception:
            LOGGER.exception("exception calling callback for %r", self)

    # -- waiting ------------------------------------------------------------

    def _wait(self, timeout):
        """Waits until done; False on timeout. Without _mutex held."""
        if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED):
            return True
        c = self._condition
        with _mutex:
            return c.wait_for(self.done, timeout)

    def result(self, timeout=None):
        if self._state != FINISHED and not self._wait(timeout):
            raise _cf.TimeoutError()
        if self._state != FINISHED:
            raise _cf.CancelledError()
        if self._exception is not None:
            try:
                raise self._exception
            finally:
                self = None  # no cycle through the traceback
        return self._result

    def exception(self, timeout=None):
        if self._state != FINISHED and not self._wait(timeout):
            raise _cf.TimeoutError()
        if self._state != FINISHED:
            raise _cf.CancelledError()
        return self._exception
