"""The core's loop object (fq_loop) driving a ForkQueue from asyncio.

asyncio watches the loop's descriptor (add_reader) and arms a timer with
the loop's timeout (call_later); nothing else moves the queue, so results
and a job's time limit must reach the program through those two alone.
The binding is private (_forkqueue._Loop).
"""
import asyncio
import threading
import time

import pytest

from forkqueue import ForkQueue
from forkqueue import _forkqueue as _fq


def square(x):
    return x * x


def sleeper(s):
    time.sleep(s)
    return s


ENV = {"square": square, "sleeper": sleeper}


class Driver:
    """An asyncio program's glue: process() when the descriptor is readable
    or the timeout passed, then re-arm the timer."""

    def __init__(self, aio, lp, on_queue):
        self.aio, self.lp, self.on_queue = aio, lp, on_queue
        self.handle = None
        self.readable = self.timers = self.events = 0
        self.fd = lp.fileno()
        aio.add_reader(self.fd, self.on_readable)

    def on_readable(self):
        self.readable += 1
        self.pump()

    def on_timer(self):
        self.handle = None
        self.timers += 1
        self.pump()

    def pump(self):
        for kind, flags, q, count in self.lp.process():
            self.events += 1
            self.on_queue(kind, flags, q, count)
        self.rearm()

    def rearm(self):
        if self.handle is not None:
            self.handle.cancel()
        t = self.lp.timeout()
        self.handle = None if t is None else self.aio.call_later(t, self.on_timer)

    def stop(self):
        self.aio.remove_reader(self.fd)
        if self.handle is not None:
            self.handle.cancel()


def test_asyncio_drives_a_queue_through_the_loop_fd():
    n = 200

    async def main():
        aio = asyncio.get_running_loop()
        q = ForkQueue(numforks=2, ordered=False, retn_ids=True,
                      reraise=False, env=ENV)
        lp = _fq._Loop()
        lp.add_queue(q)
        got = {}
        want = [n + 1]
        done = asyncio.Event()

        def on_queue(kind, flags, obj, count):
            assert kind == _fq._LOOP_QUEUE and obj is q and count > 0
            q.poll(0)                       # outcomes into the face's store
            for jid, res in q.yield_results():
                got[jid] = res
            if len(got) == want[0]:
                done.set()

        d = Driver(aio, lp, on_queue)
        # Results arrive through the descriptor.
        for i in range(n):
            q.add(square, (i,), jobid=i)
        # Squares may all come back inside the process() calls that send
        # them (a fast machine, or a busy one); a nap's result comes while
        # nothing is due, through the descriptor alone.
        q.add(sleeper, (0.2,), jobid="nap")
        d.rearm()                           # after adding work, as documented
        await asyncio.wait_for(done.wait(), 30)
        readable = d.readable
        # A time limit with nothing else going on: only the timer the loop
        # asked for can bring the outside loop back to enforce it.
        done.clear()
        want[0] = n + 2
        timers = d.timers
        t0 = time.monotonic()
        q.add(sleeper, (60,), jobid="slow", timeout=0.3)
        d.rearm()
        await asyncio.wait_for(done.wait(), 30)
        took = time.monotonic() - t0
        d.stop()
        lp.close()
        q.finish()
        return got, took, readable, d.timers - timers

    got, took, readable, timers = asyncio.run(main())
    assert all(got[i] == i * i for i in range(n))
    assert got["nap"] == 0.2
    assert isinstance(got["slow"], TimeoutError), got["slow"]
    assert 0.29 <= took < 10
    assert readable > 0
    assert timers >= 1


def test_wakeup_from_a_thread_reaches_asyncio():
    async def main():
        aio = asyncio.get_running_loop()
        lp = _fq._Loop()
        woken = asyncio.Event()
        seen = []

        def on_readable():
            for ev in lp.process():
                seen.append(ev)
                if ev[0] == _fq._LOOP_WAKEUP:
                    woken.set()

        aio.add_reader(lp.fileno(), on_readable)
        assert lp.timeout() is None         # nothing due, ever
        t = threading.Thread(target=lp.wakeup)
        t.start()
        await asyncio.wait_for(woken.wait(), 20)
        t.join()
        aio.remove_reader(lp.fileno())
        lp.close()
        return seen

    seen = asyncio.run(main())
    assert seen == [(_fq._LOOP_WAKEUP, 0, None, 0)]


def test_closed_queue_leaves_the_loop_and_bad_arguments():
    lp = _fq._Loop()
    with pytest.raises(TypeError, match="expected a ForkQueue"):
        lp.add_queue(object())
    q = ForkQueue(numforks=1, env=ENV)
    lp.add_queue(q)
    with pytest.raises(ValueError, match="invalid argument"):
        lp.add_queue(q)                     # already in
    q.finish()                              # frees the core queue
    events = []
    deadline = time.monotonic() + 20
    while not events and time.monotonic() < deadline:
        events = lp.process()
    assert events == [(_fq._LOOP_QUEUE, _fq._LOOP_CLOSED, q, 0)]
    assert lp.process() == []
    with pytest.raises(ValueError):
        lp.remove_queue(q)                  # left already
    lp.close()
    lp.close()                              # idempotent
    with pytest.raises(ValueError, match="closed"):
        lp.process()


def test_jobs_as_sources():
    lp = _fq._Loop()
    with pytest.raises(TypeError, match="forkqueue.Job"):
        lp.add_job(object())
    with ForkQueue(numforks=2, env=ENV) as q:
        done = q.submit_job(square, 2)
        assert done.result(timeout=30) == 4
        assert lp.add_job(done) is False        # nothing to wait for
        jobs = [q.submit_job(square, i) for i in range(10)]
        seen = []
        jobs[3].add_done_callback(seen.append)
        assert all(lp.add_job(j) is True for j in jobs)
        with pytest.raises(ValueError, match="already"):
            lp.add_job(jobs[0])
        lp.remove_job(jobs[9])
        with pytest.raises(ValueError, match="not in this loop"):
            lp.remove_job(jobs[9])
        assert lp.jobs() == 9
        events = []
        deadline = time.monotonic() + 30
        while lp.jobs() and time.monotonic() < deadline:
            events += lp.process()              # busy: the test drives it
        # Each reported once, settled (done callbacks run) by process().
        assert sorted(j.job_id for _, _, j, _ in events) == sorted(
            j.job_id for j in jobs[:9])
        assert all(kind == _fq._LOOP_JOB for kind, _, _, _ in events)
        assert all("finished" in repr(j) for j in jobs[:9])
        assert seen == [jobs[3]]
        assert jobs[9].result(timeout=30) == 81
    lp.close()
    with pytest.raises(ValueError, match="closed"):
        lp.add_job(done)
