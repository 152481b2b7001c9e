"""The collector: one thread per parent process, for all its children.

Every started ``Process``/``SpawnProcess`` registers here. One thread
polls, with the GIL released, the data descriptor of every live child (log
records and the final outcome arrive there) and its exit descriptor (a
pidfd, or the stdlib sentinel), handles log records as they come, and, once
a child has exited, drains what it wrote, reaps it and completes its future.

So logging from children is handled promptly and in order, a child never
blocks for long on a full channel, and no child costs a thread. The thread
exists only while some child is being collected.
"""

import os
import select
import threading

__all__ = ["add", "ensure"]


class Entry:
    """What the collector needs from a child (implemented by the popens)."""

    data_fd: int = -1          # readable: messages or EOF
    exit_fd = None             # readable once the child has exited, or None

    def drain(self, limit) -> bool:  # handles up to `limit` ready messages
                                     # (None: all); False at EOF
        raise NotImplementedError

    def reap(self) -> int:     # blocks until reaped; the exit code
        raise NotImplementedError

    def complete(self, returncode: int) -> None:
        raise NotImplementedError


class _Collector:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries = set()
        self.new = []
        self.thread = None
        self.wake_r = self.wake_w = -1

    def add(self, entry):
        with self.lock:
            self._enlist(entry)
            self._kick()

    def ensure(self, entry):
        """Collects ``entry`` if an ``add()`` of it was cut short (Ctrl-C in
        the middle of ``start()``), and makes sure the thread runs: used at
        exit, when the program ends on KeyboardInterrupt and joins its
        children, whose futures only the collector completes."""
        with self.lock:
            if getattr(entry, "finishing", False):
                return
            if entry not in self.entries:
                self._enlist(entry)
            self._kick()

    def _enlist(self, entry):
        """With the lock: ``entry`` is watched from the thread's next turn."""
        if self.wake_r < 0:
            self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.entries.add(entry)
        self.new.append(entry)

    def _kick(self):
        """With the lock: starts the thread if none runs (None, ended, or
        made but never started), else wakes it for the new entries."""
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, daemon=True,
                                           name="forkqueue-futures-collector")
            self.thread.start()
        else:
            try:
                os.write(self.wake_w, b"x")
            except BlockingIOError:
                pass  # a wake-up is already pending

    def _run(self):
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        fds = {}
        while True:
            with self.lock:
                for e in self.new:
                    fds[e.data_fd] = (e, False)
                    poller.register(e.data_fd, select.POLLIN)
                    if e.exit_fd is not None:
                        fds[e.exit_fd] = (e, True)
                        poller.register(e.exit_fd, select.POLLIN)
                self.new.clear()
                if not self.entries:
                    self.thread = None
                    return
            try:
                ready = poller.poll()
            except InterruptedError:
                continue
            for fd, _ev in ready:
                if fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 256):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                got = fds.get(fd)
                if got is None:
                    continue  # its entry finished earlier in this round
                entry, is_exit = got
                if is_exit:
                    self._finish(entry, poller, fds)
                elif not self._drain(entry, 512):
                    _unregister(poller, fds, entry.data_fd)
                    entry.data_eof = True
                    if entry.exit_fd is None:
                        self._finish(entry, poller, fds)

    @staticmethod
    def _drain(entry, limit):
        # A message that fails to be handled is dropped, never the channel:
        # stopping to read would leave the child blocked on a full channel.
        try:
            return entry.drain(limit)
        except (OSError, ValueError):
            return False  # the channel itself is unusable
        except Exception:
            return True

    def _finish(self, entry, poller, fds):
        # The child has exited: everything it wrote is readable now.
        if not getattr(entry, "data_eof", False):
            self._drain(entry, None)
        _unregister(poller, fds, entry.data_fd)
        if entry.exit_fd is not None:
            _unregister(poller, fds, entry.exit_fd)
        try:
            rc = entry.reap()
        except Exception:
            rc = -9
        with self.lock:
            self.entries.discard(entry)
            entry.finishing = True
        entry.complete(rc)

    def after_fork_in_child(self):
        # The parent's children are not ours; neither is its thread.
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.__init__()


def _unregister(poller, fds, fd):
    if fds.pop(fd, None) is not None:
        try:
            poller.unregister(fd)
        except (KeyError, ValueError):
            pass


_collector = _Collector()
os.register_at_fork(after_in_child=_collector.after_fork_in_child)


def add(entry) -> None:
    """Starts collecting ``entry`` (a started child)."""
    _collector.add(entry)


def ensure(entry) -> None:
    """Collects ``entry`` whatever an interrupted ``add()`` left undone."""
    _collector.ensure(entry)
