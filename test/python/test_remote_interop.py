"""The C and Python sides of remote workers against each other: the C server
(tools/fq-server) and forkqueue._auth speak the same authentication bytes
and key file; each server refuses the other's requests with a clear
message instead of misreading them; a C client runs jobs on fq-server with
functions from a plugin.

The C programs are found in the build tree next to the package (skipped
when the package is installed elsewhere, as in the packaging test).
"""
import os
import pickle
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import forkqueue
from forkqueue import _auth
from helpers import make_cert

BUILD = Path(forkqueue.__file__).resolve().parent.parent.parent
TOOLS = BUILD / "tools"
FQ_SERVER = TOOLS / "fq-server"
PLUGIN = TOOLS / "fq_test_plugin.so"
CLIENT = TOOLS / "fq_remote_client"

pytestmark = pytest.mark.skipif(
    not (FQ_SERVER.exists() and CLIENT.exists() and PLUGIN.exists()),
    reason="the C tools are not built next to this package")

KEY = "interop-key"
FQ_EPROTO, FQ_EAUTH = 13, 19


def env_with(**kv):
    env = dict(os.environ)
    env.pop("FORKQUEUE_AUTHKEY", None)
    for k, v in kv.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class Server:
    """A server process printing "Listening on HOST:PORT" first."""

    def __init__(self, argv, env):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("Listening on "):
            self.p.kill()
            _, err = self.p.communicate(timeout=10)
            raise AssertionError(f"server did not start: {line!r} {err!r}")
        self.port = int(line.rsplit(":", 1)[1])
        self.err = None

    def stop(self, sig=signal.SIGTERM):
        if self.err is None:
            self.p.send_signal(sig)
            _, self.err = self.p.communicate(timeout=20)
        return self.err


@pytest.fixture
def c_server(tmp_path):
    s = Server([str(FQ_SERVER), "--port", "0", "-v", "--handshake-timeout",
                "2", "--load", str(PLUGIN)],
               env_with(FORKQUEUE_AUTHKEY=KEY,
                        XDG_CONFIG_HOME=str(tmp_path)))
    yield s
    s.stop()
    assert s.p.returncode == 0, s.err


@pytest.fixture
def py_server(tmp_path):
    s = Server([sys.executable, "-m", "forkqueue.server", "--port", "0",
                "-v", "--handshake-timeout", "2"],
               env_with(FORKQUEUE_AUTHKEY=KEY,
                        XDG_CONFIG_HOME=str(tmp_path)))
    yield s
    s.stop(signal.SIGINT)


