#!/usr/bin/env python3
"""The parent's CPU time for ForkQueue.map over 50,000 tiny items.

For tiny jobs the parent (which unpickles every batch) is the bottleneck,
and its CPU time, unlike wall time, hardly depends on what else the machine
runs. So this compares two builds on a busy machine, run alternately:

  for i in 1 2 3 4 5; do
    PYTHONPATH=OLD/build/python python3 bench/python/parent_cpu_forkqueue.py
    PYTHONPATH=build/python python3 bench/python/parent_cpu_forkqueue.py
    PYTHONPATH=build/python python3 bench/python/parent_cpu_forkqueue.py --timeout
  done

Prints the best and the median of 15 runs, in ms.
"""
import sys
import time

from forkqueue import ForkQueue


def inc(x):
    return x + 1


def main():
    xs = list(range(50000))
    kw = {"timeout": 60} if "--timeout" in sys.argv[1:] else {}
    q = ForkQueue(numforks=2, **kw)
    list(q.map(inc, xs[:2000]))   # warm: the refork, the batch size
    ts = []
    for _ in range(15):
        t0 = time.process_time()
        r = list(q.map(inc, xs))
        ts.append(time.process_time() - t0)
        assert r[-1] == 50000
    q.finish()
    ts.sort()
    print(f"best {ts[0] * 1e3:.2f} ms, median {ts[len(ts) // 2] * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
