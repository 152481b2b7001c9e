"""The worker server: `RemoteServer`, `spawn_server`.

One thread, one poll loop. A connection must first authenticate (see
``forkqueue._auth``; nothing it sends is unpickled before that), then send
one request frame, all before a deadline; connections that are silent,
slow or send garbage are dropped without holding up the others. A worker
request forks a process (the shared process primitive) that takes over
the connection and talks to the client directly; the server keeps a
channel to it, to stop it, and watches the connection: when the client
hangs up, its worker's process group is killed.
"""
import io
import os
import pickle
import select
import signal
import socket
import struct
import time

from .utils import _titles, get_logger
from .. import _auth
from . import _wire, remote_pickle
from ._linked import REQUEST_SIGNAL, flush_stdio
from ._wire import SocketLink, T_STARTED
from .process import ProcessWorker
from .remote import RemoteWorker, default_port
from .worker import WorkerTerminatedError

__all__ = ["RemoteServer", "RemoteServerProcess", "spawn_server",
           "run_server"]

logger = get_logger(__name__)

MAX_REQUEST = 256 << 20
# What a C engine client (src/auth/request.c) sends instead of a request
# frame: read as a length it would be 1.2 GB, so it is never mistaken for
# one; it is refused with its own message.
C_ENGINE_REQUEST = b"FQC1"
_HDR = struct.Struct("!I")
_RDHUP = getattr(select, "POLLRDHUP", 0x2000)


def server_addr(addr):
    """``(host, port)`` to listen on; loopback and 60006 by default."""
    if not addr:
        return ("127.0.0.1", default_port)
    if isinstance(addr, str):
        if ":" in addr:
            h, p = addr.rsplit(":", 1)
            return (h or "127.0.0.1", int(p))
        return (addr, default_port)
    host, port = addr
    return (host or "127.0.0.1", int(port if port is not None
                                     else default_port))


