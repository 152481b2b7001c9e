"""Options beyond the seed: numforks=None, timeout= (queue and add()),
initargs, max_jobs_per_worker, progress=."""
import os
import subprocess
import sys
import time

import pytest

from forkqueue import ForkQueue, ForkQueueException
from helpers import is_running, run_script, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def slow(secs, value=None):
    time.sleep(secs)
    return value


def start_child_then_hang(path):
    p = subprocess.Popen(["sleep", "60"])
    with open(path, "w") as f:
        f.write(str(p.pid))
    time.sleep(60)


def test_numforks_none_is_the_usable_cpus():
    with ForkQueue(numforks=None) as q:
        n = len(os.sched_getaffinity(0))
        assert q.numforks == n
        assert len(q._worker_pids()) == n


def test_queue_timeout_kills_the_job_and_its_processes(tmp_path):
    path = str(tmp_path / "pid")
    with ForkQueue(numforks=2, timeout=0.3) as q:
        t0 = time.monotonic()
        q.add(start_child_then_hang, (path,), jobid="hung")
        q.add(slow, (0.01, "fine"))
        with pytest.raises(ForkQueueException) as info:
            q.wait()
        assert time.monotonic() - t0 < 5
        e = info.value
        assert e.jobid == "hung"
        assert isinstance(e.exception, TimeoutError)
        assert "time limit of 0.3 s" in str(e)
        assert str(e).startswith("Exception running task:\n")
        child = int(open(path).read())
        assert wait_until(lambda: not is_running(child))
        assert list(q.results()) == [None, "fine"]


def test_add_timeout_overrides_the_queue_default():
    with ForkQueue(numforks=1, timeout=0.2, reraise=False) as q:
        q.add(slow, (0.6, "patient"), timeout=5)
        q.add(slow, (5, "late"), timeout=0.2)
        q.add(slow, (5, "none"))
        res = list(q.results())
    assert res[0] == "patient"
    for r in res[1:]:
        assert isinstance(r, TimeoutError) and "0.2 s" in str(r)
    assert q.timeout == 0.2


def test_timeout_charged_to_one_item_in_a_batched_map():
    def f(x):
        if x == 700:
            time.sleep(30)
        return x

    with ForkQueue(numforks=2, timeout=1, reraise=False) as q:
        t0 = time.monotonic()
        res = list(q.map(f, range(2000)))
        assert time.monotonic() - t0 < 20
    assert isinstance(res[700], TimeoutError)
    assert [r for i, r in enumerate(res) if i != 700] == \
        [i for i in range(2000) if i != 700]


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (0, ValueError),
                                     ("1", TypeError), (float("nan"), ValueError)])
def test_bad_timeouts(bad, exc):
    with pytest.raises(exc, match="timeout"):
        ForkQueue(numforks=1, timeout=bad)
    with ForkQueue(numforks=1) as q:
        with pytest.raises(exc, match="timeout"):
            q.add(abs, (1,), timeout=bad)


def test_initargs():
    def init(a, b=0):
        global INIT_SUM
        INIT_SUM = a + b

    with ForkQueue(numforks=2, initfunc=init, initargs=(40, 2)) as q:
        assert list(q.map(lambda x: INIT_SUM + x, range(4))) == [42, 43, 44, 45]
    with pytest.raises(TypeError, match="initargs"):
        ForkQueue(numforks=1, initfunc=init, initargs=5)


def test_max_jobs_per_worker_recycles():
    with ForkQueue(numforks=1, max_jobs_per_worker=2) as q:
        pids = list(q.map(lambda x: os.getpid(), range(6)))
    assert len(set(pids)) == 3
    assert all(pids.count(p) == 2 for p in set(pids))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_jobs_per_worker"):
            ForkQueue(numforks=1, max_jobs_per_worker=bad)


def test_progress_callable_sees_each_result():
    seen = []
    with ForkQueue(numforks=2) as q:
        assert list(q.map(abs, [-1, -2, -3],
                          progress=lambda d, t: seen.append((d, t)))) == [1, 2, 3]
        assert seen == [(1, 3), (2, 3), (3, 3)]
        seen.clear()
        gen = ((i,) for i in range(3))
        list(q.process(abs, gen, progress=lambda d, t: seen.append((d, t))))
        assert seen == [(1, None), (2, None), (3, None)]
        with pytest.raises(TypeError, match="progress"):
            q.map(abs, [1], progress=5)
        with pytest.raises(TypeError, match="unexpected keyword"):
            q.map(abs, [1], chunksize=5)


def test_progress_true_without_tqdm_prints_a_counter():
    code = (
        "import sys; sys.modules['tqdm'] = None\n"
        "from forkqueue import ForkQueue\n"
        "with ForkQueue(numforks=2) as q:\n"
        "    print(list(q.map(abs, range(50), progress=True))[-1])\n")
    r = run_script(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "49\n"
    assert r.stderr.endswith("50/50 done\n")
