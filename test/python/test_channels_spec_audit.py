"""Conformance audit of forkqueue.channels against spec/channels.md.

Item by item on the API, then pprocess-style programs run in a fresh
interpreter with stdout a pipe (so that output printed twice by a forked
child, or lost, would show).
"""
import inspect
import os
import signal
import textwrap
import time

import pytest

import forkqueue.channels as pprocess
from helpers import run_script


def cell(t):
    i, j = t
    return i * 3 + j


def two(i, j):
    return (i, j, i * 3 + j)


def boom(ch, x):
    raise ValueError("boom %d" % x)


def sender(ch, n):
    for k in range(n):
        ch.send((n, k))


def square_to(ch, x):
    ch.send(x * x)


def crash(ch):
    os.kill(os.getpid(), signal.SIGKILL)


SEQ = [(i, j) for i in range(3) for j in range(3)]


def test_names():
    for name in ["create", "start", "exit", "waitall", "Channel", "Exchange",
                 "Map", "Queue", "pmap", "MakeParallel", "MakeReusable",
                 "get_number_of_cores", "AcknowledgementError"]:
        assert hasattr(pprocess, name), name
    assert callable(pprocess.Exchange.manage)
    for cls in (pprocess.Exchange, pprocess.Map, pprocess.Queue,
                pprocess.Channel):
        assert cls.__module__ == "forkqueue.channels", cls
    assert pprocess.get_number_of_cores() >= 1


def test_exchange_signature():
    params = inspect.signature(pprocess.Exchange.__init__).parameters
    assert [(n, p.default) for n, p in params.items()][1:] == [
        ("channels", None), ("limit", None), ("reuse", 0), ("continuous", 0),
        ("autoclose", 1)]
    assert list(inspect.signature(pprocess.pmap).parameters) == [
        "callable", "sequence", "limit"]
    assert inspect.signature(pprocess.Channel.wait).parameters[
        "options"].default == 0


# ---- channels ----------------------------------------------------------------------

def test_create_send_many_receive_in_order_then_wait():
    ch = pprocess.create()
    if ch.pid == 0:
        for k in range(50):
            ch.send({"k": k})
        pprocess.exit(ch)
    assert ch.pid > 0
    assert [ch.receive()["k"] for _ in range(50)] == list(range(50))
    ch.close()
    assert ch.wait() is not None
    pprocess.waitall()


def test_start_runs_callable_with_the_channel_and_arguments():
    ch = pprocess.start(square_to, 7)
    assert ch.receive() == 49
    ch.close()
    pprocess.waitall()


def test_exception_in_the_child_is_raised_by_receive():
    ch = pprocess.start(boom, 3)
    with pytest.raises(ValueError, match="boom 3"):
        ch.receive()
    ch.close()
    pprocess.waitall()


def test_user_oserror_is_the_jobs_error_not_a_channel_failure():
    def oserr(x):
        raise FileNotFoundError(2, "nope %d" % x)
    m = pprocess.pmap(oserr, [5])
    with pytest.raises(FileNotFoundError, match="nope 5"):
        m[0]


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt])
def test_systemexit_and_keyboardinterrupt_in_a_child_are_errors(exc):
    def target(ch):
        raise exc(4)
    ch = pprocess.start(target)
    with pytest.raises(Exception) as info:
        ch.receive()
    assert not isinstance(info.value, (SystemExit, KeyboardInterrupt))
    assert exc.__name__ in str(info.value)
    ch.close()
    pprocess.waitall()


# ---- exchange ------------------------------------------------------------------------

class Collect(pprocess.Exchange):
    def store_data(self, channel):
        self.got.append(channel.receive())


def test_exchange_start_queues_beyond_limit_and_finish_collects_all():
    ex = Collect(limit=2)
    ex.got = []
    t0 = time.monotonic()
    for i in range(6):
        ex.start(square_to, i)      # never blocks
    assert time.monotonic() - t0 < 5
    assert len(ex.active()) <= 2
    assert ex.unfinished()
    ex.finish()
    assert sorted(ex.got) == [i * i for i in range(6)]
    assert not ex.unfinished() and ex.active() == []


