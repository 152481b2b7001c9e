/*
 * Job handles in Python (since 0.2.0): ForkQueue.submit_job() returns a Job,
 * a future over the core's job handle (fq_job_submit(), fq_job_wait(),
 * fq_job_done(), fq_job_cancel(), fq_job_result()).
 *
 * A handle job is pickled and run exactly as an item of add() (same payload,
 * same worker function, same registry of callables, core ids from the same
 * counter), but its outcome goes to its handle, never to fq_take(): add(),
 * results() and process() never see it.
 *
 * How a Job learns that it is done: the core runs the handle's callback at
 * the end of whichever call drove the queue, often with the GIL released
 * (fq_poll() inside a wait). The callback only appends the handle to
 * q->hdone (raw memory, no Python); fqpy_jobs_settle() then, with the GIL,
 * turns each such handle into its Job's result or exception and runs the
 * Job's done callbacks. It is called by the Job's methods, after every
 * fq_take() of the face (fqpy_take_ready()) and when the queue is cancelled
 * or finished. Pending Jobs are held by q->hjobs (handle address -> Job), so
 * a Job lives as long as its job runs.
 */
#include "../../fqpy.h"

#include <math.h>

enum { JOB_PENDING, JOB_RESULT, JOB_ERROR, JOB_CANCELLED };

/* A wait releases the GIL in slices this long, checking for Ctrl-C. */
#define JOB_SLICE_MS 50

typedef struct fqpy_job {
    PyObject_HEAD fqpy_queue *q; /* strong; NULL once cleared */
    fq_job *h;                   /* the core handle; NULL once settled */
    Py_ssize_t key;              /* registry key in use, or -1 */
    int state;
    PyObject *value;     /* the result, or the exception */
    PyObject *callbacks; /* list of callables waiting, or NULL */
    uint64_t id;
} fqpy_job;

/* ---- settling ----------------------------------------------------------- */

/* Runs with or without the GIL: raw memory only. */
static void job_done_cb(fq_job *h, void *arg)
{
    fqpy_queue *q = arg;
    if (q->nhdone == q->hdone_cap) {
        size_t ncap = q->hdone_cap ? q->hdone_cap * 2 : 16;
        fq_job **n = PyMem_RawRealloc(q->hdone, ncap * sizeof(*n));
        if (n == NULL)
            return; /* the Job settles itself when asked (settle_one) */
        q->hdone = n;
        q->hdone_cap = ncap;
    }
    q->hdone[q->nhdone++] = h;
}

/* The exception of a job that has no reply: its worker died, its time
 * limit passed, the queue was closed. */
static PyObject *core_failure(fqpy_state *st, const fq_result *r)
{
    PyObject *text = PyUnicode_DecodeUTF8((const char *)r->data,
                                          (Py_ssize_t)r->len, "replace");
    if (text == NULL)
        return NULL;
    PyObject *msg = PyUnicode_FromFormat("Exception running task:\n%U", text);
    PyObject *e = msg ? PyObject_CallOneArg(st->exc_type, msg) : NULL;
    Py_XDECREF(msg);
    if (e) {
        PyObject *sig = r->status == FQ_ECRASHED && r->signo > 0
                            ? PyLong_FromLong(r->signo)
                            : Py_NewRef(Py_None);
        PyObject *ex =
            r->status == FQ_ECRASHED && r->signo == 0 && r->exit_status >= 0
                ? PyLong_FromLong(r->exit_status)
                : Py_NewRef(Py_None);
        PyObject *jid = PyLong_FromUnsignedLongLong(r->id);
        if (!sig || !ex || !jid ||
            PyObject_SetAttrString(e, "backtrace", text) < 0 ||
            PyObject_SetAttrString(e, "jobid", jid) < 0 ||
            PyObject_SetAttrString(e, "exception", Py_None) < 0 ||
            PyObject_SetAttrString(e, "signal", sig) < 0 ||
            PyObject_SetAttrString(e, "exitcode", ex) < 0)
            Py_CLEAR(e);
        Py_XDECREF(sig);
        Py_XDECREF(ex);
        Py_XDECREF(jid);
    }
    Py_DECREF(text);
    return e;
}

