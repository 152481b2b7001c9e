"""The base class every worker kind derives from: `Worker`, `WorkerType`
and `WorkerTerminatedError`.

A worker starts in its constructor. What it runs is ``do_work()``, which by
default calls ``run(*args, **kwargs)`` once, which by default calls the
target: user classes override either. The kind (thread, process, remote)
supplies ``_start``, ``is_alive``, ``wait``, ``terminate`` and how the
outcome and ``user_state`` come back.
"""
import contextlib
import enum
import logging
import os
import threading
import weakref

from .utils import (SupportClassPropertiesMeta, classproperty, get_hostname,
                    gettid)

__all__ = ["WorkerType", "WorkerTerminatedError", "Worker",
           "autoclose_active_children"]


class WorkerType(enum.Enum):
    """The three kinds of workers, for the ``create`` factories."""
    THREAD = 0
    PROCESS = 1
    REMOTE = 2


class WorkerTerminatedError(Exception):
    """Raised inside a worker's target by ``terminate()`` (the graceful
    stage), and its ``error`` afterwards if the target let it through."""

    def __init__(self, msg=None):
        super().__init__(msg or "terminate called")


#: What a worker logs when its target raises (pyworkers' text).
FAILURE_MESSAGE = "Exception occurred while running the main function"
_KIND_LOGGERS = {WorkerType.THREAD: "forkqueue.workers.thread",
                 WorkerType.PROCESS: "forkqueue.workers.process",
                 WorkerType.REMOTE: "forkqueue.workers.remote"}

_live = weakref.WeakSet()
_live_lock = threading.Lock()


