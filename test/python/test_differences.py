"""The deliberate differences from the original forkqueue."""
import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from forkqueue import ForkQueue, ForkQueueException
from helpers import in_poll, is_running, proc_state, wait_for_file, wait_until


def ident(x):
    return x


def die(how):
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "sigsegv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif how == "abort":
        os.abort()
    elif how == "exit":
        os._exit(3)
    return how


def die_at(x, at):
    if x == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 2


def sleeper(t):
    time.sleep(t)
    return t


# ---- worker death ---------------------------------------------------------


@pytest.mark.parametrize("how,signo,status,text", [
    ("sigkill", 9, None, "killed by signal 9 (SIGKILL)"),
    ("sigsegv", 11, None, "killed by signal 11 (SIGSEGV)"),
    ("abort", 6, None, "killed by signal 6 (SIGABRT)"),
    ("exit", None, 3, "exited with status 3"),
])
def test_worker_death_is_that_jobs_error(how, signo, status, text):
    with ForkQueue(numforks=2) as q:
        q.add(ident, ("before",))
        q.add(die, (how,))
        q.add(ident, ("after",))
        it = q.results()
        assert next(it) == "before"
        with pytest.raises(ForkQueueException) as info:
            next(it)
        e = info.value
        assert str(e).startswith("Exception running task:\n")
        assert text in str(e)
        assert e.signal == signo
        assert e.exitcode == status
        assert list(it) == [None, "after"]
        # A fresh worker replaced the dead one; the queue goes on.
        assert list(q.map(ident, range(20))) == list(range(20))
        st = q._stats()
        assert st["crashed"] == 1 and st["respawns"] >= 1


def test_worker_death_reraise_false():
    with ForkQueue(numforks=2, reraise=False, retn_ids=True) as q:
        q.add(die, ("sigkill",), jobid="k")
        q.add(ident, (1,))
        res = dict(q.results())
    e = res["k"]
    assert isinstance(e, ForkQueueException)
    assert e.signal == 9
    assert "SIGKILL" in e.backtrace
    assert res[0] == 1


def test_every_worker_dies_and_queue_recovers():
    with ForkQueue(numforks=2, reraise=False) as q:
        res = list(q.process(die, [("sigkill",)] * 6 + [("ok",)]))
        assert all(isinstance(r, ForkQueueException) for r in res[:6])
        assert res[6] == "ok"
        assert q._stats()["crashed"] == 6


@pytest.mark.parametrize("ordered", [True, False])
def test_crash_in_a_batch_is_charged_to_its_item(ordered):
    n, at = 3000, 1234
    with ForkQueue(numforks=2, reraise=False, ordered=ordered,
                   retn_ids=True) as q:
        res = list(q.process(die_at, ((i, at) for i in range(n))))
        stats = q._stats()
    # Items were batched (far fewer core jobs than items) ...
    assert stats["submitted"] < n
    # ... yet only the crashing item failed, and every item has one result.
    assert sorted(i for i, _ in res) == list(range(n))
    if ordered:
        assert [i for i, _ in res] == list(range(n))
    for i, r in res:
        if i == at:
            assert isinstance(r, ForkQueueException) and r.signal == 9
        else:
            assert r == 2 * i


# ---- callables without env -------------------------------------------------


def test_lambdas_closures_nested_without_env():
    k = 10

    def nested(x):
        return x + k

    def make_adder(n):
        return lambda x: x + n

    class Callable:
        def __init__(self, m):
            self.m = m

        def __call__(self, x):
            return x * self.m

        def method(self, x):
            return x - self.m

    obj = Callable(3)
    funcs = [lambda x: x * k, nested, make_adder(5), obj, obj.method,
             functools.partial(pow, 2), len, str.upper]
    args = [(2,), (2,), (2,), (2,), (2,), (5,), ("abc",), ("abc",)]
    with ForkQueue(numforks=2) as q:
        for f, a in zip(funcs, args):
            q.add(f, a)
        assert list(q.results()) == [20, 12, 7, 6, -1, 32, 3, "ABC"]


