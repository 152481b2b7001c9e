"""forkqueue.workers over TLS (optional): a server with a certificate,
clients that trust it; authentication still runs inside TLS."""
import os
import shutil
import ssl
import subprocess

import pytest

from forkqueue.workers import (AuthenticationError, PersistentRemoteWorker,
                               RemoteContext, RemoteWorker,
                               WorkerTerminatedError, spawn_server)

KEY = "forkqueue-workers-tests"


@pytest.fixture(scope="module", autouse=True)
def authkey():
    """The tests' shared key, set for this module only and restored after
    it, so it never leaks into other files run in the same process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORKQUEUE_AUTHKEY", KEY)
        yield KEY


if shutil.which("openssl") is None:
    pytest.skip("needs the openssl program to make a certificate",
                allow_module_level=True)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)
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
