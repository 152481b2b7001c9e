"""forkqueue.workers.Pool lets results gather while every worker has a
queue of inputs ahead of it (fewer wake-ups of the pool), and never when it
could make a worker wait: tiny calls, no queue (retry=False), a worker found
idle."""
import time

import pytest

from forkqueue.workers import Pool, WorkerType
from forkqueue.workers import pool as pool_mod


def short(x):
    time.sleep(0.0002)
    return x


def inc(x):
    return x + 1


@pytest.fixture
def counted(monkeypatch):
    """Counts the pool's wake-ups (reads of its workers) and sleeps."""
    seen = {"service": 0, "sleeps": []}
    service = pool_mod._Run.service

    def counting(self, w):
        seen["service"] += 1
        return service(self, w)

    real_sleep = time.sleep

    class FakeTime:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(s):
            seen["sleeps"].append(s)
            real_sleep(s)

    monkeypatch.setattr(pool_mod._Run, "service", counting)
    monkeypatch.setattr(pool_mod, "time", FakeTime)
    return seen


def test_results_of_short_calls_are_read_in_groups(counted):
    n = 2000
    with Pool(short) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        assert sorted(pool.run(range(n))) == list(range(n))
    # one read per result without coalescing; far fewer with it
    assert counted["service"] < n / 3, counted["service"]
    assert counted["sleeps"]
    assert max(counted["sleeps"]) <= pool_mod.COALESCE_MAX_S


def test_no_gathering_without_a_queue_ahead(counted):
    with Pool(short, retry=False) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        assert sorted(pool.run(range(300))) == list(range(300))
    assert counted["sleeps"] == []


def test_tiny_calls_are_not_held_back(counted):
    # A tiny call's queue runs dry long before COALESCE_MIN_S: the pool
    # only sleeps when the estimate says the shortest queue lasts twice as
    # long as the sleep.
    with Pool(inc) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.THREAD)
        assert sorted(pool.run(range(20000))) == list(range(1, 20001))
    assert len(counted["sleeps"]) < 20
