"""Awaiting a forkqueue.Job in asyncio (private helper of Job.__await__)."""

from __future__ import annotations

import asyncio
from typing import Any

# The event loop's thread drives the queue itself, a little at a time: no
# thread is started, and the queue is never used by two threads at once.
_FIRST_DELAY = 0.0002
_MAX_DELAY = 0.005


async def _await_job(job: Any) -> Any:
    delay = _FIRST_DELAY
    while not job.done():  # moves the queue's I/O once, without waiting
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY)
    return job.result()
