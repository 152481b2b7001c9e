"""forkqueue._executor.Executor: a concurrent.futures.Executor on the core.

Gates are files (the `barrier` fixture): a job blocks until the test creates
the file, so "still running" is a fact, not a guess about timing.
"""
import asyncio
import concurrent.futures as cf
import os
import pickle
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from forkqueue import ForkQueue
from forkqueue._remote_exc import (RemoteError, get_remote_traceback,
                                   is_remote_exception)
from forkqueue._executor import Executor, WorkerCrashedError, default_workers
from helpers import child_pids, new_children, is_running, run_script, wait_for_file, wait_until


def _supports(**kw):
    """Whether the extension's ForkQueue already takes these options."""
    try:
        q = ForkQueue(numforks=1, **kw)
    except TypeError:
        return False
    q.cancel()
    return True


HAS_MAX_JOBS = _supports(max_jobs_per_worker=1)


def _add_takes_timeout():
    q = ForkQueue(numforks=1)
    try:
        q.add(abs, (1,), timeout=5)
    except TypeError:
        return False
    finally:
        q.cancel()
    return True


HAS_ADD_TIMEOUT = _add_takes_timeout()


def test_submit_runs_closures_and_lambdas():
    offset = 100
    with Executor(max_workers=2) as ex:
        fs = [ex.submit(lambda x: x * x + offset, i) for i in range(50)]
        assert [f.result(30) for f in fs] == [i * i + 100 for i in range(50)]
        assert ex.submit(pow, 2, 10).result(30) == 1024
        assert ex.submit(dict, a=1, b=2).result(30) == {"a": 1, "b": 2}


def test_exception_keeps_type_message_and_remote_traceback():
    def fail(x):
        raise KeyError(f"bad {x}")

    with Executor(max_workers=1) as ex:
        f = ex.submit(fail, 3)
        with pytest.raises(KeyError, match="bad 3") as info:
            f.result(30)
        tb = str(info.value.__cause__)
        assert is_remote_exception(info.value)
        assert get_remote_traceback(info.value) == tb
        assert "Traceback (most recent call last)" in tb
        assert "in fail" in tb
        assert isinstance(f.exception(), KeyError)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


class NotRebuildable(Exception):
    def __init__(self, a, b):
        super().__init__(a)  # unpickling calls NotRebuildable(a): fails


def test_exception_that_cannot_travel_becomes_a_remote_error():
    def raise_it(cls):
        raise cls(1, 2) if cls is NotRebuildable else cls("x")

    with Executor(max_workers=1) as ex:
        for cls in (Unpicklable, NotRebuildable):
            with pytest.raises(RemoteError, match=cls.__name__) as info:
                ex.submit(raise_it, cls).result(30)
            assert info.value.type_name.endswith(cls.__qualname__)
            assert is_remote_exception(info.value)
            assert "in raise_it" in get_remote_traceback(info.value)


def test_unpicklable_argument_fails_that_task_only():
    with Executor(max_workers=1) as ex:
        bad = ex.submit(len, threading.Lock())
        good = ex.submit(abs, -2)
        with pytest.raises(TypeError, match="pickle"):
            bad.result(30)
        assert good.result(30) == 2


def test_crash_fails_only_its_task_and_names_the_signal():
    with Executor(max_workers=2) as ex:
        before = [ex.submit(abs, -i) for i in range(20)]
        bad = ex.submit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        after = [ex.submit(abs, -i) for i in range(20)]
        with pytest.raises(WorkerCrashedError, match="SIGKILL") as info:
            bad.result(30)
        assert info.value.signal == signal.SIGKILL
        assert isinstance(info.value, BrokenProcessPool)
        assert [f.result(30) for f in before + after] == list(range(20)) * 2
        # Still usable, with its full set of workers.
        assert ex.submit(os._exit, 3).exception(30).exitcode == 3
        assert sorted(ex.map(abs, range(-5, 0))) == [1, 2, 3, 4, 5]


def test_map_in_order_with_chunks_and_errors():
    def inv(x):
        return 1 / x

    with Executor(max_workers=2) as ex:
        assert list(ex.map(lambda a, b: a * b, range(1000), range(1000))) \
            == [i * i for i in range(1000)]
        assert list(ex.map(str, range(10), chunksize=3)) == \
            [str(i) for i in range(10)]
        it = ex.map(inv, [1, 2, 0, 4])
        assert next(it) == 1.0
        assert next(it) == 0.5
        with pytest.raises(ZeroDivisionError):
            next(it)
        with pytest.raises(ValueError):
            ex.map(abs, [1], chunksize=0)


def test_map_item_that_kills_its_worker_fails_alone():
    def maybe_die(x):
        if x == 37:
            os.kill(os.getpid(), signal.SIGKILL)
        return x + 1

    with Executor(max_workers=2) as ex:
        it = ex.map(maybe_die, range(100), chunksize=10)
        got = [next(it) for _ in range(37)]
        assert got == list(range(1, 38))
        with pytest.raises(WorkerCrashedError, match="SIGKILL"):
            next(it)


def test_map_timeout_is_a_deadline_for_the_iteration(barrier):
    with Executor(max_workers=1) as ex:
        it = ex.map(wait_for_file, [barrier.path], timeout=0.2)
        t0 = time.monotonic()
        with pytest.raises(cf.TimeoutError):
            next(it)
        assert time.monotonic() - t0 < 10
        barrier.open()


def test_submit_from_many_threads():
    with Executor(max_workers=2) as ex:
        results = {}

        def client(k):
            fs = [ex.submit(lambda a, b: a * 1000 + b, k, i)
                  for i in range(200)]
            results[k] = [f.result(60) for f in fs]

        ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for k in range(8):
            assert results[k] == [k * 1000 + i for i in range(200)]


