#!/usr/bin/env python3
"""Benchmark: forkqueue.workers against the original pyworkers and
multiprocessing.Pool (issue 9, point 6).

In one run, on the same inputs:

  tiny     x + 1, 20,000 calls (pure overhead)
  cpu      a CPU-bound call of about 100 us, 2,000 calls
  create   creating a process worker and waiting for a trivial call

Contenders: a sequential loop; forkqueue.workers Pool of 2 process workers;
the same Pool with 2 remote workers on a server on loopback; pyworkers' Pool
of 2 process workers (the original library, pip-installed into the
benchmark's own virtual environment, run in a child interpreter of that
environment); multiprocessing.Pool(2).map.

The contenders of a workload run in interleaved rounds (one run of each
per round, each round starting one contender later), the machine's
capacity (2 forked processes spinning) measured once per round of the
100 us calls, so that a change in the machine's load weighs on all alike;
every run is checked against the sequential loop's results. The tables
show medians of --reps rounds, the ratios the issue sets targets for, the
CPU time of the parent (the process calling run/map) per call and, where
the workers' pids are known, the workers' CPU time per call
(/proc/PID/schedstat): minus the sequential loop's time per call, that is
the worker's overhead. pyworkers runs in its own environment, after the
rounds. --quick: small sizes, one run, no pyworkers (a smoke test of the
script; its figures mean nothing).

Usage:
  PYTHONPATH=build/python python3 bench/python/bench_workers.py [--quick]
      [--reps N] [--venv DIR] [--no-pyworkers]
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
import time

import _benchutil as bu

# spawned pyworkers processes import this file again: they read it here
CPU_LOOPS = int(os.environ.get("BENCH_WORKERS_LOOPS", "1000"))


def inc(x):
    return x + 1


def cpu(x):
    s = x
    for i in range(CPU_LOOPS):
        s = (s * 31 + i) & 0xFFFFFFFF
    return s


def noop():
    return 1


def calibrate(target_s=100e-6):
    """Sets CPU_LOOPS for a call of about target_s of CPU time. CPU time,
    not wall time: on a busy machine a call's wall time counts the other
    programs' turns, and a wall-time calibration made the call two to five
    times shorter from one run to the next."""
    global CPU_LOOPS
    for _ in range(3):
        c0 = time.process_time()
        for x in range(200):
            cpu(x)
        per = (time.process_time() - c0) / 200
        CPU_LOOPS = max(1, int(CPU_LOOPS * target_s / max(per, 1e-7)))
    return CPU_LOOPS


def median_time(fn, reps):
    """Median wall seconds of ``fn()``; the median CPU seconds the calling
    process spent in it (the parent's share of the work: dispatching,
    pickling, reading results) is left in ``median_time.cpu``."""
    t, median_time.cpu, _ = bu.median_time(fn, reps)
    return t


def sched_ns(pids):
    """CPU nanoseconds the processes ``pids`` have run (None if unknown)."""
    if not pids:
        return None
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return total


# ---- contenders -----------------------------------------------------------
# Each is (key, setup) where setup(target) returns (run, pids, teardown):
# run(xs) returns the list of results, pids() the worker processes' pids.


def c_sequential(target):
    return (lambda xs: [target(x) for x in xs]), (lambda: ()), (lambda: None)


def fq_pool(api, make_workers):
    def setup(target):
        pool = api.Pool(target)
        try:
            make_workers(pool)
        except BaseException:
            pool.close()
            raise
        return (lambda xs: pool.run(iter(xs)),
                lambda: [w.pid for w in pool.workers],
                pool.close)
    return setup


def mp_pool(how):
    def setup(target):
        pool = multiprocessing.get_context("fork").Pool(2)
        if how == "map":
            def run(xs):
                return pool.map(target, xs)
        else:
            # one task per call, results as they come: the discipline
            # Pool.run keeps (per-input outcomes, completion order)
            def run(xs):
                return list(pool.imap_unordered(target, xs))

        def teardown():
            pool.terminate()
            pool.join()
        return run, lambda: [p.pid for p in pool._pool], teardown
    return setup


def rounds(setups, target, n, reps, res, suffix, capacity=None):
    """Times every contender of setups on target over range(n) in
    interleaved rounds (after one untimed run of 50 items each) and stores
    into res, for each key: the median wall seconds (key + suffix), the
    parent's median CPU seconds (+ "_pcpu") and the workers' (+ "_wcpu").
    capacity(), if given, runs once per round; the median goes to
    res["capacity"], every value to res["capacities"]."""
    xs = list(range(n))
    expected = sorted(target(x) for x in xs)
    active = []
    try:
        for key, setup in setups:
            run, pids, teardown = setup(target)
            active.append((key, run, pids, teardown, [], [], []))
            out = run(list(range(50)))
            assert sorted(out) == sorted(target(x) for x in range(50)), key
        caps = []
        for r in range(reps):
            k = r % len(active)
            for key, run, pids, _, times, cpus, wcpus in (active[k:] +
                                                          active[:k]):
                w0 = sched_ns(pids())
                c0 = time.process_time()
                t0 = time.perf_counter()
                out = run(xs)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                w1 = sched_ns(pids())
                if w0 is not None and w1 is not None:
                    wcpus.append((w1 - w0) / 1e9)
                if sorted(out) != expected:
                    raise AssertionError(f"{key}: wrong results")
            if capacity is not None:
                caps.append(capacity())
        for key, _, _, _, times, cpus, wcpus in active:
            res[key + suffix] = statistics.median(times)
            res[key + suffix + "_pcpu"] = statistics.median(cpus)
            if wcpus and key != "seq":
                res[key + suffix + "_wcpu"] = statistics.median(wcpus)
        if caps:
            res["capacity"] = statistics.median(caps)
            res["capacities"] = caps
    finally:
        for _, _, _, teardown, *_ in active:
            teardown()


def measure_create(api, reps):
    def once():
        w = api.ProcessWorker(noop)
        assert w.wait(60) and w.result == 1
    once()
    return median_time(once, reps)


def run_pool(api, make_workers, target, n, reps):
    """A warmed-up pool of the given library; median seconds of run()
    (for pyworkers, in its own environment)."""
    pool = api.Pool(target)
    try:
        make_workers(pool)
        out = pool.run(iter(range(50)))
        assert len(out) == 50
        expected = sorted(target(x) for x in range(n))

        def once():
            res = pool.run(iter(range(n)))
            assert len(res) == n
            once.last = res
        t = median_time(once, reps)
        assert sorted(once.last) == expected
        return t, median_time.cpu
    finally:
        pool.close()


def measure_all(args):
    """Every contender but pyworkers, in interleaved rounds per workload."""
    import forkqueue.workers as fw
    from bench_forkqueue import raw_capacity  # shared with that benchmark

    def two(kind, **kw):
        def make(pool):
            pool.add_worker(kind, **kw)
            pool.add_worker(kind, **kw)
        return make

    loops = 200_000 if args.quick else 1_000_000
    res = {}
    server = fw.spawn_server(("127.0.0.1", 0))
    try:
        local = fq_pool(fw, two(fw.WorkerType.PROCESS))
        remote = fq_pool(fw, two(fw.WorkerType.REMOTE, host=server.addr))
        rounds([("seq", c_sequential), ("fq", local), ("fq_remote", remote),
                ("mp", mp_pool("map"))], inc, args.tiny, args.reps, res,
               "_tiny")
        rounds([("seq", c_sequential), ("fq", local), ("fq_remote", remote),
                ("mp", mp_pool("map")), ("mpu", mp_pool("unordered"))],
               cpu, args.cpu, args.reps, res, "_cpu",
               capacity=lambda: raw_capacity(2, loops))
    finally:
        server.terminate()
    res["fq_create"] = measure_create(fw, max(args.reps, 10))
    return res


def pyworkers_side(args):
    """Runs inside the pyworkers virtual environment."""
    global CPU_LOOPS
    CPU_LOOPS = args.loops
    os.environ["BENCH_WORKERS_LOOPS"] = str(args.loops)
    import pyworkers.pool
    import pyworkers.process
    from pyworkers.worker import WorkerType

    class Api:
        Pool = pyworkers.pool.Pool
        ProcessWorker = pyworkers.process.ProcessWorker

    def two_process(pool):
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)

    res = {}
    res["pw_tiny"], res["pw_tiny_pcpu"] = run_pool(Api, two_process, inc,
                                                   args.tiny, args.reps)
    res["pw_cpu"], res["pw_cpu_pcpu"] = run_pool(Api, two_process, cpu,
                                                 args.cpu, args.reps)
    res["pw_create"] = measure_create(Api, max(3, args.reps))
    print(json.dumps(res))


def ensure_venv(path):
    return bu.peer_venv(path, ["pyworkers"], "pyworkers")


def pyworkers(args):
    py = ensure_venv(args.venv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [py, os.path.abspath(__file__), "--pyworkers-side",
         "--loops", str(CPU_LOOPS), "--tiny", str(args.tiny),
         "--cpu", str(args.cpu), "--reps", str(args.reps)],
        env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"pyworkers run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(r, args):
    def row(name, key, n):
        t = r.get(key)
        if t is None:
            return f"| {name} | - | - | - | - |"
        c = r.get(key + "_pcpu")
        c = "-" if c is None else f"{c / n * 1e6:.2f} us"
        w = r.get(key + "_wcpu")
        w = "-" if w is None else f"{w / n * 1e6:.2f} us"
        return (f"| {name} | {t * 1000:.1f} ms | {t / n * 1e6:.1f} us "
                f"| {c} | {w} |")

    lines = [
        f"bench_workers: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, cpu call = {CPU_LOOPS} loops, "
        f"median of {args.reps}",
        "",
        f"CPU capacity of 2 forked processes (median of the rounds of the "
        f"100 us calls): {r['capacity']:.2f} CPUs (2.00 on an idle 2-CPU "
        f"machine; it bounds every speed-up below; per round: "
        f"{', '.join(f'{c:.2f}' for c in r.get('capacities', []))})",
        "",
        f"| tiny calls ({args.tiny}) | wall | per call "
        "| parent CPU per call | workers' CPU per call |",
        "|---|---|---|---|---|",
        row("sequential loop", "seq_tiny", args.tiny),
        row("forkqueue.workers Pool, 2 process workers", "fq_tiny", args.tiny),
        row("forkqueue.workers Pool, 2 remote workers", "fq_remote_tiny",
            args.tiny),
        row("pyworkers Pool, 2 process workers", "pw_tiny", args.tiny),
        row("multiprocessing.Pool(2).map", "mp_tiny", args.tiny),
        "",
        f"| ~100 us calls ({args.cpu}) | wall | per call "
        "| parent CPU per call | workers' CPU per call |",
        "|---|---|---|---|---|",
        row("sequential loop", "seq_cpu", args.cpu),
        row("forkqueue.workers Pool, 2 process workers", "fq_cpu", args.cpu),
        row("forkqueue.workers Pool, 2 remote workers", "fq_remote_cpu",
            args.cpu),
        row("pyworkers Pool, 2 process workers", "pw_cpu", args.cpu),
        row("multiprocessing.Pool(2).map", "mp_cpu", args.cpu),
        row("multiprocessing.Pool(2).imap_unordered", "mpu_cpu", args.cpu),
        "",
        "| create a process worker, wait for a trivial call | median |",
        "|---|---|",
        f"| forkqueue.workers | {r['fq_create'] * 1000:.2f} ms |",
    ]
    if "pw_create" in r:
        lines.append(f"| pyworkers | {r['pw_create'] * 1000:.2f} ms |")
    lines += ["", "| target (issue 9) | measured | met |", "|---|---|---|"]

    def target(name, value, goal, higher=True):
        if value is None:
            return f"| {name} | - | - |"
        ok = value >= goal if higher else value <= goal
        return f"| {name} | {value:.2f}x | {'yes' if ok else 'NO'} |"

    pw = r.get("pw_tiny")
    lines.append(target("tiny calls vs pyworkers (>= 10x)",
                        pw / r["fq_tiny"] if pw else None, 10))
    lines.append(target("100 us calls vs sequential (>= 1.8x)",
                        r["seq_cpu"] / r["fq_cpu"], 1.8))
    lines.append(f"| (same rounds: multiprocessing.Pool.map vs sequential) "
                 f"| {r['seq_cpu'] / r['mp_cpu']:.2f}x | - |")
    lines.append(target("remote / local process, 100 us calls (<= 2x)",
                        r["fq_remote_cpu"] / r["fq_cpu"], 2.0, higher=False))
    pc = r.get("pw_create")
    lines.append(target("creating a process worker vs pyworkers (>= 10x)",
                        pc / r["fq_create"] if pc else None, 10))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tiny", type=int, default=20000)
    p.add_argument("--cpu", type=int, default=2000)
    p.add_argument("--venv", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), ".venv-pyworkers"))
    p.add_argument("--no-pyworkers", action="store_true")
    p.add_argument("--pyworkers-side", action="store_true",
                   help=argparse.SUPPRESS)
    p.add_argument("--loops", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.pyworkers_side:
        return pyworkers_side(args)
    if args.quick:
        args.reps, args.tiny, args.cpu, args.no_pyworkers = 1, 500, 100, True
    calibrate()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    r = measure_all(args)
    if not args.no_pyworkers:
        r.update(pyworkers(args))
    print(report(r, args))


if __name__ == "__main__":
    sys.exit(main())
