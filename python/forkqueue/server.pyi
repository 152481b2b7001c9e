"""Type stub of forkqueue.server, the worker server program
(``python3 -m forkqueue.server``; see docs/remote.md)."""
from collections.abc import Sequence

def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server with these command-line arguments (None: sys.argv);
    returns the exit status (1 if it cannot start)."""
    ...
