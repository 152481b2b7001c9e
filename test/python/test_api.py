"""The behaviour of the original forkqueue that must be reproduced."""
import itertools
import os
import time

import pytest

import forkqueue
from forkqueue import ForkQueue, ForkQueueException
from helpers import is_running, wait_for_file, wait_until


def square(x):
    return x * x


def ident(x):
    return x


def add2(a, b, scale=1):
    return (a + b) * scale


def getpid_job():
    return os.getpid()


# ---- module and constructor ---------------------------------------------


def test_exports():
    assert forkqueue.ForkQueue is ForkQueue
    assert issubclass(ForkQueueException, RuntimeError)
    assert ForkQueueException.__module__ == "forkqueue"
    assert set(forkqueue.__all__) == {"ForkQueue", "ForkQueueException"}


def test_constructor_defaults():
    with ForkQueue() as q:
        assert q.numforks == 16
        assert q.reraise is True
        assert q.ordered is True
        assert q.retn_ids is False
        assert len(q._worker_pids()) == 16


def test_workers_exist_when_constructor_returns():
    with ForkQueue(numforks=3) as q:
        pids = q._worker_pids()
        assert len(pids) == 3
        for pid in pids:
            assert is_running(pid)
        # They are forks of this process.
        with open(f"/proc/{pids[0]}/stat") as f:
            stat = f.read()
        assert int(stat[stat.rindex(")") + 2:].split()[1]) == os.getpid()


def test_workers_inherit_parent_memory():
    big = {"k": list(range(1000))}

    def reads_big(i):
        return big["k"][i]

    with ForkQueue(numforks=2) as q:
        assert list(q.process(reads_big, [(5,), (999,)])) == [5, 999]


_init_count = 0
_init_value = None


def _init():
    global _init_count, _init_value
    _init_count += 1
    _init_value = 42


def _read_init(x):
    return (_init_value + x, _init_count, os.getpid())


def test_initfunc_runs_once_per_worker_and_state_is_visible():
    with ForkQueue(numforks=3, initfunc=_init) as q:
        res = list(q.process(_read_init, ((i,) for i in range(60))))
    assert [r[0] for r in res] == [42 + i for i in range(60)]
    # Each worker ran initfunc exactly once before its jobs.
    assert {r[1] for r in res} == {1}
    # The parent's state is untouched.
    assert _init_count == 0 and _init_value is None


def test_initfunc_return_value_ignored():
    with ForkQueue(numforks=1, initfunc=lambda: "ignored") as q:
        q.add(square, (3,))
        assert list(q.results()) == [9]


def test_env_nested_function():
    c = [1, 2, 3]

    def nested(a, b):
        return a + b + sum(c)

    with ForkQueue(numforks=4, env=locals()) as q:
        out = list(q.process(nested, ((a, a + 1) for a in range(100))))
    assert out == [2 * a + 7 for a in range(100)]


def test_env_with_non_callables_and_other_mapping():
    env = {"n": 3, "s": "text", "f": lambda x: x * 3}
    with ForkQueue(numforks=2, env=env) as q:
        q.add(env["f"], (5,))
        assert list(q.results()) == [15]


# ---- add / ids ------------------------------------------------------------


def test_add_calls_func_with_args_and_kwargs():
    with ForkQueue(numforks=2) as q:
        q.add(add2, (1, 2))
        q.add(add2, (1, 2), {"scale": 10})
        q.add(add2, [3, 4], argsv={"scale": 2})
        q.add(add2, (), argsv={"a": 1, "b": 1})
        assert list(q.results()) == [3, 30, 14, 2]


def test_automatic_ids_count_from_zero_independently():
    with ForkQueue(numforks=2, retn_ids=True) as q:
        q.add(ident, ("a",))
        q.add(ident, ("b",), jobid="mine")
        q.add(ident, ("c",))
        q.add(ident, ("d",), jobid=(1, 2))
        q.add(ident, ("e",))
        assert list(q.results()) == [(0, "a"), ("mine", "b"), (1, "c"),
                                     ((1, 2), "d"), (2, "e")]


