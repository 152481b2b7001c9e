# "Contagious" laziness: adding a proxy to a number gives a proxy, so the
# loop below starts all 1,000 calls without waiting for any of them, and
# only print() waits, once, for the total.
import time

import forkqueue.lazy as fork


def size_of(n: int) -> int:
    """Stands for real work, such as writing a thumbnail: about 1 ms."""
    time.sleep(0.001)
    return n % 7 + 1


total = 0
for n in range(1000):
    total += fork.fork(size_of, n)  # returns at once

print("still lazy:", type(total).__name__)
print("total size:", total)  # waits here
print("plain value:", fork.evaluate(total) == 3997)
