"""`Pool`: persistent workers of any kinds fed from input sources, each
run's inputs retried on the others when a worker dies (``retry``). How a
run feeds the workers is in `_pool_run`.
"""
import collections.abc as cabc
import socket
import threading

from .utils import get_logger
from .persistent import PersistentWorker
from .worker import Worker, WorkerType
# The run's tuning, documented there; readable here as before.
from ._pool_run import (  # noqa: F401
    COALESCE_MAX_S, COALESCE_MIN_S, END_S, FIRST_ROUND, QUEUE_S, REFILL_AT,
    WINDOW, WINDOW_BYTES, _Run)

__all__ = ["Pool", "PoolError"]

logger = get_logger(__name__)


class PoolError(RuntimeError):
    """``Pool.run`` could not process the whole input (every worker died);
    ``partial_results`` holds the results it got."""

    def __init__(self, msg, partial_results=None):
        super().__init__(msg)
        self.partial_results = partial_results


class Pool:
    """A set of persistent workers sharing one target and one input."""

    def __init__(self, target, results_queue=None, args=None, kwargs=None,
                 retry=True, close_timeout=5, force_terminate=None,
                 name=None):
        if close_timeout is not None and close_timeout < 0:
            raise ValueError("Negative timeout")
        del results_queue  # accepted for compatibility; results are returned
        self._target = target
        self._args = args
        self._kwargs = kwargs
        self._retry = retry
        self._timeout = close_timeout
        self._force_close = force_terminate
        self._name = name or type(self).__name__
        self._workers = []
        self._closed = set()
        self._pool_closed = False
        self._running = False
        self._next_worker_id = 0
        self._lock = threading.Lock()
        self._wake_r = self._wake_w = None

    # ---- properties ------------------------------------------------------------

    @property
    def timeout(self):
        return self._timeout

    @timeout.setter
    def timeout(self, value):
        if value is not None and value < 0:
            raise ValueError("Negative timeout")
        self._timeout = value

    @property
    def force(self):
        return self._force_close

    @force.setter
    def force(self, value):
        self._force_close = value

    @property
    def workers(self):
        """The workers, in the order they were added."""
        return list(self._workers)

    # ---- adding workers ----------------------------------------------------------

    def add_worker(self, worker_type, name=None, userid=None, target=None,
                   args=None, kwargs=None, **worker_kwargs):
        """Creates a persistent worker of ``worker_type`` (a `WorkerType`
        or a class) with the pool's target and arguments and adds it."""
        with self._lock:
            index = self._next_worker_id
            self._next_worker_id += 1
        if name is None:
            name = f"{self._name} worker {index}"
        if userid is None:
            userid = index
        kw = dict(worker_kwargs, target=target or self._target,
                  args=args or self._args, kwargs=kwargs or self._kwargs,
                  name=name, userid=userid, results_pipe=None)
        if isinstance(worker_type, WorkerType):
            worker = PersistentWorker.create(worker_type, **kw)
        else:
            worker = worker_type(**kw)
        try:
            if any(w.id == worker.id for w in self._workers):
                raise ValueError(f"Duplicated worker id: {worker.id}")
            self._add(worker)
            self.handle_new_worker(worker)
        except BaseException:
            self._discard(worker)
            worker.terminate()
            raise
        return worker

    def attach(self, worker):
        """Adds a persistent worker created elsewhere."""
        if not isinstance(worker, Worker):
            raise ValueError("Worker expected")
        if not isinstance(worker, PersistentWorker):
            raise ValueError("a Pool needs persistent workers")
        if any(w is worker for w in self._workers):
            return
        self._add(worker)
        self.handle_new_worker(worker)

    def handle_new_worker(self, worker):
        """Hook: called for each worker added."""

    def _add(self, worker):
        with self._lock:
            self._workers.append(worker)
        if worker.is_thread:
            if self._wake_r is None:
                self._wake_r, self._wake_w = socket.socketpair()
                self._wake_r.setblocking(False)
                self._wake_w.setblocking(False)
            worker._pool_wakeup = self._wake

    def _discard(self, worker):
        with self._lock:
            self._workers = [w for w in self._workers if w is not worker]

    def _wake(self):
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed

    # ---- running ----------------------------------------------------------------

    def run(self, *input_sources, worker_callback=None, enqueue_fn=None,
            worker_extra_pending_inputs=0, return_results=True):
        """Feeds the inputs (one item of each source per call; a source is
        an iterable or a callable taking the worker) to the workers and
        returns the results in completion order."""
        if self._pool_closed:
            raise RuntimeError("Trying to use a closed Pool")
        if self._running:
            raise RuntimeError("recursive map!")
        if not input_sources:
            # Nothing could ever end the input: each call would take no
            # arguments, for ever (pyworkers loops until the workers die).
            raise ValueError("Pool.run() needs at least one input source "
                             "(an iterable, or a callable taking the worker)")
        if all(id(w) in self._closed for w in self._workers):
            return None
        sources = [s if callable(s) or isinstance(s, cabc.Iterator)
                   else iter(s) for s in input_sources]
        self._running = True
        run = _Run(self, sources, worker_callback, enqueue_fn,
                   worker_extra_pending_inputs, return_results)
        try:
            ok, ret = run.go()
        except Exception:
            run.abandon()  # (an input source or a callback raised)
            raise
        finally:
            self._running = False
        if not ok:
            raise PoolError("Pool failed to process the whole input - all "
                            "workers have died",
                            partial_results=ret if return_results else None)
        return ret if return_results else None

    # ---- closing -------------------------------------------------------------------

    def _close(self, timeout, force, graceful):
        if self._pool_closed:
            return
        if self._running:
            raise RuntimeError("Requested to close the Pool while still "
                               "processing workload, finish a call to "
                               "Pool.run before calling Pool.close or "
                               "Pool.terminate")
        timeout = timeout if timeout is not None else self._timeout
        force = force if force is not None else self._force_close
        force_args = {} if force is None else {"force": force}

        def cleanup(worker):
            try:
                if not worker.is_alive():
                    return
                worker.close()
                alive = not worker.wait(timeout=timeout)
                if alive and (force is not False or not graceful):
                    worker.terminate(timeout=timeout if timeout is not None
                                     else 1, **force_args)
            except Exception:  # noqa: BLE001 (one worker must not stop others)
                logger.exception("Error occurred while {} {!r}", "closing"
                                 if graceful else "terminating", worker)

        threads = [threading.Thread(target=cleanup, args=(w,), daemon=True)
                   for w in self._workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None
        self._pool_closed = True

    def close(self, timeout=None, force=None):
        """Closes every worker and waits up to ``timeout`` (default:
        ``close_timeout``) for it; ``force`` then terminates stragglers."""
        return self._close(timeout, force, True)

    def terminate(self, timeout=None, force=None):
        """Like `close`, but workers still alive after ``timeout`` are
        always terminated."""
        return self._close(timeout, force, False)

    def restart_workers(self, timeout=1, **kwargs):
        """Restarts every worker (see `PersistentWorker.restart`)."""
        if self._pool_closed:
            raise RuntimeError("Trying to restart workers on a closed Pool")
        if self._running:
            raise RuntimeError("Requested to restart workers while still "
                               "processing workload")
        for w in self._workers:
            w.restart(timeout=timeout, **kwargs)
            if w.is_thread:
                w._pool_wakeup = self._wake
        self._closed.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.terminate()


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .utils import Pipe, foreign_raise  # noqa: F401
