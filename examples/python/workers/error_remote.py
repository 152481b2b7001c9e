"""An exception in a remote target: result None, has_error True, error is the
exception itself."""
from forkqueue.workers import RemoteWorker, spawn_server


def suicide(x: int) -> None:
    raise RuntimeError('How is one supposed to live on this miserable world where x = {}?'.format(x))


if __name__ == '__main__':
    server = spawn_server(('127.0.0.1', 0))
    try:
        rw = RemoteWorker(target=suicide, args=(2,), host=server.addr)
        rw.wait()
        print(rw.result)
        print(rw.has_error)
        print(rw.error)
    finally:
        server.terminate()