def test_new_task_is_not_held_up_by_a_running_one(barrier):
    """The engine blocks in poll() while a long task runs; a submit must
    wake it (no fixed-interval polling) so a second worker starts the new
    task at once."""
    with Executor(max_workers=2) as ex:
        slow = ex.submit(wait_for_file, barrier.path, 60)
        # Let the engine settle into its poll with the slow task out.
        assert ex.submit(abs, -1).result(30) == 1
        fallback = threading.Timer(15, barrier.open)
        fallback.start()
        t0 = time.monotonic()
        assert ex.submit(abs, -2).result(30) == 2
        took = time.monotonic() - t0
        fallback.cancel()
        assert took < 5 and not slow.done()
        barrier.open()
        assert slow.result(30) == barrier.path


def test_cancel_before_start_and_shutdown_cancel_futures(barrier):
    before = set(child_pids())
    ex = Executor(max_workers=1)
    running = ex.submit(wait_for_file, barrier.path, 60)
    wait_until(lambda: running.running(), timeout=10)
    queued = [ex.submit(abs, -i) for i in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(abs, 1)
    barrier.open()
    assert running.result(30) == barrier.path
    # Those the engine had not sent yet are cancelled; the rest ran.
    for f in queued:
        assert f.cancelled() or f.result(30) >= 0
    ex.shutdown(wait=True)
    assert wait_until(lambda: not new_children(before), timeout=10)


def test_future_cancel_before_it_starts(barrier):
    with Executor(max_workers=1) as ex:
        first = ex.submit(wait_for_file, barrier.path, 60)
        second = ex.submit(abs, -3)
        cancelled = second.cancel()
        barrier.open()
        assert first.result(30) == barrier.path
        assert cancelled == second.cancelled()
        if not cancelled:
            assert second.result(30) == 3


def test_shutdown_wait_leaves_no_worker():
    before = set(child_pids())
    ex = Executor(max_workers=2)
    assert ex.submit(abs, -1).result(30) == 1
    # Two workers (plus, maybe, retired ones not yet reaped: a new callable
    # makes fresh forks that know it).
    assert wait_until(
        lambda: len([p for p in new_children(before) if is_running(p)]) == 2)
    ex.shutdown(wait=True)
    assert new_children(before) == []
    ex.shutdown()  # twice is fine


def test_initializer_and_initargs():
    state = {}

    def init(a, b):
        state["v"] = a + b

    with Executor(max_workers=2, initializer=init, initargs=(1, 2)) as ex:
        assert ex.submit(lambda: state.get("v")).result(30) == 3
    assert "v" not in state


def test_initializer_failure_breaks_the_pool():
    def init():
        raise ValueError("no init")

    with Executor(max_workers=1, initializer=init) as ex:
        with pytest.raises(BrokenProcessPool, match="no init"):
            ex.submit(abs, 1).result(30)


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        Executor(max_workers=0)
    with pytest.raises(TypeError):
        Executor(max_workers="2")
    with pytest.raises(ValueError):
        Executor(max_tasks_per_child=0)
    with pytest.raises(TypeError):
        Executor(initializer=5)
    with Executor(max_workers=1) as ex:
        # As concurrent.futures: the future fails, not submit().
        with pytest.raises(TypeError, match="'int' object is not callable"):
            ex.submit(5).result(30)
        with pytest.raises(ValueError):
            ex.submit(abs, 1, timeout=-1)
    assert Executor()._max_workers == default_workers()


@pytest.mark.skipif(not HAS_ADD_TIMEOUT,
                    reason="ForkQueue.add(timeout=) not in the extension yet")
def test_per_task_timeout_kills_only_that_task(barrier):
    with Executor(max_workers=2) as ex:
        slow = ex.submit(time.sleep, 60, timeout=0.3)
        ok = [ex.submit(abs, -i, timeout=30) for i in range(10)]
        with pytest.raises(TimeoutError):
            slow.result(30)
        assert [f.result(30) for f in ok] == list(range(10))
        assert ex.submit(abs, -7).result(30) == 7


@pytest.mark.skipif(not HAS_MAX_JOBS,
                    reason="ForkQueue(max_jobs_per_worker=) not in the "
                           "extension yet")
def test_max_tasks_per_child_recycles_workers():
    with Executor(max_workers=1, max_tasks_per_child=2) as ex:
        pids = [ex.submit(os.getpid).result(30) for _ in range(6)]
    assert len(set(pids)) == 3


def test_futures_can_be_awaited_in_asyncio():
    async def main(ex):
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        fs = [asyncio.wrap_future(ex.submit(time.sleep, 0.2)),
              asyncio.wrap_future(ex.submit(pow, 3, 3))]
        res = await asyncio.gather(*fs)
        stop.set()
        await t
        return res, ticks

    with Executor(max_workers=2) as ex:
        res, ticks = asyncio.run(main(ex))
    assert res == [None, 27]
    assert ticks > 10  # the loop kept running while the tasks ran


def test_executor_left_open_finishes_its_work_at_exit():
    r = run_script(
        "from forkqueue._executor import Executor\n"
        "import os\n"
        "ex = Executor(2)\n"
        "fs = [ex.submit(lambda i: os.write(1, b'job %d\\n' % i), i)"
        " for i in range(5)]\n")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:-1]) == [f"job {i}" for i in range(5)]


def test_executor_is_a_concurrent_futures_executor():
    assert issubclass(Executor, cf.Executor)
    with Executor(1) as ex:
        with pytest.raises((TypeError, pickle.PicklingError, AttributeError)):
            pickle.dumps(ex)
