/*
 * The iterators returned by yield_results(), results() and process()/map().
 *
 * They are C iterators rather than Python generators so that iteration can
 * go on after a job's ForkQueueException was caught (the failed slot then
 * yields None), as with the original module's repeated results() calls;
 * they have close(), send() and throw(), and are registered as
 * collections.abc.Generator.
 *
 * process() owns a call (call.c): its results never come out of another
 * iterator, and closing or dropping it cancels its items not yet started.
 * It yields the results of add() too, in arrival order, as the original
 * does. It consumes its iterable lazily: it pulls items only while fewer
 * than about two batches per worker are outstanding, groups consecutive
 * items into one core job (a batch) whose size adapts to the measured cost
 * of an item, and yields results in between. If the iterable raises, the
 * results of the items before are yielded first, then the exception.
 */
#include "../../fqpy.h"

typedef struct fqpy_iter {
    PyObject_HEAD fqpy_queue *q;
    fqpy_call *call; /* own call (process), or the queue's main call */
    int mode;
    int done;
    int since_fill; /* results yielded since the last look at the input */
    PyObject *func;
    Py_ssize_t key;
    PyObject *source;   /* NULL once exhausted */
    PyObject *kwargs;   /* NULL or a dict */
    PyObject *src_exc;  /* the input's exception, raised after the results */
    Py_ssize_t pulled;  /* items taken from the input */
    PyObject *progress; /* callable (done, total), or NULL */
    int own_bar;        /* progress is a bar we made: close it at the end */
    Py_ssize_t total;   /* -1: unknown */
    Py_ssize_t ndone;
} fqpy_iter;

PyObject *fqpy_iter_new(fqpy_queue *q, int mode, PyObject *func,
                        PyObject *source, PyObject *kwargs, PyObject *progress,
                        Py_ssize_t total)
{
    fqpy_call *call = NULL;
    if (func) {
        call = fqpy_call_new(q);
        if (call == NULL)
            return NULL;
    } else {
        call = (fqpy_call *)Py_NewRef(q->main);
    }
    fqpy_iter *it = PyObject_GC_New(fqpy_iter, q->st->iter_type);
    if (it == NULL) {
        Py_DECREF(call);
        return NULL;
    }
    it->q = (fqpy_queue *)Py_NewRef(q);
    it->call = call;
    it->mode = mode;
    it->done = 0;
    it->since_fill = 0;
    it->func = Py_XNewRef(func);
    it->key = -1;
    it->source = Py_XNewRef(source);
    it->kwargs = Py_XNewRef(kwargs);
    it->src_exc = NULL;
    it->pulled = 0;
    it->progress = NULL;
    it->own_bar = 0;
    it->total = total;
    it->ndone = 0;
    PyObject_GC_Track(it);
    if (progress == Py_True) {
        PyObject *mod = PyImport_ImportModule("forkqueue._progress");
        PyObject *tot =
            total >= 0 ? PyLong_FromSsize_t(total) : Py_NewRef(Py_None);
        it->progress =
            mod && tot ? PyObject_CallMethod(mod, "Bar", "O", tot) : NULL;
        Py_XDECREF(mod);
        Py_XDECREF(tot);
        if (it->progress == NULL) {
            Py_DECREF(it);
            return NULL;
        }
        it->own_bar = 1;
    } else if (progress) {
        it->progress = Py_NewRef(progress);
    }
    if (func) {
        /* Registered now; the refork it may need happens at the first
         * submission. */
        it->key = fqpy_reg_key(&q->core.reg, func);
        if (it->key < 0) {
            Py_DECREF(it);
            return NULL;
        }
        fqpy_reg_use(&q->core.reg, it->key, 1);
    }
    return (PyObject *)it;
}

/* Makes every element of a flat argument list a 1-tuple again (the batch
 * met an item that is not a 1-tuple). */
