"""The engine that the pool-like faces share, and ``Executor`` on it.

One ``_Engine`` owns one ``ForkQueue`` (unordered, results with their ids,
errors as values) and one thread, the engine thread, which is the only
thread that touches the queue: it creates it (so its workers are tied to a
thread that lives as long as they do), submits jobs, blocks in
``ForkQueue.poll()`` with the GIL released, and completes
``concurrent.futures.Future`` objects as outcomes arrive.

Other threads never use the queue. ``submit()`` appends a job to a list
under a lock, then wakes the engine: with ``ForkQueue._wakeup()`` when it
is blocked in ``poll()``, with a condition variable when it is idle (no job
out, so nothing for ``poll()`` to wait on). Neither wait has a timeout: the
engine sleeps until there is something to do.

A job runs in the worker wrapped by ``_Call`` (one call) or ``_Chunk`` (a
list of calls, for ``map``), which catch the job's exception there, format
its traceback, and return either a tuple (success) or an ``_Err``. Anything
else coming back is an error of the core (the worker died, the job ran out
of time, the result could not be pickled), which fails that job alone. A
chunk whose worker died is split and its items run again one by one, so the
death is charged to the item that caused it (items that shared the chunk
may run twice). ``Pool`` (``forkqueue._pool``) and ``forkqueue.lazy`` use
the same engine.
"""

import collections
import concurrent.futures as _cf
import itertools
import os
import pickle
import re
import signal as _signal
import sys
import threading
import time
import traceback
import weakref
from concurrent.futures.process import BrokenProcessPool

from ._forkqueue import ForkQueue
from ._remote_exc import RemoteError, RemoteTraceback

__all__ = ["Executor", "Pool", "WorkerCrashedError", "default_workers"]

# Above this many items a chunk of tiny calls gains nothing more.
_MAX_CHUNK = 8192


def default_workers():
    """The number of CPUs this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class WorkerCrashedError(BrokenProcessPool):
    """The worker running this task died (a signal, ``os._exit()``, the OOM
    killer). Only this task fails; the pool replaces the worker and goes
    on. ``signal`` is the signal number that killed it or None;
    ``exitcode`` its exit status when it exited instead. A subclass of
    ``BrokenProcessPool``, so code written for ``ProcessPoolExecutor``
    still recognises a crash."""

    def __init__(self, message, signal=None, exitcode=None):
        super().__init__(message)
        self.signal = signal
        self.exitcode = exitcode


# ---- worker side -----------------------------------------------------------

class _Err:
    """A task's exception, with its traceback text, on its way back."""

    __slots__ = ("exc", "tb")

    def __init__(self, exc, tb):
        self.exc = exc
        self.tb = tb

    def __reduce__(self):
        return (_Err, (self.exc, self.tb))

    def rebuild(self):
        exc = self.exc
        exc.__cause__ = RemoteTraceback(self.tb)
        return exc


def _failure(e):
    """Worker side: the _Err for exception e. An exception that would not
    survive the trip (unpicklable, or not rebuildable from its pickle) is
    replaced by a RuntimeError naming it; the traceback text is intact."""
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    try:
        pickle.loads(pickle.dumps(e, pickle.HIGHEST_PROTOCOL))
        exc = e
    except BaseException:
        try:
            message = str(e)
        except BaseException:
            message = "(its message could not be formatted)"
        exc = RemoteError(f"{type(e).__module__}.{type(e).__qualname__}",
                          message)
    e.__traceback__ = None
    return _Err(exc, tb)


class _Wrapper:
    """Base of the job wrappers: one per callable (the engine caches them),
    equal when they wrap the same object, so that the queue's registry of
    callables holds one entry per function."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __eq__(self, other):
        return type(other) is type(self) and other.fn is self.fn

    def __hash__(self):
        return hash((type(self), id(self.fn)))


class _Call(_Wrapper):
    """fn(*args, **kwargs) -> (result,) or _Err."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        try:
            return (self.fn(*args, **kwargs),)
        except BaseException as e:
            return _failure(e)


def _run_chunk(fn, items, star):
    """fn(item) (fn(*item) with star) for each item -> (values, {index:
    _Err} or None): one item's error never stops the others."""
    values = []
    errors = None
    append = values.append
    for i, item in enumerate(items):
        try:
            append(fn(*item) if star else fn(item))
        except BaseException as e:
            if errors is None:
                errors = {}
            errors[i] = _failure(e)
            append(None)
    return (values, errors)


class _Chunk(_Wrapper):
    """fn(item) for each item -> (values, {index: _Err} or None)."""

    __slots__ = ()

    def __call__(self, items):
        return _run_chunk(self.fn, items, False)


