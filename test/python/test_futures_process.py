"""forkqueue.futures.Process (forked) and SpawnProcess: processes as futures."""
import asyncio
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading

import pytest

import forkqueue.futures as ff
from forkqueue.futures import (Process, ProcessKilledError, SpawnProcess,
                               Thread, get_remote_traceback, is_remote_exception)
from helpers import child_pids, wait_until
from futures_helpers import spawn_resource_tracker  # noqa: F401



def add(a, b=0):
    return a + b


def fail(msg="bad"):
    raise ValueError(msg)


def exit_with(code):
    sys.exit(code)


def block_forever(path=None):
    if path:
        open(path, "w").close()
    threading.Event().wait()


def test_result_of_a_closure():
    base = 40
    p = Process(target=lambda x: base + x, args=(2,))
    assert not p.done()
    p.start()
    assert p.result() == 42
    assert p.done() and p.exitcode == 0 and p.join() is None
    assert p.exception() is None


def test_exception_with_remote_traceback_reraised_every_join(capfd):
    p = Process(target=fail, args=("boom",), name="the-child")
    p.start()
    for _ in range(3):
        with pytest.raises(ValueError, match="boom") as info:
            p.join()
    e = info.value
    assert p.exitcode == 1
    assert p.exception() is e
    with pytest.raises(ValueError):
        p.result()
    assert is_remote_exception(e)
    tb = get_remote_traceback(e)
    assert tb.startswith("[the-child] Traceback (most recent call last):")
    assert "in fail" in tb and tb.rstrip().endswith("ValueError: boom")
    assert "Exception in the-child: ValueError('boom')" in capfd.readouterr().out


@pytest.mark.parametrize("code, exitcode, raises", [
    (None, 0, False), (0, 0, False), (3, 3, True), ("text", 1, True)])
def test_system_exit(code, exitcode, raises):
    p = Process(target=exit_with, args=(code,))
    p.start()
    if raises:
        with pytest.raises(SystemExit):
            p.join()
        assert p.exception().code == code
    else:
        assert p.join() is None and p.result() is None
    assert p.exitcode == exitcode


def test_keyboard_interrupt_comes_back():
    def interrupted():
        raise KeyboardInterrupt
    p = Process(target=interrupted)
    p.start()
    with pytest.raises(KeyboardInterrupt):
        p.join()
    with pytest.raises(KeyboardInterrupt):
        p.result()
    assert isinstance(p.exception(), KeyboardInterrupt)
    assert p.exitcode == 1


def test_target_none_succeeds():
    p = Process()
    p.start()
    assert p.result() is None and p.exitcode == 0


class NeedsTwo(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}+{b}")


def test_exception_class_that_cannot_be_rebuilt_never_hangs():
    def bad():
        raise NeedsTwo(1, 2)
    p = Process(target=bad)
    p.start()
    with pytest.raises(NeedsTwo, match=r"1\+2"):
        p.join(timeout=30)

    class Local(Exception):
        pass

    def worse():
        raise Local("local class")
    p = Process(target=worse)
    p.start()
    with pytest.raises(ff.RemoteError, match="local class") as info:
        p.join(timeout=30)
    assert "Local" in info.value.type_name
    assert "Local: local class" in get_remote_traceback(info.value)


def test_unpicklable_result_is_an_error():
    p = Process(target=lambda: threading.Lock())
    p.start()
    with pytest.raises(TypeError, match="cannot pickle the result"):
        p.join(timeout=30)


def test_terminate_then_join(tmp_path):
    flag = tmp_path / "up"
    p = Process(target=block_forever, args=(str(flag),))
    p.start()
    assert wait_until(flag.exists)
    p.terminate()
    assert p.join(timeout=30) is None
    assert p.exitcode == -signal.SIGTERM
    assert p.result() is None and p.exception() is None
    assert not p.is_alive()


def test_sigkilled_child_names_the_signal(tmp_path):
    flag = tmp_path / "up"
    p = Process(target=block_forever, args=(str(flag),))
    p.start()
    assert wait_until(flag.exists)
    os.kill(p.pid, signal.SIGKILL)
    with pytest.raises(ProcessKilledError, match="killed by SIGKILL") as info:
        p.join(timeout=30)
    assert info.value.signal == signal.SIGKILL
    assert p.exitcode == -signal.SIGKILL
    assert isinstance(info.value, ChildProcessError)


def test_sigterm_not_from_terminate_is_an_error(tmp_path):
    flag = tmp_path / "up"
    p = Process(target=block_forever, args=(str(flag),))
    p.start()
    assert wait_until(flag.exists)
    os.kill(p.pid, signal.SIGTERM)
    with pytest.raises(ProcessKilledError, match="SIGTERM"):
        p.join(timeout=30)


def test_exit_without_outcome():
    p = Process(target=os._exit, args=(7,))
    p.start()
    with pytest.raises(ProcessKilledError, match="exited with code 7"):
        p.join(timeout=30)
    assert p.exitcode == 7


