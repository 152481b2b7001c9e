"""The grid with a Queue: results come in the order children finish, so
each carries its own coordinates and is put in place on arrival.
(An optional argument sets the delay per cell, in seconds.)
"""
import sys
import time

import forkqueue.channels as pprocess

N = 10
LIMIT = 10
DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


def cell(i: int, j: int) -> tuple[int, int, int]:
    time.sleep(DELAY)
    return i, j, i * N + j


if __name__ == "__main__":
    arrivals = pprocess.Queue(limit=LIMIT)
    compute = arrivals.manage(pprocess.MakeParallel(cell))
    for i in range(N):
        for j in range(N):
            compute(i, j)
    grid: list[list[int | None]] = [[None] * N for _ in range(N)]
    for i, j, value in arrivals:
        grid[i][j] = value
    for row in grid:
        print(" ".join(str(v) for v in row))