def test_seed_add_results_example():
    with ForkQueue() as q:
        q.add(square, (0,))
        q.add(ident, (1,))
        q.add(square, (2,))
        assert list(q.results()) == [0, 1, 4]


# ---- poll / wait / yield_results ------------------------------------------


def test_poll_zero_does_not_wait(barrier):
    with ForkQueue(numforks=1) as q:
        q.add(wait_for_file, (barrier.path,))
        t0 = time.monotonic()
        assert q.poll() is False
        assert q.poll(0) is False
        assert time.monotonic() - t0 < 10  # the job waits for the gate
        barrier.open()
        assert q.poll(None) is True
        assert list(q.yield_results()) == [barrier.path]


def test_poll_timeout_waits_about_that_long(barrier):
    with ForkQueue(numforks=1) as q:
        q.add(wait_for_file, (barrier.path,))
        t0 = time.monotonic()
        assert q.poll(0.2) is False
        elapsed = time.monotonic() - t0
        assert 0.15 <= elapsed < 5  # 0.2 s (room for a loaded machine)
        barrier.open()


def test_poll_none_without_jobs_returns():
    with ForkQueue(numforks=1) as q:
        assert q.poll(None) is False


def test_wait_keeps_results_stored():
    with ForkQueue(numforks=2) as q:
        for i in range(5):
            q.add(square, (i,))
        assert q.wait() is None
        assert q._stats()["running"] == 0
        assert list(q.yield_results()) == [0, 1, 4, 9, 16]
        assert list(q.yield_results()) == []


def test_yield_results_ordered_stops_at_first_unfinished(barrier):
    with ForkQueue(numforks=2) as q:
        q.add(wait_for_file, (barrier.path,))
        q.add(ident, ("fast",))
        # poll() drives the queue; in ordered mode it cannot return "fast".
        assert wait_until(
            lambda: q.poll(0) or q._stats()["finished"] >= 1)
        assert list(q.yield_results()) == []
        barrier.open()
        assert list(q.results()) == [barrier.path, "fast"]


def test_yield_results_unordered_in_arrival_order(barrier):
    with ForkQueue(numforks=2, ordered=False) as q:
        q.add(wait_for_file, (barrier.path,))
        q.add(ident, ("fast",))
        got = []
        assert wait_until(lambda: got.extend(q.yield_results()) or got)
        assert got == ["fast"]
        barrier.open()
        assert list(q.results()) == [barrier.path]


def test_yield_results_never_blocks(barrier):
    with ForkQueue(numforks=1) as q:
        q.add(wait_for_file, (barrier.path,))
        t0 = time.monotonic()
        assert list(q.yield_results()) == []
        assert time.monotonic() - t0 < 10  # the job waits for the gate
        barrier.open()


def test_results_poll_true_returns_without_blocking(barrier):
    with ForkQueue(numforks=2) as q:
        q.add(ident, (1,))
        q.add(wait_for_file, (barrier.path,))
        assert wait_until(lambda: q.poll(0))
        t0 = time.monotonic()
        assert list(q.results(poll=True)) == [1]
        assert time.monotonic() - t0 < 10  # the job waits for the gate
        barrier.open()
        assert list(q.results()) == [barrier.path]


# ---- process / map --------------------------------------------------------


def test_seed_process_example():
    with ForkQueue() as q:
        assert list(q.process(lambda x: x + 1,
                              [(0,), (1,), (2,), (3,)])) == [1, 2, 3, 4]


def test_process_with_argsv():
    with ForkQueue(numforks=2) as q:
        out = list(q.process(add2, [(1, 2), (3, 4)], argsv={"scale": 3}))
    assert out == [9, 21]


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 20000])
def test_process_ordered_many(n):
    with ForkQueue(numforks=3) as q:
        assert list(q.process(square, ((i,) for i in range(n)))) == \
            [i * i for i in range(n)]


def test_process_unordered_with_ids():
    out = [None] * 2000
    with ForkQueue(numforks=3, ordered=False, retn_ids=True) as q:
        for jobid, result in q.process(square, ((i,) for i in range(2000))):
            assert out[jobid] is None
            out[jobid] = result
    assert out == [i * i for i in range(2000)]


