"""forkqueue.workers: the rest of the API surface (module layout like
pyworkers', pool options that keep pyworkers' exact discipline, helpers)."""
import importlib
import inspect
import os
import queue
import runpy

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


def _stub_defs(path):
    """{name: [param names] or None} for the public top-level functions and
    the methods of the public classes of a .pyi stub."""
    import ast
    out = {}

    def params(fn):
        a = fn.args
        names = [p.arg for p in a.posonlyargs + a.args]
        if a.vararg:
            names.append("*" + a.vararg.arg)
        names += [p.arg for p in a.kwonlyargs]
        if a.kwarg:
            names.append("**" + a.kwarg.arg)
        return names

    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            out[node.name] = params(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            out[node.name] = None
            for m in node.body:
                if isinstance(m, ast.FunctionDef) and (
                        not m.name.startswith("_") or m.name == "__init__"):
                    deco = {getattr(d, "id", None) for d in m.decorator_list}
                    out[f"{node.name}.{m.name}"] = (
                        None if "property" in deco or "overload" in deco
                        else params(m))
    return out


def _runtime_params(obj):
    sig = inspect.signature(obj)
    names = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            names.append("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            names.append("**" + p.name)
        else:
            names.append(p.name)
    return names


def test_stubs_match_the_runtime_names_and_signatures():
    _inspect = inspect
    d = os.path.dirname(fw.__file__)
    stubs = sorted(f for f in os.listdir(d) if f.endswith(".pyi"))
    assert "worker.pyi" in stubs and "pool.pyi" in stubs
    bad = []
    for stub in stubs:
        modname = "forkqueue.workers" + (
            "" if stub == "__init__.pyi" else "." + stub[:-4])
        mod = importlib.import_module(modname)
        for name, want in _stub_defs(os.path.join(d, stub)).items():
            owner, _, member = name.partition(".")
            obj = getattr(mod, owner, None)
            if obj is not None and member:
                obj = _inspect.getattr_static(obj, member, None)
                if isinstance(obj, (staticmethod, classmethod)):
                    obj = obj.__func__
            if obj is None:
                bad.append(f"{modname}.{name}: in the stub, not at runtime")
                continue
            if want is None or not callable(obj):
                continue
            # private plumbing (``_is_restart``) need not be stubbed, and is
            # not compared when it is (``_release_remote_ctrl``)
            got = [p for p in _runtime_params(obj) if not p.startswith("_")]
            want = [p for p in want if not p.startswith("_")]
            if got != want:
                bad.append(f"{modname}.{name}: stub {want} != runtime {got}")
    assert not bad, "\n".join(bad)


def test_pyworkers_helper_names():
    from forkqueue.workers import RemoteWorker, ThreadWorker, Worker
    w = ThreadWorker(None)
    Worker.register_child(w)  # a dead worker is not an active child
    assert w not in Worker.active_children()
    assert RemoteWorker.is_remote_side is not None
    r = RemoteWorker(False)
    assert r.is_remote_side is False and not r.is_alive()


def test_workers_test_modules_leave_the_environment_alone(monkeypatch):
    """The remote/TLS/auth test files set the shared key for themselves
    only (an autouse module fixture), never at import: importing them in
    one pytest process changes nothing in os.environ."""
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    monkeypatch.delenv("FORKQUEUE_AUTHKEY", raising=False)
    before = dict(os.environ)
    sys.path.insert(0, here)
    try:
        for name in ("test_workers_remote", "test_workers_tls",
                     "test_workers_auth"):
            # run afresh (not from sys.modules: collection imported them)
            runpy.run_path(os.path.join(here, name + ".py"),
                           run_name="_envcheck_" + name)
    finally:
        sys.path.remove(here)
    assert dict(os.environ) == before


def test_submodule_names_also_at_the_top_level():
    # `from pyworkers.remote_pickle import dumps` rewritten to
    # `from forkqueue.workers import dumps` must work as well
    for mod, names in (
            ("remote_pickle", ("dumps", "loads", "dump", "load", "Pickler",
                               "SupportRemoteGetState")),
            ("remote_server", ("run_server", "RemoteServerProcess")),
            ("remote", ("sanitize_target_host",)),
            ("worker", ("autoclose_active_children",))):
        m = importlib.import_module(f"forkqueue.workers.{mod}")
        for name in names:
            assert getattr(fw, name) is getattr(m, name), (mod, name)
    rp = fw.remote_pickle
    for short in ("dump", "dumps", "load", "loads"):
        assert getattr(rp, "remote_" + short) is getattr(rp, short)
    assert fw.loads(fw.dumps([1, "a"])) == [1, "a"]
    assert "dumps" not in fw.__all__  # `import *` stays the spec's names
