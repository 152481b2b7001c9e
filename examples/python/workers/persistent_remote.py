"""Persistent workers of every type, the remote one on a server this
script starts and stops."""
from typing import Any

import itertools

from forkqueue.workers import PersistentWorker, WorkerType, spawn_server


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    server = spawn_server(('127.0.0.1', 0))
    try:
        workers = []
        for wtype in WorkerType:
            kwargs: dict[str, Any] = {'target': foo}
            if wtype is WorkerType.REMOTE:
                kwargs['host'] = server.addr

            worker = PersistentWorker.create(wtype, **kwargs)
            workers.append(worker)

        for worker, x in zip(itertools.cycle(workers), range(10)):
            worker.enqueue(x)

        for worker in workers:
            worker.wait()
            print(worker.result, list(worker.results_iter()))
    finally:
        server.terminate()