def test_function_defined_after_the_queue():
    with ForkQueue(numforks=2) as q:
        assert list(q.map(ident, [1])) == [1]

        def later(x):
            return ("later", x)
        assert list(q.map(later, [1, 2])) == [("later", 1), ("later", 2)]
        ns = {}
        exec("def from_exec(x):\n    return -x\n", ns)
        assert list(q.map(ns["from_exec"], [4])) == [-4]


def test_data_created_after_the_queue_is_seen_by_new_callables():
    with ForkQueue(numforks=2) as q:
        table = {i: i * i for i in range(100)}
        assert list(q.map(lambda i: table[i], range(100))) == \
            [i * i for i in range(100)]


def test_many_distinct_lambdas():
    with ForkQueue(numforks=2) as q:
        t0 = time.monotonic()
        for i in range(300):
            q.add(lambda i=i: i * 3, ())
        assert list(q.results()) == [i * 3 for i in range(300)]
        # Reforks are coalesced: this is not 300 reforks of every worker.
        assert time.monotonic() - t0 < 20


def test_unhashable_callable():
    class Unhashable:
        __hash__ = None

        def __eq__(self, other):
            return True

        def __call__(self, x):
            return x + 1

    with ForkQueue(numforks=1) as q:
        a, b = Unhashable(), Unhashable()
        q.add(a, (1,))
        q.add(b, (2,))
        assert list(q.results()) == [2, 3]


def test_env_keeps_working_without_refork():
    def nested(x):
        return x + 1

    with ForkQueue(numforks=2, env=locals()) as q:
        before = q._stats()["respawns"]
        assert list(q.map(nested, range(10))) == list(range(1, 11))
        assert q._stats()["respawns"] == before


# ---- messages of any size ---------------------------------------------------


def test_large_arguments_and_results():
    big = b"x" * (20 * 1024 * 1024)
    with ForkQueue(numforks=2) as q:
        q.add(lambda b: b + b"!", (big,))
        q.add(lambda n: "y" * n, (8 * 1024 * 1024,))
        a, b = list(q.results())
    assert len(a) == len(big) + 1 and a.endswith(b"x!")
    assert b == "y" * (8 * 1024 * 1024)


# ---- ids --------------------------------------------------------------------


def test_duplicate_ids_rejected_at_add():
    with ForkQueue(numforks=1, retn_ids=True) as q:
        q.add(ident, (1,), jobid="a")
        with pytest.raises(ValueError, match="already in use"):
            q.add(ident, (2,), jobid="a")
        q.add(ident, (3,), jobid=7)
        with pytest.raises(ValueError):
            q.add(ident, (4,), jobid=7)
        assert list(q.results()) == [("a", 1), (7, 3)]
        # Once yielded, an id may be used again.
        q.add(ident, (5,), jobid="a")
        assert list(q.results()) == [("a", 5)]


def test_automatic_ids_skip_ids_in_use():
    with ForkQueue(numforks=1, retn_ids=True) as q:
        q.add(ident, ("x",), jobid=0)
        q.add(ident, ("y",))
        with pytest.raises(ValueError):
            q.add(ident, ("z",), jobid=1)
        assert list(q.results()) == [(0, "x"), (1, "y")]


def test_unhashable_id_is_a_type_error():
    with ForkQueue(numforks=1) as q:
        with pytest.raises(TypeError):
            q.add(ident, (1,), jobid=[1])


# ---- stopping ---------------------------------------------------------------


def test_exception_in_with_body_cancels_and_stops_quickly(tmp_path):
    def slow(i):
        open(tmp_path / f"started{i}", "w").close()
        time.sleep(2)
        return i

    t0 = time.monotonic()
    with pytest.raises(ZeroDivisionError):
        with ForkQueue(numforks=2) as q:
            pids = q._worker_pids()
            for i in range(40):
                q.add(slow, (i,))
            assert wait_until(lambda: q.poll(0) or
                              len(os.listdir(tmp_path)) >= 2)
            pids += q._worker_pids()
            1 / 0
    elapsed = time.monotonic() - t0
    assert elapsed < 6.0  # not 40 x 2 s / 2 workers
    assert q.finished
    for pid in pids:
        assert not is_running(pid)
    # Queued jobs never started.
    assert len(os.listdir(tmp_path)) <= 4


