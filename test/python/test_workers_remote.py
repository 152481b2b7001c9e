"""forkqueue.workers: remote workers on a server started on loopback with a
random port: outcomes, overrides running on the server, persistent and
context workers, termination, server stop, the __main__ path."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import HERE, authkey_fixture, is_running, wait_until
from forkqueue.workers import (PersistentRemoteWorker, PersistentWorker,
                               RemoteContext, RemoteWorker, Worker,
                               WorkerTerminatedError, WorkerType,
                               spawn_server)

import forkqueue

KEY = "forkqueue-workers-tests"


authkey = authkey_fixture(KEY)

BUILD_PY = os.path.dirname(os.path.dirname(os.path.abspath(
    forkqueue.__file__)))


@pytest.fixture(scope="module")
def server():
    srv = spawn_server(("127.0.0.1", 0))
    assert srv.addr is not None, srv.error
    yield srv
    assert srv.terminate()


def square(x):
    return x * x


def whoami():
    return os.getpid()


def test_basic_remote_call_within_a_second(server):
    t0 = time.monotonic()
    w = RemoteWorker(square, args=(3,), host=server.addr)
    assert w.wait(1) and time.monotonic() - t0 < 1
    assert (w.result, w.has_error, w.error) == (9, False, None)
    assert w.pid not in (os.getpid(), server.pid) and w.is_remote
    w2 = Worker.create(WorkerType.REMOTE, target=whoami,
                       host=f"127.0.0.1:{server.addr[1]}")
    w2.wait()
    assert w2.result == w2.pid


def test_remote_error_type(server):
    def boom():
        raise KeyError("remote")

    # a nested function cannot travel by reference
    with pytest.raises(Exception):
        RemoteWorker(boom, host=server.addr)
    w = RemoteWorker(int, args=("x",), host=server.addr)
    w.wait()
    assert type(w.error) is ValueError and w.result is None


class Offset(RemoteWorker):
    def run(self, x):
        self.user_state = os.getpid()
        return x + self.offset


def test_overrides_and_attributes_run_on_the_server(server):
    w = Offset.__new__(Offset)
    w.offset = 1000  # set before the base __init__
    Offset.__init__(w, None, run=True, args=(1,), host=server.addr)
    w.wait()
    assert w.result == 1001 and w.user_state == w.pid != os.getpid()


def test_persistent_remote_worker(server):
    w = PersistentWorker.create(WorkerType.REMOTE, target=square,
                                host=server.addr)
    for i in range(4):
        w.enqueue(i)
    assert w.call(10) == 100
    assert w.wait(5) and w.result == 5
    assert list(w.results_iter()) == [0, 1, 4, 9]


def sleeper():
    time.sleep(30)


def swallower(ready=None):
    while True:
        try:
            if ready:
                open(ready, "w").close()
            time.sleep(10)
        except Exception:  # noqa: BLE001
            pass


def test_graceful_and_forced_terminate(server, tmp_path):
    w = RemoteWorker(sleeper, host=server.addr)
    assert w.terminate() and isinstance(w.error, WorkerTerminatedError)
    idle = PersistentRemoteWorker(square, host=server.addr)
    assert idle.call(2) == 4
    assert idle.terminate() and isinstance(idle.error, WorkerTerminatedError)
    ready = str(tmp_path / "ready")
    s = RemoteWorker(swallower, args=(ready,), host=server.addr)
    assert wait_until(lambda: os.path.exists(ready), 5)
    pid = s.pid
    assert s.terminate(timeout=0.3)
    assert s.has_error and s.error is None
    assert wait_until(lambda: not is_running(pid), 5)
    assert is_running(os.getpid())


def test_context(server):
    ctx = RemoteContext("ctx", host=server.addr, target=square)
    with pytest.raises(ValueError):
        RemoteContext("ctx", host=server.addr, target=square)
    w = PersistentRemoteWorker(None, context="ctx", host=server.addr)
    assert w.call(6) == 36
    w.wait()
    ctx.close()
    gone = PersistentRemoteWorker(None, context="ctx", host=server.addr)
    gone.wait(5)
    assert gone.has_error and "does not exist" in str(gone.error)


def test_server_stop_ends_workers_and_clients_see_it():
    srv = spawn_server(("127.0.0.1", 0))
    busy = RemoteWorker(sleeper, host=srv.addr)
    stubborn = RemoteWorker(swallower, host=srv.addr)
    t0 = time.monotonic()
    assert srv.terminate()
    assert time.monotonic() - t0 < 5
    assert not busy.is_alive() and isinstance(busy.error,
                                              WorkerTerminatedError)
    assert not stubborn.is_alive() and stubborn.has_error


def test_sigterm_to_the_server_kills_its_workers():
    srv = spawn_server(("127.0.0.1", 0))
    w = RemoteWorker(swallower, host=srv.addr)
    pid = w.pid
    os.kill(srv.pid, signal.SIGTERM)
    assert srv.wait(2)
    assert w.wait(2) and w.has_error
    assert wait_until(lambda: not is_running(pid), 2)


def test_main_script_functions_resolve_on_a_standalone_server(tmp_path):
    env = dict(os.environ, PYTHONPATH=BUILD_PY)
    srv = subprocess.Popen(
        [sys.executable, "-m", "forkqueue.server", "--port", "0"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))
    try:
        line = srv.stdout.readline()
        assert line.startswith("Listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        script = tmp_path / "client.py"
        script.write_text(textwrap.dedent(f"""
            from forkqueue.workers import RemoteWorker, PersistentRemoteWorker

            def cube(x):
                return x ** 3

            class Twice(PersistentRemoteWorker):
                def run(self, x):
                    return 2 * x

            if __name__ == "__main__":
                w = RemoteWorker(cube, args=(3,), host=("127.0.0.1", {port}))
                w.wait(5)
                t = Twice(None, run=True, host="127.0.0.1:{port}")
                print(w.result, w.error, t.call(21))
                t.wait(5)
        """))
        out = subprocess.run([sys.executable, str(script)], env=env,
                             capture_output=True, text=True, timeout=30,
                             cwd=HERE)
        assert out.stdout == "27 None 42\n", out.stderr
    finally:
        srv.send_signal(signal.SIGINT)
        assert srv.wait(10) == 0
        srv.stdout.close()


def test_worker_ends_when_its_client_goes_away(server):
    w = RemoteWorker(sleeper, host=server.addr)
    pid = w.pid
    assert is_running(pid)
    w._link.close()  # the client vanishes without a word
    assert wait_until(lambda: not is_running(pid), 5)


def test_pyworkers_server_command_line(tmp_path):
    # pyworkers' way: python3 -m <package>.remote_server -v --suppress_children
    # (accepted, and no runpy warning about the module being imported twice)
    env = dict(os.environ, PYTHONPATH=BUILD_PY)
    srv = subprocess.Popen(
        [sys.executable, "-m", "forkqueue.workers.remote_server", "-v",
         "--suppress_children", "--addr", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=str(tmp_path))
    try:
        line = srv.stdout.readline()
        assert line.startswith("Listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        w = RemoteWorker(pow, args=(6, 2), host=("127.0.0.1", port))
        assert w.wait(5) and w.result == 36
    finally:
        srv.send_signal(signal.SIGINT)
        assert srv.wait(10) == 0
        err = srv.stderr.read()
        srv.stdout.close()
        srv.stderr.close()
    assert "RuntimeWarning" not in err, err
    assert "Listening on" in err  # -v: the server's own messages