def test_exchange_create_in_child_none_in_parent():
    ex = Collect(limit=2)
    ex.got = []
    for i in range(4):
        ch = ex.create()
        if ch:
            try:
                ch.send(100 + i)
            finally:
                pprocess.exit(ch)
    ex.finish()
    assert sorted(ex.got) == [100, 101, 102, 103]


def test_exchange_ready_and_store_by_hand():
    ex = pprocess.Exchange()
    chans = [pprocess.start(square_to, i) for i in range(3)]
    for ch in chans:
        ex.add(ch)
    got = []
    deadline = time.monotonic() + 20
    while ex.active() and time.monotonic() < deadline:
        for ch in ex.ready(timeout=0.5):
            got.append(ch.receive())
    assert sorted(got) == [0, 1, 4]
    assert ex.active() == []
    pprocess.waitall()


def test_continuous_queue_delivers_every_message():
    q = pprocess.Queue(limit=2, continuous=1)
    f = q.manage(sender)
    for n in (1, 2, 3):
        f(n)
    assert sorted(q) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]


# ---- map, queue, pmap -----------------------------------------------------------------

def test_map_is_ordered_indexable_sliceable_iterable():
    m = pprocess.Map(limit=3)
    calc = m.manage(pprocess.MakeParallel(cell))
    for t in SEQ:
        calc(t)
    assert m[4] == 4
    assert m[0:3] == [0, 1, 2]
    assert m[-1] == 8
    assert list(m) == list(range(9))
    assert len(m) == 9


def test_map_call_passes_each_element_as_one_argument():
    m = pprocess.Map(limit=2)
    m(cell, SEQ)
    assert list(m) == list(range(9))


def test_queue_yields_in_arrival_order_and_ends():
    q = pprocess.Queue(limit=3)
    calc = q.manage(pprocess.MakeParallel(two))
    for i, j in SEQ:
        calc(i, j)
    got = list(q)
    assert sorted(got) == [(i, j, i * 3 + j) for i, j in SEQ]


def test_reusable_map():
    m = pprocess.Map(limit=2, reuse=1)
    calc = m.manage(pprocess.MakeReusable(two))
    for i, j in SEQ:
        calc(i, j)
    assert [r[2] for r in m] == list(range(9))


def test_pmap_is_lazy_and_ordered():
    m = pprocess.pmap(cell, SEQ, limit=2)
    assert isinstance(m, pprocess.Map)
    assert m[2:5] == [2, 3, 4] and list(m) == list(range(9))


def test_pmap_without_limit_and_empty_sequence():
    assert list(pprocess.pmap(cell, SEQ)) == list(range(9))
    assert list(pprocess.pmap(cell, [])) == []
    assert list(pprocess.Queue()) == []


def test_crashed_child_is_an_error_for_its_element():
    m = pprocess.Map(limit=2)
    m.manage(crash)()
    m.manage(square_to)(3)
    with pytest.raises(Exception) as info:
        m[0]
    assert not isinstance(info.value, IndexError)
    assert "SIGKILL" in str(info.value) or "signal 9" in str(info.value)
    assert m[1] == 9


def test_map_raises_the_childs_exception_for_its_index():
    def maybe(x):
        if x == 2:
            raise ValueError("no two")
        return x
    m = pprocess.pmap(maybe, range(4), limit=2)
    assert m[0:2] == [0, 1]
    with pytest.raises(ValueError, match="no two"):
        m[2]
    assert m[3] == 3


def test_waitall_reaps_only_our_children_and_leaves_no_zombie():
    import subprocess
    other = subprocess.Popen(["sleep", "30"])
    try:
        chans = [pprocess.start(square_to, i) for i in range(3)]
        for ch in chans:
            ch.receive()
        t0 = time.monotonic()
        pprocess.waitall()
        assert time.monotonic() - t0 < 5
        assert other.poll() is None          # not reaped by waitall
        for ch in chans:
            assert ch.wait() is not None or ch.returncode is not None
    finally:
        other.kill()
        other.wait()


# ---- programs ------------------------------------------------------------------------

