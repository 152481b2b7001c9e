"""forkqueue.lazy's job future (_LazyFuture): a concurrent.futures.Future
whose condition is made only when someone waits, as the standard library's
functions and asyncio use it; and the engine's batching of results."""
import asyncio
import concurrent.futures as cf
import threading
import time

import pytest

import forkqueue.lazy as fork
from forkqueue._lazy_future import _LazyFuture
from helpers import wait_until


@pytest.fixture(autouse=True)
def stop_pools():
    yield
    fork._shutdown()


def test_result_set_before_and_after_a_wait():
    f = _LazyFuture()
    assert not f.done() and not f.running() and not f.cancelled()
    assert f.set_running_or_notify_cancel() is True
    assert f.running()
    f.set_result(5)
    assert f.done() and f.result() == 5 and f.exception() is None
    assert f._cond is None  # nobody waited: no condition was made

    g = _LazyFuture()
    g.set_running_or_notify_cancel()
    threading.Timer(0.05, g.set_result, (7,)).start()
    assert g.result(timeout=10) == 7


def test_exception_timeout_and_invalid_state():
    f = _LazyFuture()
    f.set_running_or_notify_cancel()
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.01)
    with pytest.raises(cf.TimeoutError):
        f.exception(timeout=0)
    err = ValueError("bad")
    f.set_exception(err)
    assert f.exception() is err
    with pytest.raises(ValueError, match="bad"):
        f.result()
    with pytest.raises(cf.InvalidStateError):
        f.set_result(1)
    with pytest.raises(cf.InvalidStateError):
        f.set_exception(err)


def test_cancel_before_running_and_not_after():
    f = _LazyFuture()
    seen = []
    f.add_done_callback(seen.append)
    assert f.cancel() is True and f.cancel() is True
    assert f.cancelled() and f.done() and seen == [f]
    assert f.set_running_or_notify_cancel() is False
    with pytest.raises(cf.CancelledError):
        f.result()
    with pytest.raises(cf.CancelledError):
        f.exception()

    g = _LazyFuture()
    g.set_running_or_notify_cancel()
    assert g.cancel() is False
    with pytest.raises(RuntimeError):
        g.set_running_or_notify_cancel()


def test_callbacks_run_once_before_or_after_completion():
    f = _LazyFuture()
    before, after = [], []
    f.add_done_callback(lambda x: before.append(x.result()))
    f.add_done_callback(lambda x: 1 / 0)  # logged, does not stop the next
    f.add_done_callback(lambda x: before.append("second"))
    f.set_running_or_notify_cancel()
    f.set_result(3)
    f.add_done_callback(lambda x: after.append(x.result()))
    assert before == [3, "second"] and after == [3]


def test_wait_and_as_completed_of_the_standard_library():
    fs = [_LazyFuture() for _ in range(5)]
    for f in fs:
        f.set_running_or_notify_cancel()
    fs[0].set_result(0)
    done, pending = cf.wait(fs, timeout=0)
    assert done == {fs[0]} and len(pending) == 4

    def finish():
        for i, f in enumerate(fs[1:], 1):
            time.sleep(0.01)
            f.set_result(i)
    t = threading.Thread(target=finish)
    t.start()
    done, _ = cf.wait(fs[1:3], return_when=cf.FIRST_COMPLETED, timeout=10)
    assert fs[1] in done
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=10)) == \
        [0, 1, 2, 3, 4]
    t.join()
    done, pending = cf.wait(fs, timeout=10)
    assert len(done) == 5 and not pending


def test_asyncio_wraps_it():
    f = _LazyFuture()
    f.set_running_or_notify_cancel()

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, lambda: threading.Thread(
            target=f.set_result, args=("x",)).start())
        return await asyncio.wrap_future(f)
    assert asyncio.run(main()) == "x"


def test_many_threads_wait_on_one_future():
    f = _LazyFuture()
    f.set_running_or_notify_cancel()
    got = []
    ts = [threading.Thread(target=lambda: got.append(f.result(10)))
          for _ in range(8)]
    for t in ts:
        t.start()
    assert wait_until(
        lambda: f._cond is not None and len(f._cond._waiters) == 8)
    f.set_result(42)
    for t in ts:
        t.join()
    assert got == [42] * 8


def spin(x):
    t = time.perf_counter() + 0.001
    while time.perf_counter() < t:
        pass
    return x


def test_results_batched_only_with_many_jobs_out():
    # Many jobs out: the engine lets results gather between polls (naps);
    # every job still gets its value. A lone job is never napped on.
    fork.evaluate(fork.fork(spin, 0))
    eng = fork._pool("processes")._engine
    assert eng._nap_s > 0
    naps = []
    real_nap = eng._nap
    eng._nap = lambda: (naps.append(len(eng._inflight)), real_nap())
    total = 0
    for i in range(300):
        total += fork.fork(spin, i)
    assert int(total) == sum(range(300))
    assert naps and min(naps) > 2 * eng.workers
    del naps[:]
    for i in range(20):
        assert fork.evaluate(fork.fork(spin, i)) == i
    assert naps == []
