"""forkqueue.channels, part 1: create/exit, start, Channel, waitall, stdio
and interpreter exit (spec: shared/spec/channels.md)."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import forkqueue.channels as pprocess
from helpers import child_pids, is_running, proc_state, wait_until


def run(code, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60, **kw)


def test_names():
    for name in ("create", "start", "exit", "waitall", "Channel", "Exchange",
                 "Map", "Queue", "pmap", "MakeParallel", "MakeReusable",
                 "get_number_of_cores", "AcknowledgementError"):
        assert hasattr(pprocess, name), name
    assert callable(pprocess.Exchange.manage)
    assert issubclass(pprocess.AcknowledgementError, Exception)
    n = pprocess.get_number_of_cores()
    assert isinstance(n, int) and 1 <= n <= os.cpu_count()


def test_create_pid_and_child_continues():
    channel = pprocess.create()
    if channel.pid == 0:
        # the child continues after create()
        channel.send(("child", os.getpid(), os.getppid()))
        pprocess.exit(channel)
    what, pid, ppid = channel.receive()
    assert what == "child" and pid == channel.pid and ppid == os.getpid()
    assert isinstance(channel, pprocess.Channel)
    with pytest.raises(EOFError):
        channel.receive()
    channel.close()
    channel.wait()
    assert channel.returncode == 0
    channel.close()  # idempotent


def test_objects_are_pickled_and_arrive_in_order():
    def child(ch):
        for i in range(1000):
            ch.send({"i": i, "data": [i] * (i % 7)})
        ch.send(("big", b"x" * 3_000_000))

    channel = pprocess.start(child)
    for i in range(1000):
        assert channel.receive() == {"i": i, "data": [i] * (i % 7)}
    assert channel.receive() == ("big", b"x" * 3_000_000)
    channel.wait()
    assert channel.returncode == 0


def test_start_passes_channel_args_and_kwargs():
    def child(ch, a, b, *, c):
        ch.send((a, b, c))
        ch.send(ch.receive() * 2)

    channel = pprocess.start(child, 1, "two", c=[3])
    assert channel.receive() == (1, "two", [3])
    channel.send(21)
    assert channel.receive() == 42
    channel.wait()


def test_exception_in_child_is_raised_by_receive_with_traceback():
    def child(ch):
        ch.send("first")
        {}["missing key"]

    channel = pprocess.start(child)
    assert channel.receive() == "first"
    with pytest.raises(KeyError) as info:
        channel.receive()
    assert info.value.args == ("missing key",)
    cause = info.value.__cause__
    assert isinstance(cause, pprocess.RemoteTraceback)
    assert "in child" in str(cause) and "KeyError" in str(cause)
    channel.wait()


def test_oserror_in_user_code_is_the_error_not_a_channel_failure():
    def child(ch):
        open("/nonexistent/dir/file")

    channel = pprocess.start(child)
    with pytest.raises(FileNotFoundError) as info:
        channel.receive()
    assert "/nonexistent/dir/file" in str(info.value)
    channel.wait()


@pytest.mark.parametrize("exc, text", [(SystemExit(3), "SystemExit: 3"),
                                       (KeyboardInterrupt(),
                                        "KeyboardInterrupt")])
def test_systemexit_and_keyboardinterrupt_in_child_are_errors(exc, text):
    def child(ch):
        raise exc

    channel = pprocess.start(child)
    with pytest.raises(pprocess.ChildError, match=text):
        channel.receive()
    channel.wait()


def test_unpicklable_exception_still_arrives():
    class Local(Exception):  # defined in a function: cannot be pickled
        pass

    def child(ch):
        raise Local("made locally")

    channel = pprocess.start(child)
    with pytest.raises(pprocess.RemoteError, match="Local: made locally"):
        channel.receive()
    channel.wait()


def test_exception_object_sent_is_raised_like_pprocess():
    def child(ch):
        ch.send(ValueError("as a value"))

    channel = pprocess.start(child)
    with pytest.raises(ValueError, match="as a value"):
        channel.receive()
    channel.wait()


def test_no_acknowledgement_child_exits_before_parent_reads():
    def child(ch):
        for i in range(100):
            ch.send(i)

    channel = pprocess.start(child)
    # The child ends without any reply from us...
    assert wait_until(lambda: channel.wait(os.WNOHANG) is not None)
    assert channel.returncode == 0
    # ...and everything it sent is still there, in order.
    assert [channel.receive() for _ in range(100)] == list(range(100))
    assert not hasattr(pprocess.Channel, "acknowledge")


def test_wait_options_wnohang():
    def child(ch):
        ch.receive()

    channel = pprocess.start(child)
    assert channel.wait(os.WNOHANG) is None  # still running
    channel.send("go")
    assert channel.wait() == 0
    assert channel.wait(os.WNOHANG) == 0


def test_send_after_child_gone_is_broken_pipe():
    channel = pprocess.start(lambda ch: None)
    channel.wait()
    with pytest.raises(BrokenPipeError):
        for _ in range(200):
            channel.send(b"x" * 100000)


def test_waitall_reaps_and_never_blocks_on_a_child_waiting_for_us():
    def waits_for_parent(ch):
        ch.send("waiting")
        ch.receive()  # the parent never sends: EOFError once waitall runs

    def sends_then_ends(ch):
        for i in range(5):
            ch.send(i)

    before = set(child_pids())  # other tests' leftovers, if any
    a = pprocess.start(waits_for_parent)
    b = pprocess.start(sends_then_ends)
    t0 = time.monotonic()
    pprocess.waitall()
    assert time.monotonic() - t0 < 10
    assert not (set(child_pids()) - before)
    # data sent before waitall() is still delivered afterwards
    assert a.receive() == "waiting"
    assert [b.receive() for _ in range(5)] == list(range(5))
    with pytest.raises(EOFError):  # a's child raised EOFError: reported
        a.receive()


def test_waitall_reaps_only_this_modules_children():
    # A child of ours that is not the module's, already ended (a zombie)
    # when waitall() runs, with status 3: waitall() leaves it to its owner
    # (a stolen status would read 0 in Popen.wait()).
    other = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        assert wait_until(lambda: proc_state(other.pid) == "Z", 20)
        ch = pprocess.start(lambda ch: None)
        pprocess.waitall()
        assert ch.returncode == 0
        assert proc_state(other.pid) == "Z"  # not reaped by waitall
        assert other.wait(timeout=10) == 3
    finally:
        other.kill()
        other.wait()


def test_child_has_own_process_group_and_is_killed_by_signal():
    def child(ch):
        ch.send(os.getpgrp())
        signal.pause()

    channel = pprocess.start(child)
    assert channel.receive() == channel.pid != os.getpgrp()
    os.kill(channel.pid, signal.SIGKILL)
    channel.wait()
    assert channel.returncode == -signal.SIGKILL
    assert "killed by signal 9 (SIGKILL)" in pprocess.describe_exit(
        channel.pid, channel.returncode)


STDIO_SCRIPT = r"""
import atexit, os, sys
import forkqueue.channels as pprocess
parent = os.getpid()
atexit.register(lambda: print("exit handler in", "parent" if os.getpid() == parent else "child"))
print("printed before create")
sys.stdout.write("unflushed tail ")
channel = pprocess.create()
if channel.pid == 0:
    print("printed by the child")
    pprocess.exit(channel)
