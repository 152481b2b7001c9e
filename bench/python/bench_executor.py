#!/usr/bin/env python3
"""Benchmark: forkqueue's Executor and Pool against the usual process pools.

Two workloads, run by every contender in one process, repetitions
interleaved (one run of each contender per round) so that the load of the
machine weighs on all alike:

  tiny   x + 1 on 50,000 integers (pure overhead)
  cpu    a CPU-bound function of about 100 microseconds, 5,000 calls

Contenders: a sequential loop; forkqueue Executor.map, Executor.submit +
result(), Pool.map, Pool.apply_async; multiprocessing.Pool.map (its default
chunking) and apply_async; ProcessPoolExecutor.map (chunksize chosen as
Pool.map chooses it) and submit; loky's executor.map (same chunksize);
mpire's WorkerPool.map. Each pool is created and warmed up (untimed) first.

Peers that are not part of the standard library (loky, mpire) are installed
by this script into a virtual environment of its own (build/bench-venv, or
--venv DIR), never into the interpreter that runs forkqueue: the script
re-runs itself with that environment's interpreter, with forkqueue on
PYTHONPATH. --no-venv skips them.

Targets (issue 11): tiny tasks at least as fast as the fastest peer; the
100 us tasks at least 1.8x faster than the sequential loop.

Usage:
  PYTHONPATH=build/python python3 bench/python/bench_executor.py [--quick]
      [--reps N] [--workers N] [--markdown FILE] [--no-venv] [--venv DIR]
"""
import argparse
import concurrent.futures
import datetime
import functools
import multiprocessing
import os
import platform
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _benchutil as bu  # noqa: E402
import bench_forkqueue as bf  # noqa: E402  (workloads and calibration)
from forkqueue._executor import Executor, Pool  # noqa: E402

PEERS = ["loky", "mpire"]


def cpu_loops(loops, x):
    """bench_forkqueue's CPU task with its loop count as an argument: loky
    spawns its workers, which would not see the calibrated global."""
    s = x
    for i in range(loops):
        s = (s * 31 + i) & 0xFFFFFFFF
    return s


def ensure_venv(venv):
    """Re-runs this script in a virtual environment holding the peers."""
    if os.environ.get("FQ_BENCH_IN_VENV"):
        return
    py = bu.peer_venv(venv, PEERS, "loky, mpire")
    env = dict(os.environ, FQ_BENCH_IN_VENV="1",
               PYTHONPATH=bu.forkqueue_path(HERE))
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)


def pool_chunksize(n, workers):
    """The chunk size multiprocessing.Pool.map picks by default."""
    c, extra = divmod(n, workers * 4)
    return c + 1 if extra else max(c, 1)


# ---- contenders: setup(workers) -> (run(f, xs) -> list, teardown) ----------

def c_sequential(workers):
    return (lambda f, xs: [f(x) for x in xs]), (lambda: None)


def c_ex_map(workers):
    ex = Executor(workers)
    return (lambda f, xs: list(ex.map(f, xs))), ex.shutdown


def c_ex_submit(workers):
    ex = Executor(workers)

    def run(f, xs):
        fs = [ex.submit(f, x) for x in xs]
        return [fut.result() for fut in fs]
    return run, ex.shutdown


def _pool_map(p):
    return (lambda f, xs: p.map(f, xs)), p.terminate


def _pool_apply(p):
    def run(f, xs):
        rs = [p.apply_async(f, (x,)) for x in xs]
        return [r.get() for r in rs]
    return run, p.terminate


def _mp(workers):
    return multiprocessing.get_context("fork").Pool(workers)


def c_fq_pool_map(workers):
    return _pool_map(Pool(workers))


def c_fq_pool_apply(workers):
    return _pool_apply(Pool(workers))


def c_mp_map(workers):
    return _pool_map(_mp(workers))


def c_mp_apply(workers):
    return _pool_apply(_mp(workers))


def _ppe(workers):
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"))


def c_ppe_map(workers):
    ex = _ppe(workers)
    return ((lambda f, xs: list(ex.map(
        f, xs, chunksize=pool_chunksize(len(xs), workers)))), ex.shutdown)


def c_ppe_submit(workers):
    ex = _ppe(workers)

    def run(f, xs):
        fs = [ex.submit(f, x) for x in xs]
        return [fut.result() for fut in fs]
    return run, ex.shutdown


def c_loky(workers):
    from loky import get_reusable_executor
    ex = get_reusable_executor(max_workers=workers)
    return ((lambda f, xs: list(ex.map(
        f, xs, chunksize=pool_chunksize(len(xs), workers)))),
        (lambda: ex.shutdown()))


