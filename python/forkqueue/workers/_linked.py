"""What process and remote workers share: a link carrying tagged messages
(see `_wire`), read on the parent side into a results buffer and a final
outcome, and the worker-side main that runs ``do_work`` and reports.

Graceful termination inside a worker process is a signal (SIGUSR2, sent to
the worker's main thread) whose handler raises `WorkerTerminatedError`:
it interrupts the target wherever it is, including a wait for input. It
is only armed while the target runs, and held back while a result is being
sent, so a message is never cut in half.

A terminate request reaches the worker as a T_TERM message (remote kind,
read by its reader thread) or as REQUEST_SIGNAL (process kind, and a
remote server stopping its children), a realtime signal blocked in every
thread and taken by a watcher thread. Either way a helper thread counts
the request and sends TERM_SIGNAL to the main thread again and again
until the handler has acted on it: CPython acts on a signal only at its
next check, so one signal landing just before a blocking call starts
would wait for that call to return. The handler acts once per counted
request and ignores the re-sends that arrive after it did.
"""
import collections
import itertools
import queue
import signal
import sys
import threading
import time
import types

from . import _wire
from ._wire import (T_ARGS, T_AUX, T_CLOSE, T_FINAL, T_INPUT, T_INPUTS,
                    T_RESULT, T_RESULTS, T_STARTED, T_TERM, T_WAKE, dumps,
                    loads)
from .persistent import _END, PersistentWorker
from .utils import setproctitle
from .worker import Worker, WorkerTerminatedError, _check_timeout

TERM_SIGNAL = signal.SIGUSR2
#: "Terminate, please", sent to a worker process (any thread may receive
#: it: a realtime signal, so two requests never merge into one).
REQUEST_SIGNAL = signal.SIGRTMIN + 3


