"""Behaviour of pyworkers' rarely used public names in forkqueue.workers:
the ``utils`` helpers, the socket framing helpers of ``remote``,
``results_endpoint``, pyworkers-style class properties, the remote pickler's
extra names and the server's ``install_handlers``/``break_accept``."""
import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import types

import pytest

import forkqueue.workers as fw
from forkqueue.workers import utils
from helpers import wait_until


def square(x):
    return x * x


# ---- utils -----------------------------------------------------------------

def test_brace_style_logger(caplog):
    log = fw.get_logger("fwcompat.test")
    assert isinstance(log, fw.BraceStyleAdapter)
    with caplog.at_level(fw.ABUSIVE, logger="fwcompat.test"):
        log.warning("{} and {!r}", 1, "a")
        log.status("at {lvl}", lvl="status")
        log.details("d")
        log.abusive("x")
        try:
            raise ValueError("v")
        except ValueError:
            log.exception("failed {}", 7)
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [("WARNING", "1 and 'a'"), ("STATUS", "at status"),
                   ("DETAILS", "d"), ("ABUSIVE", "x"),
                   ("ERROR", "failed 7")]
    assert caplog.records[-1].exc_info[0] is ValueError
    assert (fw.ABUSIVE, fw.DETAILS, fw.STATUS) == (5, 15, 25)
    assert logging.getLevelName(25) == "STATUS"
    assert str(fw.BraceMessage("{a}-{}", (1,), {"a": 2})) == "2-1"


def test_pyworkers_style_classproperty_on_a_user_worker():
    class Mine(fw.ThreadWorker):
        @fw.classproperty
        @classmethod
        def worker_type(cls, inst=None):
            return fw.WorkerType.THREAD if inst is None else "instance"

    assert Mine.worker_type is fw.WorkerType.THREAD
    assert Mine.is_thread
    w = Mine(square, args=(3,))
    assert w.worker_type == "instance"
    w.wait()
    assert w.result == 9
    bad = Mine(square, args=("x",))  # fails: logged, reported as its error
    bad.wait()
    assert isinstance(bad.error, TypeError)
    with pytest.raises(AttributeError):
        fw.Worker.is_thread = False  # the metaclass routes it to the property
    assert isinstance(vars(fw.Worker)["is_thread"], fw.classproperty)
    assert fw.ThreadWorker.is_thread is True


def test_classproperty_setter_and_staticproperty():
    class C(metaclass=fw.SupportClassPropertiesMeta):
        _v = 1

        @classmethod
        def _get(cls, inst=None):
            return cls._v

        @classmethod
        def _set(cls, value, inst=None):
            type.__setattr__(cls, "_v", value)

        v = fw.classproperty(_get, _set)
        s = fw.staticproperty(lambda: "static")

    C.v = 5
    assert C.v == 5 and C().v == 5 and C().s == "static"
    with pytest.raises(ValueError):
        fw.active_wait(threading.Thread(), -1)


def test_pipes_and_queues():
    p = fw.Pipe()
    p.parent_end.put({"a": 1})
    assert p.child_end.poll(1) and p.child_end.get() == {"a": 1}
    with pytest.raises(queue.Empty):
        p.child_end.get_nowait()
    p.child_end.send(2)
    assert p.parent_end.recv() == 2
    p.child_end.close()
    with pytest.raises(queue.Empty):  # the other end is closed
        p.parent_end.get()
    p.parent_end.close()
    lp = fw.LocalPipe()
    assert lp.parent_end is lp.child_end
    lp.parent_end.put(1)
    lp.parent_end.close()
    assert lp.child_end.get() == 1


def test_small_helpers():
    assert fw.python_is_at_least(3, 0) and not fw.python_is_at_least(99, 0)
    assert fw.python_is_exactly(*sys.version_info[:2])
    assert fw.is_windows() is False
    assert fw.typename(fw.Pipe()) == "forkqueue.workers.utils.Pipe"
    fw.setproctitle("x")  # best effort: never raises
    fw.setthreadtitle("x", fw.Pipe())
    t0 = time.monotonic()
    fw.active_sleep(0.05, interval=0.01)
    assert time.monotonic() - t0 >= 0.045
    gate = threading.Event()
    t = threading.Thread(target=gate.wait)
    t.start()
    assert fw.active_wait(t, 0.02) is True  # still alive
    gate.set()
    assert fw.active_wait(t, None) is True  # joined
    assert not t.is_alive()


