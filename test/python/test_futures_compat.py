"""forkqueue.futures prints, raises and names what mpservice does.

Each test here pins a divergence found by running the same programs under
mpservice.multiprocessing/.threading and under this face, and fixed: the
default process name, the texts of the errors programs see, what a daemonic
worker prints, the spawn context's Process, and the small API edges.
"""
import logging
import multiprocessing
import sys

import pytest

import forkqueue.futures as ff
from forkqueue.futures import (MP_SPAWN_CTX, IterableQueue, InvalidStateError,
                               Process, ProcessRunnee, ProcessRunner, RemoteException,
                               ServerProcess, SimpleQueue, SpawnProcess, Thread,
                               TimeoutError, get_remote_traceback, managed)
from futures_helpers import spawn_resource_tracker  # noqa: F401


def _name():
    return multiprocessing.current_process().name


def _fail():
    raise ValueError("bad")


def _exit(code):
    sys.exit(code)


def _add(a, b=0):
    return a + b


def _log_one():
    logging.getLogger("compat.child").warning("from the child")


# ---- names -----------------------------------------------------------------

def test_process_default_name_is_spawnprocess_n_everywhere(capfd):
    # mpservice's Process is its SpawnProcess, so programs (and the child's
    # own name, tracebacks and log records) show "SpawnProcess-N".
    p = Process(target=_name)
    assert p.name.startswith("SpawnProcess-")
    n = int(p.name.rsplit("-", 1)[1])
    p.start()
    assert p.result() == p.name
    q = Process(target=_fail)
    assert q.name == f"SpawnProcess-{n + 1}"
    q.start()
    with pytest.raises(ValueError) as ei:
        q.join()
    assert get_remote_traceback(ei.value).startswith(
        f"[SpawnProcess-{n + 1}] Traceback (most recent call last):")
    out = capfd.readouterr().out
    assert f"Exception in SpawnProcess-{n + 1}: ValueError('bad')" in out
    # An explicit name wins, and SpawnProcess keeps its own default.
    assert Process(target=_name, name="x").name == "x"
    assert SpawnProcess(target=_name).name.startswith("SpawnProcess-")


def test_child_log_records_carry_the_default_name():
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.processName)
    h = Keep()
    lg = logging.getLogger("compat.child")
    lg.addHandler(h)
    try:
        p = Process(target=_log_one)
        p.start()
        p.join()
        assert seen == [p.name] and p.name.startswith("SpawnProcess-")
    finally:
        lg.removeHandler(h)


class _Echo(ProcessRunnee):
    def __call__(self, x):
        return (_name(), x)


def test_process_runner_default_name():
    r = ProcessRunner(target=_Echo)
    with r:
        name, x = r(1)
    assert x == 1 and name.startswith("SpawnProcess-")


# ---- error texts -------------------------------------------------------------

def test_systemexit_with_a_message_writes_exitcode_line(capfd):
    p = Process(target=_exit, args=("msg",))
    p.start()
    with pytest.raises(SystemExit):
        p.join()
    assert p.exitcode == 1
    err = capfd.readouterr().err
    assert "exitcode: msg\n" in err


@pytest.mark.parametrize("cls", [Process, Thread])
def test_timeout_error_is_bare(cls):
    ev = multiprocessing.get_context("fork").Event()
    w = cls(target=ev.wait, args=(30,))
    w.start()
    for call in (w.result, w.exception):
        with pytest.raises(TimeoutError) as ei:
            call(0.01)
        assert ei.value.args == () and str(ei.value) == ""
    ev.set()
    w.join()


def test_remote_exception_error_texts():
    with pytest.raises(ValueError, match=r"^ValueError\(3\) does not contain traceback info$"):
        RemoteException(ValueError(3))
    try:
        raise KeyError(1)
    except KeyError as e:
        caught = e
    with pytest.raises(ValueError, match=r"^expecting no traceback but got: 3$"):
        RemoteException(caught, tb=3)


