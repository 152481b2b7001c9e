/*
 * The ForkQueue type: the parent side of the Python face.
 *
 * One core job carries one or more Python items (a batch) of one callable.
 * The core numbers, dispatches and orders the jobs; this file pickles the
 * payloads, keeps for every core job a record of its Python ids and
 * arguments (to re-run the items of a batch whose worker died), and turns
 * outcomes into result slots in the store.
 *
 * Job record (a tuple, value of self->jobs[core id]):
 *   (ids, argslist, kwargs, key, measured, seq, flat)
 * ids is a list of Python ids, or an int: the first of len(argslist)
 * consecutive automatic ids. seq is None, or the sequence number of the
 * placeholder slot that the outcome fills (an item of a crashed batch re-run
 * alone, ordered mode). flat: argslist holds single arguments, not tuples
 * (the common map() case: no tuple to pickle or build per item).
 */
#include "fqpy.h"
#include "structmember.h"

#include <limits.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

enum {
    REC_IDS,
    REC_ARGS,
    REC_KWARGS,
    REC_KEY,
    REC_MEASURED,
    REC_SEQ,
    REC_FLAT
};

/* Longest stretch with the GIL released and no look at pending signals. */
#define SLICE_MS 50
/* A batch aims at this much worker time: long enough to hide the per-job
 * costs, short enough that results stream and the tail stays short. */
#define TARGET_BATCH_NS 5e6
#define MAX_BATCH 8192

/* Minimum time between two reforks caused by add() of new callables. */
#define REFORK_MIN_INTERVAL 0.01

double fqpy_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- fork hooks --------------------------------------------------------- */

/* Workers are forked from fq_queue_new() and fq_refork() (GIL held) and, to
 * replace a dead worker, from inside fq_poll() (GIL released): take it in
 * every case, and tell the interpreter a fork is coming. */
static void hook_prepare(void *arg)
{
    fqpy_queue *self = arg;
    self->gilstate = PyGILState_Ensure();
    /* A worker must not inherit unflushed output, or it would print it
     * again when it flushes its own. */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    static const char *names[] = {"stdout", "stderr"};
    for (int i = 0; i < 2; i++) {
        PyObject *f = PySys_GetObject(names[i]);
        if (f && f != Py_None) {
            PyObject *r = PyObject_CallMethod(f, "flush", NULL);
            Py_XDECREF(r);
        }
    }
    PyErr_Clear();
    PyErr_Restore(t, v, tb);
    PyOS_BeforeFork();
}

static void hook_parent(void *arg)
{
    fqpy_queue *self = arg;
    PyOS_AfterFork_Parent();
    PyGILState_Release(self->gilstate);
}

static void hook_child(void *arg)
{
    (void)arg;
    /* The worker keeps the GIL until it exits. */
    PyOS_AfterFork_Child();
    /* Inherited objects are never garbage here: keep the collector from
     * walking them, which would also copy every page they live on. */
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *r = gc ? PyObject_CallMethod(gc, "freeze", NULL) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(gc);
    PyErr_Clear();
}

/* ---- errors ------------------------------------------------------------- */

static PyObject *core_error(fqpy_queue *self, int rc, const char *what)
{
    switch (rc) {
    case FQ_ENOMEM:
        return PyErr_NoMemory();
    case FQ_EFINISHED:
    case FQ_ECLOSED:
        PyErr_SetString(PyExc_RuntimeError,
                        "this ForkQueue is finished; create a new one");
        return NULL;
    case FQ_EFOREIGN:
        PyErr_SetString(PyExc_RuntimeError,
                        "this ForkQueue belongs to another process (a "
                        "forked child cannot use its parent's queue)");
        return NULL;
    case FQ_EINIT:
        PyErr_SetString(self->st->exc_type,
                        "initfunc failed in a worker; the queue is stopped");
        return NULL;
    case FQ_EFORK:
    case FQ_ESYS:
        PyErr_Format(PyExc_OSError, "forkqueue: %s: %s", what, fq_strerror(rc));
        return NULL;
    default:
        PyErr_Format(PyExc_RuntimeError, "forkqueue: %s: %s (%s)", what,
                     fq_strerror(rc), fq_err_name(rc));
        return NULL;
    }
}

/* Every method that touches the core goes through enter/leave: a queue is
 * used by one thread at a time, and waits release the GIL. Re-entry from
 * the same thread (a source generator that polls, say) is allowed. */

int fqpy_enter(fqpy_queue *self, int allow_finished)
{
    if (!self->opened && !self->finished) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ForkQueue.__init__() has not been called");
        return -1;
    }
    if (self->finished && !allow_finished) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this ForkQueue is finished (finish() was called, "
                        "the with block ended or a wait was interrupted); "
                        "create a new one");
        return -1;
    }
    unsigned long me = PyThread_get_thread_ident();
    if (self->busy && self->busy_thread != me) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this ForkQueue is in use by another thread");
        return -1;
    }
    if (self->busy++ == 0)
        self->busy_thread = me;
    return 0;
}

void fqpy_leave(fqpy_queue *self)
{
    self->busy--;
}

int fqpy_check_usable(fqpy_queue *self)
{
    if (fqpy_enter(self, 0) < 0)
        return -1;
    fqpy_leave(self);
    return 0;
}

/* ---- callables ---------------------------------------------------------- */

