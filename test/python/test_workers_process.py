"""forkqueue.workers: process workers (forked on the shared channel
primitive): outcomes, crashes, termination stages, process groups."""
import os
import pickle
import queue
import signal
import time

import pytest

from helpers import is_running, wait_until
from forkqueue.workers import (PersistentProcessWorker, PersistentWorker,
                               ProcessWorker, WorkerError,
                               WorkerTerminatedError, WorkerType)


def square(x):
    return x * x


def test_lambda_closure_and_timing():
    base = 7
    t0 = time.monotonic()
    w = ProcessWorker(lambda x: x + base, args=(1,))
    assert w.wait(1) and time.monotonic() - t0 < 1
    assert (w.result, w.has_error, w.error) == (8, False, None)
    assert w.pid != os.getpid() and w.parent_pid == os.getpid()
    assert w.tid == w.pid and not w.is_alive()


def test_exception_type_and_traceback_text():
    def boom():
        raise ValueError("bad value 3")

    w = ProcessWorker(boom)
    w.wait()
    assert type(w.error) is ValueError and str(w.error) == "bad value 3"
    assert "boom" in str(w.error.__cause__)  # the worker's traceback


class NeedsTwo(Exception):
    def __init__(self, a, b):
        super().__init__(a)  # plain unpickling would call NeedsTwo(a)


def test_exception_with_another_constructor_comes_back_as_itself():
    def boom():
        raise NeedsTwo("the message", 2)

    w = ProcessWorker(boom)
    w.wait()
    assert type(w.error) is NeedsTwo and str(w.error) == "the message"


def test_exception_that_cannot_be_unpickled_is_readable():
    def boom():
        class Unpicklable(Exception):  # exists in the worker only
            pass
        raise Unpicklable("the message")

    w = ProcessWorker(boom)
    w.wait()
    assert w.has_error and isinstance(w.error, WorkerError)
    assert "Unpicklable" in str(w.error) and "the message" in str(w.error)
    assert "boom" in str(w.error.__cause__)


def test_result_that_cannot_be_pickled_is_an_error():
    w = ProcessWorker(lambda: (lambda: 1))
    w.wait()
    assert w.has_error and "cannot pickle" in str(w.error)


def test_keyboard_interrupt_and_system_exit_are_errors():
    def ki():
        raise KeyboardInterrupt()

    for target, exc in ((ki, KeyboardInterrupt), (lambda: exit(3), SystemExit)):
        w = ProcessWorker(target)
        w.wait()
        assert w.has_error and type(w.error) is exc


def test_death_without_exception():
    for target in (lambda: os._exit(3),
                   lambda: os.kill(os.getpid(), signal.SIGKILL)):
        w = ProcessWorker(target)
        assert w.wait(5)
        assert (w.has_error, w.error, w.result) == (True, None, None)
    assert w.returncode == -signal.SIGKILL
    assert w.exit_reason == "killed by signal 9 (SIGKILL)"


def test_user_state_comes_back_only_at_the_end(tmp_path):
    gate = tmp_path / "gate"

    class W(ProcessWorker):
        def run(self):
            self.user_state = self.user_state + ["child"]
            while not gate.exists():
                time.sleep(0.005)
            return len(self.user_state)

    w = W(None, run=True, init_state=["init"])
    assert w.wait(0.1) is False
    assert w.is_alive() and w.user_state == ["init"]
    gate.touch()
    assert w.wait(5) and w.result == 2
    assert w.user_state == ["init", "child"]


def sleeper():
    time.sleep(30)


def test_graceful_terminate_raises_in_the_target():
    w = ProcessWorker(sleeper)
    t0 = time.monotonic()
    assert w.terminate()
    assert time.monotonic() - t0 < 2  # no waiting for a timeout
    assert isinstance(w.error, WorkerTerminatedError)
    assert w.terminate() is True  # already dead


def swallower(ready=None):
    while True:
        try:
            if ready:
                open(ready, "w").close()
            time.sleep(10)
        except Exception:  # noqa: BLE001 (swallows WorkerTerminatedError)
            pass


def started(tmp_path, target):
    """A worker running ``target(ready_file)``, once it is inside it."""
    ready = str(tmp_path / "ready")
    w = ProcessWorker(target, args=(ready,))
    assert wait_until(lambda: os.path.exists(ready), 5)
    return w


def test_terminate_without_waiting_returns_false_at_once(tmp_path):
    # A target that swallows WorkerTerminatedError stays alive, so the
    # answer cannot depend on how fast a graceful exit is.
    w = started(tmp_path, swallower)
    t0 = time.monotonic()
    assert w.terminate(timeout=0, force=False) is False
    assert time.monotonic() - t0 < 5  # catches a call that blocks
    assert w.is_alive()
    assert w.terminate(timeout=0.1)  # forced: SIGTERM ends it
    assert (w.has_error, w.error) == (True, None)


def test_forced_terminate_after_the_timeout(tmp_path):
    w = started(tmp_path, swallower)
    assert w.terminate(timeout=0.1)
    assert (w.has_error, w.error) == (True, None)
    assert w.returncode == -signal.SIGTERM


def sigterm_ignorer(ready):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    swallower(ready)


def test_escalates_to_sigkill(tmp_path):
    w = started(tmp_path, sigterm_ignorer)
    t0 = time.monotonic()
    assert w.terminate(timeout=0.1)
    assert w.returncode == -signal.SIGKILL and time.monotonic() - t0 < 3


def test_sigterm_from_outside_kills_within_a_second(tmp_path):
    w = started(tmp_path, swallower)
    os.kill(w.pid, signal.SIGTERM)
    assert w.wait(1) and w.has_error and w.error is None


def test_forced_kill_reaches_the_workers_process_group(tmp_path):
    pidfile = tmp_path / "grandchild"

    def spawner():
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(60)
            os._exit(0)
        pidfile.write_text(str(pid))
        swallower(str(tmp_path / "ready"))

    w = ProcessWorker(spawner)
    assert wait_until(lambda: (tmp_path / "ready").exists(), 5)
    grandchild = int(pidfile.read_text())
    assert w.terminate(timeout=0.1)
    assert wait_until(lambda: not is_running(grandchild), 5)
    assert is_running(os.getpid())


def test_persistent_process_worker():
    w = PersistentProcessWorker(square, args=(0,))
    for i in range(5):
        w.enqueue(i)
    assert w.call(10) == 100
    assert w.next_result() == 0
    assert w.wait(5) and w.result == 6
    assert list(w.results_iter()) == [1, 4, 9, 16]
    with pytest.raises(queue.Empty):
        w.next_result()


def test_persistent_idle_terminate_and_restart():
    w = PersistentWorker.create(WorkerType.PROCESS, target=square)
    assert w.call(2) == 4
    old = w.id
    assert w.terminate()
    assert isinstance(w.error, WorkerTerminatedError)
    w.restart()
    assert w.is_alive() and w.id != old and w.error is None
    assert w.call(3) == 9
    w.wait()
    assert w.result == 1


def test_many_results_do_not_block_wait():
    w = PersistentProcessWorker(lambda x: b"x" * x)
    for _ in range(200):
        w.enqueue(100_000)
    assert w.wait(20)
    assert sum(1 for _ in w.results_iter()) == 200


def test_worker_can_be_pickled_only_as_needed():
    # results are pickled; targets never are (a fork has them)
    w = ProcessWorker(lambda: pickle.dumps(1))
    w.wait()
    assert w.result == pickle.dumps(1)
