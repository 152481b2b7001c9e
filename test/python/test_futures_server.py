"""forkqueue.futures.ServerProcess: managed objects on multiprocessing.managers."""
import gc
import multiprocessing
import os
import pickle

import pytest

from forkqueue.futures import (MemoryBlock, MemoryBlockProxy, Process, ServerProcess,
                               get_remote_traceback, is_remote_exception, managed,
                               managed_dict, managed_iterator, managed_list,
                               managed_memoryblock, managed_namespace, managed_value)
from helpers import wait_until
from futures_helpers import spawn_resource_tracker  # noqa: F401


class Doubler:
    def __init__(self, k=2):
        self.k = k
        self.calls = []

    def double(self, x):
        self.calls.append(x)
        return x * self.k

    def history(self):
        return list(self.calls)

    def fail(self):
        raise KeyError("in the server")

    @property
    def prop(self):
        return 1

    def _private(self):
        return 2

    def make(self):
        return {
            "name": "tom",
            "hobbies": ["swim"],
            "mem": managed_memoryblock(MemoryBlock(100)),
            "jobs": ("a", {"uk": managed_list(["arm"])}),
            "ns": managed_namespace(_ns()),
            "val": managed_value(_val()),
            "it": managed_iterator(iter(range(3))),
            "d": managed_dict({"k": 1}),
            "self": managed(self, typeid=None),
        }


def _ns():
    from multiprocessing.managers import Namespace
    return Namespace(x=1)


def _val():
    from multiprocessing.managers import Value
    return Value("i", 5)


ServerProcess.register("Doubler", Doubler)


def test_register_again_is_a_value_error():
    with pytest.raises(ValueError, match="already registered"):
        ServerProcess.register("Doubler", Doubler)


def test_proxy_methods_exceptions_and_properties():
    with ServerProcess(name="the-server") as server:
        assert any(p.name == "the-server" for p in multiprocessing.active_children())
        d = server.Doubler(3)
        assert d.double(4) == 12
        with pytest.raises(AttributeError):
            d.prop
        with pytest.raises(AttributeError):
            d._private()
        with pytest.raises(KeyError) as info:
            d.fail()
        assert is_remote_exception(info.value)
        tb = get_remote_traceback(info.value)
        assert tb.startswith("[the-server] Traceback (most recent call last):")
        assert "in fail" in tb


def agent(d, data):
    data["jobs"][1]["uk"].append("bp")
    data["mem"].buf[3] = 8
    data["ns"].x = 10
    return d.double(5)


def test_nested_managed_proxies_through_a_child():
    with ServerProcess() as server:
        d = server.Doubler()
        data = d.make()
        assert isinstance(data["mem"], MemoryBlockProxy) and data["mem"].size == 100
        assert data["hobbies"] == ["swim"] and data["name"] == "tom"
        p = Process(target=agent, args=(d, data))
        p.start()
        assert p.result(timeout=60) == 10
        assert data["jobs"][1]["uk"][:] == ["arm", "bp"]
        assert data["mem"].buf[3] == 8
        assert data["ns"].x == 10
        assert data["val"].value == 5
        assert list(data["it"]) == [0, 1, 2]
        assert data["d"]["k"] == 1
        assert data["self"].history() == [5]


def test_objects_freed_when_proxies_go():
    with ServerProcess() as server:
        base = server._number_of_objects()
        d = server.Doubler()
        data = d.make()
        copy = pickle.loads(pickle.dumps(data))  # in-flight copies hold refs
        assert copy["jobs"][1]["uk"][0] == "arm"
        assert server._number_of_objects() > base
        del d, data, copy
        gc.collect()
        assert wait_until(lambda: server._number_of_objects() == base, timeout=10), \
            server._debug_info()


def test_builtin_types_and_nested_standard_proxies():
    with ServerProcess() as server:
        lst = server.list([1])
        dct = server.dict()
        dct["a"] = 3
        lst.append(dct)
        assert lst[1]["a"] == 3
        v = server.Value("i", 7)
        assert v.value == 7
        arr = server.Array("i", [1, 2, 3])
        assert arr[2] == 3 and len(arr) == 3
        ns = server.Namespace(a=1)
        assert ns.a == 1


def in_child_with_manager(manager):
    return manager.Doubler(10).double(2)


def test_manager_is_picklable_and_usable_in_a_child():
    with ServerProcess() as server:
        p = Process(target=in_child_with_manager, args=(pickle.loads(pickle.dumps(server)),))
        p.start()
        assert p.result(timeout=60) == 20
        # through a queue (pickled) to a forked child
        q = multiprocessing.get_context("fork").Queue()
        q.put(server)
        p = Process(target=lambda: in_child_with_manager(q.get()))
        p.start()
        assert p.result(timeout=60) == 20


def test_cpu_pinning():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    with ServerProcess(cpu=cpu) as server:
        assert os.sched_getaffinity(server._process.pid) == {cpu}


def test_memory_block_through_the_manager_is_shared():
    with ServerProcess() as server:
        m = server.MemoryBlock(64)
        assert m.size == 64 and isinstance(m.name, str)
        m.buf[:3] = b"abc"

        def write(mem):
            assert bytes(mem.buf[:3]) == b"abc"
            mem.buf[3] = 9
        p = Process(target=write, args=(m,))
        p.start()
        p.join(timeout=60)
        assert m.buf[3] == 9
        other = pickle.loads(pickle.dumps(m))
        assert other.buf[3] == 9 and other.name == m.name
        assert "MemoryBlockProxy" in str(m)


def test_concurrent_clients_each_served():
    import threading
    with ServerProcess() as server:
        d = server.Doubler()
        results = []
        def call(i):
            results.append(d.double(i))
        ts = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(results) == [2 * i for i in range(8)]
        assert sorted(d.history()) == list(range(8))
