# Cascading forks: a job may fork jobs of its own and return their (lazy)
# sum. forkqueue evaluates a returned proxy for the job, so the caller gets
# a number. Small cases run sequentially: a fork costs far more than fib(15).
import forkqueue.lazy as fork


def fib_seq(n: int) -> int:
    return n if n < 2 else fib_seq(n - 1) + fib_seq(n - 2)


def fib(n: int) -> int:
    if n < 18:
        return fib_seq(n)
    return fork.fork(fib, n - 1) + fork.fork(fib, n - 2)


for n in (10, 20, 22):
    print(f"fib({n}) = {fib(n)}")
print(fork.block_map(fib, None, [18, 19, 21]))
