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
