"""Processes that are futures: ``Process`` (forked) and ``SpawnProcess``.

Both are ``multiprocessing`` process objects (``name``, ``daemon``, ``pid``,
``exitcode``, ``is_alive``, ``terminate``, ``kill``, ``close``, ``sentinel``;
they appear in ``multiprocessing.active_children()``) that also behave as
futures once started: ``done()``, ``result()``, ``exception()``, and
``join()`` re-raising the child's exception with its remote traceback.

``Process`` forks through the engine's channel (``_forkqueue.fork_channel``:
its own process group, dies with its parent, no inherited forkqueue
descriptors); ``SpawnProcess`` starts a fresh interpreter with the standard
library's spawn method and talks over a ``multiprocessing`` pipe. Either way
the child sends its log records and its outcome as messages, which the
parent's collector (``_pump``, one thread for all children) handles.
"""

import asyncio
import builtins
import concurrent.futures
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.process as _mpp
import os
import signal
import sys
import threading
import traceback
from typing import Optional

from .. import _forkqueue
from .._remote_exc import dump_outcome, format_remote, load_outcome
from . import _logfwd, _pump
from ._errors import ProcessKilledError, TimeoutError

__all__ = ["Process", "SpawnProcess"]

_ABANDONED = (-signal.SIGTERM, -signal.SIGKILL)


