"""Channels to forked children, exchanges over many of them, and parallel maps.

The API of pprocess on forkqueue's core channels: ``import
forkqueue.channels as pprocess`` runs a program written for pprocess and
prints the same. Differences, all deliberate (see docs/python-channels.md):
no acknowledgement per message (delivery stays reliable and ordered), errors
in children are never lost or mistaken for channel failures, a crashed child
is an error for its element, ``pmap`` runs elements in a bounded set of
reusable children, ``ready(timeout)`` takes seconds, and children still
running at interpreter exit are ended and reaped.
"""

import atexit
import collections
import os
import pickle
import signal
import sys
import time
import weakref

from . import _forkqueue
from ._remote_exc import (RemoteError, RemoteTraceback, format_remote,
                          portable)

__all__ = [
    "AcknowledgementError", "ChildError", "Channel", "Exchange", "Map",
    "Queue", "MakeParallel", "MakeReusable", "ManagedCallable", "create",
    "start", "exit", "waitall", "pmap", "get_number_of_cores",
    "RemoteTraceback", "RemoteError", "describe_exit",
]

_PROTOCOL = pickle.HIGHEST_PROTOCOL

# Parent-side channels made in this process and not reaped yet.
_live = weakref.WeakSet()


class AcknowledgementError(Exception):
    """Kept for programs that catch it. Never raised: forkqueue's channels
    need no acknowledgement per message."""


class ChildError(Exception):
    """A child failed without an exception of its own to report: it was
    killed by a signal, exited with a non-zero status or without sending a
    result, or raised ``SystemExit``/``KeyboardInterrupt`` (which would end
    the parent if raised there as they are).

    ``pid`` is the child's pid; ``returncode`` its exit status, or -signal,
    or None when not known.
    """

    def __init__(self, message, pid=None, returncode=None):
        super().__init__(message)
        self.pid = pid
        self.returncode = returncode

    def __reduce__(self):
        return (type(self), (str(self), self.pid, self.returncode))


def describe_exit(pid, returncode):
    """Says how a child ended, e.g. 'child 4242 was killed by signal 9
    (SIGKILL)'."""
    if returncode is None:
        return f"child {pid} ended (exit status unknown)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"child {pid} was killed by signal {-returncode} ({name})"
    return f"child {pid} exited with status {returncode}"


class _Failure:
    """What a child sends when its callable raised: the exception (pickled
    apart, through the shared _remote_exc.portable(), so that one that
    cannot be rebuilt still arrives as a RemoteError naming it) and its
    traceback text."""

    __slots__ = ("exc", "type_name", "text", "tb", "pid", "fatal")

    def __init__(self, exc):
        self.type_name = type(exc).__qualname__
        try:
            self.text = str(exc)
        except Exception:
            self.text = f"<str() of {self.type_name} failed>"
        self.tb = format_remote(exc)
        self.pid = os.getpid()
        # SystemExit, KeyboardInterrupt and the like are errors here, never
        # something to raise as such in the parent.
        self.fatal = not isinstance(exc, Exception)
        self.exc = None
        if not self.fatal:
            try:
                self.exc = pickle.dumps(portable(exc), _PROTOCOL)
            except Exception:
                self.exc = None

    def __getstate__(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, state):
        for k, v in zip(self.__slots__, state):
            setattr(self, k, v)

    def exception(self):
        exc = None
        if self.exc is not None:
            try:
                exc = pickle.loads(self.exc)
            except Exception:
                exc = None
        if exc is None:
            what = f"{self.type_name}: {self.text}" if self.text else \
                self.type_name
            if self.fatal:
                exc = ChildError(f"child {self.pid} raised {what}", self.pid)
            else:
                exc = RemoteError(self.type_name, self.text)
        exc.__cause__ = RemoteTraceback(self.tb)
        return exc


def _send_failure(channel, exc):
    channel._raw.send(pickle.dumps(_Failure(exc), _PROTOCOL))


def _flush_std():
    for f in (sys.stdout, sys.stderr):
        try:
            if f is not None:
                f.flush()
        except Exception:
            pass


class Channel:
    """One end of a channel between a parent and a child it forked.

    ``pid`` is the child's pid in the parent and 0 in the child. Objects
    sent are pickled; each ``receive()`` returns one object sent by the
    other end, in order.
    """

    def __init__(self, raw):
        self._raw = raw
        self.pid = raw.pid
        self.closed = 0
        self._stash = collections.deque()  # received, not yet handed out
        self._eof = False
        self._over = False  # an exchange saw its end (child reaped)
        self._delivered = 0  # messages an exchange stored from it

    def __repr__(self):
        return f"<forkqueue.channels.Channel pid={self.pid}" + \
            (" closed>" if self.closed else ">")

    def fileno(self):
        """The descriptor of this end, for select() or poll()."""
        return self._raw.fileno()

    @property
    def returncode(self):
        """None until the child was reaped (by wait() or an exchange); then
        its exit status, or -signal."""
        return self._raw.returncode

    def send(self, obj):
        """Send ``obj`` (pickled) to the other end. Never waits for an
        acknowledgement; blocks only while the other end is not reading."""
        self._raw.send(pickle.dumps(obj, _PROTOCOL))

    _send = send

    def _take(self, timeout=None):
        if self._stash:
            return self._stash.popleft()
        if self._eof:
            return None
        data = self._raw.recv(timeout)
        if data is None:
            self._eof = True
        return data

    def receive(self):
        """Return the next object sent by the other end, waiting for it.
        An exception the child's callable raised is raised here (with the
        child's traceback as its cause), as is any exception object sent.
        EOFError once the other end closed and everything was received."""
        data = self._take()
        if data is None:
            who = f"child {self.pid}" if self.pid else "the parent"
            raise EOFError(f"channel to {who}: closed by the other end, "
                           "nothing more to receive")
        obj = pickle.loads(data)
        if type(obj) is _Failure:
            raise obj.exception()
        if isinstance(obj, Exception):
            raise obj
        return obj

    _receive = receive

    def close(self):
        """Close this end (idempotent): the other end sees the end of the
        stream once it has received everything already sent."""
        if not self.closed:
            self.closed = 1
            self._raw.close()

    def wait(self, options=0):
        """Parent: wait for the child to end and reap it (with
        ``os.WNOHANG`` in options: only if it has ended). Does nothing in
        the child. Returns the returncode, or None if still running."""
        if self.pid == 0:
            return None
        rc = self._raw.wait(0 if options & os.WNOHANG else None)
        if rc is not None:
            _live.discard(self)
        return rc

    def _shut_sending(self):
        """Half-close: the child's receive() sees the end of the stream,
        while what it still sends can be received."""
        import socket
        try:
            s = socket.socket(fileno=os.dup(self._raw.fileno()))
            try:
                s.shutdown(socket.SHUT_WR)
            finally:
                s.close()
        except (OSError, ValueError):
            pass

    def _drain(self):
        """Receive whatever has arrived, without waiting, into the stash."""
        while not self._eof and not self.closed:
            try:
                data = self._raw.recv(0)
            except TimeoutError:
                return
            except (OSError, ValueError):
                self._eof = True
                return
            if data is None:
                self._eof = True
            else:
                self._stash.append(data)


