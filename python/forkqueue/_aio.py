"""asyncio glue for job futures (private; shared by the faces).

One driver per asyncio event loop, alive while some coroutine awaits a job:
a ``_Loop`` (the core's loop object) watching those jobs, whose descriptor
is registered with ``loop.add_reader()`` and whose timeout is armed with
``loop.call_later()``. The core loop drives the jobs' queues, so results,
worker deaths and time limits are noticed with nothing but asyncio running,
and nothing is polled: the event loop wakes up when a descriptor has input
or a deadline of the queues comes. When the last awaited job is done the
reader and the timer are removed and the ``_Loop`` is closed.

A job reports its end through its done callback, in whichever thread
noticed it (the driver's ``process()``, or a ``result()`` called meanwhile,
maybe from another thread): the callback completes the asyncio futures in
the loop's thread.

While another thread is inside a call of one of the queues (its ``_Loop``
cannot hold it), the driver steps aside and retries after 1 ms, doubling up
to 50 ms: the only time it waits on a clock; the other thread's call moves
the queue meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Optional

from ._forkqueue import _Loop

_RETRY_FIRST = 0.001
_RETRY_MAX = 0.05

# asyncio event loop -> its _Driver, while it has jobs to watch.
_drivers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Driver]" = (
    weakref.WeakKeyDictionary())


class _Driver:
    def __init__(self, aio: asyncio.AbstractEventLoop) -> None:
        self._ref = weakref.ref(aio)
        self._thread = threading.get_ident()
        self._lp = _Loop()
        try:
            self._fd = self._lp.fileno()
        except BaseException:
            self._lp.close()
            raise
        self._waiters: dict[Any, list[asyncio.Future[None]]] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._due = False  # a _rearm() is scheduled
        self._reading = False
        self._retry = 0.0
        self.closed = False
        # Counters for the tests: calls of process(), timer wake-ups.
        self.processed = 0
        self.timed = 0

    # ---- the awaiting side ----------------------------------------------

    def watch(self, job: Any) -> Optional[asyncio.Future[None]]:
        """A future completed (with None) once the job is done, or None if
        it is done already."""
        futs = self._waiters.get(job)
        if futs is None:
            if not self._lp.add_job(job):
                return None
            job.add_done_callback(self._on_done)
            futs = self._waiters[job] = []
        fut = self._ref().create_future()  # type: ignore[union-attr]
        futs.append(fut)
        self._schedule()
        return fut

    def unwatch(self, job: Any, fut: asyncio.Future[None]) -> None:
        futs = self._waiters.get(job)
        if futs is None or fut not in futs:
            return
        futs.remove(fut)
        if not futs:
            del self._waiters[job]
            try:
                self._lp.remove_job(job)
            except ValueError:
                pass  # reported and gone already
            self._schedule()

    def _on_done(self, job: Any) -> None:
        # Any thread: the one whose call noticed the end.
        if self.closed:
            return
        if threading.get_ident() == self._thread:
            self._complete(job)
            return
        aio = self._ref()
        if aio is not None:
            try:
                aio.call_soon_threadsafe(self._complete, job)
            except RuntimeError:
                pass  # the event loop is closed: nobody awaits any more

    def _complete(self, job: Any) -> None:
        for fut in self._waiters.pop(job, ()):
            if not fut.done():
                fut.set_result(None)
        if not self._waiters:
            self._schedule()  # not from inside process(): _rearm() closes

    # ---- driving ----------------------------------------------------------

    def _schedule(self) -> None:
        """One _rearm() at the next turn of the event loop, however many
        jobs were added or finished meanwhile."""
        if not self._due and not self.closed:
            aio = self._ref()
            if aio is not None:
                self._due = True
                aio.call_soon(self._rearm)

    def _rearm(self) -> None:
        self._due = False
        if self.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        aio = self._ref()
        if not self._waiters or aio is None or aio.is_closed():
            self.close()
            return
        try:
            t = self._lp.timeout()
        except RuntimeError:  # a queue in use by another thread
            self._step_aside(aio)
            return
        except Exception as e:
            self._fail(e)
            return
        self._retry = 0.0
        if not self._reading:
            aio.add_reader(self._fd, self._on_ready)
            self._reading = True
        if t is not None:
            self._timer = aio.call_later(t, self._on_timer)

    def _step_aside(self, aio: asyncio.AbstractEventLoop) -> None:
        if self._reading:  # it stays readable: it would spin
            aio.remove_reader(self._fd)
            self._reading = False
        self._retry = min(max(self._retry * 2, _RETRY_FIRST), _RETRY_MAX)
        self._timer = aio.call_later(self._retry, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.timed += 1
        self._pump()

    def _on_ready(self) -> None:
        self._pump()

    def _pump(self) -> None:
        if self.closed:
            return
        self.processed += 1
        try:
            self._lp.process()  # done callbacks run in there
        except RuntimeError:
            aio = self._ref()
            if aio is not None:
                self._step_aside(aio)
            return
        except Exception as e:  # the core loop failed: no more waiting
            self._fail(e)
            return
        self._rearm()

    def _fail(self, e: Exception) -> None:
        waiters = list(self._waiters.values())
        self._waiters.clear()
        for futs in waiters:
            for fut in futs:
                if not fut.done():
                    fut.set_exception(e)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        aio = self._ref()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading and aio is not None and not aio.is_closed():
            aio.remove_reader(self._fd)
        self._reading = False
        self._lp.close()
        for futs in self._waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.cancel()
        self._waiters.clear()
        if aio is not None and _drivers.get(aio) is self:
            del _drivers[aio]


def driver(aio: asyncio.AbstractEventLoop) -> Optional[_Driver]:
    """The driver of the event loop (created on first use), or None where
    the core's loop has no descriptor (not Linux) or the event loop does
    not watch descriptors: the caller then polls."""
    d = _drivers.get(aio)
    if d is not None and not d.closed:
        return d
    try:
        d = _Driver(aio)
        _drivers[aio] = d
    except (OSError, ValueError, TypeError, NotImplementedError):
        return None
    return d


async def wait_job(job: Any) -> Any:
    """Awaits a job future (see Job.__await__): its result, or its
    exception raised. A job cancelled elsewhere raises
    asyncio.CancelledError, as a wrapped concurrent future does; cancelling
    the awaiting task cancels the job."""
    try:
        # One look without waiting (it moves the queue's I/O once): when
        # results flow, most jobs are done by the time they are awaited.
        fut = None if job.done() else False
    except RuntimeError:  # the queue is in another thread's call
        fut = False
    if fut is False:
        aio = asyncio.get_running_loop()
        d = driver(aio)
        if d is None:
            return await _poll_job(job)
        fut = d.watch(job)
    if fut is not None:
        try:
            await fut
        except asyncio.CancelledError:
            d.unwatch(job, fut)
            job.cancel()
            raise
    if job.cancelled():
        raise asyncio.CancelledError(f"job {job.job_id} was cancelled")
    return job.result(timeout=0)


# Without a descriptor: the event loop's thread drives the queue itself, a
# little at a time (no thread is started).
_FIRST_DELAY = 0.0002
_MAX_DELAY = 0.005


async def _poll_job(job: Any) -> Any:
    delay = _FIRST_DELAY
    try:
        while not job.done():  # moves the queue's I/O once, without waiting
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
    except asyncio.CancelledError:
        job.cancel()
        raise
    if job.cancelled():
        raise asyncio.CancelledError(f"job {job.job_id} was cancelled")
    return job.result(timeout=0)
