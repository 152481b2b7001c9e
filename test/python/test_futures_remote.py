"""forkqueue.futures: RemoteException, RemoteTraceback and friends."""
import multiprocessing
import pickle

import pytest

from forkqueue.futures import (RemoteError, RemoteException, RemoteTraceback,
                               get_remote_traceback, is_remote_exception)


def _raise(exc):
    try:
        raise exc
    except BaseException as e:
        return e


def test_round_trip_keeps_type_message_and_traceback():
    e = _raise(ValueError("bad", 38))
    back = pickle.loads(pickle.dumps(RemoteException(e)))
    assert type(back) is ValueError and back.args == ("bad", 38)
    assert back.__traceback__ is None
    assert isinstance(back.__cause__, RemoteTraceback)
    assert is_remote_exception(back)
    tb = get_remote_traceback(back)
    assert tb.startswith(f"[{multiprocessing.current_process().name}] "
                         "Traceback (most recent call last):")
    assert "in _raise" in tb and tb.rstrip().endswith("ValueError: ('bad', 38)")
    assert str(back.__cause__) == tb


def test_plain_exception_is_not_remote():
    assert not is_remote_exception(_raise(KeyError(1)))
    assert not is_remote_exception("not an exception")


def test_wrapping_a_never_raised_exception_is_a_value_error():
    with pytest.raises(ValueError, match=r"^ValueError\(3\) does not contain traceback info$"):
        RemoteException(ValueError(3))


def test_explicit_traceback_text_or_object():
    e = ValueError(1)
    assert RemoteException(e, "the text").tb == "the text"
    caught = _raise(KeyError(2))
    r = RemoteException(ValueError(5), caught.__traceback__)
    assert r.tb.startswith("[") and "ValueError: 5" in r.tb
    with pytest.raises(ValueError):
        RemoteException(e, 42)


def test_repr_and_str():
    r = RemoteException(_raise(ValueError(38)))
    assert repr(r) == "RemoteException(ValueError(38))"
    assert str(r) == "RemoteException('38')"
    assert not isinstance(r, BaseException)


def test_pickling_the_unwrapped_exception_again_loses_the_cause():
    back = pickle.loads(pickle.dumps(RemoteException(_raise(ValueError(1)))))
    again = pickle.loads(pickle.dumps(back))
    assert again.__cause__ is None and not is_remote_exception(again)


def test_rewrapping_keeps_the_text_raising_again_gives_a_new_one():
    back = pickle.loads(pickle.dumps(RemoteException(_raise(ValueError(1)))))
    first = get_remote_traceback(back)
    kept = pickle.loads(pickle.dumps(RemoteException(back)))
    assert get_remote_traceback(kept) == first
    raised = _raise(back)
    fresh = pickle.loads(pickle.dumps(RemoteException(raised)))
    text = get_remote_traceback(fresh)
    assert text != first
    # The new text shows where it was raised again, with the old one as cause.
    assert "_raise" in text and "direct cause" in text


def _put_wrapped(q):
    try:
        raise TypeError("in the child")
    except TypeError as e:
        q.put(RemoteException(e))


def test_through_a_stdlib_queue_between_processes():
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_put_wrapped, args=(q,), name="qchild")
    p.start()
    got = q.get(timeout=20)
    p.join()
    assert type(got) is TypeError and got.args == ("in the child",)
    assert get_remote_traceback(got).startswith(
        "[qchild] Traceback (most recent call last):")
    assert "_put_wrapped" in get_remote_traceback(got)


class NeedsTwo(Exception):
    def __init__(self, a, b):  # args cannot rebuild it: ('a b',)
        super().__init__(f"{a} {b}")


def test_class_that_cannot_be_rebuilt_from_args_keeps_its_type():
    back = pickle.loads(pickle.dumps(RemoteException(_raise(NeedsTwo("x", "y")))))
    assert type(back) is NeedsTwo and str(back) == "x y"
    assert is_remote_exception(back)


def test_class_that_cannot_be_pickled_becomes_a_remote_error():
    class Local(Exception):
        pass
    back = pickle.loads(pickle.dumps(RemoteException(_raise(Local("inner")))))
    assert type(back) is RemoteError
    assert "Local" in back.type_name and "inner" in str(back)
    assert "Local: inner" in get_remote_traceback(back)


def test_attribute_that_cannot_be_pickled():
    import threading
    e = _raise(ValueError("with a lock"))
    e.lock = threading.Lock()
    back = pickle.loads(pickle.dumps(RemoteException(e)))
    assert type(back) is RemoteError and "with a lock" in str(back)


def test_base_exceptions():
    back = pickle.loads(pickle.dumps(RemoteException(_raise(KeyboardInterrupt()))))
    assert type(back) is KeyboardInterrupt and is_remote_exception(back)
    back = pickle.loads(pickle.dumps(RemoteException(_raise(SystemExit(3)))))
    assert type(back) is SystemExit and back.code == 3
