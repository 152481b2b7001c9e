"""How one `Pool.run` feeds its workers and collects their results.

Each worker has ``1 + worker_extra_pending_inputs`` inputs pending at a
time; a result frees its worker for the next input. When inputs are
retried (``retry=True``, the default) and no ``enqueue_fn`` decides what
goes where, a worker may have more inputs queued: up to `WINDOW` of them
and `WINDOW_BYTES` of pickled input, so that it never waits for the pool
between two calls (and a channel never fills up in both directions). The
first round still goes out in the order workers were added, and inputs
pending at a worker that dies are all given to the others (``retry``).
The pool waits on all its workers at once: the link of a process or
remote worker, a wake-up socket for thread workers.
"""
import collections
import math
import operator
import select
import time

from .utils import get_logger
from .persistent import PersistentWorker, WorkerClosedError

logger = get_logger("forkqueue.workers.pool")

#: Inputs and pickled bytes a worker may have queued beyond its one
#: pending input, when the pool may choose (see the module's doc).
WINDOW = 256
WINDOW_BYTES = 64 * 1024
#: A worker with a window is topped up once it has at most this many
#: inputs pending, not after every result: one message (and one wake-up of
#: the worker) per REFILL_AT results instead of one per result. (Once its
#: pace is known and its window shorter, at half its window.)
REFILL_AT = WINDOW // 2
#: While every worker has inputs queued ahead of it, the pool lets results
#: gather instead of waking for each (on a machine with no idle CPU, each
#: wake-up of the pool takes a worker's): it waits up to COALESCE_MAX_S
#: (cut short by a process worker that is idle or ended: see `_Run.pause`),
#: and at most half the time the shortest queue takes to run dry, from each
#: worker's pace measured while it had work (halved whenever a worker is
#: found idle, so an estimate can only err towards waking early). Not with
#: ``enqueue_fn`` or ``retry=False`` (no queue ahead), nor once the input is
#: exhausted. Below COALESCE_MIN_S it does not sleep.
COALESCE_MAX_S = 0.010
COALESCE_MIN_S = 0.0002
#: The first round of a run is sent in two messages per worker: the first
#: FIRST_ROUND inputs, then the rest.
FIRST_ROUND = 16
#: A worker whose pace is known has at most what it runs in
#: QUEUE_S queued; near the end of an input of known length, at most
#: what it runs in END_S (see `_Run.share`).
QUEUE_S = 3 * COALESCE_MAX_S
END_S = 0.004


