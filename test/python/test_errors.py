"""Errors raised by jobs: reraise=True and reraise=False."""
import os
import sys
import threading

import pytest

from forkqueue import ForkQueue, ForkQueueException

PREFIX = "Exception running task:\n"


def bad(x):
    raise ValueError("bad %d" % x)


def ident(x):
    return x


def exits(code):
    sys.exit(code)


def interrupts():
    raise KeyboardInterrupt


def returns_exception():
    return ValueError("I am a result")


def returns_lock(x):
    return threading.Lock() if x == 3 else x


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("carries a lock")
        self.lock = threading.Lock()


class NeedsTwo(Exception):
    # Pickles, but cannot be rebuilt from its args.
    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


def raises(kind):
    if kind == "unpicklable":
        raise Unpicklable()
    raise NeedsTwo("first", "second")


def test_message_is_prefix_plus_worker_traceback():
    with ForkQueue(numforks=1) as q:
        q.add(bad, (2,))
        with pytest.raises(ForkQueueException) as info:
            list(q.results())
    e = info.value
    assert isinstance(e, RuntimeError)
    msg = str(e)
    assert msg.startswith(PREFIX + "Traceback (most recent call last):\n")
    assert msg.endswith("ValueError: bad 2\n")
    assert 'in bad\n    raise ValueError("bad %d" % x)\n' in msg
    assert e.backtrace == msg[len(PREFIX):]
    assert isinstance(e.exception, ValueError)
    assert e.exception.args == ("bad 2",)


def test_failed_slot_reads_none_and_iteration_continues():
    with ForkQueue(numforks=2) as q:
        q.add(ident, (1,))
        q.add(bad, (2,))
        q.add(ident, (3,))
        it = q.results()
        assert next(it) == 1
        with pytest.raises(ForkQueueException, match="ValueError: bad 2"):
            next(it)
        assert next(it) is None
        assert next(it) == 3
        with pytest.raises(StopIteration):
            next(it)


def test_error_then_new_iteration_sees_none():
    with ForkQueue(numforks=2, retn_ids=True) as q:
        for i in range(4):
            q.add(bad if i == 1 else ident, (i,))
        with pytest.raises(ForkQueueException):
            for _ in q.results():
                pass
        assert list(q.results()) == [(1, None), (2, 2), (3, 3)]


def test_process_raises_at_the_failing_item():
    seen = []
    with ForkQueue(numforks=2) as q:
        with pytest.raises(ForkQueueException, match="ValueError: bad 5"):
            for r in q.process(lambda x: bad(x) if x == 5 else x,
                               ((i,) for i in range(10))):
                seen.append(r)
    assert seen == [0, 1, 2, 3, 4]


def test_wait_and_poll_raise_like_the_original():
    with ForkQueue(numforks=1) as q:
        q.add(bad, (1,))
        q.add(ident, (2,))
        with pytest.raises(ForkQueueException, match="bad 1"):
            q.wait()
        q.wait()
        assert list(q.yield_results()) == [None, 2]
    with ForkQueue(numforks=1) as q:
        q.add(bad, (7,))
        with pytest.raises(ForkQueueException, match="bad 7"):
            while not q.poll(None):
                pass


def test_reraise_false_returns_exception_with_backtrace():
    with ForkQueue(numforks=2, reraise=False) as q:
        res = list(q.process(lambda x: bad(x) if x == 2 else x,
                             [(1,), (2,), (3,)]))
    assert res[0] == 1 and res[2] == 3
    e = res[1]
    assert type(e) is ValueError
    assert e.args == ("bad 2",)
    assert e.backtrace.startswith("Traceback (most recent call last):\n")
    assert e.backtrace.endswith("ValueError: bad 2\n")


def test_base_exceptions_are_job_errors():
    with ForkQueue(numforks=1) as q:
        q.add(exits, (3,))
        q.add(interrupts, ())
        q.add(ident, ("still alive",))
        it = q.results()
        with pytest.raises(ForkQueueException) as e1:
            next(it)
        assert str(e1.value).endswith("SystemExit: 3\n")
        assert isinstance(e1.value.exception, SystemExit)
        assert next(it) is None
        with pytest.raises(ForkQueueException) as e2:
            next(it)
        assert str(e2.value).endswith("KeyboardInterrupt\n")
        assert list(it) == [None, "still alive"]
        # Caught in the worker: it did not die.
        assert q._stats()["crashed"] == 0


def test_base_exceptions_reraise_false():
    with ForkQueue(numforks=1, reraise=False) as q:
        res = list(q.process(exits, [(0,), (5,)]))
    assert [type(r) for r in res] == [SystemExit, SystemExit]
    assert res[1].code == 5
    assert res[1].backtrace.endswith("SystemExit: 5\n")


def test_returning_an_exception_is_a_result():
    with ForkQueue(numforks=1) as q:
        q.add(returns_exception, ())
        (r,) = list(q.results())
    assert type(r) is ValueError and r.args == ("I am a result",)
    assert not hasattr(r, "backtrace")


def test_unpicklable_result_is_an_error_for_that_job_only():
    with ForkQueue(numforks=2, reraise=False) as q:
        res = list(q.process(returns_lock, ((i,) for i in range(200))))
    for i, r in enumerate(res):
        if i == 3:
            assert isinstance(r, TypeError)
            assert "Result could not be pickled" in r.backtrace
            assert "cannot pickle '_thread.lock' object" in r.backtrace
        else:
            assert r == i


def test_unpicklable_result_raises():
    with ForkQueue(numforks=1) as q:
        q.add(returns_lock, (3,))
        with pytest.raises(ForkQueueException,
                           match="Result could not be pickled"):
            q.wait()


@pytest.mark.parametrize("kind,name", [("unpicklable", "Unpicklable"),
                                       ("needs_two", "NeedsTwo")])
def test_exception_that_cannot_travel(kind, name):
    with ForkQueue(numforks=1) as q:
        q.add(raises, (kind,))
        with pytest.raises(ForkQueueException) as info:
            q.wait()
    # The traceback text is intact; the object is a stand-in.
    assert name in str(info.value)
    assert type(info.value.exception) is RuntimeError
    assert name in str(info.value.exception)


def test_argument_that_cannot_be_pickled_fails_at_add():
    with ForkQueue(numforks=1) as q:
        with pytest.raises(TypeError):
            q.add(ident, (threading.Lock(),))
        q.add(ident, (1,))
        assert list(q.results()) == [1]


def test_initfunc_failure_is_reported_not_hung():
    def broken_init():
        raise OSError("no database")

    with ForkQueue(numforks=2, initfunc=broken_init) as q:
        q.add(ident, (1,))
        with pytest.raises(ForkQueueException) as info:
            q.wait()
    assert "initfunc failed" in str(info.value)
    assert "OSError: no database" in str(info.value)


def test_job_output_is_flushed(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        "from forkqueue import ForkQueue\n"
        "print('before')\n"
        "with ForkQueue(numforks=1) as q:\n"
        "    print('parent, unflushed')\n"
        "    q.add(print, ('from the job',))\n"
        "    q.wait()\n"
        "    q.add(lambda: print('from a lambda'), ())\n"
        "    q.wait()\n"
        "print('after')\n")
    import subprocess
    out = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # Unflushed parent output is written before each fork, never twice.
    assert out.stdout == ("before\nparent, unflushed\nfrom the job\n"
                          "from a lambda\nafter\n")
    assert out.stderr == ""


def test_jobs_see_their_own_pid():
    with ForkQueue(numforks=2) as q:
        pids = set(q.map(lambda _: os.getpid(), range(50)))
    assert os.getpid() not in pids