def _readable_now(fd):
    """Whether ``fd`` has data (or EOF) to read now (poll: any fd number)."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a "
                                     "request")


def _request(frame):
    """A request holds builtins only: no class is ever looked up."""
    req = _NoGlobals(io.BytesIO(frame)).load()
    if req is not None and not (isinstance(req, tuple) and req
                                and isinstance(req[0], str)):
        raise ValueError("malformed request")
    return req


class _Pending:
    __slots__ = ("sock", "peer", "buf", "authed", "deadline", "challenge",
                 "tls_done")


class _Child:
    __slots__ = ("ch", "sock", "ctx", "started", "eof", "kill_at", "peer")


class RemoteServer:
    """Serves remote workers on ``addr`` (loopback, port 60006 by default).

    ``authkey``: the shared key (default: $FORKQUEUE_AUTHKEY, else the
    per-user key file, created if missing); the server refuses to start
    without one. ``handshake_timeout``: seconds a connection has to
    authenticate and send its request. ``ssl_context``: a server-side
    `ssl.SSLContext` to speak TLS (clients then pass theirs).
    """

    def __init__(self, addr, close_on_none=False, *, authkey=None,
                 handshake_timeout=5.0, max_pending=512, ssl_context=None):
        self.req_addr = server_addr(addr)
        self.addr = None
        self.socket = None
        self.closed = True
        self.close_on_none = close_on_none
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        self.ssl_context = ssl_context
        self._key = _auth.get_authkey(authkey)
        self.children = []
        self.contexts = {}
        self._pending = {}
        self._poll = None
        self._fds = {}
        self._stop = False
        self.on_stop = None
        self.stats = {"accepted": 0, "authenticated": 0, "rejected": 0,
                      "timed_out": 0, "bad_request": 0, "workers": 0}

    def open_socket(self):
        """Binds and listens (``addr`` then holds the actual address)."""
        if not self.closed:
            return
        _titles()  # look for setproctitle once, not in every worker
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(self.req_addr)
            s.listen(128)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self.socket = s
        self.addr = s.getsockname()
        self.closed = False
        logger.info("Listening on {}", self.addr)

    def install_handlers(self):
        """pyworkers' SIGTERM handling, opt-in: on SIGTERM the process
        group of every worker gets SIGTERM, then this process dies of
        SIGTERM (default action restored). Without it the workers die with
        the server anyway (parent-death signal), a moment later."""
        def cleanup(*args):
            for c in list(self.children):
                if c.ch.returncode is None:
                    c.ch.kill(signal.SIGTERM)
            self.children.clear()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, cleanup)

    def break_accept(self):
        """Opens and closes a connection to the server's own socket, waking
        its loop (the server drops it: it never authenticates)."""
        host, port = self.addr
        if host == "0.0.0.0":
            host = "127.0.0.1"
        with socket.create_connection((host, port), timeout=5):
            pass

    # ---- the loop -------------------------------------------------------------

    def run(self):
        """Serves until interrupted (KeyboardInterrupt, terminate), or a
        None request with ``close_on_none``; then stops every worker:
        gracefully, then forcefully after about a second."""
        if self.closed:
            self.open_socket()
        self._poll = select.poll()
        self._watch(self.socket, select.POLLIN, ("listen", None))
        try:
            while not self._stop:
                events = self._poll.poll(self._next_timeout_ms())
                for fd, ev in events:
                    entry = self._fds.get(fd)
                    if entry is not None:
                        self._event(entry, ev)
                self._timers()
        except (WorkerTerminatedError, KeyboardInterrupt):
            pass
        finally:
            self._shutdown()
        logger.info("Remote server closed")

    def _watch(self, sock_or_fd, events, entry):
        fd = sock_or_fd if isinstance(sock_or_fd, int) else \
            sock_or_fd.fileno()
        self._poll.register(fd, events)
        self._fds[fd] = entry

    def _unwatch(self, fd):
        if self._fds.pop(fd, None) is not None:
            try:
                self._poll.unregister(fd)
            except (KeyError, ValueError):
                pass

    def _next_timeout_ms(self):
        now = time.monotonic()
        t = now + 1.0
        for p in self._pending.values():
            t = min(t, p.deadline)
        for c in self.children:
            if c.kill_at is not None:
                t = min(t, c.kill_at)
        return max(0, int((t - now) * 1000) + 1)

    def _event(self, entry, ev):
        kind, obj = entry
        if kind == "listen":
            self._accept()
        elif kind == "conn":
            self._conn_readable(obj)
        elif kind == "child":
            self._child_readable(obj)
        elif kind == "hangup":
            self._client_gone(obj)

    def _accept(self):
        while True:
            try:
                sock, peer = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: keep serving
                logger.warning("accept failed: {}", e)
                return
            self.stats["accepted"] += 1
            if len(self._pending) >= self.max_pending:
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _wire.keepalive(sock)
            p = _Pending()
            p.peer, p.buf, p.authed = peer, bytearray(), False
            p.deadline = time.monotonic() + self.handshake_timeout
            p.tls_done = self.ssl_context is None
            if not p.tls_done:
                try:
                    sock = self.ssl_context.wrap_socket(
                        sock, server_side=True,
                        do_handshake_on_connect=False)
                except OSError:
                    sock.close()
                    continue
            p.sock = sock
            if p.tls_done and not self._hello(p):
                continue
            self._pending[sock.fileno()] = p
            self._watch(sock, select.POLLIN, ("conn", p))

    def _hello(self, p):
        hello, p.challenge = _auth.server_hello()
        try:
            p.sock.send(hello)
        except OSError:
            p.sock.close()
            return False
        return True

    def _tls_step(self, p):
        """Advances the TLS handshake of ``p``; True once it is done."""
        import ssl
        fd = p.sock.fileno()
        try:
            p.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._poll.modify(fd, select.POLLIN)
            return False
        except ssl.SSLWantWriteError:
            self._poll.modify(fd, select.POLLOUT)
            return False
        except OSError as e:
            self.stats["rejected"] += 1
            self._drop(p, f"TLS handshake failed: {e}")
            return False
        self._poll.modify(fd, select.POLLIN)
        p.tls_done = True
        if not self._hello(p):
            self._pending.pop(fd, None)
            self._unwatch(fd)
            return False
        return True

    def _drop(self, p, why=None):
        fd = p.sock.fileno()
        self._pending.pop(fd, None)
        self._unwatch(fd)
        if why:
            logger.info("dropping {}: {}", p.peer, why)
        p.sock.close()

    def _conn_readable(self, p):
        if not p.tls_done:
            self._tls_step(p)
            return
        try:
            data = p.sock.recv(65536)
            while self.ssl_context is not None and p.sock.pending():
                data += p.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if type(e).__name__ in ("SSLWantReadError", "SSLWantWriteError"):
                return
            data = b""
        if not data:
            return self._drop(p)
        p.buf += data
        if not p.authed:
            if len(p.buf) < _auth.ANSWER_LEN:
                return
            verdict = _auth.server_check(self._key, p.challenge,
                                         bytes(p.buf[:_auth.ANSWER_LEN]))
            del p.buf[:_auth.ANSWER_LEN]
            try:
                p.sock.send(verdict)
            except OSError:
                return self._drop(p)
            if not verdict.startswith(b"OK"):
                self.stats["rejected"] += 1
                logger.warning("authentication failed for {}", p.peer)
                return self._drop(p)
            self.stats["authenticated"] += 1
            p.authed = True
            p.deadline = time.monotonic() + self.handshake_timeout
        if len(p.buf) < 4:
            return
        if p.buf[:4] == C_ENGINE_REQUEST:
            self.stats["bad_request"] += 1
            logger.warning("refusing a C engine request (fq_queue_add_remote) "
                           "from %s: this server runs Python workers; C "
                           "workers are served by fq-server", p.peer)
            return self._drop(p)
        (n,) = _HDR.unpack_from(p.buf)
        if n > MAX_REQUEST:
            self.stats["bad_request"] += 1
            return self._drop(p, f"request of {n} bytes")
        if len(p.buf) < 4 + n:
            return
        frame, rest = bytes(p.buf[4:4 + n]), bytes(p.buf[4 + n:])
        try:
            req = _request(frame)
        except Exception as e:  # noqa: BLE001 (garbage from a peer)
            self.stats["bad_request"] += 1
            return self._drop(p, f"bad request ({type(e).__name__})")
        fd = p.sock.fileno()
        self._pending.pop(fd, None)
        self._unwatch(fd)
        try:
            self._dispatch(p, req, rest)
        except OSError as e:
            logger.info("request from {} failed: {}", p.peer, e)
            p.sock.close()

    def _reply(self, p, value):
        p.sock.setblocking(True)
        p.sock.settimeout(self.handshake_timeout)
        try:
            SocketLink(p.sock).send(_wire.dumps(value))
        finally:
            p.sock.close()

    def _dispatch(self, p, req, rest):
        if req is None:
            p.sock.close()
            if self.close_on_none:
                logger.info('"None" received: closing')
                self._stop = True
            return
        kind = req[0]
        if kind == "worker" and len(req) == 4:
            _, ctx_id, main, payload = req
            ctx = None
            if ctx_id is not None:
                ctx = self.contexts.get(ctx_id)
                if ctx is None:
                    err = ValueError(f"Context {ctx_id!r} does not exist on "
                                     f"the server {self.addr}")
                    p.sock.setblocking(True)
                    SocketLink(p.sock).send(_wire.encode_final(False, err,
                                                               None))
                    p.sock.close()
                    return
            return self._fork_worker(p, rest, main, payload, ctx_id, ctx)
        if kind == "ctx-create" and len(req) == 4:
            _, ctx_id, main, payload = req
            if ctx_id in self.contexts:
                return self._reply(p, False)
            self.contexts[ctx_id] = (main, payload)
            logger.info("context {!r} registered", ctx_id)
            return self._reply(p, True)
        if kind == "ctx-delete" and len(req) == 2:
            ctx_id = req[1]
            found = self.contexts.pop(ctx_id, None) is not None
            if found:
                for c in self.children:
                    if c.ctx == ctx_id:
                        self._stop_child(c)
                logger.info("context {!r} removed", ctx_id)
            return self._reply(p, found)
        self.stats["bad_request"] += 1
        p.sock.close()

    # ---- workers --------------------------------------------------------------

    def _fork_worker(self, p, rest, main, payload, ctx_id, ctx):
        from .. import _forkqueue
        p.sock.setblocking(True)
        flush_stdio()
        ch = _forkqueue.fork_channel()
        if ch.pid == 0:
            code = 0
            try:
                self._worker_child(ch, p.sock, rest, main, payload, ctx)
            except BaseException:  # noqa: B036 (never back into the loop)
                code = 70
            finally:
                flush_stdio()
                _forkqueue.child_exit(code)
        c = _Child()
        c.ch, c.sock, c.ctx, c.peer = ch, p.sock, ctx_id, p.peer
        c.started, c.eof, c.kill_at = False, False, None
        self.children.append(c)
        self.stats["workers"] += 1
        self._watch(ch.fileno(), select.POLLIN, ("child", c))
        self._watch(p.sock, _RDHUP | select.POLLHUP, ("hangup", c))
        logger.info("worker {} for {}", ch.pid, p.peer)

    def _worker_child(self, ch, sock, rest, main, payload, ctx):
        # drop every descriptor of the server's that is not ours
        self.socket.close()
        for q in self._pending.values():
            q.sock.close()
        for c in self.children:
            c.sock.close()
        if ctx is not None and main is None:
            main = ctx[0]
        setup_main(main)
        relay = None
        if self.ssl_context is not None:
            sock, relay = _wire.tls_relay(sock)
        try:
            self._run_worker(sock, ch, rest, ctx, payload)
        finally:
            if relay is not None:
                sock.close()
                relay.join(5.0)  # what the worker sent reaches the client

    def _run_worker(self, sock, ch, rest, ctx, payload):
        link = SocketLink(sock)
        link.buf += rest
        try:
            patches = {}
            if ctx is not None:
                target, args, kwargs, extra = remote_pickle.loads(ctx[1])
                patches = {"_target": target, "_args": list(args or ()),
                           "_kwargs": dict(kwargs or {}), **(extra or {})}
            worker = remote_pickle.loads(payload, extra_kwargs=patches)
            if not isinstance(worker, RemoteWorker):
                raise TypeError(f"not a RemoteWorker: {type(worker)!r}")
        except BaseException as e:  # noqa: B036 (reported to the client)
            if isinstance(e, Exception):  # logged as pyworkers does
                _remote_logger().error("Exception occurred in the worker "
                                       "code", exc_info=e)
            link.send(_wire.encode_final(False, e, None))
            return
        worker._serve_remote(sock, ch, link)

    def _child_readable(self, c):
        while True:
            try:
                data = c.ch.recv(0)
            except TimeoutError:
                return
            if data is None:
                c.eof = True
                self._unwatch(c.ch.fileno())
                self._reap(c, 2.0)
                return
            if data[0] == T_STARTED:
                c.started = True

    def _reap(self, c, timeout):
        if c.ch.wait(timeout) is None:
            return False
        self._unwatch(c.ch.fileno())
        self._unwatch(c.sock.fileno())
        c.sock.close()
        c.ch.close()
        self.children.remove(c)
        return True

    def _client_gone(self, c):
        """The connection hung up: the client left (or the worker, ending,
        shut it down). Nothing of the worker's may outlive it."""
        self._unwatch(c.sock.fileno())
        if c.ch.returncode is None and c.kill_at is None and not c.eof:
            logger.debug("connection of {} closed: ending worker {}", c.peer,
                         c.ch.pid)
            c.ch.kill(signal.SIGTERM)
            c.kill_at = time.monotonic() + 1.0

    def _read_late(self, p):
        """Before ``p`` is dropped at its deadline, reads what it has sent
        already: the deadline measures the peer, not this loop (busy in a
        reap, or not scheduled on a loaded machine, it may only look after
        a request that arrived in time). True if ``p`` is no longer pending
        (served or dropped meanwhile)."""
        fd = p.sock.fileno()
        for _ in range(64):  # bounded: each pass consumes what was ready
            if self._pending.get(fd) is not p:
                return True
            tls_buffered = self.ssl_context is not None and p.tls_done \
                and p.sock.pending()
            if not tls_buffered and not _readable_now(fd):
                return False
            self._conn_readable(p)
        return self._pending.get(fd) is not p

    def _stop_child(self, c):
        """Graceful stop without blocking the loop: the signal now, SIGTERM
        and SIGKILL later if needed."""
        if c.ch.returncode is None and c.started:
            try:
                os.kill(c.ch.pid, REQUEST_SIGNAL)
            except ProcessLookupError:
                pass
        if c.kill_at is None:
            c.kill_at = time.monotonic() + 1.0

    def _timers(self):
        now = time.monotonic()
        for p in list(self._pending.values()):
            if p.deadline <= now and not self._read_late(p):
                self.stats["timed_out"] += 1
                self._drop(p, "no authenticated request in time")
        for c in list(self.children):
            if c.ch.wait(0) is not None:
                self._reap(c, 0)
            elif c.kill_at is not None and c.kill_at <= now:
                c.ch.kill(signal.SIGKILL)
                c.kill_at = now + 5.0

    # ---- stopping ---------------------------------------------------------------

    def _wait_children(self, timeout):
        deadline = time.monotonic() + timeout
        while self.children:
            for c in list(self.children):
                if c.ch.wait(0) is not None:
                    self._reap(c, 0)
            left = deadline - time.monotonic()
            if not self.children or left <= 0:
                break
            live = [c.ch for c in self.children]
            from .. import _forkqueue
            for ch in _forkqueue.wait_channels(live, min(left, 0.05)):
                try:
                    while ch.recv(0) is not None:
                        pass
                except TimeoutError:
                    pass
        return not self.children

    def _shutdown(self):
        logger.info("Closing down...")
        if self.on_stop is not None:
            self.on_stop()
        if self.socket is not None:
            self.socket.close()
        for p in list(self._pending.values()):
            self._drop(p)
        for c in list(self.children):
            if c.ch.returncode is None and c.started:
                try:
                    os.kill(c.ch.pid, REQUEST_SIGNAL)
                except ProcessLookupError:
                    pass
        if not self._wait_children(1.0):
            for c in self.children:
                c.ch.kill(signal.SIGTERM)
            if not self._wait_children(1.0):
                for c in self.children:
                    c.ch.kill(signal.SIGKILL)
                self._wait_children(5.0)
        for c in list(self.children):  # could not be reaped: let go
            c.sock.close()
            c.ch.close()
        self.children.clear()
        self.contexts.clear()
        self._fds.clear()
        self.closed = True