static int grow_key_arrays(fqpy_queue *self, Py_ssize_t need)
{
    if (need <= self->item_ns_cap)
        return 0;
    Py_ssize_t ncap = self->item_ns_cap ? self->item_ns_cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    double *a = PyMem_Realloc(self->item_ns, ncap * sizeof(*a));
    if (a == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->item_ns = a;
    int64_t *b = PyMem_Realloc(self->batch_seen, ncap * sizeof(*b));
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->batch_seen = b;
    for (Py_ssize_t i = self->item_ns_cap; i < ncap; i++) {
        a[i] = 0;
        b[i] = 0;
    }
    self->item_ns_cap = ncap;
    return 0;
}

/* The key of a callable in the registry, adding it if new. Hashable
 * callables are found by equality (a bound method made afresh by each
 * attribute access is equal to the previous one); others by identity. */
Py_ssize_t fqpy_func_key(fqpy_queue *self, PyObject *func)
{
    if (func == self->last_func)
        return self->last_key;
    PyObject *ck;
    if (PyObject_Hash(func) == -1) {
        PyErr_Clear();
        ck = PyLong_FromVoidPtr(func);
        if (ck == NULL)
            return -1;
    } else {
        ck = Py_NewRef(func);
    }
    Py_ssize_t key;
    PyObject *k = PyDict_GetItemWithError(self->keycache, ck);
    if (k) {
        key = PyLong_AsSsize_t(k);
    } else if (PyErr_Occurred()) {
        Py_DECREF(ck);
        return -1;
    } else {
        key = PyList_GET_SIZE(self->registry);
        if (grow_key_arrays(self, key + 1) < 0 ||
            PyList_Append(self->registry, func) < 0) {
            Py_DECREF(ck);
            return -1;
        }
        k = PyLong_FromSsize_t(key);
        if (k == NULL || PyDict_SetItem(self->keycache, ck, k) < 0) {
            Py_XDECREF(k);
            Py_DECREF(ck);
            return -1;
        }
        Py_DECREF(k);
        /* registry[key] may differ from func (equal, not identical). */
        func = PyList_GET_ITEM(self->registry, key);
    }
    Py_DECREF(ck);
    self->last_func = func;
    self->last_key = key;
    return key;
}

int64_t fqpy_next_batch(fqpy_queue *self, Py_ssize_t key)
{
    double est = self->item_ns[key];
    if (est <= 0)
        return 1;
    double b = TARGET_BATCH_NS / est;
    /* Grow by at most 4x per observed batch, so a slow item that follows
     * fast ones is not buried in a huge batch. */
    double cap = (double)self->batch_seen[key] * 4;
    if (b > cap)
        b = cap;
    if (b > MAX_BATCH)
        b = MAX_BATCH;
    return b < 1 ? 1 : (int64_t)b;
}

PyObject *fqpy_next_auto_id(fqpy_queue *self)
{
    if (!self->track_ids)
        return PyLong_FromLongLong(self->next_auto_id++);
    for (;;) {
        PyObject *id = PyLong_FromLongLong(self->next_auto_id++);
        if (id == NULL)
            return NULL;
        int r = PySet_Contains(self->live_ids, id);
        if (r == 0 && PySet_Add(self->live_ids, id) == 0)
            return id;
        Py_DECREF(id);
        if (r < 0 || PyErr_Occurred())
            return NULL;
    }
}

/* ---- submission --------------------------------------------------------- */

static int submit_now(fqpy_queue *self, PyObject *rec, PyObject *payload)
{
    /* The core numbers the jobs; Python ids live in the record. */
    uint64_t id;
    int rc = fq_submit(self->q, fqpy_worker_job, PyBytes_AS_STRING(payload),
                       (size_t)PyBytes_GET_SIZE(payload), NULL, &id);
    if (rc < 0) {
        core_error(self, rc, "submitting a job");
        return -1;
    }
    self->outstanding++;
    PyObject *cid = PyLong_FromUnsignedLongLong(id);
    if (cid == NULL)
        return -1;
    rc = PyDict_SetItem(self->jobs, cid, rec);
    Py_DECREF(cid);
    return rc;
}

static void drop_deferred(fqpy_queue *self)
{
    fqpy_deferred *d = self->deferred;
    size_t n = self->ndeferred;
    self->deferred = NULL;
    self->ndeferred = self->deferred_cap = 0;
    for (size_t i = 0; i < n; i++) {
        Py_DECREF(d[i].rec);
        Py_DECREF(d[i].payload);
    }
    PyMem_Free(d);
}

/* Submits the jobs held back until the workers know their callable. */
int fqpy_flush(fqpy_queue *self)
{
    if (self->ndeferred == 0)
        return 0;
    if (PyList_GET_SIZE(self->registry) > self->known) {
        int rc = fq_refork(self->q);
        if (rc < 0) {
            core_error(self, rc, "reforking the workers");
            return -1;
        }
        self->known = PyList_GET_SIZE(self->registry);
        self->last_refork = fqpy_now();
    }
    size_t i;
    int rc = 0;
    for (i = 0; i < self->ndeferred; i++) {
        if ((rc = submit_now(self, self->deferred[i].rec,
                             self->deferred[i].payload)) < 0)
            break;
    }
    drop_deferred(self);
    return rc;
}

static int submit_rec(fqpy_queue *self, Py_ssize_t key, PyObject *rec,
                      PyObject *payload)
{
    self->items_out += PyList_GET_SIZE(PyTuple_GET_ITEM(rec, REC_ARGS));
    if (self->ndeferred == 0 && key < self->known)
        return submit_now(self, rec, payload);
    /* A worker forked before this callable was registered does not know it:
     * hold the job until a refork. Reforks are spaced out so that adding
     * many new lambdas in a row costs a few reforks, not one each. */
    if (self->ndeferred == self->deferred_cap) {
        size_t ncap = self->deferred_cap ? self->deferred_cap * 2 : 16;
        fqpy_deferred *d = PyMem_Realloc(self->deferred, ncap * sizeof(*d));
        if (d == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->deferred = d;
        self->deferred_cap = ncap;
    }
    self->deferred[self->ndeferred].rec = Py_NewRef(rec);
    self->deferred[self->ndeferred].payload = Py_NewRef(payload);
    self->ndeferred++;
    if (fqpy_now() - self->last_refork >= REFORK_MIN_INTERVAL)
        return fqpy_flush(self);
    return 0;
}

static int submit_full(fqpy_queue *self, Py_ssize_t key, PyObject *ids,
                       PyObject *argslist, PyObject *kwargs, int measured,
                       PyObject *seq, int flat)
{
    PyObject *keyo = PyLong_FromSsize_t(key);
    if (keyo == NULL)
        return -1;
    PyObject *kw = kwargs ? kwargs : Py_None;
    PyObject *fl = flat ? Py_True : Py_False;
    PyObject *job = PyTuple_Pack(4, keyo, argslist, kw, fl);
    PyObject *payload =
        job ? PyObject_CallFunctionObjArgs(self->st->dumps, job,
                                           self->st->protocol, NULL)
            : NULL;
    Py_XDECREF(job);
    PyObject *rec = NULL;
    int rc = -1;
    if (payload)
        rec = PyTuple_Pack(7, ids, argslist, kw, keyo,
                           measured ? Py_True : Py_False, seq ? seq : Py_None,
                           fl);
    if (rec)
        rc = submit_rec(self, key, rec, payload);
    Py_XDECREF(rec);
    Py_XDECREF(payload);
    Py_DECREF(keyo);
    return rc;
}

int fqpy_submit(fqpy_queue *self, Py_ssize_t key, PyObject *ids,
                PyObject *argslist, PyObject *kwargs, int measured, int flat)
{
    return submit_full(self, key, ids, argslist, kwargs, measured, NULL, flat);
}

/* The Python id of item i of a job record: borrowed, or NULL with *num
 * set to an automatic id. */
static PyObject *rec_id_or_num(PyObject *rec, Py_ssize_t i, long long *num)
{
    PyObject *ids = PyTuple_GET_ITEM(rec, REC_IDS);
    if (PyList_Check(ids)) {
        *num = 0;
        return PyList_GET_ITEM(ids, i);
    }
    *num = PyLong_AsLongLong(ids) + i;
    return NULL;
}

/* The Python id of item i of a job record (new reference). */
static PyObject *rec_id(PyObject *rec, Py_ssize_t i)
{
    PyObject *ids = PyTuple_GET_ITEM(rec, REC_IDS);
    if (PyList_Check(ids))
        return Py_NewRef(PyList_GET_ITEM(ids, i));
    long long first = PyLong_AsLongLong(ids);
    if (first == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(first + i);
}

static Py_ssize_t rec_len(PyObject *rec)
{
    return PyList_GET_SIZE(PyTuple_GET_ITEM(rec, REC_ARGS));
}

/* ---- outcomes ----------------------------------------------------------- */

/* Puts a result or error in its slot: the placeholder seq, or a new one. */
static int place(fqpy_queue *self, PyObject *id, long long num, PyObject *value,
                 int state, PyObject *seq)
{
    if (seq == Py_None)
        return fqpy_store_push(&self->store, id, num, value, state, NULL);
    uint64_t s = PyLong_AsUnsignedLongLong(seq);
    fqpy_entry *e = fqpy_store_at(&self->store, s);
    if (e == NULL || e->state != FQPY_PENDING) {
        /* The slot was dropped (cannot happen while the queue runs). */
        PyErr_Clear();
        return 0;
    }
    Py_INCREF(value);
    Py_XSETREF(e->value, value);
    e->state = state;
    if (state == FQPY_ERROR)
        self->store.nerrors++;
    return 0;
}

/* A ForkQueueException carrying the text as message (after the usual
 * prefix) and as attribute `backtrace`. */
static PyObject *make_fqe(fqpy_queue *self, PyObject *tb, PyObject *cause,
                          int signo, int exit_status, int crashed)
{
    PyObject *msg = PyUnicode_FromFormat("Exception running task:\n%U", tb);
    if (msg == NULL)
        return NULL;
    PyObject *e = PyObject_CallOneArg(self->st->exc_type, msg);
    Py_DECREF(msg);
    if (e == NULL)
        return NULL;
    PyObject *sig = NULL, *ex = NULL;
    if (crashed && signo > 0)
        sig = PyLong_FromLong(signo);
    else if (crashed && exit_status >= 0)
        ex = PyLong_FromLong(exit_status);
    if (PyObject_SetAttrString(e, "backtrace", tb) < 0 ||
        PyObject_SetAttrString(e, "exception", cause ? cause : Py_None) < 0 ||
        PyObject_SetAttrString(e, "signal", sig ? sig : Py_None) < 0 ||
        PyObject_SetAttrString(e, "exitcode", ex ? ex : Py_None) < 0)
        Py_CLEAR(e);
    Py_XDECREF(sig);
    Py_XDECREF(ex);
    return e;
}

/* The error of one item: raised later (reraise) or returned as its result. */
static int place_error(fqpy_queue *self, PyObject *id, long long num,
                       PyObject *exc, PyObject *tb, PyObject *seq)
{
    int rc;
    if (self->reraise) {
        PyObject *fqe = make_fqe(self, tb, exc, 0, 0, 0);
        if (fqe == NULL)
            return -1;
        rc = place(self, id, num, fqe, FQPY_ERROR, seq);
        Py_DECREF(fqe);
        return rc;
    }
    if (PyObject_SetAttrString(exc, "backtrace", tb) < 0)
        PyErr_Clear();
    return place(self, id, num, exc, FQPY_READY, seq);
}

/* An error that applies to every item of the job (worker died, init failed,
 * result unreadable, job cancelled). */
static int place_job_error(fqpy_queue *self, PyObject *rec, PyObject *tb,
                           int signo, int exit_status, int crashed)
{
    PyObject *seq = PyTuple_GET_ITEM(rec, REC_SEQ);
    Py_ssize_t n = rec_len(rec);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *fqe = make_fqe(self, tb, NULL, signo, exit_status, crashed);
        long long num;
        PyObject *id = rec_id_or_num(rec, i, &num);
        int rc = fqe ? place(self, id, num, fqe,
                             self->reraise ? FQPY_ERROR : FQPY_READY, seq)
                     : -1;
        Py_XDECREF(fqe);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int handle_reply(fqpy_queue *self, PyObject *rec, const fq_result *r)
{
    PyObject *seq = PyTuple_GET_ITEM(rec, REC_SEQ);
    Py_ssize_t n = rec_len(rec);
    PyObject *mv = PyMemoryView_FromMemory((char *)r->data, (Py_ssize_t)r->len,
                                           PyBUF_READ);
    PyObject *reply = mv ? PyObject_CallOneArg(self->st->loads, mv) : NULL;
    Py_XDECREF(mv);
    if (reply && (!PyTuple_Check(reply) || PyTuple_GET_SIZE(reply) != 3 ||
                  !PyList_Check(PyTuple_GET_ITEM(reply, 0)) ||
                  PyList_GET_SIZE(PyTuple_GET_ITEM(reply, 0)) != n)) {
        Py_CLEAR(reply);
        PyErr_SetString(PyExc_RuntimeError, "forkqueue: malformed reply");
    }
    if (reply == NULL) {
        PyObject *tb = fqpy_format_current_exc(self->st, NULL);
        PyObject *full =
            tb ? PyUnicode_FromFormat(
                     "Result could not be unpickled in the parent:\n%U", tb)
               : NULL;
        Py_XDECREF(tb);
        if (full == NULL)
            return -1;
        int rc = place_job_error(self, rec, full, 0, 0, 0);
        Py_DECREF(full);
        return rc;
    }
    PyObject *values = PyTuple_GET_ITEM(reply, 0);
    PyObject *errors = PyTuple_GET_ITEM(reply, 1);
    if (PyTuple_GET_ITEM(rec, REC_MEASURED) == Py_True && n > 0) {
        Py_ssize_t key = PyLong_AsSsize_t(PyTuple_GET_ITEM(rec, REC_KEY));
        double ns = PyLong_AsDouble(PyTuple_GET_ITEM(reply, 2));
        if (PyErr_Occurred()) {
            PyErr_Clear();
        } else if (key >= 0 && key < self->item_ns_cap) {
            double per = ns / (double)n;
            double old = self->item_ns[key];
            self->item_ns[key] = old > 0 ? 0.5 * old + 0.5 * per : per;
            if (n > self->batch_seen[key])
                self->batch_seen[key] = n;
        }
    }
    int rc = 0;
    if (errors == Py_None && seq == Py_None && n > 1) {
        /* All succeeded: one slot for the batch, not one per result. */
        PyObject *ids = PyTuple_GET_ITEM(rec, REC_IDS);
        long long first = 0;
        if (!PyList_Check(ids)) {
            first = PyLong_AsLongLong(ids);
            ids = NULL;
        }
        rc =
            fqpy_store_push(&self->store, ids, first, values, FQPY_BATCH, NULL);
        Py_DECREF(reply);
        return rc;
    }
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        PyObject *pair = NULL;
        if (errors != Py_None && PyDict_Check(errors)) {
            PyObject *k = PyLong_FromSsize_t(i);
            if (k == NULL) {
                rc = -1;
                break;
            }
            pair = PyDict_GetItemWithError(errors, k);
            Py_DECREF(k);
            if (pair == NULL && PyErr_Occurred()) {
                rc = -1;
                break;
            }
        }
        long long num;
        PyObject *id = rec_id_or_num(rec, i, &num);
        if (pair && PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 &&
            PyUnicode_Check(PyTuple_GET_ITEM(pair, 1)))
            rc = place_error(self, id, num, PyTuple_GET_ITEM(pair, 0),
                             PyTuple_GET_ITEM(pair, 1), seq);
        else
            rc = place(self, id, num, PyList_GET_ITEM(values, i), FQPY_READY,
                       seq);
    }
    Py_DECREF(reply);
    return rc;
}

/* The items of a batch whose worker died run again one by one, so that the
 * death is charged to the item that caused it. In ordered mode each gets a
 * placeholder slot now, keeping its place among the results. */
static int rerun_items(fqpy_queue *self, PyObject *rec)
{
    PyObject *args = PyTuple_GET_ITEM(rec, REC_ARGS);
    PyObject *kwargs = PyTuple_GET_ITEM(rec, REC_KWARGS);
    Py_ssize_t key = PyLong_AsSsize_t(PyTuple_GET_ITEM(rec, REC_KEY));
    int flat = PyTuple_GET_ITEM(rec, REC_FLAT) == Py_True;
    Py_ssize_t n = rec_len(rec);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *id = rec_id(rec, i);
        if (id == NULL)
            return -1;
        PyObject *seq = NULL;
        if (self->ordered) {
            uint64_t s;
            if (fqpy_store_push(&self->store, id, 0, NULL, FQPY_PENDING, &s) <
                    0 ||
                (seq = PyLong_FromUnsignedLongLong(s)) == NULL) {
                Py_DECREF(id);
                return -1;
            }
        }
        PyObject *one_id = PyList_New(1);
        PyObject *one_args = PyList_New(1);
        int rc = -1;
        if (one_id && one_args) {
            PyList_SET_ITEM(one_id, 0, Py_NewRef(id));
            PyList_SET_ITEM(one_args, 0, Py_NewRef(PyList_GET_ITEM(args, i)));
            rc = submit_full(self, key, one_id, one_args,
                             kwargs == Py_None ? NULL : kwargs, 0, seq, flat);
        }
        Py_DECREF(id);
        Py_XDECREF(one_id);
        Py_XDECREF(one_args);
        Py_XDECREF(seq);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int handle_outcome(fqpy_queue *self, const fq_result *r)
{
    PyObject *cid = PyLong_FromUnsignedLongLong(r->id);
    if (cid == NULL)
        return -1;
    PyObject *rec = PyDict_GetItemWithError(self->jobs, cid);
    if (rec == NULL) {
        Py_DECREF(cid);
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(rec);
    int rc = PyDict_DelItem(self->jobs, cid);
    Py_DECREF(cid);
    self->outstanding--;
    self->items_out -= rec_len(rec);
    if (rc < 0)
        goto out;

    if (r->status == 0) {
        rc = handle_reply(self, rec, r);
    } else if (rec_len(rec) > 1 &&
               (r->status == FQ_ECRASHED || r->status == FQ_ETIMEDOUT ||
                r->status == FQ_EPROTO || r->status == FQ_ETOOBIG ||
                r->status == FQ_ENOMEM)) {
        rc = rerun_items(self, rec);
    } else {
        const char *text =
            r->data && r->len ? (const char *)r->data : fq_strerror(r->status);
        PyObject *tb;
        if (r->status == FQ_ECRASHED)
            tb = PyUnicode_FromFormat("The worker running this job died: %s\n",
                                      text);
        else if (r->status == FQ_EJOB || r->status == FQ_EINIT)
            tb =
                PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
        else
            tb = PyUnicode_FromFormat("%s\n", text);
        if (tb == NULL) {
            rc = -1;
            goto out;
        }
        rc = place_job_error(self, rec, tb, r->signo, r->exit_status,
                             r->status == FQ_ECRASHED);
        Py_DECREF(tb);
    }
out:
    Py_DECREF(rec);
    return rc;
}

Py_ssize_t fqpy_take_ready(fqpy_queue *self)
{
    Py_ssize_t n = 0;
    fq_result r;
    for (;;) {
        int rc = fq_take(self->q, &r);
        if (rc == 0)
            return n;
        if (rc < 0) {
            core_error(self, rc, "taking results");
            return -1;
        }
        if (handle_outcome(self, &r) < 0)
            return -1;
        n++;
    }
}

/* Stops everything now: queued jobs are dropped, workers terminated and
 * reaped. Keeps a pending exception as it is. */
void fqpy_cancel(fqpy_queue *self)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    self->finished = 1;
    drop_deferred(self);
    if (self->opened) {
        fq_queue q = self->q;
        self->opened = 0;
        Py_BEGIN_ALLOW_THREADS
        fq_cancel(q);
        fq_queue_free(q);
        Py_END_ALLOW_THREADS
    }
    if (self->live_prev) {
        *self->live_prev = self->live_next;
        if (self->live_next)
            self->live_next->live_prev = self->live_prev;
        self->live_prev = NULL;
        self->live_next = NULL;
    }
    self->outstanding = 0;
    self->items_out = 0;
    PyDict_Clear(self->jobs);
    PySet_Clear(self->live_ids);
    fqpy_store_clear(&self->store);
    PyErr_Clear();
    PyErr_Restore(t, v, tb);
}

Py_ssize_t fqpy_drive(fqpy_queue *self, double timeout_s)
{
    if (fqpy_flush(self) < 0)
        return -1;
    Py_ssize_t n = fqpy_take_ready(self);
    if (n != 0 || self->outstanding == 0)
        return n;
    /* fq_take() made one pass over the channels: nothing more to do. */
    if (timeout_s == 0)
        return 0;
    double deadline = timeout_s < 0 ? -1 : fqpy_now() + timeout_s;
    for (;;) {
        int ms = SLICE_MS;
        if (deadline >= 0) {
            double rem = deadline - fqpy_now();
            if (rem <= 0)
                return 0;
            if (rem * 1000 < ms)
                ms = (int)ceil(rem * 1000);
        }
        int rc;
        fq_queue q = self->q;
        Py_BEGIN_ALLOW_THREADS
        rc = fq_poll(q, ms);
        Py_END_ALLOW_THREADS
        /* Also after a plain timeout: the signal may have been caught by
         * another thread, which does not interrupt our poll(). */
        if (PyErr_CheckSignals() < 0) {
            if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
                fqpy_cancel(self);
            return -1;
        }
        if (rc < 0 && rc != FQ_EINTR) {
            core_error(self, rc, "waiting for results");
            return -1;
        }
        n = fqpy_take_ready(self);
        if (n != 0 || self->outstanding == 0 || self->woken) {
            self->woken = 0;
            return n;
        }
    }
}

int fqpy_raise_pending(fqpy_queue *self)
{
    fqpy_store *s = &self->store;
    if (s->nerrors == 0)
        return 0;
    for (size_t i = 0; i < s->count; i++) {
        fqpy_entry *e = fqpy_store_at(s, s->seq0 + i);
        if (e->state == FQPY_ERROR) {
            PyObject *exc = e->value;
            e->value = Py_NewRef(Py_None);
            e->state = FQPY_READY;
            s->nerrors--;
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
            return -1;
        }
    }
    return 0;
}

PyObject *fqpy_pop_result(fqpy_queue *self)
{
    fqpy_entry *e = fqpy_store_front(&self->store);
    if (e == NULL || e->state == FQPY_PENDING)
        return NULL;
    if (e->state == FQPY_ERROR) {
        /* Raised once; the slot then reads None. */
        PyObject *exc = e->value;
        e->value = Py_NewRef(Py_None);
        e->state = FQPY_READY;
        self->store.nerrors--;
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return NULL;
    }
    if (e->state == FQPY_BATCH) {
        /* One result out of a batch slot; the slot goes with the last. */
        Py_ssize_t i = e->pos;
        PyObject *value = Py_NewRef(PyList_GET_ITEM(e->value, i));
        PyObject *id = NULL;
        if (self->retn_ids || self->track_ids) {
            if ((id = fqpy_entry_id(e, i)) == NULL) {
                Py_DECREF(value);
                return NULL;
            }
        }
        e->pos++;
        self->store.items--;
        if (e->pos == PyList_GET_SIZE(e->value)) {
            fqpy_entry out;
            fqpy_store_pop(&self->store, &out);
            Py_XDECREF(out.id);
            Py_DECREF(out.value);
        }
        if (id == NULL)
            return value;
        if (self->track_ids && PySet_Discard(self->live_ids, id) < 0)
            PyErr_Clear();
        if (!self->retn_ids) {
            Py_DECREF(id);
            return value;
        }
        PyObject *t = PyTuple_New(2);
        if (t == NULL) {
            Py_DECREF(id);
            Py_DECREF(value);
            return NULL;
        }
        PyTuple_SET_ITEM(t, 0, id);
        PyTuple_SET_ITEM(t, 1, value);
        return t;
    }
    fqpy_entry out;
    fqpy_store_pop(&self->store, &out);
    if (!self->retn_ids && !self->track_ids) {
        Py_XDECREF(out.id);
        return out.value;
    }
    if (out.id == NULL && (out.id = PyLong_FromLongLong(out.num)) == NULL) {
        Py_DECREF(out.value);
        return NULL;
    }
    if (self->track_ids && PySet_Discard(self->live_ids, out.id) < 0)
        PyErr_Clear();
    if (!self->retn_ids) {
        Py_DECREF(out.id);
        return out.value;
    }
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
        Py_DECREF(out.id);
        Py_DECREF(out.value);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, out.id);
    PyTuple_SET_ITEM(t, 1, out.value);
    return t;
}

/* ---- the type ----------------------------------------------------------- */

static PyObject *queue_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    fqpy_state *st = fqpy_state_of_type(type);
    if (st == NULL)
        return NULL;
    fqpy_queue *self = (fqpy_queue *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->st = st;
    self->registry = PyList_New(0);
    self->keycache = PyDict_New();
    self->jobs = PyDict_New();
    self->live_ids = PySet_New(NULL);
    if (!self->registry || !self->keycache || !self->jobs || !self->live_ids) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int register_env(fqpy_queue *self, PyObject *env)
{
    PyObject *values = PyMapping_Values(env);
    if (values == NULL)
        return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (PyCallable_Check(v) && fqpy_func_key(self, v) < 0) {
            rc = -1;
            break;
        }
    }
    Py_DECREF(values);
    return rc;
}

static int queue_init(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"numforks", "initfunc", "reraise", "ordered",
                             "retn_ids", "env",      NULL};
    PyObject *numforks = NULL, *initfunc = Py_None, *env = Py_None;
    int reraise = 1, ordered = 1, retn_ids = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOpppO:ForkQueue", kwlist,
                                     &numforks, &initfunc, &reraise, &ordered,
                                     &retn_ids, &env))
        return -1;
    if (self->opened || self->finished) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ForkQueue.__init__() may be called only once");
        return -1;
    }
    long n = 16;
    if (numforks) {
        if (PyBool_Check(numforks) || !PyLong_Check(numforks)) {
            PyErr_Format(PyExc_TypeError, "numforks must be an int, not %.100s",
                         Py_TYPE(numforks)->tp_name);
            return -1;
        }
        int overflow;
        n = PyLong_AsLongAndOverflow(numforks, &overflow);
        if (n == -1 && PyErr_Occurred())
            return -1;
        if (overflow > 0 || n > 4096) {
            PyErr_SetString(PyExc_ValueError, "numforks is too large");
            return -1;
        }
        if (overflow < 0 || n < 1) {
            PyErr_SetString(PyExc_ValueError, "numforks must be at least 1");
            return -1;
        }
    }
    if (initfunc != Py_None && !PyCallable_Check(initfunc)) {
        PyErr_SetString(PyExc_TypeError, "initfunc must be callable or None");
        return -1;
    }
    if (env != Py_None && !PyMapping_Check(env)) {
        PyErr_SetString(PyExc_TypeError, "env must be a mapping or None");
        return -1;
    }
    self->numforks = (int)n;
    self->reraise = reraise;
    self->ordered = ordered;
    self->retn_ids = retn_ids;
    Py_XSETREF(self->initfunc, Py_NewRef(initfunc));
    /* Callables of env are registered before the fork, so the workers
     * know them from the start (no refork needed). */
    if (env != Py_None && register_env(self, env) < 0)
        return -1;
    self->last_func = NULL;

    fq_options o = {0};
    o.workers = self->numforks;
    o.ordered = self->ordered;
    /* Only with an initfunc: the core counts deaths during init. */
    if (initfunc != Py_None)
        o.init = fqpy_worker_init;
    o.udata = self;
    o.return_on_eintr = 1;
    o.hooks.prepare = hook_prepare;
    o.hooks.parent = hook_parent;
    o.hooks.child = hook_child;
    o.hook_arg = self;
    int rc = fq_queue_new(&self->q, &o);
    if (rc < 0) {
        core_error(self, rc, "starting the workers");
        return -1;
    }
    self->opened = 1;
    self->owner_pid = getpid();
    self->known = PyList_GET_SIZE(self->registry);
    self->last_refork = -1e9; /* the first refork is never delayed */
    fqpy_state *st = self->st;
    self->live_next = st->live;
    if (st->live)
        st->live->live_prev = &self->live_next;
    st->live = self;
    self->live_prev = &st->live;
    return 0;
}

