"""pmap of forkqueue.channels: a Map computed by a bounded set of reusable
children.

pprocess forks one process per element. Here at most ``limit`` children
(default: the number of CPUs) each run spans of elements: the elements and
the callable are inherited through fork (never pickled); only a span's
bounds go to a child and its results come back, one message per span. The
first span of each child has one element; later ones are sized from the
measured time per element (about 5 ms of work, and never more than a
quarter of what is left per child unless that is under 0.2 ms of work), so
one-second elements still run one per child and tiny ones in a few large
batches.

The parent keeps a span's results with one slice assignment, and a slice
of the Map (``m[:]``, ``m[a:b]``) is one slice of the results once the
spans under it are in: no Python call per element on either path, which
for tiny elements is most of the parent's work.

A child that dies loses the span it was running (results go back one
message per span). That span runs again split in two halves, and a half
that crashes again is split again, until the crashing element runs alone
and is the one that reports the crash: log2(span) more crashes, not one
fork per element. Spans sent to the child but not started run again as
they were. Elements of a crashed span that had been computed run twice.
"""

import collections
import pickle
import time

from .channels import (ChildError, MakeParallel, _Failure, describe_exit,
                       get_number_of_cores, start)
from ._channels_exchange import Exchange, Map, _Error, _UNDEF, check_limit

_TARGET_SPAN_S = 0.005
_MIN_SPAN_S = 0.0002  # the tail's imbalance a span may add
_DEPTH = 2  # spans in flight per child


def _span_worker(channel, fn, items):
    """In a child: run spans until told to stop (None)."""
    while True:
        span = channel.receive()
        if span is None:
            return
        first, count = span
        t0 = time.perf_counter()
        out = []
        errors = None
        for k in range(first, first + count):
            try:
                out.append(fn(items[k]))
            except BaseException as exc:  # SystemExit too: this element's
                out.append(None)
                errors = errors or {}
                errors[k - first] = _Failure(exc)
        elapsed = time.perf_counter() - t0
        try:
            channel.send((first, out, errors, elapsed))
        except Exception:
            # A result that cannot be pickled is that element's error.
            errors = errors or {}
            for j, r in enumerate(out):
                try:
                    pickle.dumps(r)
                except Exception as exc:
                    out[j] = None
                    errors[j] = _Failure(exc)
            channel.send((first, out, errors, elapsed))


