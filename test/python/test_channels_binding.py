"""The process primitive under the Python faces: forkqueue._forkqueue.Channel,
fork_channel(), child_exit() and wait_channels()."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from forkqueue import _forkqueue as fq
from helpers import in_poll, is_running, wait_until


def fork_echo():
    """A child echoing every message until the end of the stream."""
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        try:
            while True:
                m = ch.recv()
                if m is None:
                    break
                ch.send(m)
        finally:
            fq.child_exit(0)
    return ch


def fork_sleeper():
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        while True:
            signal.pause()
    return ch


def test_round_trip_of_every_bytes_like():
    ch = fork_echo()
    assert ch.pid > 0 and ch.returncode is None
    for data in (b"", b"x", bytearray(b"abc"), memoryview(b"0123456789")[2:5],
                 os.urandom(70000), b"z" * (3 << 20)):
        ch.send(data)
        assert ch.recv(timeout=10) == bytes(data)
    ch.close()
    assert ch.wait(timeout=10) == 0
    assert ch.returncode == 0


def test_pid_is_zero_in_the_child_and_exit_status_reaches_parent():
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        ok = os.getpgrp() == os.getpid()
        ch.send(b"ok" if ok else b"bad")
        fq.child_exit(42)
    assert ch.recv(timeout=10) == b"ok"
    assert ch.recv(timeout=10) is None  # end of stream
    assert ch.recv(timeout=0) is None
    assert ch.wait() == 42
    assert ch.wait() == 42  # reaped: the same answer at once
    assert "returncode=42" in repr(ch)


def test_timeout_poll_and_wait_timeout():
    ch = fork_sleeper()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.1)
    assert 0.09 <= time.monotonic() - t0 < 5
    assert ch.poll() is False
    assert ch.poll(0.05) is False
    assert ch.wait(timeout=0.05) is None
    assert ch.wait(timeout=0) is None
    assert isinstance(ch.fileno(), int)
    ch.kill(signal.SIGTERM)
    assert ch.wait(timeout=10) == -signal.SIGTERM
    ch.kill(signal.SIGKILL)  # no-op once reaped
    assert ch.poll(0) is True  # its end closed with it
    assert ch.recv() is None


def test_kill_reaches_what_the_child_started():
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        p = subprocess.Popen(["sleep", "60"])
        ch.send(str(p.pid).encode())
        signal.pause()
        fq.child_exit(0)
    grandchild = int(ch.recv(timeout=10))
    assert is_running(grandchild)
    ch.kill(signal.SIGKILL)
    assert ch.wait(timeout=10) == -signal.SIGKILL
    # the grandchild was in the child's group; init reaps it
    assert wait_until(lambda: not is_running(grandchild))


def test_broken_pipe_when_peer_gone():
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        fq.child_exit(0)
    assert ch.wait(timeout=10) == 0
    with pytest.raises(BrokenPipeError):
        for _ in range(1000):
            ch.send(b"x" * 65536)


def test_closed_channel_errors():
    ch = fork_echo()
    ch.close()
    ch.close()
    assert ch.closed
    with pytest.raises(ValueError, match="closed"):
        ch.send(b"x")
    with pytest.raises(ValueError, match="closed"):
        ch.recv()
    with pytest.raises(ValueError, match="closed"):
        ch.fileno()
    assert ch.wait(timeout=10) == 0


def test_wait_and_kill_refused_in_the_child():
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        res = []
        for call in (lambda: ch.wait(), lambda: ch.kill(signal.SIGTERM)):
            try:
                call()
                res.append("no error")
            except ValueError:
                res.append("ValueError")
        ch.send(",".join(res).encode())
        fq.child_exit(0)
    assert ch.recv(timeout=10) == b"ValueError,ValueError"
    assert ch.wait(timeout=10) == 0


def test_inherited_channel_is_dead_in_another_child():
    a = fork_sleeper()
    sys.stdout.flush()
    b = fq.fork_channel()
    if b.pid == 0:
        try:
            a.send(b"x")
            b.send(b"sent")
        except ValueError:
            b.send(b"ValueError")
        fq.child_exit(0)
    assert b.recv(timeout=10) == b"ValueError"
    assert b.wait(timeout=10) == 0
    a.kill(signal.SIGKILL)
    assert a.wait(timeout=10) == -signal.SIGKILL


def test_wait_channels():
    chans = [fork_echo() for _ in range(3)]
    assert fq.wait_channels(chans, 0) == []
    t0 = time.monotonic()
    assert fq.wait_channels(chans, 0.1) == []
    assert time.monotonic() - t0 >= 0.09
    chans[1].send(b"a")
    assert fq.wait_channels(chans, 10) == [chans[1]]
    chans[2].send(b"b")
    assert wait_until(lambda: fq.wait_channels(chans, 0) == chans[1:])
    assert chans[1].recv() == b"a"
    assert chans[2].recv() == b"b"
    with pytest.raises(TypeError, match="item 1"):
        fq.wait_channels([chans[0], 3], 0)
    for c in chans:
        c.close()
        assert c.wait(timeout=10) == 0
    with pytest.raises(ValueError, match="closed"):
        fq.wait_channels(chans, 0)


def test_one_thread_at_a_time():
    ch = fork_echo()
    got = []
    t = threading.Thread(target=lambda: got.append(ch.recv(timeout=10)))
    t.start()

    def refused():
        try:
            ch.poll()
        except RuntimeError:
            return True
        return False

    assert wait_until(refused)
    with pytest.raises(RuntimeError):
        ch.close()
    ch.send(b"wake")  # sending while another thread receives is fine
    t.join()
    assert got == [b"wake"]
    ch.close()
    assert ch.wait(timeout=10) == 0


def test_not_constructible():
    with pytest.raises(TypeError):
        fq.Channel()


def test_ctrl_c_interrupts_recv_promptly(tmp_path):
    script = r"""
