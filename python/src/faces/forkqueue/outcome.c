/*
 * Outcomes: core results turned into result slots in the store of the call
 * they belong to, job errors as ForkQueueException, waiting, cancelling,
 * and popping results in order.
 */
#include "../../fqpy.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Longest stretch with the GIL released and no look at pending signals. */
#define SLICE_MS 50

/* Puts a result or error in its slot: the placeholder seq, or a new one. */
static int place(fqpy_call *call, PyObject *id, long long num, PyObject *value,
                 int state, PyObject *seq)
{
    fqpy_store *s = &call->store;
    if (seq == Py_None)
        return fqpy_store_push(s, id, num, value, state, NULL);
    uint64_t q = PyLong_AsUnsignedLongLong(seq);
    fqpy_entry *e = fqpy_store_at(s, q);
    if (e == NULL || e->state != FQPY_PENDING) {
        PyErr_Clear(); /* the slot was dropped */
        return 0;
    }
    Py_INCREF(value);
    Py_XSETREF(e->value, value);
    e->state = state;
    if (state == FQPY_ERROR)
        s->nerrors++;
    return 0;
}

/* ForkQueueException, or for a job exception of type E (an Exception with
 * a compatible layout) a subclass of both, named ForkQueueException too, so
 * that `except E` catches it as well. Cached per E. New ref or NULL. */
static PyObject *exc_class_for(fqpy_state *st, PyObject *cause)
{
    if (cause == NULL || cause == Py_None ||
        !PyObject_TypeCheck(cause, (PyTypeObject *)PyExc_Exception) ||
        PyObject_TypeCheck(cause, (PyTypeObject *)st->exc_type))
        return Py_NewRef(st->exc_type);
    PyObject *tp = (PyObject *)Py_TYPE(cause);
    PyObject *sub = PyDict_GetItemWithError(st->exc_subtypes, tp);
    if (sub)
        return Py_NewRef(sub == Py_None ? st->exc_type : sub);
    if (PyErr_Occurred())
        return NULL;
    PyObject *base = PyExc_BaseException;
    PyObject *init = PyObject_GetAttrString(base, "__init__");
    PyObject *str = PyObject_GetAttrString(base, "__str__");
    PyObject *ns = init && str
                       ? Py_BuildValue("{sssssOsO}", "__module__", "forkqueue",
                                       "__qualname__", "ForkQueueException",
                                       "__init__", init, "__str__", str)
                       : NULL;
    Py_XDECREF(init);
    Py_XDECREF(str);
    sub = ns ? PyObject_CallFunction((PyObject *)&PyType_Type, "s(OO)O",
                                     "ForkQueueException", st->exc_type, tp, ns)
             : NULL;
    Py_XDECREF(ns);
    if (sub == NULL) {
        PyErr_Clear(); /* layouts conflict (OSError and kin): the base */
        sub = Py_NewRef(Py_None);
    }
    if (PyDict_SetItem(st->exc_subtypes, tp, sub) < 0) {
        Py_DECREF(sub);
        return NULL;
    }
    if (sub == Py_None) {
        Py_DECREF(sub);
        return Py_NewRef(st->exc_type);
    }
    return sub;
}

/* A ForkQueueException carrying the text as message (after the usual
 * prefix) and as attribute `backtrace`, the job id, the job's exception,
 * and for a dead worker its signal or exit status. */
static PyObject *make_fqe(fqpy_queue *self, PyObject *tb, PyObject *cause,
                          PyObject *jobid, int signo, int exit_status,
                          int crashed)
{
    PyObject *msg = PyUnicode_FromFormat("Exception running task:\n%U", tb);
    if (msg == NULL)
        return NULL;
    PyObject *cls = exc_class_for(self->st, cause);
    PyObject *e = cls ? PyObject_CallOneArg(cls, msg) : NULL;
    Py_XDECREF(cls);
    Py_DECREF(msg);
    if (e == NULL)
        return NULL;
    PyObject *sig = NULL, *ex = NULL;
    if (crashed && signo > 0)
        sig = PyLong_FromLong(signo);
    else if (crashed && exit_status >= 0)
        ex = PyLong_FromLong(exit_status);
    if (PyObject_SetAttrString(e, "backtrace", tb) < 0 ||
        PyObject_SetAttrString(e, "jobid", jobid ? jobid : Py_None) < 0 ||
        PyObject_SetAttrString(e, "exception", cause ? cause : Py_None) < 0 ||
        PyObject_SetAttrString(e, "signal", sig ? sig : Py_None) < 0 ||
        PyObject_SetAttrString(e, "exitcode", ex ? ex : Py_None) < 0)
        Py_CLEAR(e);
    Py_XDECREF(sig);
    Py_XDECREF(ex);
    return e;
}