class _FutureProcess:
    """The future half shared by Process and SpawnProcess (a mixin over a
    ``multiprocessing`` process class)."""

    _future_ = None

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None,
                 *, daemon=None):
        super().__init__(group, target, name, args, {} if kwargs is None else kwargs,
                         daemon=daemon)
        if name is None:
            # mpservice's Process is its SpawnProcess: programs print (and
            # tracebacks and log records carry) "SpawnProcess-N" by default.
            self._name = "SpawnProcess-" + ":".join(str(i) for i in self._identity)

    @staticmethod
    def handle_exception(exc):
        """Called in the child when the target raises; prints a one-line
        note to the child's stdout (override to log instead). Must not
        raise."""
        print(f"Exception in {multiprocessing.current_process().name}: {exc!r}")

    # ---- child side ------------------------------------------------------

    def _fq_send(self, data):  # set per kind
        raise NotImplementedError

    def run(self):
        """Runs the target in the child and reports its outcome; the exit
        code becomes 0, 1 (an exception), or n for ``SystemExit(n)``."""
        send = self._fq_child_send
        self._fq_exitcode = 0
        value, exc, tb = None, None, None
        try:
            if self._target is not None:
                value = self._target(*self._args, **self._kwargs)
        except SystemExit as e:
            if e.code is None or e.code == 0:
                pass
            else:
                if isinstance(e.code, int):
                    self._fq_exitcode = e.code
                else:
                    self._fq_exitcode = 1
                exc, tb = e, _remote_text(e)
                self._fq_note(e)
                if not isinstance(e.code, int):
                    sys.stderr.write(f"exitcode: {e.code}\n")
        except BaseException as e:
            self._fq_exitcode = 1
            exc, tb = e, _remote_text(e)
            self._fq_note(e)
            if self.daemon:
                # Nobody may join a daemonic process: show its error here.
                _print_tb(e)
        try:
            data = dump_outcome(value, exc, tb)
        except BaseException as e:  # pragma: no cover - dump_outcome catches
            data = dump_outcome(None, RuntimeError(f"cannot report outcome: {e!r}"), "")
        try:
            send(_logfwd.OUTCOME + data)
        except BrokenPipeError:
            pass

    def _fq_note(self, e):
        try:
            self.handle_exception(e)
        except BaseException:
            pass

    def _bootstrap(self, parent_sentinel=None):
        code = super()._bootstrap(parent_sentinel)
        # run() never raises; a non-zero code here comes from atexit-time
        # failures (util._exit_function), which then win.
        return getattr(self, "_fq_exitcode", code) if code == 0 else code

    # ---- parent side -----------------------------------------------------

    def _fq_started(self, popen):
        popen.owner_name = self.name
        self._fq_popen = popen
        self._future_ = popen.future
        _pump.add(popen)

    def _fq_check(self):
        if self._future_ is None:
            raise AssertionError("can only join a started process")

    def join(self, timeout: Optional[float] = None):
        """Waits for the process like ``multiprocessing.Process.join`` (and
        for every log record it sent to be handled); if it failed, raises
        its exception, on every call."""
        self._check_closed()
        assert self._parent_pid == os.getpid(), "can only join a child process"
        if self._future_ is None and self._fq_interrupted:
            # Ctrl-C cut a SpawnProcess's start() short: no future to wait
            # for; multiprocessing's exit-time join waits for the process.
            return _mpp.BaseProcess.join(self, timeout)
        self._fq_check()
        done, _ = concurrent.futures.wait([self._future_], timeout)
        if not done:
            return None
        _mpp._children.discard(self)
        exc = self._future_.exception()
        if exc is not None and not self._fq_interrupted:
            raise exc
        return None

    # Set by _interrupt_children_at_exit: the program is ending on Ctrl-C and
    # passed the interrupt on; multiprocessing's exit handler then joins the
    # child, which must not raise (no "Exception ignored in atexit callback"
    # after the program's own KeyboardInterrupt traceback).
    _fq_interrupted = False

    def done(self) -> bool:
        """True once the process has ended and its outcome is in; False
        while it runs or before ``start()``."""
        self._check_closed()
        return self._future_ is not None and self._future_.done()

    def result(self, timeout: Optional[float] = None):
        """The target's return value; raises the child's exception, or
        :class:`TimeoutError` if not done within ``timeout`` seconds."""
        self._check_closed()
        self._fq_check()
        done, _ = concurrent.futures.wait([self._future_], timeout)
        if not done:
            raise TimeoutError
        _mpp._children.discard(self)
        return self._future_.result()

    def exception(self, timeout: Optional[float] = None):
        """The child's exception, or None; :class:`TimeoutError` if not done
        within ``timeout`` seconds."""
        self._check_closed()
        self._fq_check()
        done, _ = concurrent.futures.wait([self._future_], timeout)
        if not done:
            raise TimeoutError
        _mpp._children.discard(self)
        return self._future_.exception()

    def terminate(self):
        """Sends SIGTERM. The process then ends with ``exitcode`` -15 and
        ``join()`` does not raise (``result()`` and ``exception()`` are
        None)."""
        self._check_closed()
        if self._popen is not None:
            self._popen.requested = True
            self._popen.terminate()

    def kill(self):
        """Sends SIGKILL; reported like ``terminate()`` (exit code -9, no
        exception)."""
        self._check_closed()
        if self._popen is not None:
            self._popen.requested = True
            self._popen.kill()

    def __await__(self):
        self._fq_check()
        return asyncio.wrap_future(self._future_).__await__()


def _print_tb(e):
    try:
        tb = e.__traceback__
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
    except BaseException:
        pass


def _remote_text(e):
    # The traceback from the target's frame on (this module's run() frame
    # is no news to the reader).
    tb = e.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return format_remote(e, tb)


def _outcome(popen, rc):
    """Sets popen.future from the reported outcome and the exit code."""
    fut = popen.future
    if popen.outcome is not None:
        try:
            value, exc = load_outcome(popen.outcome)
        except Exception as e:  # the outcome itself could not be read
            value, exc = None, RuntimeError(f"cannot read the outcome of process "
                                            f"{popen.owner_name!r}: {e!r}")
    elif rc == 0 or (rc in _ABANDONED and popen.requested):
        value, exc = None, None
    else:
        value, exc = None, ProcessKilledError(popen.owner_name, popen.pid, rc)
    if exc is None:
        fut.set_result(value)
    else:
        fut.set_exception(exc)


