"""forkqueue.futures: a server process with managed objects and shared memory."""
from typing import Any

from forkqueue.futures import (MemoryBlock, Process, ServerProcess, is_remote_exception,
                               managed_list, managed_memoryblock)


class Doubler:
    def __init__(self, k: int = 2) -> None:
        self.k = k

    def double(self, x: int) -> int:
        return x * self.k

    def fail(self) -> None:
        raise ValueError("raised in the server")

    def make(self) -> dict[str, Any]:
        # Proxies nested in plain data, made inside the server.
        return {"l": managed_list([1]), "m": managed_memoryblock(MemoryBlock(10))}


ServerProcess.register("Doubler", Doubler)


def use(d: Any, data: dict[str, Any]) -> None:
    data["l"].append(d.double(3))
    data["m"].buf[0] = 5  # the server's memory, mapped here


if __name__ == "__main__":
    with ServerProcess(name="server") as s:
        d: Any = getattr(s, "Doubler")(3)
        print(d.double(2))
        try:
            d.fail()
        except ValueError as e:
            print("ValueError:", e, "remote:", is_remote_exception(e))
        data = d.make()
        p = Process(target=use, args=(d, data))
        p.start()
        p.join()
        print(data["l"][:], data["m"].buf[0], data["m"].size)
        m = s.MemoryBlock(20)
        print(m.size, len(m.buf))
