/*
 * _forkqueue.Channel, fork_channel(), child_exit(), wait_channels(): the
 * core's public channels (fq_channel_*) for Python faces.
 *
 * Payloads are bytes; pickling belongs to the faces. Every wait releases the
 * GIL, runs in slices of FQPY_SLICE_MS and checks for signals between them (and
 * at once when a signal interrupts the wait: return_on_eintr), so Ctrl-C
 * raises KeyboardInterrupt promptly. One thread may send while another
 * receives (or waits); a second thread doing the same kind of call gets
 * RuntimeError instead of a data race.
 */
#include "channel.h"

#include <structmember.h>

#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

PyObject *fqpy_channel_type_of(PyObject *module)
{
    return PyObject_GetAttrString(module, "Channel");
}

/* ---- helpers ------------------------------------------------------------ */

/* What a call uses: one thread may send while another receives. */
enum { USE_SEND = 1, USE_RECV = 2, USE_WAIT = 4 };

static int enter(fqpy_channel *self, int use)
{
    if (self->fork_gen != fqpy_fork_generation) {
        PyErr_SetString(PyExc_ValueError,
                        "this channel belongs to another process (it was "
                        "inherited through a fork)");
        return -1;
    }
    if (self->busy & use) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this channel is in use by another thread");
        return -1;
    }
    self->busy |= use;
    return 0;
}

static void leave(fqpy_channel *self, int use)
{
    self->busy &= ~use;
}

PyObject *fqpy_channel_error(fqpy_channel *self, int rc, const char *what)
{
    switch (rc) {
    case FQ_ENOMEM:
        return PyErr_NoMemory();
    case FQ_ECLOSED:
        if (self && self->closed) /* self: NULL for calls of no channel */
            PyErr_Format(PyExc_ValueError, "%s: the channel is closed", what);
        else
            PyErr_Format(PyExc_BrokenPipeError,
                         "%s: the other end of the channel is gone", what);
        return NULL;
    case FQ_EPROTO:
        PyErr_Format(PyExc_ConnectionError,
                     "%s: the other end sent bytes that are not a channel "
                     "message (or ended in the middle of one)",
                     what);
        return NULL;
    case FQ_ETOOBIG:
        PyErr_Format(PyExc_ConnectionError, "%s: message too large", what);
        return NULL;
    case FQ_EFORK:
    case FQ_ESYS:
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    default:
        PyErr_Format(PyExc_RuntimeError, "%s: %s (%s)", what, fq_strerror(rc),
                     fq_err_name(rc));
        return NULL;
    }
}

/* The next slice of a wait with this deadline (-1: none), in ms; 0 once
 * it has passed. */
int fqpy_slice_ms(double deadline)
{
    if (deadline < 0)
        return FQPY_SLICE_MS;
    double rem = deadline - fqpy_now();
    if (rem <= 0)
        return 0;
    double ms = ceil(rem * 1000);
    return ms < FQPY_SLICE_MS ? (int)ms : FQPY_SLICE_MS;
}

void fqpy_channel_reaped(fqpy_channel *self, int st)
{
    self->reaped = 1;
    if (st == -1)
        self->returncode = 255; /* collected elsewhere: status unknown */
    else if (WIFSIGNALED(st))
        self->returncode = -WTERMSIG(st);
    else
        self->returncode = WEXITSTATUS(st);
}

/* ---- methods ------------------------------------------------------------ */