static int queue_traverse(fqpy_queue *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->initfunc);
    Py_VISIT(self->registry);
    Py_VISIT(self->keycache);
    Py_VISIT(self->jobs);
    Py_VISIT(self->live_ids);
    for (size_t i = 0; i < self->ndeferred; i++) {
        Py_VISIT(self->deferred[i].rec);
        Py_VISIT(self->deferred[i].payload);
    }
    return fqpy_store_traverse(&self->store, visit, arg);
}

static void close_queue(fqpy_queue *self)
{
    if (self->live_prev) {
        *self->live_prev = self->live_next;
        if (self->live_next)
            self->live_next->live_prev = self->live_prev;
        self->live_prev = NULL;
        self->live_next = NULL;
    }
    if (self->opened) {
        self->opened = 0;
        self->finished = 1;
        /* Returns FQ_EFOREIGN without touching anything in a forked child
         * that inherited the queue. */
        fq_queue_free(self->q);
    }
}

static int queue_clear(fqpy_queue *self)
{
    close_queue(self);
    drop_deferred(self);
    self->last_func = NULL;
    Py_CLEAR(self->initfunc);
    Py_CLEAR(self->registry);
    Py_CLEAR(self->keycache);
    Py_CLEAR(self->jobs);
    Py_CLEAR(self->live_ids);
    fqpy_store_clear(&self->store);
    return 0;
}

