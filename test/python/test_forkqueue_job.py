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


# ---- asyncio: event-driven awaiting (forkqueue._aio) -----------------------
#
# One driver per event loop: a _Loop over the awaited jobs, its descriptor
# registered with add_reader() and its timeout armed with call_later().
# Nothing else runs in these tests, so results, deaths and time limits can
# only reach the coroutines through those two.

def nap(s):
    time.sleep(s)
    return s


async def _until(cond, limit=30.0):
    """Waits for a condition the test cannot be told about (a file a
    worker writes)."""
    end = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.005)


def _readers(aio):
    """Descriptors asyncio watches, besides its own self-pipe."""
    own = {aio._ssock.fileno()}
    return {k for k in aio._selector.get_map() if k not in own}


async def _turns(n=3):
    """Lets the event loop run n turns: tasks start awaiting, the driver
    arms itself or, idle, closes (each a call_soon() away)."""
    for _ in range(n):
        await asyncio.sleep(0)


def _driver_of(aio):
    from forkqueue import _aio
    return _aio._drivers.get(aio)


def test_await_is_event_driven_not_polled():
    from forkqueue import _aio

    async def main(q):
        aio = asyncio.get_running_loop()
        t0 = time.monotonic()
        task = asyncio.ensure_future(q.submit_job(nap, 0.6))
        await _turns()                      # the task starts awaiting
        d = _driver_of(aio)
        assert isinstance(d, _aio._Driver)
        assert await task == 0.6
        took = time.monotonic() - t0
        await _turns()                      # the driver closes at idle
        return d, took, _readers(aio), _driver_of(aio)

    with ForkQueue(numforks=1) as q:
        assert q.submit_job(square, 1).result(timeout=30) == 1  # forked
        d, took, readers, after = asyncio.run(main(q))
    assert 0.55 <= took < 20
    # A polling wait at 0.2-5 ms would have driven the queue 100+ times in
    # 0.6 s; the descriptor wakes the loop for the result alone (and for
    # the odd message of the worker, a deadline of the queue).
    assert 1 <= d.processed <= 8, d.processed
    assert d.processed > d.timed            # the descriptor woke it
    assert d.closed and readers == set() and after is None


def test_gather_200_jobs_across_two_queues():
    async def main(q1, q2):
        aio = asyncio.get_running_loop()
        jobs = [(q1 if i % 2 else q2).submit_job(square, i)
                for i in range(200)]
        # One still running when the driver arms (an awaited job that is
        # done already is taken at once, without the driver).
        jobs.append(q1.submit_job(nap, 0.3))
        gathered = asyncio.gather(*jobs)
        await _turns()                      # the tasks await, the driver arms
        d = _driver_of(aio)
        during = _readers(aio)
        # (A lost wake-up or done callback would hang: fail instead.)
        got = await asyncio.wait_for(gathered, 60)
        await _turns()
        return got, d, during, _readers(aio), _driver_of(aio)

    with ForkQueue(numforks=2) as q1, ForkQueue(numforks=2) as q2:
        got, d, during, readers, after = asyncio.run(main(q1, q2))
    assert got == [i * i for i in range(200)] + [0.3]
    assert len(during) == 1                 # one descriptor for both queues
    assert d.processed <= 200 + 10          # not more than one per result
    assert readers == set() and after is None


def test_time_limit_enforced_with_only_asyncio_running():
    async def main(q):
        aio = asyncio.get_running_loop()
        t0 = time.monotonic()
        task = asyncio.ensure_future(q.submit_job(nap, 60))
        await asyncio.sleep(0)
        d = _driver_of(aio)
        with pytest.raises(ForkQueueException) as info:
            await task
        return time.monotonic() - t0, d, info.value

    with ForkQueue(numforks=1, timeout=0.3) as q:
        took, d, e = asyncio.run(main(q))
        assert q.submit_job(square, 3).result(timeout=30) == 9
    assert 0.29 <= took < 10
    assert d.timed >= 1                     # the loop's timeout woke asyncio
    assert "time" in str(e).lower(), str(e)


def test_worker_crash_while_awaited():
    async def main(q):
        with pytest.raises(ForkQueueException) as info:
            await q.submit_job(die)
        # The queue goes on.
        return info.value, await q.submit_job(square, 4)

    with ForkQueue(numforks=1) as q:
        e, sixteen = asyncio.run(main(q))
    assert e.signal == signal.SIGKILL and sixteen == 16


def test_cancelling_the_awaiting_task_cancels_the_job(tmp_path):
    started = str(tmp_path / "started")

    async def main(q):
        aio = asyncio.get_running_loop()
        job = q.submit_job(mark_and_block, started)
        other = q.submit_job(square, 7)     # waits behind it, then runs
        task = asyncio.ensure_future(job)
        waiting = asyncio.ensure_future(other)
        await _turns()                      # both await (a task cancelled
        # before it first runs never awaited its job: nothing to cancel)
        await _until(lambda: os.path.exists(started))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert job.cancelled()
        assert await waiting == 49
        await _turns()
        return int(open(started).read()), _readers(aio), _driver_of(aio)

    with ForkQueue(numforks=1) as q:
        assert q.submit_job(square, 1).result(timeout=30) == 1
        pid, readers, after = asyncio.run(main(q))
        assert wait_until(lambda: not _alive(pid), timeout=10)
    assert readers == set() and after is None