static PyObject *ch_send(fqpy_channel *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (enter(self, USE_SEND) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int rc;
    for (;;) {
        fq_channel ch = self->ch;
        Py_BEGIN_ALLOW_THREADS
        rc = fq_channel_send(ch, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
        if (rc != FQ_EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            leave(self, USE_SEND);
            PyBuffer_Release(&view);
            return NULL;
        }
        /* A handler ran and did not raise; the send resumes only if none
         * of the message went out (otherwise the channel is shut). */
    }
    leave(self, USE_SEND);
    PyBuffer_Release(&view);
    if (rc < 0)
        return fqpy_channel_error(self, rc, "send");
    Py_RETURN_NONE;
}

static PyObject *ch_recv(fqpy_channel *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *tobj = Py_None;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:recv", kwlist, &tobj))
        return NULL;
    if (fqpy_parse_timeout(tobj, &timeout) < 0 || enter(self, USE_RECV) < 0)
        return NULL;
    double deadline = timeout < 0 ? -1 : fqpy_now() + timeout;
    fq_msg m = {0};
    int rc;
    for (;;) {
        int ms = fqpy_slice_ms(deadline);
        fq_channel ch = self->ch;
        Py_BEGIN_ALLOW_THREADS
        rc = fq_channel_recv(ch, &m, ms);
        Py_END_ALLOW_THREADS
        if (rc >= 0)
            break;
        if (rc != FQ_ETIMEDOUT && rc != FQ_EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            leave(self, USE_RECV);
            return NULL;
        }
        if (rc == FQ_ETIMEDOUT && ms == 0) {
            leave(self, USE_RECV);
            PyErr_SetString(PyExc_TimeoutError,
                            "recv: no message within the timeout");
            return NULL;
        }
    }
    leave(self, USE_RECV);
    if (rc < 0)
        return fqpy_channel_error(self, rc, "recv");
    if (rc == 0)
        Py_RETURN_NONE;
    PyObject *b = PyBytes_FromStringAndSize(m.data, (Py_ssize_t)m.len);
    fq_msg_free(&m);
    return b;
}

/* Waits until one of fds is readable (or hung up) or the deadline passes,
 * in slices with the GIL released. Returns 1 ready, 0 timeout, -1 error. */
static int poll_fds(struct pollfd *p, int n, double deadline)
{
    for (;;) {
        int ms = fqpy_slice_ms(deadline);
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = poll(p, (nfds_t)n, ms);
        Py_END_ALLOW_THREADS
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (r == 0 && ms == 0)
            return 0;
    }
}

static PyObject *ch_poll(fqpy_channel *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *tobj = NULL;
    double timeout = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:poll", kwlist, &tobj))
        return NULL;
    if (tobj && fqpy_parse_timeout(tobj, &timeout) < 0)
        return NULL;
    if (enter(self, USE_RECV) < 0)
        return NULL;
    int rc = fq_channel_ready(self->ch);
    if (rc == 0) {
        int fd = fq_channel_fd(self->ch);
        if (fd < 0) {
            rc = fd;
        } else {
            struct pollfd p = {fd, POLLIN, 0};
            double deadline = timeout < 0 ? -1 : fqpy_now() + timeout;
            rc = poll_fds(&p, 1, deadline);
            if (rc < 0) {
                leave(self, USE_RECV);
                return NULL;
            }
        }
    }
    leave(self, USE_RECV);
    if (rc < 0)
        return fqpy_channel_error(self, rc, "poll");
    return PyBool_FromLong(rc);
}

static PyObject *ch_fileno(fqpy_channel *self, PyObject *noargs)
{
    (void)noargs;
    if (self->owner != getpid() || self->closed)
        return fqpy_channel_error(self, FQ_ECLOSED, "fileno");
    int fd = fq_channel_fd(self->ch);
    if (fd < 0)
        return fqpy_channel_error(self, fd, "fileno");
    return PyLong_FromLong(fd);
}

static PyObject *ch_close(fqpy_channel *self, PyObject *noargs)
{
    (void)noargs;
    if (self->closed || self->owner != getpid())
        Py_RETURN_NONE;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this channel is in use by another thread");
        return NULL;
    }
    self->closed = 1;
    fq_channel_close(self->ch);
    Py_RETURN_NONE;
}

static PyObject *ch_wait(fqpy_channel *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *tobj = Py_None;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &tobj))
        return NULL;
    if (fqpy_parse_timeout(tobj, &timeout) < 0)
        return NULL;
    if (self->reaped)
        return PyLong_FromLong(self->returncode);
    if (self->pid == 0) {
        PyErr_SetString(PyExc_ValueError,
                        "wait() is for the parent: this is the child's end");
        return NULL;
    }
    if (enter(self, USE_WAIT) < 0)
        return NULL;
    double deadline = timeout < 0 ? -1 : fqpy_now() + timeout;
    int rc, st = 0;
    for (;;) {
        int ms = fqpy_slice_ms(deadline);
        fq_channel ch = self->ch;
        Py_BEGIN_ALLOW_THREADS
        rc = fq_channel_wait(ch, &st, ms);
        Py_END_ALLOW_THREADS
        if (rc == 0)
            break;
        if (rc != FQ_ETIMEDOUT && rc != FQ_EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            leave(self, USE_WAIT);
            return NULL;
        }
        if (rc == FQ_ETIMEDOUT && ms == 0) {
            leave(self, USE_WAIT);
            Py_RETURN_NONE;
        }
    }
    leave(self, USE_WAIT);
    if (rc < 0)
        return fqpy_channel_error(self, rc, "wait");
    fqpy_channel_reaped(self, st);
    return PyLong_FromLong(self->returncode);
}

