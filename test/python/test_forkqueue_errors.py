"""Errors: ForkQueueException's attributes, the job's exception type
catchable, clear errors for bad input (which item and why), and re-entry
from a result's __setstate__."""
import os
import pickle
import signal
import threading

import pytest

from forkqueue import ForkQueue, ForkQueueException


def fail(x):
    raise ValueError(f"bad {x}")


def die(how):
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


def returns_lock():
    return threading.Lock()


def test_exception_attributes_and_type():
    with ForkQueue(numforks=1) as q:
        q.add(fail, (2,), jobid="job-2")
        with pytest.raises(ValueError) as info:   # the job's type catches it
            q.wait()
    e = info.value
    assert isinstance(e, ForkQueueException) and isinstance(e, RuntimeError)
    assert type(e).__name__ == "ForkQueueException"
    assert e.jobid == "job-2"
    assert isinstance(e.exception, ValueError)
    assert str(e.exception) == "bad 2"
    assert e.signal is None and e.exitcode is None
    assert str(e).startswith("Exception running task:\n")
    assert str(e).splitlines()[-1] == "ValueError: bad 2"
    assert e.backtrace in str(e)


@pytest.mark.parametrize("how,attr,value", [("kill", "signal", 9),
                                            ("exit", "exitcode", 3)])
def test_dead_worker_attributes(how, attr, value):
    with ForkQueue(numforks=1) as q:
        q.add(die, (how,))
        with pytest.raises(ForkQueueException) as info:
            q.wait()
    e = info.value
    assert getattr(e, attr) == value
    assert e.exception is None and e.jobid == 0


def test_automatic_ids_in_map_errors():
    with ForkQueue(numforks=2, retn_ids=True) as q:
        q.add(abs, (1,))
        with pytest.raises(ForkQueueException) as info:
            list(q.map(fail, range(1, 5)))
    assert info.value.jobid == 1


def test_add_with_a_non_tuple():
    with ForkQueue(numforks=1) as q:
        with pytest.raises(TypeError, match=r"args must be a tuple.*\(5,\)"):
            q.add(abs, 5)
        q.add(abs, [-3])            # any iterable still works, as func(*args)
        assert list(q.results()) == [3]


def test_non_tuple_item_in_process():
    with ForkQueue(numforks=1) as q:
        it = q.process(abs, [(-1,), 5, [-3]])
        assert next(it) == 1
        with pytest.raises(TypeError, match=r"item 1 of the input is 5 .*tuple"):
            next(it)
        assert next(it) is None     # the failed slot, as for a job error
        assert next(it) == 3


def test_argument_that_cannot_be_pickled_names_it():
    lock = threading.Lock()
    with ForkQueue(numforks=1) as q:
        with pytest.raises(TypeError, match=r"argument 1 \(_thread.lock\)"):
            q.add(max, (1, lock))
        got = []
        with pytest.raises(TypeError, match=r"item 3 of the input: argument 0"):
            for r in q.map(str, [1, 2, 3, lock, 5]):
                got.append(r)
        assert got == ["1", "2", "3"]


def test_result_that_cannot_be_pickled_names_its_type():
    with ForkQueue(numforks=1) as q:
        q.add(returns_lock, ())
        with pytest.raises(ForkQueueException,
                           match=r"Result could not be pickled \(a _thread.lock\)"):
            q.wait()


def test_non_callable():
    with ForkQueue(numforks=1) as q:
        for call in (lambda: q.add(5, ()), lambda: q.map(5, [1]),
                     lambda: q.process("f", [(1,)])):
            with pytest.raises(TypeError, match="func must be callable"):
                call()


class CallsBack:
    """Unpickling it in the parent calls back into the queue."""
    queue = None

    def __init__(self):
        self.state = 1

    def __setstate__(self, state):
        CallsBack.queue.poll(0)


def make_callsback():
    return CallsBack()


def test_setstate_reentry_raises_not_crashes():
    with ForkQueue(numforks=1) as q:
        CallsBack.queue = q
        q.add(make_callsback, ())
        with pytest.raises(ForkQueueException, match="re-entry is not allowed"):
            q.wait()
        assert list(q.results()) == [None]
        assert list(q.map(abs, [-1, -2])) == [1, 2]
    CallsBack.queue = None
