"""The grid with Exchange.create(), fork style: the child gets its channel
back and continues from the call, so it must end with exit().
(An optional argument sets the delay per cell, in seconds.)
"""
import sys
import time

import forkqueue.channels as pprocess

N = 10
LIMIT = 10
DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


class GridFiller(pprocess.Exchange):
    grid: list[list[int | None]]

    def store_data(self, channel: pprocess.Channel) -> None:
        i, j, value = channel.receive()
        self.grid[i][j] = value


if __name__ == "__main__":
    filler = GridFiller(limit=LIMIT)
    filler.grid = [[None] * N for _ in range(N)]
    for i in range(N):
        for j in range(N):
            channel = filler.create()  # waits while LIMIT children run
            if channel:  # in the child
                time.sleep(DELAY)
                channel.send((i, j, i * N + j))
                pprocess.exit(channel)
    filler.finish()
    for row in filler.grid:
        print(" ".join(str(v) for v in row))
