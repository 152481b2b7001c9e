"""Conformance audit of forkqueue.workers against spec/workers.md.

Thread and process workers are checked item by item; one server (spawned
once for the module) covers the remote kind. The user-program tests run
README-style programs in a fresh interpreter and compare their output.
"""
import inspect
import os
import queue
import signal
import textwrap
import threading
import time

import pytest

from forkqueue.workers import (PersistentProcessWorker, PersistentRemoteWorker,
                               PersistentThreadWorker, PersistentWorker, Pool,
                               PoolError, ProcessWorker, RemoteWorker,
                               ThreadWorker, Worker, WorkerClosedError,
                               WorkerTerminatedError, WorkerType, spawn_server)
from helpers import run_script, wait_until

KINDS = [ThreadWorker, ProcessWorker]
PKINDS = [PersistentThreadWorker, PersistentProcessWorker]


def square(x):
    return x * x


def fail(x):
    raise KeyError(x)


def spin():
    while True:
        time.sleep(0.01)


def spin_swallowing(flag=None):
    while True:
        try:
            if flag and not os.path.exists(flag):
                open(flag, "w").close()     # in the loop: says so
            time.sleep(0.01)
        except Exception:  # noqa: BLE001 (the point of the test)
            pass


def swallowing_worker(tmp_path):
    """A process worker whose target swallows WorkerTerminatedError, once
    it is inside its loop (a terminate before it would be graceful)."""
    flag = str(tmp_path / "in-loop")
    w = ProcessWorker(spin_swallowing, args=(flag,))
    assert wait_until(lambda: os.path.exists(flag))
    return w


def hard_exit():
    os._exit(3)


def add3(a, b, c=0):
    return (a, b, c)


@pytest.fixture(scope="module")
def server():
    srv = spawn_server(("127.0.0.1", 0))
    yield srv
    srv.terminate()
    srv.wait(5)


# ---- construction ------------------------------------------------------------------

