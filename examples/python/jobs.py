# Jobs as futures: ForkQueue.submit_job() returns a Job to wait for, cancel,
# give a callback, or await in asyncio.
import asyncio

from forkqueue import ForkQueue, Job


def square(x: int) -> int:
    return x * x


def forever() -> None:
    import time
    while True:
        time.sleep(0.01)


async def gather_squares(q: ForkQueue) -> list[int]:
    return list(await asyncio.gather(*(q.submit_job(square, i) for i in range(5))))


with ForkQueue(numforks=2) as q:
    job = q.submit_job(square, 12)
    job.add_done_callback(lambda j: print("callback:", j.result()))
    print("12 squared is", job.result(timeout=30))

    slow: Job[None] = q.submit_job(forever)
    print("cancelled:", slow.cancel(), slow.cancelled())

    print("awaited:", asyncio.run(gather_squares(q)))