static PyObject *id_obj(PyObject *id, long long num)
{
    return id ? Py_NewRef(id) : PyLong_FromLongLong(num);
}

/* The error of one item: raised later (reraise) or returned as its result. */
static int place_error(fqpy_queue *self, fqpy_call *call, PyObject *id,
                       long long num, PyObject *exc, PyObject *tb,
                       PyObject *seq)
{
    int rc;
    if (self->reraise) {
        PyObject *jid = id_obj(id, num);
        PyObject *fqe = jid ? make_fqe(self, tb, exc, jid, 0, 0, 0) : NULL;
        Py_XDECREF(jid);
        if (fqe == NULL)
            return -1;
        rc = place(call, id, num, fqe, FQPY_ERROR, seq);
        Py_DECREF(fqe);
        return rc;
    }
    if (PyObject_SetAttrString(exc, "backtrace", tb) < 0)
        PyErr_Clear();
    return place(call, id, num, exc, FQPY_READY, seq);
}

/* An error that applies to every item of the job (worker died, init failed,
 * time limit, result unreadable). cause: the exception, or NULL. */
static int place_job_error(fqpy_queue *self, PyObject *rec, PyObject *tb,
                           PyObject *cause, int signo, int exit_status,
                           int crashed)
{
    fqpy_call *call = (fqpy_call *)PyTuple_GET_ITEM(rec, REC_CALL);
    PyObject *seq = PyTuple_GET_ITEM(rec, REC_SEQ);
    Py_ssize_t n = fqpy_rec_len(rec);
    for (Py_ssize_t i = 0; i < n; i++) {
        long long num;
        PyObject *id = fqpy_rec_id_or_num(rec, i, &num);
        int rc;
        if (cause) {
            rc = place_error(self, call, id, num, cause, tb, seq);
        } else {
            PyObject *jid = id_obj(id, num);
            PyObject *fqe =
                jid ? make_fqe(self, tb, NULL, jid, signo, exit_status, crashed)
                    : NULL;
            Py_XDECREF(jid);
            rc = fqe ? place(call, id, num, fqe,
                             self->reraise ? FQPY_ERROR : FQPY_READY, seq)
                     : -1;
            Py_XDECREF(fqe);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

int fqpy_fail_rec(fqpy_queue *self, PyObject *rec, const char *text)
{
    fqpy_call *call = (fqpy_call *)PyTuple_GET_ITEM(rec, REC_CALL);
    if (call->closed || self->dropping)
        return 0;
    PyObject *tb = PyUnicode_FromString(text);
    if (tb == NULL)
        return -1;
    int rc = place_job_error(self, rec, tb, NULL, 0, 0, 0);
    Py_DECREF(tb);
    return rc;
}

static void measure(fqpy_queue *self, PyObject *rec, PyObject *reply,
                    Py_ssize_t n)
{
    fqpy_registry *reg = &self->core.reg;
    Py_ssize_t key = PyLong_AsSsize_t(PyTuple_GET_ITEM(rec, REC_KEY));
    double ns = PyLong_AsDouble(PyTuple_GET_ITEM(reply, 2));
    if (PyErr_Occurred()) {
        PyErr_Clear();
    } else if (key >= 0 && key < reg->cap) {
        double per = ns / (double)n;
        double old = reg->item_ns[key];
        reg->item_ns[key] = old > 0 ? 0.5 * old + 0.5 * per : per;
        if (n > reg->batch_seen[key])
            reg->batch_seen[key] = n;
    }
}

static int handle_reply(fqpy_queue *self, PyObject *rec, const fq_result *r)
{
    fqpy_call *call = (fqpy_call *)PyTuple_GET_ITEM(rec, REC_CALL);
    PyObject *seq = PyTuple_GET_ITEM(rec, REC_SEQ);
    Py_ssize_t n = fqpy_rec_len(rec);
    /* r->data lives until the next fq_take(): a __setstate__ that calls
     * back into the queue must not get there. */
    FQPY_LOCK(&self->core);
    PyObject *reply = fqpy_loads_mem(self->st, r->data, r->len);
    FQPY_UNLOCK(&self->core);
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
        int rc = place_job_error(self, rec, full, NULL, 0, 0, 0);
        Py_DECREF(full);
        return rc;
    }
    PyObject *values = PyTuple_GET_ITEM(reply, 0);
    PyObject *errors = PyTuple_GET_ITEM(reply, 1);
    if (PyTuple_GET_ITEM(rec, REC_MEASURED) == Py_True && n > 0)
        measure(self, rec, reply, n);
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
            fqpy_store_push(&call->store, ids, first, values, FQPY_BATCH, NULL);
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
        PyObject *id = fqpy_rec_id_or_num(rec, i, &num);
        if (pair && PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 &&
            PyUnicode_Check(PyTuple_GET_ITEM(pair, 1)))
            rc = place_error(self, call, id, num, PyTuple_GET_ITEM(pair, 0),
                             PyTuple_GET_ITEM(pair, 1), seq);
        else
            rc = place(call, id, num, PyList_GET_ITEM(values, i), FQPY_READY,
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
    fqpy_call *call = (fqpy_call *)PyTuple_GET_ITEM(rec, REC_CALL);
    PyObject *args = PyTuple_GET_ITEM(rec, REC_ARGS);
    PyObject *kwargs = PyTuple_GET_ITEM(rec, REC_KWARGS);
    Py_ssize_t key = PyLong_AsSsize_t(PyTuple_GET_ITEM(rec, REC_KEY));
    int flat = PyTuple_GET_ITEM(rec, REC_FLAT) == Py_True;
    PyObject *first = PyTuple_GET_ITEM(rec, REC_FIRST);
    int tmo = (int)PyLong_AsLong(PyTuple_GET_ITEM(rec, REC_TIMEOUT));
    Py_ssize_t n = fqpy_rec_len(rec);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *id = fqpy_rec_id(rec, i);
        if (id == NULL)
            return -1;
        PyObject *seq = NULL, *fi = NULL;
        if (self->ordered) {
            uint64_t s;
            if (fqpy_store_push(&call->store, id, 0, NULL, FQPY_PENDING, &s) <
                    0 ||
                (seq = PyLong_FromUnsignedLongLong(s)) == NULL) {
                Py_DECREF(id);
                return -1;
            }
        }
        fi = first == Py_None ? Py_NewRef(Py_None)
                              : PyLong_FromSsize_t(PyLong_AsSsize_t(first) + i);
        PyObject *one_id = PyList_New(1);
        PyObject *one_args = PyList_New(1);
        int rc = -1;
        if (one_id && one_args && fi) {
            PyList_SET_ITEM(one_id, 0, Py_NewRef(id));
            PyList_SET_ITEM(one_args, 0, Py_NewRef(PyList_GET_ITEM(args, i)));
            rc = fqpy_submit_full(self, call, key, one_id, one_args,
                                  kwargs == Py_None ? NULL : kwargs, 0, seq,
                                  flat, fi, tmo);
        }
        Py_DECREF(id);
        Py_XDECREF(fi);
        Py_XDECREF(one_id);
        Py_XDECREF(one_args);
        Py_XDECREF(seq);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int handle_error(fqpy_queue *self, PyObject *rec, const fq_result *r)
{
    const char *text =
        r->data && r->len ? (const char *)r->data : fq_strerror(r->status);
    PyObject *tb = NULL, *cause = NULL;
    if (r->status == FQ_ETIMEDOUT) {
        long ms = PyLong_AsLong(PyTuple_GET_ITEM(rec, REC_TIMEOUT));
        PyObject *jid = fqpy_rec_id(rec, 0);
        PyObject *lim = PyFloat_FromDouble((double)ms / 1000);
        PyObject *m =
            jid && lim
                ? PyUnicode_FromFormat("job %R exceeded its time limit of %S "
                                       "s; its worker and every process it "
                                       "started were killed",
                                       jid, lim)
                : NULL;
        Py_XDECREF(jid);
        Py_XDECREF(lim);
        cause = m ? PyObject_CallOneArg(PyExc_TimeoutError, m) : NULL;
        tb = m ? PyUnicode_FromFormat("TimeoutError: %U\n", m) : NULL;
        Py_XDECREF(m);
        if (cause == NULL)
            Py_CLEAR(tb);
    } else if (r->status == FQ_ECRASHED) {
        tb = PyUnicode_FromFormat("The worker running this job died: %s\n",
                                  text);
    } else if (r->status == FQ_EJOB || r->status == FQ_EINIT) {
        tb = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
    } else {
        tb = PyUnicode_FromFormat("%s\n", text);
    }
    if (tb == NULL)
        return -1;
    int rc = place_job_error(self, rec, tb, cause, r->signo, r->exit_status,
                             r->status == FQ_ECRASHED);
    Py_DECREF(tb);
    Py_XDECREF(cause);
    return rc;
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
    fqpy_rec_release(self, rec);
    fqpy_call *call = (fqpy_call *)PyTuple_GET_ITEM(rec, REC_CALL);
    if (rc < 0 || call->closed)
        goto out; /* nobody will read it */

    if (fqpy_rec_len(rec) > 1 &&
        (r->status == FQ_ECRASHED || r->status == FQ_ETIMEDOUT ||
         r->status == FQ_EPROTO || r->status == FQ_ETOOBIG ||
         r->status == FQ_ENOMEM)) {
        /* Even in finish(): every item of the batch must run. */
        rc = rerun_items(self, rec);
    } else if (self->dropping) {
        /* finish(): results are dropped */
    } else if (r->status == 0) {
        rc = handle_reply(self, rec, r);
    } else {
        rc = handle_error(self, rec, r);
    }
out:
    Py_DECREF(rec);
    return rc;
}

/* Takes at most max outcomes (negative: every one there, reading the
 * workers first when none is at hand). */
static Py_ssize_t take_upto(fqpy_queue *self, Py_ssize_t max)
{
    Py_ssize_t n = 0;
    fq_result r;
    if (!self->core.opened)
        return 0;
    for (;;) {
        if (max >= 0 && n >= max) {
            fqpy_jobs_settle(self);
            return n;
        }
        FQPY_LOCK(&self->core);
        int rc = fq_take(self->core.q, &r);
        FQPY_UNLOCK(&self->core);
        if (rc == 0) {
            fqpy_jobs_settle(self); /* handles that ended meanwhile */
            return n;
        }
        if (rc < 0) {
            fqpy_core_error(&self->core, rc, "taking results");
            return -1;
        }
        if (handle_outcome(self, &r) < 0)
            return -1;
        n++;
    }
}

Py_ssize_t fqpy_take_ready(fqpy_queue *self)
{
    return take_upto(self, -1);
}

/* Stops everything now: queued jobs are dropped, workers terminated and
 * reaped. Keeps a pending exception as it is. */
void fqpy_cancel(fqpy_queue *self)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    self->core.finished = 1;
    fqpy_drop_deferred(self);
    fqpy_core_close(&self->core, 1);
    self->outstanding = 0;
    self->items_out = 0;
    if (self->jobs)
        PyDict_Clear(self->jobs);
    if (self->live_ids)
        PySet_Clear(self->live_ids);
    for (fqpy_call *c = self->calls; c; c = c->next) {
        fqpy_store_clear(&c->store);
        c->jobs_out = 0;
    }
    PyErr_Clear();
    fqpy_jobs_settle(self); /* Jobs ended FQ_ECANCELED (or got results) */
    PyErr_Restore(t, v, tb);
}

size_t fqpy_stored_items(fqpy_queue *self)
{
    size_t n = 0;
    for (fqpy_call *c = self->calls; c; c = c->next)
        n += c->store.items;
    return n;
}

Py_ssize_t fqpy_drive(fqpy_queue *self, double timeout_s)
{
    return fqpy_drive_ex(self, timeout_s, -1);
}

Py_ssize_t fqpy_drive_ex(fqpy_queue *self, double timeout_s, Py_ssize_t known)
{
    double deadline = timeout_s < 0 ? -1 : fqpy_now() + timeout_s;
    for (;;) {
        if (fqpy_flush(self) < 0)
            return -1;
        /* After a poll, the outcomes it counted are at hand: taking them
         * needs no further look at the workers (a poll(2) each). */
        Py_ssize_t n = take_upto(self, known);
        if (n != 0 || self->woken) {
            self->woken = 0; /* set by a _wakeup() from another thread */
            return n;
        }
        if (self->outstanding == 0) {
            if (self->ndeferred == 0)
                return 0;
            /* Old workers are still exiting: give them a moment. */
            if (fqpy_core_poll(&self->core, 1) < 0) {
                if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
                    fqpy_cancel(self);
                return -1;
            }
            struct timespec ts = {0, 500000};
            Py_BEGIN_ALLOW_THREADS
            nanosleep(&ts, NULL);
            Py_END_ALLOW_THREADS
            if (deadline >= 0 && fqpy_now() >= deadline)
                return 0;
            continue;
        }
        int ms = SLICE_MS;
        if (deadline >= 0) {
            double rem = deadline - fqpy_now();
            if (rem <= 0)
                return 0;
            if (rem * 1000 < ms)
                ms = (int)ceil(rem * 1000);
        }
        if ((known = fqpy_core_poll(&self->core, ms)) < 0) {
            if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
                fqpy_cancel(self);
            return -1;
        }
    }
}

int fqpy_raise_pending(fqpy_queue *self)
{
    fqpy_store *s = &self->main->store;
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

/* The value to yield for one result: the value, or (id, value). Steals
 * value and id (id may be NULL when not needed). */
static PyObject *yielded(fqpy_queue *self, PyObject *id, PyObject *value)
{
    if (id && self->track_ids && PySet_Discard(self->live_ids, id) < 0)
        PyErr_Clear();
    if (!self->retn_ids) {
        Py_XDECREF(id);
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

PyObject *fqpy_pop_result(fqpy_queue *self, fqpy_call *call)
{
    fqpy_store *s = &call->store;
    fqpy_entry *e = fqpy_store_front(s);
    if (call != self->main) {
        /* add() results come out of process() too, in arrival order. */
        fqpy_entry *m = fqpy_store_front(&self->main->store);
        if (m && (e == NULL || m->stamp < e->stamp)) {
            s = &self->main->store;
            e = m;
        }
    }
    if (e == NULL || e->state == FQPY_PENDING)
        return NULL;
    if (e->state == FQPY_ERROR) {
        /* Raised once; the slot then reads None. */
        PyObject *exc = e->value;
        e->value = Py_NewRef(Py_None);
        e->state = FQPY_READY;
        s->nerrors--;
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return NULL;
    }
    int need_id = self->retn_ids || self->track_ids;
    if (e->state == FQPY_BATCH) {
        /* One result out of a batch slot; the slot goes with the last. */
        Py_ssize_t i = e->pos;
        PyObject *value = Py_NewRef(PyList_GET_ITEM(e->value, i));
        PyObject *id = NULL;
        if (need_id && (id = fqpy_entry_id(e, i)) == NULL) {
            Py_DECREF(value);
            return NULL;
        }
        e->pos++;
        s->items--;
        if (e->pos == PyList_GET_SIZE(e->value)) {
            fqpy_entry out;
            fqpy_store_pop(s, &out);
            Py_XDECREF(out.id);
            Py_DECREF(out.value);
        }
        return need_id ? yielded(self, id, value) : value;
    }
    fqpy_entry out;
    fqpy_store_pop(s, &out);
    if (!need_id) {
        Py_XDECREF(out.id);
        return out.value;
    }
    if (out.id == NULL && (out.id = PyLong_FromLongLong(out.num)) == NULL) {
        Py_DECREF(out.value);
        return NULL;
    }
    return yielded(self, out.id, out.value);
}