class _Collected(_pump.Entry):
    """Collector-side state shared by both popen kinds."""

    def _init_collected(self):
        self.future = concurrent.futures.Future()
        self.outcome = None
        self.requested = False
        self.owner_name = "?"
        self.data_eof = False

    def _message(self, msg):
        tag = msg[:1]
        if tag == _logfwd.LOG:
            try:
                _logfwd.handle(msg[1:])
            except Exception:
                pass  # a failing handler or filter loses its record only
        elif tag == _logfwd.OUTCOME:
            self.outcome = bytes(msg[1:])


# ---- Process: forked through the engine's channel ------------------------

_child_channel = None


class _ChannelPopen(_Collected):
    method = "fork"

    def __init__(self, process_obj):
        self._init_collected()
        self.returncode = None
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        ch = _forkqueue.fork_channel()
        if ch.pid == 0:  # the child
            global _child_channel
            _child_channel = ch
            code = 1
            try:
                code = process_obj._bootstrap(parent_sentinel=ch.fileno())
            finally:
                for f in (sys.stdout, sys.stderr):
                    try:
                        f.flush()
                    except Exception:
                        pass
                _forkqueue.child_exit(code if isinstance(code, int) else 1)
        self.ch = ch
        self.pid = ch.pid
        self.data_fd = ch.fileno()
        try:
            self.exit_fd = os.pidfd_open(ch.pid)
            os.set_inheritable(self.exit_fd, False)
        except (AttributeError, OSError):
            self.exit_fd = None
        # multiprocessing.connection.wait() on the sentinel sees the exit.
        self.sentinel = self.exit_fd if self.exit_fd is not None else ch.fileno()
        self._done = threading.Event()

    # collector side
    def drain(self, limit):
        ch = self.ch
        n = 0
        while limit is None or n < limit:
            try:
                msg = ch.recv(0)
            except builtins.TimeoutError:  # (ours is a subclass)
                return True  # nothing ready, or a message still arriving
            if msg is None:
                return False
            self._message(msg)
            n += 1
        return True

    def reap(self):
        rc = self.ch.wait(None)
        return -signal.SIGKILL if rc is None else rc

    def complete(self, rc):
        self.ch.close()
        _outcome(self, rc)
        self.returncode = rc
        self._done.set()

    # the multiprocessing popen interface
    def poll(self, flag=os.WNOHANG):
        if self.returncode is None and flag == 0:
            self._done.wait()
        return self.returncode

    def wait(self, timeout=None):
        self._done.wait(timeout)
        return self.returncode

    def terminate(self):
        self._signal(signal.SIGTERM)

    def kill(self):
        self._signal(signal.SIGKILL)

    def _signal(self, sig):
        if self.returncode is None:
            try:
                self.ch.kill(sig)
            except (ProcessLookupError, OSError):
                pass

    def close(self):
        self.ch.close()
        if self.exit_fd is not None:
            try:
                os.close(self.exit_fd)
            except OSError:
                pass
            self.exit_fd = None

    def __del__(self):
        if getattr(self, "exit_fd", None) is not None and self.returncode is not None:
            self.close()


class Process(_FutureProcess, _mpp.BaseProcess):
    """A forked child process that is also a future.

    Same constructor as ``multiprocessing.Process``: ``Process(group=None,
    target=None, name=None, args=(), kwargs={}, *, daemon=None)``. The
    target is inherited, never pickled (lambdas and closures work); its
    return value and exception are pickled back. A daemonic process may
    start processes of its own.
    """

    _start_method = None

    @staticmethod
    def _Popen(process_obj):
        return _ChannelPopen(process_obj)

    def _fq_child_send(self, data):
        _child_channel.send(data)

    def run(self):
        self._fq_child_send = _logfwd.install(_child_channel.send, spawned=False)
        _FutureProcess.run(self)

    def start(self):
        """Forks the child and starts collecting its outcome."""
        self._check_closed()
        assert self._popen is None, "cannot start a process twice"
        assert self._parent_pid == os.getpid(), \
            "can only start a process object created by current process"
        _mpp._cleanup()
        self._popen = self._Popen(self)
        self._sentinel = self._popen.sentinel
        del self._target, self._args, self._kwargs
        _mpp._children.add(self)
        self._fq_started(self._popen)


