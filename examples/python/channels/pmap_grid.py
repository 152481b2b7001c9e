"""A 10x10 grid of i*N+j, one second per cell, ten cells at a time: pmap.

pmap() returns a Map at once; reading a slice of it waits for the cells in
that slice. Sequentially this takes 100 s; here about 10 s.
(An optional argument sets the delay per cell, in seconds.)
"""
import sys
import time

import forkqueue.channels as pprocess

N = 10
LIMIT = 10
DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


def cell(pos: tuple[int, int]) -> int:
    i, j = pos
    time.sleep(DELAY)  # stands for a slow computation
    return i * N + j


if __name__ == "__main__":
    grid = pprocess.pmap(cell, [(i, j) for i in range(N) for j in range(N)],
                         limit=LIMIT)
    for i in range(N):
        print(" ".join(str(v) for v in grid[i * N:(i + 1) * N]))
