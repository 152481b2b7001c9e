"""Lazy results: from a sequential program to a parallel one by wrapping calls.

``fork(f, *args, **kwargs)`` starts ``f`` in the background and returns at
once a ``ResultProxy``: an object that behaves like the value ``f`` will
return. Using the proxy (printing it, comparing it, indexing it, calling a
method on it) waits for the value. Arithmetic and bitwise operators on
proxies do not wait: they return new proxies, so ``total += fork(f, x)`` in
a loop runs every call in parallel and only ``print(total)`` waits.

Functions run in forked worker processes (the ``forkqueue`` engine, shared
with ``forkqueue.futures.Executor``), except those marked ``@io_bound``,
which run in a thread pool. The API follows the ``fork`` module of the
xfork project, on current Python: ``evaluate()`` is the original
``await()`` (``await`` is a keyword now).
"""

import asyncio
import concurrent.futures as _cf
import linecache
import math
import operator
import os
import sys
import threading
import time
import traceback

from ._executor import Executor, _interrupted, default_workers

__all__ = [
    "fork", "submit", "go", "process", "thread",
    "map", "map_process", "map_thread",
    "block_map", "block_map_process", "block_map_thread",
    "evaluate", "await_", "await_all", "await_any",
    "cpu_bound", "io_bound",
    "ResultProxy", "ResultEvaluationError",
]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_builtin_map = map


# ---- errors ------------------------------------------------------------------

class ResultEvaluationError(Exception):
    """A job failed, or a lazy operator on its result did. Raised when the
    proxy is evaluated. The message is an ``Original Traceback`` block: the
    frames of the submission site (where ``fork()`` or the operator was
    called), then those of the job, then the original ``Type: message``
    line. ``original`` is the original exception when it could be carried
    over (None otherwise)."""

    def __init__(self, frames, exc_line, original=None):
        self.frames = frames
        self.exc_line = exc_line
        self.original = original
        super().__init__("Original Traceback (most recent call last):\n"
                         + frames + exc_line.rstrip("\n"))

    def __reduce__(self):
        return (ResultEvaluationError, (self.frames, self.exc_line, None))


_site_cache = (None, 0, ())


def _site(frame):
    """The call stack from `frame` outwards, as (file, line, function),
    outermost first, without this package's own frames. Cheap: no source
    lines are read until the site is formatted, and the outer part is
    reused while the caller's caller stays where it was (a loop of
    operators or forks pays for one frame, not for the whole stack)."""
    global _site_cache
    back = frame.f_back
    cached_back, cached_line, outer = _site_cache
    if back is None or cached_back is not back or \
            cached_line != back.f_lineno:
        rest = []
        f = back
        while f is not None:
            code = f.f_code
            if not code.co_filename.startswith(_PKG_DIR):
                rest.append((code.co_filename, f.f_lineno, code.co_name))
            f = f.f_back
        rest.reverse()
        outer = tuple(rest)
        if back is not None:
            _site_cache = (back, back.f_lineno, outer)
    code = frame.f_code
    if code.co_filename.startswith(_PKG_DIR):
        return outer
    return outer + ((code.co_filename, frame.f_lineno, code.co_name),)


def _format_site(site):
    parts = []
    for filename, lineno, name in site:
        parts.append(f'  File "{filename}", line {lineno}, in {name}\n')
        line = linecache.getline(filename, lineno).strip()
        if line:
            parts.append(f"    {line}\n")
    return "".join(parts)


def _exc_line(e):
    return "".join(traceback.format_exception_only(type(e), e))


def _error_of(e, site, tb):
    """The ResultEvaluationError for exception e raised under traceback
    tb, in a job (or an operator) submitted at `site`."""
    frames = _format_site(site)
    if tb is not None:
        # Formatted as the submission site is (no carets, which differ
        # between Python versions).
        frames += _format_site(
            [(fs.filename, fs.lineno, fs.name)
             for fs in traceback.extract_tb(tb, limit=None)
             if not fs.filename.startswith(_PKG_DIR)])
    if isinstance(e, ResultEvaluationError):
        # A nested proxy failed inside the job: its block continues ours.
        return ResultEvaluationError(frames + e.frames, e.exc_line,
                                     e.original)
    return ResultEvaluationError(frames, _exc_line(e), e)


# ---- what runs in the workers ---------------------------------------------------

_local = threading.local()


class _Failed:
    """A job's failure, travelling as its (successful) result."""

    __slots__ = ("frames", "exc_line", "original")

    def __init__(self, frames, exc_line, original):
        self.frames = frames
        self.exc_line = exc_line
        self.original = original

    def __reduce__(self):
        import pickle
        original = self.original
        try:
            pickle.loads(pickle.dumps(original))
        except Exception:
            original = None
        return (_Failed, (self.frames, self.exc_line, original))


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
        outer = getattr(_local, "forks", None)
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