# ---- SpawnProcess: a fresh interpreter (stdlib spawn) --------------------

class _SpawnWatch(_Collected):
    def __init__(self, popen, reader):
        self._init_collected()
        self.popen = popen
        self.reader = reader
        self.pid = popen.pid
        self.data_fd = reader.fileno()
        self.exit_fd = popen.sentinel

    def drain(self, limit):
        r = self.reader
        n = 0
        while limit is None or n < limit:
            if not r.poll(0):
                return True
            try:
                msg = r.recv_bytes()
            except (EOFError, OSError):
                return False
            self._message(msg)
            n += 1
        return True

    def reap(self):
        rc = self.popen.wait()
        return -signal.SIGKILL if rc is None else rc

    def complete(self, rc):
        self.reader.close()
        _outcome(self, rc)


class SpawnProcess(_FutureProcess, multiprocessing.context.SpawnProcess):
    """A child started with the spawn method (a fresh interpreter: the
    target and arguments must be picklable, the main module importable),
    with the same future interface as :class:`Process`."""

    def run(self):
        conn = self.__dict__.pop("_fq_conn")
        self._fq_child_send = _logfwd.install(conn.send_bytes, spawned=True)
        try:
            _FutureProcess.run(self)
        finally:
            conn.close()

    def start(self):
        """Spawns the child and starts collecting its outcome."""
        reader, writer = multiprocessing.connection.Pipe(duplex=False)
        self._fq_conn = writer
        try:
            super().start()
        finally:
            del self._fq_conn
            writer.close()
        watch = _SpawnWatch(self._popen, reader)
        self._fq_watch = watch
        self._fq_started(watch)

    def terminate(self):
        self._check_closed()
        if self._popen is not None:
            self._fq_watch.requested = True
            self._popen.terminate()

    def kill(self):
        self._check_closed()
        if self._popen is not None:
            self._fq_watch.requested = True
            self._popen.kill()


# ---- Ctrl-C ----------------------------------------------------------------

def _interrupt_children_at_exit():
    """A forked Process runs in its own process group, so the terminal's
    SIGINT reaches only the parent. If the program is ending on an uncaught
    KeyboardInterrupt, pass the interrupt on to the children still running,
    as the terminal would have: otherwise multiprocessing's exit handler
    (which runs after this one) would wait forever for them."""
    if not isinstance(getattr(sys, "last_value", None), KeyboardInterrupt):
        return
    for p in list(_mpp._children):
        popen = getattr(p, "_popen", None)
        if isinstance(p, _FutureProcess) and popen is not None and popen.poll() is None:
            try:
                p._popen.requested = True
                p._fq_interrupted = True
                if isinstance(popen, _ChannelPopen):
                    popen._signal(signal.SIGINT)
                else:
                    os.kill(popen.pid, signal.SIGINT)
            except Exception:
                pass
            # The interrupt may have cut start() short, before the collector
            # (which completes the future join() waits for) had the child.
            try:
                entry = popen if isinstance(popen, _ChannelPopen) else \
                    getattr(p, "_fq_watch", None)
                if entry is not None and p._future_ is None:
                    p._fq_started(entry)
                elif entry is not None:
                    _pump.ensure(entry)
            except Exception:
                pass


def _daemons_terminated_at_exit():
    """multiprocessing's exit handler (which runs after this one) ends the
    daemonic children still running with SIGTERM, then joins them: that is
    a requested end, as with ``terminate()`` (exit code -15, ``join()`` does
    not raise), not a child killed from outside."""
    for p in list(_mpp._children):
        if not (isinstance(p, _FutureProcess) and p.daemon):
            continue
        entry = p._popen if isinstance(p._popen, _ChannelPopen) else \
            getattr(p, "_fq_watch", None)
        if entry is not None:
            entry.requested = True


import atexit  # noqa: E402  (registered after multiprocessing's: runs first)

atexit.register(_interrupt_children_at_exit)
atexit.register(_daemons_terminated_at_exit)