static void queue_dealloc(fqpy_queue *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    queue_clear(self);
    PyMem_Free(self->item_ns);
    PyMem_Free(self->batch_seen);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---- methods ------------------------------------------------------------ */

/* Ids are tracked (for the duplicate check) only once a caller has given
 * one: until then automatic ids cannot collide, and the common case pays
 * nothing per item. Starting collects the ids of every result to come. */
static int add_rec_ids(fqpy_queue *self, PyObject *rec)
{
    Py_ssize_t n = rec_len(rec);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *id = rec_id(rec, i);
        int rc = id ? PySet_Add(self->live_ids, id) : -1;
        Py_XDECREF(id);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int start_tracking_ids(fqpy_queue *self)
{
    PyObject *k, *rec;
    Py_ssize_t pos = 0;
    /* Re-run items (seq set) already have their slot in the store. */
    while (PyDict_Next(self->jobs, &pos, &k, &rec))
        if (PyTuple_GET_ITEM(rec, REC_SEQ) == Py_None &&
            add_rec_ids(self, rec) < 0)
            return -1;
    for (size_t i = 0; i < self->ndeferred; i++)
        if (add_rec_ids(self, self->deferred[i].rec) < 0)
            return -1;
    for (size_t i = 0; i < self->store.count; i++) {
        fqpy_entry *e = fqpy_store_at(&self->store, self->store.seq0 + i);
        Py_ssize_t n = fqpy_entry_items(e);
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *id = fqpy_entry_id(e, e->pos + k);
            int rc = id ? PySet_Add(self->live_ids, id) : -1;
            Py_XDECREF(id);
            if (rc < 0)
                return -1;
        }
    }
    self->track_ids = 1;
    return 0;
}

static PyObject *normalize_kwargs(PyObject *argsv)
{
    if (argsv == NULL || argsv == Py_None)
        return NULL;
    if (PyDict_CheckExact(argsv))
        return Py_NewRef(argsv);
    return PyObject_CallOneArg((PyObject *)&PyDict_Type, argsv);
}

static PyObject *queue_add(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "args", "argsv", "jobid", NULL};
    PyObject *func, *fargs, *argsv = Py_None, *jobid = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO:add", kwlist, &func,
                                     &fargs, &argsv, &jobid))
        return NULL;
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "func must be callable, not %.100s",
                     Py_TYPE(func)->tp_name);
        return NULL;
    }
    if (fqpy_enter(self, 0) < 0)
        return NULL;
    PyObject *id = NULL, *kwargs = NULL, *ids = NULL, *argslist = NULL;
    PyObject *ret = NULL;
    int added = 0;
    if (jobid == Py_None) {
        if ((id = fqpy_next_auto_id(self)) == NULL)
            goto out;
    } else {
        if (!self->track_ids && start_tracking_ids(self) < 0)
            goto out;
        int r = PySet_Contains(self->live_ids, jobid);
        if (r < 0)
            goto out;
        if (r) {
            PyErr_Format(PyExc_ValueError,
                         "job id %R is already in use (its result has not "
                         "been yielded yet)",
                         jobid);
            goto out;
        }
        if (PySet_Add(self->live_ids, jobid) < 0)
            goto out;
        id = Py_NewRef(jobid);
    }
    added = 1;
    if (argsv != Py_None && (kwargs = normalize_kwargs(argsv)) == NULL)
        goto out;
    Py_ssize_t key = fqpy_func_key(self, func);
    if (key < 0)
        goto out;
    ids = PyList_New(1);
    argslist = PyList_New(1);
    if (!ids || !argslist)
        goto out;
    PyList_SET_ITEM(ids, 0, Py_NewRef(id));
    PyList_SET_ITEM(argslist, 0, Py_NewRef(fargs));
    if (fqpy_submit(self, key, ids, argslist, kwargs, 0, 0) < 0)
        goto out;
    ret = Py_NewRef(Py_None);