static int unflatten(PyObject *argslist)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(argslist); i++) {
        PyObject *t = PyTuple_Pack(1, PyList_GET_ITEM(argslist, i));
        if (t == NULL)
            return -1;
        PyList_SetItem(argslist, i, t);
    }
    return 0;
}

/* Switches a batch from a range of automatic ids to an explicit list. */
static PyObject *ids_as_list(long long first, Py_ssize_t n)
{
    PyObject *l = PyList_New(n);
    for (Py_ssize_t i = 0; l && i < n; i++) {
        PyObject *id = PyLong_FromLongLong(first + i);
        if (id == NULL) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, id);
    }
    return l;
}

/* Whether another batch may be sent: a bounded number of jobs not yet
 * finished (about four per worker: those the core sent ahead to each
 * worker, plus a reserve it hands to whichever worker frees up first, so
 * that in ordered mode a slow head job does not idle the other workers),
 * and a bounded number not yet taken (finished jobs waiting behind a slow
 * one must not grow without bound). */
static int room_for_batch(fqpy_queue *self, int64_t b, size_t stored)
{
    /* Items pulled ahead of the consumer: enough for two batches per
     * worker, at most 64 Ki beyond that. */
    Py_ssize_t items_max = (2 * (Py_ssize_t)self->numforks + 2) * b;
    if (items_max < 65536)
        items_max = 65536;
    if (self->items_out + (Py_ssize_t)stored + b > items_max)
        return 0;
    Py_ssize_t unfinished_max = 4 * (Py_ssize_t)self->numforks + 4;
    Py_ssize_t queued = self->outstanding + (Py_ssize_t)self->ndeferred;
    if (queued >= 4 * unfinished_max)
        return 0;
    fq_stats st;
    if (fq_stats_get(self->core.q, &st) < 0)
        return queued < unfinished_max;
    return (Py_ssize_t)(st.pending + st.running) + (Py_ssize_t)self->ndeferred <
           unfinished_max;
}

/* Keeps the input's exception (or a submission error) for after the
 * results of the items before it. */
static void stash_input_error(fqpy_iter *it)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && tb)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    if (it->src_exc == NULL)
        it->src_exc = v;
    else
        Py_XDECREF(v);
    Py_CLEAR(it->source);
}

/* A batch that could not be submitted (an argument that cannot be pickled):
 * its items go one by one, so that those before the bad one run; the error
 * is then the input's error. */
static void submit_one_by_one(fqpy_iter *it, PyObject *ids, long long first,
                              PyObject *argslist, int flat, Py_ssize_t first_i)
{
    fqpy_queue *self = it->q;
    Py_ssize_t n = PyList_GET_SIZE(argslist);
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        PyObject *one_id = ids ? PyList_GetSlice(ids, i, i + 1)
                               : PyLong_FromLongLong(first + i);
        PyObject *one = PyList_GetSlice(argslist, i, i + 1);
        PyObject *fi = PyLong_FromSsize_t(first_i + i);
        int rc =
            one_id && one && fi
                ? fqpy_submit(
                      self, it->call, it->key, one_id, one, it->kwargs, 0, flat,
                      fi, self->timeout > 0 ? (int)(self->timeout * 1000) : -1)
                : -1;
        Py_XDECREF(one_id);
        Py_XDECREF(one);
        Py_XDECREF(fi);
        if (rc < 0)
            break;
    }
    if (i < n) {
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(etb);
    } else {
        PyErr_Restore(et, ev, etb);
    }
    /* Ids of the items never submitted are free again. */
    for (Py_ssize_t k = i; ids && self->track_ids && k < n; k++) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (PySet_Discard(self->live_ids, PyList_GET_ITEM(ids, k)) < 0)
            PyErr_Clear();
        PyErr_Restore(t, v, tb);
    }
    stash_input_error(it);
}

/* Pulls items into batches and submits them, within the look-ahead.
 * Returns -1 only for errors of the queue itself. */
