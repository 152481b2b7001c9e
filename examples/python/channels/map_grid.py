"""The grid with a Map and a managed callable: each call starts a child;
the Map keeps results in call order, so row i is a plain slice.
(An optional argument sets the delay per cell, in seconds.)
"""
import sys
import time

import forkqueue.channels as pprocess

N = 10
LIMIT = 10
DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


def cell(i: int, j: int) -> int:
    time.sleep(DELAY)
    return i * N + j


if __name__ == "__main__":
    grid = pprocess.Map(limit=LIMIT)
    compute = grid.manage(pprocess.MakeParallel(cell))
    for i in range(N):
        for j in range(N):
            compute(i, j)  # never blocks: beyond the limit, calls wait
    for i in range(N):
        print(" ".join(str(v) for v in grid[i * N:(i + 1) * N]))