def test_throw_into_a_finished_thread_text():
    t = Thread(target=_add, args=(1,))
    t.start()
    t.join()
    with pytest.raises(InvalidStateError, match=r"^The thread is not running$"):
        t.throw(ValueError)


def test_wait_bad_return_when_text():
    t = Thread(target=_add, args=(1,))
    t.start()
    with pytest.raises(ValueError, match=r"^Invalid return condition: 'BOGUS'$"):
        ff.wait([t], return_when="bogus")
    t.join()


def test_not_started_process_text():
    p = Process(target=_add, args=(1,))
    for call in (p.join, p.result, p.exception):
        with pytest.raises(AssertionError, match=r"^can only join a started process$"):
            call()


def test_iterable_queue_error_texts():
    q = IterableQueue(SimpleQueue())
    with pytest.raises(ValueError, match=r"^`timeout` is not supported for the type of "
                                         r"queue used in this object: SimpleQueue$"):
        q.put(1, timeout=1)
    with pytest.raises(RuntimeError, match=r"^the object is not in a renewable state$"):
        q.renew()
    q.put_end()
    with pytest.raises(RuntimeError,
                       match=r"^`put_end` is called more than `num_suppliers` times$"):
        q.put_end()
    assert list(q) == []


def test_closed_process_refuses_future_calls():
    p = Process(target=_add, args=(1,))
    p.start()
    assert p.result() == 1
    p.close()
    for call in (p.done, p.result, p.exception, p.join):
        with pytest.raises(ValueError, match="process object is closed"):
            call()


# ---- daemonic workers show their error ---------------------------------------

def test_daemonic_thread_prints_its_traceback(capfd):
    t = Thread(target=_fail, daemon=True)
    t.start()
    with pytest.raises(ValueError):
        t.join()
    err = capfd.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert "in _fail" in err and err.rstrip().endswith("ValueError: bad")


def test_daemonic_process_prints_its_traceback(capfd):
    p = Process(target=_fail, daemon=True)
    p.start()
    with pytest.raises(ValueError):
        p.join()
    err = capfd.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert "in _fail" in err and "ValueError: bad" in err


def test_non_daemonic_workers_print_no_traceback(capfd):
    for w in (Thread(target=_fail), Process(target=_fail)):
        w.start()
        with pytest.raises(ValueError):
            w.join()
    assert "Traceback" not in capfd.readouterr().err


# ---- API edges ---------------------------------------------------------------

def test_kwargs_none_is_accepted():
    for cls in (Process, SpawnProcess, Thread):
        w = cls(target=_add, args=(1,), kwargs=None)
        w.start()
        assert w.result() == 1


def test_mp_spawn_ctx_process_is_a_future():
    p = MP_SPAWN_CTX.Process(target=_add, args=(2, 3))
    assert isinstance(p, SpawnProcess)
    p.start()
    assert p.result() == 5 and p.exitcode == 0


def test_spawn_context_is_exported():
    assert isinstance(ff.MP_SPAWN_CTX, ff.SpawnContext)
    assert ff.SpawnContext().Process is SpawnProcess


class MyThing:
    def hi(self):
        return "hi"


class _Maker:
    def thing(self):
        return managed(MyThing())

    def block(self):
        return ff.managed_memoryblock(ff.MemoryBlock(8))


ServerProcess.register("CompatMaker", _Maker)


def test_managed_typeid_and_memoryblock_proxy_text():
    with ServerProcess() as mgr:
        m = mgr.CompatMaker()
        t = m.thing()
        # mpservice names the typeid "Managed" + the class name's .title()
        assert type(t).__name__ == "AutoProxy[ManagedMything]"
        assert t.hi() == "hi"
        b = m.block()
        assert str(b) == f"<MemoryBlockProxy {b.name!r} at {b._id}, size 8>"
        del t, b, m