def _remote_logger():
    from .remote import logger as remote_logger
    return remote_logger


def setup_main(path):
    """Makes the client's script importable as ``__mp_main__`` (and
    ``__main__``), so what it defines resolves when unpickled."""
    import runpy
    import sys
    import types
    if not path:
        return
    current = sys.modules.get("__main__")
    cur_file = getattr(current, "__file__", None)
    if cur_file and os.path.abspath(cur_file) == path:
        sys.modules.setdefault("__mp_main__", current)
        return  # a fork of the client: it is already there
    if not os.path.isfile(path):
        logger.debug("main file {} is not on this machine", path)
        return
    d = os.path.dirname(path)
    if d not in sys.path:
        sys.path.insert(0, d)
    module = types.ModuleType("__mp_main__")
    module.__file__ = path
    sys.modules["__mp_main__"] = module
    old_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        module.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
    except BaseException as e:  # noqa: B036 (a script that fails here)
        # debug, as pyworkers: what the script defines may not be needed
        logger.debug("importing {} failed: {!r}", path, e, exc_info=True)
        if old_main is not None:
            sys.modules["__main__"] = old_main
        sys.modules.pop("__mp_main__", None)


#: How long a stopping server may take to end its workers (a second for the
#: graceful stage, a second after SIGTERM, then SIGKILL and the reaping).
SERVER_STOP_GRACE = 2.5


