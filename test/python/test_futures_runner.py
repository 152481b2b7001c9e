"""forkqueue.futures: ProcessRunner, IterableQueue, queue and sync names."""
import queue
import threading

import pytest

import forkqueue.futures as ff
from forkqueue.futures import (IterableQueue, Process, ProcessRunnee, ProcessRunner,
                               SpawnProcess, Thread)
from futures_helpers import spawn_resource_tracker  # noqa: F401



class Adder(ProcessRunnee):
    def __init__(self, base):
        self.base = base
        self.entered = False

    def __enter__(self):
        self.entered = True
        return self

    def __call__(self, x, *, times=1):
        if x < 0:
            raise ValueError(f"negative {x}")
        assert self.entered
        self.base += x * times
        return self.base


def test_process_runner_keeps_state_between_calls():
    with ProcessRunner(target=Adder, args=(10,), name="adder") as r:
        assert r(1) == 11
        r.restart(2, times=3)
        assert r.rejoin() == 17
        with pytest.raises(ValueError, match="negative -1") as info:
            r(-1)
        assert ff.is_remote_exception(info.value)
        assert r(0) == 17


class Dies(ProcessRunnee):
    def __call__(self):
        import os
        os._exit(3)


def test_process_runner_whose_process_dies_does_not_hang():
    r = ProcessRunner(target=Dies)
    r.start()
    with pytest.raises(ff.ProcessKilledError):
        r()


def test_runnee_is_abstract():
    with pytest.raises(TypeError):
        ProcessRunnee()


def _supply(q, items):
    for x in items:
        q.put(x)
    q.put_end()


def test_iterable_queue_threads_many_suppliers_and_consumers():
    q = IterableQueue(queue.Queue(), num_suppliers=3)
    sups = [Thread(target=_supply, args=(q, range(i * 100, i * 100 + 100))) for i in range(3)]
    got = []
    lock = threading.Lock()

    def consume():
        for x in q:
            with lock:
                got.append(x)
    cons = [Thread(target=consume) for _ in range(2)]
    for t in sups + cons:
        t.start()
    for t in sups + cons:
        t.join(timeout=30)
    assert sorted(got) == list(range(300))
    # Every later iteration ends at once, too.
    assert list(q) == []
    q.renew()
    _supply(q, [1, 2])
    q.put_end()
    q.put_end()
    assert list(q) == [1, 2]


def test_iterable_queue_across_processes():
    q = IterableQueue(ff.Queue(), num_suppliers=2)
    ps = [Process(target=_supply, args=(q, range(i * 10, i * 10 + 10))) for i in range(2)]
    for p in ps:
        p.start()
    assert sorted(q) == list(range(20))
    for p in ps:
        p.join(timeout=30)
    assert q.qsize() == 1  # the end marker left for other consumers


def test_iterable_queue_misuse():
    q = IterableQueue(queue.Queue())
    with pytest.raises(ValueError):
        q.put(None)
    with pytest.raises(RuntimeError, match="renewable"):
        q.renew()
    q.put_end()
    with pytest.raises(RuntimeError, match="more than"):
        q.put_end()


def test_iterable_queue_to_stop():
    stop = threading.Event()
    q = IterableQueue(queue.Queue(), to_stop=stop)
    t = Thread(target=lambda: list(q))
    t.start()
    stop.set()
    with pytest.raises(ff.StopRequested):
        t.join(timeout=30)


def _put(q, e, v):
    e.wait(30)
    q.put(v)


def test_queue_and_sync_names_work_with_both_process_kinds():
    q, e = ff.Queue(), ff.Event()
    assert isinstance(q, ff.Queue) and ff.Queue(3).maxsize == 3
    ps = [Process(target=_put, args=(q, e, 1)), SpawnProcess(target=_put, args=(q, e, 2))]
    for p in ps:
        p.start()
    e.set()
    assert sorted([q.get(timeout=60), q.get(timeout=60)]) == [1, 2]
    for p in ps:
        p.join(timeout=60)
    for cls in (ff.Lock, ff.RLock, ff.Semaphore, ff.BoundedSemaphore):
        with cls():
            pass
    c = ff.Condition()
    with c:
        c.notify_all()
    assert ff.Barrier(1).wait(5) == 0
    jq = ff.JoinableQueue()
    jq.put(1)
    jq.get()
    jq.task_done()
    jq.join()
    sq = ff.SimpleQueue()
    sq.put(3)
    assert sq.get() == 3
    assert ff.Value("i", 3).value == 3 and list(ff.Array("i", [1, 2])) == [1, 2]
    assert ff.RawValue("i", 4).value == 4 and ff.cpu_count() >= 1
    with ff.Manager() as m:
        d = m.dict()
        d["a"] = 1
        assert d["a"] == 1
