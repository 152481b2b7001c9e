"""A process worker's results travel through a ring of memory shared with
the parent (_forkqueue.ResultRing): kept when the worker is killed, in
order with the results too large for it (sent on the channel), and a
worker whose ring is full waits for the parent instead of losing any."""
import enum
import os
import pickle
import signal
import threading

import pytest

from forkqueue import _forkqueue
from forkqueue.workers import Pool, WorkerType
from forkqueue.workers.persistent_process import PersistentProcessWorker

from helpers import wait_until

RING = 1 << 20  # process.RING_BYTES


def test_ring_in_one_process():
    r = _forkqueue.ResultRing(4096)
    assert r.capacity == 4096 and r.max_entry == 4096 // 4 - 8
    out = []
    assert r.take(out.append) == 0 and not r.unread()
    assert r.put(b"a") == 0 and r.put(b"") == 0 and r.unread()
    assert r.put(b"x" * (r.max_entry + 1)) == -2  # another way
    assert r.put_marker() == 0
    assert r.put(b"b") == 0
    assert r.take(out.append) == 2 and out == [b"a", b""]  # up to the marker
    with pytest.raises(ConnectionError):
        _forkqueue.ResultRing(4096).skip_marker()  # no marker there
    r.skip_marker()
    assert r.take(out.append) == 1
    assert out == [b"a", b"", b"b"]
    # wraps around many times; full means -1, never a lost entry
    got, n, i = [], 0, 0
    while n < 2000:
        data = pickle.dumps(i * 7)
        rc = r.put(data)
        if rc == -1:
            r.take(got.append, pickle.loads)
            continue
        assert rc == 0
        n += 1
        i += 1
    r.take(got.append, pickle.loads)
    assert got == [i * 7 for i in range(2000)]
    # final: markers whose message never came are dropped
    r.put_marker()
    r.put(b"c")
    tail = []
    assert r.take(tail.append, None, True) == 1 and tail == [b"c"]


def test_put_obj_pickles_as_the_workers_do():
    r = _forkqueue.ResultRing(4096)
    assert r.put_obj({"a": (1, 2.5)}) is None
    rc, data = r.put_obj(bytes(2000))  # too large: (code, pickled bytes)
    assert rc == -2 and pickle.loads(data) == bytes(2000)
    with pytest.raises(TypeError):
        r.put_obj(threading.Lock())  # cannot be pickled: nothing written
    out = []
    assert r.take(out.append, pickle.loads) == 1
    assert out == [{"a": (1, 2.5)}]


class Color(enum.IntEnum):
    RED = 1


class MyStr(str):
    pass


def test_put_obj_gives_back_what_pickle_would():
    r = _forkqueue.ResultRing(1 << 16)
    values = [0, -1, 2**63 - 1, -2**63, 2**64, -2**100, True, False, None,
              1.5, float("inf"), -0.0, "", "h\u00e9\ud800llo", b"\x00b",
              Color.RED, MyStr("x"), (1, "a"), [1.5], {"k": None},
              bytearray(b"ab"), 10**400]
    for v in values:
        assert r.put_obj(v) is None
    out = []
    assert r.take(out.append, pickle.loads) == len(values)
    assert out == values
    for got, want in zip(out, values):
        assert type(got) is type(want)
    assert str(out[11]) == "-0.0" and values[11] == 0
    nan = []
    r.put_obj(float("nan"))
    r.take(nan.append, pickle.loads)
    assert nan[0] != nan[0]


def test_arm_asks_the_next_put_to_wake_the_reader():
    r = _forkqueue.ResultRing(4096)
    assert r.arm() is False
    assert r.put(b"1") == 1  # woken once
    assert r.put(b"2") == 0
    assert r.arm() is True  # unread entries: no need to block
    r.disarm()
    assert r.put(b"3") == 0
    assert r.dirty() is True and r.dirty() is False


def test_ring_between_processes():
    r = _forkqueue.ResultRing(8192)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for i in range(20000):
                while r.put(pickle.dumps(i)) < 0:
                    pass
        except BaseException:
            code = 1
        os._exit(code)
    got = []
    try:
        while len(got) < 20000:
            r.take(got.append, pickle.loads)
    finally:
        _, st = os.waitpid(pid, 0)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    assert got == list(range(20000))


def hang_on_five(marker):
    def target(x):
        if x == 5:
            open(marker, "w").close()
            signal.pause()
        return x
    return target


def test_results_survive_a_sigkill(tmp_path):
    marker = tmp_path / "at5"
    w = PersistentProcessWorker(hang_on_five(str(marker)))
    try:
        for i in range(8):
            w.enqueue(i)
        # at 5, so 0..4 are in its ring; nothing read yet
        assert wait_until(marker.exists, timeout=30)
    finally:
        os.kill(w.pid, signal.SIGKILL)
        assert w.wait(10)
    assert w.has_error is True and w.returncode == -signal.SIGKILL
    assert list(w.results_iter()) == [0, 1, 2, 3, 4]


def big_or_small(x):
    # every third result is too large for the ring (a quarter of it)
    return bytes(RING // 4 + 10) + bytes([x]) if x % 3 == 0 else x


def _check(out, n):
    assert len(out) == n
    for i, v in enumerate(out):
        if i % 3 == 0:
            assert isinstance(v, bytes) and v[-1] == i
        else:
            assert v == i


def test_large_results_keep_their_place():
    w = PersistentProcessWorker(big_or_small)
    try:
        for i in range(30):
            w.enqueue(i)
        _check([w.next_result(timeout=30) for _ in range(30)], 30)
    finally:
        w.close()
        assert w.wait(10)


def test_large_results_in_a_pool():
    with Pool(big_or_small) as pool:
        pool.add_worker(WorkerType.PROCESS)
        out = pool.run(iter(range(60)))
    _check(out, 60)


def medium(x):
    return (x, bytes(100_000))  # ten fill the ring


def _wait_for_full_ring(w):
    """Waits until worker ``w`` has said its ring is full: past its
    "started" message, the only message it sends here is that W."""
    while not w._seen_started:
        assert w._read(30)
    assert wait_until(lambda: w._link.ready(), timeout=30)


def test_a_full_ring_makes_the_worker_wait():
    w = PersistentProcessWorker(medium)
    try:
        n = 40  # 4 MB of results for a 1 MB ring, nobody reading
        for i in range(n):
            w.enqueue(i)
        # the worker stops at a full ring (and tells the parent)
        _wait_for_full_ring(w)
        out = [w.next_result(timeout=30) for _ in range(n)]
        assert [x for x, _ in out] == list(range(n))
    finally:
        w.close()
        assert w.wait(10)
    assert w.has_error is False


def test_terminating_a_worker_that_waits_for_room():
    w = PersistentProcessWorker(medium)
    for i in range(40):
        w.enqueue(i)
    _wait_for_full_ring(w)
    assert w.terminate(timeout=10)
    got = [x for x, _ in w.results_iter()]
    # what it finished is delivered, in order; it stopped before the end
    assert got == list(range(len(got))) and 10 <= len(got) < 40
    assert isinstance(w.error, Exception)


def echo(x):
    return x


def test_inputs_that_cannot_be_pickled_are_dropped_alone():
    # inputs are pickled a batch at a time now: one that cannot be pickled
    # is still dropped on its own (and logged), the others run
    bad = {0, 1, 300, 599}

    def inputs():
        for i in range(600):
            yield threading.Lock() if i in bad else i
    with Pool(echo) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        out = pool.run(inputs())
        assert sorted(out) == [i for i in range(600) if i not in bad]
        assert pool.run(iter([threading.Lock()] * 3 + [5])) == [5]
