"""IterableQueue: a queue whose iteration ends once every supplier is done."""

import multiprocessing
import multiprocessing.queues
import queue as _queue
import threading
import time
from typing import Iterator, TypeVar

Elem = TypeVar("Elem")

__all__ = ["IterableQueue", "StopRequested"]


class StopRequested(BaseException):
    """Raised by a blocking IterableQueue call once ``to_stop`` is set."""


_END = None  # the end marker a supplier's put_end() puts; never a value


class IterableQueue(Iterator[Elem]):
    """Wraps a queue (``queue.Queue``/``SimpleQueue`` for threads, a
    ``multiprocessing`` or ``forkqueue.futures`` ``Queue``/``SimpleQueue``
    for processes; a new ``forkqueue.futures.Queue`` by default) so that
    iterating over it ends once each of the ``num_suppliers`` suppliers has
    called :meth:`put_end`. Any number of consumers may iterate; all of them
    stop. :meth:`renew` starts another round. ``to_stop``, an event, makes
    blocked calls raise :class:`StopRequested` once set. ``None`` is the end
    marker and cannot be put.
    """

    def __init__(self, q=None, *, num_suppliers: int = 1, to_stop=None):
        if num_suppliers < 1:
            raise ValueError(f"num_suppliers must be at least 1, got {num_suppliers}")
        if q is None:
            from ._sync import Queue
            q = Queue()
        self._q = q
        self._n = num_suppliers
        self._to_stop = to_stop
        if isinstance(q, (_queue.Queue, _queue.SimpleQueue)):
            self._lock = threading.Lock()
            self._counts = [0, 0]  # put_end calls, end markers consumed
            self._shared = False
        else:
            ctx = getattr(q, "_ctx", None) or multiprocessing.get_context("spawn")
            self._lock = ctx.Lock()
            self._counts = ctx.RawArray("i", 2)
            self._shared = True
        self._can_timeout = not isinstance(q, (multiprocessing.queues.SimpleQueue,))

    @property
    def maxsize(self) -> int:
        return getattr(self._q, "maxsize", getattr(self._q, "_maxsize", 0))

    def qsize(self) -> int:
        return self._q.qsize()

    def _blocking(self, op, *args, timeout=None):
        if self._to_stop is None or not self._can_timeout:
            if timeout is not None and not self._can_timeout:
                raise ValueError(
                    f"`timeout` is not supported for the type of queue used in "
                    f"this object: {type(self._q).__name__}")
            return op(*args, timeout=timeout) if self._can_timeout else op(*args)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._to_stop.is_set():
                raise StopRequested
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            try:
                return op(*args, timeout=max(left, 0))
            except (_queue.Empty, _queue.Full):
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def put(self, x, *, timeout=None) -> None:
        """Adds ``x`` (not None)."""
        if x is _END:
            raise ValueError("None is the end marker: call put_end() instead")
        self._blocking(self._q.put, x, timeout=timeout)

    def put_end(self, *, wait_for_renew: bool = False) -> None:
        """Marks the end of this supplier's items (once per supplier and
        round). More calls than ``num_suppliers`` in one round raise
        ``RuntimeError``, unless ``wait_for_renew``, which waits for
        :meth:`renew`."""
        while True:
            with self._lock:
                if self._counts[0] < self._n:
                    self._counts[0] += 1
                    break
            if not wait_for_renew:
                raise RuntimeError("`put_end` is called more than `num_suppliers` times")
            if self._to_stop is not None and self._to_stop.is_set():
                raise StopRequested
            time.sleep(0.01)
        self._blocking(self._q.put, _END)

    def __next__(self):
        while True:
            x = self._blocking(self._q.get)
            if x is not _END:
                return x
            with self._lock:
                if self._counts[1] < self._n:
                    self._counts[1] += 1
                finished = self._counts[1] == self._n
            if finished:
                # Leave one marker for the other consumers.
                self._blocking(self._q.put, _END)
                raise StopIteration

    def __iter__(self) -> Iterator:
        while True:
            try:
                yield self.__next__()
            except StopIteration:
                return

    def renew(self) -> None:
        """After a round was consumed to its end: prepares the next one."""
        with self._lock:
            if self._counts[1] != self._n:
                raise RuntimeError("the object is not in a renewable state")
            x = self._q.get()
            if x is not _END:
                raise RuntimeError(f"expecting None, got {x}")
            self._counts[0] = 0
            self._counts[1] = 0
