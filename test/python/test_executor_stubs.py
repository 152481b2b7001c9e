"""The .pyi stubs of lazy, channels, Executor and Pool name what the
modules define, with the same parameters (names, kinds, which have
defaults): a stub that drifts from the code misleads every type checker."""
import ast
import importlib
import inspect
import os

import pytest

import forkqueue

PKG = os.path.dirname(forkqueue.__file__)
MODULES = ["lazy", "channels", "_executor", "_pool"]


def _stub_params(fn):
    a = fn.args
    out = []
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    for arg, d in zip(pos, defaults):
        kind = ("POSITIONAL_ONLY" if arg in a.posonlyargs
                else "POSITIONAL_OR_KEYWORD")
        out.append((arg.arg, kind, d is not None))
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", False))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, "KEYWORD_ONLY", d is not None))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", False))
    return out


def _runtime_params(obj):
    sig = inspect.signature(obj)
    return [(p.name, p.kind.name, p.default is not p.empty)
            for p in sig.parameters.values()]


def _stub_items(name):
    with open(os.path.join(PKG, name + ".pyi")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, None, node
        elif isinstance(node, ast.ClassDef):
            yield node.name, None, None
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef):
                    yield node.name, sub.name, sub


@pytest.mark.parametrize("modname", MODULES)
def test_stub_matches_runtime(modname):
    mod = importlib.import_module("forkqueue." + modname)
    problems = []
    checked = 0
    for top, meth, fn in _stub_items(modname):
        if not hasattr(mod, top):
            problems.append(f"{top}: in the stub, not in the module")
            continue
        obj = getattr(mod, top)
        if meth is not None:
            if not hasattr(obj, meth):
                problems.append(f"{top}.{meth}: in the stub only")
                continue
            obj = inspect.getattr_static(obj, meth)
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
            if isinstance(obj, property) or not callable(obj):
                continue
        if fn is None:
            continue
        want = _stub_params(fn)
        try:
            got = _runtime_params(obj)
        except (TypeError, ValueError):
            continue  # a builtin without a signature
        if meth is not None and want[:1] and want[0][0] in ("self", "cls"):
            want, got = want[1:], got[1:]
        if want != got and not (len(want) == len(got) == 0):
            problems.append(f"{top}{'.' + meth if meth else ''}: stub "
                            f"{want} != runtime {got}")
        checked += 1
    assert checked > 3
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("modname", ["lazy", "channels"])
def test_stub_lists_every_public_name(modname):
    mod = importlib.import_module("forkqueue." + modname)
    with open(os.path.join(PKG, modname + ".pyi")) as f:
        stub = f.read()
    names = {n for n, _, _ in _stub_items(modname)}
    tree = ast.parse(stub)
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign)
                      else [node.target]):
                if isinstance(t, ast.Name):
                    names.add(t.id)
    missing = [n for n in mod.__all__ if n not in names]
    assert not missing
