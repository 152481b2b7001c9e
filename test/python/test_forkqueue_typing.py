"""Typing: the package ships py.typed and stubs for every public name, and
`mypy --strict` passes on the ForkQueue examples."""
import glob
import os
import subprocess
import sys

import pytest

import forkqueue

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "..", "examples", "python")


def have_mypy():
    try:
        import mypy  # noqa: F401
        return True
    except ImportError:
        pass
    # Install it into this interpreter (what setup.sh and CI do too).
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mypy"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0


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
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(forkqueue.__file__))
    if "site-packages" not in root:   # an installed package is found as is
        env["MYPYPATH"] = root
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict",
                        "--no-incremental", "--cache-dir", os.devnull, *files],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
