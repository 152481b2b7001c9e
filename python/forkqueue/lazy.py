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

import concurrent.futures as _cf
import sys
import time

from ._lazy_dispatch import (_pool, _shutdown, _state, _submit,  # noqa: F401
                             _unfinished, configure)
from ._lazy_errors import ResultEvaluationError
from ._lazy_proxy import ResultProxy

# Tracebacks and type() name the public module: forkqueue.lazy.ResultProxy.
ResultProxy.__module__ = ResultEvaluationError.__module__ = __name__

__all__ = [
    "fork", "submit", "go", "process", "thread",
    "map", "map_process", "map_thread",
    "block_map", "block_map_process", "block_map_thread",
    "evaluate", "await_", "await_all", "await_any",
    "cpu_bound", "io_bound",
    "ResultProxy", "ResultEvaluationError",
]


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