def test_module_properties():
    name = "fwcompat_mod"
    sys.modules[name] = types.ModuleType(name)
    try:
        fw.add_module_properties(name, {"answer": fw.staticproperty(
            lambda: 42)})
        fw.add_module_properties(name, {"other": fw.staticproperty(
            lambda: 7)})
        mod = sys.modules[name]
        assert isinstance(mod, fw.LazyModule)
        assert (mod.answer, mod.other) == (42, 7)
        assert mod.__name__ == name
    finally:
        del sys.modules[name]


def test_foreign_raise_as_pyworkers():
    got = []
    started = threading.Event()

    def spin():
        started.set()
        try:
            while True:
                time.sleep(0.001)
        except KeyError as e:
            got.append(e)

    t = threading.Thread(target=spin)
    t.start()
    started.wait()
    fw.foreign_raise(t.ident, KeyError)
    t.join(5)
    assert not t.is_alive() and len(got) == 1
    with pytest.raises(ValueError, match="Invalid Thread ID"):
        fw.foreign_raise(t.ident, KeyError)
    assert fw.gettid() == threading.get_native_id()
    assert fw.get_hostname() == fw.Worker.get_current_id()[0]


# ---- remote helpers --------------------------------------------------------

def tcp_pair():
    with socket.create_server(("127.0.0.1", 0)) as lsn:
        a = socket.create_connection(lsn.getsockname())
        b, _ = lsn.accept()
    return a, b


def test_send_msg_recv_msg_frames():
    a, b = tcp_pair()
    with a, b:
        fw.send_msg(a, {"x": [1, 2]})
        fw.send_msg(a, "y" * 100000)
        assert fw.recv_msg(b) == {"x": [1, 2]}
        assert fw.recv_msg(b) == "y" * 100000
        fw.set_keepalive(a, True, time=30, interval=5, probes=3)
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        fw.set_linger(a, True, 0)
        a.close()
        with pytest.raises(fw.ConnectionClosedError):
            fw.recv_msg(b)
        with pytest.raises(fw.ConnectionClosedError):
            fw.send_msg(b, 1)


class Patched:
    def __init__(self):
        self.secret = "local"
        self.n = 1

    def __getstate__(self, remote=False):
        s = dict(self.__dict__)
        if remote:
            s["secret"] = None
        return s


def test_recv_msg_state_overwrites_and_remote_pickler():
    a, b = socket.socketpair()
    with a, b:
        fw.send_msg(a, Patched())
        obj = fw.recv_msg(b, state_overwrites={"n": 5})
    assert (obj.secret, obj.n) == (None, 5)
    assert fw.RemotePickler is fw.Pickler
    assert fw.Pickler.subject_to_custom_reduce(Patched())
    assert not fw.Pickler.subject_to_custom_reduce([1])
    assert issubclass(Patched, fw.SupportRemoteGetState)
    assert fw.remote_loads(fw.remote_dumps(Patched())).secret is None
    assert fw.remote_pickle.loads(buff=fw.dumps(3)) == 3

    class Registered(metaclass=fw.SupportRemoteGetStateMeta):
        def __getstate__(self, remote=False):
            return {}
    assert Registered in fw.SupportRemoteGetStateMeta.supported_classes


# ---- persistent workers ------------------------------------------------------

@pytest.mark.parametrize("kind", [fw.PersistentThreadWorker,
                                  fw.PersistentProcessWorker])
def test_results_endpoint(kind):
    w = kind(square)
    ep = w.results_endpoint
    assert w.results_endpoint is ep
    w.enqueue(2)
    w.enqueue(3)
    assert ep.get(timeout=5)[:3] == (1, True, 4)
    assert w.next_result() == 9  # they share the results
    w.close()
    assert w.wait(5)
    assert ep.get() == (2, False, None, w.id)
    with pytest.raises(queue.Empty):
        ep.get_nowait()
    w.restart()
    assert w.results_endpoint is not ep
    w.enqueue(4)
    assert w.results_endpoint.get(timeout=5)[:3] == (1, True, 16)
    assert w.wait(5)


