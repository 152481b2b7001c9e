"""A pool of two process workers and a thread worker squares 0..19."""
from forkqueue.workers import Pool, WorkerType


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    with Pool(foo) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.THREAD)
        results = pool.run(range(20))
    print(sorted(results))
