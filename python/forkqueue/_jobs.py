"""Awaiting a forkqueue.Job in asyncio (private helper of Job.__await__).

The machinery is shared by the faces: forkqueue._aio."""

from __future__ import annotations

from typing import Any

from ._aio import wait_job


async def _await_job(job: Any) -> Any:
    return await wait_job(job)