def recv_exact(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        d = sock.recv(n - len(buf))
        if not d:
            break
        buf += d
    return buf


def python_handshake(port, key):
    """forkqueue._auth's client side against the server on port."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    hello = recv_exact(sock, _auth.HELLO_LEN)
    answer, c, s = _auth.client_answer(key, hello)
    sock.sendall(answer)
    verdict = recv_exact(sock, _auth.VERDICT_LEN)
    return sock, verdict, c, s


def closed_within(sock, timeout):
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def run_client(port, n, env):
    return subprocess.run([str(CLIENT), f"127.0.0.1:{port}", str(n)],
                          capture_output=True, text=True, timeout=120,
                          env=env)


def test_python_auth_against_c_server(c_server):
    sock, verdict, c, s = python_handshake(c_server.port, KEY.encode())
    _auth.client_check(KEY.encode(), verdict, c, s)  # proves the C server
    sock.close()
    sock, verdict, c, s = python_handshake(c_server.port, b"wrong")
    assert verdict == b"NO"
    with pytest.raises(_auth.AuthenticationError, match="rejected our key"):
        _auth.client_check(b"wrong", verdict, c, s)
    assert closed_within(sock, 5)
    sock.close()


def test_c_client_on_c_server(c_server):
    r = run_client(c_server.port, 300, env_with(FORKQUEUE_AUTHKEY=KEY))
    assert r.returncode == 0, r.stderr
    ok, n, _, remote = r.stdout.split()
    assert (ok, int(n)) == ("ok", 300)
    r = run_client(c_server.port, 10, env_with(FORKQUEUE_AUTHKEY="wrong"))
    assert r.returncode == FQ_EAUTH, r.stderr
    assert "rejected our key" in r.stderr


def test_python_request_refused_by_c_server(c_server):
    sock, verdict, c, s = python_handshake(c_server.port, KEY.encode())
    _auth.client_check(KEY.encode(), verdict, c, s)
    req = pickle.dumps(("worker", None, None, b""))
    sock.sendall(struct.pack("!I", len(req)) + req)
    assert closed_within(sock, 5)
    sock.close()
    err = c_server.stop()
    assert "refusing a Python forkqueue.workers request" in err
    assert "python3 -m forkqueue.server" in err


def test_python_worker_on_c_server_fails_fast(c_server):
    from forkqueue.workers import RemoteWorker
    t0 = time.monotonic()
    with pytest.raises(Exception):
        w = RemoteWorker(abs, args=(-1,), host=("127.0.0.1", c_server.port),
                         authkey=KEY)
        w.start()
        w.wait(10)
        w.result  # noqa: B018 (raises: the worker never ran)
    assert time.monotonic() - t0 < 10


def test_c_client_refused_by_python_server(py_server):
    r = run_client(py_server.port, 10, env_with(FORKQUEUE_AUTHKEY=KEY))
    assert r.returncode == FQ_EPROTO, (r.stdout, r.stderr)
    assert "does not serve C engine workers" in r.stderr
    err = py_server.stop(signal.SIGINT)
    assert "refusing a C engine request" in err


def test_key_file_shared_both_ways(tmp_path):
    # The C server makes the key file; Python reads the same key.
    env = env_with(XDG_CONFIG_HOME=str(tmp_path / "a"))
    s = Server([str(FQ_SERVER), "--port", "0"], env)
    try:
        path = tmp_path / "a" / "forkqueue" / "authkey"
        assert path.stat().st_mode & 0o777 == 0o600
        key = path.read_bytes().strip()
        assert len(key) == 64
        sock, verdict, c, sc = python_handshake(s.port, key)
        _auth.client_check(key, verdict, c, sc)
        sock.close()
    finally:
        s.stop()
    # Python makes it; the C client reads it.
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path / "b")
    try:
        key = _auth.get_authkey()
    finally:
        if old is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = old
    env = env_with(FORKQUEUE_AUTHKEY=key.decode())
    s = Server([str(FQ_SERVER), "--port", "0", "--load", str(PLUGIN)], env)
    try:
        r = run_client(s.port, 20,
                       env_with(XDG_CONFIG_HOME=str(tmp_path / "b")))
        assert r.returncode == 0, r.stderr
    finally:
        s.stop()


def test_c_server_refuses_to_start_without_key(tmp_path):
    r = subprocess.run([str(FQ_SERVER), "--port", "0"], capture_output=True,
                       text=True, timeout=30,
                       env=env_with(XDG_CONFIG_HOME="/dev/null/none"))
    assert r.returncode == 1
    assert "cannot start: no key" in r.stderr
    keyfile = tmp_path / "forkqueue" / "authkey"
    keyfile.parent.mkdir()
    keyfile.write_text("k" * 40)
    keyfile.chmod(0o644)
    r = subprocess.run([str(FQ_SERVER), "--port", "0"], capture_output=True,
                       text=True, timeout=30,
                       env=env_with(XDG_CONFIG_HOME=str(tmp_path)))
    assert r.returncode == 1
    assert "chmod 600" in r.stderr
    r = subprocess.run([str(FQ_SERVER), "--bogus"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2


@pytest.mark.skipif(shutil.which("openssl") is None,
                    reason="no openssl command to make a certificate")
def test_python_auth_over_tls_against_c_server(tmp_path):
    """fq-server --tls-cert: the exchange runs inside TLS (checked with
    Python's ssl and forkqueue._auth); a plain client is dropped at the
    handshake deadline."""
    cert, key = make_cert(str(tmp_path), name="localhost")
    s = Server([str(FQ_SERVER), "--port", "0", "--handshake-timeout", "1",
                "--tls-cert", str(cert), "--tls-key", str(key),
                "--load", str(PLUGIN)],
               env_with(FORKQUEUE_AUTHKEY=KEY,
                        XDG_CONFIG_HOME=str(tmp_path)))
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        hello = recv_exact(sock, _auth.HELLO_LEN)
        answer, c, sc = _auth.client_answer(KEY.encode(), hello)
        sock.sendall(answer)
        verdict = recv_exact(sock, _auth.VERDICT_LEN)
        _auth.client_check(KEY.encode(), verdict, c, sc)  # inside TLS
        sock.close()
        plain = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        assert recv_exact(plain, _auth.HELLO_LEN, timeout=10) == b""
        plain.close()
    finally:
        s.stop()
    assert s.p.returncode == 0, s.err
