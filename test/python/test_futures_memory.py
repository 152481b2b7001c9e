"""forkqueue.futures.MemoryBlock: shared memory that cannot leak."""
import gc
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest

from forkqueue.futures import MemoryBlock, Process, SpawnProcess
from helpers import wait_until
from futures_helpers import spawn_resource_tracker  # noqa: F401


SHM_AT_START = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def test_name_size_buf():
    m = MemoryBlock(1000)
    assert m.size == 1000 and m.name.startswith("fq_")
    buf = m.buf
    assert isinstance(buf, memoryview) and len(buf) == 1000 and not buf.readonly
    buf[:5] = b"hello"
    assert bytes(m.buf[:5]) == b"hello"
    with pytest.raises(ValueError):
        MemoryBlock(0)


def _write(m, value):
    m.buf[0] = value
    return bytes(m.buf[1:4])


def test_shared_with_a_forked_child():
    m = MemoryBlock(16)
    m.buf[1:4] = b"abc"
    p = Process(target=_write, args=(m, 42))
    p.start()
    assert p.result(timeout=30) == b"abc"
    assert m.buf[0] == 42


def test_shared_through_a_queue_and_with_a_spawned_child():
    m = MemoryBlock(16)
    m.buf[1:4] = b"xyz"
    q = multiprocessing.get_context("fork").Queue()
    p = Process(target=lambda: _write(q.get(timeout=30), 7))
    p.start()
    q.put(m)
    assert p.result(timeout=30) == b"xyz" and m.buf[0] == 7
    s = SpawnProcess(target=_write, args=(m, 9))
    s.start()
    assert s.result(timeout=60) == b"xyz" and m.buf[0] == 9


def test_pickled_copy_is_the_same_memory():
    m = MemoryBlock(8)
    c = pickle.loads(pickle.dumps(m))
    c.buf[0] = 5
    assert m.buf[0] == 5 and c.name == m.name and c.size == 8


def test_released_when_unreferenced():
    m = MemoryBlock(4096)
    name = m.name
    _, pid, fd, token = name.split("_")
    target = f"/memfd:fq_{token} (deleted)"
    assert int(pid) == os.getpid()
    assert os.readlink(f"/proc/self/fd/{fd}") == target

    def held():
        try:
            return os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            return False
    del m
    gc.collect()
    assert not held()
    with pytest.raises(FileNotFoundError, match="gone"):
        MemoryBlock._attach(name, 4096)


def test_nothing_left_after_crashes():
    # A creator killed with SIGKILL while it and its child hold blocks, and
    # a child killed while holding its parent's block: nothing stays behind
    # in /dev/shm (blocks never appear there) and no process keeps them.
    code = textwrap.dedent("""
        import os, signal, sys
        from forkqueue.futures import MemoryBlock, Process
        blocks = [MemoryBlock(1 << 20) for _ in range(5)]
        def hold(m):
            m.buf[0] = 1
            os.kill(os.getpid(), signal.SIGKILL)
        p = Process(target=hold, args=(blocks[0],))
        p.start()
        try:
            p.join()
        except Exception as e:
            print(type(e).__name__, flush=True)
        print(blocks[0].name, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "ProcessKilledError" and lines[1].startswith("fq_")
    now = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    assert not {n for n in now - SHM_AT_START if "fq" in n}


def _ours(names):
    # Shared memory our code could leave in /dev/shm: forkqueue's own names
    # and the stdlib SharedMemory fallback's (psm_). Not the stdlib's
    # semaphores (sem.mp-*): ctest runs other test files side by side, and
    # theirs come and go in the same directory.
    return {n for n in names if "fq" in n or n.startswith("psm_")}


def test_zz_no_segment_leaked_in_dev_shm_by_this_suite():
    gc.collect()
    assert wait_until(
        lambda: not _ours(set(os.listdir("/dev/shm")) - SHM_AT_START),
        timeout=10), _ours(set(os.listdir("/dev/shm")) - SHM_AT_START)


def _libforkqueue():
    import ctypes
    import forkqueue
    here = os.path.dirname(os.path.dirname(os.path.abspath(forkqueue.__file__)))
    path = os.path.join(os.path.dirname(here), "libforkqueue.so")
    if not os.path.exists(path):
        pytest.skip("libforkqueue.so is not beside the built package")
    lib = ctypes.CDLL(path)
    lib.fq_shm_attach.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]
    lib.fq_shm_create.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
    lib.fq_shm_data.restype = ctypes.c_void_p
    lib.fq_shm_data.argtypes = [ctypes.c_void_p]
    lib.fq_shm_size.restype = ctypes.c_size_t
    lib.fq_shm_size.argtypes = [ctypes.c_void_p]
    lib.fq_shm_name.restype = ctypes.c_char_p
    lib.fq_shm_name.argtypes = [ctypes.c_void_p]
    lib.fq_shm_free.argtypes = [ctypes.c_void_p]
    return lib


def test_c_api_and_python_share_blocks_both_ways():
    import ctypes
    lib = _libforkqueue()
    m = MemoryBlock(256)
    m.buf[0] = 42
    h = ctypes.c_void_p()
    assert lib.fq_shm_attach(ctypes.byref(h), m.name.encode()) == 0
    assert lib.fq_shm_size(h) == 256
    data = (ctypes.c_ubyte * 256).from_address(lib.fq_shm_data(h))
    assert data[0] == 42
    data[1] = 43
    assert m.buf[1] == 43
    lib.fq_shm_free(h)

    c = ctypes.c_void_p()
    assert lib.fq_shm_create(ctypes.byref(c), 128) == 0
    name = lib.fq_shm_name(c).decode()
    (ctypes.c_ubyte * 128).from_address(lib.fq_shm_data(c))[5] = 6
    seen = MemoryBlock._attach(name, 128)
    assert seen.buf[5] == 6
    del seen
    lib.fq_shm_free(c)
