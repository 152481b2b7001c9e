"""Small helpers of the worker kinds, and the helpers pyworkers' ``utils``
module offers (same names, same behaviour) for programs that import them.

``classproperty`` makes ``is_thread``, ``worker_type`` and friends readable
on classes and on instances alike; ``foreign_raise`` delivers an exception
to another thread of this process (the cooperative stage of terminating a
thread worker).
"""
import ctypes
import inspect
import logging
import multiprocessing as mp
import platform
import queue
import sys
import threading
import time
from inspect import getfullargspec  # noqa: F401 (pyworkers has it here)

__all__ = ["classproperty", "staticproperty", "SupportClassPropertiesMeta",
           "get_hostname", "gettid", "foreign_raise", "cancel_foreign_raise",
           "STATUS", "DETAILS", "ABUSIVE", "BraceMessage",
           "BraceStyleAdapter", "get_logger", "PipeEndpoint", "Pipe",
           "Queue", "LocalPipe", "python_is_at_least", "python_is_exactly",
           "is_windows", "active_sleep", "active_wait", "LazyModule",
           "add_module_properties", "typename", "setproctitle",
           "setthreadtitle"]

#: Extra logging levels pyworkers registers (between the standard ones).
STATUS = (logging.INFO + logging.WARNING) // 2
DETAILS = (logging.DEBUG + logging.INFO) // 2
ABUSIVE = (logging.NOTSET + logging.DEBUG) // 2
for _level, _name in ((STATUS, "STATUS"), (DETAILS, "DETAILS"),
                      (ABUSIVE, "ABUSIVE")):
    logging.addLevelName(_level, _name)


class BraceMessage:
    """A log message formatted with ``str.format`` when it is shown."""

    def __init__(self, fmt, args, kwargs):
        self.fmt = fmt
        self.args = args
        self.kwargs = kwargs

    def __str__(self):
        return str(self.fmt).format(*self.args, **self.kwargs)

    def __repr__(self):
        return object.__repr__(self) + str(self)


class BraceStyleAdapter(logging.LoggerAdapter):
    """Wraps a `logging.Logger` so that messages use ``{}`` placeholders
    (``log.info('{} done', x)``), with ``status``, ``details`` and
    ``abusive`` for the extra levels."""

    def __init__(self, logger):
        super().__init__(logger, None)

    def status(self, msg, *args, **kwargs):
        return self.log(STATUS, msg, *args, **kwargs)

    def details(self, msg, *args, **kwargs):
        return self.log(DETAILS, msg, *args, **kwargs)

    def abusive(self, msg, *args, **kwargs):
        return self.log(ABUSIVE, msg, *args, **kwargs)

    def log(self, level, msg, *args, **kwargs):
        if self.isEnabledFor(level):
            msg, log_kwargs = self.process(msg, kwargs)
            self.logger._log(level, BraceMessage(msg, args, kwargs), (),
                             **log_kwargs)

    def process(self, msg, kwargs):
        # keyword arguments the logger knows (exc_info, stack_info, ...)
        # go to it; the others are for the message
        known = inspect.getfullargspec(self.logger._log).args[1:]
        return msg, {k: kwargs[k] for k in known if k in kwargs}


def get_logger(name=None):
    """``logging.getLogger(name)`` wrapped in a `BraceStyleAdapter`."""
    return BraceStyleAdapter(logging.getLogger(name))


def _accessor(f, inst, cls, *args):
    """Calls a class property's function: a classmethod gets the class and
    ``inst=`` (pyworkers' form), a plain function the class only."""
    if isinstance(f, classmethod):
        return f.__func__(cls, *args, inst=inst)
    return f(cls, *args)


