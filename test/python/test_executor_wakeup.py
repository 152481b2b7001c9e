"""ForkQueue._wakeup(): the thread-safe wake-up the executor engine uses.

A job held by a file gate keeps the queue busy, so poll(None) would block
until the gate opens unless woken.
"""
import os
import threading
import time

from forkqueue import ForkQueue
from helpers import wait_for_file, wait_until


def thread_in_poll(native_id):
    """True if thread `native_id` of this process is blocked in poll()."""
    try:
        with open(f"/proc/self/task/{native_id}/wchan") as f:
            return "poll" in f.read()
    except OSError:
        return False


def test_wakeup_before_poll_is_not_lost(barrier):
    with ForkQueue(numforks=1, ordered=False) as q:
        q.add(wait_for_file, (barrier.path,))
        q._wakeup()
        q._wakeup()  # several count as one
        t0 = time.monotonic()
        assert q.poll(None) is False
        assert time.monotonic() - t0 < 5
        # Consumed: the next poll runs to its timeout.
        t0 = time.monotonic()
        assert q.poll(0.2) is False
        assert time.monotonic() - t0 >= 0.19
        barrier.open()
        assert list(q.results()) == [barrier.path]


def test_wakeup_from_another_thread_ends_a_blocked_poll(barrier):
    with ForkQueue(numforks=1, ordered=False) as q:
        q.add(wait_for_file, (barrier.path,))
        me = threading.get_native_id()
        errors = []

        def waker():
            try:
                assert wait_until(lambda: thread_in_poll(me), timeout=10)
                q._wakeup()
            except BaseException as e:  # recorded, asserted in main
                errors.append(e)

        t = threading.Thread(target=waker)
        t.start()
        # Without a working wake-up the poll would only end with the job:
        # end the job late, so that the failure is a failed assertion.
        fallback = threading.Timer(15, barrier.open)
        fallback.start()
        t0 = time.monotonic()
        assert q.poll(None) is False
        took = time.monotonic() - t0
        t.join()
        fallback.cancel()
        assert not errors
        assert took < 10
        barrier.open()
        assert list(q.results()) == [barrier.path]


def test_wakeup_after_finish_is_harmless():
    q = ForkQueue(numforks=1)
    q.add(os.getpid, ())
    q.finish()
    q._wakeup()  # no error, nothing to wake
