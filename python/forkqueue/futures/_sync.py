"""The queue and synchronisation names, as classes with an optional ``ctx``.

As in ``mpservice.multiprocessing``: ``Queue()``, ``Event()``, ``Lock()``
... are classes (usable in type annotations) whose ``ctx`` defaults to the
spawn context, so the same objects work with forked :class:`Process` and
with :class:`SpawnProcess` children.
"""

import multiprocessing
import multiprocessing.context
import multiprocessing.managers
import multiprocessing.queues
import multiprocessing.synchronize as _s
from typing import Generic, TypeVar

from ._process import SpawnProcess

__all__ = ["SpawnContext", "Queue", "JoinableQueue", "SimpleQueue", "Lock", "RLock", "Condition",
           "Semaphore", "BoundedSemaphore", "Event", "Barrier", "Manager",
           "SyncManager", "Value", "Array", "RawValue", "RawArray", "cpu_count",
           "MP_SPAWN_CTX"]

Elem = TypeVar("Elem")


class SpawnContext(multiprocessing.context.SpawnContext):
    """The standard spawn context whose ``Process`` is
    :class:`forkqueue.futures.SpawnProcess` (a future, with log
    forwarding); ``MP_SPAWN_CTX`` is its instance."""

    Process = SpawnProcess

    def get_context(self, method=None):
        if method is None or method == "spawn":
            return self
        return super().get_context(method)


MP_SPAWN_CTX = SpawnContext()


class Queue(multiprocessing.queues.Queue, Generic[Elem]):
    def __init__(self, maxsize=0, *, ctx=None):
        super().__init__(maxsize, ctx=ctx or MP_SPAWN_CTX)

    @property
    def maxsize(self):
        return self._maxsize


class JoinableQueue(multiprocessing.queues.JoinableQueue, Generic[Elem]):
    def __init__(self, maxsize=0, *, ctx=None):
        super().__init__(maxsize, ctx=ctx or MP_SPAWN_CTX)

    @property
    def maxsize(self):
        return self._maxsize


class SimpleQueue(multiprocessing.queues.SimpleQueue, Generic[Elem]):
    def __init__(self, *, ctx=None):
        super().__init__(ctx=ctx or MP_SPAWN_CTX)


class Lock(_s.Lock):
    def __init__(self, *, ctx=None):
        super().__init__(ctx=ctx or MP_SPAWN_CTX)


class RLock(_s.RLock):
    def __init__(self, *, ctx=None):
        super().__init__(ctx=ctx or MP_SPAWN_CTX)


class Condition(_s.Condition):
    def __init__(self, lock=None, *, ctx=None):
        super().__init__(lock, ctx=ctx or MP_SPAWN_CTX)


class Semaphore(_s.Semaphore):
    def __init__(self, value=1, *, ctx=None):
        super().__init__(value, ctx=ctx or MP_SPAWN_CTX)


class BoundedSemaphore(_s.BoundedSemaphore):
    def __init__(self, value=1, *, ctx=None):
        super().__init__(value, ctx=ctx or MP_SPAWN_CTX)


class Event(_s.Event):
    def __init__(self, *, ctx=None):
        super().__init__(ctx=ctx or MP_SPAWN_CTX)


class Barrier(_s.Barrier):
    def __init__(self, parties, action=None, timeout=None, *, ctx=None):
        super().__init__(parties, action, timeout, ctx=ctx or MP_SPAWN_CTX)


class SyncManager(multiprocessing.managers.SyncManager):
    """The standard ``SyncManager``; its server process is forked unless
    ``ctx`` says otherwise."""

    def __init__(self, *args, ctx=None, **kwargs):
        super().__init__(*args, ctx=ctx or multiprocessing.get_context("fork"), **kwargs)


Manager = SyncManager

Value = MP_SPAWN_CTX.Value
Array = MP_SPAWN_CTX.Array
RawValue = MP_SPAWN_CTX.RawValue
RawArray = MP_SPAWN_CTX.RawArray
cpu_count = MP_SPAWN_CTX.cpu_count