class classproperty(property):
    """A property evaluated on the class: ``Cls.prop`` and ``obj.prop``
    both call it. Its functions are either plain functions of the class
    or, as in pyworkers, classmethods taking ``inst=`` (the instance, or
    None when read on the class)."""

    def __init__(self, fget=None, fset=None, fdel=None, doc=None):
        super().__init__(fget, fset, fdel, doc)
        if doc is None and fget is not None:
            self.__doc__ = getattr(getattr(fget, "__func__", fget),
                                   "__doc__", None)

    def __get__(self, inst, cls=None):
        if self.fget is None:
            raise AttributeError("unreadable attribute")
        if cls is None:
            cls = type(inst)
        return _accessor(self.fget, inst, cls)

    def __set__(self, inst, value):
        if self.fset is None:
            raise AttributeError("can't set attribute")
        cls, inst = (inst, None) if isinstance(inst, type) else \
            (type(inst), inst)
        return _accessor(self.fset, inst, cls, value)

    def __delete__(self, inst):
        if self.fdel is None:
            raise AttributeError("can't delete attribute")
        cls, inst = (inst, None) if isinstance(inst, type) else \
            (type(inst), inst)
        return _accessor(self.fdel, inst, cls)


class staticproperty(property):
    """A property whose functions take no argument at all (pyworkers uses
    it for module properties)."""

    def __init__(self, fget=None, fset=None, fdel=None, doc=None):
        super().__init__(fget, fset, fdel, doc)
        if doc is None and fget is not None:
            self.__doc__ = getattr(getattr(fget, "__func__", fget),
                                   "__doc__", None)

    def __get__(self, inst, cls=None):
        if self.fget is None:
            raise AttributeError("unreadable attribute")
        return self.fget()

    def __set__(self, inst, value):
        if self.fset is None:
            raise AttributeError("can't set attribute")
        return self.fset(value)

    def __delete__(self, inst):
        if self.fdel is None:
            raise AttributeError("can't delete attribute")
        return self.fdel()


class SupportClassPropertiesMeta(type):
    """Metaclass routing assignments and deletions of a `classproperty`
    made on the class itself to the property."""

    def __setattr__(cls, key, value):
        obj = cls.__dict__.get(key)
        if obj is not None and type(obj) is classproperty:
            return obj.__set__(cls, value)
        return super().__setattr__(key, value)

    def __delattr__(cls, key):
        obj = cls.__dict__.get(key)
        if obj is not None and type(obj) is classproperty:
            return obj.__delete__(cls)
        return super().__delattr__(key)


_hostname = None


def get_hostname():
    """This machine's name, as workers report it in their ``id``."""
    global _hostname
    if _hostname is None:
        _hostname = platform.node()
    return _hostname


def gettid(thread=None):
    """The kernel's id of a thread (the calling one by default)."""
    if thread is not None:
        return thread.native_id
    return threading.get_native_id()


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


def _foreign_raise(ident, exc_type):
    """Raise ``exc_type`` in the Python thread ``ident`` at its next
    bytecode. Returns False if there is no such thread (it ended)."""
    n = _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    if n > 1:  # cannot happen for a valid ident; undo rather than spread
        cancel_foreign_raise(ident)
        raise SystemError("PyThreadState_SetAsyncExc affected several threads")
    return n == 1


def foreign_raise(tid, exception):
    """pyworkers' function: raises ``exception`` (a class or None to only
    drop a pending one) in the Python thread whose ``threading`` ident is
    ``tid``, at its next bytecode; `ValueError` if there is no such
    thread."""
    cancel_foreign_raise(tid)
    if exception is None:
        return
    if not _foreign_raise(tid, exception):
        raise ValueError("Invalid Thread ID")


def cancel_foreign_raise(ident):
    """Drop an exception set by ``foreign_raise`` that was not raised yet."""
    _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object())


# ---- pyworkers' other helpers ------------------------------------------------

class PipeEndpoint:
    """One end of a `Pipe`, usable as a queue (``put``/``get``)."""

    def __init__(self, pipe):
        self._pipe = pipe

    @property
    def stdpipe(self):
        """The underlying `multiprocessing` connection."""
        return self._pipe

    def fileno(self):
        return self._pipe.fileno()

    def send(self, obj):
        return self._pipe.send(obj)

    def recv(self):
        return self._pipe.recv()

    def poll(self, timeout=0):
        return self._pipe.poll(timeout)

    def close(self):
        return self._pipe.close()

    def put(self, obj):
        return self._pipe.send(obj)

    def get(self, block=True, timeout=None):
        """The next object; `queue.Empty` if ``block`` is false and none is
        ready, or when the other end is closed. (``timeout`` is accepted
        and, as in pyworkers, not used.)"""
        if not block:
            try:
                if not self._pipe.poll():
                    raise queue.Empty
            except (BrokenPipeError, OSError):
                raise queue.Empty from None
        try:
            return self._pipe.recv()
        except (EOFError, BrokenPipeError):
            raise queue.Empty from None

    def get_nowait(self):
        return self.get(block=False)


