"""forkqueue.workers.Pool's batched path (inputs pickled into one message
per worker, a wake-up's results booked together, queues sized by pace and
by each worker's share near the end): the same outcomes, callbacks and
retries as one input at a time."""
import collections
import math
import os

import pytest

from forkqueue.workers import PersistentProcessWorker, Pool, WorkerType
from forkqueue.workers import _pool_run as run_mod


def logged_killer(log, marker, kill_at):
    """A target that appends "pid x" to ``log`` for every call and kills
    its process (os._exit) the first time it gets ``kill_at``."""
    def target(x):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {x}\n")
        if x == kill_at and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return x * 3
    return target


def calls(log):
    with open(log) as f:
        return [tuple(int(v) for v in line.split()) for line in f]


@pytest.mark.parametrize("source", ["range", "generator"])
@pytest.mark.parametrize("kill_at", [60, 333])  # first round, a top-up
def test_a_worker_dying_with_a_batch_pending_has_each_input_retried_once(
        tmp_path, source, kill_at):
    n = 400
    log, marker = str(tmp_path / "log"), str(tmp_path / "m")
    events = collections.defaultdict(collections.Counter)
    with Pool(logged_killer(log, marker, kill_at)) as pool:
        a = pool.add_worker(WorkerType.PROCESS)
        b = pool.add_worker(WorkerType.PROCESS)
        xs = range(n) if source == "range" else (x for x in range(n))
        out = pool.run(xs, worker_callback=lambda w, ev, *r:
                       events[w.userid].update([ev]))
        pids = {a.pid, b.pid}
    # every input's result, once
    assert sorted(out) == [3 * x for x in range(n)]
    # the dead worker had several inputs pending (a batch) when it died
    dead = next(u for u, ev in events.items() if ev["died"])
    live = 1 - dead
    lost = events[dead]["enqueued"] - events[dead]["finished"]
    assert lost >= 2, events
    assert events[live]["died"] == 0
    # each of them was enqueued again exactly once
    total = events[0]["enqueued"] + events[1]["enqueued"]
    assert total == n + lost
    assert events[0]["finished"] + events[1]["finished"] == n
    # and run exactly once more: every input ran once, except the one that
    # killed its worker (twice: the second time in the other worker)
    ran = calls(log)
    assert {pid for pid, _ in ran} <= pids
    count = collections.Counter(x for _, x in ran)
    assert count[kill_at] == 2
    assert all(count[x] == 1 for x in range(n) if x != kill_at)


def test_callbacks_and_results_on_the_batched_path():
    events = []
    with Pool(lambda x: -x) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        out = pool.run(iter(range(1000)), worker_callback=lambda w, ev, *r:
                       events.append((w.userid, ev, *r)))
    assert sorted(out) == sorted(-x for x in range(1000))
    kinds = collections.Counter(e[1] for e in events)
    assert kinds["enqueued"] == 1000 and kinds["finished"] == 1000
    # "finished" carries each result, in the order run() returns them
    assert [e[2] for e in events if e[1] == "finished"] == out
    assert {e[0] for e in events if e[1] == "idle"} == {0, 1}
    assert kinds["died"] == 0


@pytest.mark.parametrize("at", [2, run_mod.WINDOW + 50])
def test_an_input_that_cannot_be_pickled_is_logged_and_skipped(at):
    # in the first round (one input at a time) and in a top-up (a batch)
    items = list(range(at + 20))
    items[at] = lambda: 3  # a lambda does not pickle
    with Pool(lambda x: x * 10) as pool:
        pool.add_worker(WorkerType.PROCESS)
        out = pool.run(iter(items))
        assert pool.workers[0].is_alive()
    assert sorted(out) == [10 * x for x in items if not callable(x)]


def test_worker_extra_pending_inputs_bounds_from_below():
    # a window below 1 + extra is never used: each worker may hold extra
    with Pool(lambda x: x) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        out = pool.run(range(600), worker_extra_pending_inputs=200)
    assert sorted(out) == list(range(600))


class FakePool:
    def __init__(self, n):
        self._workers = [object() for _ in range(n)]
        self._closed = set()
        self._retry = True


def make_run(n_workers, source, extra=0):
    run = run_mod._Run(FakePool(n_workers), [source], None, None, extra,
                        True)
    return run, [id(w) for w in run.pool._workers]


