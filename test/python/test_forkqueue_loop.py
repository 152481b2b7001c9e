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
        want = [n]
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
        d.rearm()                           # after adding work, as documented
        await asyncio.wait_for(done.wait(), 30)
        readable = d.readable
        # A time limit with nothing else going on: only the timer the loop
        # asked for can bring the outside loop back to enforce it.
        done.clear()
        want[0] = n + 1
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
