"""Type stubs of the forkqueue package."""

from ._forkqueue import CORE_VERSION as CORE_VERSION
from ._forkqueue import ForkQueue as ForkQueue
from ._forkqueue import ForkQueueException as ForkQueueException
from ._forkqueue import Job as Job
from ._forkqueue import ResultIterator as ResultIterator

__all__ = ["ForkQueue", "ForkQueueException"]
__version__: str
