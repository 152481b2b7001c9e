"""Conformance audit of forkqueue.lazy against spec/lazy.md.

Item by item (transparency, laziness, kinds of execution, maps, waits,
errors, cascading forks), then xfork-style programs run in a fresh
interpreter with only the import changed (and `await(` renamed).
"""
import asyncio
import os
import signal
import textwrap
import threading

import pytest

import forkqueue.lazy as fork
from helpers import run_script


@pytest.fixture(autouse=True)
def stop_pools():
    """The lazy face keeps its worker pools between calls: stop them after
    each test, so that the check for leftover children sees none."""
    yield
    fork._shutdown()


def square(x):
    return x * x


def my_pid():
    return os.getpid()


def crash():
    os.kill(os.getpid(), signal.SIGKILL)


def letters(s):
    return list(s)


class Box:
    def __init__(self, v):
        self.v = v

    def get(self, k=1):
        return self.v * k


def make_box(v):
    return Box(v)


def test_all_lists_every_name():
    names = {"fork", "submit", "go", "process", "thread", "map",
             "map_process", "map_thread", "block_map", "block_map_process",
             "block_map_thread", "evaluate", "await_", "await_all",
             "await_any", "cpu_bound", "io_bound", "ResultProxy",
             "ResultEvaluationError"}
    assert names <= set(fork.__all__)
    ns = {}
    exec("from forkqueue.lazy import *", ns)
    assert names <= set(ns)
    assert fork.submit is fork.fork or fork.submit(square, 2) == 4
    assert fork.go(square, 3) == 9 and fork.await_ is fork.evaluate
    # tracebacks and type() name the public module
    assert fork.ResultProxy.__module__ == "forkqueue.lazy"
    assert fork.ResultEvaluationError.__module__ == "forkqueue.lazy"


def test_proxy_is_transparent():
    p = fork.fork(square, 3)
    assert str(p) == "9" and repr(p) == "9" and f"{p:03d}" == "009"
    assert p == 9 and p != 8 and p < 10 and p >= 9
    assert bool(p) and int(p) == 9 and float(p) == 9.0
    assert isinstance(p, int) and hash(p) == hash(9)
    lst = fork.fork(letters, "abc")
    assert len(lst) == 3 and lst[1] == "b" and list(lst) == ["a", "b", "c"]
    assert "c" in lst and lst[1:] == ["b", "c"]
    b = fork.fork(make_box, 4)
    assert b.v == 4 and b.get(k=2) == 8
    f = fork.fork(dict, a=1)
    assert f["a"] == 1 and list(f.keys()) == ["a"]


