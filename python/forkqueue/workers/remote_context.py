"""`RemoteContext`: a target registered on a worker server once, used by
any number of ``PersistentRemoteWorker(None, context=ID)``."""
import contextlib

from .. import _auth
from . import _wire, remote_pickle
from .remote import client_main_path, sanitize_target_host

__all__ = ["RemoteContext"]


class RemoteContext:
    """Registers ``target`` (with default ``args``, ``kwargs`` and
    ``extra_state``, attributes set on each worker) on the server at
    ``host`` under ``ctx_id``. Workers created with ``context=ctx_id`` run
    it. ``close``/``wait``/``terminate`` remove it from the server (and stop
    the workers using it)."""

    def __init__(self, ctx_id, host=None, target=None, args=None,
                 kwargs=None, extra_state=None, *, authkey=None,
                 ssl_context=None):
        self._id = ctx_id
        self._target_host = sanitize_target_host(host)
        self._authkey = authkey
        self._ssl_context = ssl_context
        payload = remote_pickle.dumps((target, list(args or ()),
                                       dict(kwargs or {}),
                                       dict(extra_state or {})))
        self._alive = False
        if not self._request(("ctx-create", ctx_id, client_main_path(),
                              payload)):
            raise ValueError(f"Context with id {ctx_id} already exists on "
                             f"the target host {self._target_host!r}")
        self._alive = True

    def _request(self, req):
        key = _auth.get_authkey(self._authkey)
        link = _wire.connect(self._target_host, key,
                             ssl_context=self._ssl_context)
        with contextlib.closing(link):
            link.send(_wire.dumps(req))
            data = link.recv(30.0)
        if data is None:
            raise ConnectionError(f"the server at {self._target_host} "
                                  "closed the connection")
        return bool(_wire.loads(data))

    @property
    def context_id(self):
        return self._id

    @property
    def host(self):
        return self._target_host

    def is_alive(self):
        return self._alive

    def _delete(self):
        if self._alive:
            self._request(("ctx-delete", self._id))
            self._alive = False
        return True

    def close(self):
        """Removes the context from the server."""
        self._delete()

    def wait(self, *args, **kwargs):
        return self._delete()

    def terminate(self, *args, _release_remote_ctrl=False, **kwargs):
        return self._delete()

    def call(self, *args, **kwargs):
        raise ValueError("Can only be called on the remote side")

    def __getstate__(self, remote=False):
        state = self.__dict__.copy()
        if remote:  # the key and TLS settings never travel
            state["_authkey"] = None
            state["_ssl_context"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Names pyworkers' module of the same name offers (some are its own
# imports): programs that import them from here find them.
from .persistent_process import PersistentProcessWorker  # noqa: F401
from .remote import (ConnectionClosedError, recv_msg,  # noqa: F401
                     send_msg, set_keepalive)
from .remote_pickle import (SupportRemoteGetState, dumps,  # noqa: F401
                            loads)
from .utils import get_logger  # noqa: F401

logger = get_logger(__name__)
