"""forkqueue.channels, part 2: Exchange, Map, Queue, pmap, MakeParallel,
MakeReusable (spec: shared/spec/channels.md)."""
import os
import select
import signal
import time

import pytest

import forkqueue.channels as pprocess
from helpers import child_pids, wait_for_file


def square(x):
    return x * x


def sender(ch, value, delay=0.0):
    time.sleep(delay)  # the child's own work: it takes that long
    ch.send(value)


def gated_sender(ch, value, gate):
    """Sends `value` once the test opens `gate` (a file): the order in which
    children send is the order the test opens their gates, whatever the
    load of the machine."""
    wait_for_file(gate)
    ch.send(value)


def open_gate(gate):
    with open(gate, "w"):
        pass


class Collect(pprocess.Exchange):
    def store_data(self, channel):
        self.got.append(channel.receive())


def collector(**kw):
    ex = Collect(**kw)
    ex.got = []
    return ex


def open_sockets():
    """The socket descriptors open in this process (channels are sockets)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                found.add(int(fd))
        except OSError:
            pass
    return found


def test_exchange_add_active_ready_remove(tmp_path):
    # Child i sends once the test received from child i - 1.
    gates = [str(tmp_path / f"gate{i}") for i in range(3)]
    chans = [pprocess.start(gated_sender, i, gates[i]) for i in range(3)]
    ex = pprocess.Exchange(chans)
    assert set(ex.active()) == set(chans)
    assert ex.ready(0) == []  # no gate open: nothing to read yet
    got = []
    open_gate(gates[0])
    while ex.active():
        for ch in ex.ready(10):
            got.append(ch.receive())
            if len(got) < len(gates):
                open_gate(gates[len(got)])
    assert got == [0, 1, 2]
    assert all(ch.closed and ch.returncode == 0 for ch in chans)


def test_ready_timeout_is_in_seconds(tmp_path):
    gate = str(tmp_path / "gate")
    ch = pprocess.start(gated_sender, "late", gate)
    ex = pprocess.Exchange([ch])
    t0 = time.monotonic()
    assert ex.ready(0.1) == []  # the child sends nothing before its gate
    # 0.1 s, not 0.1 ms nor 100 s (room above for a loaded machine).
    assert 0.09 <= time.monotonic() - t0 < 5
    open_gate(gate)
    assert ex.ready(10) == [ch]
    assert ch.receive() == "late"
    ex.finish_channels = None
    while ex.active():
        ex.ready(10)
    assert ch.returncode == 0


def test_remove_without_autoclose_keeps_channel_open():
    ch = pprocess.start(lambda c: c.send(c.receive() + 1))
    ex = pprocess.Exchange([ch], autoclose=0)
    ex.remove(ch)
    assert ex.active() == [] and not ch.closed
    ch.send(1)
    assert ch.receive() == 2
    ch.wait()


def test_data_sent_before_the_end_is_delivered_before_removal():
    def burst(ch):
        for i in range(50):
            ch.send(i)

    ex = collector(continuous=1)
    for _ in range(4):
        ex.add(pprocess.start(burst))
    ex.finish()
    assert sorted(ex.got) == sorted(list(range(50)) * 4)


def test_store_data_must_be_overridden():
    ex = pprocess.Exchange()
    ex.start(sender, 1)
    with pytest.raises(NotImplementedError):
        ex.finish()
    pprocess.waitall()


def test_start_queues_fifo_beyond_limit_and_never_blocks(tmp_path):
    # The children send only once the test opens their gates: a start()
    # that waited for a running child would wait for ever (20 s).
    gates = [str(tmp_path / f"gate{i}") for i in range(8)]
    ex = collector(limit=2)
    t0 = time.monotonic()
    for i in range(8):
        ex.start(gated_sender, i, gates[i])
    assert time.monotonic() - t0 < 10  # no child was waited for
    assert len(ex.active()) == 2 and len(ex.waiting) == 6
    assert ex.busy() and ex.unfinished()
    seen_active = []
    opened = 0
    while ex.unfinished():
        # Child i may send once i values arrived: only a first-in,
        # first-out start of the waiting children gives every gate's child
        # a slot (else two children hold the slots behind closed gates).
        while opened < min(len(gates), len(ex.got) + 1):
            open_gate(gates[opened])
            opened += 1
        seen_active.append(len(ex.active()))
        ex.store()
    assert max(seen_active) <= 2
    assert ex.got == list(range(8))
    assert not ex.busy() and not ex.unfinished()


def test_limit_fifo_order_with_limit_one():
    ex = collector(limit=1)
    for i in range(5):
        ex.start(sender, i)
    ex.finish()
    assert ex.got == [0, 1, 2, 3, 4]


def test_create_returns_channel_in_child_and_none_in_parent():
    ex = collector(limit=3)
    for i in range(6):
        ch = ex.create()
        if ch:
            ch.send(i * 10)
            pprocess.exit(ch)
        assert ch is None
    ex.finish()
    assert sorted(ex.got) == [0, 10, 20, 30, 40, 50]


def test_manage():
    ex = collector(limit=2)
    run = ex.manage(pprocess.MakeParallel(square))
    assert isinstance(run, pprocess.ManagedCallable)
    for i in range(5):
        run(i)
    ex.finish()
    assert sorted(ex.got) == [0, 1, 4, 9, 16]


def test_add_wait_and_wait():
    ex = collector(limit=1)
    t0 = time.monotonic()  # before "a" starts its 0.1 s of work
    ex.add_wait(pprocess.start(sender, "a", 0.1))
    ex.add_wait(pprocess.start(sender, "b"))  # waits for "a" first
    assert ex.got == ["a"] and time.monotonic() - t0 >= 0.1
    ex.finish()
    assert ex.got == ["a", "b"]


def test_crash_in_plain_exchange_is_raised_by_store():
    def dies(ch):
        os.kill(os.getpid(), signal.SIGKILL)

    ex = collector()
    ex.start(dies)
    with pytest.raises(pprocess.ChildError, match=r"signal 9 \(SIGKILL\)"):
        ex.finish()


def test_reuse_runs_many_calls_in_one_child():
    ex = collector(limit=2, reuse=1)
    run = ex.manage(pprocess.MakeReusable(os.getpid))
    for _ in range(10):
        run()
    ex.finish()
    assert len(ex.got) == 10
    assert len(set(ex.got)) <= 2  # two children ran all ten calls


def test_makereusable_ends_on_none():
    ch = pprocess.start(pprocess.MakeReusable(square), 3)
    assert ch.receive() == 9
    ch.send(((4,), {}))
    assert ch.receive() == 16
    ch.send(None)
    assert ch.wait() == 0


def test_continuous_100000_messages_in_order():
    def many(ch):
        for i in range(100_000):
            ch.send(i)

    class Check(pprocess.Exchange):
        expected = 0

        def store_data(self, channel):
            assert channel.receive() == self.expected
            self.expected += 1

    ex = Check(continuous=1)
    ex.start(many)
    ex.finish()
    assert ex.expected == 100_000


def test_continuous_slot_freed_when_child_ends():
    # One long child and a queue of short ones: with limit 2 the short ones
    # run one after another beside the long one, which holds its last
    # message until this process has received every short one's (a byte to
    # a pipe for each; or 30 s went by: slots not freed would keep the short
    # ones waiting).
    rd, wr = os.pipe()

    def long(ch):
        for i in range(2):
            ch.send(("long", i))
        done, deadline = 0, time.monotonic() + 30
        while done < 5 and select.select([rd], [], [],
                                         deadline - time.monotonic())[0]:
            done += len(os.read(rd, 5 - done))
        ch.send(("long", 2))

    def short(ch, i):
        ch.send(("short", i))

    class Signal(Collect):
        def store_data(self, channel):
            super().store_data(channel)
            if self.got[-1][0] == "short":
                os.write(wr, b"x")

    ex = Signal(limit=2, continuous=1)
    ex.got = []
    try:
        ex.start(long)
        for i in range(5):
            ex.start(short, i)
        ex.finish()
    finally:
        os.close(rd)
        os.close(wr)
    shorts = [v for k, v in ex.got if k == "short"]
    assert shorts == [0, 1, 2, 3, 4]
    # every short one came before the long one's last message
    assert ex.got.index(("long", 2)) == len(ex.got) - 1


def test_map_input_order_index_slice_iteration():
    m = pprocess.Map(limit=4)
    m(square, range(10))
    assert len(m) == 10
    assert m[3] == 9
    assert m[-1] == 81
    assert m[2:5] == [4, 9, 16]
    assert m[::3] == [0, 9, 36, 81]
    assert list(m) == [x * x for x in range(10)]
    with pytest.raises(IndexError):
        m[10]


def test_map_start_and_create():
    m = pprocess.Map(limit=2)
    m.start(sender, "s", 0.1)
    ch = m.create()
    if ch:
        ch.send("c")
        pprocess.exit(ch)
    m.start(sender, "t")
    assert m[:] == ["s", "c", "t"]


def test_map_element_3_crashes_others_fine():
    def crash_at_3(x):
        if x == 3:
            os.kill(os.getpid(), signal.SIGSEGV)
        return x * 2

    m = pprocess.Map(limit=3)
    m(crash_at_3, range(8))
    for i in range(8):
        if i == 3:
            with pytest.raises(pprocess.ChildError,
                               match=r"element 3: .*signal 11 \(SIGSEGV\)"):
                m[3]
        else:
            assert m[i] == i * 2


def test_map_child_without_result_is_an_error_not_a_missing_element():
    m = pprocess.Map()
    m.start(lambda ch: None)  # sends nothing
    m.start(sender, "ok")
    with pytest.raises(pprocess.ChildError, match="without sending a result"):
        m[0]
    assert m[1] == "ok"


def test_map_exception_in_element_and_oserror():
    def f(x):
        if x == 1:
            raise OSError(5, "disk on fire")
        if x == 2:
            raise SystemExit(4)
        return x

    m = pprocess.Map()
    m(f, range(4))
    assert m[0] == 0 and m[3] == 3
    with pytest.raises(OSError, match="disk on fire"):
        m[1]
    with pytest.raises(pprocess.ChildError, match="SystemExit: 4"):
        m[2]


def test_map_reusable():
    m = pprocess.Map(limit=3, reuse=1)
    run = m.manage(pprocess.MakeReusable(lambda x: (x, os.getpid())))
    for i in range(12):
        run(i)
    values = m[:]
    assert [v for v, _ in values] == list(range(12))
    assert len({p for _, p in values}) <= 3


def test_queue_arrival_order_and_end(tmp_path):
    # Started slow, fast, middle; they send in the order fast, middle, slow
    # (each gate opened once the previous value arrived).
    gates = {name: str(tmp_path / name) for name in ("slow", "fast",
                                                      "middle")}
    q = pprocess.Queue(limit=3)
    for name in ("slow", "fast", "middle"):
        q.start(gated_sender, name, gates[name])
    order = ["fast", "middle", "slow"]
    open_gate(gates[order[0]])
    got = []
    for value in q:
        got.append(value)
        if len(got) < len(order):
            open_gate(gates[order[len(got)]])
    assert got == order
    assert list(q) == []  # nothing unfinished: iteration ends at once


def test_queue_call_crash_and_error():
    def f(x):
        if x == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        if x == 3:
            raise ValueError("three")
        return x

    q = pprocess.Queue(limit=2)
    q(f, range(5))
    got, errors = [], []
    while True:
        try:
            got.append(next(q))
        except StopIteration:
            break
        except (pprocess.ChildError, ValueError) as e:
            errors.append(type(e).__name__)
    assert sorted(got) == [0, 1, 4]
    assert sorted(errors) == ["ChildError", "ValueError"]


def test_pmap_is_a_lazy_map_in_order():
    r = pprocess.pmap(square, range(200), limit=3)
    assert isinstance(r, pprocess.Map)
    assert len(r) == 200
    assert r[150] == 22500
    assert r[:] == [x * x for x in range(200)]
    assert list(r) == [x * x for x in range(200)]


def test_pmap_limit_none_bounds_children_to_cores():
    r = pprocess.pmap(lambda x: os.getpid(), range(300))
    pids = set(r[:])
    assert 1 <= len(pids) <= pprocess.get_number_of_cores()
    pprocess.waitall()


def test_pmap_errors_and_crash_attributed_to_the_element():
    def f(x):
        if x == 37:
            os.kill(os.getpid(), signal.SIGKILL)
        if x == 50:
            raise KeyError(x)
        return -x

    r = pprocess.pmap(f, range(100), limit=2)
    for i in range(100):
        if i == 37:
            with pytest.raises(pprocess.ChildError, match="element 37: .*SIGKILL"):
                r[i]
        elif i == 50:
            with pytest.raises(KeyError):
                r[i]
        else:
            assert r[i] == -i
    pprocess.waitall()


def test_pmap_bad_limit():
    with pytest.raises(ValueError):
        pprocess.pmap(square, [1], limit=0)


def test_pmap_empty_and_makeparallel():
    assert pprocess.pmap(square, [])[:] == []
    assert pprocess.pmap(pprocess.MakeParallel(square), [3])[:] == [9]


def test_exchange_500_children_limit_8_no_zombie_no_fd():
    before = set(child_pids())  # other tests' leftovers, if any
    sockets = open_sockets()
    ex = collector(limit=8)
    for i in range(500):
        ex.start(sender, i)
    peak = 0
    while ex.unfinished():
        ex.store()
        peak = max(peak, len(set(child_pids()) - before))
    assert sorted(ex.got) == list(range(500))
    assert peak <= 8
    assert not (set(child_pids()) - before)  # no zombie
    assert open_sockets() <= sockets  # no channel descriptor left open


def test_pmap_crash_inside_a_large_span_blames_only_that_element():
    def f(x):
        if x in (1234, 2500):
            os._exit(3)
        return x + 1

    r = pprocess.pmap(f, range(3000), limit=2)
    values = []
    for i in range(3000):
        try:
            values.append(r[i])
        except pprocess.ChildError as e:
            assert f"element {i}: " in str(e) and "status 3" in str(e)
            assert e.returncode == 3
            values.append("crash")
    assert [i for i, v in enumerate(values) if v == "crash"] == [1234, 2500]
    assert all(v == i + 1 for i, v in enumerate(values) if v != "crash")


def test_pmap_crash_in_a_big_span_costs_few_forks():
    def f(x):
        if x == 15000:
            os._exit(9)
        return os.getpid()

    r = pprocess.pmap(f, range(20000), limit=2)
    pids = set()
    for i in range(20000):
        if i == 15000:
            with pytest.raises(pprocess.ChildError, match="element 15000: "):
                r[i]
        else:
            pids.add(r[i])
    # bisection: a handful of children, not one fork per element of the span
    assert len(pids) < 40, len(pids)
