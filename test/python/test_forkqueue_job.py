"""ForkQueue.submit_job() and Job: a job handle as a future (since 0.2.0)."""
import asyncio
import concurrent.futures
import gc
import os
import signal
import time

import pytest

from forkqueue import ForkQueue, ForkQueueException, Job
from helpers import run_script, wait_until


def square(x):
    return x * x


def add(a, b=0, *, c=0):
    return a + b + c


def fail(msg):
    raise ValueError(msg)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for(path, limit=30.0):
    """Blocks until the file exists (the test opens the gate)."""
    end = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.002)
    return os.getpid()


def mark_and_block(started, limit=30.0):
    # Written whole, then renamed: the test never reads a half file.
    with open(started + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(started + ".tmp", started)
    time.sleep(limit)
    return "not cancelled"


def test_result_done_and_callbacks():
    seen = []
    with ForkQueue(numforks=2) as q:
        j = q.submit_job(add, 1, 2, c=4)
        assert isinstance(j, Job)
        j.add_done_callback(lambda job: seen.append(job.result()))
        assert j.result(timeout=30) == 7
        assert j.done() and not j.cancelled()
        assert j.exception() is None
        assert seen == [7]
        # Added late: called at once, once.
        j.add_done_callback(lambda job: seen.append("late"))
        assert seen == [7, "late"]
        assert not j.cancel()  # finished: unaffected
        assert j.result() == 7
        assert "finished" in repr(j)


def test_handle_results_never_reach_results():
    with ForkQueue(numforks=2) as q:
        jobs = [q.submit_job(square, i) for i in range(20)]
        for i in range(20):
            q.add(add, (i, 1000))
        assert sorted(q.results()) == [i + 1000 for i in range(20)]
        assert [j.result(timeout=30) for j in jobs] == [
            i * i for i in range(20)]
        assert len({j.job_id for j in jobs}) == 20


def test_exceptions():
    with ForkQueue(numforks=1) as q:
        j = q.submit_job(fail, "boom")
        with pytest.raises(ValueError, match="boom") as info:
            j.result(timeout=30)
        assert "boom" in info.value.backtrace
        assert isinstance(j.exception(), ValueError)
        d = q.submit_job(die)
        with pytest.raises(ForkQueueException) as info:
            d.result(timeout=30)
        assert info.value.signal == signal.SIGKILL
        # The queue goes on.
        assert q.submit_job(square, 3).result(timeout=30) == 9


def test_timeout_and_done_polling(tmp_path):
    gate = str(tmp_path / "gate")
    with ForkQueue(numforks=1) as q:
        j = q.submit_job(wait_for, gate)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            j.result(timeout=0.2)
        assert 0.15 <= time.monotonic() - t0 < 10
        assert not j.done()
        open(gate, "w").close()
        assert wait_until(j.done, timeout=30)
        assert j.result() > 0


def test_cancel_queued_and_running(tmp_path):
    started = str(tmp_path / "started")
    calls = []
    with ForkQueue(numforks=1) as q:
        # Known callables first: a new one reforks the workers, and the
        # old worker would run on beside the new one.
        assert q.submit_job(square, 1).result(timeout=30) == 1
        running = q.submit_job(mark_and_block, started)
        queued = q.submit_job(square, 5)
        queued.add_done_callback(calls.append)
        assert wait_until(lambda: os.path.exists(started), timeout=30)
        assert queued.cancel()
        assert queued.cancelled() and queued.done()
        assert calls == [queued]
        with pytest.raises(concurrent.futures.CancelledError):
            queued.result()
        pid = int(open(started).read())
        assert running.cancel()  # stops its worker, which is replaced
        assert running.cancelled()
        assert wait_until(lambda: not _alive(pid), timeout=10)
        assert running.cancel()  # twice: still cancelled
        assert q.submit_job(square, 6).result(timeout=30) == 36


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_finish_cancels_nothing_and_waits(tmp_path):
    q = ForkQueue(numforks=2)
    jobs = [q.submit_job(square, i) for i in range(10)]
    q.finish()
    assert [j.result(timeout=0) for j in jobs] == [i * i for i in range(10)]


def test_queue_cancel_cancels_jobs(tmp_path):
    started = str(tmp_path / "started")
    q = ForkQueue(numforks=1)
    j = q.submit_job(mark_and_block, started)
    assert wait_until(lambda: os.path.exists(started), timeout=30)
    q.cancel()
    assert j.done() and j.cancelled()


def test_lambdas_and_many_jobs():
    with ForkQueue(numforks=2) as q:
        jobs = [q.submit_job(lambda x, k=k: x + k, 1) for k in range(50)]
        assert [j.result(timeout=30) for j in jobs] == [
            1 + k for k in range(50)]
        many = [q.submit_job(square, i) for i in range(2000)]
        assert sum(j.result(timeout=60) for j in many) == sum(
            i * i for i in range(2000))


def test_dropped_job_runs_on_and_is_collected():
    with ForkQueue(numforks=1) as q:
        j = q.submit_job(square, 4)
        del j
        gc.collect()
        assert q.submit_job(square, 2).result(timeout=30) == 4


def test_bad_arguments():
    with ForkQueue(numforks=1) as q:
        with pytest.raises(TypeError):
            q.submit_job()
        with pytest.raises(TypeError):
            q.submit_job(42)
        import threading
        with pytest.raises(TypeError, match="pickled"):
            q.submit_job(square, threading.Lock())
        j = q.submit_job(square, 2)
        with pytest.raises(TypeError):
            j.add_done_callback(3)
        assert j.result(timeout=30) == 4
    with pytest.raises(TypeError):
        Job()


def test_await_in_asyncio():
    async def main(q):
        jobs = [q.submit_job(square, i) for i in range(10)]
        return await asyncio.gather(*jobs)

    with ForkQueue(numforks=2) as q:
        assert asyncio.run(main(q)) == [i * i for i in range(10)]


def test_await_raises_the_exception():
    async def main(q):
        return await q.submit_job(fail, "async boom")

    with ForkQueue(numforks=1) as q:
        with pytest.raises(ValueError, match="async boom"):
            asyncio.run(main(q))


def test_thread_kind():
    with ForkQueue(numforks=2, worker_kind="thread") as q:
        jobs = [q.submit_job(square, i) for i in range(20)]
        assert [j.result(timeout=30) for j in jobs] == [
            i * i for i in range(20)]
        with pytest.raises(ValueError, match="in a thread"):
            q.submit_job(fail, "in a thread").result(timeout=30)


def test_pending_jobs_at_exit_and_collected_cycles():
    # A queue dropped with a job still running (Job <-> queue is a cycle
    # the collector breaks), and an interpreter that exits with another:
    # no crash, no hang, no process left (conftest checks the latter).
    code = """
import gc, time
from forkqueue import ForkQueue

def nap(s):
    time.sleep(s)
    return s

q = ForkQueue(numforks=1)
j = q.submit_job(nap, 30)
del q, j
gc.collect()
q2 = ForkQueue(numforks=1)
j2 = q2.submit_job(nap, 30)
j2.add_done_callback(lambda job: print("callback", job.cancelled()))
print("exiting")
"""
    t0 = time.monotonic()
    r = run_script(code, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "exiting" in r.stdout
    assert time.monotonic() - t0 < 20
