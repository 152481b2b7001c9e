"""forkqueue.channels, part 3: pmap's spans and slices (spec:
shared/spec/channels.md): a slice of the Map is taken in one piece once
the spans under it are in, and must behave exactly as element-by-element
access does (order, errors, crashes, laziness)."""
import os
import random

import pytest

import forkqueue.channels as pprocess
from helpers import child_pids, wait_for_file


def square(x):
    return x * x


def test_slices_of_every_shape():
    n = 3000
    want = [x * x for x in range(n)]
    m = pprocess.pmap(square, range(n), limit=2)
    assert m[10:20] == want[10:20]
    assert m[:] == want
    assert m[::7] == want[::7]
    assert m[-5:] == want[-5:]
    assert m[::-1] == want[::-1]
    assert m[20:10] == []
    assert m[n:n + 5] == []
    assert m[-1] == want[-1]


def test_slice_starting_past_the_results_in():
    m = pprocess.pmap(square, range(2000), limit=2)
    assert m[1500:1510] == [x * x for x in range(1500, 1510)]
    assert m[:] == [x * x for x in range(2000)]


def test_slice_over_an_error_raises_it_and_slices_beside_it_work():
    def f(x):
        if x == 1200:
            raise KeyError(x)
        return -x

    m = pprocess.pmap(f, range(3000), limit=2)
    with pytest.raises(KeyError):
        m[:]
    with pytest.raises(KeyError):
        m[1000:1300]
    assert m[:1200] == [-x for x in range(1200)]
    assert m[1201:] == [-x for x in range(1201, 3000)]
    pprocess.waitall()  # an error may raise before the last spans are in


def test_slice_raises_the_first_error_in_index_order():
    def f(x):
        if x in (400, 2600):
            raise (ValueError if x == 400 else KeyError)(x)
        return x

    m = pprocess.pmap(f, range(3000), limit=2)
    with pytest.raises(ValueError):
        m[:]
    with pytest.raises(KeyError):
        m[401:]
    pprocess.waitall()


def test_slice_over_a_crash_names_the_element():
    def f(x):
        if x == 777:
            os._exit(5)
        return x

    m = pprocess.pmap(f, range(3000), limit=2)
    with pytest.raises(pprocess.ChildError, match="element 777: .*status 5"):
        m[:]
    assert m[:777] == list(range(777))
    assert m[778:] == list(range(778, 3000))
    pprocess.waitall()


def test_a_slice_waits_only_for_the_spans_under_it(barrier):
    # The last elements wait for the gate: the first elements' slice must
    # come back while they do. (A span is at most an eighth of what is
    # left per child, so the first spans stay far from them.)
    n = 100_000

    def f(x):
        if x >= n - 1000:
            wait_for_file(barrier.path)
        return x + 1

    m = pprocess.pmap(f, range(n), limit=2)
    assert m[:20] == list(range(1, 21))
    assert m[5] == 6
    barrier.open()
    assert m[:] == list(range(1, n + 1))


def test_children_end_once_the_results_are_in():
    before = set(child_pids())
    m = pprocess.pmap(square, range(20000), limit=2)
    assert m[:] == [x * x for x in range(20000)]
    # Every result in: the children were reaped before m[:] returned.
    assert not (set(child_pids()) - before)


def test_many_small_maps_in_a_row():
    for n in (0, 1, 2, 3, 17, 100):
        assert pprocess.pmap(square, range(n), limit=3)[:] == \
            [x * x for x in range(n)]


def test_slices_match_reading_element_by_element():
    bad = {13: KeyError, 250: ValueError, 251: KeyError, 999: ValueError}

    def f(x):
        if x in bad:
            raise bad[x](x)
        return x * 3

    def outcome(read):
        try:
            return ("ok", read())
        except Exception as e:
            return (type(e).__name__, e.args)

    rnd = random.Random(7)
    m = pprocess.pmap(f, range(1000), limit=2)
    for _ in range(60):
        a, b = sorted(rnd.randrange(-1100, 1100) for _ in range(2))
        step = rnd.choice([1, 1, 1, 2, -1])
        s = slice(a, b, step)
        fast = outcome(lambda: m[s])
        ref = outcome(lambda: [m[j] for j in range(*s.indices(len(m)))])
        assert fast == ref, (s, fast, ref)
    pprocess.waitall()
