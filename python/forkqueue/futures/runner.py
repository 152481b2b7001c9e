"""ProcessRunner: one object kept alive in a background process."""

from abc import ABC, abstractmethod
from typing import Any

from .._remote_exc import RemoteException
from ._process import Process
from ._sync import Queue

__all__ = ["ProcessRunner", "ProcessRunnee"]


class ProcessRunnee(ABC):
    """The object a :class:`ProcessRunner` keeps in its process: made once
    (``__init__``, then ``__enter__``), called any number of times
    (``__call__``), closed at the end (``__exit__``)."""

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    @abstractmethod
    def __call__(self, *args, **kwargs) -> Any:
        raise NotImplementedError


class ProcessRunner:
    """Runs ``target(*args, **kwargs)`` (a :class:`ProcessRunnee` class) in a
    background process and calls it on demand: ``restart(*a, **kw)`` sends
    a call, ``rejoin()`` waits for its result (raising its exception),
    ``runner(*a, **kw)`` does both; ``join()`` ends the process. A context
    manager starts and joins it."""

    def __init__(self, *, target, args=None, kwargs=None, name=None):
        self._instructions = Queue()
        self._result = Queue(maxsize=1)
        self._process = Process(
            target=self._work,
            kwargs={"instructions": self._instructions, "result": self._result,
                    "worker_cls": target, "args": tuple(args or ()),
                    "kwargs": dict(kwargs or {})},
            name=name)

    @staticmethod
    def _work(instructions, result, worker_cls, args, kwargs):
        with worker_cls(*args, **kwargs) as worker:
            while True:
                call = instructions.get()
                if call is None:
                    return
                try:
                    out = worker(*call[0], **call[1])
                except Exception as e:
                    out = RemoteException(e)
                result.put(out)

    def start(self) -> None:
        self._process.start()

    def join(self, timeout=None) -> None:
        """Asks the process to finish, and waits for it."""
        self._instructions.put(None)
        self._process.join(timeout=timeout)

    def restart(self, *args, **kwargs) -> None:
        """Sends one call; :meth:`rejoin` gets its result."""
        self._instructions.put((args, kwargs))

    def rejoin(self):
        """The result of the call sent by :meth:`restart` (its exception is
        raised). If the process died, its error is raised instead of
        waiting forever."""
        while True:
            try:
                out = self._result.get(timeout=0.1)
                break
            except Exception:
                if self._process.done():
                    self._process.join()  # raises the process's error
                    raise RuntimeError(f"process {self._process.name!r} ended "
                                       f"without answering")
        if isinstance(out, BaseException):
            raise out
        return out

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *args):
        self.join()

    def __call__(self, *args, **kwargs):
        self.restart(*args, **kwargs)
        return self.rejoin()
