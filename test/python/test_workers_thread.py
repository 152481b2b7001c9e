"""forkqueue.workers: the class hierarchy and thread workers (plain and
persistent): outcomes, class properties, override points, termination."""
import os
import queue
import threading
import time

import pytest

from forkqueue.workers import (PersistentThreadWorker, PersistentWorker,
                               ThreadWorker, Worker, WorkerClosedError,
                               WorkerTerminatedError, WorkerType)
from forkqueue.workers import ProcessWorker, RemoteWorker


def square(x):
    return x * x


def fail(x):
    raise KeyError(f"no {x}")


def test_result_and_ids():
    w = ThreadWorker(square, args=(3,))
    assert w.wait(1)
    assert (w.result, w.has_error, w.error) == (9, False, None)
    assert w.pid == os.getpid() == w.parent_pid
    assert w.tid != w.parent_tid and w.id == (w.host, w.pid, w.tid)
    assert w.parent_id == Worker.get_current_id()
    assert not w.is_alive()


def test_error_keeps_its_type():
    w = ThreadWorker(fail, args=(1,))
    w.wait()
    assert w.result is None and w.has_error is True
    assert type(w.error) is KeyError and w.error.args == ("no 1",)


def test_has_error_is_none_while_running():
    gate = threading.Event()
    w = ThreadWorker(gate.wait)
    assert w.is_alive() and w.has_error is None and w.result is None
    gate.set()
    assert w.wait(5) and w.has_error is False and w.result is True


def test_target_checks_and_not_running():
    with pytest.raises(ValueError, match="Target not callable"):
        ThreadWorker(42)
    for w in (ThreadWorker(None), ThreadWorker(False),
              ThreadWorker(square, args=(2,), run=False)):
        assert not w.is_alive() and w.wait(0)
        assert (w.result, w.error, w.has_error) == (None, None, False)


def test_class_properties_on_classes_and_instances():
    assert ThreadWorker.is_thread and not ThreadWorker.is_process
    assert ProcessWorker.is_process and RemoteWorker.is_remote
    assert not ThreadWorker.is_persistent
    assert PersistentThreadWorker.is_persistent
    assert PersistentThreadWorker.worker_type is WorkerType.THREAD
    w = ThreadWorker(None)
    assert w.is_thread and w.worker_type is WorkerType.THREAD
    assert [t.value for t in WorkerType] == [0, 1, 2]


def test_create_factories():
    w = Worker.create(WorkerType.THREAD, target=square, args=(4,))
    assert type(w) is ThreadWorker and w.wait(1) and w.result == 16
    p = PersistentWorker.create(WorkerType.THREAD, target=square)
    assert type(p) is PersistentThreadWorker
    assert p.call(5) == 25
    p.wait(1)
    with pytest.raises(TypeError):
        Worker.create("thread", target=square)


def test_user_state_only_changes_inside_and_comes_back_at_the_end():
    gate = threading.Event()
    changed = threading.Event()
    seen = []

    class W(ThreadWorker):
        def run(self):
            seen.append(self.user_state)
            self.user_state = "new"
            changed.set()
            gate.wait()
            return 1

    w = W(None, run=True, init_state="old")
    assert changed.wait(30)  # changed inside, not seen outside yet
    assert w.user_state == "old" and w.is_alive()
    with pytest.raises(RuntimeError):
        w.user_state = "parent"
    gate.set()
    w.wait()
    assert seen == ["old"] and w.user_state == "new"


def test_terminate_raises_inside_the_target():
    caught = []

    def busy():
        try:
            while True:
                time.sleep(0.001)
        except WorkerTerminatedError as e:
            caught.append(e)
            raise

    w = ThreadWorker(busy)
    assert w.terminate(timeout=5)
    assert isinstance(w.error, WorkerTerminatedError) and caught


def test_forced_terminate_of_a_thread_never_signals_the_caller():
    stop = threading.Event()

    def stubborn():
        while not stop.is_set():
            try:
                time.sleep(0.01)
            except WorkerTerminatedError:
                pass

    w = ThreadWorker(stubborn)
    assert w.terminate(timeout=0, force=False) is False
    assert w.terminate(timeout=0.1, force=True) is False  # we are alive
    stop.set()
    assert w.wait(5)


def test_persistent_args_kwargs_and_order():
    def f(a, b, c=0):
        return (a, b, c)

    w = PersistentThreadWorker(f, args=(1, 2), kwargs={"c": 3})
    w.enqueue()
    w.enqueue(10)
    w.enqueue(10, 20, c=30)
    w.close()
    with pytest.raises(WorkerClosedError):
        w.enqueue(1)
    assert isinstance(WorkerClosedError(w), RuntimeError)
    assert w.wait(5)
    assert w.result == 3
    assert list(w.results_iter()) == [(1, 2, 3), (10, 2, 3), (10, 20, 30)]
    with pytest.raises(queue.Empty):
        w.next_result()


def test_call_leaves_earlier_results_queued():
    w = PersistentThreadWorker(square)
    w.enqueue(2)
    w.enqueue(3)
    assert w.call(4) == 16
    assert w(5) == 25
    assert [w.next_result(), w.next_result()] == [4, 9]
    with pytest.raises(queue.Empty):
        w.next_result(timeout=0.05)
    assert w.wait(5) and w.result == 4


def test_target_exception_ends_a_persistent_worker():
    w = PersistentThreadWorker(fail)
    w.enqueue(1)
    assert w.wait(5)
    assert type(w.error) is KeyError
    with pytest.raises(WorkerClosedError):
        w.enqueue(2)


def test_idle_persistent_worker_is_terminated_gracefully():
    w = PersistentThreadWorker(square)
    assert w.call(3) == 9
    assert w.terminate(timeout=5)
    assert isinstance(w.error, WorkerTerminatedError)


def test_restart_keeps_arguments_and_state():
    class Counter(PersistentThreadWorker):
        def run(self, x):
            self.user_state = (self.user_state or 0) + x
            return self.user_state

    w = Counter(None, run=True, init_state=10)
    assert w.call(1) == 11
    w.restart()
    assert w.user_state == 11 and w.is_alive()
    assert w.call(2) == 13
    w.wait()
    assert w.user_state == 13 and w.result == 1


class Mixin(PersistentWorker):
    def __init__(self, *args, **kwargs):
        self.offset = 100  # before the base __init__: the worker sees it
        super().__init__(*args, **kwargs)

    def run(self, x):
        return x + self.offset


class Diamond(Mixin, PersistentThreadWorker):
    pass


class TwoPerCall(PersistentThreadWorker):
    def do_work(self):
        self._send_result("hello")
        self.send_result("again")
        return super().do_work()


def test_override_points_and_diamonds():
    d = Diamond(None, run=True)
    assert d.call(1) == 101 and d.is_persistent and d.is_thread
    d.wait()
    t = TwoPerCall(square)
    t.enqueue(3)
    t.wait()
    assert list(t.results_iter()) == ["hello", "again", 9]
    assert t.result == 3


def test_negative_timeouts_are_refused():
    w = ThreadWorker(None)
    with pytest.raises(ValueError):
        w.wait(-1)
    with pytest.raises(ValueError):
        w.terminate(-1)