out:
    if (ret == NULL && added && id && self->track_ids && self->live_ids) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (PySet_Discard(self->live_ids, id) < 0)
            PyErr_Clear();
        PyErr_Restore(t, v, tb);
    }
    Py_XDECREF(id);
    Py_XDECREF(kwargs);
    Py_XDECREF(ids);
    Py_XDECREF(argslist);
    fqpy_leave(self);
    return ret;
}

/* timeout: None (no limit) or a number of seconds. */
static int parse_timeout(PyObject *o, double *out)
{
    if (o == Py_None) {
        *out = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(o);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(t)) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    *out = t < 0 ? 0 : t;
    return 0;
}

static PyObject *queue_poll(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = NULL;
    double t = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:poll", kwlist, &timeout))
        return NULL;
    if (timeout && parse_timeout(timeout, &t) < 0)
        return NULL;
    if (fqpy_enter(self, 0) < 0)
        return NULL;
    Py_ssize_t n = fqpy_drive(self, t);
    PyObject *ret = NULL;
    if (n >= 0 && fqpy_raise_pending(self) == 0)
        ret = PyBool_FromLong(n > 0);
    fqpy_leave(self);
    return ret;
}

static PyObject *queue_wait(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (fqpy_enter(self, 0) < 0)
        return NULL;
    PyObject *ret = NULL;
    for (;;) {
        if (fqpy_drive(self, -1) < 0 || fqpy_raise_pending(self) < 0)
            goto out;
        if (self->outstanding == 0 && self->ndeferred == 0)
            break;
    }
    ret = Py_NewRef(Py_None);
out:
    fqpy_leave(self);
    return ret;
}

