"""`ThreadWorker`: a worker running in a thread of the calling process."""
import threading

from .utils import (_foreign_raise, cancel_foreign_raise, classproperty,
                    gettid, setthreadtitle)
from .worker import Worker, WorkerTerminatedError, WorkerType, _check_timeout

__all__ = ["ThreadWorker"]


class ThreadWorker(Worker):
    """Runs ``do_work()`` in a new (daemon) thread of this process."""

    def __init__(self, target, **kwargs):
        self._startup = threading.Event()
        self._thread_lock = threading.Lock()
        self._terminable = False
        self._finished = False
        self._thread = None
        self._ident = None
        super().__init__(target, **kwargs)

    @classproperty
    def worker_type(cls):
        return WorkerType.THREAD

    @property
    def is_child(self):
        # The Thread object, not its ident: idents are reused once a
        # thread ends, and a later thread must not pass for this worker.
        return self._thread is not None and \
            threading.current_thread() is self._thread

    def is_alive(self):
        if self.is_child:
            return True
        return self._started and not self._finished

    def _get_result(self):
        if self.is_alive():
            return None
        return self._outcome

    def wait(self, timeout=None):
        """Waits up to ``timeout`` seconds (None: no limit) for the thread
        to end; True if it has."""
        _check_timeout(timeout)
        if self.is_child:
            raise ValueError("A worker cannot wait for itself")
        if not self.is_alive():
            return True
        self._thread.join(timeout)
        return not self.is_alive()

    def terminate(self, timeout=1, force=False):
        """Raises `WorkerTerminatedError` in the thread and waits up to
        ``timeout`` seconds for it to end. A thread cannot be killed: with
        ``force`` nothing more happens (the caller's process is never
        signalled) and False is returned if the thread survives."""
        _check_timeout(timeout)
        if self.is_child:
            raise WorkerTerminatedError()
        if not self.is_alive():
            return True
        with self._thread_lock:
            if self._terminable:
                _foreign_raise(self._ident, WorkerTerminatedError)
        self._release_child()
        self._thread.join(timeout)
        return not self.is_alive()

    # ---- running ----------------------------------------------------------

    def _start(self):
        self._dead = False
        self._thread = threading.Thread(target=self._bootstrap,
                                        name=self._name, daemon=True)
        self._thread.start()
        self._startup.wait()

    def _bootstrap(self):
        self._tid = gettid()
        self._ident = threading.get_ident()
        if self._set_names:  # as pyworkers: only with the setproctitle package
            setthreadtitle(self._name, self)
        with self._thread_lock:
            self._terminable = True
        self._startup.set()
        outcome = None
        try:
            try:
                self._init_child()
                outcome = (True, self.do_work())
            except BaseException as e:  # noqa: B036 (reported as error)
                outcome = (False, e)
                self._log_failure(e)
            finally:
                self._cleanup()
        except BaseException as e:  # raised by terminate during cleanup
            if outcome is None:
                outcome = (False, e)
        # No termination request may land after this point: drop one that
        # was set but not raised yet.
        while True:
            try:
                with self._thread_lock:
                    self._terminable = False
                    cancel_foreign_raise(self._ident)
                break
            except WorkerTerminatedError as e:
                if outcome is None:
                    outcome = (False, e)
        with self._thread_lock:
            self._outcome = outcome
            self._user_state = self._child_state
            self._finished = True
        self._on_finished()

    def _on_finished(self):
        """Called in the thread once the outcome is published."""


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .utils import foreign_raise, get_logger  # noqa: F401
from .worker import Worker  # noqa: F401

logger = get_logger(__name__)
