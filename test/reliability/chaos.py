#!/usr/bin/env python3
"""Chaos test of the Python binding.

Streams many items through ForkQueue.process() while a separate process
(this script started with --killer) signals random workers at random
moments: SIGKILL, SIGSEGV, or SIGSTOP followed later by SIGCONT. Some items
crash, exit or raise on purpose.

Checked at the end, and printed: every item has exactly one outcome (no loss,
no duplicate); every result value is right; every error is one the item could
have had (its planned failure, or a kill by the chaos process); the queue
still works; no child process or zombie is left; the number of open
descriptors is back to where it was.

Usage: chaos.py [--items N] [--workers N] [--fault-ms MS] [--max-faults N]
                [--seed S] [--long]
"""
import argparse
import faulthandler
import json
import os
import random
import select
import signal
import subprocess
import sys
import time

from forkqueue import ForkQueue, ForkQueueException

NORMAL, SEGV, ABORT, EXIT, RAISE = range(5)
KIND_NAMES = ["normal", "SIGSEGV", "abort", "exit(7)", "raise"]


def plan(i):
    """The planned kind of item i: about 1 in 800 fails on purpose."""
    h = (i * 2654435761 + 12345) % 4000
    if h == 0:
        return SEGV
    if h == 1:
        return ABORT
    if h == 2:
        return EXIT
    if 3 <= h <= 4:
        return RAISE
    return NORMAL


def job(i):
    k = plan(i)
    if k == SEGV:
        os.kill(os.getpid(), signal.SIGSEGV)
    elif k == ABORT:
        os.abort()
    elif k == EXIT:
        os._exit(7)
    elif k == RAISE:
        raise ValueError("planned failure %d" % i)
    # A little work, so that signals also land inside items.
    s = 0
    for j in range(200):
        s += j
    return i * i + s


EXPECT_EXTRA = sum(range(200))


