# Seed example 3: the add()/results() interface. Prints 0, 1, 4.
from forkqueue import ForkQueue

def myfunc1(x: int) -> int:
    return x**2

def myfunc2(x: int) -> int:
    return x

with ForkQueue() as queue:
    queue.add(myfunc1, (0,))
    queue.add(myfunc2, (1,))
    queue.add(myfunc1, (2,))

    for result in queue.results():
        print(result)