def test_worker_signature_is_keyword_only_after_target():
    params = inspect.signature(Worker.__init__).parameters
    names = ["target", "host", "args", "kwargs", "name", "userid", "run",
             "set_names", "init_state"]
    assert [n for n in params if n in names] == names
    assert params["target"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    for n in names[1:]:
        assert params[n].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["set_names"].default is True
    assert all(params[n].default is None for n in names[1:]
               if n != "set_names")


@pytest.mark.parametrize("cls", KINDS + PKINDS)
def test_target_not_callable(cls):
    with pytest.raises(ValueError, match="^Target not callable$"):
        cls(42)


@pytest.mark.parametrize("factory", [Worker.create, PersistentWorker.create])
@pytest.mark.parametrize("bad", [0, "THREAD", None])
def test_create_needs_a_worker_type(factory, bad):
    with pytest.raises(TypeError):
        factory(bad, target=square)


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("target, run", [(None, None), (False, None),
                                         (square, False)])
def test_a_worker_that_does_not_run_is_dead_without_outcome(cls, target, run):
    w = cls(target, args=(2,), run=run)
    assert not w.is_alive() and w.wait(0) is True
    assert w.result is None and w.error is None and w.has_error is False


def test_class_properties_on_classes_and_instances():
    table = {
        ThreadWorker: (True, False, False, False, WorkerType.THREAD),
        ProcessWorker: (False, True, False, False, WorkerType.PROCESS),
        RemoteWorker: (False, False, True, False, WorkerType.REMOTE),
        PersistentThreadWorker: (True, False, False, True, WorkerType.THREAD),
        PersistentProcessWorker: (False, True, False, True,
                                  WorkerType.PROCESS),
        PersistentRemoteWorker: (False, False, True, True, WorkerType.REMOTE),
    }
    for cls, want in table.items():
        got = (cls.is_thread, cls.is_process, cls.is_remote,
               cls.is_persistent, cls.worker_type)
        assert got == want, cls
    w = ThreadWorker(square, args=(1,))
    w.wait()
    assert (w.is_thread, w.is_persistent, w.worker_type) == (
        True, False, WorkerType.THREAD)
    assert [t.value for t in WorkerType] == [0, 1, 2]


@pytest.mark.parametrize("cls", KINDS)
def test_identity_members(cls):
    w = cls(square, args=(3,), name="nm", userid=("u", 1))
    assert w.wait(5)
    assert (w.name, w.userid) == ("nm", ("u", 1))
    assert w.id == (w.host, w.pid, w.tid)
    assert w.parent_id == (w.parent_host, w.parent_pid, w.parent_tid)
    assert w.parent_pid == os.getpid()
    assert w.parent_tid == threading.get_native_id()
    assert (w.pid == os.getpid()) is (cls is ThreadWorker)


# ---- outcomes ----------------------------------------------------------------------

@pytest.mark.parametrize("cls", KINDS)
def test_outcomes(cls):
    ok = cls(square, args=(4,))
    bad = cls(fail, args=(4,))
    assert ok.wait(5) and bad.wait(5)
    assert (ok.result, ok.has_error, ok.error) == (16, False, None)
    assert bad.result is None and bad.has_error is True
    assert type(bad.error) is KeyError and bad.error.args == (4,)


def test_death_without_exception_has_error_but_no_error():
    w = ProcessWorker(hard_exit)
    assert w.wait(5)
    assert (w.result, w.has_error, w.error) == (None, True, None)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_in_a_process_target_are_its_error(exc):
    def target():
        raise exc(5)
    w = ProcessWorker(target)
    assert w.wait(5)
    assert w.has_error is True and type(w.error) is exc


def test_has_error_is_none_while_running():
    w = ProcessWorker(spin)
    try:
        assert w.has_error is None
    finally:
        w.terminate()


# ---- termination -------------------------------------------------------------------

@pytest.mark.parametrize("cls", KINDS)
def test_graceful_terminate(cls):
    w = cls(spin)
    assert w.terminate() is True
    assert not w.is_alive() and w.has_error is True
    assert isinstance(w.error, WorkerTerminatedError)


def test_forced_terminate_leaves_error_none(tmp_path):
    w = swallowing_worker(tmp_path)
    t0 = time.monotonic()
    assert w.terminate(timeout=0.2) is True
    assert time.monotonic() - t0 < 3
    assert w.has_error is True and w.error is None


def test_terminate_without_wait_or_force_returns_false_at_once(tmp_path):
    w = swallowing_worker(tmp_path)
    try:
        t0 = time.monotonic()
        assert w.terminate(timeout=0, force=False) is False
        assert time.monotonic() - t0 < 1
    finally:
        w.terminate(timeout=0.1)


def test_thread_terminate_defaults_to_no_force():
    params = inspect.signature(ThreadWorker.terminate).parameters
    assert params["force"].default is False
    assert inspect.signature(ProcessWorker.terminate).parameters[
        "force"].default is True
    assert inspect.signature(Worker.terminate).parameters[
        "timeout"].default == 1


def test_thread_that_survives_a_forced_terminate_returns_false(tmp_path):
    stop = threading.Event()

    def stubborn():
        while not stop.is_set():
            try:
                time.sleep(0.01)
            except BaseException:  # noqa: BLE001
                pass
    w = ThreadWorker(stubborn)
    try:
        assert w.terminate(timeout=0.1, force=True) is False
        assert w.is_alive()
    finally:
        stop.set()
        assert w.wait(5)


def test_outside_sigterm_kills_a_swallowing_process_worker_within_a_second(
        tmp_path):
    w = swallowing_worker(tmp_path)
    os.kill(w.pid, signal.SIGTERM)
    assert w.wait(3)      # (at once: SIGTERM keeps its default action)
    assert w.has_error is True


# ---- user state and subclasses ----------------------------------------------------

class Accumulate(PersistentThreadWorker):
    def run(self, x):
        self.user_state = self.user_state + [x]
        return len(self.user_state)


class Mixin:
    def __init__(self, *args, **kwargs):
        self.before = "set before base init"
        super().__init__(*args, **kwargs)

    def run(self, x):
        return (self.before, x * 10)


class Diamond(Mixin, PersistentThreadWorker):
    pass


class DiamondP(Mixin, PersistentProcessWorker):
    pass


@pytest.mark.parametrize("base", PKINDS)
def test_user_state_copied_back_when_the_worker_ends(base):
    cls = type("Acc", (base,), {"run": Accumulate.run})
    w = cls(None, run=True, init_state=[])
    w.enqueue(1)
    w.enqueue(2)
    assert w.next_result(timeout=5) == 1 and w.next_result(timeout=5) == 2
    if base is PersistentProcessWorker:
        assert w.user_state == []    # not while it is alive
    assert w.wait(5)
    assert w.user_state == [1, 2] and w.result == 2


@pytest.mark.parametrize("cls", [Diamond, DiamondP])
def test_cooperative_subclass_with_attribute_before_base_init(cls):
    w = cls(None, run=True)
    w.enqueue(4)
    assert w.next_result(timeout=5) == ("set before base init", 40)
    assert w.wait(5) and w.result == 1


class TwoResults(PersistentThreadWorker):
    def do_work(self):
        self._send_result("first")
        self.send_result("second")
        return 2


def test_do_work_and_send_result():
    w = TwoResults(None, run=True)
    assert w.wait(5)
    assert list(w.results_iter()) == ["first", "second"] and w.result == 2


# ---- persistent workers -------------------------------------------------------------

@pytest.mark.parametrize("cls", PKINDS)
def test_enqueue_overrides_args_positionally_and_updates_kwargs(cls):
    w = cls(add3, args=(1, 2), kwargs={"c": 3})
    w.enqueue()
    w.enqueue(9)
    w.enqueue(c=7)
    w.enqueue(8, 8, c=8)
    assert w.wait(5)
    assert w.result == 4
    assert list(w.results_iter()) == [(1, 2, 3), (9, 2, 3), (1, 2, 7),
                                      (8, 8, 8)]


@pytest.mark.parametrize("cls", PKINDS)
def test_persistent_lifecycle(cls):
    w = cls(square)
    for i in range(5):
        w.enqueue(i)
    assert w.next_result(timeout=5) == 0
    assert list(w.results_iter(maxitems=2)) == [1, 4]
    w.close()
    with pytest.raises(WorkerClosedError) as info:
        w.enqueue(1)
    assert isinstance(info.value, RuntimeError)
    assert w.wait(5) and w.result == 5
    assert list(w.results_iter()) == [9, 16]
    with pytest.raises(queue.Empty):
        w.next_result(block=False)
    with pytest.raises(queue.Empty):
        w.next_result(timeout=0.05)
    with pytest.raises(queue.Empty):
        w.next_result()      # dead, nothing buffered: never blocks


@pytest.mark.parametrize("cls", PKINDS)
def test_restart_keeps_state_and_changes_id_for_processes(cls):
    sub = type("Acc", (cls,), {"run": Accumulate.run})
    w = sub(None, run=True, init_state=[])
    w.enqueue(1)
    assert w.next_result(timeout=5) == 1
    old_id = w.id
    w.restart()                 # live: closes and waits first
    assert w.user_state == [1]
    assert w.is_alive()
    if cls is PersistentProcessWorker:
        assert w.id != old_id       # a new process (a thread's may repeat)
    w.enqueue(2)
    assert w.next_result(timeout=5) == 2
    assert w.wait(5) and w.user_state == [1, 2] and w.result == 1


@pytest.mark.parametrize("cls", PKINDS)
def test_target_exception_ends_a_persistent_worker(cls):
    w = cls(fail)
    w.enqueue(1)
    assert w.wait(5)
    assert w.has_error and type(w.error) is KeyError


@pytest.mark.parametrize("cls", PKINDS)
def test_terminate_an_idle_persistent_worker_is_graceful(cls):
    w = cls(square)
    assert w.terminate(timeout=2)
    assert isinstance(w.error, WorkerTerminatedError)


# ---- pool -----------------------------------------------------------------------

def test_pool_signatures():
    p = inspect.signature(Pool.__init__).parameters
    assert list(p)[1:] == ["target", "results_queue", "args", "kwargs",
                           "retry", "close_timeout", "force_terminate",
                           "name"]
    assert (p["retry"].default, p["close_timeout"].default) == (True, 5)
    r = inspect.signature(Pool.run).parameters
    assert r["worker_extra_pending_inputs"].default == 0
    assert r["return_results"].default is True
    for n in ("worker_callback", "enqueue_fn", "worker_extra_pending_inputs",
              "return_results"):
        assert r[n].kind is inspect.Parameter.KEYWORD_ONLY


def test_pool_names_userids_and_results():
    with Pool(square, name="P") as pool:
        pool.add_worker(WorkerType.THREAD)
        pool.add_worker(PersistentProcessWorker)
        pool.add_worker(WorkerType.PROCESS, name="mine", userid="u")
        assert [w.name for w in pool.workers] == ["P worker 0", "P worker 1",
                                                  "mine"]
        assert [w.userid for w in pool.workers] == [0, 1, "u"]
        assert sorted(pool.run(range(20))) == [i * i for i in range(20)]
        # workers live across runs
        assert all(w.is_alive() for w in pool.workers)
        assert sorted(pool.run(range(3))) == [0, 1, 4]
        assert pool.run(range(3), return_results=False) is None
    assert not any(w.is_alive() for w in pool.workers)
    assert all(w.has_error is False for w in pool.workers)


def test_pool_zips_input_sources_and_sends_the_first_round_in_add_order():
    events = []
    with Pool(pow) as pool:
        for _ in range(3):
            pool.add_worker(WorkerType.THREAD)
        res = pool.run([2, 3, 4], [2, 2, 2],
                       worker_callback=lambda w, ev, *a: events.append(
                           (w.userid, ev)))
    assert sorted(res) == [4, 9, 16]
    assert [e for e in events if e[1] == "enqueued"][:3] == [
        (0, "enqueued"), (1, "enqueued"), (2, "enqueued")]
    assert {ev for _, ev in events} >= {"enqueued", "finished", "idle"}


def die_once_on_3(x, flag):
    if x == 3 and not os.path.exists(flag):
        open(flag, "w").close()
        os._exit(1)
    return x


def test_pool_retries_pending_inputs_of_a_dead_worker(tmp_path):
    flag = str(tmp_path / "died")
    with Pool(die_once_on_3, kwargs={"flag": flag}) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.PROCESS)
        res = pool.run(range(6))
        assert sorted(res) == list(range(6))
        assert sum(not w.is_alive() for w in pool.workers) == 1