def _after_fork_in_child():
    # A forked worker starts with no children of its own, and with a lock
    # that no thread of the parent can be holding.
    global _live, _live_lock
    _live = weakref.WeakSet()
    _live_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Worker(metaclass=SupportClassPropertiesMeta):
    """Base of all workers. See ``docs/python-workers.md``."""

    def __init__(self, target, *, host=None, args=None, kwargs=None,
                 name=None, userid=None, run=None, set_names=True,
                 init_state=None, _is_restart=False):
        if target is not None and target is not False and not callable(target):
            raise ValueError("Target not callable")
        if run is None:
            run = bool(target)
        self._target = target
        self._args = list(args) if args else []
        self._kwargs = dict(kwargs) if kwargs else {}
        self._name = name
        self._userid = userid
        self._do_run = run
        self._set_names = set_names
        self._user_state = init_state
        self._child_state = init_state
        ident = Worker.get_current_id()
        self._parent_host, self._parent_pid, self._parent_tid = ident
        self._host, self._pid, self._tid = ident
        self._outcome = None
        self._started = False
        self._dead = True
        if run:
            self._started = True
            self._start()
            if not _is_restart:
                Worker.register_child(self)
        else:
            self._outcome = (True, None)

    def __repr__(self):
        return (f"{type(self).__name__}(name: {self._name!r}, userid: "
                f"{self._userid}, id: {self.id}, target: {self._target})")

    # ---- factories and identity -------------------------------------------

    @classmethod
    def create(cls, worker_type, *args, **kwargs):
        """Make a worker of ``worker_type`` (a `WorkerType`); on
        ``PersistentWorker`` this makes the persistent variant."""
        if not isinstance(worker_type, WorkerType):
            raise TypeError("Expected WorkerType value")
        from . import _kinds
        return _kinds.worker_class(worker_type, cls.is_persistent)(
            *args, **kwargs)

    @staticmethod
    def get_current_id():
        """``(host, pid, tid)`` of the calling thread."""
        return (get_hostname(), os.getpid(), gettid())

    @staticmethod
    def active_children():
        """The workers created by this process that are still alive."""
        with _live_lock:
            workers = list(_live)
        return [w for w in workers if w.is_alive()]

    @staticmethod
    def register_child(child):
        """Adds ``child`` to `active_children` (workers started by this
        process register themselves; the pyworkers name)."""
        with _live_lock:
            _live.add(child)

    name = property(lambda self: self._name, doc="The name given at creation.")
    userid = property(lambda self: self._userid, doc="The user's id of it.")
    host = property(lambda self: self._host, doc="Host the worker runs on.")
    pid = property(lambda self: self._pid, doc="Process id of the worker.")
    tid = property(lambda self: self._tid, doc="Thread id of the worker.")
    parent_host = property(lambda self: self._parent_host)
    parent_pid = property(lambda self: self._parent_pid)
    parent_tid = property(lambda self: self._parent_tid)

    @property
    def id(self):
        """``(host, pid, tid)`` of the worker."""
        return (self._host, self._pid, self._tid)

    @property
    def parent_id(self):
        """``(host, pid, tid)`` of the thread that created the worker."""
        return (self._parent_host, self._parent_pid, self._parent_tid)

    # ---- class properties --------------------------------------------------

    @classproperty
    def worker_type(cls):
        """The `WorkerType` of this class (THREAD, PROCESS or REMOTE)."""
        raise NotImplementedError("worker_type of an abstract worker class")

    @classproperty
    def is_thread(cls):
        return cls.worker_type is WorkerType.THREAD

    @classproperty
    def is_process(cls):
        return cls.worker_type is WorkerType.PROCESS

    @classproperty
    def is_remote(cls):
        return cls.worker_type is WorkerType.REMOTE

    @classproperty
    def is_persistent(cls):
        return False

    # ---- outcome -----------------------------------------------------------

    def _get_result(self):
        """None while running, else ``(graceful, value_or_error)``."""
        if self._outcome is None or self.is_alive():
            return None
        return self._outcome

    @property
    def result(self):
        """What ``do_work`` returned; None while running or after an error."""
        r = self._get_result()
        return r[1] if r is not None and r[0] else None

    @property
    def error(self):
        """The exception that ended the worker (None if there was none, or
        the worker died without one, e.g. killed by a signal)."""
        r = self._get_result()
        return r[1] if r is not None and not r[0] else None

    @property
    def has_error(self):
        """None while running, then True if the worker ended abnormally."""
        r = self._get_result()
        return None if r is None else not r[0]

    @property
    def user_state(self):
        """State set by ``init_state``, changed only inside the worker and
        copied back to the parent when the worker ends."""
        if self.is_child:
            return self._child_state
        return self._user_state

    @user_state.setter
    def user_state(self, value):
        if not self.is_child:
            raise RuntimeError("user_state can only be modified from within "
                               "the worker")
        self._child_state = value

    # ---- what a kind implements --------------------------------------------

    @property
    def is_child(self):
        """True when accessed from inside the worker."""
        raise NotImplementedError()

    def is_alive(self):
        raise NotImplementedError()

    def wait(self, timeout=None):
        raise NotImplementedError()

    def terminate(self, timeout=1, force=True):
        raise NotImplementedError()

    def _start(self):
        raise NotImplementedError()

    def close(self):
        """Tell the worker no more input comes (persistent workers)."""

    # ---- override points ----------------------------------------------------

    def run(self, *args, **kwargs):
        """Runs in the worker: calls the target once."""
        if not self._target:
            return None
        return self._target(*args, **kwargs)

    def do_work(self):
        """Runs in the worker: the whole job (``run`` once by default)."""
        return self.run(*self._args, **self._kwargs)

    def _accepting(self):
        """Whether input may still be sent (kinds make it cheaper)."""
        return self.is_alive()

    def _reset_for_restart(self):
        """Kind hook: forget the previous run's link before ``_start``."""

    def _release_child(self):
        """Parent side hook, called when terminate is requested."""

    def _release_self(self):
        """Worker side hook, called when terminate is requested."""

    def _init_child(self):
        """Worker side hook, called before ``do_work``."""

    def _cleanup(self):
        """Worker side hook, called after ``do_work``."""

    def _log_failure(self, exc):
        """Worker side: reports ``do_work`` ending with ``exc`` the way
        pyworkers does, with an ERROR record and the traceback on the
        logger of the kind's module (no logging set up: Python prints both
        on stderr). Process and remote workers report `Exception`s only,
        thread workers every exception."""
        try:
            kind = type(self).worker_type
        except Exception:  # noqa: BLE001 (a user class may not say)
            kind = None
        if not isinstance(exc, Exception) and kind is not WorkerType.THREAD:
            return
        logging.getLogger(_KIND_LOGGERS.get(kind, __name__)).error(
            FAILURE_MESSAGE, exc_info=exc)


@contextlib.contextmanager
def autoclose_active_children(timeout=0.1):
    """On leaving the block, closes every live worker of this process,
    waits ``timeout`` for it, and terminates it if it is still alive."""
    try:
        yield
    finally:
        for child in Worker.active_children():
            child.close()
            if not child.wait(timeout=timeout):
                child.terminate(timeout=timeout)


def _check_timeout(timeout):
    if timeout is not None and timeout < 0:
        raise ValueError("Negative timeout")


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from enum import Enum  # noqa: F401,E402