/* Sets state and value from the outcome. A reply that cannot be read
 * becomes the job's exception. */
static void take_outcome(fqpy_job *j, const fq_result *r)
{
    fqpy_state *st = j->q->st;
    if (r->status == FQ_ECANCELED) {
        j->state = JOB_CANCELLED;
        return;
    }
    if (r->status != 0) {
        j->value = core_failure(st, r);
        j->state = JOB_ERROR;
    } else {
        /* (values, errors or None, ns), as for add() (worker.c) */
        PyObject *reply = fqpy_loads_mem(st, r->data, r->len);
        if (reply && PyTuple_Check(reply) && PyTuple_GET_SIZE(reply) == 3 &&
            PyList_Check(PyTuple_GET_ITEM(reply, 0)) &&
            PyList_GET_SIZE(PyTuple_GET_ITEM(reply, 0)) == 1) {
            PyObject *errors = PyTuple_GET_ITEM(reply, 1);
            PyObject *pair = NULL;
            if (PyDict_Check(errors)) {
                PyObject *zero = PyLong_FromLong(0);
                pair = zero ? PyDict_GetItemWithError(errors, zero) : NULL;
                Py_XDECREF(zero);
            }
            if (pair && PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
                PyObject *exc = PyTuple_GET_ITEM(pair, 0);
                if (PyObject_SetAttrString(exc, "backtrace",
                                           PyTuple_GET_ITEM(pair, 1)) < 0)
                    PyErr_Clear();
                j->value = Py_NewRef(exc);
                j->state = JOB_ERROR;
            } else if (!PyErr_Occurred()) {
                j->value =
                    Py_NewRef(PyList_GET_ITEM(PyTuple_GET_ITEM(reply, 0), 0));
                j->state = JOB_RESULT;
            }
        } else if (reply) {
            PyErr_SetString(PyExc_RuntimeError, "forkqueue: malformed reply");
        }
        Py_XDECREF(reply);
    }
    if (j->value == NULL) {
        /* No memory, or the reply could not be unpickled. */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        j->value = v ? v : Py_NewRef(Py_None);
        Py_XDECREF(t);
        Py_XDECREF(tb);
        j->state = JOB_ERROR;
    }
}

static void run_callback(fqpy_job *j, PyObject *cb)
{
    PyObject *r = PyObject_CallOneArg(cb, (PyObject *)j);
    if (r == NULL)
        PyErr_WriteUnraisable(cb); /* as concurrent.futures logs them */
    Py_XDECREF(r);
}

/* If j's job has its outcome: records it, releases the handle and runs the
 * done callbacks. Keeps a pending exception. */
static void settle_one(fqpy_job *j)
{
    fq_result r;
    if (j->state != JOB_PENDING || j->h == NULL || j->q == NULL ||
        fq_job_result(j->h, &r) != 0)
        return;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    Py_INCREF(j);
    fqpy_queue *q = j->q;
    FQPY_LOCK(&q->core); /* unpickling runs user code */
    take_outcome(j, &r);
    FQPY_UNLOCK(&q->core);
    PyObject *hkey = PyLong_FromVoidPtr(j->h);
    fq_job_free(j->h);
    j->h = NULL;
    if (j->key >= 0) {
        fqpy_reg_use(&q->core.reg, j->key, -1);
        j->key = -1;
    }
    if (hkey == NULL || q->hjobs == NULL || PyDict_DelItem(q->hjobs, hkey) < 0)
        PyErr_Clear();
    Py_XDECREF(hkey);
    PyObject *cbs = j->callbacks;
    j->callbacks = NULL;
    if (cbs) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++)
            run_callback(j, PyList_GET_ITEM(cbs, i));
        Py_DECREF(cbs);
    }
    Py_DECREF(j);
    PyErr_Restore(t, v, tb);
}

