# The additions beyond the seed: time limits, per-call generators, the job's
# exception, initargs and recycling. Type-checked with mypy --strict.
import time

from forkqueue import ForkQueue, ForkQueueException

SCALE = 0


def init(scale: int) -> None:
    global SCALE
    SCALE = scale


def work(x: int) -> int:
    if x == 3:
        raise ValueError(f"no {x}")
    if x == 5:
        time.sleep(60)
    return x * SCALE


with ForkQueue(numforks=2, initfunc=init, initargs=(10,), timeout=1.0,
               max_jobs_per_worker=100) as queue:
    for x in (1, 2, 3, 5):
        queue.add(work, (x,), jobid=f"job-{x}")
    try:
        queue.wait()
    except ValueError as e:              # the job's own exception type
        assert isinstance(e, ForkQueueException)
        print("failed:", e.jobid, repr(e.exception))
    try:
        queue.wait()
    except ForkQueueException as e:
        print("timed out:", e.jobid, type(e.exception).__name__)
    print(list(queue.results()))

    squares = queue.map(lambda v: v * v, range(1000))
    print(next(squares), next(squares))
    squares.close()                      # the rest is cancelled
    print(list(queue.map(abs, [-1, -2])))