class RemoteServerProcess(ProcessWorker):
    """A `RemoteServer` in a forked process (what `spawn_server` returns):
    a worker with ``addr``, the address it listens on (None if it could
    not start; ``error`` then says why)."""

    def __init__(self, addr, name=None, close_on_none=False, *, authkey=None,
                 **server_kwargs):
        self._req_addr = addr
        self._close_on_none = close_on_none
        self._server_authkey = authkey
        self._server_kwargs = server_kwargs
        self._addr = None
        super().__init__(None, name=name, run=True)

    def _start(self):
        super()._start()
        deadline = time.monotonic() + 30.0
        try:
            while not self._aux and not self._link.eof:
                if not self._read(max(0.0, deadline - time.monotonic())):
                    break
        except TimeoutError:
            pass
        if self._aux:
            self._addr = tuple(self._aux.popleft())
        else:
            self._await(5.0)

    @property
    def addr(self):
        return self._addr

    def run(self):
        server = RemoteServer(self._req_addr, self._close_on_none,
                              authkey=self._server_authkey,
                              **self._server_kwargs)
        server.open_socket()
        self._send_aux(server.addr)
        server.on_stop = self._disarm
        return server.run()

    def _disarm(self):
        self._terminable = False

    def terminate(self, timeout=1, force=True):
        """Stops the server: its workers are terminated gracefully, then
        forcefully after about a second; when this returns, their clients
        have seen their outcomes. With ``force`` the server is given
        ``timeout`` plus the time its own bounded stop takes before it is
        signalled (pyworkers' default ``timeout=1`` would otherwise cut
        that stop short)."""
        if force and timeout is not None and timeout >= 0:
            timeout = timeout + SERVER_STOP_GRACE
        return super().terminate(timeout, force)


def spawn_server(addr, close_on_none=False, **kwargs):
    """Starts a `RemoteServer` in a forked process and returns its handle
    once it listens (port 0 picks a free port: see ``.addr``)."""
    return RemoteServerProcess(addr, close_on_none=close_on_none, **kwargs)


def run_server(addr, install_handlers=True, close_on_none=True, **kwargs):
    """Runs a server in the calling thread until it is stopped
    (``install_handlers``: see `RemoteServer.install_handlers`)."""
    server = RemoteServer(addr, close_on_none=close_on_none, **kwargs)
    server.open_socket()
    if install_handlers:
        server.install_handlers()
    server.run()


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .remote import (ConnectionClosedError, recv_msg,  # noqa: F401
                     send_msg, set_keepalive, set_linger)
from .utils import foreign_raise, is_windows  # noqa: F401


if __name__ == "__main__":  # python3 -m forkqueue.workers.remote_server
    import sys as _sys
    from ..server import main as _main
    _sys.exit(_main())
