"""Progress display for ``process(..., progress=True)`` and ``map()``.

A tqdm bar on stderr when tqdm is installed, else a plain counter that
rewrites one line of stderr. Private: the public interface is the
``progress=`` argument.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional


class Bar:
    """Callable ``(done, total)``; ``close()`` ends the line."""

    def __init__(self, total: Optional[int]) -> None:
        self._bar: Any = None
        self._last = 0.0
        self._done = 0
        self._total = total
        try:
            from tqdm import tqdm  # type: ignore[import-untyped]
        except ImportError:
            return
        self._bar = tqdm(total=total, file=sys.stderr)

    def __call__(self, done: int, total: Optional[int]) -> None:
        step = done - self._done
        self._done = done
        if self._bar is not None:
            self._bar.update(step)
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done != total:
            return
        self._last = now
        text = f"{done}/{total}" if total is not None else f"{done}"
        sys.stderr.write(f"\r{text} done")
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._done:
            total = self._total
            text = f"{self._done}/{total}" if total is not None else f"{self._done}"
            sys.stderr.write(f"\r{text} done\n")
            sys.stderr.flush()
