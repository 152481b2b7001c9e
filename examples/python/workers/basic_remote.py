"""The same with a remote worker too, on a server this script starts on
loopback (port 0: a free port) and stops."""
from forkqueue.workers import (ProcessWorker, RemoteWorker, ThreadWorker,
                               spawn_server)


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    server = spawn_server(('127.0.0.1', 0))
    try:
        tw = ThreadWorker(target=foo, args=(1,))
        tw.wait()

        pw = ProcessWorker(target=foo, args=(2,))
        pw.wait()

        rw = RemoteWorker(target=foo, args=(3,), host=server.addr)
        rw.wait()

        print(tw.result, pw.result, rw.result)
    finally:
        server.terminate()
