"""forkqueue.futures: the names a program imports, and the stubs that type
them, agree with the runtime."""
import ast
import inspect
import os

import pytest

import forkqueue.futures as ff

PKG = os.path.dirname(ff.__file__)

# Every name the spec lists (docs: /shared/spec/futures.md), plus the other
# stdlib synchronisation names and those mpservice.multiprocessing exports.
SPEC_NAMES = """
Process SpawnProcess Thread wait as_completed ALL_COMPLETED FIRST_COMPLETED
FIRST_EXCEPTION TimeoutError InvalidStateError RemoteException RemoteTraceback
is_remote_exception get_remote_traceback Pool Queue SimpleQueue JoinableQueue
Manager Event Lock RLock Condition Semaphore BoundedSemaphore Barrier
ServerProcess MemoryBlock MemoryBlockProxy managed managed_list managed_dict
managed_value managed_array managed_namespace managed_iterator
managed_memoryblock ProcessRunner ProcessRunnee IterableQueue Executor
SpawnContext MP_SPAWN_CTX SyncManager Value Array RawValue RawArray cpu_count
""".split()

# Names typed by their own owners (the executor module) as Any here.
NOT_CHECKED = {"Pool", "Executor"}


def test_star_import_gives_every_spec_name():
    ns = {}
    exec("from forkqueue.futures import *", ns)
    missing = [n for n in SPEC_NAMES if n not in ns]
    assert not missing, missing
    assert ns["Process"] is ff.Process and ns["Pool"] is ff.Pool


def test_submodules_offer_the_mpservice_module_names():
    from forkqueue.futures import remote_exception, runner, server_process, threading
    for mod, names in [
            (threading, ["Thread", "InvalidStateError", "TimeoutError", "wait",
                         "as_completed", "FIRST_COMPLETED", "FIRST_EXCEPTION",
                         "ALL_COMPLETED"]),
            (remote_exception, ["RemoteException", "RemoteTraceback",
                                "is_remote_exception", "get_remote_traceback"]),
            (runner, ["ProcessRunner", "ProcessRunnee"]),
            (server_process, ["ServerProcess", "MemoryBlock", "MemoryBlockProxy",
                              "managed", "managed_list", "managed_dict",
                              "managed_value", "managed_array", "managed_namespace",
                              "managed_iterator", "managed_memoryblock"])]:
        for n in names:
            assert getattr(mod, n) is getattr(ff, n), (mod.__name__, n)


def test_mp_spawn_ctx_makes_future_processes():
    assert ff.MP_SPAWN_CTX.Process is ff.SpawnProcess
    assert isinstance(ff.MP_SPAWN_CTX, ff.SpawnContext)
    assert ff.MP_SPAWN_CTX.get_context() is ff.MP_SPAWN_CTX
    assert ff.MP_SPAWN_CTX.get_context("spawn") is ff.MP_SPAWN_CTX
    assert ff.MP_SPAWN_CTX.get_start_method() == "spawn"


def test_queues_are_generic():
    for cls in (ff.Queue, ff.JoinableQueue, ff.SimpleQueue, ff.IterableQueue):
        alias = cls[int]
        assert alias.__origin__ is cls and alias.__args__ == (int,)


# ---- the stubs -------------------------------------------------------------

def _stub(path):
    """{name: node} of the top-level definitions of a stub file."""
    tree = ast.parse(open(path).read(), path)
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                out[t.id] = node
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.asname:
                    out[a.asname] = node
    return out


def _stub_params(fn):
    """[(name, kind, has_default)] of a stub function, ``self``/``cls``
    included."""
    a = fn.args
    P = inspect.Parameter
    out = []
    pos = a.posonlyargs + a.args
    ndef = len(a.defaults)
    for i, arg in enumerate(pos):
        kind = P.POSITIONAL_ONLY if i < len(a.posonlyargs) else P.POSITIONAL_OR_KEYWORD
        out.append((arg.arg, kind, i >= len(pos) - ndef))
    if a.vararg:
        out.append((a.vararg.arg, P.VAR_POSITIONAL, False))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, P.KEYWORD_ONLY, d is not None))
    if a.kwarg:
        out.append((a.kwarg.arg, P.VAR_KEYWORD, False))
    return out


def _runtime_params(obj, bound_first=None):
    sig = inspect.signature(obj)
    out = [(p.name, p.kind, p.default is not p.empty) for p in sig.parameters.values()]
    if bound_first:
        out.insert(0, (bound_first, inspect.Parameter.POSITIONAL_OR_KEYWORD, False))
    return out


def _decorators(fn):
    return {d.id if isinstance(d, ast.Name) else getattr(d, "attr", None)
            for d in fn.decorator_list}


def _check_function(where, stub_fn, runtime, bound_first=None):
    want = _stub_params(stub_fn)
    got = _runtime_params(runtime, bound_first)
    assert want == got, f"{where}: stub {want} != runtime {got}"