static PyObject *ch_kill(fqpy_channel *self, PyObject *arg)
{
    long lsig = PyLong_AsLong(arg);
    if (lsig == -1 && PyErr_Occurred())
        return NULL;
    int sig = lsig < 0 || lsig > 1000 ? -1 : (int)lsig;
    if (self->pid == 0) {
        PyErr_SetString(PyExc_ValueError,
                        "kill() is for the parent: this is the child's end");
        return NULL;
    }
    if (self->reaped || self->owner != getpid())
        Py_RETURN_NONE;
    int rc = fq_channel_kill(self->ch, sig);
    if (rc == FQ_EINVAL) {
        PyErr_Format(PyExc_ValueError, "kill: invalid signal number %d", sig);
        return NULL;
    }
    if (rc < 0)
        return fqpy_channel_error(self, rc, "kill");
    Py_RETURN_NONE;
}

static PyObject *ch_get_returncode(fqpy_channel *self, void *closure)
{
    (void)closure;
    if (!self->reaped)
        Py_RETURN_NONE;
    return PyLong_FromLong(self->returncode);
}

static PyObject *ch_get_pid(fqpy_channel *self, void *closure)
{
    (void)closure;
    return PyLong_FromLong((long)self->pid);
}

static PyObject *ch_get_closed(fqpy_channel *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->closed);
}

static PyObject *ch_repr(fqpy_channel *self)
{
    const char *state = self->closed ? " closed" : "";
    if (self->pid == 0)
        return PyUnicode_FromFormat("<Channel to the parent%s>", state);
    if (self->reaped)
        return PyUnicode_FromFormat("<Channel pid=%ld returncode=%d%s>",
                                    (long)self->pid, self->returncode, state);
    return PyUnicode_FromFormat("<Channel pid=%ld%s>", (long)self->pid, state);
}

static PyObject *ch_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    (void)tp;
    (void)args;
    (void)kw;
    PyErr_SetString(PyExc_TypeError,
                    "Channel objects are made by fork_channel()");
    return NULL;
}

