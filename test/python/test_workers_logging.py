"""What forkqueue.workers prints on stderr, as pyworkers does: a failed
worker's traceback (logged once, inside the worker, with pyworkers' text),
a pool worker's death, nothing when all goes well; a program that sets up
logging gets the records on the kind's logger instead.

Each case runs a small program in a fresh interpreter (no pytest logging
handlers) and looks at its stderr."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

MSG = "Exception occurred while running the main function"

PRELUDE = """
import sys, time
from forkqueue.workers import (ThreadWorker, ProcessWorker, RemoteWorker,
    PersistentWorker, WorkerType, Pool, spawn_server)

def boom(x):
    raise RuntimeError(f'boom {x}')

def sq(x):
    if x == 3:
        raise ValueError('three')
    return x * x

def spin():
    while True:
        time.sleep(0.01)
"""


def run_program(body, timeout=60):
    env = dict(os.environ)
    env.setdefault("FORKQUEUE_AUTHKEY", "test-workers-logging-key")
    src = PRELUDE + "\nif __name__ == '__main__':\n" + \
        textwrap.indent(textwrap.dedent(body), "    ")
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def tracebacks(stderr, last_line):
    """How many times stderr holds pyworkers' message, a traceback, and
    ``last_line`` ending it."""
    pat = re.compile(re.escape(MSG) + r"\nTraceback \(most recent call "
                     r"last\):\n(?:  .*\n)+" + re.escape(last_line) + "\n")
    return len(pat.findall(stderr))


REMOTE = """
srv = spawn_server(('127.0.0.1', 0))
try:
{}
finally:
    srv.terminate()