def run_program(src):
    # Python's default buffering (PYTHONUNBUFFERED, if set here, would make
    # concurrent children write a line in pieces that interleave).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = run_script(textwrap.dedent(src), env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


GRID_EXPECTED = "".join(
    " ".join(str(i * 4 + j) for j in range(4)) + "\n" for i in range(4))


def test_program_managed_map_grid_output_printed_once():
    out = run_program("""
        import time
        import forkqueue.channels as pprocess

        N = 4
        delay = 0.05

        def calculate(t):
            i, j = t
            time.sleep(delay)
            return i * N + j

        print("Making %d calculations in parallel..." % (N * N))
        results = pprocess.Map(limit=N)
        calc = results.manage(pprocess.MakeParallel(calculate))
        for i in range(0, N):
            for j in range(0, N):
                calc((i, j))
        for i in range(0, N):
            result = results[i*N:i*N+N]
            print(" ".join(map(str, result)))
        """)
    assert out == "Making 16 calculations in parallel...\n" + GRID_EXPECTED


def test_program_exchange_with_create_and_store_data():
    out = run_program("""
        import time
        import forkqueue.channels as pprocess

        N = 4

        class MyExchange(pprocess.Exchange):
            def store_data(self, ch):
                i, j, result = ch.receive()
                self.D[i*N+j] = result

        print("starting")
        exchange = MyExchange(limit=N)
        exchange.D = [0] * (N * N)
        for i in range(0, N):
            for j in range(0, N):
                ch = exchange.create()
                if ch:
                    try:
                        time.sleep(0.02)
                        ch.send((i, j, i * N + j))
                    finally:
                        pprocess.exit(ch)
        exchange.finish()
        for i in range(0, N):
            print(" ".join(map(str, exchange.D[i*N:i*N+N])))
        """)
    assert out == "starting\n" + GRID_EXPECTED


def test_program_start_and_queue_with_a_child_error():
    out = run_program("""
        import forkqueue.channels as pprocess

        def work(ch, n):
            if n == 3:
                raise ValueError("cannot do %d" % n)
            ch.send(n * 10)

        print("begin")
        queue = pprocess.Queue(limit=2)
        run = queue.manage(work)
        for n in range(5):
            run(n)
        got, errors = [], []
        while True:
            try:
                for value in queue:
                    got.append(value)
                break
            except ValueError as e:
                errors.append(str(e))
        print(sorted(got))
        print(errors)
        pprocess.waitall()
        """)
    assert out == "begin\n[0, 10, 20, 40]\n['cannot do 3']\n"


def test_program_childrens_prints_appear_once_and_parents_never_twice():
    out = run_program("""
        import forkqueue.channels as pprocess

        print("parent before")

        def job(ch, i):
            print("child", i)
            ch.send(i)

        queue = pprocess.Queue(limit=2)
        run = queue.manage(job)
        for i in range(3):
            run(i)
        print(sorted(queue))
        ch = pprocess.create()
        if ch.pid == 0:
            print("created child")
            ch.send(1)
            pprocess.exit(ch)
        ch.receive()
        print(list(pprocess.pmap(lambda x: print("pm", x) or x, [7])))
        pprocess.waitall()
        print("end")
        """)
    lines = out.splitlines()
    assert sorted(lines) == sorted([
        "parent before", "child 0", "child 1", "child 2", "[0, 1, 2]",
        "created child", "pm 7", "[7]", "end"])
    parent = [ln for ln in lines if ln in ("parent before", "[0, 1, 2]",
                                           "[7]", "end")]
    assert parent == ["parent before", "[0, 1, 2]", "[7]", "end"]


@pytest.mark.parametrize("limit", [0, -1, "2", 2.5])
@pytest.mark.parametrize("make", [pprocess.Exchange, pprocess.Map,
                                  pprocess.Queue,
                                  lambda limit: pprocess.pmap(cell, SEQ,
                                                              limit=limit)])
def test_a_limit_below_one_is_a_clear_error_not_a_hang(make, limit):
    with pytest.raises(ValueError, match="limit must be None or an integer "
                                         "of at least 1"):
        make(limit=limit)
