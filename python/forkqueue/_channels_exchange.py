"""Exchange, Map, Queue and pmap of forkqueue.channels (see channels.py).

An exchange watches the channels of its children with the core's exchange
(``_forkqueue.Exchange``, over ``fq_exchange_*``): it reports a channel when
a whole message is there, and as ended only once its stream is over with
nothing left in it and its child is reaped, so data a child sent before it
ended is always delivered first. The limit and the queue of waiting calls
stay here, since the waiting work is Python callables.
"""

import collections
import operator
import time

from . import _forkqueue
from .channels import (ChildError, MakeParallel, ManagedCallable, create,
                       describe_exit, get_number_of_cores, start)

_UNDEF = object()  # a Map slot without its result yet


class _Error:
    """A Map or Queue slot holding the error of its element."""

    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc


def check_limit(what, limit):
    """A limit of children is None or an integer of at least 1 (0 or less
    would queue every call for ever: a hang)."""
    if limit is None:
        return
    try:
        n = operator.index(limit)
    except TypeError:
        n = 0
    if n < 1:
        raise ValueError(f"{what}: limit must be None or an integer of at "
                         f"least 1, not {limit!r}")


class Exchange:
    """Watches channels to children and tells which have data.

    ``limit``: most children running at once for ``start()``/``create()``
    (others wait, first in first out; None: no limit). ``reuse``: one child
    runs many calls (with ``MakeReusable``). ``continuous``: a channel may
    deliver many messages; each goes to ``store_data`` and the channel
    stays until its child ends. ``autoclose``: removed channels are closed
    and their children reaped.
    """

    def __init__(self, channels=None, limit=None, reuse=0, continuous=0,
                 autoclose=1):
        check_limit(type(self).__name__, limit)
        self.autoclose = autoclose
        self.limit = limit
        self.reuse = reuse
        self.continuous = continuous
        self.waiting = collections.deque()  # (callable, args, kw), FIFO
        self.readables = {}  # channel -> None, in the order added
        self.removed = []  # channels the last ready() removed
        self._failures = []  # crashes store() has to raise
        self._core = _forkqueue.Exchange()
        self._by_raw = {}  # core channel -> Channel
        for channel in channels or []:
            self.add(channel)

    # -- watching channels ---------------------------------------------------

    def add(self, channel):
        """Watch ``channel`` (the parent's end)."""
        self.readables[channel] = None
        if not channel.closed and channel._raw not in self._by_raw:
            self._core.add(channel._raw)
            self._by_raw[channel._raw] = channel

    def active(self):
        """The channels being watched."""
        return list(self.readables)

    def remove(self, channel):
        """Stop watching ``channel``; with autoclose, close it and reap its
        child."""
        del self.readables[channel]
        if self._by_raw.pop(channel._raw, None) is not None:
            try:
                self._core.remove(channel._raw)
            except ValueError:
                pass  # the core removed it when it ended
        if self.autoclose:
            channel.close()
            channel.wait()

    def ready(self, timeout=None):
        """Wait up to ``timeout`` seconds (None: until something happens)
        and return the channels that have data to receive. Channels whose
        child has ended, with nothing left to receive, are removed (and,
        with autoclose, closed and reaped); ``removed`` lists them."""
        self.removed = []
        have = []
        for c in list(self.readables):
            if c._stash:
                have.append(c)
            elif c.closed or c._over:  # nothing more will come
                self._ended(c)
        for raw, ended in self._core.ready(0 if have else timeout):
            c = self._by_raw.get(raw)
            if c is None:
                continue
            if ended:
                c._eof = c._over = True
                if not c._stash:  # else once what waitall() kept is read
                    self._ended(c)
            elif not c._stash:
                have.append(c)
        return have

    def _ended(self, channel):
        """A watched channel reached its end: remove it, tell subclasses how
        its child ended, and use the freed slot."""
        if channel in self.readables:
            self.remove(channel)
            self.removed.append(channel)
        self._child_ended(channel, channel.returncode)
        while self.waiting and not self.busy():
            self._start_next()

    def _child_ended(self, channel, returncode):
        """A child whose exit is an error (signal, non-zero status) is
        reported by store(): the base exchange has no element to attach it
        to. Map and Queue attach it to the element instead."""
        if returncode:
            self._failures.append(ChildError(describe_exit(channel.pid,
                                                         returncode),
                                           channel.pid, returncode))

    # -- limits ------------------------------------------------------------

    def unfinished(self):
        """Whether work is running or waiting."""
        return bool(self.readables) or bool(self.waiting)

    def busy(self):
        """Whether as many children run as the limit allows."""
        return self.limit is not None and len(self.readables) >= self.limit

    def add_wait(self, channel):
        """Wait until below the limit, then add ``channel``."""
        self.wait()
        self.add(channel)

    def wait(self):
        """Receive and store data until fewer than ``limit`` channels are
        active."""
        while self.busy():
            self.store()

    def finish(self):
        """Receive and store data until all work is done."""
        while self.unfinished():
            self.store()

    def store(self, timeout=None):
        """Hand the data of each ready channel to ``store_data`` (waiting up
        to ``timeout`` seconds for some) and start waiting work. A child
        that crashed raises ChildError here (after the others' data was
        stored)."""
        for channel in self.ready(timeout):
            channel._delivered += 1
            self.store_data(channel)
            self.start_waiting(channel)
        if self._failures:
            raise self._failures.pop(0)

    def store_data(self, channel):
        """Receive and keep the data of ``channel``: override this."""
        raise NotImplementedError("store_data")

    # -- starting children ---------------------------------------------------

    def start_waiting(self, channel):
        """After data arrived on ``channel``: start the next waiting work
        (on ``channel`` itself with reuse), or tell a reusable child to end
        when nothing waits."""
        if self.continuous:
            return
        if self.waiting and self.reuse:
            callable, args, kw = self.waiting.popleft()
            try:
                self.add(channel)
                channel.send((args, kw))
            except (BrokenPipeError, ValueError):
                # The child is gone: its work waits for another child.
                self.waiting.appendleft((callable, args, kw))
            return
        if self.waiting:
            # The slot frees when this channel's child ends (_ended), unless
            # there is room already: the limit is never exceeded.
            if not self.busy():
                self._start_next()
        elif self.reuse:
            try:
                channel.send(None)
            except (BrokenPipeError, ValueError):
                pass

    def _start_next(self):
        callable, args, kw = self.waiting.popleft()
        self.add(start(callable, *args, **kw))

    def start(self, callable, *args, **kw):
        """Start ``callable(channel, *args, **kw)`` in a new child and watch
        it; when ``limit`` children run, queue the call (never blocks)."""
        if self.busy() or self.waiting:
            self.waiting.append((callable, args, kw))
            return
        self.add(start(callable, *args, **kw))

    def create(self):
        """Fork a child watched by this exchange: returns the channel in the
        child and None in the parent. Waits for a free slot first."""
        self.wait()
        channel = create()
        if channel.pid == 0:
            return channel
        self.add(channel)
        return None

    def manage(self, callable):
        """A callable that runs ``callable`` in a child of this exchange
        each time it is called."""
        return ManagedCallable(callable, self)


