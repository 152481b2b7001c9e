"""A server process for managed objects, on ``multiprocessing.managers``.

:class:`ServerProcess` is a ``BaseManager``: the standard library's server,
protocol, proxies and reference counting do the work. What this module
adds:

- an exception raised by a method in the server reaches the caller with its
  own type and the server's traceback as a :class:`RemoteTraceback` cause;
- ``register`` refuses to replace a registration (``ValueError``);
- proxies keep the object alive while they travel: pickling a proxy holds a
  reference until it is rebuilt on the other side, so a server method may
  return proxies, even nested in plain data (:func:`managed` and the
  ``managed_*`` helpers), and proxies may be passed around freely;
- ``name=`` and ``cpu=`` for the server process, and a manager object that
  can be pickled (to a child: it connects to the same server);
- shared memory: ``manager.MemoryBlock(size)`` gives a
  :class:`MemoryBlockProxy` whose ``buf`` maps the server's block here.
"""

import functools
import os
import threading
import weakref
from multiprocessing import current_process, get_context
from multiprocessing import managers as _m
from multiprocessing.context import get_spawning_popen
from multiprocessing.managers import Array, Namespace, State, Token, Value, dispatch

from .._memblock import MemoryBlock
from .._remote_exc import RemoteException

__all__ = [
    "ServerProcess", "BaseProxy", "AutoProxy", "MemoryBlock",
    "MemoryBlockProxy", "managed", "managed_list", "managed_dict",
    "managed_value", "managed_array", "managed_namespace",
    "managed_iterator", "managed_memoryblock",
]


# ---- the server ------------------------------------------------------------

class _ErrorsWithTraceback:
    """A connection whose outgoing '#ERROR' replies carry the server's
    traceback (the standard server sends the bare exception)."""

    def __init__(self, conn):
        self._conn = conn

    def send(self, msg):
        if (type(msg) is tuple and len(msg) == 2 and msg[0] == "#ERROR"
                and isinstance(msg[1], BaseException)
                and msg[1].__traceback__ is not None):
            msg = ("#ERROR", RemoteException(msg[1]))
        self._conn.send(msg)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _Server(_m.Server):
    def __init__(self, registry, address, authkey, serializer):
        super().__init__(registry, address, authkey, serializer)
        self.serializer = serializer

    def serve_client(self, conn):
        return super().serve_client(_ErrorsWithTraceback(conn))


def _server_init(name, cpu, initializer, initargs):
    if name:
        current_process().name = name
    if cpu is not None:
        os.sched_setaffinity(0, [cpu] if isinstance(cpu, int) else list(cpu))
    if initializer is not None:
        initializer(*initargs)


def _rebuild_manager(cls, address, authkey, serializer):
    mgr = cls(address, authkey, serializer)
    mgr.connect()
    return mgr


class ServerProcess(_m.BaseManager):
    """A process serving objects to proxies (a ``multiprocessing``
    ``BaseManager``; use it as a context manager, or ``start()`` and
    ``shutdown()``).

    Register a type with :meth:`register`, then ``manager.TypeName(...)``
    creates an instance in the server and returns a proxy exposing its
    public methods. ``name`` names the server process, ``cpu`` (an int or a
    list of ints) pins it to those CPUs. ``ctx`` defaults to the fork
    context.
    """

    _Server = _Server

    def __init__(self, address=None, authkey=None, serializer="pickle", ctx=None,
                 *, name=None, cpu=None, **kwargs):
        super().__init__(address=address, authkey=authkey, serializer=serializer,
                         ctx=ctx or get_context("fork"), **kwargs)
        self._name = name
        self._cpu = cpu

    def start(self, initializer=None, initargs=()):
        """Starts the server process."""
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        super().start(_server_init, (self._name, self._cpu, initializer, tuple(initargs)))
        if self._name:
            self._process.name = self._name

    def __reduce__(self):
        # A copy connects to the running server (authkey travels only to a
        # child being spawned; elsewhere the process's own key is used, the
        # one the whole process family shares).
        authkey = bytes(self._authkey) if get_spawning_popen() is not None else None
        return (_rebuild_manager, (type(self), self._address, authkey, self._serializer))

    @classmethod
    def register(cls, typeid, callable=None, proxytype=None, *, method_to_typeid=None,
                 create_method=True, exposed=None):
        """Makes ``manager.<typeid>(*args, **kwargs)`` create
        ``callable(*args, **kwargs)`` in the server and return a proxy
        (``proxytype``, by default one exposing every public method).
        Registering a typeid again raises ``ValueError``."""
        if typeid in cls._registry:
            raise ValueError(f"typeid {typeid!r} is already registered")
        super().register(typeid, callable=callable,
                         proxytype=proxytype if proxytype is not None else AutoProxy,
                         exposed=exposed, method_to_typeid=method_to_typeid,
                         create_method=create_method)

    @classmethod
    def unregister(cls, typeid):
        """Removes a registration (of this class)."""
        if "_registry" not in cls.__dict__:
            cls._registry = cls._registry.copy()
        del cls._registry[typeid]
        if create_method := cls.__dict__.get(typeid):
            if callable(create_method):
                delattr(cls, typeid)


