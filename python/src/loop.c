/*
 * _forkqueue._Loop: a private binding of the core's loop object (fq_loop)
 * so that an outside event loop (asyncio) can drive ForkQueue objects
 * through one descriptor and one timeout. Not a public API yet: the tests
 * use it, and the faces to come may build on it.
 *
 *     lp = _Loop(); lp.add_queue(fq)
 *     aio.add_reader(lp.fileno(), on_ready)   # on_ready calls lp.process()
 *     aio.call_later(lp.timeout(), on_ready)  # re-armed after each call
 *
 * process() and timeout() move the queues forward (jobs sent, results
 * read, time limits enforced) without waiting; a queue reported ready
 * hands out its results through its own poll(0) / yield_results(). While
 * they run, every queue of the loop is held as by a core call (the
 * re-entry guard), so code run by a fork hook cannot call back into it.
 */
#include "fqpy.h"

#include <unistd.h>

#include "faces/forkqueue/fq.h"
#include "loop.h"

typedef struct fqpy_loop {
    PyObject_HEAD fq_loop *loop;
    PyObject *queues; /* dict: core queue id -> ForkQueue */
    pid_t owner;
} fqpy_loop;

static int usable(fqpy_loop *self)
{
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_ValueError, "this _Loop is closed");
        return 0;
    }
    if (self->owner != getpid()) {
        PyErr_SetString(PyExc_ValueError,
                        "this _Loop belongs to another process");
        return 0;
    }
    return 1;
}

static PyObject *loop_error(int rc, const char *what)
{
    if (rc == FQ_ENOMEM)
        return PyErr_NoMemory();
    PyErr_Format(rc == FQ_EBUSY ? PyExc_RuntimeError : PyExc_ValueError,
                 "_Loop.%s: %s (%s)", what, fq_strerror(rc), fq_err_name(rc));
    return NULL;
}

static PyObject *lp_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, ":_Loop", kwlist))
        return NULL;
    fqpy_loop *self = (fqpy_loop *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->owner = getpid();
    self->queues = PyDict_New();
    int rc = self->queues ? fq_loop_new(&self->loop, NULL) : FQ_ENOMEM;
    if (rc < 0) {
        Py_DECREF(self);
        return loop_error(rc, "__new__");
    }
    return (PyObject *)self;
}

static int check_queue(fqpy_loop *self, PyObject *obj, fqpy_queue **out)
{
    fqpy_state *st = fqpy_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return -1;
    if (!PyObject_TypeCheck(obj, st->queue_type)) {
        PyErr_Format(PyExc_TypeError, "expected a ForkQueue, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = (fqpy_queue *)obj;
    return 0;
}

/* Holds every queue of the loop as a core call does; RuntimeError if one
 * is inside a call already (another thread, or a callback). */
static int hold_all(fqpy_loop *self)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(self->queues, &pos, &k, &v)) {
        fqpy_core *c = &((fqpy_queue *)v)->core;
        if (c->locked || c->in_core ||
            (c->busy && c->busy_thread != PyThread_get_thread_ident())) {
            PyErr_SetString(PyExc_RuntimeError,
                            "_Loop: a ForkQueue of the loop is in use");
            return -1;
        }
    }
    pos = 0;
    while (PyDict_Next(self->queues, &pos, &k, &v))
        FQPY_LOCK(&((fqpy_queue *)v)->core);
    return 0;
}

static void release_all(fqpy_loop *self)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(self->queues, &pos, &k, &v))
        FQPY_UNLOCK(&((fqpy_queue *)v)->core);
}

