/*
 * The iterators returned by yield_results(), results() and process()/map().
 *
 * They are C iterators rather than generators so that iteration can go on
 * after a job's ForkQueueException was caught (the failed slot then yields
 * None), as with the original module's repeated results() calls.
 *
 * process() consumes its iterable lazily: it pulls items only while fewer
 * than about two batches per worker are outstanding, groups consecutive
 * items into one core job (a batch) whose size adapts to the measured cost
 * of an item, and yields results in between.
 */
#include "fqpy.h"

typedef struct fqpy_iter {
    PyObject_HEAD fqpy_queue *q;
    int mode;
    int done;
    int since_fill; /* results yielded since the last look at the input */
    PyObject *func;
    Py_ssize_t key;
    PyObject *source; /* NULL once exhausted */
    PyObject *kwargs; /* NULL or a dict */
} fqpy_iter;

PyObject *fqpy_iter_new(fqpy_queue *q, int mode, PyObject *func,
                        PyObject *source, PyObject *kwargs)
{
    fqpy_iter *it = PyObject_GC_New(fqpy_iter, q->st->iter_type);
    if (it == NULL)
        return NULL;
    it->q = (fqpy_queue *)Py_NewRef(q);
    it->mode = mode;
    it->done = 0;
    it->since_fill = 0;
    it->func = Py_XNewRef(func);
    it->key = -1;
    it->source = Py_XNewRef(source);
    it->kwargs = Py_XNewRef(kwargs);
    PyObject_GC_Track(it);
    if (func) {
        /* Registered now; the refork it may need happens at the first
         * submission. */
        it->key = fqpy_func_key(q, func);
        if (it->key < 0) {
            Py_DECREF(it);
            return NULL;
        }
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
static int room_for_batch(fqpy_queue *self, int64_t b)
{
    /* Items pulled ahead of the consumer: enough for two batches per
     * worker, at most 64 Ki beyond that. */
    Py_ssize_t items_max = (2 * (Py_ssize_t)self->numforks + 2) * b;
    if (items_max < 65536)
        items_max = 65536;
    if (self->items_out + (Py_ssize_t)self->store.items + b > items_max)
        return 0;
    Py_ssize_t unfinished_max = 4 * (Py_ssize_t)self->numforks + 4;
    Py_ssize_t queued = self->outstanding + (Py_ssize_t)self->ndeferred;
    if (queued >= 4 * unfinished_max)
        return 0;
    fq_stats st;
    if (fq_stats_get(self->q, &st) < 0)
        return queued < unfinished_max;
    return (Py_ssize_t)(st.pending + st.running) + (Py_ssize_t)self->ndeferred <
           unfinished_max;
}

/* Pulls items into batches and submits them, within the look-ahead. */
static int iter_fill(fqpy_iter *it)
{
    fqpy_queue *self = it->q;
    while (it->source) {
        int64_t b = fqpy_next_batch(self, it->key);
        if (!room_for_batch(self, b))
            break;
        if (self->store.items > (size_t)(2 * b + 256))
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
        int flat = 1, err = 0;
        double t0 = b > 64 ? fqpy_now() : 0;
        for (int64_t i = 0; i < b; i++) {
            PyObject *item = PyIter_Next(it->source);
            if (item == NULL) {
                if (PyErr_Occurred())
                    err = 1;
                Py_CLEAR(it->source);
                break;
            }
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
            int rc = ids ? fqpy_submit(self, it->key, ids, argslist, it->kwargs,
                                       1, flat)
                         : -1;
            Py_XDECREF(ids);
            if (rc < 0) {
                /* Report the submission error, not the source's. */
                Py_XDECREF(et);
                Py_XDECREF(ev);
                Py_XDECREF(etb);
                goto fail;
            }
        }
        if (err)
            PyErr_Restore(et, ev, etb);
        Py_DECREF(argslist);
        Py_XDECREF(idlist);
        if (err)
            return -1; /* the source raised: what it gave was submitted */
        continue;
    fail:
        Py_DECREF(argslist);
        Py_XDECREF(idlist);
        return -1;
    }
    return 0;
}

static PyObject *iter_next(fqpy_iter *it)
{
    if (it->done)
        return NULL;
    fqpy_queue *self = it->q;
    if (self == NULL || fqpy_enter(self, 0) < 0)
        return NULL;
    PyObject *res = NULL;
    for (;;) {
        /* Looking for room costs a little: not at every item. */
        if (it->source && (++it->since_fill >= 32 || self->store.items == 0)) {
            it->since_fill = 0;
            if (iter_fill(it) < 0)
                break;
        }
        res = fqpy_pop_result(self);
        if (res || PyErr_Occurred())
            break;
        if (self->finished) { /* cancelled meanwhile */
            it->done = 1;
            break;
        }
        Py_ssize_t n = it->mode == FQPY_IT_AVAILABLE ? fqpy_drive(self, 0)
                       : fqpy_flush(self) < 0        ? -1
                                                     : fqpy_take_ready(self);
        if (n < 0)
            break;
        if (n > 0)
            continue;
        if (it->mode == FQPY_IT_AVAILABLE) {
            it->done = 1;
            break;
        }
        if (it->source == NULL && self->outstanding == 0 &&
            self->ndeferred == 0) {
            it->done = 1;
            break;
        }
        /* In ordered mode nothing can be taken until the oldest job ends,
         * but workers that finish others need more input meanwhile. */
        double wait = it->source && self->ordered ? 0.005 : -1;
        Py_ssize_t got = fqpy_drive(self, wait);
        if (got < 0)
            break;
        if (got == 0)
            it->since_fill = 32;
    }
    fqpy_leave(self);
    if (it->done) {
        Py_CLEAR(it->source);
    }
    return res;
}

static int iter_traverse(fqpy_iter *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT(it->q);
    Py_VISIT(it->func);
    Py_VISIT(it->source);
    Py_VISIT(it->kwargs);
    return 0;
}

static int iter_clear(fqpy_iter *it)
{
    Py_CLEAR(it->q);
    Py_CLEAR(it->func);
    Py_CLEAR(it->source);
    Py_CLEAR(it->kwargs);
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

static PyType_Slot iter_slots[] = {
    {Py_tp_doc, "Iterator over the results of a ForkQueue."},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, iter_next},
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