void fqpy_jobs_settle(fqpy_queue *q)
{
    if (q->settling || q->nhdone == 0)
        return;
    q->settling = 1;
    /* Callbacks may drive the queue and append more: the index follows. */
    for (size_t i = 0; i < q->nhdone; i++) {
        fq_job *h = q->hdone[i];
        PyObject *hkey = PyLong_FromVoidPtr(h);
        PyObject *j =
            hkey && q->hjobs ? PyDict_GetItemWithError(q->hjobs, hkey) : NULL;
        Py_XDECREF(hkey);
        if (j == NULL) {
            /* A Job gone meanwhile (collected with its queue), or no
             * memory: nothing to do. */
            if (PyErr_Occurred())
                PyErr_WriteUnraisable(NULL);
            continue;
        }
        /* The address of a handle freed after its callback may have been
         * reused by a newer one: settle_one() checks it is done. */
        if (((fqpy_job *)j)->h == h)
            settle_one((fqpy_job *)j);
    }
    q->nhdone = 0;
    q->settling = 0;
}

int fqpy_job_source(fqpy_state *st, PyObject *obj, fq_job **h, fqpy_queue **q)
{
    if (!PyObject_TypeCheck(obj, st->job_type)) {
        PyErr_Format(PyExc_TypeError, "expected a forkqueue.Job, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    fqpy_job *j = (fqpy_job *)obj;
    settle_one(j);
    if (j->state != JOB_PENDING || j->h == NULL || j->q == NULL)
        return 0;
    *h = j->h;
    *q = j->q;
    return 1;
}

/* ---- waiting ------------------------------------------------------------ */

/* Waits up to timeout_s (negative: no limit) for the job's outcome, with
 * the GIL released in slices. Returns 0 (done or timed out: look at
 * state), or -1 with an exception (Ctrl-C, a queue that cannot be used). */
static int job_wait(fqpy_job *j, double timeout_s, int poll_only)
{
    settle_one(j);
    if (j->state != JOB_PENDING || j->q == NULL)
        return 0;
    fqpy_queue *q = j->q;
    if (fqpy_enter(q, 1) < 0)
        return -1;
    double deadline = timeout_s < 0 ? -1 : fqpy_now() + timeout_s;
    int ret = 0;
    for (;;) {
        int ms = poll_only ? 0 : JOB_SLICE_MS, rc;
        if (!poll_only && deadline >= 0) {
            double rem = deadline - fqpy_now();
            ms = rem <= 0 ? 0 : rem * 1000 < ms ? (int)ceil(rem * 1000) : ms;
        }
        fq_job *h = j->h;
        q->core.in_core++;
        FQPY_LOCK(&q->core);
        if (ms == 0) {
            rc = fq_job_done(h);
        } else {
            Py_BEGIN_ALLOW_THREADS
            rc = fq_job_wait(h, ms);
            Py_END_ALLOW_THREADS
        }
        FQPY_UNLOCK(&q->core);
        q->core.in_core--;
        fqpy_jobs_settle(q);
        settle_one(j);
        if (j->state != JOB_PENDING || ms == 0)
            break;
        if (PyErr_CheckSignals() < 0) {
            ret = -1;
            break;
        }
        if (rc < 0 && rc != FQ_ETIMEDOUT && rc != FQ_EINTR) {
            fqpy_core_error(&q->core, rc, "waiting for a job");
            ret = -1;
            break;
        }
        if (deadline >= 0 && fqpy_now() >= deadline)
            break;
    }
    fqpy_leave(q);
    return ret;
}

static int parse_wait(PyObject *args, PyObject *kwargs, const char *fname,
                      double *t)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *to = Py_None;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "|O:%s", fname);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &to))
        return -1;
    return fqpy_parse_timeout(to, t);
}

static PyObject *cancelled_error(void)
{
    PyObject *mod = PyImport_ImportModule("concurrent.futures");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "CancelledError") : NULL;
    Py_XDECREF(mod);
    if (cls)
        PyErr_SetString(cls, "the job was cancelled");
    Py_XDECREF(cls);
    return NULL;
}

