"""A thread worker and a process worker run a function once each."""
from forkqueue.workers import ProcessWorker, ThreadWorker


def foo(x: int) -> int:
    return x**2


if __name__ == '__main__':
    tw = ThreadWorker(target=foo, args=(1,))
    tw.wait()

    pw = ProcessWorker(target=foo, args=(2,))
    pw.wait()

    print(tw.result, pw.result)