class LinkedWorker(Worker):
    """Base of the process and remote kinds (not public)."""

    def __init__(self, target, **kwargs):
        self._link = None
        self._is_child = False
        self._seen_started = False
        self._final = None
        self._rq = collections.deque()
        self._aux = collections.deque()
        self._terminable = False
        self._sending = False
        self._term_pending = False
        self._corked = None
        self._held = []
        self._in_q = collections.deque()
        #: the process kind's results ring (see _wire), None for the others
        self._ring = None
        super().__init__(target, **kwargs)

    @property
    def is_child(self):
        return self._is_child

    def _reset_for_restart(self):
        super()._reset_for_restart()
        self._link = None
        self._seen_started = False
        self._final = None
        self._rq = collections.deque()
        self._aux = collections.deque()
        self._ring = None

    # ---- parent side: reading -------------------------------------------------

    def _dispatch(self, data):
        tag = data[0]
        ring = self._ring
        if tag == T_RESULT:
            if ring is not None:
                # a result too large for the ring: it comes after what the
                # ring holds up to its marker
                ring.take(self._rq.append, self._loads)
                ring.skip_marker()
            self._rq.append(self._loads(memoryview(data)[1:]))
        elif tag == T_WAKE:
            if ring is not None:
                ring.take(self._rq.append, self._loads)
        elif tag == T_RESULTS:
            self._rq.extend(self._loads(memoryview(data)[1:]))
        elif tag == T_STARTED:
            self._host, self._pid, self._tid = loads(memoryview(data)[1:])
            self._seen_started = True
        elif tag == T_FINAL:
            if ring is not None:
                ring.take(self._rq.append, self._loads, True)
            self._final = _wire.decode_final(data, self._user_state)
        elif tag == T_AUX:
            self._aux.append(loads(memoryview(data)[1:]))
        else:
            raise ConnectionError(f"unexpected message tag {tag!r} from "
                                  f"{self!r}")

    _loads = staticmethod(loads)

    def _read(self, timeout):
        """Reads one message (TimeoutError if none in time); False at EOF."""
        data = self._link.recv(timeout)
        if data is None:
            return False
        self._dispatch(data)
        return True

    def _drain(self):
        """Reads what is ready now, without blocking."""
        link = self._link
        while not link.eof and (link.buffered() or link.ready()):
            try:
                if not self._read(0):
                    break
            except TimeoutError:
                break

    def _finish(self):
        """The worker is over: publish its outcome and state."""
        if self._final is not None:
            graceful, value, state = self._final
            self._outcome = (graceful, value)
            self._user_state = state
        else:
            self._outcome = (False, None)
        self._dead = True
        self._link_closed()

    def _link_closed(self):
        pass

    # ---- parent side: persistent primitives ----------------------------------

    def _p_send_input(self, args, kwargs):
        if self._corked is not None:
            # pickled at _uncork, all together
            self._corked.append((args, kwargs))
            size = self._in_size
            if size is None:
                try:
                    size = len(self._dumps((args, kwargs)))
                except Exception:  # noqa: BLE001 (_uncork reports it)
                    size = 64
                self._in_size = size
            self._last_input_size = size
            return
        data = bytes([T_INPUT]) + self._dumps((args, kwargs))
        self._link.send(data)
        self._last_input_size = len(data)

    #: bytes per input in the last corked message (an estimate for the
    #: pool's WINDOW_BYTES; None until known)
    _in_size = None

    def _cork(self):
        """Pool helper: inputs enqueued until `_uncork` go in one message.
        The cork holds ``(args, kwargs)`` pairs (the pool may append to
        ``_corked`` itself)."""
        self._corked = []

    def _uncork(self):
        """Sends what was corked, pickled at once: an L message (the
        positional arguments alone) when no input has keyword arguments.
        Returns ``(n, failed)``: how many inputs the cork held and, for
        those that could not be pickled (not sent), ``(index, exception)``
        pairs."""
        corked, self._corked = self._corked, None
        if not corked:
            return 0, ()
        failed = ()
        dumps = self._dumps
        try:
            if len(corked) == 1:
                data = bytes([T_INPUT]) + dumps(corked[0])
            elif not any([kw for _, kw in corked]):
                data = bytes([T_ARGS]) + dumps([a for a, _ in corked])
            else:
                data = bytes([T_INPUTS]) + dumps([dumps(x) for x in corked])
        except Exception:  # noqa: BLE001 (anything pickle may raise)
            data = None
        if data is None:  # (out of the handler: no chained traceback)
            data, failed = self._pickle_each(corked)
        if data is not None:
            self._in_size = max(1, len(data) // (len(corked) - len(failed)))
            try:
                self._link.send(data)
            except OSError:
                pass  # dead: the pool sees it end and retries its pending
        return len(corked), failed

    def _pickle_each(self, corked):
        """`_uncork`'s way when the batch cannot be pickled: each input on
        its own; the message of those that can be, and the failures."""
        dumps = self._dumps
        good, failed = [], []
        for i, item in enumerate(corked):
            try:
                good.append(dumps(item))
            except Exception as e:  # noqa: BLE001
                failed.append((i, e))
        if not good:
            return None, failed
        return bytes([T_INPUTS]) + dumps(good), failed

    _dumps = staticmethod(dumps)

    def _p_send_close(self):
        if not self._dead:
            self._link.send(bytes([T_CLOSE]))

    def _p_fetch(self, block, timeout):
        deadline = None
        if block and timeout is not None:
            deadline = time.monotonic() + timeout
        ring = self._ring
        while True:
            if self._rq:
                return self._rq.popleft()
            if ring is not None and self._ring_fetch():
                continue
            if self._final is not None or self._link is None or \
                    self._link.eof:
                return _END
            if not block:
                left = 0
            elif deadline is None:
                left = None
            else:
                left = max(0.0, deadline - time.monotonic())
            if ring is not None and ring.arm():
                ring.disarm()  # a result came meanwhile
                continue
            try:
                self._read(left)
            except TimeoutError:
                raise queue.Empty from None
            finally:
                if ring is not None:
                    ring.disarm()

    def _ring_fetch(self):
        """Parent side: takes what the ring holds (everything once the
        worker is over) into the results; True if it got any."""
        rq = self._rq
        n = len(rq)
        link = self._link
        over = self._final is not None or link is None or link.eof
        self._ring.take(rq.append, self._loads, over)
        return len(rq) > n

    def _accepting(self):
        return not self._dead and self._final is None and not self._link.eof

    def _pool_fetch_ready(self):
        # Everything ready, including what the link has buffered already:
        # the pool's poll only sees what is still in the kernel. Results
        # (the common message) are decoded here, the rest by _dispatch. A
        # ChannelLink's channel is read with its own recv, one call per
        # message, until it has nothing (TimeoutError).
        link = self._link
        rq = self._rq
        loads = self._loads
        ring = self._ring
        if ring is not None:
            # results are in the ring; the channel has a message now and
            # then (a large result, the end, a wake-up)
            ring.take(rq.append, loads)
            read = False
            while self._final is None and link.ready():
                try:
                    data = link.recv(0)
                except TimeoutError:
                    break  # part of a large message: the rest comes later
                if data is None:
                    break
                self._dispatch(data)
                read = True
            if read or link.eof:
                self._ring_fetch()
            out = list(rq)
            rq.clear()
            return out, self._final is not None or link.eof
        ch = getattr(link, "ch", None)
        recv = link.recv if ch is None else ch.recv
        while self._final is None and not link.eof:
            if ch is None and not link.ready():
                break
            try:
                data = recv(0)
            except TimeoutError:
                break
            if data is None:
                link.eof = True
                break
            if data[0] == T_RESULT:
                rq.append(loads(memoryview(data)[1:]))
            else:
                self._dispatch(data)
        out = list(rq)
        rq.clear()
        return out, self._final is not None or link.eof

    def _pool_fileno(self):
        """The descriptor to poll, None once the worker is known dead."""
        if self._link is None or self._dead:
            return None
        return self._link.fileno()

    # ---- worker side ---------------------------------------------------------

    def _child_setup(self, link):
        """First thing in the worker process, before any user code."""
        self._is_child = True
        self._link = link
        self._host, self._pid, self._tid = Worker.get_current_id()
        self._main_ident = threading.get_ident()
        self._child_state = self._user_state
        self._terminable = False
        self._term_pending = False
        self._term_asked = 0  # requests counted (see _term_requested)
        self._term_done = 0  # requests the handler acted on
        self._term_lock = threading.Lock()  # between requesting threads
        signal.signal(TERM_SIGNAL, self._on_term_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        # Blocked here, before any other thread exists (they inherit the
        # mask), so only the watcher ever takes it: never the default
        # action (the end of the process), never a thread not watching.
        signal.pthread_sigmask(signal.SIG_BLOCK, {REQUEST_SIGNAL})
        threading.Thread(target=self._watch_requests,
                         args=(self._main_ident,), daemon=True,
                         name="forkqueue terminate").start()
        if self._set_names:  # as pyworkers: only with the setproctitle package
            setproctitle(self._name, self)

    def _started_message(self):
        return bytes([T_STARTED]) + dumps((self._host, self._pid, self._tid))

    def _on_term_signal(self, signum, frame):
        asked = self._term_asked
        if self._term_done >= asked:
            return  # a re-send for a request already acted on
        self._term_done = asked
        if not self._terminable or self._sending:
            # not running the target yet, or mid-message: raised later
            self._term_pending = True
            return
        self._release_self()
        raise WorkerTerminatedError()

    def _watch_requests(self, main):
        """Worker side, the watcher thread: each REQUEST_SIGNAL is a
        terminate request for the main thread."""
        while True:
            signal.sigwaitinfo({REQUEST_SIGNAL})
            self._term_requested(main)

    def _term_requested(self, main):
        """Worker side, in a thread other than the main one: counts a
        terminate request and signals the main thread (``main``, an
        ident) again and again until the TERM_SIGNAL handler has acted on
        it. One signal is not enough: CPython runs the handler only at
        its next check, and a signal that lands after the last check but
        before a blocking call starts (``time.sleep``, a wait) is acted on
        only when that call returns, maybe never: the request would be
        lost. The re-sends stop once the handler ran for this request, and
        the handler ignores any that arrive later, so a target catching
        `WorkerTerminatedError` gets it once per request."""
        self._resignal(main, self._count_term_request())

    def _count_term_request(self):
        """Worker side: counts a terminate request; returns its number."""
        with self._term_lock:
            self._term_asked += 1
            return self._term_asked

    def _term_acted(self):
        """Worker side, main thread: a request was acted on without the
        handler (read as an input): no signal for it need come."""
        self._term_done = min(self._term_done + 1, self._term_asked)

    def _resignal(self, main, mine):
        """Signals the main thread until request ``mine`` was acted on."""
        delay = 0.005
        while self._term_done < mine:
            try:
                signal.pthread_kill(main, TERM_SIGNAL)
            except (OSError, ValueError):  # the main thread is gone
                return
            time.sleep(delay)  # a retry interval, not a synchronisation
            delay = min(delay * 2, 0.1)

    def _child_run(self):
        """Runs the job; returns ``(graceful, value_or_error)``."""
        outcome = None
        try:
            try:
                self._terminable = True
                if self._term_pending:
                    self._term_pending = False
                    raise WorkerTerminatedError()
                self._init_child()
                outcome = (True, self.do_work())
            except BaseException as e:  # noqa: B036 (reported as error)
                outcome = (False, e)
                self._log_failure(e)
            finally:
                self._cleanup()
        except BaseException as e:  # terminate landed during cleanup
            if outcome is None:
                outcome = (False, e)
        while True:  # no termination may land after this
            try:
                self._terminable = False
                self._term_pending = False
                break
            except WorkerTerminatedError as e:
                if outcome is None:
                    outcome = (False, e)
        return outcome

    def _child_report(self, outcome):
        graceful, value = outcome
        try:
            self._flush_results()
        except (OSError, WorkerTerminatedError):
            pass
        try:
            self._link.send(_wire.encode_final(graceful, value,
                                               self._child_state))
        except OSError:
            pass  # the parent is gone: nobody to tell

    def _c_send_result(self, value):
        # Every result leaves at once: a worker that dies abruptly later
        # (os._exit, a signal, a forced kill) must not take the results of
        # calls it already finished with it (pyworkers delivers them, and
        # the pool's partial results and retries count on it). Holding
        # results back to batch them saved a little parent CPU per tiny
        # call but lost them on such a death.
        if self._held:
            self._held.append(value)
            return self._flush_results()
        if self._ring is not None:
            # into the ring, which outlives this process: the same promise
            # without a system call
            more = self._ring_put()(value)
            if more is not None:
                self._ring_slow(*more)
            return
        self._send_now(_R_TAG + self._dumps(value))

    def _ring_put(self):
        """The function that stores a result in the ring: the ring pickles
        it itself unless this worker has its own ``_dumps``."""
        if type(self)._dumps is LinkedWorker._dumps:
            return self._ring.put_obj
        return self._put_dumped

    def _ring_slow(self, rc, data):
        """Worker side: what `ResultRing.put` answering ``rc`` (not 0)
        leaves to do for result ``data``: wake the parent up (1), wait for
        room (-1: the parent has not read the ring for a while), or send
        it on the link with a marker at its place in the ring (-2: too
        large for it)."""
        ring = self._ring
        if rc == -2:
            # (a termination waits for the message too: _send_now raises)
            self._ring_wait(ring.put_marker, then_send=True)
            self._send_now(_R_TAG + data)
        elif rc == -1:
            if self._ring_wait(lambda: ring.put(data)) > 0:
                self._send_now(_W_MSG)  # stored, and the parent waits
        else:
            self._send_now(_W_MSG)

    def _ring_wait(self, put, then_send=False):
        """Worker side: ``put()`` into the ring until it has room. The
        parent reads the ring when it wakes up (it may be waiting on the
        link for a message: a W message wakes it); a process that never
        reads its results blocks its worker here, as a full channel
        would. A termination asked for meanwhile is raised once the
        result is stored (or, ``then_send``, by the `_send_now` that
        follows)."""
        rc = put()
        if rc >= 0:
            return rc
        self._send_now(_W_MSG)
        delay = 0.0002
        # a finished result is being stored: a termination waits for it,
        # as it waits for a message being sent (see _send_now)
        self._sending = True
        try:
            while True:
                time.sleep(delay)  # a back-off: the parent signals no room
                rc = put()
                if rc >= 0:
                    break
                delay = min(delay * 2, 0.02)
        finally:
            self._sending = False
        if self._term_pending and not then_send:
            self._term_pending = False
            raise WorkerTerminatedError()
        return rc

    def _send_now(self, data):
        """Sends one message to the parent; a termination asked for while
        it was being written is raised once it is out."""
        self._sending = True
        try:
            self._link.send(data)
        finally:
            self._sending = False
        if self._term_pending:
            self._term_pending = False
            raise WorkerTerminatedError()

    def _c_run_all(self):
        """`PersistentWorker.do_work`'s loop in one frame, when nothing it
        calls per input is overridden (``run``, ``_send_result``, the
        kind's ``_c_send_result``): per input, the same steps as
        ``_c_next_input``, ``run``, ``_send_result`` and `_c_send_result`,
        without their frames. None otherwise (do_work runs its own)."""
        cls = type(self)
        if (cls.run is not Worker.run or not self._target or
                cls._send_result is not PersistentWorker._send_result or
                cls._c_send_result is not LinkedWorker._c_send_result or
                self._held):
            return None
        if self._ring is not None:
            return self._c_run_ring()
        target = self._target
        q = self._in_q
        next_input = self._c_next_input
        send_now = self._send_now
        dumps = self._dumps
        tag = _R_TAG
        while not self._stop:
            if q:
                item = q.popleft()
            else:
                item = next_input()
                if item is None:
                    break
            args, kwargs = item
            value = target(*args, **kwargs)
            self._counter += 1
            send_now(tag + dumps(value))
        return self._counter

    def _c_run_ring(self):
        """`_c_run_all` for a worker with a results ring: each result is
        in the ring (and so safe from this process's death) before the
        next call starts."""
        target = self._target
        q = self._in_q
        next_input = self._c_next_input
        put = self._ring_put()
        none = _NO_KWARGS
        while not self._stop:
            if q:
                item = q.popleft()
            else:
                item = next_input()
                if item is None:
                    break
            args, kwargs = item
            if kwargs is none:
                value = target(*args)
            else:
                value = target(*args, **kwargs)
            self._counter += 1
            more = put(value)
            if more is not None:
                self._ring_slow(*more)
        return self._counter

    def _put_dumped(self, value):
        """`ResultRing.put_obj` with this worker's own ``_dumps``."""
        data = self._dumps(value)
        rc = self._ring.put(data)
        return None if rc == 0 else (rc, data)

    def _flush_results(self):
        held = self._held
        if not held:
            return
        if len(held) == 1:
            data = bytes([T_RESULT]) + self._dumps(held[0])
        else:
            data = bytes([T_RESULTS]) + self._dumps(held)
        self._held = []
        self._send_now(data)

    def _input_ready(self):
        return bool(self._in_q) or self._link.ready()

    def _next_input_from(self, recv):
        """Worker side: the next input, from the batch being worked through
        or from ``recv()`` (which blocks)."""
        if not self._in_q:
            self._flush_results()
            ring = self._ring
            if ring is not None and not self._link.ready() and ring.dirty():
                # idle with results the parent was not told about: the
                # pool then waits for this rather than for each result
                self._send_now(_W_MSG)
            item = self._decode_input(recv())
            if item is not _BATCH:
                return item
        return self._in_q.popleft()

    def _send_aux(self, value):
        """Worker side: sends a value the parent reads with `_recv_aux`."""
        self._link.send(bytes([T_AUX]) + dumps(value))

    def _decode_input(self, data):
        if data is None or data[0] == T_CLOSE:
            return None
        if data[0] == T_TERM:
            self._term_acted()
            raise WorkerTerminatedError()
        if data[0] == T_ARGS:
            self._in_q.extend(zip(self._loads(memoryview(data)[1:]),
                                  itertools.repeat(_NO_KWARGS)))
            return _BATCH
        if data[0] == T_INPUTS:
            loads = self._loads
            self._in_q.extend(map(loads, loads(memoryview(data)[1:])))
            return _BATCH
        return self._loads(memoryview(data)[1:])


_BATCH = object()
#: the keyword arguments of an input sent in an L message (read-only: one
#: object for all of them)
_NO_KWARGS = types.MappingProxyType({})

_R_TAG = bytes([T_RESULT])
_W_MSG = bytes([T_WAKE])


def flush_stdio():
    for f in (sys.stdout, sys.stderr):
        try:
            if f is not None:
                f.flush()
        except (OSError, ValueError):
            pass


def deadline_left(deadline):
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def check_timeout(timeout):
    _check_timeout(timeout)
