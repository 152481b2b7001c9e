"""``Pool``: the ``multiprocessing.Pool`` interface on the forkqueue engine.

Every call becomes engine jobs (see ``forkqueue._executor``): ``apply*``
one job per call, ``map*``/``starmap*`` chunks of items, ``imap*`` chunks
sent a bounded number ahead of the consumer. Results come back as
``concurrent.futures`` futures completed by the engine thread, wrapped in
``AsyncResult``/``MapResult`` objects with the ``multiprocessing`` methods.
A worker that dies fails only the item it was running; Ctrl-C in a
blocking call terminates the pool before the ``KeyboardInterrupt``
propagates, so no worker is left behind.
"""

import collections
import concurrent.futures as _cf
import multiprocessing
import threading
import time
import weakref

from ._executor import _Engine, _auto_chunksize, _chunks, default_workers

__all__ = ["Pool", "ApplyResult", "AsyncResult", "MapResult",
           "IMapIterator", "IMapUnorderedIterator"]

_RUN, _CLOSE, _TERMINATE = 0, 1, 2


def _timeout_error():
    return multiprocessing.TimeoutError()


class ApplyResult:
    """The result of ``Pool.apply_async()`` (also named ``AsyncResult``).

    As in ``multiprocessing``, ``callback``/``error_callback`` have run by
    the time the result is ready: ``get()`` never returns before them."""

    def __init__(self, pool, future, callback=None, error_callback=None):
        self._pool = pool
        self._future = future
        self._event = threading.Event()

        def done(f, callback=callback, error_callback=error_callback):
            try:
                if f.cancelled():
                    return
                e = f.exception()
                if e is None:
                    if callback is not None:
                        callback(self._value(f))
                elif error_callback is not None:
                    error_callback(e)
            finally:
                self._event.set()
        future.add_done_callback(done)

    def _value(self, f):
        return f.result()

    def ready(self):
        """True once the call has finished (and its callback has run)."""
        return self._event.is_set()

    def successful(self):
        """True if it finished without an exception; ValueError if not
        finished yet."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return (not self._future.cancelled()
                and self._future.exception() is None)

    def wait(self, timeout=None):
        """Waits until ready or until ``timeout`` seconds have passed."""
        self._pool._blocking(self._event.wait, timeout)

    def get(self, timeout=None):
        """The value, or its exception raised; ``multiprocessing.
        TimeoutError`` if not ready within ``timeout`` seconds."""
        self.wait(timeout)
        if not self.ready():
            raise _timeout_error()
        return self._value(self._future)


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of ``Pool.map_async()``/``starmap_async()``: one future
    that completes with the list of values (or the first error)."""


def _failed(exc):
    f = _cf.Future()
    f.set_running_or_notify_cancel()
    f.set_exception(exc)
    return f


def _gather(chunk_futures, out):
    """Completes `out` with the list of all values once every chunk is in,
    or with the first error (in input order)."""
    left = [len(chunk_futures)]
    lock = threading.Lock()

    def one_done(_):
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if not last:
            return
        values = []
        for f in chunk_futures:
            if f.cancelled():
                _safe(out.set_exception, _cf.CancelledError())
                return
            e = f.exception()
            if e is not None:
                _safe(out.set_exception, e)
                return
            vals, errors = f.result()
            if errors:
                first = min(errors)
                _safe(out.set_exception, errors[first])
                return
            values.extend(vals)
        _safe(out.set_result, values)

    if not chunk_futures:
        out.set_result([])
        return
    for f in chunk_futures:
        f.add_done_callback(one_done)


def _safe(fn, *a):
    try:
        fn(*a)
    except _cf.InvalidStateError:
        pass


class IMapIterator:
    """Iterator of ``imap``/``imap_unordered``: ``next(timeout=None)``."""

    def __init__(self, pool, func, iterable, chunksize, star, ordered):
        self._pool = pool
        self._func = func
        self._source = iter(iterable)
        self._chunksize = chunksize
        self._star = star
        self._ordered = ordered
        self._pending = collections.deque()  # chunk futures, input order
        self._done = collections.deque()     # unordered: finished chunks
        self._cond = threading.Condition()
        self._buffer = collections.deque()   # values ready to hand out
        self._exhausted = False
        # Chunks in flight at most: enough to keep every worker busy.
        self._ahead = 4 * pool._processes
        self._fill()

    def _fill(self):
        batch = []
        while not self._exhausted and (len(self._pending) + len(batch)
                                       < self._ahead):
            items = []
            for item in self._source:
                items.append(item)
                if len(items) == self._chunksize:
                    break
            if len(items) < self._chunksize:
                self._exhausted = True
            if items:
                batch.append(items)
        if batch:
            futures = self._pool._engine.submit_chunks(self._func, batch,
                                                       self._star)
            for f in futures:
                self._pending.append(f)
                if not self._ordered:
                    f.add_done_callback(self._chunk_done)

    def _chunk_done(self, f):
        with self._cond:
            self._done.append(f)
            self._cond.notify()

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            if not self._pending:
                raise StopIteration
            if self._ordered:
                f = self._pending[0]
                try:
                    self._pool._blocking(f.result, _left(deadline))
                except _cf.TimeoutError:
                    if not f.done():
                        raise _timeout_error() from None
                    raise
                self._pending.popleft()
            else:
                with self._cond:
                    if not self._done:
                        self._pool._blocking(self._cond.wait_for,
                                             lambda: self._done,
                                             _left(deadline))
                    if not self._done:
                        raise _timeout_error()
                    f = self._done.popleft()
                self._pending.remove(f)
            values, errors = f.result()
            for i, v in enumerate(values):
                self._buffer.append((v, errors.get(i) if errors else None))
            self._fill()
        v, e = self._buffer.popleft()
        if e is not None:
            raise e
        return v

    __next__ = __next__


