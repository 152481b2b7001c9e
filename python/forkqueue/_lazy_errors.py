"""Errors of ``forkqueue.lazy``: ``ResultEvaluationError`` and the
``Original Traceback`` block it carries (the submission site's frames, then
the job's), built cheaply at submission and formatted only on failure."""

import linecache
import os
import traceback

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class ResultEvaluationError(Exception):
    """A job failed, or a lazy operator on its result did. Raised when the
    proxy is evaluated. The message is an ``Original Traceback`` block: the
    frames of the submission site (where ``fork()`` or the operator was
    called), then those of the job, then the original ``Type: message``
    line. ``original`` is the original exception when it could be carried
    over (None otherwise)."""

    def __init__(self, frames, exc_line, original=None):
        self.frames = frames
        self.exc_line = exc_line
        self.original = original
        super().__init__("Original Traceback (most recent call last):\n"
                         + frames + exc_line.rstrip("\n"))

    def __reduce__(self):
        return (ResultEvaluationError, (self.frames, self.exc_line, None))


_site_cache = (None, -1, ())


def _site(frame):
    """The call stack from `frame` outwards, outermost first, without this
    package's own frames: (file, line, function) for the outer frames and
    (code, instruction offset) for `frame` itself. Cheap: line numbers of
    the innermost frame and source lines are looked up only when the site
    is formatted, and the outer part is reused while the caller's caller
    stays where it was (a loop of operators or forks pays for one frame,
    not for the whole stack)."""
    global _site_cache
    back = frame.f_back
    cached_back, cached_lasti, outer = _site_cache
    if back is None or cached_back is not back or \
            cached_lasti != back.f_lasti:
        rest = []
        f = back
        while f is not None:
            code = f.f_code
            if not code.co_filename.startswith(_PKG_DIR):
                rest.append((code.co_filename, f.f_lineno, code.co_name))
            f = f.f_back
        rest.reverse()
        outer = tuple(rest)
        if back is not None:
            _site_cache = (back, back.f_lasti, outer)
    code = frame.f_code
    if code.co_filename.startswith(_PKG_DIR):
        return outer
    return outer + ((code, frame.f_lasti),)


def _line_of(code, lasti):
    """The line of the instruction at byte offset lasti (f_lineno)."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line
    return code.co_firstlineno


def _format_site(site):
    parts = []
    for entry in site:
        if len(entry) == 2:
            code, lasti = entry
            filename, lineno, name = (code.co_filename,
                                      _line_of(code, lasti), code.co_name)
        else:
            filename, lineno, name = entry
        parts.append(f'  File "{filename}", line {lineno}, in {name}\n')
        line = linecache.getline(filename, lineno).strip() if lineno else ""
        if line:
            parts.append(f"    {line}\n")
    return "".join(parts)


def _exc_line(e):
    return "".join(traceback.format_exception_only(type(e), e))


def _error_of(e, site, tb):
    """The ResultEvaluationError for exception e raised under traceback
    tb, in a job (or an operator) submitted at `site`."""
    frames = _format_site(site)
    if tb is not None:
        # Formatted as the submission site is (no carets, which differ
        # between Python versions).
        frames += _format_site(
            [(fs.filename, fs.lineno, fs.name)
             for fs in traceback.extract_tb(tb, limit=None)
             if not fs.filename.startswith(_PKG_DIR)])
    if isinstance(e, ResultEvaluationError):
        # A nested proxy failed inside the job: its block continues ours.
        return ResultEvaluationError(frames + e.frames, e.exc_line,
                                     e.original)
    return ResultEvaluationError(frames, _exc_line(e), e)


class _Failed:
    """A job's failure, travelling as its (successful) result."""

    __slots__ = ("frames", "exc_line", "original")

    def __init__(self, frames, exc_line, original):
        self.frames = frames
        self.exc_line = exc_line
        self.original = original

    def __reduce__(self):
        import pickle
        original = self.original
        try:
            pickle.loads(pickle.dumps(original))
        except Exception:
            original = None
        return (_Failed, (self.frames, self.exc_line, original))
