#!/usr/bin/env python3
"""Benchmark: ForkQueue(worker_kind="thread") against the process kind, in
one run: 50,000 tiny items through map(), 400 items sleeping 1 ms (the
kind of work threads are for) against the sequential loop, and one add()
plus results() round trip. Medians of --reps runs.

Usage:
  PYTHONPATH=build/python python3 bench/python/bench_forkqueue_thread_kind.py
      [--quick] [--reps N] [--workers N]
"""
import argparse
import time

import _benchutil as bu
from forkqueue import ForkQueue


def inc(x):
    return x + 1


def io(x):
    time.sleep(0.001)
    return x


def med(f, reps):
    return bu.median_time(f, reps)[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--workers", type=int, default=4)
    a = p.parse_args()
    tiny, nio, reps = (2000, 40, 1) if a.quick else (50000, 400, a.reps)
    print(f"| kind ({a.workers} workers) | {tiny} tiny items | {nio} items "
          f"sleeping 1 ms | one add() + results() |")
    print("|---|---|---|---|")
    for kind in ("process", "thread"):
        with ForkQueue(numforks=a.workers, worker_kind=kind) as q:
            assert q.worker_kind == kind
            assert list(q.map(inc, range(1000))) == list(range(1, 1001))
            assert list(q.map(io, range(8))) == list(range(8))
            t_tiny = med(lambda: list(q.map(inc, range(tiny))), reps)
            t_io = med(lambda: list(q.map(io, range(nio))), reps)
            t_rt = med(lambda: (q.add(inc, (1,)), list(q.results())),
                       4 * reps + 1)
        print(f"| {kind} | {t_tiny * 1e3:.1f} ms | {t_io * 1e3:.1f} ms | "
              f"{t_rt * 1e6:.0f} us |")
    t_seq = med(lambda: [io(x) for x in range(nio)], 1)
    print(f"| sequential loop | - | {t_seq * 1e3:.1f} ms | - |")


if __name__ == "__main__":
    main()