class _StarChunk(_Wrapper):
    """fn(*item) for each item -> (values, {index: _Err} or None)."""

    __slots__ = ()

    def __call__(self, items):
        return _run_chunk(self.fn, items, True)


# ---- parent side -----------------------------------------------------------

def _signal_name(n):
    try:
        return _signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _core_error(e, what):
    """The exception for an outcome the core gave instead of a result.
    e is the ForkQueueException that describes it."""
    text = (getattr(e, "backtrace", None) or str(e)).strip()
    sig = getattr(e, "signal", None)
    code = getattr(e, "exitcode", None)
    if sig is not None or code is not None:
        died = "The worker running this job died: "
        if text.startswith(died):
            text = text[len(died):]
        return WorkerCrashedError(f"the worker running this {what} died: "
                                  f"{text}", signal=sig, exitcode=code)
    # With reraise=False the outcome is the TimeoutError itself (its
    # backtrace reads "TimeoutError: job 12 ..."): use its own message.
    cause = e if isinstance(e, TimeoutError) else \
        getattr(e, "exception", None)
    if isinstance(cause, TimeoutError) or "time limit" in text:
        # "job 12 exceeded its time limit...": the id is the engine's own.
        msg = str(cause) if isinstance(cause, TimeoutError) else text
        msg = re.sub(r"^(?:TimeoutError: )?job \S+ ", f"the {what} ", msg)
        # forkqueue.futures.TimeoutError: a builtin TimeoutError (so
        # concurrent.futures.TimeoutError) that `except TimeoutError`
        # catches after `from forkqueue.futures import *` too.
        from .futures._errors import TimeoutError as FuturesTimeoutError
        return FuturesTimeoutError(msg)
    if text.startswith("initfunc failed"):
        return BrokenProcessPool(
            "the initializer failed in a worker:\n" + text[len(
                "initfunc failed:"):].lstrip("\n"))
    return e


class _Job:
    """One core job. kind: 'call' (future is the task's), 'chunk' (state
    is a _ChunkState, future its future) or 'item' (one item of a split
    chunk: state and index)."""

    __slots__ = ("kind", "wrapper", "args", "kwargs", "timeout", "future",
                 "state", "index", "what")

    def __init__(self, kind, wrapper, args, kwargs, timeout, future,
                 state=None, index=0, what="task"):
        self.kind = kind
        self.wrapper = wrapper
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.future = future
        self.state = state
        self.index = index
        self.what = what


class _ChunkState:
    """A chunk of map items: its future gets (values, errors) where errors
    is None or {index: exception}."""

    __slots__ = ("future", "items", "values", "errors", "remaining", "fn",
                 "star")

    def __init__(self, future, items, fn, star):
        self.future = future
        self.items = items
        self.fn = fn
        self.star = star
        self.values = None
        self.errors = None
        self.remaining = 0


_live_engines = weakref.WeakSet()
_exiting = False


