/*
 * _forkqueue.Exchange: the core's exchange (fq_exchange_*) for Python faces.
 * It watches Channel objects (parents' ends) and reports which have a whole
 * message and which have ended (end of stream with nothing left, child
 * reaped: the Channel's returncode is set). The waiting of work beyond a
 * limit stays with the face, whose work is Python callables.
 */
#include "channel.h"

#include <unistd.h>

typedef struct fqpy_exchange {
    PyObject_HEAD fq_exchange *ex;
    PyObject *chans; /* dict: channel id -> Channel (watched) */
    pid_t owner;
    int busy;
} fqpy_exchange;

static int usable(fqpy_exchange *self)
{
    if (self->ex == NULL || self->owner != getpid()) {
        PyErr_SetString(PyExc_ValueError,
                        "this Exchange belongs to another process");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this Exchange is in use by another thread");
        return 0;
    }
    return 1;
}

static PyObject *xch_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, ":Exchange", kwlist))
        return NULL;
    fqpy_exchange *self = (fqpy_exchange *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->owner = getpid();
    self->chans = PyDict_New();
    fq_exchange_options o = {0};
    o.return_on_eintr = 1;
    int rc = self->chans ? fq_exchange_new(&self->ex, &o) : FQ_ENOMEM;
    if (rc < 0) {
        Py_DECREF(self);
        return rc == FQ_ENOMEM ? PyErr_NoMemory() : NULL;
    }
    return (PyObject *)self;
}

