# Seed example 4: ordered=False with retn_ids=True. Prints [1, 4, 9, 16].
from forkqueue import ForkQueue

def myfunc(x: int, y: int) -> int:
    return x*y

out: list[object] = [None]*4
with ForkQueue(ordered=False, retn_ids=True) as queue:
    args = ((i+1,i+1) for i in range(4))
    for jobid, result in queue.process(myfunc, args):
        out[jobid] = result
print(out)
