"""ForkQueue(worker_kind="thread"): the workers are threads of this process
(the core's FQ_WORKER_THREAD). Same results, errors, ordering and ids as
processes; no isolation and cooperative time limits and cancellation, as
documented in docs/python-forkqueue.md."""
import gc
import os
import sys
import threading
import time
import weakref

import pytest

from forkqueue import ForkQueue, ForkQueueException
from helpers import child_pids, run_script, wait_until


def square(x):
    return x * x


def where():
    return os.getpid(), threading.get_ident()


def fail(x):
    raise ValueError(f"bad {x}")


def test_results_in_order_in_this_process():
    before = set(child_pids())
    with ForkQueue(numforks=3, worker_kind="thread") as q:
        assert q.worker_kind == "thread"
        assert q._worker_pids() == []
        assert list(q.map(square, range(2000))) == [x * x for x in range(2000)]
        for i in range(20):
            q.add(where, ())
        seen = list(q.results())
        assert set(child_pids()) == before  # no process was started
    assert {pid for pid, _ in seen} == {os.getpid()}
    assert threading.get_ident() not in {tid for _, tid in seen}


def test_unordered_and_ids():
    with ForkQueue(numforks=2, ordered=False, retn_ids=True,
                   worker_kind="thread") as q:
        for i in range(50):
            q.add(square, (i,), jobid=f"j{i}")
        got = dict(q.results())
    assert got == {f"j{i}": i * i for i in range(50)}


def test_default_is_process():
    with ForkQueue(numforks=1) as q:
        assert q.worker_kind == "process"
        q.add(os.getpid, ())
        assert list(q.results()) != [os.getpid()]


def test_exceptions_reraised_or_returned():
    with ForkQueue(numforks=2, worker_kind="thread") as q:
        q.add(square, (3,))
        q.add(fail, (7,), jobid="seven")
        with pytest.raises(ForkQueueException) as info:
            list(q.results())
        e = info.value
        assert e.jobid == "seven"
        assert isinstance(e.exception, ValueError)
        assert "bad 7" in str(e) and "Traceback" in e.backtrace
    with ForkQueue(numforks=2, reraise=False, worker_kind="thread") as q:
        res = list(q.map(fail, range(3)))
    assert [str(r) for r in res] == ["bad 0", "bad 1", "bad 2"]
    assert all(isinstance(r, ValueError) for r in res)


def test_new_lambdas_and_closures_need_no_refork():
    local = {"k": 10}
    with ForkQueue(numforks=2, worker_kind="thread") as q:
        for i in range(300):
            q.add(lambda i=i: i + local["k"], ())
        assert list(q.results()) == [i + 10 for i in range(300)]
        assert q.stats()["deferred"] == 0
        assert q.stats()["registry"] <= 300


def test_registry_of_a_thread_queue_is_bounded():
    with ForkQueue(numforks=2, worker_kind="thread") as q:
        for i in range(1500):
            q.add(lambda i=i: i, ())
            if i % 100 == 99:
                q.wait()
        assert sorted(q.results()) == list(range(1500))
        assert q.stats()["registry"] <= 400


tls = threading.local()


def remember(tag):
    tls.tag = tag
    tls.thread = threading.get_ident()


def tagged(x):
    return tls.tag, x


def test_initfunc_runs_in_each_thread():
    with ForkQueue(numforks=2, initfunc=remember, initargs=("ok",),
                   worker_kind="thread") as q:
        assert list(q.map(tagged, range(100))) == [("ok", x)
                                                   for x in range(100)]


def broken_init():
    raise RuntimeError("no init for you")


def test_failing_initfunc_is_reported():
    with ForkQueue(numforks=1, initfunc=broken_init, reraise=False,
                   worker_kind="thread") as q:
        q.add(square, (2,))
        (r,) = list(q.results())
    assert "no init for you" in str(r)


gate = threading.Event()
ran = []
ended = []
tids = []  # native ids of the threads that ran hang()


@pytest.fixture(autouse=True)
def release_gate():
    """A failing test must not leave a job blocked on the gate for the
    next one to see end."""
    yield
    gate.set()


def hang(tag):
    tids.append(threading.get_native_id())
    ran.append(tag)
    gate.wait(30)
    ended.append(tag)
    return tag


def test_time_limit_gives_the_outcome_at_once_the_thread_runs_on():
    gate.clear()
    ran.clear()
    ended.clear()
    # (1 s: the thread must have taken the GIL and begun the item before
    # the limit, or it skips it as cancelled, on a loaded machine too)
    with ForkQueue(numforks=1, timeout=1, reraise=False,
                   worker_kind="thread") as q:
        t0 = time.monotonic()
        q.add(hang, ("slow",))
        q.add(square, (5,), timeout=None)
        res = list(q.results())
        assert time.monotonic() - t0 < 10
        assert isinstance(res[0], TimeoutError)
        assert "1.0 s" in str(res[0])
        assert res[1] == 25
        # The abandoned thread still runs its job (cooperative); its late
        # result is discarded.
        assert ran == ["slow"]
        gate.set()
        q.add(square, (6,))
        assert list(q.results()) == [36]