class _Engine:
    """The engine: one ForkQueue, one thread. Thread-safe."""

    def __init__(self, workers=None, initializer=None, initargs=(),
                 max_tasks=None, name="forkqueue-engine", max_inflight=None):
        if workers is None:
            workers = default_workers()
        self.workers = workers
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks = max_tasks
        self._name = name
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Jobs not yet handed to the core: still PENDING. The Executor
        # bounds the jobs in the core (max_inflight) so that cancel() and
        # shutdown(cancel_futures=True) work on the others, as in
        # concurrent.futures (which queues max_workers + 1 calls); Pool and
        # lazy hand every job over at once (fewer engine rounds per job).
        self._incoming = collections.deque()
        self._max_inflight = (sys.maxsize if max_inflight is None
                              else max_inflight)
        self._idle = False     # engine waits on _cond
        self._nap_s = 0.0      # see _nap()
        self._polling = False  # engine is (about to be) in poll()
        self._woken = False    # a _wakeup() was sent since it looked
        self._closing = False  # no more jobs; stop once all are done
        self._terminating = False
        self._broken = None    # exception failing every later job
        self._thread = None
        self._q = None
        self._wrappers = {}
        self._ids = itertools.count()
        self._inflight = {}  # core job id -> _Job (engine thread only)
        self.completed = 0
        _live_engines.add(self)

    # -- any thread ---------------------------------------------------------

    def _start(self):
        started = threading.Event()
        box = []
        t = threading.Thread(target=self._main, args=(started, box),
                             name=self._name, daemon=True)
        t.start()
        started.wait()
        if box:
            raise box[0]
        self._thread = t

    def _wrapper(self, cls, fn):
        key = (cls, id(fn))
        w = self._wrappers.get(key)
        if w is None or w.fn is not fn:
            w = self._wrappers[key] = cls(fn)
        return w

    def put(self, jobs):
        """Hands jobs to the engine thread (starting it if needed)."""
        wake = None
        with self._lock:
            if self._closing or self._terminating:
                raise RuntimeError("cannot schedule new futures after "
                                   "shutdown")
            if _exiting:
                raise RuntimeError("cannot schedule new futures after "
                                   "interpreter shutdown")
            if self._thread is None:
                if os.getpid() != self._pid:
                    raise RuntimeError("this pool belongs to the process "
                                       "that created it")
                self._start()
            self._incoming.extend(jobs)
            if self._idle:
                self._cond.notify()
            elif (self._polling and not self._woken
                  and len(self._inflight) < self._max_inflight):
                # (With every slot in flight, the next result wakes the
                # engine, which then takes these jobs: no wakeup needed.)
                self._woken = True
                wake = self._q
        if wake is not None:
            wake._wakeup()

    def submit(self, fn, args, kwargs, timeout=None, future=None):
        if not callable(fn):
            # As concurrent.futures: the future fails, submit() does not.
            self.put(())
            f = _cf.Future() if future is None else future
            f.set_running_or_notify_cancel()
            f.set_exception(TypeError(
                f"'{type(fn).__name__}' object is not callable"))
            return f
        if timeout is not None:
            timeout = float(timeout)
            if not timeout > 0:
                raise ValueError(f"timeout must be positive, not {timeout}")
        f = _cf.Future() if future is None else future
        job = _Job("call", self._wrapper(_Call, fn), args, kwargs or None,
                   timeout, f)
        self.put((job,))
        return f

    def submit_chunks(self, fn, chunks, star):
        """Submits lists of items as chunks; returns their futures."""
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        w = self._wrapper(_StarChunk if star else _Chunk, fn)
        jobs = []
        futures = []
        for items in chunks:
            f = _cf.Future()
            st = _ChunkState(f, items, fn, star)
            jobs.append(_Job("chunk", w, (items,), None, None, f, st))
            futures.append(f)
        self.put(jobs)
        return futures

    def cancel_pending(self):
        """Cancels the futures of jobs not yet sent to a worker."""
        with self._lock:
            jobs, self._incoming = self._incoming, collections.deque()
        for job in jobs:
            job.future.cancel()

    def shutdown(self, wait=True, terminate=False):
        """Stops accepting jobs; the engine ends once every job has its
        outcome (terminate: at once, failing the jobs in flight)."""
        if os.getpid() != self._pid:
            return  # a copy in a forked child: its thread is not here
        with self._lock:
            self._closing = True
            if terminate:
                self._terminating = True
            t = self._thread
            if self._idle:
                self._cond.notify()
            wake = self._q if self._polling else None
        if wake is not None:
            wake._wakeup()
        if wait and t is not None and t is not threading.current_thread():
            t.join()

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    # -- the engine thread --------------------------------------------------

    def _main(self, started, box):
        try:
            init = None
            if self._initializer is not None:
                fn, a = self._initializer, self._initargs

                def run_initializer():
                    try:
                        fn(*a)
                    except BaseException:
                        # As concurrent.futures: say why on stderr.
                        sys.stderr.write("Exception in initializer:\n")
                        traceback.print_exc()
                        sys.stderr.flush()
                        raise
                init = run_initializer
            kw = {}
            if self._max_tasks is not None:
                kw["max_jobs_per_worker"] = self._max_tasks
            q = ForkQueue(numforks=self.workers, initfunc=init, reraise=False,
                          ordered=False, retn_ids=True, **kw)
        except BaseException as e:
            box.append(e)
            started.set()
            return
        self._q = q
        started.set()
        try:
            self._loop(q)
        except BaseException as e:  # a bug: fail what is left, loudly
            with self._lock:
                self._closing = True
            err = RuntimeError(f"forkqueue engine failed: {e!r}")
            for job in list(self._inflight.values()):
                self._set_error(job, err)
            self._fail_all(err)
            raise
        finally:
            try:
                q.cancel()
            except Exception:
                pass

    def _loop(self, q):
        inflight = self._inflight
        lock = self._lock
        while True:
            with lock:
                while not (self._incoming or inflight or self._closing
                           or self._terminating):
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                jobs = ()
                room = self._max_inflight - len(inflight)
                if self._terminating:
                    jobs, self._incoming = self._incoming, collections.deque()
                elif room > 0 and self._incoming:
                    incoming = self._incoming
                    if len(incoming) <= room:
                        jobs, self._incoming = incoming, collections.deque()
                    else:
                        jobs = [incoming.popleft() for _ in range(room)]
                self._woken = False
                self._polling = True
                terminating = self._terminating
                closing = self._closing
            if terminating:
                self._polling = False
                q.cancel()
                err = _cf.CancelledError("the pool was terminated")
                for job in jobs:
                    job.future.cancel()
                for job in inflight.values():
                    self._set_error(job, err)
                return
            for job in jobs:
                self._send(q, job, inflight)
            if not inflight:
                self._polling = False
                if closing and not self._incoming:
                    q.finish()
                    return
                continue
            q.poll(None)
            self._polling = False
            for jid, value in q.yield_results():
                job = inflight.pop(jid)
                self._finish(job, value, inflight)
            if self._nap_s and len(inflight) > 2 * self.workers:
                self._nap()

    def _nap(self):
        """Lets results gather for _nap_s before the next poll: one wake-up
        of this thread per batch of results instead of one per result. Only
        with many jobs out: the core keeps each worker at least 2 ms of
        jobs ahead (FQ__FLUSH_AGE_NS twice), so they stay busy meanwhile,
        and only the results are late, by _nap_s at most. New jobs and
        shutdown end the nap (put() and shutdown() notify an idle engine).
        Set by forkqueue.lazy, whose callers wait for results in bulk."""
        with self._lock:
            if self._incoming or self._closing or self._terminating:
                return
            self._idle = True
            self._cond.wait(self._nap_s)
            self._idle = False

    def _send(self, q, job, inflight):
        if job.kind != "item" and not job.future.set_running_or_notify_cancel():
            return
        if self._broken is not None:
            self._set_error(job, self._broken)
            return
        jid = next(self._ids)
        try:
            if job.timeout is not None:
                q.add(job.wrapper, job.args, job.kwargs, jid,
                      timeout=job.timeout)
            else:
                q.add(job.wrapper, job.args, job.kwargs, jid)
        except BaseException as e:
            if "initfunc failed" in str(e):
                self._broken = BrokenProcessPool(
                    "the initializer failed in a worker; the pool is "
                    "stopped")
                e = self._broken
            self._set_error(job, e)
            return
        inflight[jid] = job

    def _set_error(self, job, exc):
        if job.kind == "item":
            self._item_done(job, None, exc)
            return
        try:
            job.future.set_exception(exc)
        except _cf.InvalidStateError:
            pass

    def _finish(self, job, value, inflight):
        self.completed += 1
        kind = job.kind
        if kind == "call":
            f = job.future
            try:
                if type(value) is tuple:
                    f.set_result(value[0])
                elif type(value) is _Err:
                    f.set_exception(value.rebuild())
                else:
                    f.set_exception(_core_error(value, job.what))
            except _cf.InvalidStateError:
                pass
        elif kind == "chunk":
            st = job.state
            if type(value) is tuple:
                values, errors = value
                if errors:
                    errors = {i: e.rebuild() for i, e in errors.items()}
                try:
                    st.future.set_result((values, errors))
                except _cf.InvalidStateError:
                    pass
            elif len(st.items) > 1 and (getattr(value, "signal", None)
                                        is not None or getattr(
                                            value, "exitcode", None)
                                        is not None):
                self._split(st, inflight)
            else:
                err = _core_error(value, "task")
                try:
                    st.future.set_result((
                        [None] * len(st.items),
                        {i: err for i in range(len(st.items))}))
                except _cf.InvalidStateError:
                    pass
        else:
            if type(value) is tuple:
                self._item_done(job, value[0], None)
            elif type(value) is _Err:
                self._item_done(job, None, value.rebuild())
            else:
                self._item_done(job, None, _core_error(value, "task"))

    def _split(self, st, inflight):
        """The worker of a chunk died: run its items one by one."""
        n = len(st.items)
        st.values = [None] * n
        st.errors = {}
        st.remaining = n
        w = self._wrapper(_Call, st.fn)
        for i, item in enumerate(st.items):
            args = tuple(item) if st.star else (item,)
            job = _Job("item", w, args, None, None, None, st, i)
            self._send(self._q, job, inflight)

    def _item_done(self, job, value, exc):
        st = job.state
        if exc is None:
            st.values[job.index] = value
        else:
            st.errors[job.index] = exc
        st.remaining -= 1
        if st.remaining == 0:
            try:
                st.future.set_result((st.values, st.errors or None))
            except _cf.InvalidStateError:
                pass

    def _fail_all(self, exc):
        with self._lock:
            jobs, self._incoming = self._incoming, collections.deque()
        for job in jobs:
            self._set_error(job, exc)


