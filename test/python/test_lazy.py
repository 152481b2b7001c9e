"""forkqueue.lazy: proxies, lazy operators, dispatch, maps, waits, asyncio."""
import asyncio
import os
import threading
import time

import pytest

import forkqueue.lazy as fork
from forkqueue.lazy import (ResultEvaluationError, ResultProxy, await_all,
                            await_any, block_map, cpu_bound, evaluate,
                            io_bound)
from helpers import run_script, wait_for_file


@pytest.fixture(autouse=True)
def stop_pools():
    yield
    fork._shutdown()


def double(x):
    return 2 * x


def test_all_names():
    names = {"fork", "submit", "go", "process", "thread", "map",
             "map_process", "map_thread", "block_map", "block_map_process",
             "block_map_thread", "evaluate", "await_", "await_all",
             "await_any", "cpu_bound", "io_bound", "ResultProxy",
             "ResultEvaluationError"}
    assert set(fork.__all__) == names
    ns = {}
    exec("from forkqueue.lazy import *", ns)
    assert names <= set(ns)
    assert fork.submit is fork.fork and fork.go is fork.fork
    assert fork.await_ is fork.evaluate
    assert getattr(fork, "await") is fork.evaluate


def test_proxy_is_transparent():
    p = fork.fork(double, 21)
    assert type(p) is ResultProxy
    assert isinstance(p, int)
    assert p == 42 and p != 41 and p < 43 and p >= 42
    assert str(p) == "42" and repr(p) == "42" and f"{p:>4}" == "  42"
    assert int(p) == 42 and float(p) == 42.0 and bool(p)
    assert hash(p) == hash(42)
    assert p.bit_length() == 6
    assert -p == -42 and abs(fork.fork(double, -1)) == 2
    s = fork.fork(list, "abc")
    assert len(s) == 3 and s[1] == "b" and "c" in s and list(s) == list("abc")
    assert list(reversed(s)) == ["c", "b", "a"]
    s.append("d")  # attribute access acts on the (local copy of the) value
    assert s == ["a", "b", "c", "d"]
    d = fork.fork(dict, a=1)
    assert d["a"] == 1 and dict(d) == {"a": 1}
    f = fork.thread(lambda: (lambda y: y + 1))
    assert f(1) == 2
    assert fork.fork(double, 2) == fork.fork(double, 2)
    assert sorted([fork.fork(double, 3), fork.fork(double, 1)]) == [2, 6]
    assert [1, 2, 3][fork.fork(double, 1)] == 3  # __index__
    print(fork.fork(double, 5))


def test_operators_stay_lazy_on_both_sides(barrier):
    gate = fork.fork(wait_for_file, barrier.path, 60)
    n = fork.fork(len, "four")  # a proxy not depending on the gate
    total = 0
    for i in range(10):
        total += n  # int + proxy: __radd__
    e = (gate + "") * 1
    assert type(total) is ResultProxy and type(e) is ResultProxy
    # Building these did not wait for the gated job.
    assert not gate._fq_ready()
    assert total == 40
    barrier.open()
    assert e == barrier.path
    x = fork.fork(double, 6)  # 12
    assert (x - 2, 2 - x, x * 2, x / 4, 25 // x, x % 5, 2 ** fork.fork(
        double, 2), x << 1, x >> 1, x & 4, x | 1, x ^ 15, divmod(x, 5),
        20 - x + 1) == (10, -10, 24, 3.0, 2, 2, 16, 24, 6, 4, 13, 3, (2, 2),
                        9)


def test_a_chain_of_100000_operations_evaluates():
    s = fork.fork(double, 0)
    for _ in range(100_000):
        s = s + 1
    assert evaluate(s) == 100_000
    t = fork.fork(double, 1)
    for _ in range(100_000):
        t = 1 + t  # right-hand side chain
    assert t == 100_002


def test_accumulating_1000_forks():
    total = 0
    for i in range(1000):
        total += fork.fork(double, i)
    assert total == 999000


def test_decorators_choose_process_or_thread():
    me = os.getpid()

    @io_bound
    def where_io():
        return os.getpid(), threading.current_thread().name

    @cpu_bound
    def where_cpu():
        return os.getpid()

    def plain():
        return os.getpid()

    assert where_io.__name__ == "where_io" and where_io()[0] == me
    pid, name = fork.fork(where_io)
    assert pid == me and name.startswith("forkqueue-lazy")
    assert fork.fork(where_cpu) != me
    assert fork.fork(plain) != me
    assert fork.process(where_io)[0] != me
    assert fork.thread(plain) == me
    assert fork.fork(abs, -1) == 1  # builtins work, in a process


def test_maps_and_block_maps():
    ps = fork.map(double, range(5))
    assert all(type(p) is ResultProxy for p in ps)
    assert ps == [0, 2, 4, 6, 8]
    assert fork.map(pow, [2, 3], [2, 2]) == [4, 9]
    assert fork.map_thread(double, [1]) == [2]
    assert fork.map_process(double, [1]) == [2]
    assert block_map(double, None, range(4)) == [0, 2, 4, 6]
    assert block_map(double, range(3)) == [0, 2, 4]  # xfork's own example
    assert fork.block_map_process(pow, 30, [2], [3]) == [8]
    assert fork.block_map_thread(double, None, "ab") == ["aa", "bb"]


