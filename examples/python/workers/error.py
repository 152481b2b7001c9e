"""An exception in the target: result None, has_error True, error is the
exception itself."""
from forkqueue.workers import ProcessWorker


def suicide(x: int) -> None:
    raise RuntimeError('How is one supposed to live on this miserable world where x = {}?'.format(x))


if __name__ == '__main__':
    pw = ProcessWorker(target=suicide, args=(2,))
    pw.wait()
    print(pw.result)
    print(pw.has_error)
    print(pw.error)