"""


def remote(body):
    return REMOTE.format(textwrap.indent(textwrap.dedent(body), "    "))


@pytest.mark.parametrize("make", [
    "ThreadWorker(boom, args=(1,))",
    "ProcessWorker(boom, args=(1,))",
    "RemoteWorker(boom, args=(1,), host=srv.addr)",
])
def test_failed_worker_prints_its_traceback_once(make):
    body = f"""
    w = {make}
    w.wait()
    print(w.has_error, repr(w.error))
    """
    if "srv" in make:
        body = remote(body)
    out, err = run_program(body)
    assert out == "True RuntimeError('boom 1')\n"
    assert tracebacks(err, "RuntimeError: boom 1") == 1, err
    assert err.count(MSG) == 1, err
    # the frames show where it was raised
    assert "in boom\n" in err


@pytest.mark.parametrize("wtype", ["THREAD", "PROCESS", "REMOTE"])
def test_failed_persistent_worker_prints_its_traceback_once(wtype):
    body = f"""
    kw = {{'host': srv.addr}} if WorkerType.{wtype} is WorkerType.REMOTE else {{}}
    w = PersistentWorker.create(WorkerType.{wtype}, sq, **kw)
    for i in range(5):
        w.enqueue(i)
    w.wait()
    print(w.result, list(w.results_iter()), repr(w.error))
    """
    out, err = run_program(remote(body) if wtype == "REMOTE" else
                           body.replace("srv.addr", "None"))
    assert out == "None [0, 1, 4] ValueError('three')\n"
    assert tracebacks(err, "ValueError: three") == 1, err
    assert err.count(MSG) == 1, err


@pytest.mark.parametrize("wtype", ["THREAD", "PROCESS", "REMOTE"])
def test_graceful_terminate_prints_the_termination_traceback(wtype):
    # pyworkers logs the WorkerTerminatedError that ends the target
    body = f"""
    kw = {{'host': srv.addr}} if WorkerType.{wtype} is WorkerType.REMOTE else {{}}
    w = PersistentWorker.create(WorkerType.{wtype}, sq, **kw)
    print(w.terminate(), repr(w.error))
    """
    out, err = run_program(remote(body) if wtype == "REMOTE" else
                           body.replace("srv.addr", "None"))
    assert out == "True WorkerTerminatedError('terminate called')\n"
    assert tracebacks(err, "forkqueue.workers.worker.WorkerTerminatedError:"
                      " terminate called") == 1, err


def test_forced_kill_prints_nothing():
    # no Python exception ends the target: nothing to log
    body = """
    import signal
    w = ProcessWorker(spin)
    import os
    os.kill(w.pid, signal.SIGKILL)
    w.wait(5)
    print(w.has_error, w.error)
    """
    out, err = run_program(body)
    assert out == "True None\n"
    assert err == ""


@pytest.mark.parametrize("kind", ["ThreadWorker", "ProcessWorker"])
def test_success_prints_nothing(kind):
    out, err = run_program(f"""
    w = {kind}(sq, args=(2,))
    w.wait()
    p = PersistentWorker.create(WorkerType.THREAD, sq)
    p.enqueue(4)
    p.wait()
    print(w.result, list(p.results_iter()))
    """)
    assert out == "4 [16]\n"
    assert err == ""


def test_system_exit_in_a_process_is_not_logged():
    # pyworkers' process workers log Exceptions only; thread workers log
    # every exception
    out, err = run_program("""
    def leave():
        sys.exit(3)
    p = ProcessWorker(leave)
    p.wait()
    t = ThreadWorker(leave)
    t.wait()
    print(repr(p.error), repr(t.error))
    """)
    assert out == "SystemExit(3) SystemExit(3)\n"
    assert err.count(MSG) == 1, err
    assert err.rstrip().endswith("SystemExit: 3"), err


def test_configured_logging_gets_the_record_on_the_kind_logger():
    out, err = run_program("""
    import logging
    logging.basicConfig(format='%(levelname)s|%(name)s|%(message)s')
    ThreadWorker(boom, args=(1,)).wait()
    ProcessWorker(boom, args=(2,)).wait()
    """)
    assert out == ""
    assert "ERROR|forkqueue.workers.thread|" + MSG in err
    assert "ERROR|forkqueue.workers.process|" + MSG in err
    assert err.count(MSG) == 2, err


def test_pool_prints_worker_deaths_and_their_tracebacks():
    out, err = run_program("""
    try:
        with Pool(boom, name='P') as p:
            p.add_worker(WorkerType.THREAD)
            p.add_worker(WorkerType.PROCESS)
            p.run(iter(range(8)))
    except Exception as e:
        print(type(e).__name__, e)
    """)
    assert out == ("PoolError Pool failed to process the whole input - all "
                   "workers have died\n")
    assert err.count(MSG) == 2, err
    assert re.search(r"^PersistentThreadWorker\(name: 'P worker 0', userid: "
                     r"0, id: .*\) died( while enqueueing)?$", err, re.M), err
    assert re.search(r"^PersistentProcessWorker\(name: 'P worker 1', userid:"
                     r" 1, id: .*\) died( while enqueueing)?$", err, re.M), err
    # closing the pool afterwards raises nothing about the dead workers
    assert "Error occurred while" not in err


def test_pool_without_failures_prints_nothing():
    out, err = run_program("""
    with Pool(sq, name='P') as p:
        p.add_worker(WorkerType.THREAD)
        p.add_worker(WorkerType.PROCESS)
        print(sorted(p.run(iter([0, 1, 2, 4]))))
    """)
    assert out == "[0, 1, 4, 16]\n"
    assert err == ""


def test_remote_target_the_server_cannot_load_is_logged_there(tmp_path):
    # pyworkers logs "Exception occurred in the worker code" on the server
    # when the worker cannot be set up (here: its target's module is not
    # importable there)
    out, err = run_program(f"""
    srv = spawn_server(('127.0.0.1', 0))
    try:
        with open({str(tmp_path / 'latemod.py')!r}, 'w') as f:
            f.write('def f(x):\\n    return x + 1\\n')
        sys.path.insert(0, {str(tmp_path)!r})
        import latemod
        w = RemoteWorker(latemod.f, args=(1,), host=srv.addr)
        print(w.wait(10), w.has_error, repr(w.error))
    finally:
        srv.terminate()
    """)
    assert out == ("True True ModuleNotFoundError(\"No module named "
                   "'latemod'\")\n")
    assert err.startswith("Exception occurred in the worker code\n"
                          "Traceback (most recent call last):\n"), err
    assert err.endswith("ModuleNotFoundError: No module named 'latemod'\n")
    assert err.count("Exception occurred") == 1