static PyObject *queue_yield_results(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (fqpy_check_usable(self) < 0)
        return NULL;
    return fqpy_iter_new(self, FQPY_IT_AVAILABLE, NULL, NULL, NULL);
}

static PyObject *queue_results(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"poll", "interval", NULL};
    int poll = 0;
    PyObject *interval = Py_None;
    double t;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pO:results", kwlist, &poll,
                                     &interval))
        return NULL;
    if (parse_timeout(interval, &t) < 0)
        return NULL;
    if (fqpy_check_usable(self) < 0)
        return NULL;
    return fqpy_iter_new(self, poll ? FQPY_IT_AVAILABLE : FQPY_IT_ALL, NULL,
                         NULL, NULL);
}

static PyObject *start_process(fqpy_queue *self, PyObject *func,
                               PyObject *iterable, PyObject *argsv, int mode)
{
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "func must be callable, not %.100s",
                     Py_TYPE(func)->tp_name);
        return NULL;
    }
    if (fqpy_check_usable(self) < 0)
        return NULL;
    PyObject *kwargs = NULL;
    if (argsv != Py_None && (kwargs = normalize_kwargs(argsv)) == NULL)
        return NULL;
    PyObject *source = PyObject_GetIter(iterable);
    PyObject *it = NULL;
    if (source)
        it = fqpy_iter_new(self, mode, func, source, kwargs);
    Py_XDECREF(source);
    Py_XDECREF(kwargs);
    return it;
}

