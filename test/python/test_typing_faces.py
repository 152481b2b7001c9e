"""Typing of the five faces as a user sees it: every name of each face's
``__all__`` is exported by its stub (``from forkqueue.<face> import *``
under ``mypy --strict`` finds each of them), and stubtest finds no
difference between the stubs and the modules beyond the allowlist below
(each entry says why)."""
import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import forkqueue
from helpers import have_mypy, mypy_env

FACES = ["forkqueue", "forkqueue.workers", "forkqueue.channels",
         "forkqueue.futures", "forkqueue.lazy"]

# stubtest findings that are not stub errors.
ALLOWLIST = textwrap.dedent(r"""
    # Needs typing_extensions.disjoint_base, which the stubs do not import.
    forkqueue\._forkqueue\.(ForkQueue|Channel|Exchange|_Loop)
    # Job(Generic[T]) in the stub gives Job[int]; the C type has its own.
    forkqueue\._forkqueue\.Job\.__class_getitem__
    # ResultProxy forwards every operator to its value, at runtime with
    # (self, *args) wrappers: the stub spells out the useful signatures
    # and leaves the rest to __getattr__.
    forkqueue\.(lazy|_lazy_proxy)\.ResultProxy\.__\w+__
    # functools.partial objects at runtime, typed as the functions they act
    # as (stubtest wants a def to be a function).
    forkqueue\.futures\.(server_process\.)?managed_\w+
    # Private helper modules without stubs of their own.
    forkqueue\.(_lazy_proxy|_lazy_dispatch|_lazy_errors|_channels_exchange|_channels_pmap|_memblock|_progress|_remote_exc)(\..*)?
    forkqueue\.futures\._\w+(\..*)?
    forkqueue\.workers\.(_kinds|_linked|__main__)(\..*)?
    forkqueue\.workers\._wire\.\w+
    """)


@pytest.fixture(scope="module")
def mypy_ok():
    if not have_mypy():
        pytest.skip("mypy is not installed and `pip install mypy` failed")


def test_star_import_exports_every_public_name(tmp_path, mypy_ok):
    # One program per face, checked in one mypy run (each run costs
    # seconds of start-up).
    progs = []
    for face in FACES:
        names = importlib.import_module(face).__all__
        assert names, face
        prog = tmp_path / ("user_" + face.replace(".", "_") + ".py")
        prog.write_text(f"from {face} import *  # noqa: F403\n\n"
                        + "".join(f"print({n})  # noqa: F405\n"
                                  for n in names))
        progs.append(str(prog))
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict",
                        "--no-incremental", "--cache-dir", os.devnull,
                        *progs], capture_output=True, text=True,
                       env=mypy_env(), timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_stubtest_finds_no_difference(tmp_path, mypy_ok):
    pkg = os.path.dirname(forkqueue.__file__)
    # Modules without a stub are type-checked as code by stubtest: their
    # own type errors are not the stubs' business.
    nostub = []
    for d, _, files in os.walk(pkg):
        for f in files:
            if f.endswith(".py") and not os.path.exists(
                    os.path.join(d, f[:-3] + ".pyi")):
                rel = os.path.relpath(os.path.join(d, f[:-3]),
                                      os.path.dirname(pkg))
                mod = rel.replace(os.sep, ".")
                nostub.append(mod[:-len(".__init__")]
                              if mod.endswith(".__init__") else mod)
    ini = tmp_path / "mypy.ini"
    ini.write_text("[mypy]\n[mypy-%s]\nignore_errors = True\n"
                   % ",".join(sorted(nostub)))
    allow = tmp_path / "allowlist.txt"
    allow.write_text(ALLOWLIST)
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "forkqueue",
                        "--mypy-config-file", str(ini), "--allowlist",
                        str(allow), "--ignore-unused-allowlist"],
                       capture_output=True, text=True, env=mypy_env(),
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
