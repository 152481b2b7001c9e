"""``python3 -m forkqueue.workers``: the worker server (the same program as
``python3 -m forkqueue.server``; see docs/remote.md)."""
import sys

from ..server import main

if __name__ == "__main__":
    sys.exit(main())
