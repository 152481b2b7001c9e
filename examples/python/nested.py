# Seed example 2: a nested function found through env=locals().
# Prints 2a+7 for a in 0..99. (The seed's `def main()` lacks its colon.)
from forkqueue import ForkQueue

def main() -> None:
    c = [1,2,3]
    def myfunc(a: int, b: int) -> int:
        return a+b+sum(c)

    with ForkQueue(numforks=4, env=locals()) as queue:
        args = ((a, a+1) for a in range(100))
        for result in queue.process(myfunc, args):
            print(result)

if __name__ == '__main__':
    main()