def test_arithmetic_stays_lazy_both_sides():
    total = 0
    for i in range(5):
        total += fork.fork(square, i)
    assert type(total) is fork.ResultProxy
    assert total == 30 and -fork.fork(square, 2) == -4   # unary: evaluates
    p = fork.fork(square, 2)
    for expr, want in [(p * 3 - 1, 11), (10 // p, 2), (2 ** p, 16),
                       (p | 1, 5), (1 << p, 16), (p % 3, 1),
                       (p / 8, 0.5), (7 - p, 3), (p & 6, 4), (p ^ 1, 5)]:
        assert type(expr) is fork.ResultProxy   # still lazy
        assert expr == want


def test_a_long_lazy_chain_evaluates_without_recursion_error():
    z = fork.fork(square, 1)
    for _ in range(100_000):
        z = z + 1
    assert z == 100_001


def test_kinds_of_execution():
    def plain():
        return os.getpid()

    @fork.cpu_bound
    def cpu():
        return os.getpid()

    @fork.io_bound
    def io():
        return os.getpid()

    me = os.getpid()
    assert fork.fork(plain) != me and fork.fork(cpu) != me
    assert fork.fork(io) == me
    assert fork.thread(my_pid) == me and fork.process(io) != me
    # the decorators return the function itself, still directly callable
    def cube(x):
        return x ** 3
    assert fork.io_bound(cube) is cube and cube(3) == 27
    assert fork.cpu_bound(io) is io and io() == me


def test_maps_and_block_maps():
    ps = fork.map(square, [1, 2, 3])
    assert isinstance(ps, list) and all(type(p) is fork.ResultProxy
                                        for p in ps)
    assert ps == [1, 4, 9]
    assert fork.map_thread(square, [2]) == [4]
    assert fork.map_process(square, [2]) == [4]
    assert fork.block_map(pow, None, [2, 3], [2, 2]) == [4, 9]
    assert fork.block_map_thread(square, 5, [2]) == [4]
    assert fork.block_map_process(square, 5, [3]) == [9]
    assert fork.map(square, []) == [] and fork.block_map(square, None, []) == []


def test_await_all_and_await_any():
    ps = fork.map(square, range(4))
    assert fork.await_all(ps) == [0, 1, 4, 9]
    assert fork.await_all([]) == []
    done = fork.await_any(fork.map(square, range(3)), timeout=10)
    assert len(done) >= 1 and all(type(p) is fork.ResultProxy for p in done)


def test_timeouts_raise_timeout_error(tmp_path):
    gate = str(tmp_path / "gate")

    def blocked():
        import time
        while not os.path.exists(gate):
            time.sleep(0.01)
        return 1
    p = fork.fork(blocked)
    try:
        with pytest.raises(TimeoutError):
            fork.await_all([p], timeout=0.05)
        with pytest.raises(TimeoutError):
            fork.await_any([p], timeout=0.05)
    finally:
        open(gate, "w").close()
    assert p == 1


def raise_deep(x):
    return raise_here(x)


def raise_here(x):
    raise ValueError("bad value %d" % x)


def test_error_carries_the_original_traceback():
    p = fork.fork(raise_deep, 3)
    with pytest.raises(fork.ResultEvaluationError) as info:
        str(p)
    text = str(info.value)
    assert "Original Traceback (most recent call last):" in text
    assert "p = fork.fork(raise_deep, 3)" in text      # submission site
    assert "in raise_here" in text                     # worker frames
    assert text.rstrip().endswith("ValueError: bad value 3")


def test_error_in_a_lazy_operator_names_its_line():
    s = 1 + fork.fork(str, "a")
    with pytest.raises(fork.ResultEvaluationError) as info:
        int(s)
    text = str(info.value)
    assert "s = 1 + fork.fork(str, \"a\")" in text
    assert text.rstrip().endswith(
        "TypeError: unsupported operand type(s) for +: 'int' and 'str'")


def test_a_crash_fails_only_its_proxy():
    bad = fork.fork(crash)
    good = fork.fork(square, 5)
    with pytest.raises(fork.ResultEvaluationError) as info:
        int(bad)
    assert "SIGKILL" in str(info.value)
    assert good == 25


def cascade(n):
    return fork.fork(square, n) + fork.fork(square, n + 1)


def test_cascading_forks_and_returned_proxies():
    assert fork.fork(cascade, 2) == 13
    assert fork.fork(fork.fork, fork.fork, square, 2) == 4


def test_lambdas_closures_and_other_threads():
    k = 7
    assert fork.fork(lambda: k * 2) == 14
    out = []
    t = threading.Thread(target=lambda: out.append(int(fork.fork(square,
                                                                 6))))
    t.start()
    t.join()
    assert out == [36]


def test_a_proxy_can_be_awaited():
    async def main():
        return await fork.fork(square, 8)
    assert asyncio.run(main()) == 64


# ---- programs -------------------------------------------------------------------------

def run_program(src):
    proc = run_script(textwrap.dedent(src))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_program_sequential_to_parallel_sizes():
    out = run_program("""
        from forkqueue.lazy import fork, await_all

        def create_thumbnail(image):
            return len(image) * 10

        images = ["a.png", "bb.png", "ccc.png"]
        sizes = 0
        for image in images:
            sizes += fork(create_thumbnail, image)
        print(sizes)
        print(await_all([fork(create_thumbnail, i) for i in images]))
        """)
    assert out == "180\n[50, 60, 70]\n"


def test_program_decorated_and_unevaluated_jobs_print():
    out = run_program("""
        import forkqueue.lazy as fork

        @fork.io_bound
        def fetch(n):
            return "page%d" % n

        @fork.cpu_bound
        def heavy(n):
            return sum(range(n))

        def report(x):
            print("report", x, flush=True)

        pages = fork.map(fetch, [1, 2])
        print(pages[0], pages[1])
        print(fork.evaluate(fork.fork(heavy, 101)))
        print(fork.block_map(heavy, None, [10, 20]))
        fork.fork(report, 42)   # never evaluated: still runs before exit
        """)
    assert out.splitlines()[:3] == ["page1 page2", "5050", "[45, 190]"]
    assert sorted(out.splitlines()[3:]) == ["report 42"]


def test_program_error_report():
    out = run_program("""
        from forkqueue.lazy import fork, ResultEvaluationError

        def parse(s):
            return int(s)

        values = [fork(parse, s) for s in ["1", "2", "x"]]
        total = 0
        for v in values:
            total += v
        try:
            print(total)
        except ResultEvaluationError as e:
            print(type(e).__name__)
            print(str(e).strip().splitlines()[-1])
        """)
    assert out == ("ResultEvaluationError\n"
                   "ValueError: invalid literal for int() with base 10: 'x'\n")