def test_cancel_returns_at_once_and_skips_unstarted_jobs():
    gate.clear()
    ran.clear()
    tids.clear()
    ended.clear()
    q = ForkQueue(numforks=1, worker_kind="thread")
    q.add(hang, ("first",))
    for i in range(20):
        q.add(hang, (i,))
    assert wait_until(lambda: ran == ["first"])
    t0 = time.monotonic()
    q.cancel()
    assert time.monotonic() - t0 < 5
    assert q.finished
    gate.set()
    assert wait_until(lambda: ended == ["first"])
    # The thread checks its cancel flag before each job: none starts. Once
    # the abandoned thread has ended, it can start nothing more: what ran
    # by then is all that ever runs.
    tid = tids[0]
    assert wait_until(lambda: not os.path.exists(f"/proc/self/task/{tid}"))
    assert ran == ["first"]


def test_large_results_while_the_main_thread_runs_python():
    # A thread writes its reply without the GIL: the main thread, busy in
    # Python and not reading, must not be locked out by a blocked writer.
    with ForkQueue(numforks=2, worker_kind="thread") as q:
        q.add(bytes, (8 << 20,))
        q.add(bytes, (8 << 20,))
        deadline = time.monotonic() + 0.5
        n = 0
        while time.monotonic() < deadline:
            n += sum(range(1000))
        assert [len(r) for r in q.results()] == [8 << 20, 8 << 20]


def test_jobs_run_while_the_caller_waits():
    # The main thread waits with the GIL released: jobs progress.
    with ForkQueue(numforks=2, worker_kind="thread") as q:
        res = list(q.map(lambda n: sum(range(n)), [200000] * 8))
    assert res == [sum(range(200000))] * 8


def test_dropping_a_busy_thread_queue():
    gate.clear()
    ran.clear()
    ended.clear()
    q = ForkQueue(numforks=1, worker_kind="thread")
    q.add(hang, ("dropped",))
    assert wait_until(lambda: ran == ["dropped"])
    ref = weakref.ref(q)
    del q
    gc.collect()
    assert ref() is not None  # the running job holds it
    gate.set()
    assert wait_until(lambda: ended == ["dropped"])
    # freed by this thread once the job returned (a pending call)
    assert wait_until(lambda: ref() is None)
    with ForkQueue(numforks=1, worker_kind="thread") as q2:
        q2.add(square, (4,))
        assert list(q2.results()) == [16]


def test_bad_worker_kind():
    with pytest.raises(ValueError, match="worker_kind"):
        ForkQueue(numforks=1, worker_kind="fiber")
    with pytest.raises(ValueError, match="worker_kind"):
        ForkQueue(numforks=1, worker_kind=None)
    with pytest.raises(TypeError):
        ForkQueue(1, None, True, True, False, None, None, (), None, "thread")


def test_interpreter_exit_with_a_thread_queue_alive(tmp_path):
    started = tmp_path / "started"
    code = f"""
import time
from forkqueue import ForkQueue

def sleeper():
    open({str(started)!r}, "w").close()
    time.sleep(60)

def spinner():
    end = time.monotonic() + 60
    while time.monotonic() < end:
        sum(range(100))

q = ForkQueue(numforks=3, worker_kind="thread")
q.add(sleeper, ())
q.add(spinner, ())
q.add(spinner, ())
q.poll(0.2)
deadline = time.monotonic() + 20
import os
import sys
while not os.path.exists({str(started)!r}):
    assert time.monotonic() < deadline
    q.poll(0.01)
print("exiting", flush=True)
"""
    t0 = time.monotonic()
    r = run_script(code, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "exiting"
    assert time.monotonic() - t0 < 20
    assert "Segmentation" not in r.stderr and "Fatal" not in r.stderr


inits = []


def count_init():
    inits.append(threading.get_ident())


def test_max_jobs_per_worker_replaces_the_thread():
    inits.clear()
    with ForkQueue(numforks=1, max_jobs_per_worker=5, initfunc=count_init,
                   worker_kind="thread") as q:
        assert list(q.map(square, range(20))) == [x * x for x in range(20)]
    assert len(inits) >= 4


def test_sys_exit_in_a_job_is_its_error():
    with ForkQueue(numforks=1, reraise=False, worker_kind="thread") as q:
        q.add(sys.exit, (3,))
        q.add(square, (3,))
        res = list(q.results())
    assert isinstance(res[0], SystemExit) and res[1] == 9


where_ran = []


def gated(x):
    if x == 0:
        gate.wait(30)
    where_ran.append((x, threading.get_native_id()))
    return x


def test_an_abandoned_thread_stops_its_batch_after_the_current_item():
    gate.clear()
    where_ran.clear()
    with ForkQueue(numforks=1, timeout=0.5, reraise=False,
                   worker_kind="thread") as q:
        # tiny items first: the batches grow
        assert list(q.map(gated, range(1, 3001))) == list(range(1, 3001))
        where_ran.clear()
        it = q.map(gated, range(200))
        assert isinstance(next(it), TimeoutError)
        # The call is still open (a closed call's items are skipped anyway)
        # Item 0 is now blocked in the abandoned thread of its batch, and
        # usually in a second one: its re-run alone, which timed out too
        # (unless that thread saw its cancel flag before the item began).
        gate.set()
        wait_until(lambda: sum(x == 0 for x, _ in where_ran) == 2, timeout=3)
        assert any(x == 0 for x, _ in where_ran)
        for old in [t for x, t in where_ran if x == 0]:
            # once an abandoned thread has ended, it ran nothing after item
            # 0 (the rest of its batch ran again in another thread)
            assert wait_until(
                lambda: not os.path.exists(f"/proc/self/task/{old}"))
            assert [x for x, t in where_ran if t == old] == [0]
        assert list(it) == list(range(1, 200))