static int iter_fill(fqpy_iter *it)
{
    fqpy_queue *self = it->q;
    while (it->source) {
        int64_t b = fqpy_next_batch(self, it->key);
        size_t stored = it->call->store.items + self->main->store.items;
        if (!room_for_batch(self, b, stored))
            break;
        if (stored > (size_t)(2 * b + 256))
            break; /* results are not being consumed: wait for that */
        PyObject *argslist = PyList_New(0);
        if (argslist == NULL)
            return -1;
        /* Automatic ids of a batch are consecutive unless a caller's ids
         * are tracked (or the source adds jobs itself): then a list. */
        PyObject *idlist = self->track_ids ? PyList_New(0) : NULL;
        if (self->track_ids && idlist == NULL)
            goto fail;
        long long first = self->next_auto_id;
        Py_ssize_t first_i = it->pulled;
        int flat = 1, err = 0;
        double t0 = b > 64 ? fqpy_now() : 0;
        for (int64_t i = 0; i < b; i++) {
            PyObject *item = PyIter_Next(it->source);
            if (item == NULL) {
                if (PyErr_Occurred())
                    err = 1;
                else
                    Py_CLEAR(it->source);
                break;
            }
            it->pulled++;
            int rc;
            if (it->mode == FQPY_IT_MAP1) {
                rc = PyList_Append(argslist, item);
            } else if (flat && PyTuple_CheckExact(item) &&
                       PyTuple_GET_SIZE(item) == 1) {
                rc = PyList_Append(argslist, PyTuple_GET_ITEM(item, 0));
            } else {
                if (flat && unflatten(argslist) < 0) {
                    Py_DECREF(item);
                    goto fail;
                }
                flat = 0;
                rc = PyList_Append(argslist, item);
            }
            Py_DECREF(item);
            if (rc < 0)
                goto fail;
            Py_ssize_t n = PyList_GET_SIZE(argslist);
            if (idlist == NULL &&
                (self->track_ids || self->next_auto_id != first + n - 1)) {
                /* The source itself used the queue: an add() took an
                 * automatic id, or gave an id (tracking starts now, so the
                 * ids already pulled must be tracked too). */
                if ((idlist = ids_as_list(first, n - 1)) == NULL)
                    goto fail;
                for (Py_ssize_t k = 0; self->track_ids && k < n - 1; k++)
                    if (PySet_Add(self->live_ids, PyList_GET_ITEM(idlist, k)) <
                        0)
                        goto fail;
            }
            if (idlist) {
                PyObject *id = fqpy_next_auto_id(self);
                rc = id ? PyList_Append(idlist, id) : -1;
                Py_XDECREF(id);
                if (rc < 0)
                    goto fail;
            } else {
                self->next_auto_id++;
            }
            /* A slow source must not hold back a large batch. */
            if ((i & 63) == 63 && fqpy_now() - t0 > 0.002)
                break;
        }
        Py_ssize_t n = PyList_GET_SIZE(argslist);
        PyObject *et = NULL, *ev = NULL, *etb = NULL;
        if (err)
            PyErr_Fetch(&et, &ev, &etb);
        if (n > 0) {
            PyObject *ids =
                idlist ? Py_NewRef(idlist) : PyLong_FromLongLong(first);
            PyObject *fi = PyLong_FromSsize_t(first_i);
            int tmo = self->timeout > 0 ? (int)(self->timeout * 1000) : -1;
            int rc = ids && fi
                         ? fqpy_submit(self, it->call, it->key, ids, argslist,
                                       it->kwargs, 1, flat, fi, tmo)
                         : -1;
            Py_XDECREF(ids);
            Py_XDECREF(fi);
            if (rc < 0) {
                /* Report the submission error, not the source's. */
                Py_XDECREF(et);
                Py_XDECREF(ev);
                Py_XDECREF(etb);
                err = 0;
                submit_one_by_one(it, idlist, first, argslist, flat, first_i);
            }
        }
        if (err) {
            PyErr_Restore(et, ev, etb);
            stash_input_error(it);
        }
        Py_DECREF(argslist);
        Py_XDECREF(idlist);
        continue;
    fail:
        Py_DECREF(argslist);
        Py_XDECREF(idlist);
        return -1;
    }
    return 0;
}

