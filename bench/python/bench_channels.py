"""Benchmark of forkqueue.channels against its baselines, in one run.

    PYTHONPATH=build/python python3 bench/python/bench_channels.py [--quick]

Workloads and contenders:
  pmap, tiny elements (x*x)  forkqueue.channels.pmap | multiprocessing
                             Pool.map | the original pprocess design (one
                             fork per element, an "OK" acknowledgement per
                             message; written here, as pprocess itself is
                             Python 2 only) | sequential
  pmap, ~1 ms elements       the same contenders
  ping-pong of small objects forkqueue.channels Channel | multiprocessing
                             Pipe between two Python processes

Every figure is the median of several runs (one for the slow baseline,
which runs the first 1,000 tiny elements and is scaled to 10,000).
Process start-up is included for everyone: pmap forks its children,
Pool.map creates its pool. Targets (issue 10): tiny pmap >= 20x the
one-fork baseline and at least as fast as Pool.map; 1 ms elements >= 1.8x
sequential; channel round trip <= 1.5x the Pipe round trip.
"""
import argparse
import multiprocessing
import os
import pickle
import select
import socket
import statistics
import sys
import time

import _benchutil as bu
import forkqueue.channels as channels


def tiny(x):
    return x * x


def one_ms(x):
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    return x


# ---- the original pprocess design, as a baseline -------------------------

class AckChannel:
    """A channel as pprocess 0.1-0.5 made it: pickles over socket files, and
    every message answered by an "OK" acknowledgement."""

    def __init__(self, pid, sock):
        self.pid = pid
        self.sock = sock
        self.r = sock.makefile("rb")
        self.w = sock.makefile("wb")

    def _send(self, obj):
        pickle.dump(obj, self.w)
        self.w.flush()

    def _receive(self):
        return pickle.load(self.r)

    def send(self, obj):
        self._send(obj)
        if self._receive() != "OK":
            raise RuntimeError("no acknowledgement")

    def receive(self):
        try:
            return self._receive()
        finally:
            self._send("OK")

    def close(self):
        self.r.close()
        self.w.close()
        self.sock.close()


def ack_start(fn, arg):
    parent, child = socket.socketpair()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        parent.close()
        ch = AckChannel(0, child)
        try:
            ch.send(fn(arg))
        finally:
            os._exit(0)
    child.close()
    return AckChannel(pid, parent)


def ack_pmap(fn, seq, limit):
    """One fork per element, at most `limit` at once, results in order."""
    results = [None] * len(seq)
    active = {}  # fd -> (channel, index)
    poller = select.poll()
    it = iter(enumerate(seq))
    done = 0
    exhausted = False
    while done < len(seq):
        while not exhausted and len(active) < limit:
            try:
                i, x = next(it)
            except StopIteration:
                exhausted = True
                break
            ch = ack_start(fn, x)
            active[ch.sock.fileno()] = (ch, i)
            poller.register(ch.sock.fileno(), select.POLLIN)
        for fd, ev in poller.poll():
            ch, i = active.pop(fd)
            poller.unregister(fd)
            results[i] = ch.receive()
            ch.close()
            os.waitpid(ch.pid, 0)
            done += 1
    return results


# ---- contenders ----------------------------------------------------------

def run_pmap(fn, seq, limit):
    return channels.pmap(fn, seq, limit=limit)[:]


def run_pool(fn, seq, limit):
    with multiprocessing.get_context("fork").Pool(limit) as pool:
        return pool.map(fn, seq)


def run_seq(fn, seq, limit):
    return [fn(x) for x in seq]


def run_ack(fn, seq, limit):
    return ack_pmap(fn, seq, limit)


def capacity(cores, n=200):
    """How many CPUs' worth of work `cores` spinning processes get now,
    against one: the bound on any speed-up on a shared machine."""
    def spin():
        for _ in range(n):
            one_ms(0)
    return bu.capacity(spin, cores)


def timed(f, *args, repeat=3):
    m, _, result = bu.median_time(lambda: f(*args), repeat)
    return m, result


def round_trips(send, receive, n):
    """Seconds of n round trips of a small object, after one to warm up
    (the child is running)."""
    msg = {"i": 0, "payload": "x" * 20}
    send(msg)
    receive()
    t0 = time.perf_counter()
    for i in range(n):
        msg["i"] = i
        send(msg)
        receive()
    return time.perf_counter() - t0


def echo_channel(ch):
    while True:
        obj = ch.receive()
        if obj is None:
            return
        ch.send(obj)


def pingpong_channels(n):
    ch = channels.start(echo_channel)
    dt = round_trips(ch.send, ch.receive, n)
    ch.send(None)
    ch.wait()
    return dt