def test_cancel_method():
    q = ForkQueue(numforks=2)
    for _ in range(10):
        q.add(sleeper, (60,))
    pids = q._worker_pids()
    t0 = time.monotonic()
    q.cancel()
    assert time.monotonic() - t0 < 10  # SIGTERM at once, SIGKILL after 1 s
    assert all(not is_running(p) for p in pids)
    with pytest.raises(RuntimeError, match="finished"):
        q.add(ident, (1,))


def test_use_after_finish_raises_clear_error():
    q = ForkQueue(numforks=1)
    q.add(ident, (1,))
    q.finish()
    assert q.finished
    calls = [lambda: q.add(ident, (1,)), lambda: q.poll(), q.wait,
             lambda: q.process(ident, [(1,)]), lambda: q.map(ident, [1]),
             q.results, q.yield_results, q.__enter__]
    for call in calls:
        with pytest.raises(RuntimeError, match="finished"):
            call()
    q.finish()  # harmless
    q.cancel()  # harmless


def test_finish_drops_untaken_results():
    with ForkQueue(numforks=1) as q:
        q.add(ident, (1,))
        q.finish()
        with pytest.raises(RuntimeError):
            list(q.results())


def test_iterator_after_finish_raises():
    with ForkQueue(numforks=1) as q:
        it = q.process(ident, [(1,), (2,)])
    with pytest.raises(RuntimeError, match="finished"):
        next(it)


@pytest.mark.parametrize("n", [0, -1, -100])
def test_numforks_below_one(n):
    with pytest.raises(ValueError):
        ForkQueue(numforks=n)


def test_numforks_wrong_type():
    with pytest.raises(TypeError):
        ForkQueue(numforks=2.5)
    with pytest.raises(TypeError):
        ForkQueue(numforks="2")


# ---- processes: parent death, Ctrl-C, GIL -------------------------------------


def _script(code):
    return textwrap.dedent(code)