import sys, signal
from forkqueue import _forkqueue as fq
sys.stdout.flush()
ch = fq.fork_channel()
if ch.pid == 0:
    while True:
        signal.pause()
try:
    ch.recv()
except KeyboardInterrupt:
    print("interrupted", flush=True)
ch.kill(signal.SIGKILL)
print(ch.wait())
"""
    p = subprocess.Popen([sys.executable, "-c", script],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: in_poll(p.pid))
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
        assert time.monotonic() - t0 < 10  # interrupted, not blocked for ever
        assert out.split() == ["interrupted", str(-signal.SIGKILL)]
    finally:
        p.kill()
        p.wait()


def test_fork_hooks_run_and_child_skips_atexit(tmp_path):
    marker = tmp_path / "marker"
    script = rf"""
import atexit, os, sys
from forkqueue import _forkqueue as fq
os.register_at_fork(after_in_child=lambda: open({str(marker)!r}, "a").write("c"),
                    after_in_parent=lambda: open({str(marker)!r}, "a").write("p"))
atexit.register(lambda: print("atexit", os.getpid() == PARENT))
PARENT = os.getpid()
print("before", flush=True)
ch = fq.fork_channel()
if ch.pid == 0:
    print("child")
    sys.stdout.flush()
    fq.child_exit(3)
print(ch.wait())
"""
    for stdout in (subprocess.PIPE, ):
        r = subprocess.run([sys.executable, "-c", script], stdout=stdout,
                           text=True, timeout=30)
        assert r.stdout.split("\n") == ["before", "child", "3",
                                        "atexit True", ""]
    assert sorted(marker.read_text()) == ["c", "p"]


def test_freed_running_child_is_reaped_by_cleanup():
    ch = fork_sleeper()
    pid = ch.pid
    del ch  # freed while the child runs: an orphan of the core
    assert is_running(pid)
    assert fq._channel_cleanup(0, 0) == 1
    assert fq._channel_cleanup(signal.SIGKILL, 10) == 0
    assert not is_running(pid)


def test_core_exchange_reports_messages_then_end():
    a, b = fork_echo(), fork_sleeper()
    ex = fq.Exchange()
    assert ex.ready(0) == [] and len(ex) == 0  # nothing watched: at once
    ex.add(a)
    ex.add(b)
    ex.add(a)  # already watched: no-op
    assert len(ex) == 2
    t0 = time.monotonic()
    assert ex.ready(0.1) == []
    assert time.monotonic() - t0 >= 0.09
    a.send(b"one")
    assert ex.ready(10) == [(a, False)]
    assert ex.ready(0) == [(a, False)]  # level-triggered until received
    assert a.recv(0) == b"one"
    a.close()  # its child sees the end and exits
    assert ex.ready(10) == [(a, True)]
    assert a.returncode == 0 and len(ex) == 1
    ex.remove(b)
    with pytest.raises(ValueError):
        ex.remove(b)
    with pytest.raises(TypeError):
        ex.add(3)
    b.kill(signal.SIGKILL)
    assert b.wait(10) == -signal.SIGKILL


def test_core_exchange_data_before_end_and_crash_status():
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        for i in range(3):
            ch.send(b"%d" % i)
        os.kill(os.getpid(), signal.SIGKILL)
    ex = fq.Exchange()
    ex.add(ch)
    got = []
    while True:
        (c, ended), = ex.ready(10)
        if ended:
            break
        got.append(c.recv(0))
    assert got == [b"0", b"1", b"2"]
    assert ch.returncode == -signal.SIGKILL


def test_core_exchange_refuses_child_end():
    sys.stdout.flush()
    ch = fq.fork_channel()
    if ch.pid == 0:
        try:
            fq.Exchange().add(ch)
            ch.send(b"accepted")
        except ValueError:
            ch.send(b"ValueError")
        fq.child_exit(0)
    assert ch.recv(10) == b"ValueError"
    assert ch.wait(10) == 0
