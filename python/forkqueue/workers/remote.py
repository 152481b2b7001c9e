"""`RemoteWorker`: a worker in a process of a worker server.

The worker object itself travels to the server (pickled with
``__getstate__(remote=True)``; its class, target and arguments by
reference, like multiprocessing's spawn), so overrides of ``run`` and
``do_work`` run there. The server forks a process per worker, which then
talks to this client directly over the authenticated connection.
"""
import collections.abc as cabc
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time

from .. import _auth
from . import _wire, remote_pickle
from ._linked import LinkedWorker, deadline_left
from ._wire import (T_ARGS, T_CLOSE, T_INPUT, T_INPUTS, T_KILL, T_TERM,
                    SocketLink)
from .utils import SupportClassPropertiesMeta, classproperty
from .worker import WorkerTerminatedError, WorkerType, _check_timeout

__all__ = ["RemoteWorker", "RemoteWorkerMeta", "default_port",
           "sanitize_target_host", "client_main_path", "ConnectionClosedError",
           "GracefulExitError", "send_msg", "recv_msg", "set_linger",
           "set_keepalive"]

default_port = 60006
#: Bound on connecting, authenticating and seeing the worker start.
START_TIMEOUT = 30.0
_TERMINATE = object()

# Attributes that mean nothing on the server (the client's link and
# buffers); user attributes travel.
_LOCAL = ("_link", "_rq", "_aux", "_buffer", "_pool_wakeup", "_startup",
          "_inputs", "_reader", "_corked", "_results_ep")


class ConnectionClosedError(Exception):
    """`send_msg`/`recv_msg`: the connection is closed or broken."""


class GracefulExitError(Exception):
    """pyworkers' internal signal for a clean exit; kept for programs that
    name it."""


class RemoteWorkerMeta(remote_pickle.SupportRemoteGetStateMeta,
                       SupportClassPropertiesMeta):
    """Metaclass of `RemoteWorker` (class properties and the remote
    ``__getstate__``)."""


def send_msg(sock, msg, comment=None):
    """Sends ``msg`` on a connected socket as pyworkers frames it: 4 bytes
    of length (big endian), then ``remote_pickle.dumps(msg)``. Raises
    `ConnectionClosedError` if the connection is gone. (Plain frames on a
    socket of the program's own: forkqueue's workers and server speak
    their authenticated protocol, not this.)"""
    data = remote_pickle.dumps(msg)
    try:
        sock.sendall(struct.pack("!I", len(data)) + data)
    except OSError as e:
        raise ConnectionClosedError() from e


def _recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionClosedError()
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_msg(sock, state_overwrites=None, comment=None):
    """Receives one `send_msg` frame and unpickles it with
    ``remote_pickle.loads(data, extra_kwargs=state_overwrites)``; raises
    `ConnectionClosedError` if the connection ends first. Unpickling runs
    code: only use it on a connection whose peer is trusted."""
    try:
        (size,) = struct.unpack("!I", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    except (OSError, struct.error) as e:
        raise ConnectionClosedError() from e
    return remote_pickle.loads(data, extra_kwargs=state_overwrites)


def set_linger(sock, enable, timeout):
    """Sets SO_LINGER on ``sock`` (``timeout`` in seconds)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", int(enable), int(timeout)))


def set_keepalive(sock, enable, time=None, interval=None, probes=None):
    """Turns TCP keepalive on ``sock`` on or off; ``time``, ``interval``
    and ``probes`` set TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enable))
    for opt, value in ((socket.TCP_KEEPIDLE, time),
                       (socket.TCP_KEEPINTVL, interval),
                       (socket.TCP_KEEPCNT, probes)):
        if value is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, int(value))


def sanitize_target_host(host):
    """``'h'``, ``'h:port'``, ``(h, port)`` or None -> ``(ip, port)``."""
    if not host:
        return ("127.0.0.1", default_port)
    if isinstance(host, str):
        if ":" in host:
            h, port = host.rsplit(":", 1)
            return (socket.gethostbyname(h), int(port))
        return (socket.gethostbyname(host), default_port)
    if not isinstance(host, cabc.Sequence) or len(host) != 2:
        raise TypeError(f'Invalid type for "host" parameter: '
                        f"{type(host).__name__}")
    return (socket.gethostbyname(host[0]), int(host[1]))


