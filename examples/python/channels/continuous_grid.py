"""The grid with one child per row sending ten messages (Queue with
continuous=1: a channel is not done after its first message).
(An optional argument sets the delay per cell, in seconds.)
"""
import sys
import time

import forkqueue.channels as pprocess

N = 10
LIMIT = 10
DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


def row(channel: pprocess.Channel, i: int) -> None:
    for j in range(N):
        time.sleep(DELAY)
        channel.send((i, j, i * N + j))


if __name__ == "__main__":
    arrivals = pprocess.Queue(limit=LIMIT, continuous=1)
    for i in range(N):
        arrivals.start(row, i)
    grid: list[list[int | None]] = [[None] * N for _ in range(N)]
    for i, j, value in arrivals:
        grid[i][j] = value
    for r in grid:
        print(" ".join(str(v) for v in r))
