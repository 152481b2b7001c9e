"""forkqueue._executor.Pool: the multiprocessing.Pool interface on the core."""
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from forkqueue._executor import Pool, WorkerCrashedError
from helpers import child_pids, new_children, is_running, wait_for_file, wait_until

from test_executor import HAS_MAX_JOBS


def square(x):
    return x * x


def test_map_apply_starmap_imap():
    k = 3
    with Pool(2) as p:
        assert p.map(lambda x: x * k, range(100)) == [x * 3 for x in
                                                     range(100)]
        assert p.map(square, iter(range(10)), chunksize=3) == \
            [x * x for x in range(10)]
        assert p.map(square, []) == []
        assert p.apply(divmod, (7, 2)) == (3, 1)
        assert p.apply(dict, (), {"a": 1}) == {"a": 1}
        assert p.apply_async(pow, (2, 5)).get(30) == 32
        assert p.starmap(divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]
        assert p.starmap_async(pow, [(2, 2)]).get(30) == [4]
        assert p.map_async(square, range(5)).get(30) == [0, 1, 4, 9, 16]
        assert list(p.imap(square, range(50), chunksize=4)) == \
            [x * x for x in range(50)]
        assert list(p.imap(square, range(5))) == [0, 1, 4, 9, 16]
        assert sorted(p.imap_unordered(square, range(50))) == \
            [x * x for x in range(50)]


def test_imap_reads_an_endless_input_lazily():
    def numbers():
        i = 0
        while True:
            yield i
            i += 1

    with Pool(2) as p:
        it = p.imap(square, numbers(), chunksize=8)
        assert [next(it) for _ in range(100)] == [x * x for x in range(100)]


def test_callbacks_and_error_callbacks():
    got, errs = [], []
    done = threading.Event()
    with Pool(2) as p:
        p.apply_async(square, (4,), callback=got.append)
        r = p.apply_async(divmod, (1, 0), error_callback=errs.append)
        m = p.map_async(square, range(3), callback=lambda v: (got.append(v),
                                                            done.set()))
        assert done.wait(30)
        r.wait(30)
        m.wait(30)
        assert r.ready() and not r.successful()
        with pytest.raises(ZeroDivisionError):
            r.get()
        assert wait_until(lambda: len(got) == 2 and errs, timeout=10)
    assert 16 in got and [0, 1, 4] in got
    assert isinstance(errs[0], ZeroDivisionError)


def test_get_timeout_and_successful_before_ready(barrier):
    with Pool(1) as p:
        r = p.apply_async(wait_for_file, (barrier.path,))
        with pytest.raises(multiprocessing.TimeoutError):
            r.get(0.05)
        with pytest.raises(ValueError):
            r.successful()
        assert not r.ready()
        it = p.imap(wait_for_file, [barrier.path])
        with pytest.raises(multiprocessing.TimeoutError):
            it.next(timeout=0.05)
        barrier.open()
        assert r.get(30) == barrier.path
        assert r.successful()
        assert it.next(timeout=30) == barrier.path


def test_errors_in_map_and_imap():
    def inv(x):
        return 1 / x

    with Pool(2) as p:
        with pytest.raises(ZeroDivisionError):
            p.map(inv, [1, 0, 2])
        it = p.imap(inv, [1, 2, 0, 4])
        assert next(it) == 1.0 and next(it) == 0.5
        with pytest.raises(ZeroDivisionError) as info:
            next(it)
        assert "in inv" in str(info.value.__cause__)
        assert next(it) == 0.25


def test_sigkilled_worker_fails_only_its_item_and_map_returns():
    def maybe_die(x):
        if x == 13:
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    with Pool(2) as p:
        t0 = time.monotonic()
        with pytest.raises(WorkerCrashedError, match="SIGKILL") as info:
            p.map(maybe_die, range(40), chunksize=5)
        assert info.value.signal == signal.SIGKILL
        assert time.monotonic() - t0 < 30
        got = []
        it = p.imap_unordered(maybe_die, range(40), chunksize=5)
        errors = 0
        while True:
            try:
                got.append(next(it))
            except StopIteration:
                break
            except WorkerCrashedError:
                errors += 1
        assert errors == 1
        assert sorted(got) == [x for x in range(40) if x != 13]
        assert p.apply(square, (5,)) == 25  # still usable