def create():
    """Fork a child connected to this process by a channel. Returns a
    Channel in both processes: ``pid`` is 0 in the child, which continues
    from here and should end with ``exit(channel)``."""
    _flush_std()  # or the child would print what is buffered again
    raw = _forkqueue.fork_channel()
    channel = Channel(raw)
    if raw.pid == 0:
        _live.clear()  # the parent's children are not this process's
    else:
        _live.add(channel)
    return channel


def exit(channel, code=0):
    """End a child: flush what it printed, close the channel and end the
    process at once, without the parent's exit handlers."""
    _flush_std()
    try:
        channel.close()
    finally:
        _forkqueue.child_exit(code)


def start(callable, *args, **kw):
    """Fork a child that runs ``callable(channel, *args, **kw)`` and ends.
    Returns the parent's channel. An exception raised by the callable
    (SystemExit and KeyboardInterrupt included) is sent to the parent,
    where ``receive()`` raises it."""
    channel = create()
    if channel.pid != 0:
        return channel
    code = 0
    try:
        callable(channel, *args, **kw)
    except BaseException as exc:
        try:
            _send_failure(channel, exc)
        except BaseException:
            code = 1
    finally:
        exit(channel, code)


def waitall():
    """Wait until every child this module created in this process has ended,
    and reap them. Never blocks on a child that waits for the parent: the
    children's receive() sees the end of the stream, and what they still
    send is received and kept for their channels' receive()."""
    pending = [c for c in list(_live) if c.returncode is None and c.pid]
    for c in pending:
        if not c.closed:
            c._shut_sending()
    while pending:
        for c in pending:
            c._drain()
        pending = [c for c in pending if c._raw.wait(0) is None]
        for c in list(_live):
            if c.returncode is not None:
                _live.discard(c)
        if pending:
            open_ = [c._raw for c in pending if not c.closed and not c._eof]
            if open_:
                _forkqueue.wait_channels(open_, 0.02)
            else:
                time.sleep(0.005)
    # Children of channels that were dropped before they ended.
    while _forkqueue._channel_cleanup(0, 0.05) > 0:
        pass


def _shutdown():
    """At interpreter exit: end and reap children still running."""
    pending = [c for c in list(_live) if c.pid and c.returncode is None]
    for c in pending:
        c.close()
        c._raw.kill(signal.SIGTERM)
    deadline = time.monotonic() + 1.0
    for c in pending:
        left = max(0.0, deadline - time.monotonic())
        if c._raw.wait(left) is None:
            c._raw.kill(signal.SIGKILL)
            c._raw.wait()
    _live.clear()
    _forkqueue._channel_cleanup(signal.SIGKILL, 2.0)


atexit.register(_shutdown)


def get_number_of_cores():
    """The number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class MakeParallel:
    """Wraps a plain function for use in a child: the child calls it and
    sends its return value over the channel."""

    def __init__(self, callable):
        self.callable = callable

    def __call__(self, channel, *args, **kw):
        channel.send(self.callable(*args, **kw))


class MakeReusable(MakeParallel):
    """Like MakeParallel, but the child stays to run more calls: after each
    result it receives the next ``(args, kw)``, or None to end (for
    exchanges with ``reuse=1``)."""

    def __call__(self, channel, *args, **kw):
        context = (args, kw)
        while context is not None:
            args, kw = context
            channel.send(self.callable(*args, **kw))
            context = channel.receive()


class ManagedCallable:
    """A callable that starts ``callable`` in a child of an exchange each
    time it is called (made by ``Exchange.manage``)."""

    def __init__(self, callable, exchange):
        self.callable = callable
        self.exchange = exchange

    def __call__(self, *args, **kw):
        self.exchange.start(self.callable, *args, **kw)


from ._channels_exchange import Exchange, Map, Queue, pmap  # noqa: E402

# They are this module's names (tracebacks and reprs say so): pickled by
# reference (a class sent to a fresh interpreter), they must be found here,
# since the private modules that define them cannot be imported before this
# one (a cycle).
for _name in ("Exchange", "Map", "Queue", "pmap"):
    globals()[_name].__module__ = __name__
del _name
