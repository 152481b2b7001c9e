"""`PersistentWorker`: a worker that calls its target once per input.

The parent ``enqueue``s inputs; the worker's ``do_work`` loop takes them in
order, calls ``run`` with them and sends each result back (``_send_result``);
the parent reads results in order with ``next_result``. A kind supplies
four primitives: ``_p_send_input``/``_p_send_close``/``_p_fetch`` on the
parent side and ``_c_next_input``/``_c_send_result`` on the worker side.
"""
import collections
import copy
import queue

from .utils import classproperty
from .worker import Worker

__all__ = ["PersistentWorker", "WorkerClosedError"]


class WorkerClosedError(RuntimeError):
    """``enqueue`` on a worker that was closed or is dead."""

    def __init__(self, worker):
        super().__init__(f"Trying to enqueue to a closed worker: {worker}")


class _ResultsEndpoint:
    """See `PersistentWorker.results_endpoint`."""

    def __init__(self, worker):
        self._worker = worker
        self._end_given = False

    def get(self, block=True, timeout=None):
        w = self._worker
        while True:
            if w._buffer:
                n, value = w._buffer.popleft()
                return (n, True, value, w.id)
            if not w._started or not w._take(block, timeout):
                if self._end_given:
                    raise queue.Empty
                self._end_given = True
                return (w._received, False, None, w.id)

    def get_nowait(self):
        return self.get(block=False)

    def close(self):
        pass


