"""Batching in process()/map(): many items per core job, each item keeping
its own id, outcome and place."""
import os
import signal

import pytest

from forkqueue import ForkQueue, ForkQueueException


def ident(*a):
    return a


def one(x):
    return x * 10


def kill_at(x, at=-1, scale=1):
    if x == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * scale


def fail_at(x, at):
    if x == at:
        raise ValueError(f"item {x}")
    return x


def test_tiny_items_are_batched():
    n = 20000
    with ForkQueue(numforks=2) as q:
        assert list(q.map(one, range(n))) == [x * 10 for x in range(n)]
        # The batch size grows from 1: far fewer core jobs than items.
        assert q._stats()["submitted"] < n / 20


def test_slow_items_are_not_batched():
    import time

    def slow(x):
        time.sleep(0.006)  # more than a batch's target of work
        return x

    with ForkQueue(numforks=2) as q:
        assert list(q.map(slow, range(40))) == list(range(40))
        assert q._stats()["submitted"] >= 30


def test_mixed_item_shapes_in_one_stream():
    items = [(1,), (2, 3), [4], (5,), (), (6,), (7, 8, 9)] * 300
    with ForkQueue(numforks=2) as q:
        assert list(q.process(ident, items)) == [tuple(i) for i in items]


def test_single_argument_items_with_argsv():
    with ForkQueue(numforks=2) as q:
        out = list(q.process(kill_at, ((i,) for i in range(3000)),
                             argsv={"scale": 3}))
    assert out == [3 * i for i in range(3000)]


def test_tuple_argument_is_passed_whole():
    # An item (t,) where t is itself a tuple: one argument, the tuple.
    items = [((i, i),) for i in range(1000)]
    with ForkQueue(numforks=2) as q:
        assert list(q.process(lambda t: t[0] + t[1], items)) == \
            [2 * i for i in range(1000)]


@pytest.mark.parametrize("ordered", [True, False])
def test_crash_in_flat_batch_charged_to_its_item(ordered):
    n, at = 5000, 4321
    with ForkQueue(numforks=2, ordered=ordered, reraise=False,
                   retn_ids=True) as q:
        res = list(q.process(kill_at, ((i, at) for i in range(n))))
    ids = [i for i, _ in res]
    assert sorted(ids) == list(range(n))
    if ordered:
        assert ids == list(range(n))
    for i, r in res:
        if i == at:
            assert isinstance(r, ForkQueueException) and r.signal == 9
        else:
            assert r == i


def test_crash_in_batch_reraise_keeps_order():
    with ForkQueue(numforks=2) as q:
        it = q.map(kill_at, range(3000), [1500] * 3000)
        got = []
        with pytest.raises(ForkQueueException, match="SIGKILL"):
            for r in it:
                got.append(r)
        assert got == list(range(1500))
        assert next(it) is None  # the crashed item's slot
        assert list(it) == list(range(1501, 3000))


def test_several_errors_in_one_batch():
    with ForkQueue(numforks=2) as q:
        it = q.map(lambda x: fail_at(x, 10) if x < 100 else fail_at(x, 1500),
                   range(3000))
        got, errors = [], []
        while True:
            try:
                got.append(next(it))
            except StopIteration:
                break
            except ForkQueueException as e:
                errors.append(str(e).splitlines()[-1])
        assert errors == ["ValueError: item 10", "ValueError: item 1500"]
        assert got == [None if x in (10, 1500) else x for x in range(3000)]


def test_source_that_adds_jobs_itself():
    with ForkQueue(numforks=2, retn_ids=True) as q:
        def source():
            for i in range(2000):
                if i == 700:
                    q.add(one, (-1,))            # takes an automatic id
                if i == 1400:
                    q.add(one, (-2,), jobid="x")  # ids are tracked from now
                yield (i,)
        res = list(q.process(one, source()))
        ids = [i for i, _ in res]
        assert len(ids) == len(set(ids)) == 2002
        assert ("x", -20) in res
        # Ids of items still pending when tracking started are protected.
        assert dict(res)[0] == 0


def test_duplicate_check_covers_pending_batch_ids(barrier):
    from helpers import wait_for_file
    with ForkQueue(numforks=2, ordered=False, retn_ids=True) as q:
        q.add(wait_for_file, (barrier.path,))   # id 0, not finished
        # The first look-ahead pulls all 4 items (ids 1..4), one per job.
        it = q.map(one, range(4))
        first_id, _ = next(it)
        q.add(one, (5,), jobid="mine")          # tracking starts now
        for busy in [0] + [i for i in range(1, 5) if i != first_id]:
            with pytest.raises(ValueError):
                q.add(one, (5,), jobid=busy)
        q.add(one, (7,), jobid=first_id)        # yielded: free again
        barrier.open()
        rest = dict(it)
        assert len(rest) == 6 and rest["mine"] == 50
        assert rest[first_id] == 70 and rest[0] == barrier.path


def test_endless_stream_memory_is_bounded():
    import itertools
    with ForkQueue(numforks=2) as q:
        it = q.map(one, itertools.count())
        for _ in range(200000):
            next(it)
        # A bounded number of batches ahead, whatever the stream's length.
        assert q._stats()["stored"] < 100000
        q.cancel()