def echo_pipe(conn):
    while True:
        obj = conn.recv()
        if obj is None:
            return
        conn.send(obj)


def pingpong_pipe(n):
    ctx = multiprocessing.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo_pipe, args=(b,))
    p.start()
    dt = round_trips(a.send, a.recv, n)
    a.send(None)
    p.join()
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes and one repeat (a smoke run)")
    args = ap.parse_args()
    cores = channels.get_number_of_cores()
    if args.quick:
        n_tiny, n_ack, n_ms, n_pp, rep = 2000, 200, 100, 2000, 1
    else:
        n_tiny, n_ack, n_ms, n_pp, rep = 10_000, 1000, 1000, 10_000, 5
    print(f"forkqueue.channels benchmark: {cores} CPUs, Python "
          f"{sys.version.split()[0]}{' (quick)' if args.quick else ''}")
    ok = True

    # pmap over tiny elements
    seq = list(range(n_tiny))
    want = [tiny(x) for x in seq]
    # The parent's CPU time too: other programs' load moves it far less
    # than wall time.
    t_pmap, c_pmap, r = bu.median_time(lambda: run_pmap(tiny, seq, cores),
                                       rep)
    assert r == want
    t_pool, c_pool, r = bu.median_time(lambda: run_pool(tiny, seq, cores),
                                       rep)
    assert r == want
    t_seq, _ = timed(run_seq, tiny, seq, cores, repeat=rep)
    t_ack, r = timed(run_ack, tiny, seq[:n_ack], cores, repeat=1)
    assert r == want[:n_ack]
    t_ack_scaled = t_ack * n_tiny / n_ack
    print(f"\npmap of {n_tiny} tiny elements (median of {rep}):")
    print(f"  forkqueue.channels.pmap  {t_pmap * 1e3:9.1f} ms   "
          f"parent CPU {c_pmap * 1e3:.1f} ms")
    print(f"  multiprocessing Pool.map {t_pool * 1e3:9.1f} ms   "
          f"parent CPU {c_pool * 1e3:.1f} ms; "
          f"pmap is {t_pool / t_pmap:.2f}x as fast")
    print(f"  one fork per element+ack {t_ack_scaled * 1e3:9.1f} ms   "
          f"pmap is {t_ack_scaled / t_pmap:.1f}x as fast"
          + (f" ({n_ack} elements run, scaled)" if n_ack != n_tiny else ""))
    print(f"  sequential               {t_seq * 1e3:9.1f} ms")
    ok &= t_ack_scaled / t_pmap >= 20 and t_pool / t_pmap >= 1.0

    # pmap over ~1 ms elements
    seq = list(range(n_ms))
    t_pmap, r = timed(run_pmap, one_ms, seq, cores, repeat=rep)
    assert r == seq
    t_pool, _ = timed(run_pool, one_ms, seq, cores, repeat=rep)
    t_seq, _ = timed(run_seq, one_ms, seq, cores, repeat=rep)
    t_ack, _ = timed(run_ack, one_ms, seq, cores, repeat=1)
    print(f"\npmap of {n_ms} elements of 1 ms (median of {rep}):")
    print(f"  forkqueue.channels.pmap  {t_pmap * 1e3:9.1f} ms   "
          f"{t_seq / t_pmap:.2f}x sequential")
    print(f"  multiprocessing Pool.map {t_pool * 1e3:9.1f} ms   "
          f"{t_seq / t_pool:.2f}x sequential")
    print(f"  one fork per element+ack {t_ack * 1e3:9.1f} ms   "
          f"{t_seq / t_ack:.2f}x sequential")
    print(f"  sequential               {t_seq * 1e3:9.1f} ms")
    print(f"  raw parallel capacity of the machine now: "
          f"{capacity(cores):.2f}x ({cores} spinning processes against one)")
    ok &= t_seq / t_pmap >= 1.8

    # ping-pong
    t_ch = statistics.median(pingpong_channels(n_pp) for _ in range(rep))
    t_pipe = statistics.median(pingpong_pipe(n_pp) for _ in range(rep))
    print(f"\nping-pong of {n_pp} small objects (median of {rep}):")
    print(f"  forkqueue.channels Channel {t_ch / n_pp * 1e6:7.1f} us per "
          f"round trip   {t_ch / t_pipe:.2f}x the Pipe's")
    print(f"  multiprocessing Pipe       {t_pipe / n_pp * 1e6:7.1f} us per "
          "round trip")
    ok &= t_ch / t_pipe <= 1.5
    print(f"\ntargets {'met' if ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