def _interrupted():
    """True when the program is ending on an uncaught Ctrl-C."""
    return isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)


def _at_exit():
    """Before the interpreter goes: executors finish their work (as the
    standard library's do), pools that were not closed are terminated, and
    after an uncaught Ctrl-C everything is terminated: no wait, no worker
    left."""
    global _exiting
    _exiting = True
    interrupted = _interrupted()
    for eng in list(_live_engines):
        if interrupted or getattr(eng, "terminate_at_exit", False):
            eng.shutdown(wait=True, terminate=True)
        else:
            eng.shutdown(wait=True)


try:
    threading._register_atexit(_at_exit)
except AttributeError:  # pragma: no cover - older or other Pythons
    import atexit
    atexit.register(_at_exit)


def _after_fork_in_child():
    # Engines of the parent have no thread here; their locks may even be
    # held by a thread that does not exist in the child. Forget them.
    global _live_engines
    _live_engines = weakref.WeakSet()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _auto_chunksize(n, workers):
    if n <= 0:
        return 1
    return max(1, min(_MAX_CHUNK, -(-n // (4 * workers))))


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _iter_chunk_results(futures, deadline):
    """Yields the values of chunk futures in order, raising an item's
    exception at its place; cancels what is left when stopped early."""
    try:
        for f in futures:
            if deadline is None:
                values, errors = f.result()
            else:
                values, errors = f.result(max(0.0, deadline - time.monotonic()))
            if errors is None:
                yield from values
            else:
                for i, v in enumerate(values):
                    e = errors.get(i)
                    if e is not None:
                        raise e
                    yield v
    finally:
        for f in futures:
            f.cancel()


class Executor(_cf.Executor):
    """A ``concurrent.futures.Executor`` whose workers are forked processes
    (``forkqueue``): closures and lambdas work, a task can have its own
    time limit, and a crashed worker fails only its own task."""

    def __init__(self, max_workers=None, initializer=None, initargs=(),
                 max_tasks_per_child=None, *, mp_context=None):
        # mp_context: accepted (keyword only) so that programs written for
        # ProcessPoolExecutor(mp_context=...) run; workers are always forks.
        if max_workers is None:
            max_workers = default_workers()
        elif not isinstance(max_workers, int) or isinstance(max_workers,
                                                            bool):
            raise TypeError("max_workers must be an int or None, not "
                            f"{type(max_workers).__name__}")
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int) or isinstance(
                    max_tasks_per_child, bool):
                raise TypeError("max_tasks_per_child must be an int or None")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        self._max_workers = max_workers
        # A few jobs queued per worker keep the workers busy while the
        # engine thread waits for the GIL; the rest stay cancellable.
        self._engine = _Engine(max_workers, initializer, initargs,
                               max_tasks_per_child,
                               name="forkqueue-executor",
                               max_inflight=2 * max_workers + 8)
        self._finalizer = weakref.finalize(self, self._engine.shutdown,
                                           False)

    def submit(self, fn, /, *args, timeout=None, **kwargs):
        """Runs ``fn(*args, **kwargs)`` in a worker; returns its Future.
        ``timeout``: seconds the task may run once started; over it, its
        worker is killed (with any process the task started) and the
        future fails with ``TimeoutError``."""
        return self._engine.submit(fn, args, kwargs, timeout)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Like ``concurrent.futures.Executor.map``: results in input
        order, ``timeout`` a deadline for the whole iteration. Items are
        sent in chunks; ``chunksize=1`` (the default) lets the executor
        choose the chunk size, a larger value fixes it."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if not iterables:
            # As concurrent.futures: zip() of nothing is empty.
            self._engine.put(())
            return iter(())
        deadline = None if timeout is None else time.monotonic() + timeout
        # One iterable: its items are the arguments (no 1-tuples to build
        # and pickle).
        star = len(iterables) > 1
        items = list(zip(*iterables)) if star else list(iterables[0])
        if chunksize == 1:
            chunksize = _auto_chunksize(len(items), self._max_workers)
        futures = self._engine.submit_chunks(fn, _chunks(items, chunksize),
                                             star)
        return _iter_chunk_results(futures, deadline)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new tasks; ``cancel_futures`` cancels those not started;
        ``wait`` waits until every started task has finished and the
        workers are gone."""
        if cancel_futures:
            with self._engine._lock:
                self._engine._closing = True
            self._engine.cancel_pending()
        self._engine.shutdown(wait)


from ._pool import Pool  # noqa: E402  (Pool builds on the engine above)