/* Waits, then raises TimeoutError or CancelledError when there is nothing
 * to give. Returns 0 when the job has a result or an exception. */
static int wait_outcome(fqpy_job *j, double t)
{
    if (job_wait(j, t, 0) < 0)
        return -1;
    if (j->state == JOB_PENDING) {
        PyErr_Format(PyExc_TimeoutError, "job %llu is not done after %g s",
                     (unsigned long long)j->id, t);
        return -1;
    }
    if (j->state == JOB_CANCELLED) {
        cancelled_error();
        return -1;
    }
    return 0;
}

/* ---- methods ------------------------------------------------------------ */

static PyObject *job_result(fqpy_job *self, PyObject *args, PyObject *kwargs)
{
    double t;
    if (parse_wait(args, kwargs, "result", &t) < 0 || wait_outcome(self, t) < 0)
        return NULL;
    if (self->state == JOB_ERROR) {
        PyErr_SetObject((PyObject *)Py_TYPE(self->value), self->value);
        return NULL;
    }
    return Py_NewRef(self->value);
}

static PyObject *job_exception(fqpy_job *self, PyObject *args, PyObject *kwargs)
{
    double t;
    if (parse_wait(args, kwargs, "exception", &t) < 0 ||
        wait_outcome(self, t) < 0)
        return NULL;
    return Py_NewRef(self->state == JOB_ERROR ? self->value : Py_None);
}

static PyObject *job_done(fqpy_job *self, PyObject *noargs)
{
    (void)noargs;
    if (job_wait(self, 0, 1) < 0)
        return NULL;
    return PyBool_FromLong(self->state != JOB_PENDING);
}

static PyObject *job_cancelled(fqpy_job *self, PyObject *noargs)
{
    (void)noargs;
    return PyBool_FromLong(self->state == JOB_CANCELLED);
}

static PyObject *job_cancel(fqpy_job *self, PyObject *noargs)
{
    (void)noargs;
    settle_one(self);
    if (self->state != JOB_PENDING || self->q == NULL)
        return PyBool_FromLong(self->state == JOB_CANCELLED);
    fqpy_queue *q = self->q;
    if (fqpy_enter(q, 1) < 0)
        return NULL;
    fq_job *h = self->h;
    int rc;
    q->core.in_core++;
    FQPY_LOCK(&q->core);
    Py_BEGIN_ALLOW_THREADS
    rc = fq_job_cancel(h); /* a running job: up to the grace period */
    Py_END_ALLOW_THREADS
    FQPY_UNLOCK(&q->core);
    q->core.in_core--;
    fqpy_jobs_settle(q);
    settle_one(self);
    fqpy_leave(q);
    if (rc < 0 && self->state == JOB_PENDING)
        return fqpy_core_error(&q->core, rc, "cancelling a job");
    return PyBool_FromLong(self->state == JOB_CANCELLED);
}

static PyObject *job_add_done_callback(fqpy_job *self, PyObject *fn)
{
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError,
                     "add_done_callback() needs a callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    settle_one(self);
    if (self->state != JOB_PENDING) {
        run_callback(self, fn);
        Py_RETURN_NONE;
    }
    if (self->callbacks == NULL && (self->callbacks = PyList_New(0)) == NULL)
        return NULL;
    if (PyList_Append(self->callbacks, fn) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *job_await(fqpy_job *self)
{
    PyObject *mod = PyImport_ImportModule("forkqueue._jobs");
    PyObject *coro =
        mod ? PyObject_CallMethod(mod, "_await_job", "O", self) : NULL;
    Py_XDECREF(mod);
    if (coro == NULL)
        return NULL;
    PyObject *it = PyObject_CallMethod(coro, "__await__", NULL);
    Py_DECREF(coro);
    return it;
}

static PyObject *job_get_id(fqpy_job *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->id);
}

static PyObject *job_repr(fqpy_job *self)
{
    static const char *names[] = {"pending", "finished", "raised", "cancelled"};
    return PyUnicode_FromFormat("<forkqueue.Job %llu %s>",
                                (unsigned long long)self->id,
                                names[self->state]);
}

static int job_traverse(fqpy_job *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->q);
    Py_VISIT(self->value);
    Py_VISIT(self->callbacks);
    return 0;
}

