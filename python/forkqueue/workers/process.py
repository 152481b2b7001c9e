"""`ProcessWorker`: a worker in a forked process.

The process is a child made by the shared process primitive
(``_forkqueue.fork_channel()``): its own process group, killed if the
parent dies, connected to the parent by a channel. Being a fork, it runs
the target the parent has (lambdas and closures included): nothing but
results and errors is pickled.
"""
import os
import signal
import time


from ._linked import (LinkedWorker, REQUEST_SIGNAL, deadline_left,
                      flush_stdio)
from ._wire import ChannelLink
from .utils import _titles, classproperty
from .worker import WorkerTerminatedError, WorkerType, _check_timeout

__all__ = ["ProcessWorker"]

#: How long SIGTERM is given before SIGKILL in a forced termination.
KILL_GRACE = 1.0
#: Bound on waiting for a SIGKILLed process to be reaped.
REAP_LIMIT = 5.0
#: Bytes of a worker's results ring (memory is only used as it is
#: touched); results larger than a quarter of it go on the channel.
RING_BYTES = 1 << 20


def _fq():
    from .. import _forkqueue
    return _forkqueue


class ProcessWorker(LinkedWorker):
    """Runs ``do_work()`` in a forked child process."""

    def __init__(self, *args, **kwargs):
        self._ch = None
        self._returncode = None
        super().__init__(*args, **kwargs)

    @classproperty
    def worker_type(cls):
        return WorkerType.PROCESS

    @property
    def returncode(self):
        """The process's exit status (negative: killed by that signal);
        None while it runs."""
        return self._returncode

    @property
    def exit_reason(self):
        """How the process ended, in words (None while it runs)."""
        rc = self._returncode
        if rc is None:
            return None
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = "unknown signal"
            return f"killed by signal {-rc} ({name})"
        return f"exited with status {rc}"

    def _reset_for_restart(self):
        super()._reset_for_restart()
        self._ch = None
        self._returncode = None

    # ---- starting ----------------------------------------------------------

    def _start(self):
        flush_stdio()
        if self._set_names:
            _titles()  # look for the package once, here, not in every child
        # results come back through memory shared with the child (see
        # _wire): made before the fork, so both have it
        self._ring = _fq().ResultRing(RING_BYTES)
        ch = _fq().fork_channel()
        if ch.pid == 0:
            code = 0
            try:
                self._child_main(ch)
            except BaseException:  # noqa: B036 (never back into the caller)
                code = 70
            finally:
                flush_stdio()
                _fq().child_exit(code)
        self._ch = ch
        self._link = ChannelLink(ch)
        self._pid = self._tid = ch.pid
        self._dead = False

    def _child_main(self, ch):
        self._ch = ch
        self._child_setup(ChannelLink(ch))
        self._link.send(self._started_message())
        outcome = self._child_run()
        flush_stdio()
        self._child_report(outcome)

    def _c_next_input(self):
        q = self._in_q
        if q:
            return q.popleft()  # the batch being worked through
        return self._next_input_from(self._link.recv)

    # ---- state -------------------------------------------------------------

    def is_alive(self):
        if self._is_child:
            return True
        if self._dead:
            return False
        if self._ch.wait(0) is None:
            return True
        self._reaped()
        return False

    def _reaped(self):
        self._returncode = self._ch.returncode
        self._drain()
        if self._ring is not None:
            # what the worker finished before it ended, even if killed
            self._ring.take(self._rq.append, self._loads, True)
        self._finish()

    def _link_closed(self):
        self._ch.close()

    def _await(self, timeout):
        """Waits for the process to end, reading its messages meanwhile so
        it never blocks on a full channel. True once it is reaped."""
        if self._dead:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        link = self._link
        while not link.eof:
            left = deadline_left(deadline)
            try:
                if not self._read(0.1 if left is None else min(left, 0.1)):
                    break
                continue
            except TimeoutError:
                pass
            # nothing for a while: the process may be dead while something
            # it started still holds the channel open
            if self._ch.wait(0) is not None:
                self._reaped()
                return True
            if left is not None and left <= 0:
                return False
        if self._ch.wait(deadline_left(deadline)) is None:
            return False
        self._reaped()
        return True

    def wait(self, timeout=None):
        """Waits up to ``timeout`` seconds (None: no limit) for the worker
        to end; True if it has."""
        _check_timeout(timeout)
        if self._is_child:
            raise ValueError("A worker cannot wait for itself")
        if not self._started:
            return True
        return self._await(timeout)

    def terminate(self, timeout=1, force=True):
        """Raises `WorkerTerminatedError` in the target, waits up to
        ``timeout`` seconds, then (``force``) sends SIGTERM and, a second
        later, SIGKILL to the worker's process group (never the caller's).
        True if the worker is dead when it returns."""
        _check_timeout(timeout)
        if self._is_child:
            raise WorkerTerminatedError()
        if not self.is_alive():
            return True
        self._request_termination()
        self._release_child()
        if self._await(timeout):
            return True
        if force:
            # SIGTERM, then SIGKILL, both to the whole process group; the
            # leader is not reaped before the SIGKILL, so the group id
            # cannot have been reused, and what the target started (even
            # if it ignores SIGTERM) goes too.
            self._ch.kill(signal.SIGTERM)
            self._exited(min(KILL_GRACE, max(timeout or 0, 0.2)))
            self._ch.kill(signal.SIGKILL)
            self._await(REAP_LIMIT)
        return not self.is_alive()

    def _exited(self, timeout):
        """Waits up to ``timeout`` for the process to exit, without
        reaping it (its messages are read meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = os.waitid(os.P_PID, self._ch.pid, os.WEXITED |
                                 os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True
            if info is not None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._link.eof:
                time.sleep(min(left, 0.005))
                continue
            try:
                self._read(min(left, 0.02))
            except TimeoutError:
                pass

    def _request_termination(self):
        # The request signal is blocked (and watched) before the 'started'
        # message: until it is seen, the signal would kill instead.
        deadline = time.monotonic() + 1.0
        while not self._seen_started and not self._link.eof:
            try:
                if not self._read(deadline_left(deadline)):
                    break
            except TimeoutError:
                break
        if self._ch.returncode is None and self._seen_started:
            try:
                os.kill(self._ch.pid, REQUEST_SIGNAL)  # not reaped: ours
            except ProcessLookupError:
                pass
        # No message besides: the worker's watcher thread takes the
        # signal and signals the main thread until it acted on it, even
        # when it is idle (waiting for input).


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .utils import (Pipe, foreign_raise, get_logger, gettid,  # noqa: F401
                    setproctitle, setthreadtitle)
from .worker import Worker  # noqa: F401

logger = get_logger(__name__)