def test_wait_for_timeout_cancels_but_shield_does_not(tmp_path):
    gate = str(tmp_path / "gate")

    async def main(q):
        job = q.submit_job(wait_for, gate)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(job), 0.05)
        assert not job.done()
        open(gate, "w").close()
        assert await job > 0                # awaited again, by two at once
        slow = q.submit_job(nap, 30)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow, 0.05)
        return slow

    with ForkQueue(numforks=1) as q:
        assert q.submit_job(square, 1).result(timeout=30) == 1
        slow = asyncio.run(main(q))
        assert slow.cancelled()


def test_queue_cancelled_or_finished_while_awaited(tmp_path):
    started = str(tmp_path / "started")

    async def cancelled(q):
        aio = asyncio.get_running_loop()
        task = asyncio.ensure_future(q.submit_job(mark_and_block, started))
        queued = asyncio.ensure_future(q.submit_job(square, 2))
        await _turns()
        await _until(lambda: os.path.exists(started))
        q.cancel()                          # closes the queue
        for t in (task, queued):
            with pytest.raises(asyncio.CancelledError):
                await t
        await _turns()
        return _readers(aio), _driver_of(aio)

    q = ForkQueue(numforks=1)
    assert q.submit_job(square, 1).result(timeout=30) == 1
    readers, after = asyncio.run(cancelled(q))
    assert readers == set() and after is None

    async def finished(q):
        aio = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(q.submit_job(square, i))
                 for i in range(20)]
        await _turns()
        q.finish()                          # runs them all, then closes
        got = [await t for t in tasks]
        await _turns()
        return got, _readers(aio), _driver_of(aio)

    q = ForkQueue(numforks=2)
    got, readers, after = asyncio.run(finished(q))
    assert got == [i * i for i in range(20)]
    assert readers == set() and after is None


def test_synchronous_use_meanwhile_stays_correct():
    async def main(q):
        tasks = [asyncio.ensure_future(q.submit_job(square, i))
                 for i in range(50)]
        await asyncio.sleep(0)
        # The event loop's own thread blocks on other jobs of the queue.
        sync = [q.submit_job(add, i, 1).result(timeout=30)
                for i in range(20)]
        q.add(add, (5, 5))
        assert list(q.results()) == [10]
        return await asyncio.gather(*tasks), sync

    with ForkQueue(numforks=2) as q:
        got, sync = asyncio.run(main(q))
    assert got == [i * i for i in range(50)]
    assert sync == [i + 1 for i in range(20)]


def test_await_thread_kind_and_exception_types():
    async def main(q):
        got = await asyncio.gather(*(q.submit_job(square, i)
                                     for i in range(20)))
        with pytest.raises(ValueError, match="threaded boom"):
            await q.submit_job(fail, "threaded boom")
        return got

    with ForkQueue(numforks=2, worker_kind="thread") as q:
        assert asyncio.run(main(q)) == [i * i for i in range(20)]


def test_jobs_awaited_from_two_event_loops_in_two_threads():
    import threading

    def run(q, out, k):
        async def main():
            return await asyncio.gather(*(q.submit_job(square, i + k)
                                          for i in range(30)))
        out[k] = asyncio.run(main())

    with ForkQueue(numforks=2) as q1, ForkQueue(numforks=2) as q2:
        out = {}
        ts = [threading.Thread(target=run, args=(q, out, k))
              for q, k in ((q1, 0), (q2, 100))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
    assert out[0] == [i * i for i in range(30)]
    assert out[100] == [(i + 100) ** 2 for i in range(30)]


def test_another_thread_inside_the_queue_meanwhile():
    # While a thread waits in result() (inside the queue, the GIL
    # released), the driver cannot hold the queue: it steps aside and
    # retries; the thread's wait moves the queue, and what it notices
    # completes the await (through call_soon_threadsafe()).
    import threading

    async def main(q):
        x = q.submit_job(nap, 0.3)          # ends while the thread waits
        y = q.submit_job(nap, 0.6)
        task = asyncio.ensure_future(x)
        await _turns()                      # awaited, the driver armed
        out = {}
        t = threading.Thread(target=lambda: out.update(y=y.result(30)))
        t.start()
        got = await asyncio.wait_for(task, 30)
        await asyncio.get_running_loop().run_in_executor(None, t.join, 30)
        return got, out

    with ForkQueue(numforks=2) as q:
        assert q.submit_job(square, 1).result(timeout=30) == 1
        got, out = asyncio.run(main(q))
    assert got == 0.3 and out == {"y": 0.6}