def _check_class(name, node, cls):
    for item in node.body:
        if not isinstance(item, ast.FunctionDef):
            continue
        meth = item.name
        assert meth in dir(cls), f"{name}.{meth} is in the stub, not at runtime"
        raw = inspect.getattr_static(cls, meth)
        if meth in getattr(cls, "_registry", ()):
            continue  # ServerProcess.<typeid>(*args, **kwds), typed per type
        decos = _decorators(item)
        if "property" in decos:
            assert isinstance(raw, property), f"{name}.{meth} is not a property"
            continue
        if "staticmethod" in decos:
            assert isinstance(raw, staticmethod), f"{name}.{meth}"
            _check_function(f"{name}.{meth}", item, raw.__func__)
        elif "classmethod" in decos:
            assert isinstance(raw, classmethod), f"{name}.{meth}"
            _check_function(f"{name}.{meth}", item, raw.__func__)
        elif callable(raw) and inspect.isfunction(raw):
            _check_function(f"{name}.{meth}", item, raw)
    # every public method the class itself defines is in the stub
    stubbed = {i.name for i in node.body if isinstance(i, ast.FunctionDef)}
    for klass in cls.__mro__:
        if not klass.__module__.startswith("forkqueue."):
            continue
        for meth, val in vars(klass).items():
            if meth.startswith("_") and meth not in ("__init__", "__call__",
                                                      "__await__", "__next__",
                                                      "__iter__", "__enter__",
                                                      "__exit__"):
                continue
            if not (inspect.isfunction(val) or isinstance(val, (property, staticmethod,
                                                               classmethod))):
                continue
            if meth in stubbed or meth in getattr(cls, "_registry", ()):
                continue
            # inherited from a stubbed base of ours?
            assert any(meth in _STUB_METHODS.get(b.__name__, ())
                       for b in cls.__mro__[1:]), f"{name}.{meth} is not in the stub"


STUB = _stub(os.path.join(PKG, "__init__.pyi"))
_STUB_METHODS = {n: {i.name for i in node.body if isinstance(i, ast.FunctionDef)}
                 for n, node in STUB.items() if isinstance(node, ast.ClassDef)}


def test_stub_has_every_public_name_and_nothing_else():
    public = set(ff.__all__)
    stubbed = {n for n in STUB if not n.startswith("_")}
    assert public - stubbed == set(), public - stubbed
    for n in stubbed:
        assert hasattr(ff, n), f"{n} is in the stub, not at runtime"


@pytest.mark.parametrize("name", sorted(n for n in STUB if not n.startswith("_")
                                        and n not in NOT_CHECKED))
def test_stub_matches_runtime(name):
    node = STUB[name]
    obj = getattr(ff, name)
    if isinstance(node, ast.ClassDef):
        assert isinstance(obj, type), f"{name} is a class in the stub only"
        _check_class(name, node, obj)
    elif isinstance(node, ast.FunctionDef):
        assert callable(obj) and not isinstance(obj, type), name
        _check_function(name, node, obj)


def test_stub_private_bases_match_runtime():
    # _FutureProcess carries the future interface of both process classes.
    from forkqueue.futures._process import _FutureProcess
    _check_class("_FutureProcess", STUB["_FutureProcess"], _FutureProcess)


@pytest.mark.parametrize("mod", ["threading", "remote_exception", "runner",
                                 "server_process"])
def test_submodule_stubs_reexport_runtime_names(mod):
    path = os.path.join(PKG, f"{mod}.pyi")
    names = _stub(path)
    runtime = __import__(f"forkqueue.futures.{mod}", fromlist=["_"])
    for n in getattr(runtime, "__all__"):
        assert n in names, f"{mod}.pyi lacks {n}"
    for n in names:
        assert hasattr(runtime, n), f"{mod}.pyi has {n}, the module does not"


TYPED_USE = '''
from forkqueue.futures import (MP_SPAWN_CTX, IterableQueue, Process, Queue,
                               SpawnProcess, Thread, wait)
from forkqueue.futures.remote_exception import RemoteException
from forkqueue.futures.runner import ProcessRunner
from forkqueue.futures.server_process import BaseProxy, ServerProcess, managed_list
from forkqueue.futures.threading import Thread as T2


def f(x: int) -> int:
    return x


p = Process(target=f, args=(1,), kwargs=None)
s: SpawnProcess = MP_SPAWN_CTX.Process(target=f)
t: T2 = Thread(target=f, args=(2,))
q: Queue[int] = Queue()
iq: IterableQueue[int] = IterableQueue(q)
total: int = sum(x + 1 for x in iq)
done, not_done = wait([p, s, t], return_when="FIRST_COMPLETED")
'''


def test_stubs_pass_mypy_strict(tmp_path):
    pytest.importorskip("mypy")
    import subprocess
    import sys
    src = tmp_path / "use.py"
    src.write_text(TYPED_USE)
    env = dict(os.environ, MYPYPATH=os.path.dirname(os.path.dirname(PKG)))
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                        "--cache-dir", os.devnull, str(src)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
