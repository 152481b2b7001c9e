"""wait() and as_completed() over started processes and threads, mixed."""

import concurrent.futures
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION
from typing import Iterable, Iterator, Optional

from ._errors import TimeoutError

_WHEN = {ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION}


def _futures(workers):
    workers = list(workers)
    by_future = {}
    for w in workers:
        fut = getattr(w, "_future_", None)
        if fut is None:
            raise ValueError(f"{w!r} is not a started forkqueue.futures "
                             f"Process, SpawnProcess or Thread")
        by_future[fut] = w
    return by_future


def wait(workers: Iterable, /, timeout: Optional[float] = None,
         return_when: str = ALL_COMPLETED):
    """Waits for started ``Process``/``SpawnProcess``/``Thread`` objects
    (mixed) like ``concurrent.futures.wait``; returns ``(done, not_done)``
    sets of the workers. ``return_when`` is ``ALL_COMPLETED``,
    ``FIRST_COMPLETED`` or ``FIRST_EXCEPTION`` (or their names, any case)."""
    when = str(return_when).upper()
    if when not in _WHEN:
        raise ValueError(f"Invalid return condition: {when!r}")
    by_future = _futures(workers)
    done, not_done = concurrent.futures.wait(list(by_future), timeout=timeout,
                                             return_when=when)
    return {by_future[f] for f in done}, {by_future[f] for f in not_done}


def as_completed(workers: Iterable, /, timeout: Optional[float] = None) -> Iterator:
    """Yields the given started processes and threads (mixed) as they end,
    like ``concurrent.futures.as_completed``; :class:`TimeoutError` if they
    are not all done within ``timeout`` seconds."""
    by_future = _futures(workers)
    try:
        for f in concurrent.futures.as_completed(list(by_future), timeout=timeout):
            yield by_future[f]
    except concurrent.futures.TimeoutError as e:
        if isinstance(e, TimeoutError):
            raise
        raise TimeoutError(str(e)) from None
