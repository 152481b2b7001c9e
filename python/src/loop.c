/*
 * _forkqueue._Loop: a private binding of the core's loop object (fq_loop)
 * so that an outside event loop (asyncio) can drive ForkQueue objects and
 * Jobs through one descriptor and one timeout. Not a public API yet: the
 * asyncio glue of Jobs (forkqueue/_aio.py) and the tests use it, and the
 * faces to come may build on it.
 *
 *     lp = _Loop(); lp.add_queue(fq)
 *     aio.add_reader(lp.fileno(), on_ready)   # on_ready calls lp.process()
 *     aio.call_later(lp.timeout(), on_ready)  # re-armed after each call
 *
 * process() and timeout() move the queues forward (jobs sent, results
 * read, time limits enforced) without waiting; a queue reported ready
 * hands out its results through its own poll(0) / yield_results(). A Job
 * (add_job()) is reported once, when it has its outcome, and leaves the
 * loop; process() settles the Jobs of the loop's queues that ended (their
 * done callbacks run there, after the core call). While they run, every
 * queue of the loop (added, or of a Job in it) is held as by a core call
 * (the re-entry guard), so code run by a fork hook cannot call back into
 * it.
 */
#include "fqpy.h"

#include <unistd.h>

#include "faces/forkqueue/fq.h"
#include "loop.h"

