"""How a ForkQueue iterator waits: after a poll, the outcomes it counted
are taken without another look at the workers, and an iterator whose
results ran out waits with one poll. Whatever arrives together (several
calls' outcomes, an error among them, results behind a slow head) must
still come out right, in order, and nothing may be left for the next
call."""
import time

import pytest

from forkqueue import ForkQueue


def slow_first(x):
    # The first items end last: their results are behind later ones.
    if x < 4:
        time.sleep(0.02 * (4 - x))
    return x * 10


def fail_at(x, bad=57):
    if x == bad:
        raise ValueError(f"bad {x}")
    return x


def test_ordered_results_behind_a_slow_head():
    for ordered in (True, False):
        with ForkQueue(numforks=2, ordered=ordered) as q:
            got = list(q.map(slow_first, range(400)))
        want = [x * 10 for x in range(400)]
        assert (got if ordered else sorted(got)) == want


def test_an_error_among_outcomes_taken_together():
    with ForkQueue(numforks=2) as q:
        it = q.map(fail_at, range(300))
        got = []
        with pytest.raises(ValueError, match="bad 57"):
            for r in it:
                got.append(r)
        assert got == list(range(57))
        # The rest of that call is not left for the next one.
        assert list(q.map(fail_at, range(100, 200))) == list(range(100, 200))
        assert list(q.results()) == []


def test_two_iterators_waiting_in_turn_get_their_own_results():
    with ForkQueue(numforks=2) as q:
        a = q.map(slow_first, range(200))
        b = q.map(lambda x: -x, range(2000))
        got_a, got_b = [], []
        for _ in range(200):
            got_b.append(next(b))
            got_a.append(next(a))
        got_b.extend(b)
        assert got_a == [x * 10 for x in range(200)]
        assert got_b == [-x for x in range(2000)]


def test_a_time_limit_does_not_change_what_comes_out():
    with ForkQueue(numforks=2, timeout=60) as q:
        assert list(q.map(slow_first, range(300))) == \
            [x * 10 for x in range(300)]
        with pytest.raises(ValueError, match="bad 7"):
            list(q.map(lambda x: fail_at(x, 7), range(20)))