# ---- the pools ---------------------------------------------------------------

_lock = threading.Lock()
_state = {"pid": None, "processes": None, "threads": None,
          "nprocesses": None, "nthreads": None}
_wrappers = {}


def _after_fork_in_child():
    # The pools of the parent do not exist here (their threads are gone).
    global _lock
    _lock = threading.Lock()
    _unfinished.clear()
    _state["processes"] = _state["threads"] = None
    _state["pid"] = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _pool(kind):
    pool = _state[kind]
    if pool is not None and _state["pid"] == os.getpid():
        return pool
    with _lock:
        if _state["pid"] != os.getpid():
            _state["processes"] = _state["threads"] = None
            _state["pid"] = os.getpid()
        pool = _state[kind]
        if pool is None:
            if kind == "processes":
                pool = Executor(_state["nprocesses"] or default_workers())
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
_unfinished = set()


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
    outer = _cf.Future()
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
            inner = engine.submit(w, a, kw)
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
            future = engine.submit(w, args, kwargs)
    else:
        future = _pool(kind).submit(w, *args, **kwargs)
    _unfinished.add(future)
    future.add_done_callback(_unfinished.discard)
    p = ResultProxy._leaf(future, site)
    forks = getattr(_local, "forks", None)
    if forks is not None:
        forks.append(p)
    return p


def _kind_of(fn):
    kind = getattr(fn, "_forkqueue_lazy", None)
    if kind is None:
        try:
            kind = _marks.get(fn)
        except TypeError:
            kind = None
    return "threads" if kind == "io" else "processes"


_marks = {}


def _mark(fn, kind):
    try:
        fn._forkqueue_lazy = kind
    except (AttributeError, TypeError):
        _marks[fn] = kind
    return fn


def cpu_bound(fn):
    """Decorator: ``fork(fn, ...)`` runs fn in a process (the default).
    Returns fn itself, still directly callable."""
    return _mark(fn, "cpu")


def io_bound(fn):
    """Decorator: ``fork(fn, ...)`` runs fn in a thread. Returns fn
    itself, still directly callable."""
    return _mark(fn, "io")


def fork(callable, *args, **kwargs):
    """Starts ``callable(*args, **kwargs)`` in the background and returns a
    ResultProxy for its value: in a process, or in a thread if the callable
    is marked ``@io_bound``. Callable from any thread, and from inside a
    job (cascading forks)."""
    return _submit(_kind_of(callable), callable, args, kwargs,
                   sys._getframe(1))


submit = fork
go = fork


def process(callable, *args, **kwargs):
    """Like ``fork()``, always in a process."""
    return _submit("processes", callable, args, kwargs, sys._getframe(1))


def thread(callable, *args, **kwargs):
    """Like ``fork()``, always in a thread."""
    return _submit("threads", callable, args, kwargs, sys._getframe(1))


def _map(kind, callable, iterables, frame):
    if not iterables:
        raise TypeError("map() needs at least one iterable")
    k = _kind_of(callable) if kind is None else kind
    return [_submit(k, callable, args, {}, frame)
            for args in zip(*iterables)]


def map(callable, *iterables):
    """``[fork(callable, *args) for args in zip(*iterables)]``: a list of
    proxies, one per item."""
    return _map(None, callable, iterables, sys._getframe(1))


def map_process(callable, *iterables):
    """Like ``map()``, always in processes."""
    return _map("processes", callable, iterables, sys._getframe(1))


def map_thread(callable, *iterables):
    """Like ``map()``, always in threads."""
    return _map("threads", callable, iterables, sys._getframe(1))


def _block_args(timeout, iterables):
    # block_map(f, items) as in xfork's documentation: no timeout given.
    if not iterables and timeout is not None and not isinstance(
            timeout, (int, float)):
        return None, (timeout,)
    return timeout, iterables


def block_map(callable, timeout=None, *iterables):
    """``await_all(map(callable, *iterables), timeout)``: the values, in
    input order. Note that ``timeout`` comes second."""
    timeout, iterables = _block_args(timeout, iterables)
    return await_all(_map(None, callable, iterables, sys._getframe(1)),
                     timeout)


def block_map_process(callable, timeout=None, *iterables):
    """Like ``block_map()``, always in processes."""
    timeout, iterables = _block_args(timeout, iterables)
    return await_all(_map("processes", callable, iterables,
                          sys._getframe(1)), timeout)


def block_map_thread(callable, timeout=None, *iterables):
    """Like ``block_map()``, always in threads."""
    timeout, iterables = _block_args(timeout, iterables)
    return await_all(_map("threads", callable, iterables,
                          sys._getframe(1)), timeout)


