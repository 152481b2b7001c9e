"""forkqueue.futures: processes and threads as futures."""
import logging
import sys

from forkqueue.futures import (Process, Thread, as_completed, get_remote_traceback,
                               is_remote_exception)

table = {n: n * n for n in range(10)}  # inherited by forked children, never pickled


def square(n: int) -> int:
    logging.getLogger("worker").info("squaring %d", n)
    return table[n]


def broken() -> None:
    raise ValueError("no such square")


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(processName)s: %(message)s")
    p = Process(target=square, args=(7,), name="squarer")
    t = Thread(target=lambda: sum(table.values()), name="summer")
    p.start()
    t.start()
    workers: list[Process | Thread] = [p, t]
    for w in sorted(as_completed(workers), key=lambda w: w.name):
        print(w.name, "->", w.result())

    bad = Process(target=broken, name="broken")
    bad.start()
    try:
        bad.join()
    except ValueError as e:
        print("caught:", repr(e), "remote:", is_remote_exception(e))
        print(get_remote_traceback(e).splitlines()[0])
    print("exit code:", bad.exitcode)
