"""A pool mixing process and remote workers, on a server this script
starts and stops."""
from forkqueue.workers import Pool, WorkerType, spawn_server


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    server = spawn_server(('127.0.0.1', 0))
    try:
        with Pool(foo) as pool:
            pool.add_worker(WorkerType.PROCESS)
            pool.add_worker(WorkerType.REMOTE, host=server.addr)
            pool.add_worker(WorkerType.REMOTE, host=server.addr)
            results = pool.run(range(20))
        print(sorted(results))
    finally:
        server.terminate()