def test_persistent_wait_signatures_accept_what_pyworkers_takes():
    w = fw.PersistentThreadWorker(square)
    with pytest.raises(TypeError):
        w.wait(1, remote_timeout=1)  # pyworkers: wait(self, timeout=None)
    assert w.wait(5)


# ---- server helpers ----------------------------------------------------------

def test_break_accept_wakes_the_server_and_it_keeps_serving(monkeypatch):
    monkeypatch.setenv("FORKQUEUE_AUTHKEY", "fw-compat-test-key")
    srv = fw.RemoteServer(("127.0.0.1", 0))
    srv.open_socket()
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    try:
        srv.break_accept()
        w = fw.RemoteWorker(square, args=(6,), host=srv.addr)
        assert w.wait(10) and w.result == 36
        wait_until(lambda: srv.stats["accepted"] >= 2, 5)
    finally:
        fw.foreign_raise(t.ident, fw.WorkerTerminatedError)
        with contextlib.suppress(OSError):  # it may have closed already
            srv.break_accept()
        t.join(10)
    assert not t.is_alive()


def test_install_handlers_sigterm_ends_workers_then_the_server(tmp_path,
                                                              monkeypatch):
    import subprocess
    script = tmp_path / "srv.py"
    script.write_text(
        "import sys\n"
        "from forkqueue.workers import run_server\n"
        "run_server(('127.0.0.1', int(sys.argv[1])), install_handlers=True)\n")
    env = dict(os.environ, FORKQUEUE_AUTHKEY="fw-compat-test-key")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(script), str(port)],
                            env=env)
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 20)
        monkeypatch.setenv("FORKQUEUE_AUTHKEY", "fw-compat-test-key")
        w = fw.RemoteWorker(time.sleep, args=(30,), host=("127.0.0.1", port))
        assert w.is_alive()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == -signal.SIGTERM
        assert w.wait(5) and w.has_error and w.error is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_spawn_server_terminate_default_matches_pyworkers(monkeypatch):
    import inspect
    monkeypatch.setenv("FORKQUEUE_AUTHKEY", "fw-compat-test-key")
    sig = inspect.signature(fw.RemoteServerProcess.terminate)
    assert sig.parameters["timeout"].default == 1
    srv = fw.spawn_server(("127.0.0.1", 0))
    w = fw.RemoteWorker(square, args=(5,), host=srv.addr)
    assert w.wait(10) and w.result == 25
    t0 = time.monotonic()
    assert srv.terminate()
    assert time.monotonic() - t0 < 5
    assert not srv.is_alive() and srv.has_error is False


# ---- set_names ---------------------------------------------------------------

class FakeTitles:
    """Stands for the optional setproctitle package: records titles in a
    file (the process worker sets its title in the forked child)."""

    def __init__(self, path):
        self.path = path

    def _write(self, kind, title):
        with open(self.path, "a") as f:
            f.write(f"{kind} {title}\n")

    def setproctitle(self, title):
        self._write("proc", title)

    def setthreadtitle(self, title):
        self._write("thread", title)


def test_set_names_sets_titles_through_setproctitle(tmp_path, monkeypatch):
    rec = tmp_path / "titles"
    monkeypatch.setattr(utils, "_title_impl", FakeTitles(str(rec)))
    fw.ProcessWorker(square, args=(2,), name="pw-title").wait(10)
    fw.ThreadWorker(square, args=(2,), name="tw-title").wait(10)
    fw.ProcessWorker(square, args=(2,), name="off", set_names=False).wait(10)
    lines = rec.read_text().splitlines()
    assert lines == [
        f"proc {sys.executable} forkqueue.workers.process.ProcessWorker "
        "pw-title",
        f"thread {sys.executable} forkqueue.workers.thread.ThreadWorker "
        "tw-title"]


def test_titles_without_the_package_do_nothing(monkeypatch):
    monkeypatch.setattr(utils, "_title_impl", False)
    fw.setproctitle("x")
    w = fw.ProcessWorker(square, args=(3,), name="n")
    assert w.wait(10) and w.result == 9