def client_main_path():
    """Absolute path of the running script (None in an interpreter)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return os.path.abspath(path) if path else None


class RemoteWorker(LinkedWorker, metaclass=RemoteWorkerMeta):
    """Runs ``do_work()`` on a worker server (see `RemoteServer`)."""

    def __init__(self, *args, host=None, context=None, main_path=None,
                 authkey=None, ssl_context=None, **kwargs):
        self._target_host = sanitize_target_host(host)
        self._context = context
        self._main_path = (main_path if main_path is not None
                           else client_main_path())
        self._authkey = authkey
        self._ssl_context = ssl_context
        if context is not None:
            kwargs.setdefault("run", True)
        super().__init__(*args, **kwargs)

    @classproperty
    def worker_type(cls):
        return WorkerType.REMOTE

    _dumps = staticmethod(remote_pickle.dumps)
    _loads = staticmethod(remote_pickle.loads)

    def __getstate__(self, remote=False):
        state = self.__dict__.copy()
        if remote:
            for k in _LOCAL:
                state.pop(k, None)
            state["_authkey"] = None
            state["_ssl_context"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ---- client side ---------------------------------------------------------

    def _start(self):
        key = _auth.get_authkey(self._authkey)
        payload = remote_pickle.dumps(self)
        link = _wire.connect(self._target_host, key, START_TIMEOUT,
                             self._ssl_context)
        try:
            link.send(_wire.dumps(("worker", self._context, self._main_path,
                                   payload)))
        except OSError:
            link.close()
            raise
        self._link = link
        self._dead = False
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while not self._seen_started and self._final is None:
                if not self._read(deadline_left(deadline)):
                    break
        except TimeoutError:
            link.close()
            self._finish()
            raise TimeoutError(f"the remote worker at {self._target_host} "
                               "did not start in time") from None
        if self._final is None and not self._seen_started:
            # The connection ended before the worker started: the server
            # refused or dropped the request (its handshake deadline, a
            # failed fork...). No worker ran, so there is no outcome to
            # report and nothing to terminate: saying so here is the only
            # honest answer (a silently dead worker would make a later
            # terminate() look like a lost graceful stop, error None).
            link.close()
            self._finish()
            raise ConnectionError(
                f"the worker server at {self._target_host} closed the "
                "connection before the worker started (request refused or "
                "not read in time: see the server's log)")
        if self._final is not None or link.eof:
            self._finish()

    def _link_closed(self):
        self._link.close()

    def is_alive(self):
        if self._is_child:
            return True
        if self._dead:
            return False
        self._drain()
        if self._final is not None or self._link.eof:
            self._finish()
            return False
        return True

    def _await(self, timeout):
        if self._dead:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._final is None:
                if not self._read(deadline_left(deadline)):
                    break
        except TimeoutError:
            return False
        self._finish()
        return True

    @property
    def is_remote_side(self):
        """True inside the worker, on the server (the pyworkers name)."""
        return bool(self._is_child)

    def wait(self, timeout=None, remote_timeout=None):
        """Waits up to ``timeout`` seconds (None: no limit) for the worker
        to end; True if it has. (``remote_timeout``: accepted for
        compatibility; the wait is one.)"""
        _check_timeout(timeout)
        _check_timeout(remote_timeout)
        if self._is_child:
            raise ValueError("A worker cannot wait for itself")
        if not self._started:
            return True
        return self._await(timeout)

    def terminate(self, timeout=5, force=True, remote_timeout=1, *,
                  _release_remote_ctrl=False):
        """Raises `WorkerTerminatedError` in the remote target, waits up to
        ``timeout`` seconds, then (``force``) has the worker's process group
        killed on the server and drops the connection. Never signals the
        caller's process. (``remote_timeout`` and ``_release_remote_ctrl``:
        accepted for compatibility with pyworkers.)"""
        _check_timeout(timeout)
        _check_timeout(remote_timeout)
        if self._is_child:
            raise WorkerTerminatedError()
        if not self.is_alive():
            return True
        self._send_ctl(T_TERM)
        self._release_child()
        if self._await(timeout):
            return True
        if not force:
            return False
        self._send_ctl(T_KILL)
        if not self._await(2.0):
            # closing the connection makes the server kill the worker
            self._final = None
            self._finish()
        return True

    def _send_ctl(self, tag):
        try:
            self._link.send(bytes([tag]))
        except OSError:
            pass

    # ---- server side ---------------------------------------------------------

    def _serve_remote(self, sock, ch, link=None):
        """In the server's forked process: runs this worker for its client
        on ``sock``; ``ch`` is the channel to the server."""
        if link is None:
            link = SocketLink(sock)
        self._child_setup(link)
        self._inputs = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_client,
                                        daemon=True)
        self._reader.start()
        started = self._started_message()
        ch.send(started)  # the server may now signal us
        link.send(started)
        outcome = self._child_run()
        self._child_report(outcome)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_client(self):
        """Reader thread of the worker: inputs, close, terminate, kill."""
        main = threading.main_thread().ident
        while True:
            data = self._link.recv(None)
            if data is None:
                self._inputs.put(None)  # decoded as the end of input
                return
            tag = data[0]
            if tag == T_TERM:
                # counted first: an idle worker may act on it as an input
                mine = self._count_term_request()
                self._inputs.put(_TERMINATE)
                threading.Thread(target=self._resignal,
                                 args=(main, mine), daemon=True,
                                 name="forkqueue terminate").start()
            elif tag == T_KILL:
                os.killpg(os.getpgrp(), signal.SIGTERM)
                time.sleep(1.0)
                os.killpg(os.getpgrp(), signal.SIGKILL)
            elif tag == T_INPUT or tag == T_INPUTS or tag == T_ARGS:
                self._inputs.put(data)
            elif tag == T_CLOSE:
                self._inputs.put(data)

    def _c_next_input(self):
        return self._next_input_from(self._get_input)

    def _get_input(self):
        item = self._inputs.get()
        if item is _TERMINATE:
            self._term_acted()
            raise WorkerTerminatedError()
        return item

    def _input_ready(self):
        return bool(self._in_q) or not self._inputs.empty()


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .utils import (Pipe, foreign_raise, get_hostname,  # noqa: F401
                    get_logger, gettid, is_windows, setproctitle,
                    setthreadtitle)
from .worker import Worker  # noqa: F401

logger = get_logger(__name__)
