"""The extension module itself: modern CPython practice."""
import importlib.util
import signal
import time

import pytest

import forkqueue
from forkqueue import ForkQueue, _forkqueue
from helpers import wait_for_file

Py_TPFLAGS_HEAPTYPE = 1 << 9


def test_types_are_heap_types():
    assert ForkQueue.__flags__ & Py_TPFLAGS_HEAPTYPE
    assert ForkQueue.__module__ == "forkqueue"
    assert forkqueue.ForkQueueException.__module__ == "forkqueue"


def test_module_can_be_loaded_twice_with_separate_state():
    # Multi-phase init and module state: a second instance of the extension
    # is independent of the first.
    spec = importlib.util.find_spec("forkqueue._forkqueue")
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    assert other is not _forkqueue
    assert other.ForkQueue is not ForkQueue
    assert other.ForkQueueException is not forkqueue.ForkQueueException
    with other.ForkQueue(numforks=1) as q:
        assert list(q.map(abs, [-1, -2])) == [1, 2]
        q.add(int, ("x",))
        with pytest.raises(other.ForkQueueException):
            q.wait()


def test_subclass():
    class MyQueue(ForkQueue):
        def squares(self, xs):
            return list(self.map(lambda x: x * x, xs))

    with MyQueue(numforks=2) as q:
        assert q.squares(range(5)) == [0, 1, 4, 9, 16]


def test_init_twice_rejected():
    q = ForkQueue(numforks=1)
    with pytest.raises(RuntimeError):
        q.__init__(numforks=1)
    q.finish()


def test_uninitialised_queue_is_rejected():
    q = ForkQueue.__new__(ForkQueue)
    with pytest.raises(RuntimeError, match="__init__"):
        q.add(abs, (1,))


def test_other_signal_exceptions_do_not_cancel(barrier):
    def on_alarm(signo, frame):
        raise TimeoutError("alarm")

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with ForkQueue(numforks=1) as q:
            q.add(wait_for_file, (barrier.path,))  # ends when we say so
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                q.wait()
            assert time.monotonic() - t0 < 10  # the alarm, not the job
            # Only KeyboardInterrupt cancels: the queue goes on.
            assert not q.finished
            barrier.open()
            q.wait()
            assert list(q.yield_results()) == [barrier.path]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
