# Seed example 1: the minimal process() example. Prints 1, 2, 3, 4.
from forkqueue import ForkQueue

def myfunc(x: int) -> int:
    return x+1

with ForkQueue() as queue:
     args = [(0,), (1,), (2,), (3,)]
     for result in queue.process(myfunc, args):
         print(result)