static int check_channel(fqpy_exchange *self, PyObject *obj, fqpy_channel **out)
{
    PyObject *tp = fqpy_channel_type_of(PyType_GetModule(Py_TYPE(self)));
    if (tp == NULL)
        return -1;
    int ok = PyObject_TypeCheck(obj, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "expected a Channel, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = (fqpy_channel *)obj;
    return 0;
}

static PyObject *xch_add(fqpy_exchange *self, PyObject *obj)
{
    fqpy_channel *c;
    if (!usable(self) || check_channel(self, obj, &c) < 0)
        return NULL;
    if (c->pid == 0) {
        PyErr_SetString(PyExc_ValueError,
                        "add: this is the child's end of a channel");
        return NULL;
    }
    PyObject *key = PyLong_FromUnsignedLong(c->ch.id);
    if (key == NULL)
        return NULL;
    int have = PyDict_Contains(self->chans, key);
    if (have != 0) {
        Py_DECREF(key);
        if (have > 0)
            Py_RETURN_NONE; /* already watched */
        return NULL;
    }
    int rc = fq_exchange_add(self->ex, c->ch, NULL);
    if (rc < 0) {
        Py_DECREF(key);
        return fqpy_channel_error(c, rc, "add");
    }
    rc = PyDict_SetItem(self->chans, key, obj);
    Py_DECREF(key);
    if (rc < 0) {
        fq_exchange_remove(self->ex, c->ch);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *xch_remove(fqpy_exchange *self, PyObject *obj)
{
    fqpy_channel *c;
    if (!usable(self) || check_channel(self, obj, &c) < 0)
        return NULL;
    PyObject *key = PyLong_FromUnsignedLong(c->ch.id);
    if (key == NULL)
        return NULL;
    int have = PyDict_Contains(self->chans, key);
    if (have > 0) {
        fq_exchange_remove(self->ex, c->ch);
        have = PyDict_DelItem(self->chans, key) < 0 ? -1 : 1;
    }
    Py_DECREF(key);
    if (have < 0)
        return NULL;
    if (have == 0) {
        PyErr_SetString(PyExc_ValueError, "remove: channel not watched");
        return NULL;
    }
    Py_RETURN_NONE;
}

#define MAX_EVENTS 64

static PyObject *xch_ready(fqpy_exchange *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *tobj = Py_None;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:ready", kwlist, &tobj))
        return NULL;
    if (fqpy_parse_timeout(tobj, &timeout) < 0 || !usable(self))
        return NULL;
    fq_exchange_event ev[MAX_EVENTS];
    double deadline = timeout < 0 ? -1 : fqpy_now() + timeout;
    int n;
    self->busy = 1;
    for (;;) {
        int ms = fqpy_slice_ms(deadline);
        fq_exchange *ex = self->ex;
        Py_BEGIN_ALLOW_THREADS
        n = fq_exchange_ready(ex, ev, MAX_EVENTS, ms);
        Py_END_ALLOW_THREADS
        if (n > 0 || (n < 0 && n != FQ_EINTR))
            break;
        if (PyErr_CheckSignals() < 0) {
            self->busy = 0;
            return NULL;
        }
        if (n == 0 && (ms == 0 || fq_exchange_active(ex) == 0))
            break;
    }
    self->busy = 0;
    if (n < 0)
        return fqpy_channel_error(NULL, n, "ready");
    PyObject *out = PyList_New(0);
    for (int i = 0; out && i < n; i++) {
        PyObject *key = PyLong_FromUnsignedLong(ev[i].ch.id);
        PyObject *obj = key ? PyDict_GetItemWithError(self->chans, key) : NULL;
        if (obj == NULL) { /* freed by its owner, or an error */
            Py_XDECREF(key);
            if (PyErr_Occurred())
                Py_CLEAR(out);
            continue;
        }
        Py_INCREF(obj);
        if (ev[i].ended) {
            fqpy_channel_reaped((fqpy_channel *)obj, ev[i].status);
            if (PyDict_DelItem(self->chans, key) < 0)
                Py_CLEAR(out);
        }
        PyObject *item =
            out ? Py_BuildValue("(OO)", obj, ev[i].ended ? Py_True : Py_False)
                : NULL;
        if (out && (item == NULL || PyList_Append(out, item) < 0))
            Py_CLEAR(out);
        Py_XDECREF(item);
        Py_DECREF(obj);
        Py_DECREF(key);
    }
    return out;
}

static Py_ssize_t xch_len(fqpy_exchange *self)
{
    return PyDict_Size(self->chans);
}

static int xch_traverse(fqpy_exchange *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->chans);
    return 0;
}

static int xch_clear(fqpy_exchange *self)
{
    Py_CLEAR(self->chans);
    return 0;
}

static void xch_dealloc(fqpy_exchange *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->ex)
        fq_exchange_free(self->ex);
    xch_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef xch_methods[] = {
    {"add", (PyCFunction)xch_add, METH_O,
     "add(channel) -> None\n--\n\nWatch a channel (the parent's end)."},
    {"remove", (PyCFunction)xch_remove, METH_O,
     "remove(channel) -> None\n--\n\nStop watching a channel (it is neither "
     "closed nor reaped)."},
    {"ready", (PyCFunction)(void (*)(void))xch_ready,
     METH_VARARGS | METH_KEYWORDS,
     "ready(timeout=None) -> list[tuple[Channel, bool]]\n--\n\nWait up to "
     "timeout seconds (None: no limit) for channels with a whole message "
     "(False) or that ended (True: removed, child reaped, returncode set). "
     "An empty list on timeout, or at once when nothing is watched."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot xch_slots[] = {
    {Py_tp_doc, "Exchange() watches many channels: which have a message, "
                "which ended (removed and reaped)."},
    {Py_tp_new, xch_new},
    {Py_tp_dealloc, xch_dealloc},
    {Py_tp_traverse, xch_traverse},
    {Py_tp_clear, xch_clear},
    {Py_tp_methods, xch_methods},
    {Py_mp_length, xch_len},
    {0, NULL}};

static PyType_Spec xch_spec = {
    .name = "forkqueue._forkqueue.Exchange",
    .basicsize = sizeof(fqpy_exchange),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = xch_slots,
};

int fqpy_exchange_add(PyObject *m)
{
    PyObject *tp = PyType_FromModuleAndSpec(m, &xch_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    return rc;
}
