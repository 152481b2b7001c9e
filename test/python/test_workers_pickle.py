"""forkqueue.workers.remote_pickle: remote getstate and patched loading."""
import pickle

from forkqueue.workers import remote_pickle as rp


class Conn:
    def __init__(self):
        self.handle = "local socket"
        self.n = 1

    def __getstate__(self, remote=False):
        state = dict(self.__dict__)
        if remote:
            state["handle"] = None
        return state


class Outer:
    def __init__(self):
        self.conn = Conn()
        self.name = "outer"
        self.seen = None

    def __getstate__(self, remote=False):
        return dict(self.__dict__)

    def __setstate__(self, state):
        state["seen"] = state.get("patched")
        self.__dict__.update(state)


class Plain:
    def __init__(self):
        self.x = 1


def test_support_check():
    assert issubclass(Conn, rp.SupportRemoteGetState)
    assert isinstance(Conn(), rp.SupportRemoteGetState)
    assert not issubclass(Plain, rp.SupportRemoteGetState)
    assert not issubclass(int, rp.SupportRemoteGetState)


def test_remote_flag_and_plain_objects():
    c = rp.loads(rp.dumps(Conn()))
    assert (c.handle, c.n) == (None, 1)
    c = rp.loads(rp.dumps(Conn(), remote=False))
    assert c.handle == "local socket"
    p = rp.loads(rp.dumps([Plain(), {"a": (1, 2)}]))
    assert p[0].x == 1 and p[1] == {"a": (1, 2)}
    # the bytes are ordinary pickles
    assert pickle.loads(rp.dumps(Conn())).handle is None


def test_patches_nested_state_before_setstate():
    o = rp.loads(rp.dumps(Outer()),
                 {"patched": "yes", "conn": {"handle": "server socket"}})
    assert o.seen == "yes" and o.name == "outer"
    assert isinstance(o.conn, Conn) and o.conn.handle == "server socket"
    assert o.conn.n == 1
    o = rp.loads(rp.dumps(Outer()))
    assert o.seen is None and o.conn.handle is None
