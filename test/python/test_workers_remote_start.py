"""forkqueue.workers: the start of a remote worker, over plain TCP and TLS.

A terminate right after construction always raises WorkerTerminatedError in
the target; a connection the server ends before the worker starts makes
the constructor raise (never a silently dead worker whose terminate would
report no error); a request that arrived in time is served even when the
server's loop only looks at it after its deadline."""
import select
import shutil
import socket
import threading
import time

import pytest

from helpers import authkey_fixture, tls_contexts
from forkqueue import _auth
from forkqueue.workers import (RemoteWorker, WorkerTerminatedError,
                               spawn_server, _wire)
from forkqueue.workers.remote_server import RemoteServer

KEY = "forkqueue-workers-tests"
MODES = ["plain", "tls"]


authkey = authkey_fixture(KEY)


@pytest.fixture(scope="module")
def contexts(tmp_path_factory):
    """``{"plain": (None, None), "tls": (server_ctx, client_ctx)}``."""
    out = {"plain": (None, None)}
    if shutil.which("openssl") is not None:
        out["tls"] = tls_contexts(tmp_path_factory.mktemp("tls"))
    return out


def ctx_for(contexts, mode):
    if mode not in contexts:
        pytest.skip("needs the openssl program to make a certificate")
    return contexts[mode]


def sleeper():
    time.sleep(30)


@pytest.mark.parametrize("mode", MODES)
def test_terminate_right_after_construction(contexts, mode):
    server_ctx, client_ctx = ctx_for(contexts, mode)
    srv = spawn_server(("127.0.0.1", 0), ssl_context=server_ctx)
    assert srv.addr is not None, srv.error
    try:
        for i in range(50):
            w = RemoteWorker(sleeper, host=srv.addr, ssl_context=client_ctx)
            assert w.terminate(), i
            assert isinstance(w.error, WorkerTerminatedError), (i, w.error)
    finally:
        assert srv.terminate()


def _fake_server(server_ctx, served):
    """A server that authenticates one client, reads its request whole and
    hangs up without starting a worker (what a dropped request looks like
    to the client). Returns the listening socket and the thread."""
    lsock = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = lsock.accept()
        try:
            if server_ctx is not None:
                conn = server_ctx.wrap_socket(conn, server_side=True)
            hello, challenge = _auth.server_hello()
            conn.sendall(hello)
            deadline = time.monotonic() + 10
            answer = _wire.recv_exact(conn, _auth.ANSWER_LEN, deadline)
            verdict = _auth.server_check(_auth.get_authkey(KEY), challenge,
                                         answer)
            conn.sendall(verdict)
            if _wire.SocketLink(conn).recv(10) is not None:
                served.set()
        finally:
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return lsock, t


@pytest.mark.parametrize("mode", MODES)
def test_connection_ended_before_start_raises(contexts, mode):
    server_ctx, client_ctx = ctx_for(contexts, mode)
    served = threading.Event()
    lsock, t = _fake_server(server_ctx, served)
    try:
        with pytest.raises(ConnectionError, match="before the worker "
                                                  "started"):
            RemoteWorker(sleeper, host=lsock.getsockname(),
                         ssl_context=client_ctx)
        assert served.is_set()  # the request had been sent and read whole
    finally:
        t.join(10)
        lsock.close()
    assert not t.is_alive()


@pytest.mark.parametrize("mode", MODES)
def test_request_sent_in_time_is_served_after_deadline(contexts, mode):
    """The loop steps by hand: the client authenticates and sends its
    request; the server looks only after the deadline has passed (as when
    its loop was busy or not scheduled) and must serve it, not drop it."""
    server_ctx, client_ctx = ctx_for(contexts, mode)
    srv = RemoteServer(("127.0.0.1", 0), authkey=KEY, handshake_timeout=30,
                       ssl_context=server_ctx)
    srv.open_socket()
    srv._poll = select.poll()
    srv._watch(srv.socket, select.POLLIN, ("listen", None))
    sent, answer = threading.Event(), []

    def client():
        link = _wire.connect(srv.addr, _auth.get_authkey(KEY), 10,
                             client_ctx)
        try:
            link.send(_wire.dumps(("ctx-create", "late", None, b"")))
            sent.set()
            answer.append(link.recv(10))
        finally:
            link.close()

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        def authed():
            return [p for p in srv._pending.values() if p.authed]

        deadline = time.monotonic() + 10
        # step the loop until the client is authenticated, not further:
        # it sends its request only once it has the verdict
        while not authed() and time.monotonic() < deadline:
            for fd, ev in srv._poll.poll(50):
                entry = srv._fds.get(fd)
                if entry is not None:
                    srv._event(entry, ev)
        (p,) = authed()
        assert sent.wait(10)
        fd = p.sock.fileno()
        ready = select.poll()
        ready.register(fd, select.POLLIN)
        assert ready.poll(10000)  # the request is there, unread
        p.deadline = time.monotonic() - 1.0
        srv._timers()
        assert srv.stats["timed_out"] == 0
        assert "late" in srv.contexts
        t.join(10)
        assert answer and _wire.loads(answer[0]) is True
    finally:
        srv._shutdown()
        t.join(10)
