#!/usr/bin/env python3
"""Per-call costs of a forkqueue.workers Pool of 2 process workers, in
figures a busy machine disturbs little: the parent's CPU time per call
(time.process_time) and the workers' (/proc/PID/schedstat), medians of
--reps runs of Pool.run over --calls inputs, after one untimed run.

  PYTHONPATH=build/python python3 bench/python/percall_workers.py
  PYTHONPATH=build/python python3 bench/python/percall_workers.py --loops 0

--loops sets the work per call (the loop of bench_workers.py's cpu(); 0:
x + 1 with no loop). Instructions per call, with callgrind (it follows the
forked workers: one output file per process), are the difference between
a run of N calls and a run of none, divided by N:

  for n in 0 2000; do PYTHONPATH=build/python valgrind --tool=callgrind \\
      --callgrind-out-file=cg.$n.%p python3 bench/python/percall_workers.py \\
      --loops 0 --reps 1 --no-sequential --calls $n; done

(the parent is the largest of the three counts of a run; use the
interpreter's real path, not a shell shim, or valgrind measures the shim).
"""
import argparse
import statistics
import sys
import time

import forkqueue.workers as fw

LOOPS = 0


def work(x):
    s = x
    for i in range(LOOPS):
        s = (s * 31 + i) & 0xFFFFFFFF
    return s + 1


def sched_ns(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def main():
    global LOOPS
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--loops", type=int, default=1400)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-sequential", action="store_true",
                   help="do not time the sequential loop (for callgrind)")
    args = p.parse_args()
    LOOPS = args.loops
    pool = fw.Pool(work)
    try:
        pool.add_worker(fw.WorkerType.PROCESS)
        pool.add_worker(fw.WorkerType.PROCESS)
        assert sorted(pool.run(iter(range(50)))) == sorted(
            work(x) for x in range(50))
        if not args.calls:
            return 0
        pids = [w.pid for w in pool.workers]
        expected = sorted(work(x) for x in range(args.calls))
        parent, workers, seq = [], [], []
        for _ in range(args.reps):
            if not args.no_sequential:
                c0 = time.process_time()
                [work(x) for x in range(args.calls)]
                seq.append(time.process_time() - c0)
            w0 = sched_ns(pids)
            c0 = time.process_time()
            out = pool.run(iter(range(args.calls)))
            parent.append(time.process_time() - c0)
            workers.append((sched_ns(pids) - w0) / 1e9)
            assert sorted(out) == expected
    finally:
        pool.close()
    n = args.calls
    m = statistics.median
    print(f"{n} calls, loops {LOOPS}, median of {args.reps}: parent "
          f"{m(parent) / n * 1e6:.2f} us/call, workers "
          f"{m(workers) / n * 1e6:.2f} us/call" + (
              f", the call itself in a sequential loop "
              f"{m(seq) / n * 1e6:.2f} us" if seq else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
