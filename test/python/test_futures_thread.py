"""forkqueue.futures.Thread: a thread that is a future."""
import asyncio
import gc
import threading
import time

import pytest

import forkqueue.futures as ff
from forkqueue.futures import (InvalidStateError, Thread, get_remote_traceback,
                               is_remote_exception)


def test_result_and_join():
    t = Thread(target=lambda a, b=0: a + b, args=(2,), kwargs={"b": 3})
    assert not t.done()
    t.start()
    assert t.result() == 5
    assert t.join() is None and t.done() and t.exception() is None


def test_exception_reraised_on_every_join(capsys):
    def bad():
        raise ValueError("nope")
    t = Thread(target=bad, name="worker-7")
    t.start()
    for _ in range(3):
        with pytest.raises(ValueError, match="nope") as info:
            t.join()
    e = info.value
    assert t.exception() is e
    with pytest.raises(ValueError):
        t.result()
    assert is_remote_exception(e)
    assert get_remote_traceback(e).startswith(
        "[worker-7] Traceback (most recent call last):")
    assert "in bad" in get_remote_traceback(e)
    assert capsys.readouterr().out == "Exception in worker-7: ValueError('nope')\n"


class NeedsTwo(Exception):
    def __init__(self, a, b):
        super().__init__(a)


def test_exception_class_that_cannot_be_rebuilt_does_not_hang_join():
    def bad():
        raise NeedsTwo(1, 2)
    t = Thread(target=bad)
    t.start()
    with pytest.raises(NeedsTwo):
        t.join(timeout=10)
    assert is_remote_exception(t.exception())


def test_system_exit():
    t = Thread(target=lambda: (_ for _ in ()).throw(SystemExit(0)))
    t.start()
    assert t.result() is None
    def exit3():
        raise SystemExit(3)
    t = Thread(target=exit3)
    t.start()
    with pytest.raises(SystemExit) as info:
        t.join()
    assert info.value.code == 3


def test_target_none_is_success():
    t = Thread()
    t.start()
    assert t.result() is None


def test_timeouts():
    gate = threading.Event()
    t = Thread(target=gate.wait)
    t.start()
    with pytest.raises(ff.TimeoutError):
        t.result(timeout=0.01)
    with pytest.raises(TimeoutError):  # the builtin
        t.exception(timeout=0.01)
    assert t.join(timeout=0.01) is None and not t.done()
    gate.set()
    assert t.result() is True
    assert issubclass(ff.TimeoutError, TimeoutError)


def test_throw_and_terminate():
    stop = threading.Event()
    started = threading.Event()

    def spin():
        started.set()
        while not stop.is_set():
            time.sleep(0.001)
    t = Thread(target=spin)
    t.start()
    started.wait()
    t.throw(KeyError("thrown"))
    with pytest.raises(KeyError):
        t.join()
    with pytest.raises(InvalidStateError):
        t.throw(KeyError)
    assert issubclass(InvalidStateError, RuntimeError)

    started.clear()
    t = Thread(target=spin)
    t.start()
    started.wait()
    t.terminate()
    assert not t.is_alive()
    assert t.join() is None and t.result() is None and t.exception() is None
    stop.set()


def test_throw_before_start_is_invalid_state():
    with pytest.raises(InvalidStateError):
        Thread(target=print).throw(ValueError)


def test_no_finalizer_joins_threads_during_gc():
    # A thread that is still running when its object is collected must not
    # be joined by a finalizer (that blocked the collecting thread forever).
    gate = threading.Event()
    t = Thread(target=gate.wait)
    t.start()
    del t
    start = time.monotonic()
    gc.collect()
    assert time.monotonic() - start < 1
    gate.set()


def test_subclass_overriding_run_still_completes():
    class Mine(Thread):
        def run(self):
            self.ran = True
    t = Mine()
    t.start()
    assert t.join(timeout=10) is None and t.result() is None and t.ran


def test_wait_and_as_completed():
    gates = [threading.Event() for _ in range(3)]
    ts = [Thread(target=g.wait) for g in gates]
    for t in ts:
        t.start()
    done, not_done = ff.wait(ts, timeout=0.01)
    assert done == set() and not_done == set(ts)
    gates[1].set()
    done, not_done = ff.wait(ts, return_when="first_completed")
    assert done == {ts[1]}
    order = []
    gates[2].set()
    it = ff.as_completed(ts, timeout=10)
    order.append(next(it))
    order.append(next(it))
    gates[0].set()
    order.append(next(it))
    assert order == [ts[1], ts[2], ts[0]]
    with pytest.raises(ValueError):
        ff.wait(ts, return_when="SOMETIMES")


def test_as_completed_timeout():
    gate = threading.Event()
    t = Thread(target=gate.wait)
    t.start()
    with pytest.raises(ff.TimeoutError):
        list(ff.as_completed([t], timeout=0.01))
    gate.set()
    t.join()


def test_first_exception():
    gate = threading.Event()
    def bad():
        raise ValueError
    ts = [Thread(target=gate.wait), Thread(target=bad)]
    for t in ts:
        t.start()
    done, not_done = ff.wait(ts, return_when=ff.FIRST_EXCEPTION)
    assert done == {ts[1]} and not_done == {ts[0]}
    gate.set()


def test_await_a_thread():
    async def main():
        t = Thread(target=lambda: 42)
        t.start()
        bad = Thread(target=lambda: 1 / 0)
        bad.start()
        with pytest.raises(ZeroDivisionError):
            await bad
        return await t
    assert asyncio.run(main()) == 42