def test_parent_killed_leaves_no_orphans():
    code = _script("""
        import os, signal, sys, time
        from forkqueue import ForkQueue
        q = ForkQueue(numforks=3)
        for _ in range(6):
            q.add(time.sleep, (60,))
        # The first use of time.sleep reforked: wait for the old workers to
        # be reaped (quick, but not bounded on a loaded machine).
        deadline = time.monotonic() + 20
        while len(q._worker_pids()) != 3 and time.monotonic() < deadline:
            q.poll(0.01)
        print(*q._worker_pids(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == -signal.SIGKILL
    pids = [int(x) for x in p.stdout.split()]
    assert len(pids) == 3
    assert wait_until(lambda: not any(is_running(x) for x in pids),
                      timeout=10), [(x, proc_state(x)) for x in pids]


CTRL_C = _script("""
    import os, sys, time
    from forkqueue import ForkQueue
    q = ForkQueue(numforks=2)
    for _ in range(4):
        q.add(time.sleep, (60,))
    deadline = time.monotonic() + 20  # both workers up, any old one reaped
    while len(q._worker_pids()) != 2 and time.monotonic() < deadline:
        q.poll(0.01)
    pids = q._worker_pids()
    print("ready", flush=True)
    t0 = time.monotonic()
    try:
        {wait}
    except KeyboardInterrupt:
        dt = time.monotonic() - t0
        alive = [p for p in pids if os.path.exists(f"/proc/{{p}}")]
        print("interrupted", q.finished, alive, flush=True)
        try:
            q.add(time.sleep, (1,))
        except RuntimeError:
            print("finished", flush=True)
        sys.exit(0)
    print("not interrupted", flush=True)
    sys.exit(1)
    """)


@pytest.mark.parametrize("wait", [
    "q.wait()",
    "list(q.results())",
    "q.poll(None)",
    "list(q.process(time.sleep, [(60,)] * 4))",
])
def test_ctrl_c_interrupts_wait_promptly(wait):
    p = subprocess.Popen([sys.executable, "-c", CTRL_C.format(wait=wait)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        # Signal only once the child is inside the wait under test.
        assert wait_until(lambda: in_poll(p.pid))
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 0, (out, err)
    assert out == "interrupted True []\nfinished\n"
    assert elapsed < 5.0


def test_uncaught_ctrl_c_exits_quietly_without_workers():
    code = _script("""
        import time
        from forkqueue import ForkQueue
        with ForkQueue(numforks=2) as q:
            q.add(time.sleep, (60,))
            deadline = time.monotonic() + 20
            while len(q._worker_pids()) != 2 and time.monotonic() < deadline:
                q.poll(0.01)
            print(*q._worker_pids(), flush=True)
            q.wait()
        """)
    p = subprocess.Popen([sys.executable, "-c", code],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        pids = [int(x) for x in p.stdout.readline().split()]
        assert wait_until(lambda: in_poll(p.pid))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        p.kill()
        p.wait()
    assert err.rstrip().endswith("KeyboardInterrupt")
    # One traceback, from the parent only (workers are not in the
    # terminal's process group and never print one).
    assert err.count("Traceback") == 1
    assert all(not is_running(x) for x in pids)


def test_gil_released_while_waiting():
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    with ForkQueue(numforks=1) as q:
        q.add(sleeper, (0.5,))
        t = threading.Thread(target=spin)
        t.start()
        try:
            c0 = count[0]
            q.wait()
            c1 = count[0]
        finally:
            stop.set()
            t.join()
    assert c1 - c0 > 1000


def test_other_thread_gets_clear_error_while_in_use(barrier):
    with ForkQueue(numforks=1) as q:
        q.add(wait_for_file, (barrier.path,))
        t = threading.Thread(target=q.wait)
        t.start()
        errors = []

        def try_add():
            try:
                q.add(ident, (1,))
            except RuntimeError as e:
                errors.append(str(e))
                return True
            return False
        try:
            assert wait_until(try_add, timeout=5)
        finally:
            barrier.open()
            t.join()
        assert "another thread" in errors[0]
        list(q.results())


def test_nested_queue_inside_a_job():
    def inner(n):
        with ForkQueue(numforks=2) as q2:
            return sum(q2.map(lambda x: x * x, range(n)))

    with ForkQueue(numforks=2) as q:
        assert list(q.map(inner, [10, 100])) == \
            [sum(x * x for x in range(10)), sum(x * x for x in range(100))]


def test_forked_child_cannot_use_parent_queue():
    with ForkQueue(numforks=1) as q:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                q.add(ident, (1,))
            except RuntimeError as e:
                code = 0 if "another process" in str(e) else 2
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        q.add(ident, (1,))
        assert list(q.results()) == [1]


def test_queue_dropped_without_finish_reaps_workers():
    import gc
    q = ForkQueue(numforks=2)
    q.add(sleeper, (30,))
    deadline = time.monotonic() + 20
    while len(q._worker_pids()) < 2 and time.monotonic() < deadline:
        q.poll(0.01)
    pids = q._worker_pids()
    assert len(pids) >= 2
    del q
    gc.collect()
    assert wait_until(lambda: not any(is_running(p) for p in pids),
                      timeout=5)


def test_queue_left_open_at_exit_leaves_no_worker():
    code = _script("""
        import time
        from forkqueue import ForkQueue
        q = ForkQueue(numforks=2)
        q.add(time.sleep, (30,))
        deadline = time.monotonic() + 20
        while len(q._worker_pids()) < 2 and time.monotonic() < deadline:
            q.poll(0.01)
        print(*q._worker_pids(), flush=True)
        GLOBAL_REF = q  # still referenced when the interpreter exits
        """)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 10
    pids = [int(x) for x in p.stdout.split()]
    # Two workers, plus any replaced one still exiting (a new callable
    # re-forks the workers): every one of them must be gone.
    assert len(pids) >= 2
    assert wait_until(lambda: not any(is_running(x) for x in pids),
                      timeout=5)
