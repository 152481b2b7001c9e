"""Conformance audit of forkqueue.ForkQueue against spec/forkqueue.md.

Each test names the spec item it checks. The "user program" tests run small
programs written the way the original's users write them (only the import
line would change) in a fresh interpreter and compare their output exactly.
"""
import inspect
import pickle
import textwrap

import pytest

from forkqueue import ForkQueue, ForkQueueException
from helpers import run_script


def bad(x):
    raise ValueError("bad %d" % x)


def inner_queue_fails():
    with ForkQueue(numforks=1) as q:
        q.add(int, ("zz",))
        return list(q.results())


# ---- names and signatures ----------------------------------------------------

def test_constructor_signature_positional_order_and_defaults():
    sig = inspect.signature(ForkQueue)
    params = list(sig.parameters.values())
    assert [p.name for p in params[:6]] == [
        "numforks", "initfunc", "reraise", "ordered", "retn_ids", "env"]
    assert [p.default for p in params[:6]] == [16, None, True, True, False,
                                                None]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:6])


@pytest.mark.parametrize("name, expected", [
    ("add", ["func", "args", "argsv", "jobid"]),
    ("poll", ["timeout"]),
    ("process", ["func", "iterable", "argsv", "interval"]),
    ("results", ["poll", "interval"]),
])
def test_method_parameter_names(name, expected):
    # On the class, as for a method of a Python class: self comes first.
    params = list(inspect.signature(getattr(ForkQueue, name)).parameters)
    assert params[:len(expected) + 1] == ["self"] + expected


def test_all_arguments_positionally():
    q = ForkQueue(2, None, True, True, True, None)
    try:
        q.add(divmod, (7, 2), None, "a")
        q.add(pow, [2], {"exp": 3})        # a list is as good as a tuple
        assert q.poll(None) is True
        q.wait()
        assert list(q.yield_results()) == [("a", (3, 1)), (0, 8)]
        assert list(q.process(abs, [(-1,)], None, 0.01)) == [(1, 1)]
        assert list(q.results(True, None)) == []
    finally:
        q.finish()


# ---- edge cases ----------------------------------------------------------------

def test_empty_inputs():
    with ForkQueue(numforks=2) as q:
        assert list(q.process(abs, [])) == []
        assert list(q.map(abs, [])) == []
        assert list(q.results()) == []
        assert list(q.yield_results()) == []
        assert q.poll() is False
        q.wait()


def test_finish_twice_is_harmless_and_use_after_finish_is_clear():
    q = ForkQueue(numforks=1)
    q.finish()
    q.finish()
    with pytest.raises(RuntimeError, match="finish"):
        q.add(abs, (1,))


def test_exception_is_runtime_error_and_catchable_as_the_job_error():
    with ForkQueue(numforks=1) as q:
        with pytest.raises(ForkQueueException) as info:
            list(q.map(bad, [2]))
    e = info.value
    assert isinstance(e, RuntimeError)
    assert str(e).startswith("Exception running task:\n")
    assert str(e).rstrip("\n").endswith("ValueError: bad 2")
    assert e.jobid == 0 and isinstance(e.exception, ValueError)


def test_job_error_pickles():
    """A ForkQueueException crosses processes (for example out of a job
    that runs its own queue); it was 'not the same object' before."""
    with ForkQueue(numforks=1) as q:
        q.add(bad, (4,), jobid="j")
        with pytest.raises(ForkQueueException) as info:
            list(q.results())
    e = info.value
    e2 = pickle.loads(pickle.dumps(e))
    assert isinstance(e2, ForkQueueException)
    assert str(e2) == str(e) and e2.backtrace == e.backtrace
    assert e2.jobid == "j" and isinstance(e2.exception, ValueError)


