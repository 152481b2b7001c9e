"""Fixtures of the forkqueue Python tests.

ctest runs pytest with PYTHONPATH pointing at build/python, so `forkqueue` is
the freshly built package. Every test is checked for leftover child
processes: a worker that is not reaped (or not stopped) fails the test that
left it.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import child_pids, proc_state, wait_until  # noqa: E402


@pytest.fixture(autouse=True)
def no_leftover_children():
    before = set(child_pids())
    yield
    left = wait_until(lambda: not (set(child_pids()) - before), timeout=5)
    leftover = set(child_pids()) - before
    assert left and not leftover, (
        f"child processes left behind: "
        f"{[(p, proc_state(p)) for p in leftover]}")


@pytest.fixture
def barrier(tmp_path):
    """A file-based gate: jobs wait for it to exist; the test opens it."""
    class Barrier:
        path = str(tmp_path / "gate")

        def open(self):
            with open(self.path, "w"):
                pass
    return Barrier()