static void ch_dealloc(fqpy_channel *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->ch.id && self->owner == getpid())
        fq_channel_free(self->ch); /* an unreaped child is reaped later */
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int ch_traverse(fqpy_channel *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static PyMethodDef ch_methods[] = {
    {"send", (PyCFunction)ch_send, METH_O,
     "send(data) -> None\n--\n\nSend one message (bytes-like), whole. Blocks "
     "while the other end is not reading. BrokenPipeError if it is gone."},
    {"recv", (PyCFunction)(void (*)(void))ch_recv, METH_VARARGS | METH_KEYWORDS,
     "recv(timeout=None) -> bytes | None\n--\n\nReceive one whole message; "
     "None at the end of the stream (the other end closed or ended). "
     "TimeoutError when timeout seconds pass first."},
    {"poll", (PyCFunction)(void (*)(void))ch_poll, METH_VARARGS | METH_KEYWORDS,
     "poll(timeout=0) -> bool\n--\n\nWhether a message or the end of the "
     "stream is ready, waiting up to timeout seconds (None: no limit)."},
    {"fileno", (PyCFunction)ch_fileno, METH_NOARGS,
     "fileno() -> int\n--\n\nThe channel's descriptor, for select/poll."},
    {"close", (PyCFunction)ch_close, METH_NOARGS,
     "close() -> None\n--\n\nClose this end (idempotent). The other end sees "
     "the end of the stream."},
    {"wait", (PyCFunction)(void (*)(void))ch_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=None) -> int | None\n--\n\nParent only: wait for the "
     "child to end and reap it. Returns its returncode (exit status, or "
     "-signal), None if it still runs after timeout seconds."},
    {"kill", (PyCFunction)ch_kill, METH_O,
     "kill(sig) -> None\n--\n\nParent only: send sig to the child's process "
     "group (never the caller's). Does nothing once the child was reaped."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef ch_getset[] = {
    {"pid", (getter)ch_get_pid, NULL,
     "The child's pid in the parent; 0 in the child.", NULL},
    {"returncode", (getter)ch_get_returncode, NULL,
     "None until the child was reaped; then its exit status, or -signal.",
     NULL},
    {"closed", (getter)ch_get_closed, NULL, "Whether close() was called.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMemberDef ch_members[] = {{"__weaklistoffset__", T_PYSSIZET,
                                    offsetof(fqpy_channel, weakreflist),
                                    READONLY, NULL},
                                   {NULL, 0, 0, 0, NULL}};

static PyType_Slot ch_slots[] = {
    {Py_tp_doc, "A child process connected to this one by a channel of "
                "framed messages. Made by fork_channel()."},
    {Py_tp_new, ch_new},
    {Py_tp_dealloc, ch_dealloc},
    {Py_tp_traverse, ch_traverse},
    {Py_tp_repr, ch_repr},
    {Py_tp_methods, ch_methods},
    {Py_tp_getset, ch_getset},
    {Py_tp_members, ch_members},
    {0, NULL}};

static PyType_Spec ch_spec = {
    .name = "forkqueue._forkqueue.Channel",
    .basicsize = sizeof(fqpy_channel),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = ch_slots,
};

/* ---- module functions --------------------------------------------------- */

static void hook_prepare(void *arg)
{
    (void)arg;
    PyOS_BeforeFork();
}

static void hook_parent(void *arg)
{
    (void)arg;
    PyOS_AfterFork_Parent();
}

static void hook_child(void *arg)
{
    (void)arg;
    PyOS_AfterFork_Child();
}

static PyObject *fork_channel(PyObject *module, PyObject *noargs)
{
    (void)noargs;
    PyObject *tp = fqpy_channel_type_of(module);
    if (tp == NULL)
        return NULL;
    fqpy_channel *self = PyObject_GC_New(fqpy_channel, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (self == NULL)
        return NULL;
    self->ch.id = 0;
    self->pid = 0;
    self->owner = getpid();
    self->fork_gen = fqpy_fork_generation;
    self->closed = self->reaped = self->busy = 0;
    self->returncode = 0;
    self->weakreflist = NULL;
    PyObject_GC_Track(self);

    fq_channel_options o = {0};
    o.return_on_eintr = 1;
    o.hooks.prepare = hook_prepare;
    o.hooks.parent = hook_parent;
    o.hooks.child = hook_child;
    fq_channel ch = {0};
    int rc = fq_channel_fork(&ch, &o);
    if (rc < 0) {
        Py_DECREF(self);
        return fqpy_channel_error(NULL, rc, "fork_channel");
    }
    self->ch = ch;
    self->pid = fq_channel_pid(ch);
    self->owner = getpid();
    self->fork_gen = fqpy_fork_generation;
    return (PyObject *)self;
}

static PyObject *child_exit(PyObject *module, PyObject *args, PyObject *kw)
{
    (void)module;
    static char *kwlist[] = {"code", NULL};
    int code = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i:child_exit", kwlist, &code))
        return NULL;
    /* The parent flushed its C stdio before forking: what is buffered now
     * was printed by this process. */
    fflush(NULL);
    _exit(code & 0xff);
}

static PyObject *wait_channels(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"chans", "timeout", NULL};
    PyObject *iterable, *tobj = Py_None, *seq = NULL, *out = NULL, *tp = NULL;
    struct pollfd *pfd = NULL;
    Py_ssize_t *idx = NULL;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:wait_channels", kwlist,
                                     &iterable, &tobj))
        return NULL;
    if (fqpy_parse_timeout(tobj, &timeout) < 0)
        return NULL;
    seq = PySequence_Fast(iterable, "wait_channels: chans must be iterable");
    if (seq == NULL)
        return NULL;
    tp = fqpy_channel_type_of(module);
    out = PyList_New(0);
    if (tp == NULL || out == NULL)
        goto fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    pfd = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*pfd));
    idx = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*idx));
    if (!pfd || !idx) {
        PyErr_NoMemory();
        goto fail;
    }
    int np = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyObject_TypeCheck(o, (PyTypeObject *)tp)) {
            PyErr_Format(PyExc_TypeError,
                         "wait_channels: item %zd is %.100s, not a Channel", i,
                         Py_TYPE(o)->tp_name);
            goto fail;
        }
        fqpy_channel *c = (fqpy_channel *)o;
        if (c->closed || c->owner != getpid()) {
            PyErr_Format(PyExc_ValueError,
                         "wait_channels: item %zd is a closed channel", i);
            goto fail;
        }
        int r = fq_channel_ready(c->ch);
        if (r < 0) {
            fqpy_channel_error(c, r, "wait_channels");
            goto fail;
        }
        if (r == 1) {
            if (PyList_Append(out, o) < 0)
                goto fail;
            continue;
        }
        pfd[np].fd = fq_channel_fd(c->ch);
        pfd[np].events = POLLIN;
        idx[np++] = i;
    }
    if (np > 0) {
        /* Something buffered already: only look, do not wait. */
        double deadline = PyList_GET_SIZE(out) > 0 ? fqpy_now()
                          : timeout < 0            ? -1
                                                   : fqpy_now() + timeout;
        int r = poll_fds(pfd, np, deadline);
        if (r < 0)
            goto fail;
        for (int k = 0; r > 0 && k < np; k++) {
            if (pfd[k].revents &&
                PyList_Append(out, PySequence_Fast_GET_ITEM(seq, idx[k])) < 0)
                goto fail;
        }
    }
    PyMem_Free(pfd);
    PyMem_Free(idx);
    Py_DECREF(tp);
    Py_DECREF(seq);
    return out;
