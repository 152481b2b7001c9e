"""Messages between a worker and its parent: the two kinds of link (a
forkqueue channel to a forked process, a framed TCP socket to a remote
worker) and the encoding of outcomes.

Every message starts with a one-byte tag.

    parent -> worker   I input (pickled (args, kwargs))   C close (no more input)
                       B several inputs (a pickled list)  T terminate
                       K kill (remote)
    worker -> parent   S started (pickled (host, pid, tid))
                       R one result (pickled)             r several results
                       A auxiliary value
                       F final outcome (see encode_final)
"""
import pickle
import select
import socket
import struct
import time
import traceback

__all__ = ["SocketLink", "ChannelLink", "WorkerError", "RemoteTraceback",
           "encode_final", "decode_final", "dumps", "loads"]

_HDR = struct.Struct("!I")
MAX_FRAME = 1 << 30
PROTO = pickle.HIGHEST_PROTOCOL

T_INPUT, T_CLOSE, T_TERM, T_KILL = 0x49, 0x43, 0x54, 0x4B   # I C T K
T_STARTED, T_RESULT, T_AUX, T_FINAL = 0x53, 0x52, 0x41, 0x46  # S R A F
T_INPUTS, T_RESULTS = 0x42, 0x72  # B r: several inputs / results at once


def dumps(obj):
    return pickle.dumps(obj, PROTO)


loads = pickle.loads


class WorkerError(RuntimeError):
    """Stands for an exception raised in a worker that could not be brought
    back as itself (it could not be pickled or unpickled); its text names
    the original class and message."""


class RemoteTraceback(Exception):
    """Set as ``__cause__`` of an error that came from another process:
    the worker's traceback, as text."""

    def __str__(self):
        return self.args[0] if self.args else ""


def describe(exc):
    """``module.Class: message`` and the traceback of ``exc``, as text."""
    cls = type(exc)
    head = f"{cls.__module__}.{cls.__qualname__}: {exc}"
    tb = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    return head, tb


def encode_final(graceful, value, state):
    """The F message: outcome and user_state, each pickled on its own so
    that one that cannot be pickled does not lose the other."""
    head = tb = None
    if not graceful and value is not None:
        head, tb = describe(value)
    try:
        blob = dumps(value)
    except Exception as e:  # noqa: BLE001 (anything pickle may raise)
        if graceful:
            graceful = False
            head = (f"{WorkerError.__module__}.WorkerError: the result "
                    f"cannot be pickled: {type(e).__name__}: {e}")
        blob = None
    try:
        sblob = dumps(state)
    except Exception:  # noqa: BLE001
        sblob = None
    return bytes([T_FINAL]) + dumps((graceful, blob, head, tb, sblob))


def decode_final(data, old_state):
    """``(graceful, value_or_error, user_state)`` from an F message."""
    graceful, blob, head, tb, sblob = loads(memoryview(data)[1:])
    value = None
    if blob is not None:
        try:
            value = loads(blob)
        except Exception as e:  # noqa: BLE001
            graceful = False
            value = WorkerError(f"{head or 'result'} (it could not be "
                                f"unpickled here: {type(e).__name__}: {e})")
    elif head is not None:
        value = WorkerError(head)
    if (not graceful and isinstance(value, BaseException) and tb
            and value.__cause__ is None):
        value.__cause__ = RemoteTraceback(tb)
    state = old_state
    if sblob is not None:
        try:
            state = loads(sblob)
        except Exception:  # noqa: BLE001
            pass
    return graceful, value, state


class ChannelLink:
    """A forkqueue channel (either end of it)."""

    __slots__ = ("ch", "eof")

    def __init__(self, ch):
        self.ch = ch
        self.eof = False

    def fileno(self):
        return self.ch.fileno()

    def send(self, data):
        self.ch.send(data)

    def recv(self, timeout=None):
        """One message; None at EOF; TimeoutError if none in time."""
        if self.eof:
            return None
        data = self.ch.recv(timeout)
        if data is None:
            self.eof = True
        return data

    def ready(self):
        return self.eof or self.ch.poll(0)

    def buffered(self):
        return False

    def close(self):
        self.ch.close()


class SocketLink:
    """Length-prefixed frames over a connected stream socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        n = len(data)
        if n < 65536:
            self.sock.sendall(_HDR.pack(n) + data)
        else:
            self.sock.sendall(_HDR.pack(n))
            self.sock.sendall(data)

    def _frame(self):
        buf = self.buf
        if len(buf) < 4:
            return None
        (n,) = _HDR.unpack_from(buf)
        if n > MAX_FRAME:
            raise ConnectionError(f"frame of {n} bytes is over the limit")
        if len(buf) < 4 + n:
            return None
        data = bytes(buf[4:4 + n])
        del buf[:4 + n]
        return data

    def recv(self, timeout=None):
        """One frame; None at EOF; TimeoutError if none in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frame = self._frame()
            if frame is not None:
                return frame
            if self.eof:
                return None
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                if not select.select([self.sock], [], [], left)[0]:
                    raise TimeoutError()
            try:
                chunk = self.sock.recv(262144)
            except (ConnectionResetError, ConnectionAbortedError, OSError):
                chunk = b""
            if not chunk:
                self.eof = True
            else:
                self.buf += chunk

    def buffered(self):
        return len(self.buf) >= 4 and len(self.buf) >= 4 + _HDR.unpack_from(
            self.buf)[0]

    def ready(self):
        return self.eof or self.buffered() or bool(
            select.select([self.sock], [], [], 0)[0])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def recv_exact(sock, n, deadline):
    """Reads exactly ``n`` bytes before ``deadline`` (monotonic), for the
    handshake; ConnectionError on EOF, TimeoutError when late."""
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise TimeoutError("no answer from the peer in time")
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        out += chunk
    return bytes(out)


def connect(addr, key, timeout=10.0):
    """Opens an authenticated connection to a worker server."""
    from .._auth import client_answer, client_check, HELLO_LEN, VERDICT_LEN
    sock = socket.create_connection(addr, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(None)
        deadline = time.monotonic() + timeout
        hello = recv_exact(sock, HELLO_LEN, deadline)
        answer, c, s = client_answer(key, hello)
        sock.sendall(answer)
        try:
            verdict = recv_exact(sock, VERDICT_LEN, deadline)
        except ConnectionError:
            verdict = b"NO"
        client_check(key, verdict, c, s)
    except BaseException:
        sock.close()
        raise
    return SocketLink(sock)