def test_close_join_terminate_states():
    before = set(child_pids())
    p = Pool(2)
    with pytest.raises(ValueError):
        p.join()
    assert p.map(square, range(3)) == [0, 1, 4]
    p.close()
    with pytest.raises(ValueError):
        p.apply(square, (1,))
    p.join()
    assert new_children(before) == []
    p.terminate()  # after join: harmless


def test_close_lets_queued_work_finish():
    p = Pool(2)
    r = p.map_async(lambda x: (time.sleep(0.01), x)[1], range(20))
    p.close()
    p.join()
    assert r.get(0) == list(range(20))


def test_terminate_stops_running_work(barrier):
    before = set(child_pids())
    p = Pool(2)
    r = p.apply_async(wait_for_file, (barrier.path, 60))
    wait_until(lambda: len([c for c in new_children(before) if is_running(c)]) >= 2)
    t0 = time.monotonic()
    p.terminate()
    p.join()
    assert time.monotonic() - t0 < 10
    assert r.ready() and not r.successful()
    assert new_children(before) == []


def test_context_manager_terminates(barrier):
    before = set(child_pids())
    with Pool(1) as p:
        r = p.apply_async(wait_for_file, (barrier.path, 60))
    assert r.ready()
    assert new_children(before) == []


def test_initializer_initargs_and_validation():
    seen = {}

    def init(v):
        seen["v"] = v

    with Pool(2, initializer=init, initargs=(42,)) as p:
        assert p.apply(lambda: seen.get("v")) == 42
    with pytest.raises(ValueError):
        Pool(0)
    with pytest.raises(ValueError):
        Pool(1, maxtasksperchild=0)
    with pytest.raises(TypeError):
        Pool(1, initializer=3)


@pytest.mark.skipif(not HAS_MAX_JOBS,
                    reason="ForkQueue(max_jobs_per_worker=) not in the "
                           "extension yet")
def test_maxtasksperchild():
    with Pool(1, maxtasksperchild=1) as p:
        pids = [p.apply(os.getpid) for _ in range(4)]
    assert len(set(pids)) == 4


CTRL_C_SCRIPT = r"""
import os, sys, time
from forkqueue._executor import Pool
def slow(x):
    time.sleep(60)
p = Pool(2)
r = p.map_async(slow, range(4), chunksize=1)
while True:
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = open(f"/proc/{name}/stat").read()
            except OSError:
                continue
            f = st[st.rindex(")") + 2:].split()
            if int(f[1]) == os.getpid() and f[0] != "Z":
                kids.append(name)
    if len(kids) >= 2:
        break
    time.sleep(0.01)
print(" ".join(kids), flush=True)
p.map(slow, range(4))
"""


def test_ctrl_c_in_map_leaves_no_worker_behind():
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert len(pids) >= 2
        # Wait until the main thread blocks in map(), then Ctrl-C.
        assert wait_until(lambda: "futex" in open(
            f"/proc/{proc.pid}/wchan").read() or "wait" in open(
            f"/proc/{proc.pid}/wchan").read(), timeout=10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in err
    assert err.count("Traceback") == 1
    assert wait_until(lambda: not any(is_running(p) for p in pids),
                      timeout=10)


EXECUTOR_CTRL_C = r"""
import os, time
from forkqueue._executor import Executor
ex = Executor(2)
fs = [ex.submit(time.sleep, 60) for _ in range(4)]
while True:
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = open(f"/proc/{name}/stat").read()
            except OSError:
                continue
            f = st[st.rindex(")") + 2:].split()
            if int(f[1]) == os.getpid() and f[0] != "Z":
                kids.append(name)
    if len(kids) >= 2 and all(f.running() for f in fs[:2]):
        break
    time.sleep(0.01)
print(" ".join(kids), flush=True)
fs[0].result()
"""


def test_ctrl_c_while_waiting_on_an_executor_ends_promptly():
    proc = subprocess.Popen([sys.executable, "-c", EXECUTOR_CTRL_C],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert len(pids) >= 2
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in err
    assert took < 15  # not the 60 s the tasks would take
    assert wait_until(lambda: not any(is_running(p) for p in pids),
                      timeout=10)


def test_pool_cannot_be_pickled():
    import pickle
    with Pool(1) as p:
        with pytest.raises(NotImplementedError):
            pickle.dumps(p)