def test_share_policy():
    W, Q, E = run_mod.WINDOW, run_mod.QUEUE_S, run_mod.END_S
    # an input of unknown length: the window, then what QUEUE_S holds
    run, (a, b) = make_run(2, (x for x in range(10_000)))
    assert run.share(a) == (W, False)
    run.pace[a] = 1e-3  # 1 ms calls
    assert run.share(a) == (math.ceil(Q / 1e-3), False)
    run.pace[a] = 1e-6  # tiny calls: the window
    assert run.share(a) == (W, False)

    # a range iterator: far from the end, the same
    src = iter(range(10_000))
    run, (a, b) = make_run(2, src)
    run.pace[a] = run.pace[b] = 100e-6
    assert run.share(a) == (min(W, math.ceil(Q / 100e-6)), False)
    # near the end: the smaller of the fair share and END_S's worth
    for _ in range(10_000 - 40):
        next(src)
    run.npending = 10
    assert run.share(a) == (min(25, math.ceil(E / 100e-6)), True)
    run.pace[a] = 2e-6  # tiny calls: the fair share of the 50 left
    assert run.share(a) == (25, True)
    # with one live worker there is nothing to balance
    run.closed.add(b)
    assert run.share(a) == (W, False)

    # never below 1 + worker_extra_pending_inputs
    src = iter(range(10))
    run, (a, b) = make_run(2, src, extra=300)
    run.pace[a] = 100e-6
    assert run.share(a) == (301, True)


class Resumable:
    """An iterator that raises StopIteration once after n items, then
    would go on: the pool must stop at the first StopIteration."""

    def __init__(self, n):
        self.i, self.n = 0, n

    def __iter__(self):
        return self

    def __next__(self):
        self.i += 1
        if self.i == self.n + 1:
            raise StopIteration
        return self.i


@pytest.mark.parametrize("workers", [1, 2])
def test_the_input_ends_at_its_first_stop_iteration(workers):
    n = run_mod.WINDOW * 2 + 7  # ends in a top-up, not the first round
    with Pool(lambda x: x) as pool:
        for _ in range(workers):
            pool.add_worker(WorkerType.PROCESS)
        src = Resumable(n)
        out = pool.run(src)
        assert sorted(out) == list(range(1, n + 1))
        assert src.i == n + 1  # never read again


def test_a_channel_is_refused_in_a_process_forked_from_its_owner():
    # process workers talk over _forkqueue channels, which check per call
    # (by fork generation, not a getpid() system call) that the caller is
    # the process that made them
    from forkqueue import _forkqueue
    ch = _forkqueue.fork_channel()
    if ch.pid == 0:
        _forkqueue.child_exit(0)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ch.send(b"x")
            except ValueError as e:
                code = 0 if "another process" in str(e) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert ch.wait(10) == 0
    finally:
        ch.close()


class Doubling(PersistentProcessWorker):
    def _send_result(self, result):
        super()._send_result(result * 2)


class Negating(PersistentProcessWorker):
    def run(self, x):
        return -super().run(x)


class Plain(PersistentProcessWorker):
    pass


@pytest.mark.parametrize("cls, want", [
    (Doubling, lambda x: 2 * (x + 1)),
    (Negating, lambda x: -(x + 1)),
    (Plain, lambda x: x + 1)])
def test_worker_side_overrides_are_called_for_every_input(cls, want):
    # a worker runs do_work's loop in one frame only when nothing it calls
    # per input is overridden
    with Pool(lambda x: x + 1) as pool:
        w = pool.add_worker(cls)
        pool.add_worker(cls)
        out = pool.run(range(300))
        assert sorted(out) == sorted(want(x) for x in range(300))
    assert w.result == w._enqueued > 0  # calls it processed


def test_first_round_goes_out_in_two_messages_per_worker(monkeypatch):
    from forkqueue.workers._linked import LinkedWorker
    sends = []
    real = LinkedWorker._uncork

    def counting(self):
        if self._corked:
            sends.append((self.userid, len(self._corked)))
        return real(self)
    monkeypatch.setattr(LinkedWorker, "_uncork", counting)
    first = []
    with Pool(lambda x: x) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        out = pool.run(iter(range(1000)), worker_callback=lambda w, ev, *r:
                       first.append(w.userid) if ev == "enqueued" and
                       len(first) < 4 else None)
    assert sorted(out) == list(range(1000))
    f, w = run_mod.FIRST_ROUND, run_mod.WINDOW
    assert sends[:4] == [(0, f), (1, f), (0, w - f), (1, w - f)]
    assert first == [0, 1, 0, 1]  # one input per worker per turn


def test_refill_point():
    run, (a, b) = make_run(2, (x for x in range(10_000)))
    assert run.refill_at(a, 128) == 64  # pace unknown: half
    # 100 us calls: the longest sleep runs `slept` of them; a queue of
    # cap is refilled once down to cap - slept (more than half of it)
    run.pace[a] = 100e-6
    slept = math.ceil(run_mod.COALESCE_MAX_S / 100e-6)
    cap = 3 * slept
    assert run.refill_at(a, cap) == cap - slept
    run.pace[a] = 2e-6  # tiny calls: half
    assert run.refill_at(a, 128) == 64
    run, (a, b) = make_run(2, iter(()), extra=200)
    assert run.refill_at(a, 201) == 200  # never below extra
