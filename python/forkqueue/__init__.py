"""Run Python callables in parallel in forked worker processes.

``ForkQueue`` keeps a pool of worker processes forked from the caller, so
jobs may use anything the caller had when the workers were forked: module
globals, large data structures, and callables of any kind (lambdas, closures,
nested functions), which are never pickled. Only the arguments and results
travel between processes, pickled.

The queue, the dispatch loop, result ordering and all (de)serialisation are
implemented in C (``forkqueue._forkqueue``) on top of the libforkqueue core.
"""

import atexit as _atexit
import pickle as _pickle
import collections.abc as _abc

from ._forkqueue import CORE_VERSION, ForkQueue, ForkQueueException, ResultIterator
from ._forkqueue import Job  # ForkQueue.submit_job()'s future (0.2.0)
from . import _forkqueue

__all__ = ["ForkQueue", "ForkQueueException"]
__version__ = "0.2.0"

# process(), map() and results() return generators (close(), send(), throw()).
_abc.Generator.register(_forkqueue.ResultIterator)

# Workers of queues that were never finished must not outlive the program.
_atexit.register(_forkqueue._shutdown_all)


def _fqe_reduce(self):  # type: ignore[no-untyped-def]
    # A job error pickles as a plain ForkQueueException with its message
    # and attributes (jobid, exception, backtrace, signal, exitcode): the
    # per-type subclasses (ForkQueueException + ValueError, ...) are made
    # at run time and cannot be found by name when unpickling. Needed when
    # a job's own nested ForkQueue raises and the error travels back.
    state = dict(self.__dict__)
    try:
        _pickle.dumps(state.get("exception"))
    except Exception:
        state["exception"] = None  # the text (backtrace) still says it all
    return (ForkQueueException, self.args, state)


ForkQueueException.__reduce__ = _fqe_reduce  # type: ignore[method-assign,assignment]
