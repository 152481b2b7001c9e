"""forkqueue.workers: terminate right after construction, process kinds.

The graceful stage of ``terminate()`` raises WorkerTerminatedError in the
target by a signal; CPython acts on a signal only at its next check, so a
signal landing just before a blocking call starts (``time.sleep``, an event
wait) would be acted on only when that call returns: the graceful stage
would time out and the worker be killed, ``error`` None. The worker
re-signals its main thread until the handler ran: these tests terminate
50 times in a row right after construction (statistical: the window is a
few microseconds wide) and want the error every time."""
import os
import threading
import time

import pytest

from forkqueue.workers import (PersistentProcessWorker, ProcessWorker,
                               WorkerTerminatedError)

ROUNDS = 50


def sleeper():
    time.sleep(30)


def event_waiter():
    threading.Event().wait(30)


def catcher(fd):
    """Catches the first WorkerTerminatedError and goes on sleeping: a
    second one must never come (the re-sending stops once handled)."""
    try:
        os.write(fd, b"x")  # inside the try: the parent may terminate
        time.sleep(30)
    except WorkerTerminatedError:
        pass
    time.sleep(0.3)
    return "caught once"


@pytest.mark.parametrize("target", [sleeper, event_waiter],
                         ids=["sleep", "event"])
def test_process_terminate_right_after_construction(target):
    for i in range(ROUNDS):
        w = ProcessWorker(target)
        assert w.terminate(timeout=5), i
        assert isinstance(w.error, WorkerTerminatedError), (i, w.error)


@pytest.mark.parametrize("target", [sleeper, event_waiter],
                         ids=["sleep", "event"])
def test_persistent_process_terminate_right_after_enqueue(target):
    for i in range(ROUNDS):
        w = PersistentProcessWorker(lambda _: target())
        w.enqueue(i)
        assert w.terminate(timeout=5), i
        assert isinstance(w.error, WorkerTerminatedError), (i, w.error)


def test_persistent_process_terminate_idle():
    for i in range(ROUNDS):
        w = PersistentProcessWorker(lambda _: None)
        assert w.terminate(timeout=5), i
        assert isinstance(w.error, WorkerTerminatedError), (i, w.error)


def test_caught_termination_is_not_raised_again():
    r, wfd = os.pipe()
    try:
        for i in range(10):
            w = ProcessWorker(catcher, args=(wfd,))
            assert os.read(r, 1) == b"x"
            assert w.terminate(timeout=5), i
            assert w.error is None, (i, w.error)
            assert w.result == "caught once", i
    finally:
        os.close(r)
        os.close(wfd)