static PyObject *queue_process(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "iterable", "argsv", "interval", NULL};
    PyObject *func, *iterable, *argsv = Py_None, *interval = Py_None;
    double t;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO:process", kwlist, &func,
                                     &iterable, &argsv, &interval))
        return NULL;
    if (parse_timeout(interval, &t) < 0)
        return NULL;
    return start_process(self, func, iterable, argsv, FQPY_IT_PROCESS);
}

static PyObject *queue_map(fqpy_queue *self, PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "map() needs a function");
        return NULL;
    }
    PyObject *func = PyTuple_GET_ITEM(args, 0);
    if (n == 2)
        return start_process(self, func, PyTuple_GET_ITEM(args, 1), Py_None,
                             FQPY_IT_MAP1);
    PyObject *rest = PyTuple_GetSlice(args, 1, n);
    if (rest == NULL)
        return NULL;
    PyObject *zip = PyObject_Call((PyObject *)&PyZip_Type, rest, NULL);
    Py_DECREF(rest);
    if (zip == NULL)
        return NULL;
    PyObject *it = start_process(self, func, zip, Py_None, FQPY_IT_PROCESS);
    Py_DECREF(zip);
    return it;
}

static PyObject *queue_finish(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (self->finished)
        Py_RETURN_NONE;
    if (fqpy_enter(self, 0) < 0)
        return NULL;
    PyObject *ret = NULL;
    /* Run what is queued (re-running the items of crashed batches), taking
     * outcomes as they come so that Ctrl-C stays prompt. */
    for (;;) {
        if (fqpy_drive(self, -1) < 0)
            goto out;
        if (self->outstanding == 0 && self->ndeferred == 0)
            break;
        /* Results are dropped anyway: do not let them pile up. */
        fqpy_store_clear(&self->store);
    }
    int rc;
    fq_queue q = self->q;
    Py_BEGIN_ALLOW_THREADS
    rc = fq_finish(q);
    Py_END_ALLOW_THREADS
    fqpy_cancel(self); /* nothing left to cancel: frees and drops */
    if (rc < 0 && rc != FQ_EFINISHED) {
        core_error(self, rc, "finishing");
        goto out;
    }
    ret = Py_NewRef(Py_None);
out:
    fqpy_leave(self);
    return ret;
}

static PyObject *queue_cancel(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (self->finished)
        Py_RETURN_NONE;
    if (fqpy_enter(self, 0) < 0)
        return NULL;
    fqpy_cancel(self);
    fqpy_leave(self);
    Py_RETURN_NONE;
}

static PyObject *queue_enter(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (fqpy_check_usable(self) < 0)
        return NULL;
    return Py_NewRef(self);
}

static PyObject *queue_exit(fqpy_queue *self, PyObject *args)
{
    PyObject *et =
        PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None;
    if (et == Py_None)
        return queue_finish(self, NULL);
    /* The body raised: stop at once rather than run the rest. */
    if (!self->finished && fqpy_enter(self, 1) == 0) {
        fqpy_cancel(self);
        fqpy_leave(self);
    }
    PyErr_Clear();
    Py_RETURN_FALSE;
}

