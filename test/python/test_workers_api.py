"""forkqueue.workers: the rest of the API surface (module layout like
pyworkers', pool options that keep pyworkers' exact discipline, helpers)."""
import importlib
import os
import queue

import pytest

import forkqueue.workers as fw
from forkqueue.workers import (PersistentProcessWorker, Pool, ProcessWorker,
                               ThreadWorker, Worker, WorkerType)
from forkqueue.workers.worker import autoclose_active_children


def square(x):
    return x * x


def test_every_name_and_submodule():
    for name in ("Worker", "WorkerType", "WorkerTerminatedError",
                 "ThreadWorker", "ProcessWorker", "RemoteWorker",
                 "PersistentWorker", "PersistentThreadWorker",
                 "PersistentProcessWorker", "PersistentRemoteWorker",
                 "WorkerClosedError", "Pool", "PoolError", "RemoteServer",
                 "spawn_server", "RemoteContext", "remote_pickle"):
        assert hasattr(fw, name), name
    for mod, name in (("thread", "ThreadWorker"), ("process", "ProcessWorker"),
                      ("remote", "RemoteWorker"),
                      ("persistent", "PersistentWorker"),
                      ("pool", "Pool"), ("remote_server", "spawn_server"),
                      ("remote_context", "RemoteContext"),
                      ("remote_pickle", "dumps"), ("worker", "WorkerType")):
        m = importlib.import_module(f"forkqueue.workers.{mod}")
        assert getattr(m, name) is getattr(fw, name, getattr(m, name))
    assert issubclass(fw.WorkerClosedError, RuntimeError)
    assert issubclass(fw.PoolError, RuntimeError)


def test_exact_depth_with_an_enqueue_fn():
    depth = []

    def enqueue_fn(worker, x):
        depth.append(len(pending))
        pending.append(x)
        worker.enqueue(x)
        return True

    pending = []

    def callback(worker, event, *result):
        if event == "finished":
            pending.remove(result[0])

    with Pool(lambda x: x) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        out = pool.run(range(30), enqueue_fn=enqueue_fn,
                       worker_callback=callback,
                       worker_extra_pending_inputs=1)
    assert sorted(out) == list(range(30))
    assert max(depth) <= 3  # 2 workers x (1 + 1 extra), minus the new one


def test_callable_sources_and_no_results():
    calls = []

    def source(worker):
        if len(calls) >= 10:
            raise StopIteration
        calls.append(worker.userid)
        return len(calls)

    with Pool(square) as pool:
        pool.add_worker(WorkerType.THREAD)
        pool.add_worker(WorkerType.PROCESS)
        assert pool.run(source, return_results=False) is None
    assert len(calls) == 10 and set(calls) == {0, 1}


def test_target_exception_ends_a_persistent_process_worker():
    def f(x):
        if x == 2:
            raise ValueError("two")
        return x

    w = PersistentProcessWorker(f)
    for x in range(5):
        w.enqueue(x)
    assert w.wait(5)
    assert type(w.error) is ValueError
    assert list(w.results_iter(maxitems=1)) == [0]
    assert list(w.results_iter()) == [1]
    with pytest.raises(queue.Empty):
        w.next_result(block=False)


def test_active_children_and_autoclose():
    with autoclose_active_children():
        w = PersistentProcessWorker(square)
        t = ThreadWorker(square, args=(2,))
        assert w in Worker.active_children()
    assert not w.is_alive() and w.has_error is False
    t.wait()
    assert t not in Worker.active_children()


def test_process_worker_in_a_thread_worker():
    def nested():
        p = ProcessWorker(square, args=(5,))
        p.wait()
        return p.result, p.parent_pid

    t = ThreadWorker(nested)
    t.wait()
    assert t.result == (25, os.getpid())
