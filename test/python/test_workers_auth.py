"""The worker server's authentication and its resistance to bad peers:
wrong key, no key, replay, garbage before and after the handshake, silent
clients, many connections; nothing unauthenticated is ever unpickled."""
import os
import pickle
import socket
import stat
import struct
import subprocess
import sys
import time

import pytest

from helpers import authkey_fixture, wait_until
from forkqueue import _auth
from forkqueue.workers import AuthenticationError, RemoteServer, RemoteWorker
from forkqueue.workers import spawn_server

KEY = "forkqueue-workers-tests"


authkey = authkey_fixture(KEY)


@pytest.fixture(scope="module")
def server():
    srv = spawn_server(("127.0.0.1", 0), handshake_timeout=0.5)
    assert srv.addr is not None, srv.error
    yield srv
    assert srv.terminate()


def square(x):
    return x * x


def served(server):
    w = RemoteWorker(square, args=(7,), host=server.addr)
    return w.wait(5) and w.result == 49


def raw(server):
    s = socket.create_connection(server.addr, timeout=5)
    hello = _recv(s, _auth.HELLO_LEN)
    assert hello.startswith(_auth.MAGIC)
    return s, hello


def _recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def closed_by_peer(s, timeout=5):
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Trap:
    """Unpickling it creates a file: proof that something was unpickled."""
    path = None

    def __reduce__(self):
        return (open, (self.path, "w"))


def trap_bytes(path):
    Trap.path = path
    data = pickle.dumps(Trap())
    return struct.pack("!I", len(data)) + data


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_wrong_key_fails_within_seconds(server):
    t0 = time.monotonic()
    with pytest.raises(AuthenticationError, match="authentication failed"):
        RemoteWorker(square, args=(1,), host=server.addr, authkey="wrong")
    assert time.monotonic() - t0 < 3
    assert served(server)


def test_unauthenticated_pickle_is_never_loaded(server, tmp_path):
    trap = str(tmp_path / "trapped")
    # a client that skips the handshake and sends a pickle at once
    s, _ = raw(server)
    s.sendall(trap_bytes(trap) * 4)
    assert closed_by_peer(s)
    s.close()
    # a client that fails the handshake, then sends a pickle
    s, hello = raw(server)
    answer, _, _ = _auth.client_answer(b"wrong", hello)
    s.sendall(answer + trap_bytes(trap))
    assert _recv(s, 2) == b"NO" and closed_by_peer(s)
    s.close()
    assert not os.path.exists(trap)
    assert served(server)


def test_replayed_handshake_is_refused(server):
    s, hello = raw(server)
    answer, c, chal = _auth.client_answer(KEY.encode(), hello)
    s.sendall(answer)
    verdict = _recv(s, _auth.VERDICT_LEN)
    _auth.client_check(KEY.encode(), verdict, c, chal)  # genuine: accepted
    s.close()
    s2, hello2 = raw(server)
    assert hello2 != hello  # a fresh challenge
    s2.sendall(answer)  # the recorded answer
    assert _recv(s2, 2) == b"NO" and closed_by_peer(s2)
    s2.close()
    # and a recorded server verdict does not fool a client either
    with pytest.raises(AuthenticationError):
        _auth.client_check(KEY.encode(), verdict, os.urandom(32), chal)


def test_garbage_before_and_after_the_handshake(server, tmp_path):
    s, _ = raw(server)
    s.sendall(os.urandom(200))
    assert _recv(s, 2) == b"NO" and closed_by_peer(s)
    s.close()
    for garbage in (b"\xff\xff\xff\xff" + os.urandom(100),  # huge length
                    struct.pack("!I", 50) + os.urandom(50),  # not a pickle
                    trap_bytes(str(tmp_path / "t"))):  # a global: refused
        s, hello = raw(server)
        answer, c, chal = _auth.client_answer(KEY.encode(), hello)
        s.sendall(answer)
        _auth.client_check(KEY.encode(), _recv(s, _auth.VERDICT_LEN), c,
                           chal)
        s.sendall(garbage)
        assert closed_by_peer(s)
        s.close()
    assert not os.path.exists(tmp_path / "t")
    assert served(server)


def test_silent_client_is_dropped_while_others_are_served(server):
    silent = socket.create_connection(server.addr)
    authed_silent, hello = raw(server)
    answer, c, chal = _auth.client_answer(KEY.encode(), hello)
    authed_silent.sendall(answer)
    t0 = time.monotonic()
    assert served(server) and served(server)
    assert closed_by_peer(silent, 5) and closed_by_peer(authed_silent, 5)
    assert time.monotonic() - t0 < 4.5  # deadline 0.5 s, a busy machine
    silent.close()
    authed_silent.close()


def test_thousand_connections_no_leak_no_crash(server):
    assert served(server)
    base = fds(server.pid)
    for i in range(1000):
        s = socket.create_connection(server.addr)
        if i % 3 == 0:
            s.sendall(os.urandom(10))
        s.close()
    assert wait_until(lambda: fds(server.pid) <= base, 10), \
        (fds(server.pid), base)
    assert server.is_alive() and served(server)


def test_key_file_made_private_and_others_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("FORKQUEUE_AUTHKEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    key = _auth.get_authkey()
    path = _auth.key_file_path()
    assert path.startswith(str(tmp_path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(key) == 64
    assert _auth.get_authkey() == key  # shared by clients and servers
    os.chmod(path, 0o644)
    with pytest.raises(AuthenticationError, match="read by others"):
        _auth.get_authkey()
    with pytest.raises(AuthenticationError):
        RemoteServer(("127.0.0.1", 0))


def test_server_without_a_key_refuses_to_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = dict(os.environ, XDG_CONFIG_HOME=str(blocker / "sub"))
    env.pop("FORKQUEUE_AUTHKEY", None)
    out = subprocess.run([sys.executable, "-m", "forkqueue.server",
                          "--port", "0"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1
    assert "cannot start" in out.stderr and "no key" in out.stderr


def test_random_bytes_at_every_stage(server):
    """A small fuzz of the handshake and request reader (seeded): random
    lengths of random bytes, before and after authenticating."""
    import random
    rnd = random.Random(9)
    base = fds(server.pid)
    for i in range(150):
        s, hello = raw(server)
        if i % 2:
            answer, c, chal = _auth.client_answer(KEY.encode(), hello)
            s.sendall(answer)
            _auth.client_check(KEY.encode(), _recv(s, _auth.VERDICT_LEN), c,
                               chal)
        n = rnd.choice([0, 1, 3, 4, 5, 63, 64, 65, 200, 5000])
        s.sendall(bytes(rnd.getrandbits(8) for _ in range(n)))
        s.close()
    assert wait_until(lambda: fds(server.pid) <= base, 10)
    assert server.is_alive() and served(server)
