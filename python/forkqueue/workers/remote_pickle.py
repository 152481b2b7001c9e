"""Pickling for the network: ``__getstate__(self, remote=False)``.

Objects whose class defines ``__getstate__`` with a ``remote`` parameter
(`SupportRemoteGetState` classes; no base class needed) are pickled by
`Pickler`/`dumps` with ``__getstate__(remote=True)``, so that a class can
leave out or replace what makes no sense on another machine (sockets,
locks, open files). Everything else pickles as with `pickle`.

``loads(data, extra_kwargs)`` patches the state of such objects as they
are rebuilt, before their ``__setstate__`` runs: ``extra_kwargs`` updates
the top-level object's state; a value that is a dict, under the name of an
attribute holding another such object, patches that object's state
(recursively).
"""
import inspect
import io
import pickle
import threading

from .utils import python_is_exactly  # noqa: F401 (pyworkers has it here)

__all__ = ["SupportRemoteGetState", "SupportRemoteGetStateMeta", "Pickler",
           "RemotePickler", "dump", "dumps", "load", "loads"]

_checked = {}
_plain = {int, float, str, bytes, bool, type(None), tuple, list, dict, set,
          frozenset, bytearray, complex}


def _supports(cls):
    """True if instances of ``cls`` are pickled with the remote getstate."""
    try:
        return _checked[cls]
    except KeyError:
        pass
    ok = False
    getstate = getattr(cls, "__getstate__", None)
    if (getstate is not None and isinstance(cls, type)
            and cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__reduce__ is object.__reduce__):
        try:
            ok = "remote" in inspect.signature(getstate).parameters
        except (TypeError, ValueError):
            ok = False
    _checked[cls] = ok
    return ok


class SupportRemoteGetStateMeta(type):
    """Metaclass of `SupportRemoteGetState`; classes made with it (or
    deriving from it) that support the remote ``__getstate__`` are listed
    in ``supported_classes`` (a list shared by all of them)."""

    supported_classes = []

    def __init__(cls, name, bases, namespace):
        super().__init__(name, bases, namespace)
        if _supports(cls) and cls not in cls.supported_classes:
            cls.supported_classes.append(cls)

    def __subclasscheck__(cls, sub):
        if cls is SupportRemoteGetState:
            return isinstance(sub, type) and _supports(sub)
        return super().__subclasscheck__(sub)

    def __instancecheck__(cls, inst):
        return cls.__subclasscheck__(type(inst))


class SupportRemoteGetState(metaclass=SupportRemoteGetStateMeta):
    """``issubclass(C, SupportRemoteGetState)`` is True for any class whose
    ``__getstate__`` takes ``remote``; deriving from it is optional."""


class _Child:
    """Dump side: marks an attribute holding a remote-aware object, so that
    loading knows which patches apply to it."""
    __slots__ = ("key", "value")

    def __init__(self, key, value):
        self.key, self.value = key, value


class _Box:
    __slots__ = ("value",)


_tls = threading.local()


def _rebuild(cls):
    return cls.__new__(cls)


def _enter_child(key):
    path = getattr(_tls, "path", None)
    if path is not None:
        path.append(key)
    return _Box()


def _exit_child(box, value):
    box.value = value
    path = getattr(_tls, "path", None)
    if path:
        path.pop()


def _patches():
    patches = getattr(_tls, "patches", None)
    if not patches:
        return None
    for key in _tls.path:
        patches = patches.get(key) if isinstance(patches, dict) else None
        if not patches:
            return None
    return patches if isinstance(patches, dict) else None


def _setstate(obj, state):
    if isinstance(state, dict):
        state = {k: (v.value if type(v) is _Box else v)
                 for k, v in state.items()}
        patches = _patches()
        if patches:
            for k, v in patches.items():
                if (isinstance(v, dict) and k in state
                        and _supports(type(state[k]))):
                    continue  # patches of that nested object, applied to it
                state[k] = v
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
    elif isinstance(state, tuple) and len(state) == 2:
        d, slots = state
        if d:
            obj.__dict__.update(d)
        for k, v in (slots or {}).items():
            setattr(obj, k, v)
    elif state:
        obj.__dict__.update(state)


class Pickler(pickle.Pickler):
    """A `pickle.Pickler` that calls ``__getstate__(remote=...)`` on
    classes supporting it (``remote=True`` by default)."""

    def __init__(self, *args, remote=True, **kwargs):
        super().__init__(*args, **kwargs)
        self._remote = remote

    @staticmethod
    def subject_to_custom_reduce(obj):
        """True if ``obj`` is pickled with ``__getstate__(remote=...)``."""
        return _supports(type(obj))

    def reducer_override(self, obj):
        cls = type(obj)
        if cls in _plain or isinstance(obj, type):
            return NotImplemented
        if cls is _Child:
            return (_enter_child, (obj.key,), obj.value, None, None,
                    _exit_child)
        if not _supports(cls):
            return NotImplemented
        return self.remote_reduce(obj)

    def remote_reduce(self, obj):
        """The reduce tuple of a remote-aware ``obj``: its class, and the
        state from ``obj.__getstate__(remote=<this pickler's remote>)``,
        rebuilt by `loads` (which applies ``extra_kwargs``)."""
        cls = type(obj)
        state = obj.__getstate__(remote=self._remote)
        if isinstance(state, dict):
            state = {k: (_Child(k, v) if _supports(type(v))
                         and not isinstance(v, type) else v)
                     for k, v in state.items()}
        return (_rebuild, (cls,), state, None, None, _setstate)


def dump(obj, file, protocol=None, remote=True, **kwargs):
    Pickler(file, protocol, remote=remote, **kwargs).dump(obj)


def dumps(obj, protocol=None, remote=True, **kwargs):
    """Pickles ``obj``, calling ``__getstate__(remote=remote)`` where
    supported."""
    buf = io.BytesIO()
    Pickler(buf, protocol, remote=remote, **kwargs).dump(obj)
    return buf.getvalue()


def _load_with(fn, arg, extra_kwargs, kwargs):
    old = (getattr(_tls, "patches", None), getattr(_tls, "path", None))
    _tls.patches, _tls.path = (extra_kwargs or None), []
    try:
        return fn(arg, **kwargs)
    finally:
        _tls.patches, _tls.path = old


def load(file, extra_kwargs=None, **kwargs):
    return _load_with(pickle.load, file, extra_kwargs, kwargs)


def loads(buff, extra_kwargs=None, **kwargs):
    """Unpickles ``buff``; ``extra_kwargs`` patches the state of
    remote-aware objects as they are rebuilt (see the module's doc)."""
    return _load_with(pickle.loads, buff, extra_kwargs, kwargs)


#: pyworkers' name of `Pickler`
RemotePickler = Pickler


# pyworkers' longer names for the same four functions
remote_dump = dump
remote_dumps = dumps
remote_load = load
remote_loads = loads