def die_on_3(x):
    if x == 3:
        raise RuntimeError("no 3")
    return x


def test_pool_error_when_every_worker_is_dead():
    with Pool(die_on_3) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.THREAD)
        with pytest.raises(PoolError, match="Pool failed to process the "
                                            "whole input") as info:
            pool.run(range(10))
    assert isinstance(info.value.partial_results, list)
    assert 3 not in info.value.partial_results


def test_pool_retry_false_drops_the_input_that_killed_a_worker():
    with Pool(die_on_3, retry=False) as pool:
        pool.add_worker(WorkerType.THREAD)
        pool.add_worker(WorkerType.THREAD)
        res = pool.run(range(6))
    assert 3 not in res and set(res) <= {0, 1, 2, 4, 5}


def test_pool_context_manager_on_error_closes_idle_workers_cleanly():
    with pytest.raises(ZeroDivisionError):
        with Pool(square, close_timeout=1) as pool:
            pool.add_worker(WorkerType.PROCESS)
            pool.add_worker(WorkerType.THREAD)
            pool.run(range(3))
            1 / 0
    assert not any(w.is_alive() for w in pool.workers)
    assert all(w.has_error is False for w in pool.workers)


def test_pool_restart_workers_and_attach():
    with Pool(square) as pool:
        pool.add_worker(WorkerType.PROCESS)
        extra = PersistentThreadWorker(square)
        pool.attach(extra)
        assert pool.workers[-1] is extra
        assert sorted(pool.run(range(4))) == [0, 1, 4, 9]
        pool.restart_workers()
        assert all(w.is_alive() for w in pool.workers)
        assert sorted(pool.run(range(2))) == [0, 1]