static PyObject *queue_worker_pids(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (fqpy_check_usable(self) < 0)
        return NULL;
    pid_t pids[4096];
    int n = fq_worker_pids(self->q, pids, 4096);
    if (n < 0)
        return core_error(self, n, "listing workers");
    if (n > 4096)
        n = 4096;
    PyObject *l = PyList_New(n);
    if (l == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *p = PyLong_FromLong(pids[i]);
        if (p == NULL) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, p);
    }
    return l;
}

static PyObject *queue_stats(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (fqpy_check_usable(self) < 0)
        return NULL;
    fq_stats s;
    int rc = fq_stats_get(self->q, &s);
    if (rc < 0)
        return core_error(self, rc, "reading statistics");
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsisnsn}", "submitted",
        (unsigned long long)s.submitted, "finished",
        (unsigned long long)s.finished, "taken", (unsigned long long)s.taken,
        "pending", (unsigned long long)s.pending, "running",
        (unsigned long long)s.running, "crashed", (unsigned long long)s.crashed,
        "timedout", (unsigned long long)s.timedout, "respawns",
        (unsigned long long)s.respawns, "workers", s.workers, "registry",
        PyList_GET_SIZE(self->registry), "stored",
        (Py_ssize_t)self->store.items);
}

static PyObject *get_finished(fqpy_queue *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->finished);
}

/* The one method any thread may call while another waits on the queue (the
 * GIL is all it needs): makes that wait return early, or the next one. */
static PyObject *queue_wakeup(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (!self->opened)
        Py_RETURN_NONE; /* finished: nothing waits any more */
    self->woken = 1;
    int rc = fq_wakeup(self->q);
    if (rc < 0 && rc != FQ_ECLOSED)
        return core_error(self, rc, "waking the queue");
    Py_RETURN_NONE;
}

static PyMethodDef queue_methods[] = {
    {"add", (PyCFunction)(void (*)(void))queue_add,
     METH_VARARGS | METH_KEYWORDS,
     "add(func, args, argsv=None, jobid=None)\n--\n\n"
     "Queue the call func(*args, **argsv) with the given id (default: the\n"
     "next integer of a counter starting at 0). Raises ValueError if the id\n"
     "belongs to a job whose result has not been yielded yet."},
    {"poll", (PyCFunction)(void (*)(void))queue_poll,
     METH_VARARGS | METH_KEYWORDS,
     "poll(timeout=0)\n--\n\n"
     "Collect results arriving within timeout seconds (0: do not wait,\n"
     "None: until one arrives). Returns True if any arrived."},
    {"wait", (PyCFunction)queue_wait, METH_NOARGS,
     "wait()\n--\n\nRun until every added job has finished; results stay "
     "stored."},
    {"yield_results", (PyCFunction)queue_yield_results, METH_NOARGS,
     "yield_results()\n--\n\nIterate over the results available now, "
     "without blocking."},
    {"results", (PyCFunction)(void (*)(void))queue_results,
     METH_VARARGS | METH_KEYWORDS,
     "results(poll=False, interval=None)\n--\n\n"
     "Iterate over the remaining results, waiting for them (poll=False) or\n"
     "only over those available now (poll=True)."},
    {"process", (PyCFunction)(void (*)(void))queue_process,
     METH_VARARGS | METH_KEYWORDS,
     "process(func, iterable, argsv=None, interval=None)\n--\n\n"
     "Lazily run func(*item, **argsv) for each item of iterable, yielding\n"
     "results as they become available, then the rest."},
    {"map", (PyCFunction)queue_map, METH_VARARGS,
     "map(func, *iterables)\n--\n\nSame as process(func, "
     "zip(*iterables)): a lazy iterator."},
    {"finish", (PyCFunction)queue_finish, METH_NOARGS,
     "finish()\n--\n\nRun every queued job, then stop and reap the workers.\n"
     "Results not yet taken are dropped. Harmless when called again."},
    {"cancel", (PyCFunction)queue_cancel, METH_NOARGS,
     "cancel()\n--\n\nDrop queued jobs, stop the workers now (SIGTERM, then\n"
     "SIGKILL) and reap them. The queue is finished afterwards."},
    {"__enter__", (PyCFunction)queue_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)queue_exit, METH_VARARGS, NULL},
    {"_worker_pids", (PyCFunction)queue_worker_pids, METH_NOARGS,
     "Pids of the live workers (for tests and monitoring)."},
    {"_wakeup", (PyCFunction)queue_wakeup, METH_NOARGS,
     "_wakeup()\n--\n\nThread-safe: makes a poll() or wait() running in "
     "another thread return early (or the next one, if none runs)."},
    {"_stats", (PyCFunction)queue_stats, METH_NOARGS,
     "Counters of the core queue (for tests and monitoring)."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef queue_members[] = {
    {"numforks", T_INT, offsetof(fqpy_queue, numforks), READONLY,
     "Number of worker processes."},
    {"ordered", T_BOOL, offsetof(fqpy_queue, ordered), READONLY, NULL},
    {"reraise", T_BOOL, offsetof(fqpy_queue, reraise), READONLY, NULL},
    {"retn_ids", T_BOOL, offsetof(fqpy_queue, retn_ids), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(fqpy_queue, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyGetSetDef queue_getset[] = {
    {"finished", (getter)get_finished, NULL,
     "True once the queue is finished (no further use possible).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot queue_slots[] = {
    {Py_tp_doc,
     "ForkQueue(numforks=16, initfunc=None, reraise=True, ordered=True, "
     "retn_ids=False, env=None)\n--\n\n"
     "A pool of numforks worker processes forked from this one.\n\n"
     "Jobs run any callable (lambdas and closures included) with picklable\n"
     "arguments and results. Use it as a context manager, or call finish()."},
    {Py_tp_new, queue_new},
    {Py_tp_init, queue_init},
    {Py_tp_dealloc, queue_dealloc},
    {Py_tp_traverse, queue_traverse},
    {Py_tp_clear, queue_clear},
    {Py_tp_methods, queue_methods},
    {Py_tp_members, queue_members},
    {Py_tp_getset, queue_getset},
    {0, NULL}};

PyType_Spec fqpy_queue_spec = {
    .name = "forkqueue.ForkQueue",
    .basicsize = sizeof(fqpy_queue),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = queue_slots,
};
