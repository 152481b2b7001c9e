# Stubs for forkqueue.futures.runner.
from forkqueue.futures import (ProcessRunnee as ProcessRunnee,
                               ProcessRunner as ProcessRunner)

__all__ = [
    "ProcessRunner",
    "ProcessRunnee",
]