# ---- remote -------------------------------------------------------------------------

def test_remote_worker_outcomes(server):
    host = server.addr
    ok = RemoteWorker(square, args=(3,), host=host)
    assert ok.wait(5)     # (well within 1 s when the machine is not busy)
    assert (ok.result, ok.has_error) == (9, False)
    assert ok.pid != os.getpid()
    bad = Worker.create(WorkerType.REMOTE, target=fail, args=(2,),
                        host="%s:%d" % host)
    assert bad.wait(5) and type(bad.error) is KeyError
    never = RemoteWorker(None, host=("127.0.0.1", 1))  # never connects
    assert not never.is_alive() and never.has_error is False


def test_remote_persistent_worker_and_call(server):
    w = PersistentRemoteWorker(square, host=server.addr)
    for i in range(3):
        w.enqueue(i)
    assert w.call(10) == 100
    assert w.wait(5) and w.result == 4
    assert list(w.results_iter()) == [0, 1, 4]


def test_remote_terminate_is_graceful(server):
    w = RemoteWorker(spin, host=server.addr)
    assert w.terminate() is True
    assert isinstance(w.error, WorkerTerminatedError)


# ---- user programs ------------------------------------------------------------------

def run_program(src):
    proc = run_script(textwrap.dedent(src))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_program_mixed_workers_with_a_spawned_server():
    out = run_program("""
        from forkqueue.workers import (Worker, WorkerType, PersistentWorker,
                                       spawn_server)
        import itertools

        def foo(x):
            return x**2

        if __name__ == '__main__':
            server = spawn_server(('127.0.0.1', 0))
            try:
                workers = []
                for wtype, x in zip(WorkerType, range(1, 4)):
                    kwargs = {'target': foo, 'args': (x, )}
                    if wtype is WorkerType.REMOTE:
                        kwargs['host'] = server.addr
                    workers.append(Worker.create(wtype, **kwargs))
                results = []
                for worker in workers:
                    worker.wait()
                    results.append(worker.result)
                print(results)

                pws = []
                for wtype in WorkerType:
                    kwargs = {'target': foo}
                    if wtype is WorkerType.REMOTE:
                        kwargs['host'] = server.addr
                    pws.append(PersistentWorker.create(wtype, **kwargs))
                for worker, x in zip(itertools.cycle(pws), range(10)):
                    worker.enqueue(x)
                for worker in pws:
                    worker.wait()
                    print(worker.result, list(worker.results_iter()))
            finally:
                server.terminate()
        """)
    assert out == ("[1, 4, 9]\n4 [0, 9, 36, 81]\n3 [1, 16, 49]\n"
                   "3 [4, 25, 64]\n")