def c_mpire(workers):
    from mpire import WorkerPool
    pool = WorkerPool(n_jobs=workers, start_method="fork")
    return ((lambda f, xs: pool.map(f, xs, progress_bar=False)),
            pool.terminate)


OURS = ["forkqueue Executor.map", "forkqueue Pool.map",
        "forkqueue Executor.submit", "forkqueue Pool.apply_async"]
CONTENDERS = [
    ("sequential loop", c_sequential, True),
    ("forkqueue Executor.map", c_ex_map, True),
    ("forkqueue Pool.map", c_fq_pool_map, True),
    ("forkqueue Executor.submit", c_ex_submit, False),
    ("forkqueue Pool.apply_async", c_fq_pool_apply, False),
    ("multiprocessing Pool.map", c_mp_map, True),
    ("multiprocessing Pool.apply_async", c_mp_apply, False),
    ("ProcessPoolExecutor.map", c_ppe_map, True),
    ("ProcessPoolExecutor.submit", c_ppe_submit, False),
    ("loky executor.map", c_loky, True),
    ("mpire WorkerPool.map", c_mpire, True),
]


def run_workload(title, func, n, workers, reps, budget_s):
    setups = [(name, setup) for name, setup, _batch in CONTENDERS]
    active, notes = bu.time_map(setups, workers, func, n, 500, reps,
                                budget_s)
    med = {c["name"]: statistics.median(c["times"]) for c in active}
    seq = med["sequential loop"]
    lines = [f"### {title}", "",
             "| contender | median | best | items/s | speed-up vs "
             "sequential | runs |", "|---|---:|---:|---:|---:|---:|"]
    for c in active:
        m = med[c["name"]]
        lines.append(f"| {c['name']} | {bu.fmt_time(m)} | "
                     f"{bu.fmt_time(min(c['times']))} | {n / m:,.0f} | "
                     f"{seq / m:.2f}x | {len(c['times'])} |")
        print(f"  {c['name']:34s} {m * 1e3:10.2f} ms", file=sys.stderr,
              flush=True)
    for note in notes:
        lines += ["", f"Note: {note}."]
    return lines, med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, one run: a smoke test")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--markdown", help="also write the tables to FILE")
    ap.add_argument("--no-venv", action="store_true",
                    help="do not install loky and mpire (skip them)")
    ap.add_argument("--venv", default=os.path.join(
        os.path.dirname(os.path.dirname(HERE)), "build", "bench-venv"))
    args = ap.parse_args()
    if not args.no_venv and not args.quick:
        ensure_venv(args.venv)
    reps = 1 if args.quick else args.reps
    n_tiny, n_cpu = (2000, 200) if args.quick else (50_000, 5_000)
    per_call = bf.calibrate()
    capacity = bf.raw_capacity(args.workers)
    started = datetime.datetime.now(datetime.timezone.utc)
    out = [f"Run {started:%Y-%m-%d %H:%M} UTC on {platform.node()} "
           f"({os.cpu_count()} CPUs, Python {platform.python_version()}), "
           f"{args.workers} workers, command `bench/python/bench_executor.py"
           f"{' --quick' if args.quick else ''}`. Capacity of the machine "
           f"at start: {capacity:.2f} CPUs of {args.workers} (other "
           f"programs were running). CPU task: {per_call * 1e6:.0f} us.",
           ""]
    t_lines, t = run_workload(f"tiny: x + 1 on {n_tiny:,} items", bf.inc,
                              n_tiny, args.workers, reps, 30)
    c_lines, c = run_workload(
        f"cpu: {n_cpu:,} calls of about 100 us",
        functools.partial(cpu_loops, bf.CPU_LOOPS), n_cpu,
        args.workers, reps, 60)
    out += t_lines + [""] + c_lines + [""]
    peers_batch = [n for n, _, b in CONTENDERS
                   if b and n in t and n not in OURS
                   and n != "sequential loop"]
    best_peer = min(peers_batch, key=lambda n: t[n])
    ours_best = min(("forkqueue Executor.map", "forkqueue Pool.map"),
                    key=lambda n: t[n])
    ok1 = t[ours_best] <= t[best_peer]
    speed = c["sequential loop"] / min(c["forkqueue Executor.map"],
                                       c["forkqueue Pool.map"])
    ok2 = speed >= 1.8
    out += ["Targets:", "",
            bu.verdict(ok1, f"tiny tasks: {ours_best} "
                       f"{bu.fmt_time(t[ours_best])} vs the fastest peer, "
                       f"{best_peer}, {bu.fmt_time(t[best_peer])}"),
            bu.verdict(ok2, f"100 us tasks: {speed:.2f}x the sequential "
                       "loop (target 1.8x)")]
    if args.quick:
        out.append(bu.NOT_JUDGED)
    return bu.finish(out, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
