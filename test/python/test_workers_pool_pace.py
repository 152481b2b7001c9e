"""forkqueue.workers.Pool lets results gather while every worker has a
queue of inputs ahead of it (fewer wake-ups of the pool), and never when it
could make a worker wait: tiny calls, no queue (retry=False), a worker found
idle, the end of the input."""
import time

import pytest

from forkqueue.workers import Pool, WorkerType
from forkqueue.workers import _pool_run as run_mod


def short(x):
    time.sleep(0.0002)
    return x


@pytest.fixture
def counted(monkeypatch):
    """Counts the pool's wake-ups (reads of its workers) and pauses."""
    seen = {"service": 0, "sleeps": []}
    service = run_mod._Run.service

    def counting(self, w):
        seen["service"] += 1
        return service(self, w)

    pause = run_mod._Run.pause

    def pausing(self, d, *args):
        seen["sleeps"].append(d)
        return pause(self, d, *args)

    monkeypatch.setattr(run_mod._Run, "service", counting)
    monkeypatch.setattr(run_mod._Run, "pause", pausing)
    return seen


def test_results_of_short_calls_are_read_in_groups(counted):
    n = 2000
    with Pool(short) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        assert sorted(pool.run(range(n))) == list(range(n))
    # one read per result without coalescing; far fewer with it
    assert counted["service"] < n / 2, counted["service"]
    assert counted["sleeps"]
    assert max(counted["sleeps"]) <= run_mod.COALESCE_MAX_S


def test_no_gathering_without_a_queue_ahead(counted):
    with Pool(short, retry=False) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        assert sorted(pool.run(range(300))) == list(range(300))
    assert counted["sleeps"] == []


class FakePool:
    def __init__(self, n, retry=True):
        self._workers = [object() for _ in range(n)]
        self._closed = set()
        self._retry = retry


def make_run(n=2, retry=True, enqueue_fn=None):
    run = run_mod._Run(FakePool(n, retry), [iter(())], None, enqueue_fn, 0,
                        True)
    return run, run.pool._workers


def test_the_policy_never_sleeps_when_a_queue_could_run_dry(monkeypatch):
    now = [100.0]

    class Clock:
        monotonic = staticmethod(lambda: now[0])

    monkeypatch.setattr(run_mod, "time", Clock)
    run, (a, b) = make_run()
    # queues that last more than twice the longest sleep at 100 us a call
    full = int(2 * run_mod.COALESCE_MAX_S / 100e-6) + 10
    for w in (a, b):
        run.pending[id(w)].extend([((0,), 10)] * full)
    # not measured yet: read as results come
    assert run.coalesce_delay([a, b]) == 0

    # 100 us calls while busy: half the shortest queue, capped
    now[0] += 0.001
    run.measure(id(a), 10)
    run.measure(id(b), 10)
    assert run.pace[id(a)] == pytest.approx(100e-6)
    assert run.coalesce_delay([a, b]) == run_mod.COALESCE_MAX_S
    run.pending[id(b)].clear()
    run.pending[id(b)].extend([((0,), 10)] * 10)
    assert run.coalesce_delay([a, b]) == pytest.approx(10 * 100e-6 / 2)

    # tiny calls (2 us): a queue of 64 lasts 128 us, below COALESCE_MIN_S
    run2, (c,) = make_run(1)
    run2.pending[id(c)].extend([((0,), 10)] * 64)
    now[0] += 64 * 2e-6
    run2.measure(id(c), 64)
    assert run2.coalesce_delay([c]) == 0

    # a worker found idle (nothing pending) halves its estimate: an
    # estimate can only err towards reading early
    before = run.pace[id(a)]
    run.pending[id(a)].clear()
    now[0] += 0.01
    run.measure(id(a), 5)
    assert run.pace[id(a)] == pytest.approx(min(before, 0.01 / 5) / 2)

    # never at the end of the input, with retries, or without a window
    run.pending[id(a)].extend([((0,), 10)] * 64)
    run.depleted = True
    assert run.coalesce_delay([a, b]) == 0
    run.depleted = False
    run.retries.append((1,))
    assert run.coalesce_delay([a, b]) == 0
    run3, ws = make_run(retry=False)
    assert run3.coalesce_delay(ws) == 0
    run4, ws = make_run(enqueue_fn=lambda w, *a: True)
    assert run4.coalesce_delay(ws) == 0


def test_remote_results_are_read_in_groups_too(counted, monkeypatch):
    # a remote worker sends each result as a message: the pool's pause must
    # not wake for each (it sleeps; process workers' rings are quiet)
    from forkqueue.workers import spawn_server
    monkeypatch.setenv("FORKQUEUE_AUTHKEY", "forkqueue-workers-pace")
    srv = spawn_server(("127.0.0.1", 0))
    assert srv.addr is not None, srv.error
    try:
        n = 2000
        with Pool(short) as pool:
            pool.add_worker(WorkerType.REMOTE, host=srv.addr)
            pool.add_worker(WorkerType.REMOTE, host=srv.addr)
            assert sorted(pool.run(range(n))) == list(range(n))
        assert counted["sleeps"]
        assert counted["service"] < n / 2, counted["service"]
    finally:
        assert srv.terminate()