def test_program_error_handling_and_terminate():
    out = run_program("""
        import multiprocessing
        import time
        from forkqueue.workers import ProcessWorker, ThreadWorker, WorkerTerminatedError

        started = multiprocessing.Event()

        def suicide(x):
            raise RuntimeError('x = {}'.format(x))

        def worker_loop():
            try:
                started.set()
                while True:
                    time.sleep(0.01)
            except WorkerTerminatedError:
                return 'cleaned up'

        if __name__ == '__main__':
            pw = ProcessWorker(target=suicide, args=(2,))
            pw.wait()
            print(pw.result)
            print(pw.has_error)
            print(pw.error)
            for cls in (ThreadWorker, ProcessWorker):
                started.clear()
                w = cls(target=worker_loop)
                started.wait()
                print(w.terminate(), w.result, w.has_error, w.error)
        """)
    assert out == ("None\nTrue\nx = 2\n"
                   "True cleaned up False None\n"
                   "True cleaned up False None\n")


def test_program_pool_of_mixed_workers():
    out = run_program("""
        from forkqueue.workers import Pool, WorkerType

        def foo(x):
            return x**2

        if __name__ == '__main__':
            with Pool(foo, name='sq') as pool:
                pool.add_worker(WorkerType.THREAD)
                pool.add_worker(WorkerType.PROCESS)
                pool.add_worker(WorkerType.PROCESS)
                results = pool.run(range(20))
                print(sorted(results))
                print(len(pool.workers), [w.name for w in pool.workers][0])
        """)
    assert out == (str([i * i for i in range(20)]) + "\n3 sq worker 0\n")


@pytest.mark.parametrize("cls", PKINDS)
def test_call_returns_its_own_result_and_leaves_earlier_ones_queued(cls):
    w = cls(square)
    w.enqueue(2)
    w.enqueue(3)
    assert w.call(10) == 100
    assert w(5) == 25                  # __call__ is call()
    assert w.next_result(timeout=5) == 4
    assert w.next_result(timeout=5) == 9
    assert w.wait(5) and w.result == 4


def broken_source():
    yield 1
    yield 2
    raise ValueError("source broke")


def test_a_run_left_by_an_exception_leaves_nothing_for_the_next_run():
    """An input source or a callback that raises ends run() with its
    exception; the inputs the workers had are finished and their results
    dropped: they never come out of a later run (nor make it wait for
    ever)."""
    def cb(w, event, *args):
        if event == "finished":
            raise KeyError("callback")
    with Pool(square) as pool:
        pool.add_worker(WorkerType.PROCESS)
        pool.add_worker(WorkerType.THREAD)
        with pytest.raises(ValueError, match="source broke"):
            pool.run(broken_source())
        assert sorted(pool.run(range(4))) == [0, 1, 4, 9]
        with pytest.raises(KeyError):
            pool.run(range(40), worker_callback=cb)
        assert sorted(pool.run(range(5))) == [0, 1, 4, 9, 16]
        src = iter(range(100))

        def source(worker):
            v = next(src)
            if v == 50:
                raise OSError("callable source")
            return v
        with pytest.raises(OSError):
            pool.run(source)
        assert sorted(pool.run(range(3))) == [0, 1, 4]