def proc_stat(pid):
    """(state, ppid) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def children(parent):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == parent:
                found.append((int(name), st[0]))
    return found


def fd_count():
    return len(os.listdir("/proc/self/fd")) - 1  # listdir's own descriptor


# ---- the killer process ----------------------------------------------------


def cont(pidfd):
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGCONT)
    except ProcessLookupError:
        pass  # killed meanwhile (by us, or by the parent)
    os.close(pidfd)


def killer_main(parent, seed, gap_ms, max_faults):
    rnd = random.Random(seed)
    me = os.getpid()
    counts = {"SIGKILL": 0, "SIGSEGV": 0, "SIGSTOP": 0, "skipped": 0}
    stopped = []  # [pidfd, cont_at]
    path = "/proc/%d/task/%d/children" % (parent, parent)
    while True:
        now = time.monotonic()
        tmo = rnd.uniform(0, 2 * gap_ms) / 1000.0
        for _, at in stopped:
            tmo = min(tmo, max(0.0, at - now))
        # Past the fault budget only wait (a loaded machine slows the run,
        # not the fault rate: the budget bounds the test's duration).
        spent = counts["SIGKILL"] + counts["SIGSEGV"] + counts["SIGSTOP"]
        if spent >= max_faults and not stopped:
            tmo = None
        ready, _, _ = select.select([sys.stdin], [], [], tmo)
        if ready:
            break
        now = time.monotonic()
        for s in [s for s in stopped if s[1] <= now]:
            cont(s[0])
            stopped.remove(s)
        if spent >= max_faults:
            continue
        try:
            with open(path) as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            kids = [p for p, _ in children(parent)]
        kids = [p for p in kids if p != me]
        if not kids:
            counts["skipped"] += 1
            continue
        pid = rnd.choice(kids)
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            counts["skipped"] += 1
            continue
        # Checked after opening the pidfd: pid reuse cannot redirect it.
        st = proc_stat(pid)
        if not st or st[1] != parent or st[0] == "Z":
            os.close(fd)
            counts["skipped"] += 1
            continue
        action = rnd.randrange(3)
        try:
            if action == 0:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                counts["SIGKILL"] += 1
            elif action == 1:
                signal.pidfd_send_signal(fd, signal.SIGSEGV)
                counts["SIGSEGV"] += 1
            elif len(stopped) < 16:
                signal.pidfd_send_signal(fd, signal.SIGSTOP)
                counts["SIGSTOP"] += 1
                stopped.append([fd, now + rnd.uniform(0.001, 0.05)])
                fd = -1
            else:
                counts["skipped"] += 1
        except OSError:
            counts["skipped"] += 1
        if fd >= 0:
            os.close(fd)
    for fd, _ in stopped:  # never leave a worker stopped
        cont(fd)
    sys.stdout.write(json.dumps(counts))
    sys.stdout.flush()


# ---- the parent ------------------------------------------------------------


def classify(i, res):
    """Returns 'ok', 'kept' (planned failure), 'killed', or an error text."""
    k = plan(i)
    if isinstance(res, ValueError):
        # With reraise=False an exception raised by the item is returned.
        if k == RAISE and str(res) == "planned failure %d" % i:
            return "kept"
        return "item %d (%s): unexpected %r" % (i, KIND_NAMES[k], res)
    if not isinstance(res, ForkQueueException):
        if k == NORMAL and res == i * i + EXPECT_EXTRA:
            return "ok"
        return "item %d (%s): unexpected result %r" % (i, KIND_NAMES[k], res)
    sig, code = res.signal, res.exitcode
    if k == SEGV and sig == signal.SIGSEGV:
        return "kept"
    if k == ABORT and sig == signal.SIGABRT:
        return "kept"
    if k == EXIT and sig is None and code == 7:
        return "kept"
    if sig in (signal.SIGKILL, signal.SIGSEGV):
        return "killed"
    return "item %d (%s): unexpected error signal=%r exitcode=%r: %s" % (
        i, KIND_NAMES[k], sig, code, str(res)[-300:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--fault-ms", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--limit-s", type=int, default=240)
    ap.add_argument("--max-faults", type=int, default=None,
                    help="default: one per 100 items")
    ap.add_argument("--killer", nargs=4,
                    metavar=("PARENT", "SEED", "GAP", "MAX"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.killer:
        killer_main(int(a.killer[0]), int(a.killer[1]), float(a.killer[2]),
                    int(a.killer[3]))
        return 0
    if a.long:
        a.items, a.fault_ms, a.limit_s = 1000000, 2.0, 1800
    # A hang fails the test with a traceback instead of waiting for ctest.
    faulthandler.dump_traceback_later(a.limit_s, exit=True)
    seed = a.seed if a.seed is not None else int(time.time() * 1000) % 10**9
    n = a.items
    max_faults = a.max_faults if a.max_faults else n // 100 + 1
    print("chaos.py: %d items, %d workers, a fault every ~%g ms (at most %d), "
          "seed %d" % (n, a.workers, a.fault_ms, max_faults, seed), flush=True)

    fds_before = fd_count()
    kids_before = children(os.getpid())
    bad = []
    seen = bytearray(n)
    tally = {"ok": 0, "kept": 0, "killed": 0}
    per_kind = [0] * len(KIND_NAMES)
    dup = 0
    t0 = time.monotonic()
    counts, stats, works, t1 = {}, {}, False, None
    try:
        with ForkQueue(numforks=a.workers, reraise=False, ordered=False,
                       retn_ids=True) as q:
            killer = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--killer",
                 str(os.getpid()), str(seed), str(a.fault_ms),
                 str(max_faults)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
            try:
                for jobid, res in q.process(job, ((i,) for i in range(n))):
                    if not (0 <= jobid < n):
                        bad.append("unknown job id %r" % (jobid,))
                        continue
                    if seen[jobid]:
                        dup += 1
                        bad.append("second outcome for item %d" % jobid)
                        continue
                    seen[jobid] = 1
                    per_kind[plan(jobid)] += 1
                    c = classify(jobid, res)
                    if c in tally:
                        tally[c] += 1
                    else:
                        bad.append(c)
            except ForkQueueException as e:
                # Items that fail are results here (reraise=False): this is
                # the whole stream failing.
                bad.append("process() stopped: %s" % str(e)[-300:])
            finally:
                killer.stdin.write(b"x")
                killer.stdin.flush()
                out = killer.stdout.read()
                killer.stdin.close()
                killer.stdout.close()
                killer.wait(timeout=30)
            t1 = time.monotonic()
            counts = json.loads(out or b"{}")
            if killer.returncode != 0 or not counts:
                bad.append("killer process failed")
            stats = q._stats()
            # The queue goes on.
            try:
                # (id, value) pairs in completion order (retn_ids, unordered)
                works = sorted(v for _, v in q.map(lambda x: x + 1,
                                                   range(1000))) == \
                    list(range(1, 1001))
            except ForkQueueException as e:
                works = False
                bad.append("after chaos: %s" % str(e)[-300:])
            if not works:
                bad.append("the queue does not work after chaos")
    except ForkQueueException as e:
        # Finishing the queue (leaving the with block) failed.
        bad.append("closing the queue: %s" % str(e)[-300:])
    if t1 is None:
        t1 = time.monotonic()
    missing = n - sum(seen)
    if missing:
        bad.append("%d items without outcome" % missing)
    deadline = time.monotonic() + 5
    while children(os.getpid()) != kids_before and time.monotonic() < deadline:
        time.sleep(0.01)
    left = [c for c in children(os.getpid()) if c not in kids_before]
    zombies = sum(1 for _, s in left if s == "Z")
    if left:
        bad.append("children left: %r" % left)
    fds_after = fd_count()
    if fds_after != fds_before:
        bad.append("descriptors: %d before, %d after" % (fds_before,
                                                        fds_after))

    planned = sum(per_kind[1:])
    print("chaos.py: %.1f s, %d worker respawns"
          % (t1 - t0, stats.get("respawns", -1)))
    print("chaos.py: faults injected: %d SIGKILL, %d SIGSEGV, %d "
          "SIGSTOP+SIGCONT (%d times no live worker); planned item failures: "
          "%d (%s)" % (counts.get("SIGKILL", 0), counts.get("SIGSEGV", 0),
                       counts.get("SIGSTOP", 0), counts.get("skipped", 0),
                       planned,
                       ", ".join("%s %d" % (KIND_NAMES[k], per_kind[k])
                                 for k in range(1, len(KIND_NAMES)))))
    print("chaos.py: outcomes checked: %d of %d items, %d missing, %d "
          "duplicate; %d results (values verified), %d planned failures "
          "kept their kind, %d items ended by the killer"
          % (sum(seen), n, missing, dup, tally["ok"], tally["kept"],
             tally["killed"]))
    print("chaos.py: after: queue %s (1000 more items), %d children and %d "
          "zombies left, descriptors %d before / %d after"
          % ("works" if works else "BROKEN", len(left), zombies, fds_before,
             fds_after))
    for b in bad[:20]:
        print("chaos.py: FAIL: " + b)
    print("chaos.py: " + ("FAILED" if bad else "OK"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