fail:
    PyMem_Free(pfd);
    PyMem_Free(idx);
    Py_XDECREF(tp);
    Py_XDECREF(out);
    Py_XDECREF(seq);
    return NULL;
}

static PyObject *channel_cleanup(PyObject *module, PyObject *args)
{
    (void)module;
    int sig = 0;
    double timeout = 0;
    if (!PyArg_ParseTuple(args, "|id:_channel_cleanup", &sig, &timeout))
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fq_channel_cleanup(sig, timeout < 0 ? -1 : (int)(timeout * 1000));
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_Format(PyExc_ValueError, "_channel_cleanup: %s", fq_strerror(rc));
        return NULL;
    }
    return PyLong_FromLong(rc);
}

static PyMethodDef channel_functions[] = {
    {"fork_channel", fork_channel, METH_NOARGS,
     "fork_channel() -> Channel\n--\n\nFork a child connected by a channel, "
     "with the core's hygiene and CPython's fork hooks (as os.fork). Returns "
     "in both processes: pid is 0 in the child. Flush sys.stdout and "
     "sys.stderr first."},
    {"child_exit", (PyCFunction)(void (*)(void))child_exit,
     METH_VARARGS | METH_KEYWORDS,
     "child_exit(code=0) -> NoReturn\n--\n\nEnd this process at once "
     "(_exit): no atexit handlers, no flushing of Python's streams (flush "
     "what the child printed first)."},
    {"wait_channels", (PyCFunction)(void (*)(void))wait_channels,
     METH_VARARGS | METH_KEYWORDS,
     "wait_channels(chans, timeout=None) -> list[Channel]\n--\n\nThe "
     "channels that have a message or reached the end of the stream, "
     "waiting up to timeout seconds (None: no limit) for at least one."},
    {"_channel_cleanup", channel_cleanup, METH_VARARGS,
     "_channel_cleanup(sig=0, timeout=0.0) -> int\n--\n\nReap the children "
     "of freed channels (signalling them first with sig); returns how many "
     "still run."},
    {NULL, NULL, 0, NULL}};

int fqpy_channel_add(PyObject *m)
{
    PyObject *tp = PyType_FromModuleAndSpec(m, &ch_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (rc < 0 || fqpy_exchange_add(m) < 0)
        return -1;
    return PyModule_AddFunctions(m, channel_functions);
}
