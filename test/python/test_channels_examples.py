"""The grid examples of forkqueue.channels (examples/python/channels/), each
with the real one-second cells: the printed grid is the golden one and
takes about a tenth of the sequential 100 s, whether stdout is a terminal
(a pty) or a file. The eight examples run side by side (their children
mostly sleep), once per kind of stdout.

With a short delay, they also run with stdout a pipe (the example runner of
ctest does that with the real delay)."""
import glob
import os
import pty
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples", "python", "channels")
SCRIPTS = sorted(glob.glob(os.path.join(EXAMPLES, "*_grid.py")))
N = 10
GOLDEN = "".join(" ".join(str(i * N + j) for j in range(N)) + "\n"
                 for i in range(N))
SEQUENTIAL_S = 100.0


def test_there_are_examples_for_every_style():
    names = {os.path.basename(s)[:-len("_grid.py")] for s in SCRIPTS}
    assert names == {"pmap", "map", "queue", "exchange", "start", "create",
                     "reusable", "continuous"}
    for s in SCRIPTS:
        with open(s[:-3] + ".expected") as f:
            assert f.read() == GOLDEN


def start_in_pty(script, args=()):
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, script, *args], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    return p, master


def read_pty(master):
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.parametrize("stdout_kind", ["tty", "file"])
def test_grid_examples_real_delay(tmp_path, stdout_kind):
    runs = []
    t0 = time.monotonic()
    for script in SCRIPTS:
        if stdout_kind == "tty":
            p, master = start_in_pty(script)
            runs.append((script, p, master))
        else:
            out = open(tmp_path / (os.path.basename(script) + ".out"), "w+")
            p = subprocess.Popen([sys.executable, script],
                                 stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.PIPE)
            runs.append((script, p, out))
    try:
        results = []
        for script, p, sink in runs:
            if stdout_kind == "tty":
                text = read_pty(sink)
            _, err = p.communicate(timeout=60)
            took = time.monotonic() - t0
            if stdout_kind == "file":
                sink.seek(0)
                text = sink.read()
                sink.close()
            results.append((os.path.basename(script), p.returncode,
                            err.decode(), text, took))
    finally:
        for _, p, _ in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for name, rc, err, text, took in results:
        assert rc == 0 and err == "", (name, rc, err)
        assert text == GOLDEN, (name, text)
        # A tenth of the sequential time is 10 s; they take 10.3-10.5 s on a
        # quiet machine (eight at once). The bound leaves room for a host
        # loaded by other test suites (16.3 s was seen under ctest -j2 with
        # a load average above 10), and still fails for anything that does
        # not run ten cells at a time (20 s would mean five at a time).
        assert took < SEQUENTIAL_S / 10 * 2, (name, took)
        assert took >= 9.5, (name, took)  # the cells did take a second


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_grid_examples_short_delay_to_a_pipe(script):
    r = subprocess.run([sys.executable, script, "0.01"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == GOLDEN