static void iter_close_bar(fqpy_iter *it)
{
    if (it->own_bar && it->progress) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *r = PyObject_CallMethod(it->progress, "close", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        PyErr_Restore(t, v, tb);
    }
    Py_CLEAR(it->progress);
}

/* Ends the iterator: a process() call is closed (unstarted items skipped,
 * results dropped). */
static void iter_stop(fqpy_iter *it)
{
    it->done = 1;
    Py_CLEAR(it->source);
    if (it->call && it->func)
        fqpy_call_close(it->call);
    iter_close_bar(it);
}

static int report_progress(fqpy_iter *it)
{
    it->ndone++;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyObject *r =
        it->total >= 0
            ? PyObject_CallFunction(it->progress, "nn", it->ndone, it->total)
            : PyObject_CallFunction(it->progress, "nO", it->ndone, Py_None);
    if (r == NULL) {
        if (t) { /* the job's error wins */
            PyErr_Clear();
            PyErr_Restore(t, v, tb);
        }
        return -1;
    }
    Py_DECREF(r);
    PyErr_Restore(t, v, tb);
    return t ? -1 : 0;
}

/* The common case, a result of a whole batch that succeeded, needs neither
 * the core nor the guard (no core call, no Python code runs): a few loads
 * instead of the general path, for the ~40 ns per item of tiny jobs. */
static PyObject *iter_fast(fqpy_iter *it, fqpy_queue *self)
{
    fqpy_call *call = it->call;
    fqpy_store *s = &call->store;
    fqpy_entry *e = fqpy_store_front(s);
    if (e == NULL || e->state != FQPY_BATCH || it->progress || self->retn_ids ||
        self->track_ids ||
        (call != self->main && self->main->store.count != 0) ||
        (it->source && it->since_fill >= 31))
        return NULL;
    if (it->source)
        it->since_fill++;
    PyObject *value = Py_NewRef(PyList_GET_ITEM(e->value, e->pos));
    e->pos++;
    s->items--;
    if (e->pos == PyList_GET_SIZE(e->value)) {
        fqpy_entry out;
        fqpy_store_pop(s, &out);
        Py_XDECREF(out.id);
        Py_DECREF(out.value);
    }
    return value;
}

static PyObject *iter_next(fqpy_iter *it)
{
    if (it->done)
        return NULL;
    fqpy_queue *self = it->q;
    if (self && !self->core.finished) {
        PyObject *r = iter_fast(it, self);
        if (r)
            return r;
    }
    if (self == NULL || fqpy_enter(self, 0) < 0)
        return NULL;
    PyObject *res = NULL;
    fqpy_call *main = self->main, *call = it->call;
    for (;;) {
        /* Looking for room costs a little: not at every item. */
        if (it->source && (++it->since_fill >= 32 ||
                           call->store.items + main->store.items == 0)) {
            it->since_fill = 0;
            if (iter_fill(it) < 0)
                break;
        }
        res = fqpy_pop_result(self, call);
        if (res || PyErr_Occurred())
            break;
        if (self->core.finished) { /* cancelled meanwhile */
            it->done = 1;
            break;
        }
        if (it->mode == FQPY_IT_AVAILABLE) {
            Py_ssize_t n = fqpy_drive(self, 0);
            if (n < 0)
                break;
            if (n > 0)
                continue;
            it->done = 1;
            break;
        }
        /* No outcome of this call (or of add()) is outstanding: done. */
        if (it->source == NULL && call->jobs_out == 0 && main->jobs_out == 0) {
            it->done = 1;
            if (it->src_exc) {
                PyObject *e = it->src_exc;
                it->src_exc = NULL;
                PyErr_SetObject((PyObject *)Py_TYPE(e), e);
                Py_DECREF(e);
            }
            break;
        }
        /* In ordered mode nothing can be taken until the oldest job ends,
         * but workers that finish others need more input meanwhile. */
        double wait = it->source && self->ordered ? 0.005 : -1;
        /* Outcomes already read are taken first; then one poll waits for
         * more (no separate look at the workers before it). */
        Py_ssize_t got = fqpy_drive_ex(self, wait, 0);
        if (got < 0)
            break;
        if (got == 0)
            it->since_fill = 32;
    }
    fqpy_leave(self);
    if (it->progress && (res || (PyErr_Occurred() && !it->done &&
                                 PyErr_ExceptionMatches(self->st->exc_type)))) {
        if (report_progress(it) < 0 && res)
            Py_CLEAR(res);
    }
    if (it->done)
        iter_stop(it);
    return res;
}