class _SpanMap(Map):
    """The Map that pmap returns."""

    def __init__(self, callable, sequence, limit):
        Map.__init__(self, limit=limit)
        if isinstance(callable, MakeParallel):
            callable = callable.callable
        self._fn = callable
        self._items = list(sequence)
        self.results = [_UNDEF] * len(self._items)
        self._missing = len(self._items)
        self._retry = collections.deque()  # spans to run again, first
        self._next = 0  # first element not yet in a span
        self._spans = {}  # child's channel -> deque of spans it was sent
        self._quitting = set()  # children told to end
        self._crashed = False  # a child died with spans of ours
        self._per_item = None  # measured seconds per element
        self._t_sum = self._n_sum = 0.0  # its decaying sums
        self._upto = 0  # every result before this index is in
        self._done = {}  # first index -> length, of spans in past _upto
        self._errors = []  # indices whose slot holds an _Error
        self._dispatch()

    def add(self, channel):
        Exchange.add(self, channel)  # no result number: spans say where

    def unfinished(self):
        return bool(self._spans) or bool(self._retry) or \
            self._next < len(self._items)

    def _take_span(self):
        if self._retry:
            return self._retry.popleft()
        left = len(self._items) - self._next
        if left <= 0:
            return None
        size = 1
        if self._per_item is not None:
            per = max(self._per_item, 1e-9)
            share = max(left // (4 * self.limit), int(_MIN_SPAN_S / per))
            size = max(1, min(int(_TARGET_SPAN_S / per), share))
        span = (self._next, min(size, left))
        self._next += span[1]
        return span

    def _dispatch(self):
        # Two spans in flight per child: it starts the next one while the
        # parent is still busy with (or not yet scheduled for) its last
        # result. Once nothing is left to hand out, a child is told to end
        # right behind its last span, so that it exits while the others
        # finish; after a crash, children stay until their spans are in, to
        # run the halves of the crashed span without more forks.
        for ch, spans in list(self._spans.items()):
            if ch in self._quitting:
                continue
            while len(spans) < _DEPTH:
                span = self._take_span()
                if span is None and spans and self._crashed:
                    break
                try:
                    ch.send(span)
                except (BrokenPipeError, ValueError):
                    if span:
                        self._give_back(span)
                    break
                if span is None:
                    self._quitting.add(ch)
                    break
                spans.append(span)
        while len(self._spans) < self.limit:
            span = self._take_span()
            if span is None:
                break
            ch = start(_span_worker, self._fn, self._items)
            self.add(ch)
            self._spans[ch] = collections.deque([span])
            try:
                ch.send(span)
            except (BrokenPipeError, ValueError):
                pass  # it died at once: ready() will see it end

    def _give_back(self, span):
        self._retry.appendleft(span)

    def store(self, timeout=None):
        self._dispatch()
        for ch in self.ready(timeout):
            first, out, errors, elapsed = ch.receive()
            # A span's results arrive once (a span given back after a
            # crash had sent none), so its slots are all still missing.
            n = len(out)
            self.results[first:first + n] = out
            self._missing -= n
            for j, failure in (errors or {}).items():
                self.results[first + j] = _Error(failure.exception())
                self._errors.append(first + j)
            self._span_in(first, n)
            if n:
                # Weighted by elements, halved at each span: a child's
                # first (cold) element does not make the next spans small.
                self._t_sum = 0.5 * self._t_sum + elapsed
                self._n_sum = 0.5 * self._n_sum + n
                self._per_item = self._t_sum / self._n_sum
            spans = self._spans.get(ch)
            if spans:
                spans.popleft()
        self._dispatch()

    def _span_in(self, first, n):
        """The results of first .. first + n - 1 are in."""
        self._done[first] = n
        while self._upto in self._done:
            self._upto += self._done.pop(self._upto)

    def _error_in(self, lo, hi):
        return any(lo <= e < hi for e in self._errors)

    def __getitem__(self, i):
        if not isinstance(i, slice):
            return self._get(i)
        start, stop, step = i.indices(len(self.results))
        # The results come in whole spans: wait until those up to the
        # slice's end are in, then take it in one piece. Element by element
        # (as Map does) when an error or a lost element must raise, in index
        # order, or for a slice that starts past the results in.
        while step == 1 and start <= self._upto < stop:
            if self._error_in(start, self._upto) or not self.unfinished():
                break
            self.store()
            if not self._missing:
                self._reap_done()
        if step == 1 and (start >= stop or self._upto >= stop) and \
                not self._error_in(start, stop):
            return self.results[start:stop]
        return Map.__getitem__(self, i)

    def _child_ended(self, channel, returncode):
        self._quitting.discard(channel)
        spans = self._spans.pop(channel, None)
        if not spans:
            return  # ended between spans: nothing of ours was lost
        self._crashed = True
        # spans[0] was running: one of its elements crashed. The others
        # had not started: they run again as they are.
        for span in list(spans)[:0:-1]:
            self._give_back(span)
        first, count = spans[0]
        if count == 1:
            self._set(first, _Error(ChildError(
                f"element {first}: {describe_exit(channel.pid, returncode)}",
                channel.pid, returncode)))
            self._errors.append(first)
            self._span_in(first, 1)
            return
        # Halve it and run both halves again (each in a child of its own
        # turn): the crashing element is found in log2(count) crashes.
        half = count // 2
        self._give_back((first + half, count - half))
        self._give_back((first, half))


def pmap(callable, sequence, limit=None):
    """Apply ``callable`` to every element of ``sequence`` in children (at
    most ``limit`` at once; None: the number of CPUs) and return a Map of
    the results in input order, filled as they are needed."""
    check_limit("pmap", limit)
    if limit is None:
        limit = get_number_of_cores()
    return _SpanMap(callable, sequence, limit)
