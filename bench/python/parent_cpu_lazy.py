#!/usr/bin/env python3
"""The parent's CPU time per call of forkqueue.lazy, thread by thread.

bench_lazy.py's workload (1,000 calls of about 1 ms, `total += fork(work,
i)` in a loop, then `int(total)`), timed five times; prints the medians of
the CPU time per call of the caller's thread and of the engine's driver
thread (which feeds the workers and completes the futures), the voluntary
context switches per call of each (the thread hand-offs), and the wall
time. CPU time and switches move far less with the machine's load than
wall time, so this compares two builds on a busy machine, run alternately:

  for i in 1 2 3; do
    PYTHONPATH=OLD/build/python python3 bench/python/parent_cpu_lazy.py
    PYTHONPATH=build/python python3 bench/python/parent_cpu_lazy.py
  done
"""
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_lazy as bl  # noqa: E402
import forkqueue.lazy as fork  # noqa: E402


def switches(tid):
    """Voluntary context switches of thread tid so far (Linux)."""
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def main():
    n, reps = 1000, 5
    bl.calibrate()
    fork.evaluate(fork.fork(bl.work, 0))  # pool up, `work` known to it
    engine = fork._pool("processes")._engine._thread
    clock = time.pthread_getcpuclockid(engine.ident)
    me = threading.get_native_id()
    rows = []
    for _ in range(reps):
        s0 = (switches(me), switches(engine.native_id))
        m0, e0 = time.thread_time(), time.clock_gettime(clock)
        t0 = time.perf_counter()
        total = 0
        for i in range(n):
            total += fork.fork(bl.work, i)
        int(total)
        wall = time.perf_counter() - t0
        m1, e1 = time.thread_time(), time.clock_gettime(clock)
        s1 = (switches(me), switches(engine.native_id))
        rows.append(((m1 - m0) / n, (e1 - e0) / n, (s1[0] - s0[0]) / n,
                     (s1[1] - s0[1]) / n, wall))
    med = [statistics.median(r[k] for r in rows) for k in range(5)]
    print(f"per call: caller {med[0] * 1e6:.1f} us, engine "
          f"{med[1] * 1e6:.1f} us of CPU; switches caller {med[2]:.2f}, "
          f"engine {med[3]:.2f}; wall {med[4] * 1e3:.0f} ms "
          f"(load {os.getloadavg()[0]:.1f})")
    fork._shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