channel.wait()
print("printed after the child ended")
"""
STDIO_EXPECTED = ("printed before create\nunflushed tail printed by the child\n"
                  "printed after the child ended\nexit handler in parent\n")


@pytest.mark.parametrize("where", ["file", "pipe", "tty"])
def test_stdio_never_printed_twice_and_child_skips_exit_handlers(tmp_path,
                                                                  where):
    if where == "tty":
        import pty
        master, slave = pty.openpty()
        p = subprocess.Popen([sys.executable, "-c", STDIO_SCRIPT],
                             stdout=slave, stderr=subprocess.PIPE, text=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO once the other side is closed
                break
            if not b:
                break
            chunks.append(b)
        os.close(master)
        _, err = p.communicate(timeout=60)
        r = subprocess.CompletedProcess(p.args, p.returncode, None, err)
        out = b"".join(chunks).decode().replace("\r\n", "\n")
    elif where == "pipe":
        r = run(STDIO_SCRIPT)
        out = r.stdout
    else:
        path = tmp_path / "out.txt"
        with open(path, "w") as f:
            r = subprocess.run([sys.executable, "-c", STDIO_SCRIPT], stdout=f,
                               stderr=subprocess.PIPE, text=True, timeout=60)
        out = path.read_text()
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert out == STDIO_EXPECTED


def test_children_running_at_interpreter_exit_are_ended_and_reaped(tmp_path):
    pids = tmp_path / "pids"
    r = run(f"""
        import atexit, os, signal
        def children_left():  # runs after the module's own exit handler
            me = str(os.getpid())
            n = 0
            for d in os.listdir("/proc"):
                try:
                    with open(f"/proc/{{d}}/stat") as f:
                        st = f.read()
                except OSError:
                    continue
                if st[st.rindex(")") + 2:].split()[1] == me:
                    n += 1
            print("children left at exit:", n)
        atexit.register(children_left)
        import forkqueue.channels as pprocess
        def forever(ch):
            ch.send("up")
            while True:
                signal.pause()
        chans = [pprocess.start(forever) for _ in range(3)]
        for c in chans:
            c.receive()
        ex = pprocess.Exchange(limit=1)
        ex.start(forever)
        with open({str(pids)!r}, "w") as f:
            f.write(" ".join(str(c.pid) for c in chans + ex.active()))
        # ends without waiting for them
        """)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "children left at exit: 0\n"
    left = [int(p) for p in pids.read_text().split()]
    assert len(left) == 4
    # reaped by their parent before it exited: not even zombies remain
    assert wait_until(lambda: not any(is_running(p) for p in left),
                      timeout=5)


def test_exit_in_child_closes_channel_and_uses_code():
    channel = pprocess.create()
    if channel.pid == 0:
        channel.send("bye")
        pprocess.exit(channel, 7)
    assert channel.receive() == "bye"
    assert channel.wait() == 7


def test_channel_fileno_for_select():
    import select
    channel = pprocess.start(lambda ch: ch.send(1))
    r, _, _ = select.select([channel], [], [], 10)
    assert r == [channel]
    assert channel.receive() == 1
    channel.wait()


def test_pickled_payloads_use_highest_protocol():
    big = bytearray(range(256)) * 4000

    def child(ch):
        ch.send(pickle.PickleBuffer(big).raw().tobytes())

    channel = pprocess.start(child)
    assert channel.receive() == bytes(big)
    channel.wait()


def test_ctrl_c_while_waiting_for_a_map_then_children_are_reaped(tmp_path):
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        import forkqueue.channels as pprocess
        def slow(x):
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{os.getpid()}} ")
            time.sleep(60)
        m = pprocess.pmap(slow, range(4), limit=2)
        try:
            m[0]
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """)
    from helpers import in_poll
    p = subprocess.Popen([sys.executable, "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert wait_until(lambda: pids.exists() and
                          len(pids.read_text().split()) == 2 and
                          in_poll(p.pid))
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        assert out == "interrupted\n", err
        assert time.monotonic() - t0 < 5  # SIGTERM at exit, no minute wait
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    children = [int(x) for x in pids.read_text().split()]
    assert not any(is_running(c) for c in children)


def test_public_names_unpickle_in_a_fresh_interpreter():
    # Pickled by reference, as a class or function sent to another
    # interpreter: found through forkqueue.channels, whatever module of
    # the package defines them.
    names = ["Exchange", "Map", "Queue", "pmap", "Channel", "MakeParallel"]
    data = pickle.dumps([getattr(pprocess, n) for n in names])
    r = subprocess.run([sys.executable, "-c",
                        "import pickle, sys\n"
                        "objs = pickle.loads(sys.stdin.buffer.read())\n"
                        "print(*[o.__name__ for o in objs])"],
                       input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == names