def test_await_all_and_await_any(barrier):
    assert await_all(fork.map(double, range(5))) == [0, 2, 4, 6, 8]
    slow = fork.fork(wait_for_file, barrier.path, 60)
    quick = fork.fork(double, 1)
    ready = await_any([slow, quick], timeout=30)
    assert ready == [quick] and ready[0] is quick
    with pytest.raises(TimeoutError):
        await_all([slow], timeout=0.05)
    with pytest.raises(TimeoutError):
        await_any([slow], timeout=0.05)
    with pytest.raises(TimeoutError):
        evaluate(slow, timeout=0.05)
    barrier.open()
    assert evaluate(slow, timeout=30) == barrier.path
    assert await_any([]) == []
    assert evaluate(5) == 5


def test_fork_from_many_threads():
    out = {}

    def client(k):
        out[k] = sum(fork.fork(double, k * 100 + i) for i in range(50))

    ts = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == {k: sum(2 * (k * 100 + i) for i in range(50))
                   for k in range(6)}


def test_await_proxy_in_a_coroutine():
    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        value = await (fork.fork(double, 4) + fork.fork(double, 1))
        slept = await fork.fork(time.sleep, 0.2)
        stop.set()
        await t
        return value, slept, ticks

    value, slept, ticks = asyncio.run(main())
    assert value == 10 and slept is None and ticks > 10


def test_closures_and_lambdas_run_in_processes():
    base = 1000
    assert fork.fork(lambda x: x + base, 1) == 1001
    assert fork.map(lambda x: x * base, [1, 2]) == [1000, 2000]


def test_proxies_as_arguments(barrier):
    a = fork.fork(double, 2)
    assert fork.fork(double, a) == 8
    assert fork.fork(sum, [a, a]) == 8
    assert fork.fork(dict, x=a, y={"k": a}) == {"x": 4, "y": {"k": 4}}
    assert fork.thread(lambda p: p + 1, a) == 5
    # A job on a proxy not ready yet is sent when it is: fork() does not
    # wait for it.
    gate = fork.fork(wait_for_file, barrier.path, 60)
    t0 = time.monotonic()
    later = fork.fork(len, gate + "/x")
    assert time.monotonic() - t0 < 5 and not later._fq_ready()
    barrier.open()
    assert later == len(barrier.path) + 2
    bad = fork.fork(int, fork.fork(str, "x"))
    with pytest.raises(ResultEvaluationError, match="invalid literal"):
        evaluate(bad)


def test_unevaluated_jobs_finish_before_exit(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    r = run_script(
        "import forkqueue.lazy as fork, time, os\n"
        "def work(i):\n"
        "    time.sleep(0.05)\n"
        f"    open(os.path.join({str(marks)!r}, str(i)), 'w').close()\n"
        "    os.write(1, b'done %d\\n' % i)\n"
        "@fork.io_bound\n"
        "def io(i):\n"
        "    time.sleep(0.05)\n"
        f"    open(os.path.join({str(marks)!r}, 't' + str(i)), 'w').close()\n"
        "for i in range(6):\n"
        "    fork.fork(work, i)\n"
        "    fork.fork(io, i)\n")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(marks)) == sorted(
        [str(i) for i in range(6)] + [f"t{i}" for i in range(6)])
    assert sorted(r.stdout.split("\n")[:-1]) == [f"done {i}"
                                                 for i in range(6)]


def test_a_thread_job_may_fork_a_process_job_at_exit(tmp_path):
    mark = tmp_path / "mark"
    r = run_script(
        "import forkqueue.lazy as fork, time\n"
        "def write():\n"
        f"    open({str(mark)!r}, 'w').write('ok')\n"
        "@fork.io_bound\n"
        "def later():\n"
        "    time.sleep(0.3)\n"
        "    fork.fork(write)\n"
        "fork.fork(later)\n")
    assert r.returncode == 0, r.stderr
    assert mark.read_text() == "ok"


def test_configure_pool_sizes():
    r = run_script(
        "import forkqueue.lazy as fork, os\n"
        "fork.configure(processes=3, threads=5)\n"
        "print(fork.fork(os.getpid) > 0, fork._pool('processes')._max_workers,"
        " fork._pool('threads')._max_workers)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True 3 5\n"
    with pytest.raises(ValueError):
        fork.configure(processes=0)


def test_pow_with_a_modulus():
    # pow(a, b, m) passes a third operand: the value is used at once.
    x = fork.fork(abs, -3)
    assert pow(x, 2, 5) == 4
    assert type(pow(x, 2)) is ResultProxy and pow(x, 2) == 9
    assert type(2 ** x) is ResultProxy and 2 ** x == 8
