"""Workers made by type with the Worker.create factory."""
from forkqueue.workers import Worker, WorkerType


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    workers = []
    for wtype, x in zip([WorkerType.THREAD, WorkerType.PROCESS], range(1, 3)):
        worker = Worker.create(wtype, target=foo, args=(x,))
        workers.append(worker)

    results = []
    for worker in workers:
        worker.wait()
        results.append(worker.result)

    print(results)