def test_nested_queue_error_reaches_the_outer_caller_with_its_type():
    with ForkQueue(numforks=1) as q:
        q.add(inner_queue_fails, ())
        with pytest.raises(ForkQueueException) as info:
            list(q.results())
    inner = info.value.exception
    assert isinstance(inner, ForkQueueException)
    assert "invalid literal for int()" in str(inner)
    assert isinstance(inner.exception, ValueError)


def test_reraise_false_result_is_the_exception_with_backtrace():
    with ForkQueue(numforks=1, reraise=False, retn_ids=True) as q:
        (jid, r), = q.map(bad, [3])
    assert jid == 0 and type(r) is ValueError and r.args == ("bad 3",)
    assert r.backtrace.rstrip("\n").endswith("ValueError: bad 3")


def test_map_and_process_are_generators():
    import collections.abc as abc
    with ForkQueue(numforks=1) as q:
        for g in (q.map(abs, [1]), q.process(abs, [(1,)]), q.results()):
            assert isinstance(g, abc.Generator)
            g.close()


# ---- user programs ---------------------------------------------------------------

def run_program(src):
    proc = run_script(textwrap.dedent(src))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_program_word_lengths_with_initfunc_and_env():
    out = run_program("""
        from forkqueue import ForkQueue

        TABLE = None

        def setup():
            global TABLE
            TABLE = {w: len(w) for w in "alpha beta gamma delta".split()}

        def main():
            offset = 100
            def lookup(word, scale=1):
                return TABLE[word] * scale + offset
            with ForkQueue(numforks=3, initfunc=setup, env=locals()) as q:
                for w in ["alpha", "beta", "gamma", "delta"]:
                    q.add(lookup, (w,), {"scale": 2}, jobid=w)
                q.wait()
                for r in q.results():
                    print(r)

        if __name__ == "__main__":
            main()
        """)
    assert out == "110\n108\n110\n110\n"


def test_program_unordered_ids_and_errors_collected():
    out = run_program("""
        from forkqueue import ForkQueue, ForkQueueException

        def check(n):
            if n % 3 == 0:
                raise ValueError("multiple of three: %d" % n)
            return n * n

        good, bad = {}, []
        with ForkQueue(numforks=4, ordered=False, retn_ids=True,
                       reraise=False) as q:
            for jobid, res in q.map(check, range(1, 10)):
                if isinstance(res, Exception):
                    bad.append((jobid, str(res)))
                else:
                    good[jobid] = res
        print(sorted(good.items()))
        print(sorted(bad))
        try:
            with ForkQueue(numforks=2) as q:
                print(list(q.map(check, [1, 2, 3])))
        except ForkQueueException as e:
            print(type(e).__name__, str(e).splitlines()[0])
            print(str(e).rstrip().splitlines()[-1])
        """)
    assert out == (
        "[(0, 1), (1, 4), (3, 16), (4, 25), (6, 49), (7, 64)]\n"
        "[(2, 'multiple of three: 3'), (5, 'multiple of three: 6'), "
        "(8, 'multiple of three: 9')]\n"
        "ForkQueueException Exception running task:\n"
        "ValueError: multiple of three: 3\n")


def test_program_poll_loop_like_a_pool_replacement():
    out = run_program("""
        import time
        from forkqueue import ForkQueue

        def work(i):
            return i * 10

        q = ForkQueue(numforks=2)
        for i in range(5):
            q.add(work, (i,))
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:
            if q.poll(0.05):
                got.extend(q.yield_results())
        print(got)
        print(list(q.map(pow, [2, 3], [3, 2])))
        q.finish()
        """)
    assert out == "[0, 10, 20, 30, 40]\n[8, 9]\n"



class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")


def test_job_error_with_an_unpicklable_cause_still_pickles():
    with ForkQueue(numforks=1) as q:
        q.add(bad, (1,))
        with pytest.raises(ForkQueueException) as info:
            list(q.results())
    e = info.value
    e.exception = Unpicklable("u")     # (a worker sends a stand-in)
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.exception is None and e2.jobid == 0
