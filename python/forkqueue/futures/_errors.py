"""Exception types of forkqueue.futures."""

import builtins
import signal

__all__ = ["TimeoutError", "InvalidStateError", "ProcessKilledError"]


class TimeoutError(builtins.TimeoutError):
    """A process or thread was not done within the given time (a subclass
    of the builtin ``TimeoutError``, so either may be caught)."""


class InvalidStateError(RuntimeError):
    """The operation does not fit the worker's state (for example
    ``Thread.throw`` on a thread that is not running)."""


class ProcessKilledError(ChildProcessError):
    """A child process ended by a signal it did not get from ``terminate()``
    (SIGKILL from the OOM killer, a segfault, ``kill -9`` ...), or ended
    without reporting an outcome. ``signal`` is the signal number (or None),
    ``exitcode`` the process's exit code."""

    def __init__(self, name: str, pid: int, exitcode: int):
        self.name, self.pid, self.exitcode = name, pid, exitcode
        if exitcode < 0:
            self.signal = -exitcode
            try:
                what = f"killed by {signal.Signals(-exitcode).name}"
            except ValueError:
                what = f"killed by signal {-exitcode}"
            if exitcode == -signal.SIGKILL:
                what += " (possibly the out-of-memory killer)"
        else:
            self.signal = None
            what = f"exited with code {exitcode} without reporting a result"
        super().__init__(f"process {name!r} (pid {pid}) {what}")

    def __reduce__(self):
        return (type(self), (self.name, self.pid, self.exitcode))
