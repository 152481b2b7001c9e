"""forkqueue.workers over TLS (optional): a server with a certificate,
clients that trust it; authentication still runs inside TLS."""
import os
import shutil
import ssl

import pytest

from helpers import authkey_fixture, tls_contexts
from forkqueue.workers import (AuthenticationError, PersistentRemoteWorker,
                               RemoteContext, RemoteWorker,
                               WorkerTerminatedError, spawn_server)

KEY = "forkqueue-workers-tests"


authkey = authkey_fixture(KEY)


if shutil.which("openssl") is None:
    pytest.skip("needs the openssl program to make a certificate",
                allow_module_level=True)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    server_ctx, client_ctx = tls_contexts(tmp_path_factory.mktemp("tls"))
    srv = spawn_server(("127.0.0.1", 0), ssl_context=server_ctx,
                       handshake_timeout=1.0)
    assert srv.addr is not None, srv.error
    yield srv, client_ctx
    assert srv.terminate()


def square(x):
    return x * x


def sleeper():
    import time
    time.sleep(30)


def test_workers_over_tls(tls):
    srv, ctx = tls
    w = RemoteWorker(square, args=(4,), host=srv.addr, ssl_context=ctx)
    assert w.wait(5) and w.result == 16
    p = PersistentRemoteWorker(square, host=srv.addr, ssl_context=ctx)
    for i in range(200):
        p.enqueue(i)
    assert p.call(1000) == 10 ** 6
    assert p.wait(10) and p.result == 201
    assert list(p.results_iter()) == [i * i for i in range(200)]
    t = RemoteWorker(sleeper, host=srv.addr, ssl_context=ctx)
    assert t.terminate() and isinstance(t.error, WorkerTerminatedError)
    c = RemoteContext("c", host=srv.addr, target=square, ssl_context=ctx)
    cw = PersistentRemoteWorker(None, context="c", host=srv.addr,
                                ssl_context=ctx)
    assert cw.call(3) == 9
    cw.wait()
    c.close()


def test_plain_client_or_wrong_key_fails(tls):
    srv, ctx = tls
    with pytest.raises((ConnectionError, TimeoutError)):
        RemoteWorker(square, args=(1,), host=srv.addr)
    with pytest.raises(AuthenticationError):
        RemoteWorker(square, args=(1,), host=srv.addr, ssl_context=ctx,
                     authkey="wrong")
    untrusting = ssl.create_default_context()  # does not know the cert
    with pytest.raises(ssl.SSLError):
        RemoteWorker(square, args=(1,), host=srv.addr,
                     ssl_context=untrusting)
    w = RemoteWorker(square, args=(5,), host=srv.addr, ssl_context=ctx)
    assert w.wait(5) and w.result == 25