def evaluate(result_proxy, timeout=None):
    """The value behind a proxy (waiting for it; ``TimeoutError`` after
    ``timeout`` seconds). Anything that is not a proxy is returned as it
    is. Raises ``ResultEvaluationError`` if the job failed."""
    if type(result_proxy) is not ResultProxy:
        return result_proxy
    return result_proxy._fq_evaluate(
        None if timeout is None else time.monotonic() + timeout)


await_ = evaluate
globals()["await"] = evaluate  # getattr(module, "await"), as in xfork


def await_all(result_proxies, timeout=None):
    """The values of all proxies, in input order (``TimeoutError`` if they
    are not all ready within ``timeout`` seconds)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    return [p._fq_evaluate(deadline) if type(p) is ResultProxy else p
            for p in list(result_proxies)]


def await_any(result_proxies, timeout=None):
    """Waits until at least one proxy is ready; returns the ready ones
    (proxies whose job and operators are all done), in input order.
    ``TimeoutError`` if none is ready within ``timeout`` seconds."""
    proxies = list(result_proxies)
    if not proxies:
        return []
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready = [p for p in proxies
                 if type(p) is not ResultProxy or p._fq_ready()]
        if ready:
            return ready
        pending = set()
        for p in proxies:
            pending.update(p._fq_pending_futures())
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError(f"none of {len(proxies)} results is ready "
                               f"after {timeout} s")
        _cf.wait(pending, left, return_when=_cf.FIRST_COMPLETED)


# ---- the proxy -----------------------------------------------------------------

_LEAF, _OP, _DONE, _FAILED = 0, 1, 2, 3


class ResultProxy:
    """Stands for the value of a job or of a lazy operation on proxies.
    Every use but binary operators evaluates it and acts on the value."""

    __slots__ = ("_fq_kind", "_fq_a", "_fq_b", "_fq_op", "_fq_site",
                 "__weakref__")

    @classmethod
    def _leaf(cls, future, site):
        p = object.__new__(cls)
        object.__setattr__(p, "_fq_kind", _LEAF)
        object.__setattr__(p, "_fq_a", future)
        object.__setattr__(p, "_fq_b", None)
        object.__setattr__(p, "_fq_op", None)
        object.__setattr__(p, "_fq_site", site)
        return p

    @classmethod
    def _node(cls, op, a, b, frame):
        p = object.__new__(cls)
        object.__setattr__(p, "_fq_kind", _OP)
        object.__setattr__(p, "_fq_a", a)
        object.__setattr__(p, "_fq_b", b)
        object.__setattr__(p, "_fq_op", op)
        object.__setattr__(p, "_fq_site", _site(frame))
        return p

    # -- evaluation ---------------------------------------------------------

    def _fq_set(self, kind, value):
        object.__setattr__(self, "_fq_a", value)
        object.__setattr__(self, "_fq_b", None)
        object.__setattr__(self, "_fq_op", None)
        object.__setattr__(self, "_fq_kind", kind)

    def _fq_evaluate(self, deadline):
        """The value (iteratively: a chain of any length is fine)."""
        stack = [self]
        while stack:
            node = stack[-1]
            kind = node._fq_kind
            if kind == _DONE or kind == _FAILED:
                stack.pop()
            elif kind == _LEAF:
                node._fq_wait_leaf(deadline)
                stack.pop()
            else:
                a, b = node._fq_a, node._fq_b
                pushed = False
                for child in (b, a):
                    if type(child) is ResultProxy and child._fq_kind not in (
                            _DONE, _FAILED):
                        stack.append(child)
                        pushed = True
                if not pushed:
                    node._fq_compute()
                    stack.pop()
        if self._fq_kind == _FAILED:
            raise self._fq_a
        return self._fq_a

    def _fq_wait_leaf(self, deadline):
        future = self._fq_a
        try:
            if deadline is None:
                value = future.result()
            else:
                value = future.result(max(0.0, deadline - time.monotonic()))
        except (_cf.TimeoutError, TimeoutError):
            if future.done():
                raise
            raise TimeoutError("the job's result is not ready after the "
                               "timeout") from None
        except Exception as e:
            # The job did not run to its end: it crashed, or was cancelled.
            self._fq_set(_FAILED, _error_of(e, self._fq_site, None))
            return
        if type(value) is _Failed:
            self._fq_set(_FAILED, ResultEvaluationError(
                _format_site(self._fq_site) + value.frames, value.exc_line,
                value.original))
        else:
            self._fq_set(_DONE, value)

    def _fq_compute(self):
        a, b = self._fq_a, self._fq_b
        if type(a) is ResultProxy:
            if a._fq_kind == _FAILED:
                return self._fq_set(_FAILED, a._fq_a)
            a = a._fq_a
        if type(b) is ResultProxy:
            if b._fq_kind == _FAILED:
                return self._fq_set(_FAILED, b._fq_a)
            b = b._fq_a
        try:
            value = self._fq_op(a, b)
        except Exception as e:
            return self._fq_set(_FAILED, _error_of(e, self._fq_site, None))
        self._fq_set(_DONE, value)

    def _fq_ready(self):
        """True if evaluating would not wait."""
        stack = [self]
        while stack:
            node = stack.pop()
            kind = node._fq_kind
            if kind == _LEAF and not node._fq_a.done():
                return False
            if kind == _OP:
                for child in (node._fq_a, node._fq_b):
                    if type(child) is ResultProxy:
                        stack.append(child)
        return True

    def _fq_pending_futures(self):
        out = []
        stack = [self]
        while stack:
            node = stack.pop()
            kind = node._fq_kind
            if kind == _LEAF and not node._fq_a.done():
                out.append(node._fq_a)
            elif kind == _OP:
                for child in (node._fq_a, node._fq_b):
                    if type(child) is ResultProxy:
                        stack.append(child)
        return out

    def __await__(self):
        while True:
            pending = self._fq_pending_futures()
            if not pending:
                return self._fq_evaluate(None)
            yield from asyncio.wait(
                [asyncio.wrap_future(f) for f in pending]).__await__()

    # -- transparency ---------------------------------------------------------

    @property
    def __class__(self):
        return type(self._fq_evaluate(None))

    def __getattr__(self, name):
        if name.startswith("_fq_"):
            raise AttributeError(name)
        return getattr(self._fq_evaluate(None), name)

    def __setattr__(self, name, value):
        setattr(self._fq_evaluate(None), name, value)

    def __delattr__(self, name):
        delattr(self._fq_evaluate(None), name)

    def __dir__(self):
        return dir(self._fq_evaluate(None))

    def __reduce__(self):
        if threading.current_thread().name.startswith("forkqueue-") and \
                not self._fq_ready():
            raise TypeError("a result proxy that is not ready cannot be "
                            "sent to a job; evaluate it first")
        return (_identity, (self._fq_evaluate(None),))

    def __reduce_ex__(self, protocol):
        return self.__reduce__()


def _identity(x):
    return x


def _value(x):
    return x._fq_evaluate(None) if type(x) is ResultProxy else x


def _forward(name, fn):
    def method(self, *args):
        return fn(self._fq_evaluate(None), *_builtin_map(_value, args))
    method.__name__ = name
    method.__qualname__ = "ResultProxy." + name
    return method


def _call(self, *args, **kwargs):
    return self._fq_evaluate(None)(*args, **kwargs)


def _exit(self, *args):
    return self._fq_evaluate(None).__exit__(*args)


def _contains(container, item):
    return item in container


# Everything that uses the value: evaluate, then do what the value does.
_USES = {
    "__str__": str, "__repr__": repr, "__format__": format,
    "__bytes__": bytes, "__bool__": bool, "__hash__": hash,
    "__len__": len, "__iter__": iter, "__reversed__": reversed,
    "__contains__": _contains, "__getitem__": operator.getitem,
    "__setitem__": operator.setitem, "__delitem__": operator.delitem,
    "__lt__": operator.lt, "__le__": operator.le, "__eq__": operator.eq,
    "__ne__": operator.ne, "__gt__": operator.gt, "__ge__": operator.ge,
    "__neg__": operator.neg, "__pos__": operator.pos,
    "__invert__": operator.invert, "__abs__": abs, "__int__": int,
    "__float__": float, "__complex__": complex, "__index__": operator.index,
    "__round__": round, "__trunc__": math.trunc, "__floor__": math.floor,
    "__ceil__": math.ceil, "__next__": next, "__fspath__": os.fspath,
    "__enter__": lambda v: v.__enter__(), "__sizeof__": sys.getsizeof,
    "__aiter__": lambda v: v.__aiter__(), "__anext__": lambda v: v.__anext__(),
}
for _name, _fn in _USES.items():
    setattr(ResultProxy, _name, _forward(_name, _fn))
ResultProxy.__call__ = _call
ResultProxy.__exit__ = _exit

# Binary operators stay lazy, on both sides: a new proxy for op(a, b).
_BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "matmul": operator.matmul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "divmod": divmod,
    "pow": operator.pow, "lshift": operator.lshift,
    "rshift": operator.rshift, "and": operator.and_, "xor": operator.xor,
    "or": operator.or_,
}


def _lazy(op):
    def method(self, other):
        return ResultProxy._node(op, self, other, sys._getframe(1))
    return method


def _rlazy(op):
    def method(self, other):
        return ResultProxy._node(op, other, self, sys._getframe(1))
    return method


for _name, _op in _BINARY.items():
    setattr(ResultProxy, f"__{_name}__", _lazy(_op))
    setattr(ResultProxy, f"__r{_name}__", _rlazy(_op))
del _name, _op, _fn
