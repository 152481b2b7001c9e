# Stubs for forkqueue.futures.threading (the mpservice.threading names).
from forkqueue.futures import (ALL_COMPLETED as ALL_COMPLETED,
                               FIRST_COMPLETED as FIRST_COMPLETED,
                               FIRST_EXCEPTION as FIRST_EXCEPTION,
                               InvalidStateError as InvalidStateError,
                               Thread as Thread, TimeoutError as TimeoutError,
                               as_completed as as_completed, wait as wait)

__all__ = [
    "InvalidStateError",
    "TimeoutError",
    "Thread",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "ALL_COMPLETED",
    "wait",
    "as_completed",
]