def test_timeouts(tmp_path):
    p = Process(target=block_forever)
    p.start()
    with pytest.raises(ff.TimeoutError):
        p.result(timeout=0.05)
    with pytest.raises(TimeoutError):
        p.exception(timeout=0.01)
    assert p.join(timeout=0.01) is None and not p.done() and p.is_alive()
    p.kill()
    assert p.join(timeout=30) is None and p.exitcode == -signal.SIGKILL


def test_multiprocessing_process_interface():
    p = Process(target=add, args=(1,), kwargs={"b": 2}, name="named", daemon=True)
    assert p.name == "named" and p.daemon
    p.start()
    assert p in multiprocessing.active_children() or p.done()
    assert multiprocessing.connection.wait([p.sentinel], timeout=30)
    assert p.result() == 3
    assert p not in multiprocessing.active_children()
    with pytest.raises(AssertionError):
        p.start()
    p.close()
    with pytest.raises(ValueError):
        p.result() if False else p.is_alive()
    assert Process().name.startswith("SpawnProcess-")  # as mpservice prints


def _current_name(q=None):
    return multiprocessing.current_process().name


def test_child_sees_its_own_process_object():
    p = Process(target=_current_name, name="me")
    p.start()
    assert p.result() == "me"


def test_daemonic_process_may_have_children():
    def outer():
        inner = Process(target=add, args=(20, 1))
        inner.start()
        return inner.result()
    p = Process(target=outer, daemon=True)
    p.start()
    assert p.result(timeout=30) == 21


def test_wait_and_as_completed_mixed(tmp_path):
    gate = threading.Event()
    t = Thread(target=gate.wait)
    t.start()
    p = Process(target=add, args=(1, 1))
    p.start()
    done, not_done = ff.wait([t, p], return_when=ff.FIRST_COMPLETED, timeout=30)
    assert done == {p} and not_done == {t}
    gate.set()
    assert set(ff.as_completed([t, p], timeout=30)) == {t, p}
    done, not_done = ff.wait([t, p])
    assert done == {t, p} and not not_done


def test_await_processes():
    async def main():
        ps = [Process(target=add, args=(i, i)) for i in range(5)]
        for p in ps:
            p.start()
        bad = Process(target=fail)
        bad.start()
        with pytest.raises(ValueError):
            await bad
        return await asyncio.gather(*ps)
    before = threading.active_count()
    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    # The collector thread, at most, besides the event loop's own.
    assert threading.active_count() <= before + 1


def _fd_count():
    return len(os.listdir("/proc/self/fd"))


def test_a_thousand_processes_no_zombie_no_descriptor():
    gc.collect()
    fds = _fd_count()
    before = set(child_pids())
    for batch in range(20):
        ps = [Process(target=add, args=(i, batch)) for i in range(50)]
        for p in ps:
            p.start()
        assert [p.result(timeout=60) for p in ps] == [i + batch for i in range(50)]
        for p in ps:
            p.join()
            assert p.exitcode == 0
        del ps, p
    gc.collect()
    assert not set(child_pids()) - before
    assert wait_until(lambda: _fd_count() <= fds, timeout=10), \
        (fds, _fd_count(), os.listdir("/proc/self/fd"))


# ---- SpawnProcess --------------------------------------------------------

def test_spawn_process_future_interface():
    p = SpawnProcess(target=add, args=(2, 3), name="spawned")
    p.start()
    assert p.result(timeout=60) == 5 and p.exitcode == 0
    q = SpawnProcess(target=fail, args=("spawn-bad",))
    q.start()
    with pytest.raises(ValueError, match="spawn-bad") as info:
        q.join(timeout=60)
    assert q.exitcode == 1
    assert get_remote_traceback(info.value).startswith(
        f"[{q.name}] Traceback (most recent call last):")
    assert isinstance(q, multiprocessing.context.SpawnProcess)


def test_spawn_process_terminate():
    p = SpawnProcess(target=block_forever)
    p.start()
    p.terminate()
    assert p.join(timeout=60) is None and p.exitcode == -signal.SIGTERM
    assert p.result() is None


def test_large_result_and_large_exception_message():
    p = Process(target=lambda: b"x" * (64 << 20))
    p.start()
    assert len(p.result(timeout=60)) == 64 << 20

    def big_error():
        raise ValueError("y" * (8 << 20))
    p = Process(target=big_error)
    p.start()
    with pytest.raises(ValueError) as info:
        p.join(timeout=60)
    assert len(str(info.value)) == 8 << 20


def test_ctrl_c_in_the_parent_ends_it_and_its_children(tmp_path):
    import subprocess
    import textwrap
    import time
    flag = tmp_path / "up"
    code = textwrap.dedent(f"""
        import threading
        from forkqueue.futures import Process
        def forever():
            open({str(flag)!r}, "w").close()
            threading.Event().wait()
        p = Process(target=forever)
        p.start()
        print("joining", flush=True)
        p.join()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # A SIGINT inside start()'s after-fork hooks would be reported as
        # ignored by CPython, not raised: it is sent once start() returned.
        assert proc.stdout.readline() == "joining\n"
        assert wait_until(flag.exists, timeout=30)
        kids = child_pids(proc.pid)
        assert len(kids) == 1
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert wait_until(lambda: not os.path.exists(f"/proc/{kids[0]}"), timeout=10)
