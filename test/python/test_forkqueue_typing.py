"""Typing: the package ships py.typed and stubs for every public name, and
`mypy --strict` passes on the ForkQueue examples."""
import glob
import os
import subprocess
import sys

import pytest

import forkqueue
from helpers import have_mypy, mypy_env

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "..", "examples", "python")


def test_package_is_typed():
    pkg = os.path.dirname(forkqueue.__file__)
    for name in ("py.typed", "__init__.pyi", "_forkqueue.pyi"):
        assert os.path.exists(os.path.join(pkg, name)), name
    stub = open(os.path.join(pkg, "_forkqueue.pyi")).read()
    for name in forkqueue.__all__ + ["ResultIterator"]:
        assert f"class {name}" in stub
    for name in dir(forkqueue.ForkQueue):
        if not name.startswith("__"):
            assert f" {name}" in stub, name


def test_mypy_strict_on_the_examples():
    if not have_mypy():
        pytest.skip("mypy is not installed and `pip install mypy` failed "
                    "(no network?)")
    # Every Python example, the faces' subfolders included.
    files = sorted(glob.glob(os.path.join(EXAMPLES, "**", "*.py"),
                             recursive=True))
    assert files
    env = mypy_env()
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict",
                        "--no-incremental", "--cache-dir", os.devnull, *files],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
