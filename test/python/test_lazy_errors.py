"""forkqueue.lazy: ResultEvaluationError, crashes, cascading forks."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import forkqueue.lazy as fork
from forkqueue.lazy import ResultEvaluationError

HEADER = "Original Traceback (most recent call last):\n"


@pytest.fixture(autouse=True)
def stop_pools():
    yield
    fork._shutdown()


def fails(x):
    raise ValueError(f"bad value {x}")


def test_job_error_shows_submission_site_and_worker_frames():
    p = fork.fork(fails, 7)  # the submission line
    with pytest.raises(ResultEvaluationError) as info:
        str(p)
    msg = str(info.value)
    assert msg.startswith(HEADER)
    assert "p = fork.fork(fails, 7)  # the submission line" in msg
    assert "in fails" in msg and 'raise ValueError(f"bad value {x}")' in msg
    assert msg.index("submission line") < msg.index("in fails")
    assert msg.endswith("\nValueError: bad value 7")
    assert isinstance(info.value.original, ValueError)
    # Raised again on every evaluation, the same way.
    with pytest.raises(ResultEvaluationError):
        p + 0 == 1  # noqa: B015


def test_operator_error_names_the_operator_line():
    s = fork.fork(str, "text")
    q = 1 + s  # the operator line
    with pytest.raises(ResultEvaluationError) as info:
        fork.evaluate(q)
    msg = str(info.value)
    assert msg.startswith(HEADER)
    assert "q = 1 + s  # the operator line" in msg
    assert msg.rstrip().endswith(
        "TypeError: unsupported operand type(s) for +: 'int' and 'str'")


def test_error_propagates_through_lazy_operators():
    total = 0
    for i in range(5):
        total += fork.fork(fails, i) if i == 3 else fork.fork(abs, i)
    with pytest.raises(ResultEvaluationError, match="bad value 3"):
        int(total)


def test_errors_in_threads_too():
    with pytest.raises(ResultEvaluationError, match="bad value 1") as info:
        fork.evaluate(fork.thread(fails, 1))
    assert "in fails" in str(info.value)


def test_a_crash_fails_that_proxy_only():
    dead = fork.fork(lambda: os.kill(os.getpid(), signal.SIGKILL))
    alive = fork.map(abs, range(-10, 0))
    with pytest.raises(ResultEvaluationError, match="SIGKILL"):
        fork.evaluate(dead)
    assert alive == list(range(10, 0, -1))
    assert fork.fork(abs, -5) == 5


def test_unpicklable_exception_keeps_its_text():
    class Local(Exception):
        pass

    def raise_local():
        raise Local("local failure")

    with pytest.raises(ResultEvaluationError, match="local failure"):
        fork.evaluate(fork.fork(raise_local))


def test_a_job_may_return_a_proxy():
    # fork(fork, fork, f): each level returns a proxy, evaluated for it.
    p = fork.fork(fork.fork, fork.fork, abs, -3)
    assert p == 3


def fib(n):
    if n < 2:
        return n
    return fork.fork(fib, n - 1) + fork.fork(fib, n - 2)


def test_fib_with_cascading_forks():
    assert fork.fork(fib, 10) == 55


def test_nested_error_keeps_the_whole_chain():
    def outer():
        return fork.fork(fails, 9) + 1  # evaluated for outer's result

    with pytest.raises(ResultEvaluationError) as info:
        fork.evaluate(fork.fork(outer))
    msg = str(info.value)
    assert msg.count("Original Traceback") == 1
    assert "in outer" in msg and "in fails" in msg
    assert msg.endswith("\nValueError: bad value 9")


NEST = textwrap.dedent("""
    import forkqueue.lazy as fork

    def leaf(a, b, c):
        print(f"leaf {a} {b} {c}", flush=True)

    def mid(a, b):
        for c in range(WIDTH):
            fork.fork(leaf, a, b, c)   # never evaluated: finished anyway

    def top(a):
        for b in range(WIDTH):
            fork.fork(mid, a, b)

    fork.await_all([fork.fork(top, a) for a in range(WIDTH)])
    print("end", flush=True)
    """)


def test_30_wide_3_deep_nest_prints_every_inner_output_once():
    env = dict(os.environ, PYTHONUNBUFFERED="")
    env.pop("PYTHONUNBUFFERED")
    r = subprocess.run([sys.executable, "-c", NEST.replace("WIDTH", "30")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.split("\n")[:-1]
    assert lines[-1] == "end"
    leaves = sorted(lines[:-1])
    want = sorted(f"leaf {a} {b} {c}" for a in range(30) for b in range(30)
                  for c in range(30))
    assert leaves == want


def test_evaluation_error_at_top_level_prints_the_block(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import forkqueue.lazy as fork
        def f(x):
            return x / 0
        r = fork.fork(f, 1)
        print(r)
        """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert "ResultEvaluationError: Original Traceback" in r.stderr
    assert "r = fork.fork(f, 1)" in r.stderr
    assert r.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
