"""Executor and Pool behave as concurrent.futures / multiprocessing.Pool
where programs can tell: regressions found by running the same programs
against both (see docs/python-executor.md, "coming from")."""
import multiprocessing
import time

import pytest

from forkqueue.futures import Executor, Pool
from forkqueue._pool import (ApplyResult, AsyncResult, IMapIterator,
                             IMapUnorderedIterator, MapResult)


def square(x):
    return x * x


def test_callback_has_run_when_result_is_ready():
    # multiprocessing runs callback/error_callback before the result is
    # ready: code reading what the callback stored after get()/wait() sees
    # it.
    with Pool(2) as p:
        for i in range(30):
            seen = []

            def slow_cb(v, seen=seen):
                time.sleep(0.002)
                seen.append(v)
            assert p.apply_async(square, (i,), callback=slow_cb).get(30) == i * i
            assert seen == [i * i]
            seen2 = []
            r = p.map_async(square, [i, 2], callback=seen2.append)
            r.wait(30)
            assert r.ready() and seen2 == [[i * i, 4]]
            errs = []

            def slow_err(e, errs=errs):
                time.sleep(0.002)
                errs.append(e)
            r = p.apply_async(square, ("x",), error_callback=slow_err)
            r.wait(30)
            assert r.ready() and not r.successful()
            assert len(errs) == 1 and isinstance(errs[0], TypeError)


def test_failing_callback_still_makes_result_ready():
    def bad_cb(v):
        raise RuntimeError("callback failed")
    with Pool(1) as p:
        r = p.apply_async(square, (3,), callback=bad_cb)
        assert r.get(30) == 9 and r.successful()


def test_bad_call_fails_its_result_not_apply_async():
    with Pool(1) as p:
        r = p.apply_async(5)
        with pytest.raises(TypeError, match="'int' object is not callable"):
            r.get(30)
        r = p.apply_async(square, 5)
        with pytest.raises(TypeError, match=r"square\(\) argument after \* "
                           r"must be an iterable, not int"):
            r.get(30)


def test_result_class_names_match_multiprocessing():
    assert AsyncResult is ApplyResult
    assert issubclass(MapResult, ApplyResult)
    with Pool(1) as p:
        assert type(p.apply_async(square, (1,))).__name__ == "ApplyResult"
        assert type(p.map_async(square, [1])).__name__ == "MapResult"
        assert type(p.imap(square, [1])) is IMapIterator
        it = p.imap_unordered(square, [1])
        assert type(it) is IMapUnorderedIterator and list(it) == [1]


def test_get_timeout_is_multiprocessing_timeout_error():
    with Pool(1) as p:
        r = p.apply_async(time.sleep, (0.5,))
        with pytest.raises(multiprocessing.TimeoutError):
            r.get(0.01)
        with pytest.raises(ValueError, match="not ready"):
            r.successful()
        assert r.get(30) is None


def test_executor_map_of_no_iterables_is_empty():
    with Executor(1) as ex:
        assert list(ex.map(square)) == []


def test_executor_submit_of_non_callable_fails_the_future():
    with Executor(1) as ex:
        f = ex.submit(None)
        assert isinstance(f.exception(30), TypeError)
        assert str(f.exception()) == "'NoneType' object is not callable"
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(5)


def test_queued_futures_are_pending_and_cancellable():
    # concurrent.futures hands a task to a worker only when one is about
    # to be free: the others stay PENDING, cancel() works on them, and
    # shutdown(cancel_futures=True) cancels them.
    ex = Executor(1)
    try:
        fs = [ex.submit(time.sleep, 0.2) for _ in range(30)]
        assert fs[-1].cancel()
        assert fs[-1].cancelled()
        ex.shutdown(wait=True, cancel_futures=True)
        cancelled = [f for f in fs if f.cancelled()]
        ran = [f for f in fs if not f.cancelled()]
        assert len(cancelled) >= 15, [f._state for f in fs]
        assert all(f.result() is None for f in ran)
        assert all(f.done() for f in fs)
    finally:
        ex.shutdown()


def test_pool_terminate_cancels_queued_work():
    p = Pool(1)
    rs = [p.apply_async(time.sleep, (0.2,)) for _ in range(8)]
    p.terminate()
    p.join()
    assert all(r.ready() for r in rs)
    assert not all(r.successful() for r in rs)


def test_map_keeps_every_result_with_bounded_inflight():
    # many more chunks than workers: the in-flight bound must not lose or
    # reorder any.
    with Executor(2) as ex:
        assert list(ex.map(square, range(2000), chunksize=3)) == [
            x * x for x in range(2000)]
        fs = [ex.submit(square, i) for i in range(500)]
        assert [f.result(60) for f in fs] == [i * i for i in range(500)]
    with Pool(2) as p:
        assert p.map(square, range(3000), chunksize=1) == [
            x * x for x in range(3000)]
        assert list(p.imap(square, range(300))) == [x * x for x in range(300)]


def _failing_init():
    raise ValueError("init fails here")


def test_failing_initializer_says_why_on_stderr(capfd):
    from concurrent.futures.process import BrokenProcessPool
    ex = Executor(1, initializer=_failing_init)
    try:
        with pytest.raises(BrokenProcessPool):
            ex.submit(square, 2).result(30)
    finally:
        ex.shutdown()
    err = capfd.readouterr().err
    assert "Exception in initializer:" in err
    assert "ValueError: init fails here" in err


def test_mp_context_keyword_is_accepted():
    # ProcessPoolExecutor(max_workers=2, mp_context=...) is common; the
    # workers are forks whatever it says.
    ctx = multiprocessing.get_context("fork")
    with Executor(max_workers=1, mp_context=ctx) as ex:
        assert ex.submit(square, 4).result(30) == 16
    with pytest.raises(TypeError):
        Executor(1, None, (), None, ctx)  # keyword only