static int job_clear(fqpy_job *self)
{
    if (self->h) {
        /* The job runs on; its outcome is discarded (the core keeps the
         * handle until its callback, which finds no Job). */
        fq_job_free(self->h);
        self->h = NULL;
    }
    if (self->q && self->key >= 0 && self->q->core.reg.users)
        fqpy_reg_use(&self->q->core.reg, self->key, -1);
    self->key = -1;
    Py_CLEAR(self->q);
    Py_CLEAR(self->value);
    Py_CLEAR(self->callbacks);
    return 0;
}

static void job_dealloc(fqpy_job *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    job_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef job_methods[] = {
    {"result", (PyCFunction)(void (*)(void))job_result,
     METH_VARARGS | METH_KEYWORDS,
     "result($self, timeout=None)\n--\n\nWaits up to timeout seconds (None: no "
     "limit) and returns the job's result, or raises its exception; "
     "TimeoutError if it is not done by then, "
     "concurrent.futures.CancelledError if it was cancelled."},
    {"exception", (PyCFunction)(void (*)(void))job_exception,
     METH_VARARGS | METH_KEYWORDS,
     "exception($self, timeout=None)\n--\n\nWaits as result() does and returns "
     "the "
     "job's exception, or None if it returned a result."},
    {"done", (PyCFunction)job_done, METH_NOARGS,
     "done($self)\n--\n\nTrue once the job has its outcome (a result, an "
     "exception, or a cancellation). Moves the queue's I/O once without "
     "waiting, so a loop of done() calls makes progress."},
    {"cancel", (PyCFunction)job_cancel, METH_NOARGS,
     "cancel($self)\n--\n\nCancels the job: a queued job is dropped, a running "
     "job's worker is stopped (SIGTERM, then SIGKILL after the grace "
     "period) and replaced. Returns True if the job is cancelled (by this "
     "call or before), False if it had already finished."},
    {"cancelled", (PyCFunction)job_cancelled, METH_NOARGS,
     "cancelled($self)\n--\n\nTrue if the job was cancelled."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "Job[T] in annotations."},
    {"add_done_callback", (PyCFunction)job_add_done_callback, METH_O,
     "add_done_callback($self, fn, /)\n--\n\nCalls fn(job) once the job is "
     "done "
     "(at "
     "once if it already is), in the thread of the call that noticed it."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef job_getset[] = {
    {"job_id", (getter)job_get_id, NULL, "The job's id in its queue.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot job_slots[] = {
    {Py_tp_doc, "A job submitted with ForkQueue.submit_job(): a future "
                "(result(), done(), cancel(), add_done_callback()) that can "
                "be awaited in asyncio."},
    {Py_tp_dealloc, job_dealloc},
    {Py_tp_traverse, job_traverse},
    {Py_tp_clear, job_clear},
    {Py_tp_methods, job_methods},
    {Py_tp_getset, job_getset},
    {Py_tp_repr, job_repr},
    {Py_am_await, job_await},
    {0, NULL},
};

PyType_Spec fqpy_job_spec = {
    .name = "forkqueue.Job",
    .basicsize = sizeof(fqpy_job),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = job_slots,
};

/* ---- ForkQueue.submit_job() -------------------------------------------- */

PyObject *fqpy_queue_submit_job(fqpy_queue *self, PyObject *args,
                                PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "submit_job() needs the callable to run");
        return NULL;
    }
    PyObject *fn = PyTuple_GET_ITEM(args, 0);
    if (fqpy_check_callable(fn, "submit_job") < 0)
        return NULL;
    if (fqpy_enter(self, 0) < 0)
        return NULL;
    fqpy_state *st = self->st;
    fqpy_job *j = NULL;
    PyObject *fargs = NULL, *argslist = NULL, *payload = NULL, *hkey = NULL;
    PyObject *ret = NULL;
    Py_ssize_t key = fqpy_reg_key(&self->core.reg, fn);
    if (key < 0)
        goto out;
    if (!fqpy_reg_known(&self->core.reg, key)) {
        /* The workers were forked before this callable was registered. */
        FQPY_LOCK(&self->core);
        int rc = fq_refork(self->core.q);
        FQPY_UNLOCK(&self->core);
        if (rc < 0) {
            fqpy_core_error(&self->core, rc, "reforking the workers");
            goto out;
        }
        fqpy_reg_reforked(&self->core.reg);
        self->last_refork = fqpy_now();
    }
    fargs = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    argslist = fargs ? PyList_New(1) : NULL;
    if (argslist == NULL)
        goto out;
    PyList_SET_ITEM(argslist, 0, Py_NewRef(fargs));
    PyObject *kw = kwargs && PyDict_GET_SIZE(kwargs) ? kwargs : Py_None;
    PyObject *keyo = PyLong_FromSsize_t(key);
    PyObject *zero = PyLong_FromLong(0); /* call id 0: never closed */
    PyObject *tup = keyo && zero ? PyTuple_Pack(6, keyo, argslist, kw, Py_False,
                                                zero, Py_None)
                                 : NULL;
    Py_XDECREF(keyo);
    Py_XDECREF(zero);
    payload = tup ? fqpy_dumps(st, tup) : NULL;
    Py_XDECREF(tup);
    if (payload == NULL) {
        if (tup && PyErr_Occurred()) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyErr_NormalizeException(&t, &v, &tb);
            PyErr_Format(PyExc_TypeError,
                         "submit_job(): the arguments of %R cannot be "
                         "pickled: %S",
                         fn, v ? v : Py_None);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
        }
        goto out;
    }
    if (self->hjobs == NULL && (self->hjobs = PyDict_New()) == NULL)
        goto out;
    j = PyObject_GC_New(fqpy_job, st->job_type);
    if (j == NULL)
        goto out;
    j->q = NULL;
    j->h = NULL;
    j->key = -1;
    j->state = JOB_PENDING;
    j->value = NULL;
    j->callbacks = NULL;
    j->id = 0;
    PyObject_GC_Track(j);
    fq_job_options jo = {0};
    jo.id = self->next_core_id++;
    jo.flags = FQ_JOB_ID;
    jo.timeout_ms = self->timeout > 0 ? (int)ceil(self->timeout * 1000) : -1;
    jo.callback = job_done_cb;
    jo.callback_arg = self;
    FQPY_LOCK(&self->core);
    int rc = fq_job_submit(
        self->core.q, self->thread_kind ? fqpy_thread_job : fqpy_worker_job,
        PyBytes_AS_STRING(payload), (size_t)PyBytes_GET_SIZE(payload), &jo,
        &j->h);
    FQPY_UNLOCK(&self->core);
    if (rc < 0) {
        fqpy_core_error(&self->core, rc, "submitting a job");
        goto out;
    }
    j->q = (fqpy_queue *)Py_NewRef(self);
    j->id = jo.id;
    fqpy_reg_use(&self->core.reg, key, 1);
    j->key = key;
    hkey = PyLong_FromVoidPtr(j->h);
    if (hkey == NULL || PyDict_SetItem(self->hjobs, hkey, (PyObject *)j) < 0) {
        /* Not tracked: the job runs on, its outcome is discarded. */
        goto out;
    }
    ret = Py_NewRef(j);
out:
    Py_XDECREF(hkey);
    Py_XDECREF(j);
    Py_XDECREF(fargs);
    Py_XDECREF(argslist);
    Py_XDECREF(payload);
    fqpy_leave(self);
    return ret;
}