class Map(Exchange):
    """Results in the order the work was started: indexable, sliceable and
    iterable; each access waits until the needed result is there. An
    element whose child raised or crashed raises when accessed."""

    def __init__(self, *args, **kw):
        self.channel_number = 0
        self.channels = {}  # channel -> index of its pending result
        self.results = []
        self.current_index = 0
        self._missing = 0  # results not there yet
        Exchange.__init__(self, *args, **kw)

    def _set(self, index, value):
        if self.results[index] is _UNDEF:
            self._missing -= 1
        self.results[index] = value

    def add(self, channel):
        Exchange.add(self, channel)
        self.channels[channel] = self.channel_number
        self.channel_number += 1

    def start(self, callable, *args, **kw):
        self.results.append(_UNDEF)
        self._missing += 1
        Exchange.start(self, callable, *args, **kw)

    def create(self):
        self.results.append(_UNDEF)
        self._missing += 1
        return Exchange.create(self)

    def __call__(self, callable, sequence):
        """Start ``callable`` on each element of ``sequence``."""
        wrapped = callable if isinstance(callable, MakeParallel) else \
            MakeParallel(callable)
        for i in sequence:
            self.start(wrapped, i)

    def store_data(self, channel):
        index = self.channels.pop(channel, None)
        try:
            value = channel.receive()
        except Exception as exc:
            value = _Error(exc)
        if index is None:  # more messages than work (continuous mode)
            self.results.append(value)
        else:
            self._set(index, value)

    def _child_ended(self, channel, returncode):
        index = self.channels.pop(channel, None)
        if index is not None and self.results[index] is _UNDEF:
            why = describe_exit(channel.pid, returncode)
            if not returncode:
                why += " without sending a result"
            self._set(index, _Error(ChildError(
                f"element {index}: {why}", channel.pid, returncode)))

    def _get(self, i):
        n = len(self.results)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("Map index out of range")
        while self.results[i] is _UNDEF:
            if not self.unfinished():
                raise ChildError(f"element {i}: no child is left to "
                                 "produce it")
            self.store()
            if not self._missing:
                self._reap_done()
        r = self.results[i]
        if type(r) is _Error:
            raise r.exc
        return r

    def _reap_done(self, within=2.0):
        """Every result is in: let the last children end and reap them
        now rather than leave zombies until the next call (waiting at most
        `within` seconds for a child that lingers after its result)."""
        deadline = time.monotonic() + within
        while self.unfinished():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.store(left)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(len(self)))]
        return self._get(i)

    def __len__(self):
        return len(self.results)

    def __iter__(self):
        return self

    def __next__(self):
        if self.current_index >= len(self.results):
            raise StopIteration
        i = self.current_index
        self.current_index += 1
        return self._get(i)

    next = __next__


class Queue(Exchange):
    """Results in the order they arrive; iteration ends when no work is
    running or waiting. An element whose child raised or crashed raises when
    its turn comes."""

    def __init__(self, *args, **kw):
        self.queue = collections.deque()
        Exchange.__init__(self, *args, **kw)

    def __call__(self, callable, sequence):
        """Start ``callable`` on each element of ``sequence``."""
        wrapped = callable if isinstance(callable, MakeParallel) else \
            MakeParallel(callable)
        for i in sequence:
            self.start(wrapped, i)

    def store_data(self, channel):
        try:
            self.queue.append(channel.receive())
        except Exception as exc:
            self.queue.append(_Error(exc))

    def _child_ended(self, channel, returncode):
        if returncode or (not channel._delivered and not self.continuous):
            why = describe_exit(channel.pid, returncode)
            if not returncode:
                why += " without sending a result"
            self.queue.append(_Error(ChildError(why, channel.pid,
                                                returncode)))

    def __iter__(self):
        return self

    def __next__(self):
        while not self.queue and self.unfinished():
            self.store()
        if not self.queue:
            raise StopIteration
        item = self.queue.popleft()
        if type(item) is _Error:
            raise item.exc
        return item

    next = __next__


from ._channels_pmap import pmap  # noqa: E402
