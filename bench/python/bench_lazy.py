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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _benchutil as bu  # noqa: E402
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
    return bu.calibrate(work, sys.modules[__name__], "LOOPS", target_s,
                        probe=50, floor=100, check=100)


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

    def check(c, got):
        if got != expected:
            raise AssertionError(f"{c['name']}: {got} != {expected}")

    # c["cpu"]: the parent's CPU (all its threads) per run.
    with bu.contenders(CONTENDERS, n) as (active, _):
        bu.rounds(active, reps, lambda c: c["run"](), check)
    capacity_end = bf.raw_capacity(workers)
    med = {c["name"]: statistics.median(c["times"]) for c in active}
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
    for c in active:
        name, times = c["name"], c["times"]
        pc = statistics.median(c["cpu"]) / n
        out.append(f"| {name} | {bu.fmt_time(med[name])} | "
                   f"{bu.fmt_time(min(times))} | {seq / med[name]:.2f}x | "
                   f"{pc * 1e6:.0f} us | {len(times)} |")
    lazy = med["forkqueue.lazy fork + lazy +="]
    ppe = med["ProcessPoolExecutor submit + result"]
    out += ["", "Targets:", "",
            bu.verdict(seq / lazy >= 1.8, f"{seq / lazy:.2f}x the "
                       "sequential loop (target 1.8x)"),
            bu.verdict(lazy <= ppe, f"{bu.fmt_time(lazy)} vs "
                       f"ProcessPoolExecutor {bu.fmt_time(ppe)}")]
    if args.quick:
        out.append(bu.NOT_JUDGED)
    return bu.finish(out, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
