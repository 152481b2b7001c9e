#!/usr/bin/env python3
"""Benchmark: forkqueue.futures.Process start/join against its peers.

One run measures the cost of starting a child process that runs a trivial
target (returning a small value) and joining it, one pair after another:

  forkqueue.futures.Process        forked through the engine's channel,
                                   result and logging collected
  forkqueue.futures.SpawnProcess   stdlib spawn plus the same collection
  multiprocessing fork Process     stdlib, no result
  multiprocessing spawn Process    stdlib, no result
  mpservice SpawnProcess           the original (mpservice.multiprocessing),
                                   installed by this script into its own
                                   virtual environment (bench/python/.venv-futures),
                                   never a dependency of forkqueue

Fork-based contenders run --pairs pairs (2,000 by default); spawn-based ones
start a fresh interpreter per pair (tens of milliseconds each), so they run
--spawn-pairs pairs (100 by default) and are compared per pair. Each
contender is repeated --reps times; the table shows the median time per pair
and the ratio to forkqueue.futures.Process.

Usage:
  PYTHONPATH=build/python python3 bench/python/bench_futures.py [--quick]
      [--pairs N] [--spawn-pairs N] [--reps N] [--no-mpservice]
      [--markdown FILE]

--quick runs a few pairs of each forkqueue kind once and checks results
(a smoke test, no venv, no timings asserted).
"""
import argparse
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time

import _benchutil as bu
from forkqueue.futures import Process, SpawnProcess

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv-futures")


def target(x):
    return x + 1


def noop():
    pass


def run_forkqueue(cls, n):
    t0 = time.perf_counter()
    for i in range(n):
        p = cls(target=target, args=(i,))
        p.start()
        p.join()
        if p.result() != i + 1:
            raise AssertionError(f"{cls.__name__}: wrong result")
    return (time.perf_counter() - t0) / n


def run_stdlib(method, n):
    ctx = multiprocessing.get_context(method)
    t0 = time.perf_counter()
    for i in range(n):
        p = ctx.Process(target=target, args=(i,))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise AssertionError(f"stdlib {method}: exit code {p.exitcode}")
    return (time.perf_counter() - t0) / n


class _Count(__import__("logging").Handler):
    def __init__(self):
        super().__init__()
        self.n = 0

    def emit(self, record):
        self.format(record)
        self.n += 1


def log_burst(n):
    log = __import__("logging").getLogger("bench.child")
    for i in range(n):
        log.info("record %d of %s", i, "burst")


def run_logs(n):
    """Seconds for (a) the parent logging n records itself into a counting
    handler, (b) a child logging n records that the parent's same handler
    handles, start to join."""
    import logging
    h = _Count()
    log = logging.getLogger("bench")
    log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        t0 = time.perf_counter()
        log_burst(n)
        local = time.perf_counter() - t0
        h.n = 0
        t0 = time.perf_counter()
        p = Process(target=log_burst, args=(n,))
        p.start()
        p.join()
        forwarded = time.perf_counter() - t0
        if h.n != n:
            raise AssertionError(f"{h.n} of {n} records handled")
    finally:
        log.removeHandler(h)
    return local, forwarded


MPSERVICE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from mpservice.multiprocessing import SpawnProcess

    def target(x):
        return x + 1

    if __name__ == "__main__":
        n, reps = int(sys.argv[1]), int(sys.argv[2])
        p = SpawnProcess(target=target, args=(0,)); p.start(); p.join()  # warm-up
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for i in range(n):
                p = SpawnProcess(target=target, args=(i,))
                p.start()
                p.join()
                assert p.result() == i + 1
            out.append((time.perf_counter() - t0) / n)
        import mpservice
        print(json.dumps({"per_pair": out, "version": mpservice.__version__}))
""")


def ensure_venv():
    """bench/python/.venv-futures with mpservice; returns its python."""
    return bu.peer_venv(VENV, ["mpservice"], "mpservice")


def run_mpservice(n, reps):
    py = ensure_venv()
    script = os.path.join(VENV, "bench_mpservice_spawn.py")
    with open(script, "w") as f:
        f.write(MPSERVICE_SCRIPT)
    r = subprocess.run([py, script, str(n), str(reps)], capture_output=True,
                       text=True, timeout=3600, cwd=VENV)
    if r.returncode != 0:
        raise RuntimeError(f"mpservice run failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def timed(fn, reps, *args):
    fn(*args[:-1], max(1, args[-1] // 20))  # warm-up
    return [fn(*args) for _ in range(reps)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--spawn-pairs", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-mpservice", action="store_true")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--markdown")
    a = ap.parse_args()

    if a.quick:
        for cls in (Process, SpawnProcess):
            per = run_forkqueue(cls, 3)
            print(f"{cls.__name__}: {per * 1e3:.2f} ms per start/join pair (smoke)")
        local, fwd = run_logs(1000)
        print(f"1,000 records: {local * 1e3:.1f} ms logged here, {fwd * 1e3:.1f} ms forwarded (smoke)")
        return 0

    rows = []  # (name, pairs, [seconds per pair], note)
    rows.append(("forkqueue.futures.Process", a.pairs,
                 timed(run_forkqueue, a.reps, Process, a.pairs), "fork, result + logs"))
    rows.append(("multiprocessing fork Process", a.pairs,
                 timed(run_stdlib, a.reps, "fork", a.pairs), "no result"))
    rows.append(("forkqueue.futures.SpawnProcess", a.spawn_pairs,
                 timed(run_forkqueue, a.reps, SpawnProcess, a.spawn_pairs), "spawn, result + logs"))
    rows.append(("multiprocessing spawn Process", a.spawn_pairs,
                 timed(run_stdlib, a.reps, "spawn", a.spawn_pairs), "no result"))
    if not a.no_mpservice:
        try:
            got = run_mpservice(a.spawn_pairs, a.reps)
            rows.append((f"mpservice {got['version']} SpawnProcess", a.spawn_pairs,
                         got["per_pair"], "spawn, result + logs"))
        except Exception as e:  # no network, no pip: say so, do not fail
            print(f"note: mpservice skipped: {e}", file=sys.stderr)

    base = statistics.median(rows[0][2])
    lines = [
        f"Process start/join pairs, one after another "
        f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, busy shared machine; median of {a.reps})",
        "",
        "| contender | pairs | per pair (median) | pairs/s | vs forkqueue Process | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, n, per, note in rows:
        m = statistics.median(per)
        lines.append(f"| {name} | {n} | {m * 1e3:.2f} ms | {1 / m:,.0f} | "
                     f"{m / base:.1f}x slower | {note} |" if name != rows[0][0] else
                     f"| {name} | {n} | {m * 1e3:.2f} ms | {1 / m:,.0f} | 1.0x | {note} |")
    logs = [run_logs(a.records) for _ in range(a.reps)]
    local = statistics.median(x[0] for x in logs)
    fwd = statistics.median(x[1] for x in logs)
    lines += [
        "",
        f"Log forwarding: {a.records:,} records logged in a child and handled by the "
        f"parent's handler took {fwd:.2f} s from start to join; the parent logging them "
        f"itself into the same handler took {local:.2f} s "
        f"({fwd / local:.2f}x; {(fwd - local) / a.records * 1e6:.1f} us per record "
        f"more, including the child's start).",
    ]
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
