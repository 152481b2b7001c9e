#!/usr/bin/env python3
"""Benchmark: awaiting forkqueue Jobs in asyncio against its baselines.

Scenarios, each with 2 workers, the pool made and warmed up beforehand:

  gather    --jobs tiny jobs (x + 1) submitted, then asyncio.gather() of all
  serial    --serial jobs awaited one after another (a round trip each)

Contenders:

  fq await       await job: the event-driven driver (forkqueue._aio)
  fq polling     the previous await: job.done() every 0.2-5 ms from the loop
  executor       loop.run_in_executor() with concurrent.futures'
                 ProcessPoolExecutor (stdlib: no virtual environment needed)

Each is repeated --reps times; the table gives the median wall time, the
parent's CPU time (what the awaiting costs the event loop's process) and the
ratio of wall times to "fq await".

Usage:
  PYTHONPATH=build/python python3 bench/python/bench_forkqueue_job.py
      [--quick] [--jobs N] [--serial N] [--reps N]

--quick runs a few jobs of each contender once and checks the results (a
smoke test, no timings asserted).
"""
import argparse
import asyncio
import concurrent.futures
import datetime
import os
import statistics
import sys
import time

from forkqueue import ForkQueue, _aio


def inc(x):
    return x + 1


async def fq_gather(q, n, poll):
    jobs = [q.submit_job(inc, i) for i in range(n)]
    if poll:
        return await asyncio.gather(*(_aio._poll_job(j) for j in jobs))
    return await asyncio.gather(*jobs)


async def fq_serial(q, n, poll):
    out = []
    for i in range(n):
        j = q.submit_job(inc, i)
        out.append(await (_aio._poll_job(j) if poll else j))
    return out


async def ex_gather(ex, n):
    aio = asyncio.get_running_loop()
    return await asyncio.gather(
        *(aio.run_in_executor(ex, inc, i) for i in range(n)))


async def ex_serial(ex, n):
    aio = asyncio.get_running_loop()
    return [await aio.run_in_executor(ex, inc, i) for i in range(n)]


def measure(coro_fn, reps, n):
    walls, cpus = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        got = asyncio.run(coro_fn())
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        assert got == [i + 1 for i in range(n)], "wrong results"
    return statistics.median(walls), statistics.median(cpus)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--serial", type=int, default=300)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if a.quick:
        a.jobs, a.serial, a.reps = 50, 10, 1
    rows = []
    with ForkQueue(numforks=2) as q, \
            concurrent.futures.ProcessPoolExecutor(2) as ex:
        # Warm up: workers forked, the callable known to them.
        asyncio.run(fq_gather(q, 20, False))
        asyncio.run(ex_gather(ex, 20))
        for name, n, runs in (
            ("gather", a.jobs, (
                ("fq await", lambda: fq_gather(q, a.jobs, False)),
                ("fq polling", lambda: fq_gather(q, a.jobs, True)),
                ("executor", lambda: ex_gather(ex, a.jobs)))),
            ("serial", a.serial, (
                ("fq await", lambda: fq_serial(q, a.serial, False)),
                ("fq polling", lambda: fq_serial(q, a.serial, True)),
                ("executor", lambda: ex_serial(ex, a.serial)))),
        ):
            base = None
            for who, fn in runs:
                wall, cpu = measure(fn, a.reps, n)
                base = base or wall
                rows.append((name, n, who, wall, cpu, wall / base))
    stamp = datetime.datetime.now(datetime.timezone.utc)
    print(f"# bench_forkqueue_job {stamp:%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"reps={a.reps}{' (quick)' if a.quick else ''}")
    print("| scenario | jobs | contender | wall (median) | per job "
          "| parent CPU | wall ratio |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, n, who, wall, cpu, ratio in rows:
        print(f"| {name} | {n} | {who} | {wall * 1e3:.1f} ms "
              f"| {wall / n * 1e6:.0f} us | {cpu * 1e3:.1f} ms "
              f"| {ratio:.2f}x |")


if __name__ == "__main__":
    main()