static PyObject *lp_add_queue(fqpy_loop *self, PyObject *obj)
{
    fqpy_queue *q;
    if (!usable(self) || check_queue(self, obj, &q) < 0)
        return NULL;
    if (!q->core.opened || q->core.owner_pid != getpid()) {
        PyErr_SetString(PyExc_ValueError,
                        "add_queue: the ForkQueue is closed or not this "
                        "process's");
        return NULL;
    }
    PyObject *key = PyLong_FromUnsignedLong(q->core.q.id);
    if (key == NULL)
        return NULL;
    int rc = fq_loop_add_queue(self->loop, q->core.q, NULL);
    if (rc < 0) {
        Py_DECREF(key);
        return loop_error(rc, "add_queue");
    }
    rc = PyDict_SetItem(self->queues, key, obj);
    Py_DECREF(key);
    if (rc < 0) {
        fq_loop_remove_queue(self->loop, q->core.q);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *lp_remove_queue(fqpy_loop *self, PyObject *obj)
{
    fqpy_queue *q;
    if (!usable(self) || check_queue(self, obj, &q) < 0)
        return NULL;
    int rc = fq_loop_remove_queue(self->loop, q->core.q);
    if (rc < 0)
        return loop_error(rc, "remove_queue");
    PyObject *key = PyLong_FromUnsignedLong(q->core.q.id);
    if (key == NULL || PyDict_DelItem(self->queues, key) < 0) {
        Py_XDECREF(key);
        return NULL;
    }
    Py_DECREF(key);
    Py_RETURN_NONE;
}

static PyObject *lp_fileno(fqpy_loop *self, PyObject *noargs)
{
    (void)noargs;
    if (!usable(self))
        return NULL;
    int fd = fq_loop_fd(self->loop);
    return fd < 0 ? loop_error(fd, "fileno") : PyLong_FromLong(fd);
}

static PyObject *lp_timeout(fqpy_loop *self, PyObject *noargs)
{
    (void)noargs;
    if (!usable(self) || hold_all(self) < 0)
        return NULL;
    int ms = -1;
    int rc = fq_loop_timeout(self->loop, &ms);
    release_all(self);
    if (rc < 0)
        return loop_error(rc, "timeout");
    if (ms < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(ms / 1000.0);
}

#define MAX_EVENTS 64

/* Events as (kind, flags, ForkQueue or None, count) tuples; a queue
 * reported closed has left the loop. */
static PyObject *lp_process(fqpy_loop *self, PyObject *noargs)
{
    (void)noargs;
    if (!usable(self) || hold_all(self) < 0)
        return NULL;
    fq_loop_event ev[MAX_EVENTS];
    int n = fq_loop_process(self->loop, ev, MAX_EVENTS);
    release_all(self);
    if (n < 0)
        return loop_error(n, "process");
    PyObject *out = PyList_New(0);
    for (int i = 0; out && i < n; i++) {
        PyObject *obj = Py_None, *key = NULL;
        if (ev[i].type == FQ_LOOP_QUEUE) {
            key = PyLong_FromUnsignedLongLong(ev[i].id);
            obj = key ? PyDict_GetItemWithError(self->queues, key) : NULL;
            if (obj == NULL) {
                Py_XDECREF(key);
                if (PyErr_Occurred()) {
                    Py_CLEAR(out);
                    break;
                }
                continue; /* not one of ours: nothing to hand out */
            }
        }
        Py_INCREF(obj);
        if ((ev[i].flags & FQ_LOOP_CLOSED) && key &&
            PyDict_DelItem(self->queues, key) < 0)
            Py_CLEAR(out);
        PyObject *item =
            out ? Py_BuildValue("(iIOK)", ev[i].type, ev[i].flags, obj,
                                (unsigned long long)ev[i].count)
                : NULL;
        if (out && (item == NULL || PyList_Append(out, item) < 0))
            Py_CLEAR(out);
        Py_XDECREF(item);
        Py_DECREF(obj);
        Py_XDECREF(key);
    }
    return out;
}

static PyObject *lp_wakeup(fqpy_loop *self, PyObject *noargs)
{
    (void)noargs;
    if (!usable(self))
        return NULL;
    int rc = fq_loop_wakeup(self->loop);
    if (rc < 0)
        return loop_error(rc, "wakeup");
    Py_RETURN_NONE;
}

static PyObject *lp_close(fqpy_loop *self, PyObject *noargs)
{
    (void)noargs;
    if (self->loop && self->owner == getpid()) {
        int rc = fq_loop_free(self->loop);
        if (rc < 0)
            return loop_error(rc, "close");
    }
    self->loop = NULL;
    if (self->queues)
        PyDict_Clear(self->queues);
    Py_RETURN_NONE;
}

static int lp_traverse(fqpy_loop *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->queues);
    return 0;
}

static int lp_clear(fqpy_loop *self)
{
    Py_CLEAR(self->queues);
    return 0;
}

static void lp_dealloc(fqpy_loop *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    /* Before the queues go: the loop holds references to their cores. */
    if (self->loop && self->owner == getpid())
        fq_loop_free(self->loop);
    self->loop = NULL;
    lp_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef lp_methods[] = {
    {"add_queue", (PyCFunction)lp_add_queue, METH_O,
     "add_queue(queue) -> None\n--\n\nDrive a ForkQueue with this loop."},
    {"remove_queue", (PyCFunction)lp_remove_queue, METH_O,
     "remove_queue(queue) -> None\n--\n\nStop driving a ForkQueue."},
    {"fileno", (PyCFunction)lp_fileno, METH_NOARGS,
     "fileno() -> int\n--\n\nA descriptor readable when process() has work "
     "(Linux; owned by the loop: never close it)."},
    {"timeout", (PyCFunction)lp_timeout, METH_NOARGS,
     "timeout() -> float | None\n--\n\nSeconds until process() must run even "
     "if fileno() stays quiet (0.0: now; None: no deadline). Call it after "
     "each process() and after adding work."},
    {"process", (PyCFunction)lp_process, METH_NOARGS,
     "process() -> list[tuple[int, int, ForkQueue | None, int]]\n--\n\nMoves "
     "every queue forward without waiting; returns the events (kind, flags, "
     "queue, outcomes ready)."},
    {"wakeup", (PyCFunction)lp_wakeup, METH_NOARGS,
     "wakeup() -> None\n--\n\nMakes fileno() readable (any thread)."},
    {"close", (PyCFunction)lp_close, METH_NOARGS,
     "close() -> None\n--\n\nFrees the loop; its queues stay open."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot lp_slots[] = {
    {Py_tp_doc, "_Loop() drives ForkQueue objects from an outside event "
                "loop (private)."},
    {Py_tp_new, lp_new},
    {Py_tp_dealloc, lp_dealloc},
    {Py_tp_traverse, lp_traverse},
    {Py_tp_clear, lp_clear},
    {Py_tp_methods, lp_methods},
    {0, NULL}};

static PyType_Spec lp_spec = {
    .name = "forkqueue._forkqueue._Loop",
    .basicsize = sizeof(fqpy_loop),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = lp_slots,
};

int fqpy_loop_add(PyObject *m)
{
    PyObject *tp = PyType_FromModuleAndSpec(m, &lp_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (rc == 0) {
        rc = PyModule_AddIntConstant(m, "_LOOP_QUEUE", FQ_LOOP_QUEUE) ||
             PyModule_AddIntConstant(m, "_LOOP_WAKEUP", FQ_LOOP_WAKEUP) ||
             PyModule_AddIntConstant(m, "_LOOP_CLOSED", FQ_LOOP_CLOSED);
        rc = rc ? -1 : 0;
    }
    return rc;
}
