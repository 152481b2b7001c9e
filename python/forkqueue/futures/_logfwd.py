"""Log records of a child, handled by the parent's loggers.

In the child, :func:`install` replaces every handler with one that sends
each record (message already formatted with its arguments, exception text
already rendered) as a message on the child's channel; ``warnings`` are
captured into the ``py.warnings`` logger. The parent's collector passes
each message to :func:`handle`, which gives the record to the parent's
logger of the same name: the parent's levels, filters, handlers and formats
apply, and records of one child keep their order.
"""

import logging
import pickle
import threading

LOG = b"L"
OUTCOME = b"R"

_LogRecord = logging.LogRecord
_new_record = object.__new__
_BASIC = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _Forward(logging.Handler):
    def __init__(self, send):
        super().__init__(logging.NOTSET)
        self._send = send

    def emit(self, record):
        try:
            self._send(LOG + _dump(record))
        except BrokenPipeError:
            pass  # the parent is gone; nobody is left to read it
        except Exception:
            self.handleError(record)


_KEYS = ("name", "msg", "levelname", "levelno", "pathname", "filename", "module",
         "lineno", "funcName", "created", "msecs", "relativeCreated", "thread",
         "threadName", "processName", "process", "exc_text", "stack_info",
         "taskName")


def _dump(record) -> bytes:
    # A tuple in a fixed key order plus a dict of the rest: a third cheaper
    # to load than the whole attribute dict, which matters in the parent.
    d = record.__dict__
    exc_text = d.get("exc_text")
    if record.exc_info and not exc_text:
        exc_text = logging.Formatter().formatException(record.exc_info)
    values = [d.get(k) for k in _KEYS]
    values[1] = record.getMessage()
    values[16] = exc_text
    extra = {k: v for k, v in d.items() if k not in _BASIC}
    try:
        return pickle.dumps((values, extra), pickle.HIGHEST_PROTOCOL)
    except Exception:
        # An `extra` value that cannot be pickled travels as its repr.
        for k, v in list(extra.items()):
            try:
                pickle.dumps(v)
            except Exception:
                extra[k] = repr(v)
        return pickle.dumps((values, extra), pickle.HIGHEST_PROTOCOL)


def install(send, *, spawned: bool) -> None:
    """In a child: route every log record to ``send`` (one whole message
    per record). A forked child keeps the levels it inherited (records the
    parent would drop are not even sent); a spawned one starts with none,
    so it sends everything and the parent filters."""
    lock = threading.Lock()

    def locked_send(data, _send=send, _lock=lock):
        with _lock:
            _send(data)

    fwd = _Forward(locked_send)
    root = logging.getLogger()
    loggers = [root] + [lg for lg in logging.Logger.manager.loggerDict.values()
                        if isinstance(lg, logging.Logger)]
    for lg in loggers:
        if lg.handlers:
            for h in list(lg.handlers):
                lg.removeHandler(h)
            if lg is not root and not lg.propagate:
                lg.addHandler(fwd)
    root.addHandler(fwd)
    if spawned:
        root.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    return locked_send


def handle(data: bytes) -> None:
    """In the parent: one forwarded record to the parent's logger."""
    try:
        values, extra = pickle.loads(data)
        record = _new_record(_LogRecord)
        attrs = record.__dict__
        attrs.update(zip(_KEYS, values))
        attrs["args"] = None
        attrs["exc_info"] = None
        if extra:
            attrs.update(extra)
    except Exception:
        return
    logger = logging.getLogger(record.name) if record.name != "root" else logging.getLogger()
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)