class IMapUnorderedIterator(IMapIterator):
    """Iterator of ``imap_unordered``: results in completion order."""


def _left(deadline):
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class Pool:
    """A process pool with the ``multiprocessing.Pool`` interface, whose
    workers are forks (closures and lambdas work) and where a worker's
    death fails only the item it was running."""

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, context=None):
        if processes is None:
            processes = default_workers()
        if not isinstance(processes, int) or isinstance(processes, bool):
            raise TypeError("processes must be an int or None")
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int "
                                 "or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes
        self._state = _RUN
        self._engine = _Engine(processes, initializer, initargs,
                               maxtasksperchild, name="forkqueue-pool")
        self._engine.terminate_at_exit = True
        self._finalizer = weakref.finalize(self, self._engine.shutdown,
                                           False, True)

    # -- helpers ------------------------------------------------------------

    def _check_running(self):
        if self._state != _RUN:
            raise ValueError("Pool not running")

    def _blocking(self, fn, *args):
        """Runs a blocking wait; Ctrl-C terminates the pool first."""
        try:
            return fn(*args)
        except KeyboardInterrupt:
            self.terminate()
            raise

    def __repr__(self):
        state = ("RUN", "CLOSE", "TERMINATE")[self._state]
        return (f"<{type(self).__module__}.{type(self).__qualname__} "
                f"state={state} pool_size={self._processes}>")

    # -- the API ------------------------------------------------------------

    def apply_async(self, func, args=(), kwds={}, callback=None,
                    error_callback=None):
        """Runs ``func(*args, **kwds)`` in a worker; returns an
        AsyncResult."""
        self._check_running()
        # As in multiprocessing, a call that cannot be made fails its
        # result (raised by get()), not apply_async() itself.
        if not callable(func):
            f = _failed(TypeError(
                f"'{type(func).__name__}' object is not callable"))
        else:
            try:
                args = tuple(args)
            except TypeError:
                name = getattr(func, "__qualname__", type(func).__name__)
                mod = getattr(func, "__module__", None)
                if mod:
                    name = f"{mod}.{name}"
                f = _failed(TypeError(
                    f"{name}() argument after * must be an iterable, not "
                    f"{type(args).__name__}"))
            else:
                f = self._engine.submit(func, args,
                                        dict(kwds) if kwds else None)
        return ApplyResult(self, f, callback, error_callback)

    def apply(self, func, args=(), kwds={}):
        """``func(*args, **kwds)`` run in a worker; waits for it."""
        return self.apply_async(func, args, kwds).get()

    def _map_async(self, func, iterable, chunksize, star, callback,
                   error_callback):
        self._check_running()
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        items = iterable if isinstance(iterable, list) else list(iterable)
        if chunksize is None:
            chunksize = _auto_chunksize(len(items), self._processes)
        elif chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        futures = self._engine.submit_chunks(func, _chunks(items, chunksize),
                                             star)
        out = _cf.Future()
        out.set_running_or_notify_cancel()
        _gather(futures, out)
        return MapResult(self, out, callback, error_callback)

    def map_async(self, func, iterable, chunksize=None, callback=None,
                  error_callback=None):
        """Like ``map()``, returning a MapResult."""
        return self._map_async(func, iterable, chunksize, False, callback,
                               error_callback)

    def map(self, func, iterable, chunksize=None):
        """``[func(x) for x in iterable]`` in the workers, in order."""
        return self._map_async(func, iterable, chunksize, False, None,
                               None).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        """Like ``starmap()``, returning a MapResult."""
        return self._map_async(func, iterable, chunksize, True, callback,
                               error_callback)

    def starmap(self, func, iterable, chunksize=None):
        """``[func(*args) for args in iterable]`` in the workers."""
        return self._map_async(func, iterable, chunksize, True, None,
                               None).get()

    def imap(self, func, iterable, chunksize=1):
        """Lazy ``map()``: results in order as they come; the input is read
        a bounded number of chunks ahead."""
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        return IMapIterator(self, func, iterable, chunksize, False, True)

    def imap_unordered(self, func, iterable, chunksize=1):
        """Like ``imap()``, results in completion order."""
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        return IMapUnorderedIterator(self, func, iterable, chunksize, False,
                                     False)

    def close(self):
        """No more tasks; the workers exit once the queued ones are done."""
        if self._state == _RUN:
            self._state = _CLOSE
            self._engine.shutdown(wait=False)

    def terminate(self):
        """Stops the workers now; unfinished tasks fail."""
        self._state = _TERMINATE
        self._engine.shutdown(wait=True, terminate=True)

    def join(self):
        """Waits for the workers to exit, after ``close()`` or
        ``terminate()``."""
        if self._state == _RUN:
            raise ValueError("Pool is still running")
        self._blocking(self._engine.shutdown, True,
                       self._state == _TERMINATE)

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between "
                                  "processes or pickled")