class Pipe:
    """A duplex `multiprocessing` pipe as two `PipeEndpoint` objects."""

    def __init__(self):
        self._endpoints = tuple(PipeEndpoint(c) for c in mp.Pipe())

    @property
    def parent_end(self):
        return self._endpoints[0]

    @property
    def child_end(self):
        return self._endpoints[1]


class Queue(queue.Queue):
    """A `queue.Queue` with a ``close()`` that does nothing."""

    def close(self):
        pass


class LocalPipe:
    """The thread counterpart of `Pipe`: both ends are one `Queue`."""

    def __init__(self):
        self._q = Queue()

    @property
    def parent_end(self):
        return self._q

    @property
    def child_end(self):
        return self._q


def python_is_at_least(major, minor):
    return sys.version_info[:2] >= (major, minor)


def python_is_exactly(major, minor):
    return sys.version_info[:2] == (major, minor)


def is_windows():
    return sys.platform.lower().startswith("win")


def active_sleep(timeout, interval=0.01):
    """Sleeps ``timeout`` seconds in steps of at most ``interval``."""
    slept = 0
    while slept < timeout:
        step = min(interval, timeout - slept)
        time.sleep(step)
        slept += step


def active_wait(obj, timeout, interval=0.01):
    """Waits for ``obj`` (anything with ``is_alive()``/``join()``) to end,
    polling every ``interval``; returns ``obj.is_alive()`` afterwards
    (True: still alive; None ``timeout`` joins and returns True, as
    pyworkers does)."""
    if timeout is None:
        obj.join()
        return True
    if timeout < 0:
        raise ValueError("Negative timeout")
    waited = 0
    while obj.is_alive() and waited < timeout:
        step = min(interval, timeout - waited)
        time.sleep(step)
        waited += step
    return obj.is_alive()


class LazyModule:
    """Stands for a module in ``sys.modules`` so that properties (see
    `add_module_properties`) can be added to it."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        return getattr(self.module, name)


def add_module_properties(module_name, properties):
    """Gives module ``module_name`` the ``properties`` (name -> property,
    e.g. `staticproperty`), replacing it in ``sys.modules`` by a
    `LazyModule` the first time."""
    module = sys.modules[module_name]
    if isinstance(module, LazyModule):
        lazy_type = type(module)
    else:
        lazy_type = type(f"LazyModule({module_name})", (LazyModule,), {})
    for name, prop in properties.items():
        setattr(lazy_type, name, prop)
    if not isinstance(module, LazyModule):
        sys.modules[module_name] = lazy_type(module)


def typename(obj):
    """``module.QualifiedName`` of ``obj``'s type."""
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ else \
        t.__qualname__


def _title(title, worker):
    info = f" {typename(worker)}" if worker is not None else ""
    return f"{sys.executable}{info} {title}"


_title_impl = None  # the setproctitle module, False once known missing


def _titles():
    global _title_impl
    if _title_impl is None:
        try:
            import setproctitle as impl
        except Exception:  # noqa: BLE001 (optional package)
            impl = False
        _title_impl = impl
    return _title_impl


def setproctitle(title, worker=None):
    """Sets the process title through the optional ``setproctitle``
    package; does nothing if it is missing or fails."""
    try:
        impl = _titles()
        if impl:
            impl.setproctitle(_title(title, worker))
    except Exception:  # noqa: BLE001 (best effort, as in pyworkers)
        return


def setthreadtitle(title, worker=None):
    """Sets the calling thread's title like `setproctitle`."""
    try:
        impl = _titles()
        if impl:
            impl.setthreadtitle(_title(title, worker))
    except Exception:  # noqa: BLE001 (best effort, as in pyworkers)
        return
