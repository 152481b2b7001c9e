#!/usr/bin/env python3
"""Benchmark: forkqueue.ForkQueue against the usual Python process pools.

Two workloads, each run by every contender in one process on one machine:

  tiny   x + 1 on 50,000 integers (pure overhead: dispatch, pickling, IPC)
  cpu    a CPU-bound function of about 100 microseconds, 20,000 calls

Contenders: a sequential loop, ForkQueue.map and .process (ordered and
unordered, and map with a time limit, whose cost is judged, also in ABBA
pairs of its own), multiprocessing.Pool.map with chunksize=1 and with its default
chunking, Pool.imap_unordered, concurrent.futures.ProcessPoolExecutor.map,
mpire.WorkerPool.map and loky's reusable executor. mpire and loky are optional
(install them with `python3 -m pip install mpire loky`); a contender whose
module is missing is skipped with a note; --peers-venv DIR installs them
into a virtual environment of their own and runs the benchmark there.

Every pool is created, warmed up with one untimed run, then timed over
several repetitions; the table shows the median wall time, the throughput,
the ratio to ForkQueue.map, and the CPU time of the parent process (which
other programs' load disturbs far less than wall time). Pools use as many workers as there are CPUs.

Usage:
  PYTHONPATH=build/python python3 bench/python/bench_forkqueue.py [--quick]
      [--reps N] [--workers N] [--markdown FILE]

--quick runs tiny sizes once (a smoke test: it checks results, never
timings).
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

import _benchutil as bu
import forkqueue
from forkqueue import ForkQueue

# ---- workloads ----------------------------------------------------------


def inc(x):
    return x + 1


CPU_LOOPS = 1000  # calibrated at start-up to about 100 us per call


def cpu(x):
    s = x
    for i in range(CPU_LOOPS):
        s = (s * 31 + i) & 0xFFFFFFFF
    return s


def calibrate(target_s=100e-6):
    return bu.calibrate(cpu, sys.modules[__name__], "CPU_LOOPS", target_s,
                        probe=200, floor=10, check=500)


def raw_capacity(workers, loops=2_000_000):
    """How many CPUs' worth of work `workers` forked processes get done in
    parallel right now, relative to one process: 2.0 on an idle 2-CPU
    machine, less when other programs compete for the CPUs. It bounds the
    speed-up any pool can show."""
    def spin():
        s = 0
        for i in range(loops):
            s = (s * 31 + i) & 0xFFFFFFFF
        return s
    return bu.capacity(spin, workers)


# ---- contenders ---------------------------------------------------------
# Each is (name, setup) where setup(workers) returns (run, teardown) and
# run(func, items) returns the list of results.


def c_sequential(workers):
    return (lambda f, xs: [f(x) for x in xs]), (lambda: None)


def c_fq_map(ordered=True, timeout=None):
    def setup(workers):
        kw = {} if timeout is None else {"timeout": timeout}
        q = ForkQueue(numforks=workers, ordered=ordered, **kw)
        return (lambda f, xs: list(q.map(f, xs))), q.finish
    return setup


def c_fq_process(workers):
    q = ForkQueue(numforks=workers)
    return ((lambda f, xs: list(q.process(f, ((x,) for x in xs)))),
            q.finish)


def _mp_pool(workers):
    return multiprocessing.get_context("fork").Pool(workers)


def c_pool_map(chunksize):
    def setup(workers):
        pool = _mp_pool(workers)

        def teardown():
            pool.close()
            pool.join()
        if chunksize is None:
            return (lambda f, xs: pool.map(f, xs)), teardown
        return (lambda f, xs: pool.map(f, xs, chunksize=chunksize)), teardown
    return setup


def c_pool_imap_unordered(workers):
    pool = _mp_pool(workers)

    def run(f, xs):
        return sorted(pool.imap_unordered(f, xs))

    def teardown():
        pool.close()
        pool.join()
    return run, teardown


def c_ppe(workers):
    ex = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"))
    return (lambda f, xs: list(ex.map(f, xs))), ex.shutdown


def c_mpire(workers):
    from mpire import WorkerPool
    pool = WorkerPool(n_jobs=workers, start_method="fork")

    def run(f, xs):
        return pool.map(f, xs, progress_bar=False)
    return run, pool.terminate


def c_loky(workers):
    from loky import get_reusable_executor
    ex = get_reusable_executor(max_workers=workers)
    return (lambda f, xs: list(ex.map(f, xs))), (lambda: ex.shutdown())


CONTENDERS = [
    ("ForkQueue.map", c_fq_map(True)),
    ("ForkQueue.process", c_fq_process),
    ("ForkQueue.map (ordered=False)", c_fq_map(False)),
    ("ForkQueue.map (timeout=60)", c_fq_map(True, 60)),
    ("sequential loop", c_sequential),
    ("Pool.map chunksize=1", c_pool_map(1)),
    ("Pool.map default chunksize", c_pool_map(None)),
    ("Pool.imap_unordered", c_pool_imap_unordered),
    ("ProcessPoolExecutor.map", c_ppe),
    ("mpire WorkerPool.map", c_mpire),
    ("loky executor.map", c_loky),
]

# ---- measuring ----------------------------------------------------------


def run_workload(title, func, n, workers, reps, budget_s, only=None):
    """Times every contender on func over range(n).

    All pools are started first and the repetitions are interleaved (one
    run of each contender per round, each round starting one contender
    later), so that a change in the machine's load during the benchmark
    affects every contender alike. A contender whose
    runs exceed budget_s in total stops after 3 runs."""
    # The warm-up starts the workers (for ForkQueue, the one refork a
    # callable new to the queue costs); a slice keeps it short. Each round
    # starts with another contender: the first of a round runs right after
    # the previous round's last (a pool whose workers may still be
    # exiting), and must not always be the same.
    setups = [(name, setup) for name, setup in CONTENDERS
              if not only or name in only]
    active, notes = bu.time_map(setups, workers, func, n, 2000, reps,
                                budget_s, sort=True, rotate=True)
    rows = []
    for c in active:
        times = c["times"]
        rows.append((c["name"], statistics.median(times), len(times),
                     min(times), statistics.median(c["cpu"])))
        print(f"  {c['name']:32s} {statistics.median(times) * 1e3:10.2f} ms "
              f"(median of {len(times)})", file=sys.stderr, flush=True)
    ref = {r[0]: r[1] for r in rows}.get("ForkQueue.map")
    lines = [f"### {title}", "",
             "| contender | median time | best | items/s (median) "
             "| median / ForkQueue.map | parent CPU (median) | runs |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, med, k, best, cpu in rows:
        ratio = f"{med / ref:.2f}x" if ref else "-"
        lines.append(f"| {name} | {fmt_time(med)} | {fmt_time(best)} | "
                     f"{n / med:,.0f} | {ratio} | {fmt_time(cpu)} | {k} |")
    for note in notes:
        lines.append("")
        lines.append(f"Note: {note}.")
    return lines, {r[0]: r[1] for r in rows}


def time_limit_cost(func, n, workers, pairs):
    """What a time limit costs, measured in pairs: ForkQueue.map with and
    without timeout=60, on two queues started and warmed alike, run one
    after the other in alternating order (ABBA), so that neither always
    follows the same run or gets the same slice of the machine's load.
    Returns the medians of the pairs' ratios (with / without) of wall time
    and of the parent's CPU time."""
    xs = list(range(n))
    plain = ForkQueue(numforks=workers)
    limited = ForkQueue(numforks=workers, timeout=60)
    try:
        for q in (plain, limited):
            list(q.map(func, xs[:2000]))
        wall, cpu_ = [], []
        for p in range(pairs):
            got = {}
            for q in (plain, limited) if p % 2 == 0 else (limited, plain):
                c0 = time.process_time()
                t0 = time.perf_counter()
                out = list(q.map(func, xs))
                got[q] = (time.perf_counter() - t0, time.process_time() - c0)
                if out[-1] != func(xs[-1]):
                    raise AssertionError("time limit pairs: wrong results")
                out = None
            wall.append(got[limited][0] / got[plain][0])
            cpu_.append(got[limited][1] / max(got[plain][1], 1e-9))
        return statistics.median(wall), statistics.median(cpu_)
    finally:
        plain.finish()
        limited.finish()


