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

/* Pulls items into batches and submits them, within the look-ahead. */
static int iter_fill(fqpy_iter *it)
{
    fqpy_queue *self = it->q;
    Py_ssize_t max_jobs = 2 * (Py_ssize_t)self->numforks + 2;
    while (it->source &&
           self->outstanding + (Py_ssize_t)self->ndeferred < max_jobs) {
        int64_t b = fqpy_next_batch(self, it->key);
        if (self->store.count > (size_t)(2 * b + 256))
            break; /* results are not being consumed: wait for that */
        PyObject *ids = PyList_New(0);
        PyObject *argslist = PyList_New(0);
        if (!ids || !argslist)
            goto fail;
        double t0 = b > 64 ? fqpy_now() : 0;
        for (int64_t i = 0; i < b; i++) {
            PyObject *item = PyIter_Next(it->source);
            if (item == NULL) {
                if (PyErr_Occurred()) {
                    /* Submit what was pulled, then report the error. */
                    PyObject *t, *v, *tb;
                    PyErr_Fetch(&t, &v, &tb);
                    if (PyList_GET_SIZE(ids) > 0 &&
                        fqpy_submit(self, it->key, ids, argslist, it->kwargs,
                                    1) < 0)
                        PyErr_Clear();
                    PyErr_Restore(t, v, tb);
                    Py_CLEAR(it->source);
                    goto fail;
                }
                Py_CLEAR(it->source);
                break;
            }
            PyObject *id = fqpy_next_auto_id(self);
            if (id == NULL || PyList_Append(argslist, item) < 0 ||
                PyList_Append(ids, id) < 0) {
                Py_XDECREF(id);
                Py_DECREF(item);
                goto fail;
            }
            Py_DECREF(id);
            Py_DECREF(item);
            /* A slow source must not hold back a large batch. */
            if ((i & 63) == 63 && fqpy_now() - t0 > 0.002)
                break;
        }
        if (PyList_GET_SIZE(ids) > 0 &&
            fqpy_submit(self, it->key, ids, argslist, it->kwargs, 1) < 0)
            goto fail;
        Py_DECREF(ids);
        Py_DECREF(argslist);
        continue;
    fail:
        Py_XDECREF(ids);
        Py_XDECREF(argslist);
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
        if (it->source && iter_fill(it) < 0)
            break;
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
        if (fqpy_drive(self, -1) < 0)
            break;
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
