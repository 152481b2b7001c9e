"""The grid with reusable children: ten children run all hundred cells, each
receiving its next cell after sending a result (Map with reuse=1 and
MakeReusable).
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
    grid = pprocess.Map(limit=LIMIT, reuse=1)
    compute = grid.manage(pprocess.MakeReusable(cell))
    for i in range(N):
        for j in range(N):
            compute(i, j)
    for i in range(N):
        print(" ".join(str(v) for v in grid[i * N:(i + 1) * N]))
