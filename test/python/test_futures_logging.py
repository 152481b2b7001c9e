"""forkqueue.futures: log records of children handled by the parent."""
import logging
import textwrap

import pytest

from forkqueue.futures import Process, SpawnProcess
from helpers import run_script
from futures_helpers import spawn_resource_tracker  # noqa: F401



def log_some(n, name="child"):
    log = logging.getLogger(name)
    for i in range(n):
        log.info("record %d", i)


def test_basic_config_format_on_parent_stderr():
    code = textwrap.dedent("""
        import logging, warnings
        from forkqueue.futures import Process, SpawnProcess
        def work():
            logging.getLogger("worker.a").info("hello %s", "there")
            logging.getLogger("worker.a").debug("fine detail")
            warnings.warn("careful")
        if __name__ == "__main__":
            logging.basicConfig(level=logging.DEBUG)
            for cls in (Process, SpawnProcess):
                p = cls(target=work)
                p.start()
                p.join()
            logging.getLogger("main").info("after")
    """)
    import os, tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "prog.py")
        with open(path, "w") as f:
            f.write(code)
        import subprocess, sys
        r = subprocess.run([sys.executable, path], capture_output=True, text=True,
                           timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines.count("INFO:worker.a:hello there") == 2
    assert lines.count("DEBUG:worker.a:fine detail") == 2
    warn = [l for l in lines if l.startswith("WARNING:py.warnings:")]
    assert len(warn) == 2 and "UserWarning: careful" in warn[0]
    assert lines[-1] == "INFO:main:after"


def test_records_reach_the_parents_handlers(caplog):
    caplog.set_level(logging.INFO)
    p = Process(target=log_some, args=(3,), name="logger-child")
    p.start()
    p.join()
    got = [r for r in caplog.records if r.name == "child"]
    assert [r.getMessage() for r in got] == ["record 0", "record 1", "record 2"]
    assert all(r.processName == "logger-child" for r in got)
    assert all(r.process == p.pid for r in got)


def test_parent_levels_apply(caplog):
    caplog.set_level(logging.WARNING)
    def mixed():
        logging.getLogger("lv").info("dropped")
        logging.getLogger("lv").error("kept")
    for cls in (Process,):
        p = cls(target=mixed)
        p.start()
        p.join()
    assert [r.getMessage() for r in caplog.records if r.name == "lv"] == ["kept"]


def test_exception_text_travels(caplog):
    caplog.set_level(logging.INFO)
    def logs_exc():
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("exc").exception("it failed")
    p = Process(target=logs_exc)
    p.start()
    p.join()
    (rec,) = [r for r in caplog.records if r.name == "exc"]
    assert "ZeroDivisionError" in rec.exc_text
    assert "ZeroDivisionError" in caplog.text


def test_many_records_all_handled_in_order_when_join_returns(caplog):
    caplog.set_level(logging.INFO)
    n = 20000
    p = Process(target=log_some, args=(n, "bulk"))
    p.start()
    p.join()
    got = [r.getMessage() for r in caplog.records if r.name == "bulk"]
    assert got == [f"record {i}" for i in range(n)]


def test_spawned_child_records(caplog):
    caplog.set_level(logging.DEBUG)
    p = SpawnProcess(target=log_some, args=(5, "spawned"))
    p.start()
    p.join(timeout=60)
    got = [r.getMessage() for r in caplog.records if r.name == "spawned"]
    assert got == [f"record {i}" for i in range(5)]


def test_unpicklable_extra_still_arrives(caplog):
    caplog.set_level(logging.INFO)
    def with_extra():
        import threading
        logging.getLogger("extra").info("has a lock", extra={"lock": threading.Lock()})
    p = Process(target=with_extra)
    p.start()
    p.join()
    (rec,) = [r for r in caplog.records if r.name == "extra"]
    assert rec.getMessage() == "has a lock" and "lock" in rec.lock
