"""``ResultProxy`` of ``forkqueue.lazy``: a value to come, transparent to
every use (which evaluates it), lazy under binary operators (which build a
tree evaluated iteratively, so chains of any length are fine)."""

import asyncio
import concurrent.futures as _cf
import math
import operator
import os
import sys
import threading
import time

from ._lazy_errors import (ResultEvaluationError, _Failed, _error_of,
                           _format_site, _site)
from ._lazy_future import _LazyFuture

_builtin_map = map

_LEAF, _OP, _DONE, _FAILED = 0, 1, 2, 3


class ResultProxy:
    """Stands for the value of a job or of a lazy operation on proxies.
    Every use but binary operators evaluates it and acts on the value."""

    __slots__ = ("_fq_kind", "_fq_a", "_fq_b", "_fq_op", "_fq_site",
                 "__weakref__")

    # (The slots are written through their descriptors, bound once below:
    # __setattr__ is the value's, and object.__setattr__ costs twice as
    # much per proxy.)

    @classmethod
    def _leaf(cls, future, site):
        p = _new(cls)
        _set_kind(p, _LEAF)
        _set_a(p, future)
        _set_b(p, None)
        _set_op(p, None)
        _set_site(p, site)
        return p

    @classmethod
    def _node(cls, op, a, b, frame):
        p = _new(cls)
        _set_kind(p, _OP)
        _set_a(p, a)
        _set_b(p, b)
        _set_op(p, op)
        _set_site(p, _site(frame))
        return p

    # -- evaluation ---------------------------------------------------------

    def _fq_set(self, kind, value):
        _set_a(self, value)
        if self._fq_b is not None:
            _set_b(self, None)
        _set_kind(self, kind)

    def _fq_evaluate(self, deadline):
        """The value (iteratively: a chain of any length is fine)."""
        if self._fq_kind == _OP:
            self._fq_wait_last(deadline)
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

    def _fq_wait_last(self, deadline):
        """Waits for the last submitted process job of the tree first: the
        others are then mostly done, so that evaluating the tree in order
        wakes this thread about once instead of once per job."""
        last = None
        stack = [self]
        while stack:
            node = stack.pop()
            kind = node._fq_kind
            if kind == _LEAF:
                f = node._fq_a
                if type(f) is _LazyFuture and not f.done() and (
                        last is None or f._seq > last._seq):
                    last = f
            elif kind == _OP:
                for child in (node._fq_a, node._fq_b):
                    if type(child) is ResultProxy:
                        stack.append(child)
        if last is not None:
            last._wait(None if deadline is None
                       else max(0.0, deadline - time.monotonic()))

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


_new = object.__new__
_set_kind = ResultProxy._fq_kind.__set__
_set_a = ResultProxy._fq_a.__set__
_set_b = ResultProxy._fq_b.__set__
_set_op = ResultProxy._fq_op.__set__
_set_site = ResultProxy._fq_site.__set__


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


def _pow(self, other, modulo=None):
    # pow(proxy, e, m) has a third operand: evaluated at once, as the
    # three-argument form is a use of the values, not an operator.
    if modulo is None:
        return ResultProxy._node(operator.pow, self, other, sys._getframe(1))
    return pow(self._fq_evaluate(None), _value(other), _value(modulo))


def _rpow(self, other, modulo=None):
    if modulo is None:
        return ResultProxy._node(operator.pow, other, self, sys._getframe(1))
    return pow(_value(other), self._fq_evaluate(None), _value(modulo))


ResultProxy.__pow__ = _pow
ResultProxy.__rpow__ = _rpow
del _name, _op, _fn
