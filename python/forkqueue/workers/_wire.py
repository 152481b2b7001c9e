"""Messages between a worker and its parent: the two kinds of link (a
forkqueue channel to a forked process, a framed TCP socket to a remote
worker) and the encoding of outcomes.

Every message starts with a one-byte tag.

    parent -> worker   I input (pickled (args, kwargs))   C close (no more input)
                       B several inputs (a pickled list)  T terminate
                       L several inputs' positional arguments alone (one
                         pickled list of tuples: no keyword arguments)
                       K kill (remote)
    worker -> parent   S started (pickled (host, pid, tid))
                       R one result (pickled)             r several results
                       A auxiliary value
                       F final outcome (see encode_final)
                       W wake up: results wait in the worker's ring

A process worker's results travel through a ring of memory shared with the
parent (``_forkqueue.ResultRing``), not as R messages, except one too large
for the ring: an R message then, with a marker in the ring at its place in
the order.
"""
import pickle
import select
import socket
import struct
import threading
import time

from .._remote_exc import (RemoteError, RemoteTraceback, dump_outcome,
                           load_outcome)

__all__ = ["SocketLink", "ChannelLink", "WorkerError", "RemoteTraceback",
           "encode_final", "decode_final", "dumps", "loads"]

_HDR = struct.Struct("!I")
MAX_FRAME = 1 << 30
PROTO = pickle.HIGHEST_PROTOCOL

T_INPUT, T_CLOSE, T_TERM, T_KILL = 0x49, 0x43, 0x54, 0x4B   # I C T K
T_STARTED, T_RESULT, T_AUX, T_FINAL = 0x53, 0x52, 0x41, 0x46  # S R A F
T_INPUTS, T_RESULTS = 0x42, 0x72  # B r: several inputs / results at once
T_WAKE = 0x57  # W
T_ARGS = 0x4C  # L


def dumps(obj):
    return pickle.dumps(obj, PROTO)


loads = pickle.loads


# Exceptions cross process boundaries the way every face carries them
# (forkqueue._remote_exc): the original type where it can be rebuilt, with
# the worker's traceback as __cause__; otherwise a stand-in naming the
# original class and message.
WorkerError = RemoteError


def encode_final(graceful, value, state):
    """The F message: the outcome and user_state, each pickled on its own
    so that one that cannot be pickled does not lose the other."""
    blob = dump_outcome(value) if graceful else dump_outcome(exc=value)
    try:
        sblob = dumps(state)
    except Exception:  # noqa: BLE001 (anything pickle may raise)
        sblob = None
    return bytes([T_FINAL]) + dumps((blob, sblob))


def decode_final(data, old_state):
    """``(graceful, value_or_error, user_state)`` from an F message."""
    blob, sblob = loads(memoryview(data)[1:])
    try:
        value, exc = load_outcome(blob)
    except Exception as e:  # noqa: BLE001 (a result this side cannot load)
        value, exc = None, WorkerError(
            f"{type(e).__module__}.{type(e).__qualname__}",
            f"the result could not be unpickled here: {e}")
    state = old_state
    if sblob is not None:
        try:
            state = loads(sblob)
        except Exception:  # noqa: BLE001
            pass
    if exc is not None:
        return False, exc, state
    return True, value, state


class ChannelLink:
    """A forkqueue channel (either end of it)."""

    __slots__ = ("ch", "eof", "send")

    def __init__(self, ch):
        self.ch = ch
        self.eof = False
        #: send(data): the channel's own (no Python frame per message)
        self.send = ch.send

    def fileno(self):
        return self.ch.fileno()

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


def tls_relay(tls_sock):
    """A plain socket whose other end is a thread that owns ``tls_sock``,
    and that thread (join it before exiting: it flushes what is left).

    A remote worker uses its connection from two threads (a reader and the
    main thread), and OpenSSL objects must never be used by two threads at
    once: so one relay thread does every TLS call, on a non-blocking socket,
    and the worker talks plain bytes to it."""
    mine, theirs = socket.socketpair()
    t = threading.Thread(target=_relay, args=(tls_sock, theirs), daemon=True,
                         name="forkqueue TLS relay")
    t.start()
    return mine, t


def _relay(tls, local):
    import ssl
    tls.setblocking(False)
    local.setblocking(False)
    to_tls = bytearray()    # plain bytes still to encrypt and send
    to_local = bytearray()  # bytes received, still to hand over
    tls_open = local_open = True
    while tls_open or to_local:
        # everything TLS has for us now (including what it buffered)
        want_tls_write = False
        while tls_open:
            try:
                data = tls.recv(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLWantWriteError:
                want_tls_write = True
                break
            except OSError:
                data = b""
            if not data:
                tls_open = False
                break
            to_local += data
        if to_local:
            try:
                n = local.send(to_local)
                del to_local[:n]
            except BlockingIOError:
                pass
            except OSError:
                to_local.clear()  # the worker stopped reading: drop it
        if local_open and not to_tls:
            try:
                data = local.recv(65536)
                if data:
                    to_tls += data
                else:
                    local_open = False
            except BlockingIOError:
                pass
            except OSError:
                local_open = False
        if to_tls and tls_open:
            try:
                n = tls.send(to_tls)
                del to_tls[:n]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                want_tls_write = True
            except OSError:
                tls_open = False
        if not local_open and not to_tls:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if not to_local:
                return
            tls_open = False
        r, w = [], []
        if tls_open:
            r.append(tls)
            if to_tls or want_tls_write:
                w.append(tls)
        if local_open and not to_tls:
            r.append(local)
        if to_local:
            w.append(local)
        if (r or w) and not (tls_open and tls.pending()):
            select.select(r, w, [])
    try:
        local.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def keepalive(sock, idle=30, interval=10, count=3):
    """TCP keepalive probes, so that a peer that vanished without closing
    (a machine that went down) is noticed within about a minute."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval),
                       ("TCP_KEEPCNT", count)):
        if hasattr(socket, opt):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt),
                                value)
            except OSError:
                pass


def recv_exact(sock, n, deadline):
    """Reads exactly ``n`` bytes before ``deadline`` (monotonic), for the
    handshake; ConnectionError on EOF, TimeoutError when late."""
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        tls_ready = hasattr(sock, "pending") and sock.pending()
        if not tls_ready and (left <= 0 or not select.select(
                [sock], [], [], left)[0]):
            raise TimeoutError("no answer from the peer in time")
        try:
            chunk = sock.recv(n - len(out))
        except OSError as e:  # TLS errors included
            raise ConnectionError(f"connection failed: {e}") from e
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        out += chunk
    return bytes(out)


def connect(addr, key, timeout=10.0, ssl_context=None, server_hostname=None):
    """Opens an authenticated connection to a worker server (over TLS with
    ``ssl_context``)."""
    from .._auth import client_answer, client_check, HELLO_LEN, VERDICT_LEN
    sock = socket.create_connection(addr, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        keepalive(sock)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(
                sock, server_hostname=server_hostname or addr[0])
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