static PyObject *iter_close(fqpy_iter *it, PyObject *noargs)
{
    (void)noargs;
    iter_stop(it);
    Py_RETURN_NONE;
}

static PyObject *iter_send(fqpy_iter *it, PyObject *value)
{
    (void)value;
    PyObject *r = iter_next(it);
    if (r == NULL && !PyErr_Occurred())
        PyErr_SetNone(PyExc_StopIteration);
    return r;
}

static PyObject *iter_throw(fqpy_iter *it, PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_ParseTuple(args, "O|OO:throw", &typ, &val, &tb))
        return NULL;
    iter_stop(it);
    if (PyExceptionInstance_Check(typ))
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    else if (PyExceptionClass_Check(typ))
        PyErr_SetObject(typ, val);
    else
        PyErr_SetString(PyExc_TypeError,
                        "throw() needs an exception class or instance");
    return NULL;
}

static int iter_traverse(fqpy_iter *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT(it->q);
    Py_VISIT(it->call);
    Py_VISIT(it->func);
    Py_VISIT(it->source);
    Py_VISIT(it->kwargs);
    Py_VISIT(it->src_exc);
    Py_VISIT(it->progress);
    return 0;
}

static int iter_clear(fqpy_iter *it)
{
    if (it->q && it->key >= 0 && it->q->core.reg.list) {
        fqpy_reg_use(&it->q->core.reg, it->key, -1);
        it->key = -1;
    }
    if (it->call && it->func)
        fqpy_call_close(it->call);
    Py_CLEAR(it->q);
    Py_CLEAR(it->call);
    Py_CLEAR(it->func);
    Py_CLEAR(it->source);
    Py_CLEAR(it->kwargs);
    Py_CLEAR(it->src_exc);
    iter_close_bar(it);
    return 0;
}

static void iter_dealloc(fqpy_iter *it)
{
    PyTypeObject *tp = Py_TYPE(it);
    PyObject_GC_UnTrack(it);
    iter_clear(it);
    PyObject_GC_Del(it);
    Py_DECREF(tp);
}

static PyMethodDef iter_methods[] = {
    {"close", (PyCFunction)iter_close, METH_NOARGS,
     "close($self)\n--\n\nStop: the call's jobs not yet started are "
     "cancelled and its\nremaining results discarded."},
    {"send", (PyCFunction)iter_send, METH_O,
     "send($self, value, /)\n--\n\nSame as next() (the value is ignored)."},
    {"throw", (PyCFunction)iter_throw, METH_VARARGS,
     "throw($self, typ, val=None, tb=None, /)\n--\n\nClose, then raise typ (an "
     "exception or its class) here."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot iter_slots[] = {
    {Py_tp_doc, "Generator of the results of a ForkQueue."},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, iter_next},
    {Py_tp_methods, iter_methods},
    {Py_tp_traverse, iter_traverse},
    {Py_tp_clear, iter_clear},
    {Py_tp_dealloc, iter_dealloc},
    {0, NULL}};

PyType_Spec fqpy_iter_spec = {
    .name = "forkqueue.ResultIterator",
    .basicsize = sizeof(fqpy_iter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = iter_slots,
};