fmt_time = bu.fmt_time
verdict = bu.verdict


def run_in_peers_venv(venv):
    """The peers are benchmark baselines, never dependencies of forkqueue:
    they go into a venv of their own (which sees this interpreter's
    packages, and forkqueue through PYTHONPATH)."""
    import subprocess
    py = bu.peer_venv(venv, ["mpire", "loky"], "mpire, loky",
                      system_site=True)
    argv = [a for a in sys.argv[1:] if not a.startswith("--peers-venv")]
    if "--peers-venv" in sys.argv[1:]:
        i = sys.argv.index("--peers-venv")
        argv = sys.argv[1:i] + sys.argv[i + 2:]
    return subprocess.run([py, os.path.abspath(__file__), *argv]).returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, one run each: a smoke test")
    ap.add_argument("--reps", type=int, default=7,
                    help="timed runs per contender (default 7)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--markdown", help="also write the report to this file")
    ap.add_argument("--only", action="append",
                    help="run only this contender (repeatable)")
    ap.add_argument("--peers-venv", metavar="DIR",
                    help="create (or reuse) a virtual environment in DIR "
                    "with mpire and loky, and run the benchmark in it")
    args = ap.parse_args()
    if args.peers_venv:
        return run_in_peers_venv(args.peers_venv)

    if args.quick:
        n_tiny, n_cpu, reps, budget = 2000, 100, 1, 0.0
    else:
        n_tiny, n_cpu, reps, budget = 50000, 20000, args.reps, 15.0
    per_call = calibrate(20e-6 if args.quick else 100e-6)

    stamp = datetime.datetime.now(datetime.timezone.utc)
    head = [
        f"Measured {stamp:%Y-%m-%d %H:%M} UTC on {platform.platform()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"forkqueue core {forkqueue.CORE_VERSION}; "
        f"{args.workers} workers for every pool; load average at start "
        f"{os.getloadavg()[0]:.2f}.",
        "",
        "Command: `PYTHONPATH=build/python python3 "
        "bench/python/bench_forkqueue.py" + (" --quick" if args.quick
                                             else "") + "`",
        "",
    ]
    print("tiny jobs", file=sys.stderr)
    t_lines, tiny = run_workload(
        f"Tiny jobs: x + 1, {n_tiny:,} items", inc, n_tiny, args.workers,
        reps, budget, args.only)
    pairs = 1 if args.quick else max(2 * reps, 10)
    print("time limit pairs", file=sys.stderr)
    tl_wall, tl_cpu = time_limit_cost(inc, n_tiny, args.workers, pairs)
    t_lines += ["", f"A time limit, measured in {pairs} ABBA pairs of "
                f"ForkQueue.map without and with timeout=60 (tiny jobs): "
                f"median ratio {tl_wall:.3f} of wall time, {tl_cpu:.3f} of "
                f"the parent's CPU time."]
    print("cpu jobs", file=sys.stderr)
    cap_before = raw_capacity(args.workers, 200_000 if args.quick
                              else 2_000_000)
    c_lines, cpuj = run_workload(
        f"CPU-bound jobs: {per_call * 1e6:.0f} us each, {n_cpu:,} items", cpu,
        n_cpu, args.workers, reps, budget, args.only)

    cap_after = raw_capacity(args.workers, 200_000 if args.quick
                             else 2_000_000)
    c_lines += ["", f"Raw parallel capacity of the machine ({args.workers} "
                f"forked spinning processes against one): "
                f"{cap_before:.2f}x before the CPU-bound runs, "
                f"{cap_after:.2f}x after ({args.workers}.00x on an idle "
                f"machine): the bound on any pool's speed-up."]
    summary = ["### Targets", ""]
    if args.quick:
        summary.append(bu.NOT_JUDGED)
        tiny = cpuj = {}
    fq = tiny.get("ForkQueue.map")
    if fq and "Pool.map chunksize=1" in tiny:
        r = tiny["Pool.map chunksize=1"] / fq
        summary.append(verdict(r >= 20, f"tiny jobs, ForkQueue.map is "
                               f"{r:.1f}x faster than Pool.map(chunksize=1) "
                               f"(target >= 20x)"))
    if fq and "Pool.map default chunksize" in tiny:
        r = tiny["Pool.map default chunksize"] / fq
        summary.append(verdict(r > 1, f"tiny jobs, ForkQueue.map is {r:.2f}x "
                               f"as fast as Pool.map with its default "
                               f"chunking (target > 1x)"))
    fqc = cpuj.get("ForkQueue.map")
    if fqc and "sequential loop" in cpuj:
        r = cpuj["sequential loop"] / fqc
        cap = (cap_before + cap_after) / 2
        summary.append(verdict(r >= 1.9, f"{per_call * 1e6:.0f}-us jobs, "
                               f"ForkQueue.map is {r:.2f}x faster than the "
                               f"sequential loop with {args.workers} workers "
                               f"(target >= 1.9x on 2 cores); raw parallel "
                               f"capacity of the machine around these runs: "
                               f"{cap:.2f}x"))
    if not args.quick:
        a, b = tiny.get("ForkQueue.map"), tiny.get("ForkQueue.map (timeout=60)")
        medians = (f"; ratio of the rounds' medians {(b / a - 1) * 100:+.1f}%"
                   if a and b else "")
        summary.append(verdict(tl_wall <= 1.05, f"tiny jobs, a time limit "
                               f"costs {(tl_wall - 1) * 100:+.1f}% (median "
                               f"of {pairs} ABBA pairs; parent CPU "
                               f"{(tl_cpu - 1) * 100:+.1f}%{medians}) "
                               f"(target <= 5%)"))
    a, b = cpuj.get("ForkQueue.map"), cpuj.get("ForkQueue.map (timeout=60)")
    if a and b:
        summary.append(verdict(b / a <= 1.05, f"cpu-bound jobs, a time limit "
                               f"costs {(b / a - 1) * 100:+.1f}% "
                               f"(target <= 5%)"))
    return bu.finish(head + t_lines + [""] + c_lines + [""] + summary,
                     args.markdown)


if __name__ == "__main__":
    sys.exit(main())