class PersistentWorker(Worker):
    """Base of the persistent workers; ``create`` makes one of a kind."""

    def __init__(self, target, _results_pipe, **kwargs):
        # _results_pipe is accepted for compatibility (the original's pool
        # passes one); results always travel on the worker's own link.
        self._closed = False
        self._stop = False
        self._counter = 0
        self._enqueued = 0
        self._received = 0
        self._buffer = collections.deque()
        self._ended = False
        self._pool_wakeup = None
        super().__init__(target, **kwargs)

    @classproperty
    def is_persistent(cls):
        return True

    # ---- parent side --------------------------------------------------------

    def enqueue(self, *args, **kwargs):
        """Queues one call: ``args`` replace the constructor's first
        positional arguments, ``kwargs`` update its keyword arguments."""
        if self.is_child:
            raise RuntimeError("Enqueuing should only be done by the owner")
        if self._closed or not self._accepting():
            raise WorkerClosedError(self)
        try:
            self._p_send_input(args, kwargs)
        except (OSError, EOFError) as e:
            raise WorkerClosedError(self) from e
        self._enqueued += 1

    def close(self):
        """No more input: the worker ends once it has processed what was
        enqueued. Does not wait (``wait`` does)."""
        if self.is_child:
            self._stop = True
            return
        if self._closed:
            return
        self._closed = True
        if self._started:
            try:
                self._p_send_close()
            except (OSError, EOFError):
                pass

    def wait(self, timeout=None):
        """Closes the input (see `close`), then waits like `Worker.wait`."""
        return self._close_and_wait(timeout)

    def _close_and_wait(self, *args, **kwargs):
        if self.is_child:
            raise ValueError("A worker cannot wait for itself")
        if self._started:
            self.close()
        return super().wait(*args, **kwargs)

    def _take(self, block, timeout):
        """Reads one more message into the buffer; False at the end."""
        if self._ended:
            return False
        msg = self._p_fetch(block, timeout)  # queue.Empty on timeout
        if msg is _END:
            self._ended = True
            return False
        self._received += 1
        self._buffer.append((self._received, msg))
        return True

    def next_result(self, block=True, timeout=None):
        """The next result, in the order of the calls. Raises
        ``queue.Empty`` at the end of the results, when the worker is dead
        with nothing buffered, or after ``timeout`` seconds."""
        if self.is_child:
            raise RuntimeError("results should only be accessed from the "
                               "parent")
        while True:
            if self._buffer:
                return self._buffer.popleft()[1]
            if not self._started or not self._take(block, timeout):
                raise queue.Empty

    @property
    def results_endpoint(self):
        """pyworkers' raw view of the results: an object whose
        ``get(block=True, timeout=None)``/``get_nowait()`` return
        ``(n, True, value, worker_id)`` per result, in order, then once
        ``(count, False, None, worker_id)`` when the worker has ended, then
        raise ``queue.Empty``. It shares the buffer of `next_result`."""
        if self.is_child:
            raise RuntimeError("results should only be access from the "
                               "parent")
        ep = self.__dict__.get("_results_ep")
        if ep is None:
            ep = self._results_ep = _ResultsEndpoint(self)
        return ep

    def results_iter(self, maxitems=None):
        """Yields results until the end (or ``maxitems`` of them)."""
        n = 0
        while maxitems is None or n < maxitems:
            try:
                yield self.next_result()
            except queue.Empty:
                return
            n += 1

    def call(self, *args, **kwargs):
        """Enqueues one call and returns its own result; results of
        earlier ``enqueue`` calls stay queued for ``next_result``."""
        self.enqueue(*args, **kwargs)
        mine = self._enqueued
        while True:
            for i, (idx, value) in enumerate(self._buffer):
                if idx == mine:
                    del self._buffer[i]
                    return value
            if not self._take(True, None):
                raise queue.Empty

    def __call__(self, *args, **kwargs):
        return self.call(*args, **kwargs)

    def _pool_ready(self):
        """Pool helper: results available now (without blocking) and
        whether they have ended."""
        if self._buffer:
            out = [v for _, v in self._buffer]
            self._buffer.clear()
        else:
            out = None
        if self._started and not self._ended:
            more, ended = self._pool_fetch_ready()
            self._received += len(more)
            if out is None:
                out = more
            else:
                out.extend(more)
            self._ended = ended
        elif out is None:
            out = []
        return out, self._ended or not self._started

    def restart(self, *args, results_pipe=None, timeout=None, **kwargs):
        """Runs the worker again with the same target, arguments and the
        current ``user_state``. A live worker is closed and waited for
        (``timeout``), then terminated (``*args``/``**kwargs`` go to
        ``terminate``)."""
        if self.is_child:
            raise RuntimeError("A worker cannot restart itself")
        if not self.wait(timeout=timeout):
            self.terminate(*args, **kwargs)
            if self.is_alive():
                raise RuntimeError("Could not stop a worker!")
        self._get_result()
        self._reset_for_restart()
        self.__dict__.pop("_results_ep", None)
        self._closed = False
        self._stop = False
        self._counter = 0
        self._enqueued = 0
        self._received = 0
        self._buffer = collections.deque()
        self._ended = False
        self._outcome = None
        self._child_state = self._user_state
        self._started = False
        if self._do_run:
            self._started = True
            self._start()
        else:
            self._outcome = (True, None)

    # ---- worker side --------------------------------------------------------

    def do_work(self):
        """The worker's loop: one ``run`` per input, until closed."""
        base_args, base_kwargs = self._args, self._kwargs
        deep = bool(base_args) or bool(base_kwargs)
        if not deep:
            n = self._c_run_all()
            if n is not None:
                return n
        while not self._stop:
            item = self._c_next_input()
            if item is None:
                break
            extra_args, extra_kwargs = item
            if deep:
                args = copy.deepcopy(base_args)
                kwargs = copy.deepcopy(base_kwargs)
                args[0:len(extra_args)] = extra_args
                kwargs.update(extra_kwargs)
            else:
                args, kwargs = extra_args, extra_kwargs
            self._send_result(self.run(*args, **kwargs))
        return self._counter

    def _c_run_all(self):
        """Worker side, a kind's hook: runs `do_work`'s loop itself (for
        inputs that replace no constructor argument) and returns the count
        of calls, or None to let `do_work` run it."""
        return None

    def _send_result(self, result):
        """Sends one result to the parent (from inside ``do_work``)."""
        self._counter += 1
        self._c_send_result(result)

    def send_result(self, result):
        """Public name of ``_send_result``."""
        return self._send_result(result)


class _EndMarker:
    def __repr__(self):
        return "<end of results>"


_END = _EndMarker()
