"""Workers of every type made with Worker.create, the remote one on a
server this script starts and stops."""
from typing import Any

from forkqueue.workers import Worker, WorkerType, spawn_server


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    server = spawn_server(('127.0.0.1', 0))
    try:
        workers = []
        for wtype, x in zip(WorkerType, range(1, 4)):
            kwargs: dict[str, Any] = {
                'target': foo,
                'args': (x, )
            }
            if wtype is WorkerType.REMOTE:
                kwargs['host'] = server.addr

            worker = Worker.create(wtype, **kwargs)
            workers.append(worker)

        results = []
        for worker in workers:
            worker.wait()
            results.append(worker.result)

        print(results)
    finally:
        server.terminate()
