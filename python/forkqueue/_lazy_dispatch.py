"""Dispatch of ``forkqueue.lazy`` jobs: the process pool (a forkqueue
``Executor``) and the thread pool, the wrapper that runs a job in a worker
(cascading forks, errors as values), arguments that are proxies, and the
wait at exit for jobs never evaluated."""

import concurrent.futures as _cf
# Imported now, not on the first thread job: importing it registers fork
# hooks (one releases a lock its before-hook took). Registered by this
# thread while the engine thread forks (between the before-hooks and the
# after-hooks), the after-hook would release the lock a submit() here holds.
import concurrent.futures.thread  # noqa: F401
import os
import sys
import threading

from ._executor import Executor, _interrupted, default_workers
from ._lazy_errors import _Failed, _error_of, _site
from ._lazy_future import _LazyFuture
from ._lazy_proxy import ResultProxy

_builtin_map = map

# ---- what runs in the workers -------------------------------------------------

class _Local(threading.local):
    forks = None  # the forks made by the job running in this thread


_local = _Local()


class _LazyCall:
    """Runs a job: calls the function, evaluates a proxy it returns, waits
    for every fork made meanwhile (cascading forks), and turns an exception
    into a _Failed value. One per function (cached), equal when they wrap
    the same function, so the worker registry keeps one entry."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __eq__(self, other):
        return type(other) is _LazyCall and other.fn is self.fn

    def __hash__(self):
        return hash((_LazyCall, id(self.fn)))

    def __call__(self, *args, **kwargs):
        outer = _local.forks
        _local.forks = forks = []
        try:
            try:
                value = self.fn(*args, **kwargs)
                while type(value) is ResultProxy:
                    value = value._fq_evaluate(None)
            except BaseException as e:
                err = _error_of(e, (), e.__traceback__.tb_next)
                value = _Failed(err.frames, err.exc_line, err.original)
            # Forks made by the job and never evaluated still finish
            # before its result is ready; their errors are not ours.
            while forks:
                p = forks.pop()
                try:
                    p._fq_evaluate(None)
                except BaseException:
                    pass
            return value
        finally:
            _local.forks = outer


_lock = threading.Lock()
_state = {"pid": None, "processes": None, "threads": None,
          "nprocesses": None, "nthreads": None}
_wrappers = {}


def _after_fork_in_child():
    # The pools of the parent do not exist here (their threads are gone).
    global _lock, _unfinished_lock
    _lock = threading.Lock()
    _unfinished_lock = threading.Lock()
    _unfinished.clear()
    _state["processes"] = _state["threads"] = None
    _state["pid"] = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _pool(kind):
    pool = _state[kind]
    if pool is not None:
        # A fork (also the engine's, which runs the at-fork hooks) clears
        # _state in the child: no getpid() per call.
        return pool
    with _lock:
        if _state["pid"] != os.getpid():
            _state["processes"] = _state["threads"] = None
            _state["pid"] = os.getpid()
        pool = _state[kind]
        if pool is None:
            if kind == "processes":
                pool = Executor(_state["nprocesses"] or default_workers())
                # No cancel() on proxies: every job goes to the core at
                # once, which costs the parent fewest engine rounds.
                pool._engine._max_inflight = sys.maxsize
                # Results are awaited in bulk (total += fork(...) in a
                # loop, then one evaluation): batch them, 2 ms at most.
                pool._engine._nap_s = 0.002
            else:
                pool = _cf.ThreadPoolExecutor(
                    _state["nthreads"] or default_workers(),
                    thread_name_prefix="forkqueue-lazy")
            _state[kind] = pool
    return pool


def configure(processes=None, threads=None):
    """Sets the sizes of the process and thread pools (default: the number
    of CPUs). Takes effect for pools not created yet; call it before the
    first fork."""
    for name, v in (("processes", processes), ("threads", threads)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be a positive int or None")
    with _lock:
        if processes is not None:
            _state["nprocesses"] = processes
        if threads is not None:
            _state["nthreads"] = threads


def _shutdown(wait=True):
    """Waits for every job and stops both pools (they are made again on
    the next fork). For tests, and for programs that want their workers
    gone before they go on."""
    with _lock:
        pools = [_state["processes"], _state["threads"]]
        _state["processes"] = _state["threads"] = None
    for pool in pools:
        if pool is not None:
            pool.shutdown(wait=wait)


# Every job of this process not finished yet: waited for at exit, before the
# pools shut down (a thread job may still fork a process job then).
# A list pruned of finished jobs as it doubles: cheaper per fork() than a
# done-callback per job.
_unfinished = []
_unfinished_lock = threading.Lock()
_prune_at = 1024


def _track(future):
    global _prune_at
    with _unfinished_lock:
        _unfinished.append(future)
        if len(_unfinished) >= _prune_at:
            _unfinished[:] = [f for f in _unfinished if not f.done()]
            _prune_at = max(1024, 2 * len(_unfinished))


def _finish_at_exit():
    if _interrupted():
        return  # Ctrl-C: the executors' hook terminates the workers
    while True:
        pending = [f for f in list(_unfinished) if not f.done()]
        if not pending:
            return
        _cf.wait(pending)


try:
    # Runs before the executors' own exit hook, registered earlier.
    threading._register_atexit(_finish_at_exit)
except AttributeError:  # pragma: no cover
    import atexit
    atexit.register(_finish_at_exit)


def _wrapper(fn):
    try:
        w = _wrappers.get(fn)
    except TypeError:  # unhashable callable
        return _LazyCall(fn)
    if w is None:
        w = _wrappers[fn] = _LazyCall(fn)
    return w


def _arg_proxies(values):
    """The proxies among values, also one level down in plain containers
    (what a process job cannot receive before they are evaluated)."""
    out = []
    for a in values:
        t = type(a)
        if t is ResultProxy:
            out.append(a)
        elif t is list or t is tuple:
            out.extend(x for x in a if type(x) is ResultProxy)
        elif t is dict:
            out.extend(x for x in a.values() if type(x) is ResultProxy)
    return out


def _resolve_arg(a):
    t = type(a)
    if t is ResultProxy:
        return a._fq_evaluate(None)
    if t is list or t is tuple:
        if any(type(x) is ResultProxy for x in a):
            return t(_resolve_arg(x) for x in a)
    elif t is dict:
        if any(type(x) is ResultProxy for x in a.values()):
            return {k: _resolve_arg(v) for k, v in a.items()}
    return a


def _copy_outcome(src, dst):
    try:
        if src.cancelled():
            dst.set_exception(_cf.CancelledError())
        elif src.exception() is not None:
            dst.set_exception(src.exception())
        else:
            dst.set_result(src.result())
    except _cf.InvalidStateError:
        pass


def _submit_after(engine, w, args, kwargs, proxies):
    """A process job whose arguments hold proxies not ready yet: sent when
    they are (from the callback of the last one), so fork() stays lazy.
    Returns the future of its outcome."""
    outer = _LazyFuture()
    outer.set_running_or_notify_cancel()
    pending = set()
    for p in proxies:
        pending.update(p._fq_pending_futures())
    left = [len(pending)]
    lock = threading.Lock()

    def launch():
        try:
            a = tuple(_builtin_map(_resolve_arg, args))
            kw = {k: _resolve_arg(v) for k, v in kwargs.items()} \
                if kwargs else kwargs
            inner = engine.submit(w, a, kw, None, _LazyFuture())
        except BaseException as e:  # an argument failed, or the pool shut
            try:
                outer.set_exception(e)
            except _cf.InvalidStateError:
                pass
            return
        inner.add_done_callback(lambda f: _copy_outcome(f, outer))

    def one_ready(_):
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            launch()

    if not pending:
        launch()
    for f in pending:
        f.add_done_callback(one_ready)
    return outer


def _submit(kind, fn, args, kwargs, frame):
    if not callable(fn):
        raise TypeError(f"fork() needs a callable, not {type(fn).__name__}")
    site = _site(frame)
    w = _wrapper(fn)
    if kind == "processes":
        # The engine directly: a job's own `timeout` keyword stays its own.
        engine = _pool(kind)._engine
        proxies = _arg_proxies(args)
        if kwargs:
            proxies += _arg_proxies(kwargs.values())
        if proxies:
            future = _submit_after(engine, w, args, kwargs, proxies)
        else:
            future = engine.submit(w, args, kwargs, None, _LazyFuture())
    else:
        future = _pool(kind).submit(w, *args, **kwargs)
    _track(future)
    p = ResultProxy._leaf(future, site)
    forks = _local.forks
    if forks is not None:
        forks.append(p)
    return p