def test_seed_unordered_example():
    out = [None] * 4
    with ForkQueue(ordered=False, retn_ids=True) as q:
        for jobid, result in q.process(lambda x, y: x * y,
                                       ((i + 1, i + 1) for i in range(4))):
            out[jobid] = result
    assert out == [1, 4, 9, 16]


def test_process_is_lazy_and_streams():
    pulled = []

    def source(n):
        for i in range(n):
            pulled.append(i)
            yield (i,)

    with ForkQueue(numforks=2) as q:
        it = q.process(square, source(5000))
        assert pulled == []  # nothing happens before the first next()
        assert next(it) == 0
        # The first result came before the whole input was consumed.
        assert len(pulled) < 5000
        assert list(it) == [i * i for i in range(1, 5000)]


def test_process_endless_generator_bounded_lookahead():
    pulled = itertools.count()

    def endless():
        for i in pulled:
            yield (i,)

    with ForkQueue(numforks=2) as q:
        it = q.process(ident, endless())
        first = list(itertools.islice(it, 30000))
        assert first == list(range(30000))
        ahead = next(pulled) - 30000
        # Look-ahead is bounded (a few batches per worker), not the stream.
        assert 0 <= ahead < 100000
        q.cancel()


def test_process_yields_results_of_earlier_adds():
    with ForkQueue(numforks=2) as q:
        q.add(ident, ("added",))
        assert list(q.process(square, [(2,), (3,)])) == ["added", 4, 9]


def test_process_source_error_propagates():
    def broken():
        yield (1,)
        yield (2,)
        raise LookupError("source broke")

    with ForkQueue(numforks=2) as q:
        it = q.process(square, broken())
        got = []
        with pytest.raises(LookupError, match="source broke"):
            for x in it:
                got.append(x)
        # The results of the items before the error come first, and belong
        # to the call: none is left over for results().
        assert got == [1, 4]
        assert list(q.results()) == []


def test_map_is_lazy_process_of_zip():
    with ForkQueue(numforks=2) as q:
        m = q.map(pow, [1, 2, 3], [2, 2, 2, 99])
        assert not isinstance(m, list)
        assert iter(m) is m
        assert list(m) == [1, 4, 9]
        assert list(q.map(square, range(100))) == [i * i for i in range(100)]


def test_map_retn_ids():
    with ForkQueue(numforks=2, retn_ids=True) as q:
        assert list(q.map(square, [5, 6])) == [(0, 25), (1, 36)]


# ---- finish / context manager ---------------------------------------------


def test_finish_runs_queued_jobs_then_reaps(tmp_path):
    def touch(i):
        time.sleep(0.01)
        open(tmp_path / f"f{i}", "w").close()

    q = ForkQueue(numforks=2)
    pids = q._worker_pids()
    for i in range(10):
        q.add(touch, (i,))
    q.finish()
    assert sorted(os.listdir(tmp_path)) == sorted(f"f{i}" for i in range(10))
    for pid in pids:
        assert not is_running(pid)
    q.finish()  # harmless


def test_context_manager_returns_queue_and_finishes(tmp_path):
    def touch(i):
        open(tmp_path / f"f{i}", "w").close()

    with ForkQueue(numforks=2) as q:
        assert isinstance(q, ForkQueue)
        for i in range(5):
            q.add(touch, (i,))
    assert q.finished
    assert len(os.listdir(tmp_path)) == 5


def test_context_manager_does_not_swallow_exceptions():
    with pytest.raises(KeyError):
        with ForkQueue(numforks=1):
            raise KeyError("x")


def test_retn_ids_everywhere():
    with ForkQueue(numforks=2, retn_ids=True) as q:
        q.add(square, (3,), jobid="three")
        q.wait()
        assert list(q.yield_results()) == [("three", 9)]
        assert list(q.process(square, [(4,)])) == [(0, 16)]


def test_map_single_iterable_passes_each_element_whole():
    with ForkQueue(numforks=2) as q:
        assert list(q.map(len, [(1, 2), "abc", [1], ()])) == [2, 3, 1, 0]
        # As zip() of nothing: no items.
        assert list(q.map(len)) == []
        with pytest.raises(TypeError):
            q.map()
