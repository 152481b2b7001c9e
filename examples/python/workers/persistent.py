"""Persistent workers call their target once per enqueued input."""
import itertools

from forkqueue.workers import PersistentWorker, WorkerType


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    workers = []
    for wtype in [WorkerType.THREAD, WorkerType.PROCESS]:
        worker = PersistentWorker.create(wtype, target=foo)
        workers.append(worker)

    for worker, x in zip(itertools.cycle(workers), range(10)):
        worker.enqueue(x)

    for worker in workers:
        worker.wait()
        print(worker.result, list(worker.results_iter()))