class _Run:
    """The state of one ``Pool.run``."""

    def __init__(self, pool, sources, callback, enqueue_fn, extra,
                 return_results):
        self.pool = pool
        self.sources = sources
        self.callback = callback
        self.enqueue_fn = enqueue_fn
        self.extra = extra
        self.return_results = return_results
        self.closed = pool._closed
        self.pending = {id(w): collections.deque() for w in pool._workers}
        self.nbytes = {id(w): 0 for w in pool._workers}
        self.limit = 1 + extra
        self.auto = pool._retry and enqueue_fn is None
        # workers whose inputs may travel several to a message
        self.corkable = [w for w in pool._workers if enqueue_fn is None and
                         hasattr(w, "_cork") and
                         type(w).enqueue is PersistentWorker.enqueue]
        # their enqueue is not overridden: the pool does what it does
        # directly, without the per-call checks of the public method
        self.direct = {id(w) for w in self.corkable}
        # one iterator source (the common case) is read with its own
        # __next__ (see fill_direct)
        self.next1 = (sources[0].__next__ if len(sources) == 1 and
                      not callable(sources[0]) else None)
        self.npending = 0
        self.retries = collections.deque()
        self.depleted = False
        self.ret = []
        # per worker: when its results were last read, and its measured
        # time per call (None until measured)
        now = time.monotonic()
        self.last_read = {id(w): now for w in pool._workers}
        self.pace = dict.fromkeys(self.last_read)
        self._poll_key = None
        self._poll_state = None

    def live(self):
        return [w for w in self.pool._workers if id(w) not in self.closed]

    def go(self):
        self.first_round()
        while self.npending and self.live():
            for w in self.wait_ready():
                self.service(w)
        ok = self.depleted and not self.npending and not self.retries
        return ok, self.ret

    def abandon(self):
        """An exception is leaving ``run``: no more input, and the inputs
        the workers already have are waited for and their results dropped,
        so that none comes out of a later ``run``."""
        self.depleted = True
        self.callback = None
        self.enqueue_fn = None
        self.return_results = False
        self.ret = []
        try:
            while self.npending and self.live():
                self.retries.clear()
                for w in self.wait_ready():
                    self.service(w)
        except Exception:  # noqa: BLE001 (the first exception is the one)
            pass

    def has_room(self, w):
        n = len(self.pending[id(w)])
        if n < self.limit:
            return True
        return self.auto and n < WINDOW and self.nbytes[id(w)] < WINDOW_BYTES

    def first_round(self):
        """Inputs for every worker, one at a time in the order they were
        added, until each has no room: sent as one message per worker
        once each has `FIRST_ROUND` of them (so that no worker waits for
        the whole round to be pickled), then one more for the rest."""
        for quota in (FIRST_ROUND, None):
            for w in self.corkable:
                w._cork()
            try:
                more = self._first_round(quota)
            finally:
                for w in self.corkable:
                    self.uncork(w)
            if not more:
                return

    def _first_round(self, quota):
        """One input per worker per turn while it has room (and fewer than
        ``quota`` pending, if given); False once the input ran out."""
        if (self.auto and self.next1 is not None and not self.retries and
                len(self.direct) == len(self.pool._workers)):
            return self._first_round_direct(quota)
        while True:
            progressed = False
            for w in self.pool._workers:
                k = id(w)
                if k in self.closed or not self.has_room(w) or (
                        quota is not None and
                        len(self.pending[k]) >= max(quota, self.limit)):
                    continue
                before = len(self.pending[k])
                if not self.try_enqueue(w):
                    return False
                progressed |= len(self.pending[k]) > before
            if not progressed:
                return True

    def _first_round_direct(self, quota):
        """`_first_round` when every worker is windowed and corked and the
        input is one iterator: what `try_enqueue` does per input, in one
        loop (as `fill_direct`); a worker that stopped accepting goes
        through `try_enqueue`."""
        nxt = self.next1
        cb = self.callback
        closed = self.closed
        nbytes = self.nbytes
        limit = self.limit
        most = None if quota is None else max(quota, limit)
        entries = [(w, id(w), self.pending[id(w)]) for w in self.pool._workers]
        while True:
            progressed = False
            for w, k, q in entries:
                n = len(q)
                if k in closed or (most is not None and n >= most) or (
                        n >= limit and (n >= WINDOW or
                                        nbytes[k] >= WINDOW_BYTES)):
                    continue  # its quota, or no room (see has_room)
                if w._closed or not w._accepting():
                    if not self.try_enqueue(w):
                        return False
                    progressed |= len(q) > n
                    continue
                try:
                    inp = (nxt(),)
                except StopIteration:
                    self.depleted = True
                    self.no_enqueue(w)
                    return False
                size = w._in_size
                if size is None:  # the worker's first: its size, once
                    w._p_send_input(inp, {})
                    size = w._in_size
                else:
                    w._corked.append((inp, {}))
                q.append((inp, size))
                nbytes[k] += size
                self.npending += 1
                w._enqueued += 1
                if cb:
                    cb(w, "enqueued")
                progressed = True
            if not progressed:
                return True

    def fill(self, w):
        k = id(w)
        if self.auto and k in self.direct:
            return self.fill_direct(w, k)
        q = self.pending[k]
        nbytes = self.nbytes
        closed = self.closed
        limit = self.limit
        corked = k in self.direct
        if corked:
            w._cork()
        try:
            while k not in closed:
                n = len(q)
                if n >= limit and not (self.auto and n < WINDOW and
                                       nbytes[k] < WINDOW_BYTES):
                    return  # no room (see has_room)
                if not self.try_enqueue(w) or len(q) == n:
                    return
        finally:
            if corked:
                self.uncork(w)

    def fill_direct(self, w, k):
        """`fill` for a windowed worker whose ``enqueue`` the pool
        bypasses: what `try_enqueue` does for each input, in one loop (the
        inputs pickled into the worker's cork: one message for them all),
        up to the worker's `share`. Retried inputs, callable or several
        sources, an exhausted input and a closed worker go through
        `try_enqueue`."""
        q = self.pending[k]
        cap = self.share(k)[0]
        if len(q) >= cap or k in self.closed:
            return
        limit = self.limit
        nbytes = self.nbytes
        cb = self.callback
        nxt = self.next1
        w._cork()
        corked = w._corked
        size = w._in_size
        try:
            while k not in self.closed:
                n = len(q)
                if n >= cap or (n >= limit and nbytes[k] >= WINDOW_BYTES):
                    return
                if self.retries or nxt is None or self.depleted or \
                        w._closed or not w._accepting():
                    if not self.try_enqueue(w) or len(q) == n:
                        return
                    continue
                try:
                    inp = (nxt(),)
                except StopIteration:
                    self.depleted = True
                    self.no_enqueue(w)
                    return
                if size is None:  # the worker's first: its size, once
                    w._p_send_input(inp, {})
                    size = w._in_size
                else:
                    corked.append((inp, {}))
                q.append((inp, size))
                nbytes[k] += size
                self.npending += 1
                w._enqueued += 1
                if cb:
                    cb(w, "enqueued")
        finally:
            if k in self.closed:
                corked.clear()  # seen dead: its inputs are retried
            self.uncork(w)

    def uncork(self, w):
        """Sends what ``w``'s cork holds (see `LinkedWorker._uncork`); an
        input that cannot be pickled is dropped as `try_enqueue` drops
        it (it is not pending, the error is logged)."""
        n, failed = w._uncork()
        if not failed:
            return
        k = id(w)
        q = self.pending[k]
        # the cork's inputs are the last n pending at w, in order
        first = len(q) - n
        for i, e in reversed(failed):
            inp, size = q[first + i]
            del q[first + i]
            self.nbytes[k] -= size
            self.npending -= 1
            w._enqueued -= 1
            logger.error("Enqueueing failed for current input and worker "
                         "{!r} but the worker is still alive - will try "
                         "next input", w, exc_info=e)

    def share(self, k):
        """``(cap, near_end)``: how many inputs windowed worker ``k`` may
        have pending, and whether the end of the input is near. The cap is
        `WINDOW`, and once the worker's pace is measured, what it runs in
        `QUEUE_S` (long calls are not queued by the dozen at one worker
        while another may run dry). Near the end of an input whose length
        is known (a list, a range, their iterators:
        ``operator.length_hint``) and with two live workers or more, less
        again: the worker's share of what is left and pending (the workers
        run dry together), and what it runs in `END_S` (once the input
        runs out, results are read as they come, a wake-up of the pool
        each: few should be left then). Never below ``1 +
        worker_extra_pending_inputs``."""
        cap = WINDOW
        p = self.pace.get(k)
        if p:
            cap = min(cap, math.ceil(QUEUE_S / p))
        if self.depleted:
            left = len(self.retries)
        elif self.next1 is None:
            return max(self.limit, cap), False
        else:
            left = operator.length_hint(self.sources[0], -1)
            if left < 0:
                return max(self.limit, cap), False
            left += len(self.retries)
        if left >= cap * len(self.pending):
            return max(self.limit, cap), False
        nlive = sum(1 for x in self.pending if x not in self.closed)
        if nlive < 2:
            return max(self.limit, cap), False
        cap = min(cap, math.ceil((left + self.npending) / nlive))
        if p:
            cap = min(cap, math.ceil(END_S / p))
        return max(self.limit, cap), True

    def refill_at(self, k, cap):
        """A windowed worker whose queue holds ``cap`` is topped up once it
        is down to half of it, or, once its pace is known, to what is left
        after the longest sleep of the pool (`COALESCE_MAX_S`) if that is
        more: a pool woken late (the machine is busy) still finds work
        queued, and it tops up at most once per wake-up."""
        p = self.pace.get(k)
        at = cap // 2
        if p:
            at = max(at, cap - math.ceil(COALESCE_MAX_S / p))
        return max(at, self.limit - 1)

    def _poller(self):
        """A poll set over the live workers (rebuilt when one dies)."""
        key = len(self.closed)
        if self._poll_key == key:
            return self._poll_state
        fds = {}
        threads = []
        gone = []
        rings = []
        for w in self.live():
            if w.is_thread:
                threads.append(w)
            else:
                fd = w._pool_fileno()
                if fd is not None and fd >= 0:
                    fds.setdefault(fd, []).append(w)
                    ring = getattr(w, "_ring", None)
                    if ring is not None:
                        rings.append((w, ring))
                else:
                    gone.append(w)  # already seen dead elsewhere
        if gone:
            return None, gone, None, None, None
        poller = select.poll()
        wake = self.pool._wake_r
        if threads and wake is not None:
            poller.register(wake.fileno(), select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        self._poll_key = key
        self._poll_state = (poller, fds, threads, wake, rings)
        return self._poll_state

    def coalesce_delay(self, live):
        """How long results may gather before the pool reads them (see
        COALESCE_MAX_S); 0: read them as they come."""
        if not self.auto or self.depleted or self.retries:
            return 0
        d = COALESCE_MAX_S
        pending, pace = self.pending, self.pace
        for w in live:
            p = pace.get(id(w))
            if p is None:
                return 0
            d = min(d, len(pending[id(w)]) * p / 2)
        return d if d >= COALESCE_MIN_S else 0

    def pause(self, d, poller, noisy):
        """Lets results gather for ``d`` seconds; returns the poll events
        that cut it short (a message: a process worker idle or ended).
        Thread and remote workers (``noisy``) wake the pool per result:
        with them, a plain sleep."""
        if noisy:
            time.sleep(d)
            return ()
        return poller.poll(d * 1000)

    def measure(self, k, n):
        """``n`` results of worker ``k`` were just read."""
        now = time.monotonic()
        sample = (now - self.last_read[k]) / n
        self.last_read[k] = now
        p = self.pace.get(k)
        if self.pending[k]:
            # it had work all along: that is its pace
            self.pace[k] = sample if p is None else (p + sample) / 2
        else:
            # it may have waited for work: it is faster than it looked
            self.pace[k] = (sample if p is None else min(p, sample)) / 2

    def wait_ready(self):
        """Workers that may have results or have ended. Results in a
        worker's ring (process workers) make no noise on its descriptor:
        the rings are looked at first, and armed before a poll that would
        block (the worker's next result then sends a wake-up)."""
        poller, fds, threads, wake, rings = self._poller()
        if poller is None:
            self._poll_key = None
            return fds  # workers already dead: service them now
        events = ()
        if self.auto and not self.depleted:
            d = self.coalesce_delay([w for ws in fds.values() for w in ws] +
                                    threads)
            if d:
                # only process workers (rings): their links are quiet
                noisy = bool(threads) or len(rings) < sum(map(len,
                                                              fds.values()))
                events = self.pause(d, poller, noisy)
        ready = [w for w, ring in rings if ring.unread()]
        if not ready and not events:
            # Once the input is exhausted, a worker tells when it is idle
            # (see LinkedWorker._next_input_from): no wake-up per result.
            armed = rings and not (self.auto and self.depleted and
                                   not self.retries)
            if armed:
                ready = [w for w, ring in rings if ring.arm()]
            events = poller.poll(0 if ready else 1000)
            if armed:
                for _, ring in rings:
                    ring.disarm()
        for fd, _ in events:
            if wake is not None and fd == wake.fileno():
                try:
                    while wake.recv(4096):
                        pass
                except OSError:
                    pass
                ready.extend(threads)
            else:
                ready.extend(w for w in fds.get(fd, ()) if w not in ready)
        if not ready:  # nothing in a second: look at everyone
            ready = self.live()
        return ready

    def service(self, w):
        results, ended = w._pool_ready()
        k = id(w)
        if results:
            q = self.pending.get(k)
            if q:
                self.take_results(w, q, results)
            if k in self.last_read:
                self.measure(k, len(results))
        if ended and k not in self.closed:
            self.death(w)
        elif results and k not in self.closed:
            if self.auto:
                n = len(self.pending[k])
                if k in self.direct:
                    cap, near_end = self.share(k)
                    if n < cap and (near_end or n <= self.refill_at(k, cap)):
                        self.fill_direct(w, k)
                elif n <= max(REFILL_AT, self.limit - 1):
                    self.fill(w)
            else:
                for _ in results:
                    self.try_enqueue(w)

    def take_results(self, w, q, results):
        """`new_result` (without refilling) for each of ``results`` while
        ``w`` has inputs pending, in one loop."""
        k = id(w)
        cb = self.callback
        ret = self.ret if self.return_results else None
        nb = 0
        done = 0
        it = iter(results)
        try:
            for r in it:
                if not q:
                    break
                nb += q.popleft()[1]
                done += 1
                if cb:
                    cb(w, "finished", r)
                if ret is not None:
                    ret.append(r)
        except BaseException:
            # The callback raised: the rest of the batch was read from the
            # worker already, so its inputs are done too (else a later
            # wait for them would never end).
            for r in it:
                if not q:
                    break
                nb += q.popleft()[1]
                done += 1
            raise
        finally:
            self.npending -= done
            self.nbytes[k] -= nb

    def next_inputs(self, w):
        if self.retries:
            return True, True, self.retries.popleft()
        if self.depleted:
            return False, False, None
        try:
            return True, False, tuple(
                [s(w) if callable(s) else next(s) for s in self.sources])
        except StopIteration:
            self.depleted = True
            return False, False, None

    def unused(self, data, from_retries):
        if not self.pool._retry:
            return
        if from_retries:
            self.retries.appendleft(data)
        else:
            self.retries.append(data)

    def no_enqueue(self, w):
        if not self.pending[id(w)] and self.callback:
            self.callback(w, "idle")

    def try_enqueue(self, w):
        """Gives ``w`` its next input; False when there is none."""
        k = id(w)
        while True:
            has, from_retries, inp = self.next_inputs(w)
            if not has:
                self.no_enqueue(w)
                return False
            if k in self.closed:
                logger.warning("Requested to enqueue new data to {!r} but the "
                               "worker does not accept more data (has either "
                               "died or is already closed) - enqueue will be "
                               "ignored", w)
                self.unused(inp, from_retries)
                return True
            try:
                if self.enqueue_fn is not None:
                    if not self.enqueue_fn(w, *inp):
                        self.no_enqueue(w)
                        self.unused(inp, from_retries)
                        return True
                elif k in self.direct:
                    if w._closed or not w._accepting():
                        raise WorkerClosedError(w)
                    w._p_send_input(inp, {})
                    w._enqueued += 1
                else:
                    w.enqueue(*inp)
            except Exception:  # noqa: BLE001
                if not _alive_soon(w):
                    self.death(w, "while enqueueing")
                    self.unused(inp, from_retries)
                    return True
                logger.exception("Enqueueing failed for current input and "
                                 "worker {!r} but the worker is still alive - "
                                 "will try next input", w)
                continue
            size = getattr(w, "_last_input_size", 0)
            self.npending += 1
            self.pending[k].append((inp, size))
            self.nbytes[k] += size
            if self.callback:
                self.callback(w, "enqueued")
            return True

    def new_result(self, w, result, refill=True):
        k = id(w)
        self.npending -= 1
        _, size = self.pending[k].popleft()
        self.nbytes[k] -= size
        if self.callback:
            self.callback(w, "finished", result)
        if self.return_results:
            self.ret.append(result)
        if refill and k not in self.closed:
            if self.auto:
                self.fill(w)
            else:
                self.try_enqueue(w)

    def death(self, w, when=None):
        if when:
            logger.warning("{!r} died {}", w, when)
        else:
            logger.warning("{!r} died", w)
        k = id(w)
        lost = self.pending.setdefault(k, collections.deque())
        self.nbytes[k] = 0
        if self.pool._retry:
            self.retries.extend(inp for inp, _ in lost)
        self.npending -= len(lost)
        lost.clear()
        self.closed.add(k)
        if self.callback:
            self.callback(w, "died")
        while self.retries:
            idle = next((x for x in self.live() if self.has_room(x)), None)
            if idle is None:
                break
            before = self.npending
            self.try_enqueue(idle)
            if self.npending == before:
                break


def _alive_soon(w, limit=1.0):
    """False if ``w`` is dead or dies within ``limit`` seconds (a failed
    enqueue usually means it is dying)."""
    deadline = time.monotonic() + limit
    while w.is_alive():
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.01)
    return False
