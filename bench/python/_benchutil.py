"""The harness the Python benchmarks (bench_*.py) share: calibrating a
CPU-bound function, the machine's parallel capacity, timing with medians,
contenders started together and timed in interleaved rounds, the
formatting of times and verdicts, writing the report, and the virtual
environments that hold the peers used as baselines (never dependencies of
forkqueue)."""
import contextlib
import os
import statistics
import subprocess
import sys
import time

NOT_JUDGED = "- not judged: --quick sizes are too small to mean anything"


# ---- workloads ----------------------------------------------------------


def calibrate(work, module, name, target_s, probe, floor, check=0):
    """Scales the loop count module.<name>, read by work(x), until a call
    takes about target_s (three rounds of `probe` calls; never below
    floor). Returns the time of one call measured over `check` calls, or
    the loop count when check is 0."""
    for _ in range(3):
        t0 = time.perf_counter()
        for x in range(probe):
            work(x)
        per = (time.perf_counter() - t0) / probe
        setattr(module, name,
                max(floor, int(getattr(module, name) * target_s / per)))
    if not check:
        return getattr(module, name)
    t0 = time.perf_counter()
    for x in range(check):
        work(x)
    return (time.perf_counter() - t0) / check


def capacity(spin, workers, reps=3):
    """How many CPUs' worth of work `workers` forked processes, each
    calling spin(), get done in parallel right now, relative to one
    process: 2.0 on an idle 2-CPU machine, less when other programs
    compete for the CPUs. It bounds the speed-up any pool can show.

    The one process is forked too (the same fork, copy-on-write faults and
    exit as the parallel ones), the two measurements alternate reps times,
    and the figure is the median of the reps ratios: one run of each, taken
    once, moved by the machine's load by more than the targets' margins."""
    def forked(n):
        t0 = time.perf_counter()
        pids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                try:
                    spin()
                finally:
                    os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        return time.perf_counter() - t0

    ratios = []
    for r in range(reps):
        if r % 2:
            par = forked(workers)
            one = forked(1)
        else:
            one = forked(1)
            par = forked(workers)
        ratios.append(workers * one / par)
    return statistics.median(ratios)


# ---- timing -------------------------------------------------------------


def median_time(fn, reps):
    """Runs fn() reps times; returns the median wall seconds, the median
    CPU seconds of the calling process (the parent's share of the work:
    dispatching, pickling, reading results) and the last result."""
    times, cpus, result = [], [], None
    for _ in range(reps):
        result = None  # freed before the clock starts, not charged
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpus), result


@contextlib.contextmanager
def contenders(setups, arg, warm=None):
    """Starts every contender of setups, a list of (name, setup) where
    setup(arg) returns (run, teardown); one whose module is missing is
    skipped with a note. warm(c), if given, runs each once, untimed. Yields
    (active, notes), each active contender a dict with name, run, teardown,
    and the times and cpu of its timed runs; tears them all down at the
    end."""
    active, notes = [], []
    try:
        for name, setup in setups:
            try:
                run, teardown = setup(arg)
            except ImportError as e:
                notes.append(f"{name}: skipped ({e.name or e} not "
                             "installed)")
                continue
            c = {"name": name, "run": run, "teardown": teardown,
                 "times": [], "cpu": []}
            active.append(c)
            if warm:
                warm(c)
        yield active, notes
    finally:
        for c in active:
            c["teardown"]()


def rounds(active, reps, run, check, budget_s=None, rotate=False):
    """Times run(c) for every active contender, one run of each per round,
    so that a change in the machine's load weighs on all alike; check(c,
    out) judges each output. With rotate, each round starts one contender
    later. A contender whose runs exceed budget_s in total stops after 3
    runs."""
    for r in range(reps):
        k = r % len(active) if rotate and active else 0
        for c in active[k:] + active[:k]:
            if (budget_s is not None and len(c["times"]) >= 3
                    and sum(c["times"]) > budget_s):
                continue
            # The previous run's output is freed before the clock starts,
            # not charged to this run (50,000 results: about 0.2 ms).
            out = None
            c0 = time.process_time()
            t0 = time.perf_counter()
            out = run(c)
            c["times"].append(time.perf_counter() - t0)
            c["cpu"].append(time.process_time() - c0)
            check(c, out)


def time_map(setups, workers, func, n, warm_n, reps, budget_s, sort=False,
             rotate=False):
    """Times every contender of setups (as for contenders(), each run(f,
    xs) returning the list of results) on func over range(n), in
    interleaved rounds after an untimed run on the first warm_n items; the
    results must be right (in any order with sort). Returns (active,
    notes)."""
    items = list(range(n))
    norm = sorted if sort else list
    expected = norm(func(x) for x in items)
    warm = items[:warm_n]
    warm_expected = norm(func(x) for x in warm)

    def check(c, out, want=expected):
        if norm(out) != want:
            raise AssertionError(f"{c['name']}: wrong results")

    with contenders(setups, workers, lambda c: check(
            c, c["run"](func, warm), warm_expected)) as (active, notes):
        rounds(active, reps, lambda c: c["run"](func, items), check,
               budget_s, rotate)
    return active, notes


# ---- output -------------------------------------------------------------


def fmt_time(s):
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.2f} s"


def verdict(ok, text):
    return f"- {'met' if ok else 'MISSED'}: {text}"


def finish(lines, markdown):
    """Prints the report and writes it to the file markdown, if given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if markdown:
        with open(markdown, "w") as f:
            f.write(text)
    return 0


# ---- peers in a virtual environment of their own ------------------------


def peer_venv(path, packages, probe, system_site=False):
    """The python of a virtual environment in path holding packages:
    created if missing, the packages installed unless `import probe`
    works there already."""
    py = os.path.join(path, "bin", "python")
    if not os.path.exists(py):
        print(f"creating {path} with {' '.join(packages)} ...",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", path]
                       + (["--system-site-packages"] if system_site else []),
                       check=True)
    if subprocess.run([py, "-c", f"import {probe}"],
                      capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", *packages],
                       check=True)
    return py


def forkqueue_path(*more):
    """A PYTHONPATH that finds the forkqueue this interpreter runs (and the
    directories in more) first."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(
        sys.modules["forkqueue"].__file__)))
    return os.pathsep.join(
        [pkg, *more] + [p for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p])
