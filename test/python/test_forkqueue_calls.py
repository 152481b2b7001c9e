"""Per-call results: a process()/map() call's results never come out of
another call; close() or dropping the generator cancels its unstarted jobs;
an input error comes after the results of the items before it."""
import collections.abc
import gc
import os
import time

import pytest

from forkqueue import ForkQueue, ForkQueueException


def inv(x):
    return 1 / x


def log_and_sleep(path, i, secs):
    with open(path, "a") as f:
        f.write(f"{i}\n")
    time.sleep(secs)
    return i


def lines(path):
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_stopped_map_leaves_nothing_for_the_next_map():
    # The example: a caught job error stops the first map early.
    with ForkQueue(numforks=2) as q:
        with pytest.raises(ForkQueueException):
            list(q.map(inv, [0, 1, 2, 4, 8]))
        assert list(q.map(lambda x: x * 2, [10, 20])) == [20, 40]
        it = q.map(lambda x: x + 1, range(1000))
        for _ in it:
            break
        assert list(q.map(lambda x: -x, [1, 2, 3])) == [-1, -2, -3]
        assert list(q.results()) == []


def test_interleaved_calls_keep_their_own_results():
    with ForkQueue(numforks=2) as q:
        a = q.map(lambda x: ("a", x), range(300))
        b = q.map(lambda x: ("b", x), range(300))
        got_a, got_b = [], []
        for _ in range(300):
            got_a.append(next(a))
            got_b.append(next(b))
        assert got_a == [("a", i) for i in range(300)]
        assert got_b == [("b", i) for i in range(300)]
        with pytest.raises(StopIteration):
            next(a)


@pytest.mark.parametrize("how", ["close", "drop"])
def test_closing_cancels_the_unstarted_jobs(tmp_path, how):
    log = str(tmp_path / "ran")
    n = 30
    with ForkQueue(numforks=2) as q:
        # 3 s of work on 2 workers if nothing were cancelled.
        it = q.process(log_and_sleep, ((log, i, 0.2) for i in range(n)))
        assert next(it) == 0
        if how == "close":
            it.close()
            with pytest.raises(StopIteration):
                next(it)
        else:
            del it
            gc.collect()
        q.wait()  # only the jobs already running finish
        ran = lines(log)
        assert 1 <= len(ran) < n // 2, ran
        # The queue goes on, and nothing of the closed call comes out.
        assert list(q.map(abs, [-1, -2])) == [1, 2]
        assert list(q.results()) == []


def test_generators_have_close_send_throw():
    with ForkQueue(numforks=1) as q:
        for g in (q.map(abs, [1]), q.process(abs, [(1,)]), q.results(),
                  q.yield_results()):
            assert isinstance(g, collections.abc.Generator)
            g.close()
            g.close()  # harmless
        g = q.map(abs, [-1, -2, -3])
        assert g.send(None) == 1
        with pytest.raises(KeyError):
            g.throw(KeyError("stop"))
        with pytest.raises(StopIteration):
            next(g)


def test_input_error_after_the_results_of_the_items_before():
    def source():
        for i in range(1000):
            yield (i,)
        raise LookupError("input broke at 1000")

    with ForkQueue(numforks=2, ordered=False) as q:
        got = []
        with pytest.raises(LookupError, match="input broke"):
            for r in q.process(lambda x: x * 3, source()):
                got.append(r)
        assert sorted(got) == [i * 3 for i in range(1000)]


def test_add_results_still_come_out_of_process():
    # As in the original module: process() yields the queue's added jobs.
    with ForkQueue(numforks=2) as q:
        q.add(abs, (-5,))
        assert list(q.process(abs, [(-1,), (-2,)])) == [5, 1, 2]


def test_results_of_a_closed_call_are_dropped_not_stored():
    with ForkQueue(numforks=2) as q:
        it = q.map(lambda x: bytes(10000), range(5000))
        next(it)
        it.close()
        q.wait()
        assert q.stats()["stored"] == 0
        assert q.stats()["running"] == 0
