/*
 * Submission: job records, ids, payloads, and jobs deferred until a refork.
 *
 * Job record (a tuple, value of self->jobs[core id]):
 *   (ids, argslist, kwargs, key, measured, seq, flat, call, first, timeout)
 * ids is a list of Python ids, or an int: the first of len(argslist)
 * consecutive automatic ids. seq is None, or the sequence number of the
 * placeholder slot in the call's store that the outcome fills (an item of a
 * crashed batch re-run alone, ordered mode). flat: argslist holds single
 * arguments, not tuples (the common map() case). call: the fqpy_call the
 * results belong to. first: index in the call's input of the first item
 * (None for add()). timeout: the per-item limit in ms, or -1.
 *
 * The record is stored under a core id we choose (FQ_JOB_ID) before the job
 * is submitted, so no bookkeeping can fail after a successful submission
 * (an outcome without a record would leave wait() waiting for ever).
 */
#include "../../fqpy.h"

#include <limits.h>

/* A batch aims at this much worker time: long enough to hide the per-job
 * costs, short enough that results stream and the tail stays short. */
#define TARGET_BATCH_NS 5e6
#define MAX_BATCH 8192

/* Minimum time between two reforks caused by add() of new callables. */
#define REFORK_MIN_INTERVAL 0.01

int64_t fqpy_next_batch(fqpy_queue *self, Py_ssize_t key)
{
    /* Recycling counts Python jobs: one item per core job. */
    if (self->max_jobs_per_worker)
        return 1;
    double est = self->core.reg.item_ns[key];
    if (est <= 0)
        return 1;
    double b = TARGET_BATCH_NS / est;
    /* Grow by at most 4x per observed batch, so a slow item that follows
     * fast ones is not buried in a huge batch. */
    double cap = (double)self->core.reg.batch_seen[key] * 4;
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

/* ---- records ------------------------------------------------------------ */

PyObject *fqpy_rec_id_or_num(PyObject *rec, Py_ssize_t i, long long *num)
{
    PyObject *ids = PyTuple_GET_ITEM(rec, REC_IDS);
    if (PyList_Check(ids)) {
        *num = 0;
        return PyList_GET_ITEM(ids, i);
    }
    *num = PyLong_AsLongLong(ids) + i;
    return NULL;
}

PyObject *fqpy_rec_id(PyObject *rec, Py_ssize_t i)
{
    PyObject *ids = PyTuple_GET_ITEM(rec, REC_IDS);
    if (PyList_Check(ids))
        return Py_NewRef(PyList_GET_ITEM(ids, i));
    long long first = PyLong_AsLongLong(ids);
    if (first == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(first + i);
}

Py_ssize_t fqpy_rec_len(PyObject *rec)
{
    return PyList_GET_SIZE(PyTuple_GET_ITEM(rec, REC_ARGS));
}

void fqpy_rec_release(fqpy_queue *self, PyObject *rec)
{
    self->items_out -= fqpy_rec_len(rec);
    ((fqpy_call *)PyTuple_GET_ITEM(rec, REC_CALL))->jobs_out--;
    Py_ssize_t key = PyLong_AsSsize_t(PyTuple_GET_ITEM(rec, REC_KEY));
    fqpy_reg_use(&self->core.reg, key, -1);
}

/* ---- submission --------------------------------------------------------- */

/* The core limit of a job: the per-item limit for one item; for a batch,
 * that plus four times the measured time of its items, so a batch of
 * normal items is never killed (and if it is, its items re-run one by one,
 * each with the per-item limit). */
static int job_timeout_ms(fqpy_queue *self, PyObject *rec)
{
    long t = PyLong_AsLong(PyTuple_GET_ITEM(rec, REC_TIMEOUT));
    if (t <= 0)
        return -1;
    Py_ssize_t n = fqpy_rec_len(rec);
    if (n > 1) {
        Py_ssize_t key = PyLong_AsSsize_t(PyTuple_GET_ITEM(rec, REC_KEY));
        double est = self->core.reg.item_ns[key];
        double extra = (double)n * est * 4 / 1e6 + 1;
        double total = (double)t + extra;
        t = total > INT_MAX ? INT_MAX : (long)total;
    }
    return (int)t;
}

static int submit_now(fqpy_queue *self, PyObject *rec, PyObject *payload)
{
    uint64_t id = self->next_core_id++;
    PyObject *cid = PyLong_FromUnsignedLongLong(id);
    if (cid == NULL || PyDict_SetItem(self->jobs, cid, rec) < 0) {
        Py_XDECREF(cid);
        return -1;
    }
    fq_job_options jo = {0};
    jo.id = id;
    jo.flags = FQ_JOB_ID;
    jo.timeout_ms = job_timeout_ms(self, rec);
    FQPY_LOCK(&self->core);
    int rc = fq_submit(self->core.q,
                       self->thread_kind ? fqpy_thread_job : fqpy_worker_job,
                       PyBytes_AS_STRING(payload),
                       (size_t)PyBytes_GET_SIZE(payload), &jo, NULL);
    FQPY_UNLOCK(&self->core);
    if (rc < 0) {
        if (PyDict_DelItem(self->jobs, cid) < 0)
            PyErr_Clear();
        Py_DECREF(cid);
        fqpy_core_error(&self->core, rc, "submitting a job");
        return -1;
    }
    Py_DECREF(cid);
    self->outstanding++;
    return 0;
}

void fqpy_drop_deferred(fqpy_queue *self)
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

/* The queue can never run them (its initfunc failed): each deferred job
 * gets that error as its outcome. */
static int fail_deferred(fqpy_queue *self)
{
    int rc = 0;
    while (self->ndeferred > 0 && rc == 0) {
        fqpy_deferred d = self->deferred[0];
        self->ndeferred--;
        memmove(self->deferred, self->deferred + 1,
                self->ndeferred * sizeof(*self->deferred));
        fqpy_rec_release(self, d.rec);
        rc = fqpy_fail_rec(self, d.rec,
                           "initfunc failed in a worker; the queue is stopped "
                           "and this job never ran\n");
        Py_DECREF(d.rec);
        Py_DECREF(d.payload);
    }
    return rc;
}

int fqpy_flush(fqpy_queue *self)
{
    if (self->ndeferred == 0)
        return 0;
    if (self->core.reg.nunknown > 0) {
        /* The busy workers retire when their jobs end while the new ones
         * start at once. Bound the processes to 2 * numforks: the workers
         * that would outlive this refork (old ones still retiring, plus
         * current ones with jobs, at most min(running, numforks)) must be
         * at most numforks, or the jobs wait for some to exit. */
        fq_stats st;
        if (fq_stats_get(self->core.q, &st) == 0) {
            uint64_t n = (uint64_t)self->numforks;
            uint64_t busy = st.running < n ? st.running : n;
            if ((uint64_t)st.workers + busy > 2 * n)
                return 0;
        }
        FQPY_LOCK(&self->core);
        int rc = fq_refork(self->core.q);
        FQPY_UNLOCK(&self->core);
        if (rc == FQ_EINIT)
            return fail_deferred(self);
        if (rc < 0) {
            fqpy_core_error(&self->core, rc, "reforking the workers");
            return -1;
        }
        fqpy_reg_reforked(&self->core.reg);
        self->last_refork = fqpy_now();
    }
    size_t i;
    int rc = 0;
    for (i = 0; i < self->ndeferred; i++) {
        if ((rc = submit_now(self, self->deferred[i].rec,
                             self->deferred[i].payload)) < 0)
            break;
        Py_DECREF(self->deferred[i].rec);
        Py_DECREF(self->deferred[i].payload);
    }
    if (rc < 0 && PyErr_ExceptionMatches(self->st->exc_type)) {
        /* FQ_EINIT: the queue is stopped for good */
        PyErr_Clear();
        memmove(self->deferred, self->deferred + i,
                (self->ndeferred - i) * sizeof(*self->deferred));
        self->ndeferred -= i;
        return fail_deferred(self);
    }
    /* A failed submission keeps it and the jobs after it for a retry: none
     * is dropped without an outcome. */
    size_t left = self->ndeferred - i;
    memmove(self->deferred, self->deferred + i, left * sizeof(*self->deferred));
    self->ndeferred = left;
    return rc;
}

static int submit_rec(fqpy_queue *self, Py_ssize_t key, PyObject *rec,
                      PyObject *payload)
{
    if (self->ndeferred == 0 && fqpy_reg_known(&self->core.reg, key))
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
    if (fqpy_now() - self->last_refork >= REFORK_MIN_INTERVAL &&
        fqpy_flush(self) < 0) {
        /* The job is accepted (deferred): the next flush, in the next wait,
         * retries and reports the error. */
        PyErr_Clear();
    }
    return 0;
}

/* Says which item and which argument of a job cannot be pickled. */
static void explain_pickling_error(fqpy_queue *self, PyObject *argslist,
                                   PyObject *kwargs, int flat, PyObject *first)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    fqpy_state *st = self->st;
    Py_ssize_t n = PyList_GET_SIZE(argslist);
    PyObject *msg = NULL;
    for (Py_ssize_t i = 0; i < n && msg == NULL; i++) {
        PyObject *a = PyList_GET_ITEM(argslist, i);
        PyObject *tup = flat ? PyTuple_Pack(1, a) : Py_NewRef(a);
        if (tup == NULL)
            break;
        Py_ssize_t na = PyTuple_Check(tup) ? PyTuple_GET_SIZE(tup) : 0;
        for (Py_ssize_t j = 0; j < na && msg == NULL; j++) {
            PyObject *x = PyTuple_GET_ITEM(tup, j);
            PyObject *b = fqpy_dumps(st, x);
            if (b) {
                Py_DECREF(b);
                continue;
            }
            PyObject *e2t, *e2v, *e2tb;
            PyErr_Fetch(&e2t, &e2v, &e2tb);
            PyObject *why = e2v ? PyObject_Str(e2v) : NULL;
            if (first == Py_None)
                msg = PyUnicode_FromFormat(
                    "add(): argument %zd (%.100s) cannot be pickled: %S", j,
                    Py_TYPE(x)->tp_name, why ? why : Py_None);
            else
                msg = PyUnicode_FromFormat(
                    "item %zd of the input: argument %zd (%.100s) cannot be "
                    "pickled: %S",
                    PyLong_AsSsize_t(first) + i, j, Py_TYPE(x)->tp_name,
                    why ? why : Py_None);
            Py_XDECREF(why);
            Py_XDECREF(e2t);
            Py_XDECREF(e2v);
            Py_XDECREF(e2tb);
        }
        Py_DECREF(tup);
    }
    if (msg == NULL && kwargs) {
        PyObject *k, *x;
        Py_ssize_t pos = 0;
        while (msg == NULL && PyDict_Next(kwargs, &pos, &k, &x)) {
            PyObject *b = fqpy_dumps(st, x);
            if (b) {
                Py_DECREF(b);
                continue;
            }
            PyErr_Clear();
            msg = PyUnicode_FromFormat(
                "keyword argument %R (%.100s) cannot be pickled", k,
                Py_TYPE(x)->tp_name);
        }
    }
    PyErr_Clear();
    if (msg == NULL) {
        PyErr_Restore(t, v, tb);
        return;
    }
    /* The same exception type (TypeError for a lock, ...) with the item
     * named; PicklingError if that type cannot be built from a message. */
    PyObject *e = t ? PyObject_CallOneArg(t, msg) : NULL;
    if (e == NULL || !PyExceptionInstance_Check(e)) {
        PyErr_Clear();
        Py_XDECREF(e);
        e = PyObject_CallOneArg(st->pickling_error, msg);
    }
    Py_DECREF(msg);
    if (e == NULL) {
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        return;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
    if (v) {
        PyObject *nt, *nv, *ntb;
        PyErr_Fetch(&nt, &nv, &ntb);
        PyErr_NormalizeException(&nt, &nv, &ntb);
        PyException_SetCause(nv, Py_NewRef(v));
        PyErr_Restore(nt, nv, ntb);
    }
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
}

int fqpy_submit_full(fqpy_queue *self, fqpy_call *call, Py_ssize_t key,
                     PyObject *ids, PyObject *argslist, PyObject *kwargs,
                     int measured, PyObject *seq, int flat, PyObject *first,
                     int timeout_ms)
{
    PyObject *keyo = PyLong_FromSsize_t(key);
    PyObject *callid = PyLong_FromUnsignedLong(call->id);
    PyObject *tmo = PyLong_FromLong(timeout_ms);
    if (!keyo || !callid || !tmo) {
        Py_XDECREF(keyo);
        Py_XDECREF(callid);
        Py_XDECREF(tmo);
        return -1;
    }
    PyObject *kw = kwargs ? kwargs : Py_None;
    PyObject *fl = flat ? Py_True : Py_False;
    PyObject *job = PyTuple_Pack(6, keyo, argslist, kw, fl, callid, first);
    PyObject *payload = job ? fqpy_dumps(self->st, job) : NULL;
    Py_XDECREF(job);
    if (payload == NULL && job)
        explain_pickling_error(self, argslist, kwargs, flat, first);
    PyObject *rec = NULL;
    int rc = -1;
    if (payload)
        rec = PyTuple_Pack(REC_LEN, ids, argslist, kw, keyo,
                           measured ? Py_True : Py_False, seq ? seq : Py_None,
                           fl, (PyObject *)call, first, tmo);
    if (rec) {
        self->items_out += PyList_GET_SIZE(argslist);
        call->jobs_out++;
        fqpy_reg_use(&self->core.reg, key, 1);
        rc = submit_rec(self, key, rec, payload);
        if (rc < 0)
            fqpy_rec_release(self, rec);
    }
    Py_XDECREF(rec);
    Py_XDECREF(payload);
    Py_DECREF(keyo);
    Py_DECREF(callid);
    Py_DECREF(tmo);
    return rc;
}

int fqpy_submit(fqpy_queue *self, fqpy_call *call, Py_ssize_t key,
                PyObject *ids, PyObject *argslist, PyObject *kwargs,
                int measured, int flat, PyObject *first, int timeout_ms)
{
    return fqpy_submit_full(self, call, key, ids, argslist, kwargs, measured,
                            NULL, flat, first, timeout_ms);
}

/* ---- id tracking -------------------------------------------------------- */

/* Ids are tracked (for the duplicate check) only once a caller has given
 * one: until then automatic ids cannot collide, and the common case pays
 * nothing per item. Starting collects the ids of every result to come. */
static int add_rec_ids(fqpy_queue *self, PyObject *rec)
{
    Py_ssize_t n = fqpy_rec_len(rec);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *id = fqpy_rec_id(rec, i);
        int rc = id ? PySet_Add(self->live_ids, id) : -1;
        Py_XDECREF(id);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int add_store_ids(fqpy_queue *self, fqpy_store *s)
{
    for (size_t i = 0; i < s->count; i++) {
        fqpy_entry *e = fqpy_store_at(s, s->seq0 + i);
        Py_ssize_t n = fqpy_entry_items(e);
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *id = fqpy_entry_id(e, e->pos + k);
            int rc = id ? PySet_Add(self->live_ids, id) : -1;
            Py_XDECREF(id);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

int fqpy_start_tracking_ids(fqpy_queue *self)
{
    PyObject *k, *rec;
    Py_ssize_t pos = 0;
    /* Re-run items (seq set) already have their slot in a store. */
    while (PyDict_Next(self->jobs, &pos, &k, &rec))
        if (PyTuple_GET_ITEM(rec, REC_SEQ) == Py_None &&
            add_rec_ids(self, rec) < 0)
            return -1;
    for (size_t i = 0; i < self->ndeferred; i++)
        if (add_rec_ids(self, self->deferred[i].rec) < 0)
            return -1;
    for (fqpy_call *c = self->calls; c; c = c->next)
        if (add_store_ids(self, &c->store) < 0)
            return -1;
    self->track_ids = 1;
    return 0;
}