# ---- proxies ---------------------------------------------------------------

class _RegistryOnly:
    """Stands in for the manager of a proxy rebuilt from a pickle, for the
    one thing the standard proxy asks of it: the registry."""
    _state = None
    _registry = property(lambda self: ServerProcess._registry)
    _authkey = property(lambda self: current_process().authkey)


def _send_ref(proxy, op):
    conn = proxy._Client(proxy._token.address, authkey=proxy._authkey)
    try:
        dispatch(conn, None, op, (proxy._id,))
    finally:
        conn.close()


class BaseProxy(_m.BaseProxy):
    """A proxy that holds a reference for every copy of itself in flight:
    pickling increments the referent's count, rebuilding decrements it once
    the new proxy holds its own."""

    def __init__(self, token, serializer, manager=None, authkey=None, exposed=None,
                 incref=True, manager_owned=False):
        super().__init__(token, serializer, manager=manager or _RegistryOnly(),
                         authkey=authkey, exposed=exposed, incref=incref,
                         manager_owned=False)

    def __reduce__(self):
        _send_ref(self, "incref")
        kwds = {}
        if get_spawning_popen() is not None or getattr(current_process(), "_manager_server", None):
            kwds["authkey"] = bytes(self._authkey)
        kwds.update(self._fq_extra())
        if getattr(self, "_isauto", False):
            kwds["exposed"] = self._exposed_
            return (_rebuild_proxy, (AutoProxy, self._token, self._serializer, kwds))
        return (_rebuild_proxy, (type(self), self._token, self._serializer, kwds))

    def _fq_extra(self):
        return {}


def _rebuild_proxy(func, token, serializer, kwds):
    proxy = func(token, serializer, incref=True, **kwds)
    _send_ref(proxy, "decref")  # the reference the pickled copy held
    return proxy


def _make_proxy_type(name, exposed, _cache={}):
    exposed = tuple(exposed)
    try:
        return _cache[(name, exposed)]
    except KeyError:
        pass
    ns = {}
    for meth in exposed:
        def method(self, /, *args, _name=meth, **kwds):
            return self._callmethod(_name, args, kwds)
        method.__name__ = meth
        ns[meth] = method
    ptype = type(name, (BaseProxy,), ns)
    ptype._exposed_ = exposed
    _cache[(name, exposed)] = ptype
    return ptype


def AutoProxy(token, serializer, manager=None, authkey=None, exposed=None,
              incref=True, manager_owned=False):
    """A proxy exposing the referent's public methods (the default proxy
    type of :meth:`ServerProcess.register`)."""
    if exposed is None:
        conn = _m.listener_client[serializer][1](token.address, authkey=authkey)
        try:
            exposed = dispatch(conn, None, "get_methods", (token,))
        finally:
            conn.close()
    if authkey is None and manager is not None:
        authkey = manager._authkey
    if authkey is None:
        authkey = current_process().authkey
    ptype = _make_proxy_type(f"AutoProxy[{token.typeid}]", exposed)
    proxy = ptype(token, serializer, manager=manager, authkey=authkey, incref=incref)
    proxy._isauto = True
    return proxy


class ListProxy(BaseProxy, _m.ListProxy):
    pass


class DictProxy(BaseProxy, _m.DictProxy):
    pass


class ValueProxy(BaseProxy, _m.ValueProxy):
    pass