typedef struct fqpy_loop {
    PyObject_HEAD fq_loop *loop;
    PyObject *queues; /* dict: core queue id -> ForkQueue */
    /* dict: Job address -> (Job, ForkQueue, handle address); the address
     * is the udata of the core's source */
    PyObject *jobs;
    PyObject *jobq; /* dict: ForkQueue -> number of its Jobs in the loop */
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
    self->jobs = PyDict_New();
    self->jobq = PyDict_New();
    int rc = self->queues && self->jobs && self->jobq
                 ? fq_loop_new(&self->loop, NULL)
                 : FQ_ENOMEM;
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

/* The i-th queue of the loop: those added (values of queues), then those
 * of its Jobs (keys of jobq); a queue may come twice. */
static fqpy_queue *next_queue(fqpy_loop *self, int *which, Py_ssize_t *pos)
{
    PyObject *k, *v;
    if (*which == 0) {
        if (PyDict_Next(self->queues, pos, &k, &v))
            return (fqpy_queue *)v;
        *which = 1;
        *pos = 0;
    }
    if (PyDict_Next(self->jobq, pos, &k, &v))
        return (fqpy_queue *)k;
    return NULL;
}

static int in_use(fqpy_queue *q)
{
    fqpy_core *c = &q->core;
    return c->locked || c->in_core ||
           (c->busy && c->busy_thread != PyThread_get_thread_ident());
}

/* Holds every queue of the loop as a core call does; RuntimeError if one
 * is inside a call already (another thread, or a callback). */
static int hold_all(fqpy_loop *self)
{
    Py_ssize_t pos = 0;
    int which = 0;
    fqpy_queue *q;
    while ((q = next_queue(self, &which, &pos)) != NULL) {
        if (in_use(q)) {
            PyErr_SetString(PyExc_RuntimeError,
                            "_Loop: a ForkQueue of the loop is in use");
            return -1;
        }
    }
    pos = 0;
    which = 0;
    while ((q = next_queue(self, &which, &pos)) != NULL)
        FQPY_LOCK(&q->core);
    return 0;
}

static void release_all(fqpy_loop *self)
{
    Py_ssize_t pos = 0;
    int which = 0;
    fqpy_queue *q;
    while ((q = next_queue(self, &which, &pos)) != NULL)
        FQPY_UNLOCK(&q->core);
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

/* Forgets the Job of key (its entry in jobs, one count of its queue). */
static int forget_job(fqpy_loop *self, PyObject *key, PyObject *entry)
{
    PyObject *q = PyTuple_GET_ITEM(entry, 1);
    Py_INCREF(entry);
    PyObject *n = PyDict_GetItemWithError(self->jobq, q);
    long left = n ? PyLong_AsLong(n) - 1 : 0;
    int rc = 0;
    if (left > 0) {
        PyObject *v = PyLong_FromLong(left);
        rc = v ? PyDict_SetItem(self->jobq, q, v) : -1;
        Py_XDECREF(v);
    } else if (n) {
        rc = PyDict_DelItem(self->jobq, q);
    } else if (PyErr_Occurred()) {
        rc = -1;
    }
    if (PyDict_DelItem(self->jobs, key) < 0)
        rc = -1;
    Py_DECREF(entry);
    return rc;
}

static PyObject *lp_add_job(fqpy_loop *self, PyObject *obj)
{
    if (!usable(self))
        return NULL;
    fqpy_state *st = fqpy_state_of_type(Py_TYPE(self));
    fq_job *h;
    fqpy_queue *q;
    int r = st ? fqpy_job_source(st, obj, &h, &q) : -1;
    if (r <= 0)
        return r < 0 ? NULL : Py_NewRef(Py_False); /* nothing to wait for */
    if (!q->core.opened || q->core.owner_pid != getpid()) {
        PyErr_SetString(PyExc_ValueError,
                        "add_job: the Job's ForkQueue is closed or not this "
                        "process's");
        return NULL;
    }
    PyObject *key = PyLong_FromVoidPtr(obj);
    PyObject *hp = PyLong_FromVoidPtr(h);
    PyObject *entry =
        key && hp ? PyTuple_Pack(3, obj, (PyObject *)q, hp) : NULL;
    PyObject *n =
        entry ? PyDict_GetItemWithError(self->jobq, (PyObject *)q) : NULL;
    PyObject *count = entry && !PyErr_Occurred()
                          ? PyLong_FromLong(n ? PyLong_AsLong(n) + 1 : 1)
                          : NULL;
    PyObject *ret = NULL;
    if (count == NULL)
        goto out;
    int rc = PyDict_Contains(self->jobs, key);
    if (rc != 0) {
        if (rc > 0)
            PyErr_SetString(PyExc_ValueError,
                            "add_job: the Job is in this loop already");
        goto out;
    }
    /* The dicts first: the core's source needs no undoing. */
    if (PyDict_SetItem(self->jobs, key, entry) < 0)
        goto out;
    if (PyDict_SetItem(self->jobq, (PyObject *)q, count) < 0) {
        PyDict_DelItem(self->jobs, key);
        goto out;
    }
    rc = fq_loop_add_job(self->loop, h, obj);
    if (rc < 0) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (forget_job(self, key, entry) < 0)
            PyErr_Clear();
        PyErr_Restore(t, v, tb);
        loop_error(rc, "add_job");
        goto out;
    }
    ret = Py_NewRef(Py_True);
out:
    Py_XDECREF(key);
    Py_XDECREF(hp);
    Py_XDECREF(entry);
    Py_XDECREF(count);
    return ret;
}

static PyObject *lp_remove_job(fqpy_loop *self, PyObject *obj)
{
    if (!usable(self))
        return NULL;
    PyObject *key = PyLong_FromVoidPtr(obj);
    PyObject *entry = key ? PyDict_GetItemWithError(self->jobs, key) : NULL;
    if (entry == NULL) {
        if (key && !PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError,
                            "remove_job: the Job is not in this loop");
        Py_XDECREF(key);
        return NULL;
    }
    fq_job *h = PyLong_AsVoidPtr(PyTuple_GET_ITEM(entry, 2));
    /* The loop holds a reference to the handle: h is valid even if the
     * Job released its own. */
    int rc = fq_loop_remove_job(self->loop, h);
    int frc = forget_job(self, key, entry);
    Py_DECREF(key);
    if (frc < 0)
        return NULL;
    if (rc < 0)
        return loop_error(rc, "remove_job");
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

#define MAX_EVENTS 256

/* The queues of the loop, as a list (a callback may change the dicts). */
static PyObject *queue_list(fqpy_loop *self)
{
    PyObject *out = PyList_New(0);
    Py_ssize_t pos = 0;
    int which = 0;
    fqpy_queue *q;
    while (out && (q = next_queue(self, &which, &pos)) != NULL)
        if (PyList_Append(out, (PyObject *)q) < 0)
            Py_CLEAR(out);
    return out;
}

/* One event as a tuple (kind, flags, ForkQueue or Job or None, count), or
 * Py_None when it is not for the caller; NULL on error. */
static PyObject *event_item(fqpy_loop *self, const fq_loop_event *ev)
{
    PyObject *obj = Py_None, *key = NULL, *entry = NULL;
    if (ev->type == FQ_LOOP_QUEUE) {
        key = PyLong_FromUnsignedLongLong(ev->id);
        obj = key ? PyDict_GetItemWithError(self->queues, key) : NULL;
    } else if (ev->type == FQ_LOOP_JOB) {
        key = PyLong_FromVoidPtr(ev->udata);
        entry = key ? PyDict_GetItemWithError(self->jobs, key) : NULL;
        obj = entry ? PyTuple_GET_ITEM(entry, 0) : NULL;
    }
    if (obj == NULL) {
        Py_XDECREF(key);
        /* not one of ours (removed meanwhile): nothing to hand out */
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    Py_INCREF(obj);
    int rc = 0;
    if (ev->type == FQ_LOOP_JOB) /* reported once: it left the loop */
        rc = forget_job(self, key, entry);
    else if ((ev->flags & FQ_LOOP_CLOSED) && key)
        rc = PyDict_DelItem(self->queues, key);
    PyObject *item = rc < 0 ? NULL
                            : Py_BuildValue("(iIOK)", ev->type, ev->flags, obj,
                                            (unsigned long long)ev->count);
    Py_DECREF(obj);
    Py_XDECREF(key);
    return item;
}

/* Events as (kind, flags, ForkQueue or Job or None, count) tuples; a queue
 * reported closed and a Job reported have left the loop. Then the Jobs of
 * the loop's queues that ended are settled (their done callbacks run). */
static PyObject *lp_process(fqpy_loop *self, PyObject *noargs)
{
    (void)noargs;
    if (!usable(self))
        return NULL;
    PyObject *qs = queue_list(self);
    if (qs == NULL || hold_all(self) < 0) {
        Py_XDECREF(qs);
        return NULL;
    }
    fq_loop_event ev[MAX_EVENTS];
    int n = fq_loop_process(self->loop, ev, MAX_EVENTS);
    release_all(self);
    PyObject *out = n < 0 ? loop_error(n, "process") : PyList_New(0);
    for (int i = 0; out && i < n; i++) {
        PyObject *item = event_item(self, &ev[i]);
        if (item == NULL || (item != Py_None && PyList_Append(out, item) < 0))
            Py_CLEAR(out);
        Py_XDECREF(item);
    }
    /* After the core call, as the face's own calls do: callbacks may use
     * the queue (and this loop) again. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(qs); i++) {
        fqpy_queue *q = (fqpy_queue *)PyList_GET_ITEM(qs, i);
        if (!in_use(q)) /* else its user settles it, after its call */
            fqpy_jobs_settle(q);
    }
    Py_DECREF(qs);
    return out;
}

static PyObject *lp_jobs(fqpy_loop *self, PyObject *noargs)
{
    (void)noargs;
    return PyLong_FromSsize_t(self->jobs ? PyDict_GET_SIZE(self->jobs) : 0);
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
    if (self->jobq)
        PyDict_Clear(self->jobq);
    if (self->jobs)
        PyDict_Clear(self->jobs);
    Py_RETURN_NONE;
}

static int lp_traverse(fqpy_loop *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->queues);
    Py_VISIT(self->jobs);
    Py_VISIT(self->jobq);
    return 0;
}

static int lp_clear(fqpy_loop *self)
{
    Py_CLEAR(self->queues);
    Py_CLEAR(self->jobs);
    Py_CLEAR(self->jobq);
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
    {"add_job", (PyCFunction)lp_add_job, METH_O,
     "add_job(job) -> bool\n--\n\nWatch a forkqueue.Job: process() reports "
     "it once, when it has its outcome, and settles it (its done callbacks "
     "run); its queue is driven meanwhile. False if it is done already."},
    {"remove_job", (PyCFunction)lp_remove_job, METH_O,
     "remove_job(job) -> None\n--\n\nStop watching a Job."},
    {"jobs", (PyCFunction)lp_jobs, METH_NOARGS,
     "jobs() -> int\n--\n\nHow many Jobs the loop watches."},
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
             PyModule_AddIntConstant(m, "_LOOP_JOB", FQ_LOOP_JOB) ||
             PyModule_AddIntConstant(m, "_LOOP_CLOSED", FQ_LOOP_CLOSED);
        rc = rc ? -1 : 0;
    }
    return rc;
}
