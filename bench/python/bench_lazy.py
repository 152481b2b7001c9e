#!/usr/bin/env python3
"""Benchmark: forkqueue.lazy on the xfork use case.

1,000 calls of a CPU-bound function of about 1 ms, accumulated:

  sequential        total = sum of work(i), a plain loop
  lazy              total += fork(work, i) in a loop, then int(total)
                    (every call starts at once, only the end waits)
  executor          concurrent.futures.ProcessPoolExecutor: submit all,
                    then sum the result()s
  forkqueue executor  the same with forkqueue's Executor (for reference)

Each contender is warmed up (pool started, function known to the workers)
and the repetitions are interleaved, so the load of the machine weighs on
all alike. Targets (issue 12): lazy at least 1.8x the sequential loop on 2
cores, and at least as fast as ProcessPoolExecutor.

Usage:
  PYTHONPATH=build/python python3 bench/python/bench_lazy.py [--quick]
      [--reps N] [--markdown FILE]
"""
import argparse
import concurrent.futures
import datetime
import multiprocessing
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_forkqueue as bf  # noqa: E402  (calibration helpers)
import forkqueue.lazy as fork  # noqa: E402
from forkqueue._executor import Executor  # noqa: E402

LOOPS = 10_000


def work(i):
    s = i
    for k in range(LOOPS):
        s = (s * 31 + k) & 0xFFFF
    return s


def calibrate(target_s=1e-3):
    global LOOPS
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(50):
            work(i)
        per = (time.perf_counter() - t0) / 50
        LOOPS = max(100, int(LOOPS * target_s / per))
    t0 = time.perf_counter()
    for i in range(100):
        work(i)
    return (time.perf_counter() - t0) / 100


def c_sequential(n):
    return lambda: sum(work(i) for i in range(n)), (lambda: None)


def c_lazy(n):
    fork.evaluate(fork.fork(work, 0))  # pool up, `work` known to it

    def run():
        total = 0
        for i in range(n):
            total += fork.fork(work, i)
        return int(total)
    return run, fork._shutdown


def c_ppe(n):
    ex = concurrent.futures.ProcessPoolExecutor(
        mp_context=multiprocessing.get_context("fork"))
    ex.submit(work, 0).result()

    def run():
        fs = [ex.submit(work, i) for i in range(n)]
        return sum(f.result() for f in fs)
    return run, ex.shutdown


def c_fq_executor(n):
    ex = Executor()
    ex.submit(work, 0).result()

    def run():
        fs = [ex.submit(work, i) for i in range(n)]
        return sum(f.result() for f in fs)
    return run, ex.shutdown


CONTENDERS = [
    ("sequential loop", c_sequential),
    ("forkqueue.lazy fork + lazy +=", c_lazy),
    ("ProcessPoolExecutor submit + result", c_ppe),
    ("forkqueue Executor submit + result", c_fq_executor),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="100 calls, one run: a smoke test")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--markdown", help="also write the table to FILE")
    args = ap.parse_args()
    n = 100 if args.quick else 1000
    reps = 1 if args.quick else args.reps
    per_call = calibrate()
    workers = os.cpu_count() or 2
    capacity = bf.raw_capacity(workers)
    expected = sum(work(i) for i in range(n))
    active = []
    cpu = {}  # parent CPU (all its threads) per run
    try:
        for name, setup in CONTENDERS:
            run, teardown = setup(n)
            active.append((name, run, teardown, []))
        for _ in range(reps):
            for name, run, _, times in active:
                c0 = time.process_time()
                t0 = time.perf_counter()
                got = run()
                times.append(time.perf_counter() - t0)
                cpu.setdefault(name, []).append(time.process_time() - c0)
                if got != expected:
                    raise AssertionError(f"{name}: {got} != {expected}")
    finally:
        for _, _, teardown, _ in active:
            teardown()
    capacity_end = bf.raw_capacity(workers)
    med = {name: statistics.median(times) for name, _, _, times in active}
    seq = med["sequential loop"]
    started = datetime.datetime.now(datetime.timezone.utc)
    out = [f"Run {started:%Y-%m-%d %H:%M} UTC on {platform.node()} "
           f"({workers} CPUs, Python {platform.python_version()}), command "
           f"`bench/python/bench_lazy.py{' --quick' if args.quick else ''}`"
           f". Capacity of the machine at start: {capacity:.2f} CPUs of "
           f"{workers}, {capacity_end:.2f} at the end (other programs "
           f"were running). {n:,} calls of "
           f"{per_call * 1e3:.2f} ms.", "",
           "| contender | median | best | speed-up vs sequential | "
           "parent CPU per call | runs |",
           "|---|---:|---:|---:|---:|---:|"]
    for name, _, _, times in active:
        pc = statistics.median(cpu[name]) / n
        out.append(f"| {name} | {bf.fmt_time(med[name])} | "
                   f"{bf.fmt_time(min(times))} | {seq / med[name]:.2f}x | "
                   f"{pc * 1e6:.0f} us | {len(times)} |")
    lazy = med["forkqueue.lazy fork + lazy +="]
    ppe = med["ProcessPoolExecutor submit + result"]
    out += ["", "Targets:", "",
            bf.verdict(seq / lazy >= 1.8, f"{seq / lazy:.2f}x the "
                       "sequential loop (target 1.8x)"),
            bf.verdict(lazy <= ppe, f"{bf.fmt_time(lazy)} vs "
                       f"ProcessPoolExecutor {bf.fmt_time(ppe)}")]
    if args.quick:
        out.append("- not judged: --quick sizes are too small to mean "
                   "anything")
    text = "\n".join(out) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