class ArrayProxy(BaseProxy, _m.ArrayProxy):
    pass


class NamespaceProxy(BaseProxy, _m.NamespaceProxy):
    pass


class IteratorProxy(BaseProxy, _m.IteratorProxy):
    pass


class MemoryBlockProxy(BaseProxy):
    """Proxy of a :class:`MemoryBlock` living in the server: ``name``,
    ``size``, and ``buf``, a memoryview of the same memory mapped here (no
    copy). The block is freed when its last proxy is gone or the server
    stops."""

    _exposed_ = ("_name_size",)

    def __init__(self, *args, name=None, size=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._fq_name, self._fq_size = name, size
        self._fq_block = None

    def _fq_extra(self):
        self._fq_fetch()
        return {"name": self._fq_name, "size": self._fq_size}

    def _fq_fetch(self):
        if self._fq_name is None:
            self._fq_name, self._fq_size = self._callmethod("_name_size")

    @property
    def name(self) -> str:
        self._fq_fetch()
        return self._fq_name

    @property
    def size(self) -> int:
        self._fq_fetch()
        return self._fq_size

    @property
    def buf(self) -> memoryview:
        if self._fq_block is None:
            self._fq_fetch()
            self._fq_block = MemoryBlock._attach(self._fq_name, self._fq_size)
        return self._fq_block.buf

    def __str__(self):
        return f"<{type(self).__name__} {self.name!r} at {self._id}, size {self.size}>"


for _typeid, _call, _ptype in [
        ("list", list, ListProxy), ("dict", dict, DictProxy),
        ("Value", Value, ValueProxy), ("Array", Array, ArrayProxy),
        ("Namespace", Namespace, NamespaceProxy),
        ("MemoryBlock", MemoryBlock, MemoryBlockProxy)]:
    ServerProcess.register(_typeid, _call, _ptype)
for _typeid, _ptype in [
        ("Iterator", IteratorProxy), ("ManagedList", ListProxy),
        ("ManagedDict", DictProxy), ("ManagedValue", ValueProxy),
        ("ManagedArray", ArrayProxy), ("ManagedNamespace", NamespaceProxy),
        ("ManagedIterator", IteratorProxy), ("ManagedMemoryBlock", MemoryBlockProxy)]:
    ServerProcess.register(_typeid, None, _ptype, create_method=False)
del _typeid, _call, _ptype


# ---- proxies made inside the server ----------------------------------------

_managed_lock = threading.Lock()


def managed(obj, typeid=None):
    """Inside a method running in the server: a proxy for ``obj`` (which
    then lives in the server as long as some proxy of it does), to return
    to the caller, possibly nested in plain data. Outside a server process,
    ``obj`` itself."""
    server = getattr(current_process(), "_manager_server", None)
    if server is None:
        return obj
    registry = server.registry
    if typeid is None:
        name = type(obj).__name__
        typeid = "Managed" + name.title()  # as mpservice names it
        with _managed_lock:
            if typeid not in registry:
                ptype = registry[name][3] if name in registry else AutoProxy
                registry[typeid] = (None, getattr(ptype, "_exposed_", None), None, ptype)
    _callable, _exposed, _m2t, ptype = registry[typeid]
    ident, exposed = server.create(None, typeid, obj)  # holds one reference
    token = Token(typeid, server.address, ident)
    try:
        proxy = ptype(token, server.serializer, authkey=server.authkey,
                      exposed=exposed, incref=False)
    except TypeError:
        proxy = ptype(token, server.serializer, authkey=server.authkey, incref=False)
    # The reference create() took is this proxy's: released when it is
    # collected (after it was pickled, which holds one of its own).
    weakref.finalize(proxy, server.decref, None, ident)
    return proxy


managed_list = functools.partial(managed, typeid="ManagedList")
managed_dict = functools.partial(managed, typeid="ManagedDict")
managed_value = functools.partial(managed, typeid="ManagedValue")
managed_array = functools.partial(managed, typeid="ManagedArray")
managed_namespace = functools.partial(managed, typeid="ManagedNamespace")
managed_iterator = functools.partial(managed, typeid="ManagedIterator")
managed_memoryblock = functools.partial(managed, typeid="ManagedMemoryBlock")
