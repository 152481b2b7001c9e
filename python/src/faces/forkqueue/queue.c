/*
 * The ForkQueue type: constructor, methods and attributes. The machinery
 * lives in submit.c, outcome.c, call.c and iter.c, and the face-independent
 * parts in ../../core.
 */
#include "../../fqpy.h"
#include "structmember.h"

#include <limits.h>
#include <math.h>
#include <sys/mman.h>
#include <unistd.h>

int fqpy_enter(fqpy_queue *self, int allow_finished)
{
    return fqpy_core_enter(&self->core, allow_finished);
}

void fqpy_leave(fqpy_queue *self)
{
    fqpy_core_leave(&self->core);
}

int fqpy_check_usable(fqpy_queue *self)
{
    if (fqpy_enter(self, 0) < 0)
        return -1;
    fqpy_leave(self);
    return 0;
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
    self->jobs = PyDict_New();
    self->live_ids = PySet_New(NULL);
    if (fqpy_core_init(&self->core, st, "ForkQueue") < 0 || !self->jobs ||
        !self->live_ids || (self->main = fqpy_call_new(self)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->next_call_id = 1;
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
        if (!PyCallable_Check(v))
            continue;
        Py_ssize_t key = fqpy_reg_key(&self->core.reg, v);
        if (key < 0) {
            rc = -1;
            break;
        }
        /* Known from the start: never freed. */
        if (self->core.reg.users[key] < FQPY_PINNED)
            fqpy_reg_use(&self->core.reg, key, FQPY_PINNED);
    }
    Py_DECREF(values);
    return rc;
}

static int queue_init(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"numforks",    "initfunc", "reraise",
                             "ordered",     "retn_ids", "env",
                             "timeout",     "initargs", "max_jobs_per_worker",
                             "worker_kind", NULL};
    PyObject *numforks = NULL, *initfunc = Py_None, *env = Py_None;
    PyObject *timeout = Py_None, *initargs = NULL, *maxjobs = Py_None;
    PyObject *kind = NULL;
    int reraise = 1, ordered = 1, retn_ids = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOpppOOOO$O:ForkQueue",
                                     kwlist, &numforks, &initfunc, &reraise,
                                     &ordered, &retn_ids, &env, &timeout,
                                     &initargs, &maxjobs, &kind))
        return -1;
    if (self->core.opened || self->core.finished) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ForkQueue.__init__() may be called only once");
        return -1;
    }
    long n = 16;
    if (numforks == Py_None) {
        n = fqpy_cpu_count();
    } else if (numforks) {
        if (PyBool_Check(numforks) || !PyLong_Check(numforks)) {
            PyErr_Format(PyExc_TypeError,
                         "numforks must be an int or None, not %.100s",
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
    int threads = 0;
    if (kind) {
        if (PyUnicode_Check(kind) &&
            PyUnicode_CompareWithASCIIString(kind, "thread") == 0) {
            threads = 1;
        } else if (!PyUnicode_Check(kind) ||
                   PyUnicode_CompareWithASCIIString(kind, "process") != 0) {
            PyErr_Format(PyExc_ValueError,
                         "worker_kind must be 'process' or 'thread', not %R",
                         kind);
            return -1;
        }
    }
    if (initfunc != Py_None && !PyCallable_Check(initfunc)) {
        PyErr_SetString(PyExc_TypeError, "initfunc must be callable or None");
        return -1;
    }
    PyObject *iargs = NULL;
    if (initargs && initargs != Py_None &&
        (iargs = PySequence_Tuple(initargs)) == NULL) {
        PyErr_Format(PyExc_TypeError,
                     "initargs must be a tuple of arguments for initfunc, not "
                     "%.100s",
                     Py_TYPE(initargs)->tp_name);
        return -1;
    }
    if (env != Py_None && !PyMapping_Check(env)) {
        Py_XDECREF(iargs);
        PyErr_SetString(PyExc_TypeError, "env must be a mapping or None");
        return -1;
    }
    int tmo;
    if (fqpy_parse_limit(timeout, "timeout", &tmo) < 0) {
        Py_XDECREF(iargs);
        return -1;
    }
    unsigned long long maxj = 0;
    if (maxjobs != Py_None) {
        if (PyBool_Check(maxjobs) || !PyLong_Check(maxjobs) ||
            ((maxj = PyLong_AsUnsignedLongLong(maxjobs)) ==
                 (unsigned long long)-1 &&
             PyErr_Occurred()) ||
            maxj == 0) {
            PyErr_Clear();
            Py_XDECREF(iargs);
            PyErr_Format(PyExc_ValueError,
                         "max_jobs_per_worker must be a positive int or None, "
                         "not %R",
                         maxjobs);
            return -1;
        }
    }
    self->numforks = (int)n;
    self->reraise = reraise;
    self->ordered = ordered;
    self->retn_ids = retn_ids;
    self->timeout = tmo > 0 ? tmo / 1000.0 : 0;
    self->max_jobs_per_worker = maxj;
    self->thread_kind = threads;
    self->core.reg.shared = threads;
    Py_XSETREF(self->initfunc, Py_NewRef(initfunc));
    Py_XSETREF(self->initargs, iargs);
    /* Callables of env are registered before the fork, so the workers
     * know them from the start (no refork needed). */
    if (env != Py_None && register_env(self, env) < 0)
        return -1;
    self->core.reg.last_func = NULL;

    /* The page telling workers which calls were closed. */
    void *page = mmap(NULL, FQPY_CANCEL_BITS / 8, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    self->cancel_page = page == MAP_FAILED ? NULL : page;

    fq_options o = {0};
    o.workers = self->numforks;
    o.ordered = self->ordered;
    o.max_jobs_per_worker = maxj;
    /* Only with an initfunc: the core counts deaths during init. */
    if (initfunc != Py_None)
        o.init = fqpy_worker_init;
    o.udata = self;
    if (threads) {
        /* Every thread counts itself in the link (thread.c). */
        if (self->tlink == NULL && (self->tlink = fqpy_tlink_new(self)) == NULL)
            return -1;
        o.kind = FQ_WORKER_THREAD;
        o.init = fqpy_thread_init;
        o.udata = self->tlink;
    }
    if (fqpy_core_open(&self->core, &o) < 0)
        return -1;
    self->last_refork = -1e9; /* the first refork is never delayed */
    return 0;
}

static int queue_traverse(fqpy_queue *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->initfunc);
    Py_VISIT(self->initargs);
    Py_VISIT(self->jobs);
    Py_VISIT(self->live_ids);
    Py_VISIT(self->main);
    Py_VISIT(self->hjobs);
    for (size_t i = 0; i < self->ndeferred; i++) {
        Py_VISIT(self->deferred[i].rec);
        Py_VISIT(self->deferred[i].payload);
    }
    return fqpy_core_traverse(&self->core, visit, arg);
}

static int queue_clear(fqpy_queue *self)
{
    fqpy_tlink_drop(self); /* before the queue goes: jobs stop seeing it */
    fqpy_core_clear(&self->core);
    fqpy_drop_deferred(self);
    Py_CLEAR(self->initfunc);
    Py_CLEAR(self->initargs);
    Py_CLEAR(self->jobs);
    Py_CLEAR(self->live_ids);
    while (self->calls)
        fqpy_call_unlink(self->calls);
    Py_CLEAR(self->main);
    Py_CLEAR(self->hjobs);
    return 0;
}

static void queue_dealloc(fqpy_queue *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    queue_clear(self);
    if (self->cancel_page)
        munmap(self->cancel_page, FQPY_CANCEL_BITS / 8);
    PyMem_RawFree(self->hdone);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---- methods ------------------------------------------------------------ */

static PyObject *queue_add(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "args", "argsv", "jobid", "timeout", NULL};
    PyObject *func, *fargs, *argsv = Py_None, *jobid = Py_None;
    PyObject *timeout = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOO:add", kwlist, &func,
                                     &fargs, &argsv, &jobid, &timeout))
        return NULL;
    if (fqpy_check_callable(func, "add") < 0)
        return NULL;
    int tmo = 0;
    if (timeout && fqpy_parse_limit(timeout, "timeout", &tmo) < 0)
        return NULL;
    if (!timeout)
        tmo = self->timeout > 0 ? (int)(self->timeout * 1000) : -1;
    PyObject *targs = fqpy_add_args(fargs);
    if (targs == NULL)
        return NULL;
    if (fqpy_enter(self, 0) < 0) {
        Py_DECREF(targs);
        return NULL;
    }
    PyObject *id = NULL, *kwargs = NULL, *ids = NULL, *argslist = NULL;
    PyObject *ret = NULL;
    int added = 0;
    if (jobid == Py_None) {
        if ((id = fqpy_next_auto_id(self)) == NULL)
            goto out;
    } else {
        if (!self->track_ids && fqpy_start_tracking_ids(self) < 0)
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
    if (argsv != Py_None && (kwargs = fqpy_normalize_kwargs(argsv)) == NULL)
        goto out;
    Py_ssize_t key = fqpy_reg_key(&self->core.reg, func);
    if (key < 0)
        goto out;
    ids = PyList_New(1);
    argslist = PyList_New(1);
    if (!ids || !argslist)
        goto out;
    PyList_SET_ITEM(ids, 0, Py_NewRef(id));
    PyList_SET_ITEM(argslist, 0, Py_NewRef(targs));
    if (fqpy_submit(self, self->main, key, ids, argslist, kwargs, 0, 0, Py_None,
                    tmo) < 0)
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
    Py_DECREF(targs);
    Py_XDECREF(kwargs);
    Py_XDECREF(ids);
    Py_XDECREF(argslist);
    fqpy_leave(self);
    return ret;
}

static PyObject *queue_poll(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = NULL;
    double t = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:poll", kwlist, &timeout))
        return NULL;
    if (timeout && fqpy_parse_timeout(timeout, &t) < 0)
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
    return fqpy_iter_new(self, FQPY_IT_AVAILABLE, NULL, NULL, NULL, NULL, -1);
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
    if (fqpy_parse_timeout(interval, &t) < 0)
        return NULL;
    if (fqpy_check_usable(self) < 0)
        return NULL;
    return fqpy_iter_new(self, poll ? FQPY_IT_AVAILABLE : FQPY_IT_ALL, NULL,
                         NULL, NULL, NULL, -1);
}

static PyObject *start_process(fqpy_queue *self, PyObject *func,
                               PyObject *iterable, PyObject *argsv, int mode,
                               PyObject *progress, Py_ssize_t total,
                               const char *method)
{
    if (fqpy_check_callable(func, method) < 0)
        return NULL;
    if (progress == Py_None || progress == Py_False)
        progress = NULL;
    if (progress && progress != Py_True && !PyCallable_Check(progress)) {
        PyErr_Format(PyExc_TypeError,
                     "%s(): progress must be None, True or a callable "
                     "(done, total), not %.100s",
                     method, Py_TYPE(progress)->tp_name);
        return NULL;
    }
    if (fqpy_check_usable(self) < 0)
        return NULL;
    PyObject *kwargs = NULL;
    if (argsv != Py_None && (kwargs = fqpy_normalize_kwargs(argsv)) == NULL)
        return NULL;
    PyObject *source = PyObject_GetIter(iterable);
    PyObject *it = NULL;
    if (source)
        it = fqpy_iter_new(self, mode, func, source, kwargs, progress, total);
    Py_XDECREF(source);
    Py_XDECREF(kwargs);
    return it;
}

static PyObject *queue_process(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func",     "iterable", "argsv",
                             "interval", "progress", NULL};
    PyObject *func, *iterable, *argsv = Py_None, *interval = Py_None;
    PyObject *progress = Py_None;
    double t;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO$O:process", kwlist,
                                     &func, &iterable, &argsv, &interval,
                                     &progress))
        return NULL;
    if (fqpy_parse_timeout(interval, &t) < 0)
        return NULL;
    Py_ssize_t total = progress != Py_None ? fqpy_input_len(iterable) : -1;
    return start_process(self, func, iterable, argsv, FQPY_IT_PROCESS, progress,
                         total, "process");
}

static PyObject *queue_map(fqpy_queue *self, PyObject *args, PyObject *kwds)
{
    PyObject *progress = Py_None;
    if (kwds && PyDict_GET_SIZE(kwds) > 0) {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwds, &pos, &k, &v)) {
            if (PyUnicode_Check(k) &&
                PyUnicode_CompareWithASCIIString(k, "progress") == 0) {
                progress = v;
                continue;
            }
            PyErr_Format(PyExc_TypeError,
                         "map() got an unexpected keyword argument %R", k);
            return NULL;
        }
    }
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "map() needs a function");
        return NULL;
    }
    PyObject *func = PyTuple_GET_ITEM(args, 0);
    Py_ssize_t total = -1;
    if (progress != Py_None) {
        for (Py_ssize_t i = 1; i < n; i++) {
            Py_ssize_t m = fqpy_input_len(PyTuple_GET_ITEM(args, i));
            if (m < 0) {
                total = -1;
                break;
            }
            if (total < 0 || m < total)
                total = m;
        }
    }
    if (n == 2)
        return start_process(self, func, PyTuple_GET_ITEM(args, 1), Py_None,
                             FQPY_IT_MAP1, progress, total, "map");
    PyObject *rest = PyTuple_GetSlice(args, 1, n);
    if (rest == NULL)
        return NULL;
    PyObject *zip = PyObject_Call((PyObject *)&PyZip_Type, rest, NULL);
    Py_DECREF(rest);
    if (zip == NULL)
        return NULL;
    PyObject *it = start_process(self, func, zip, Py_None, FQPY_IT_PROCESS,
                                 progress, total, "map");
    Py_DECREF(zip);
    return it;
}

static PyObject *queue_finish(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (self->core.finished)
        Py_RETURN_NONE;
    if (fqpy_enter(self, 0) < 0)
        return NULL;
    PyObject *ret = NULL;
    /* Run what is queued (re-running the items of crashed batches), taking
     * outcomes as they come so that Ctrl-C stays prompt. Results are
     * dropped anyway: they do not pile up. */
    self->dropping = 1;
    for (fqpy_call *c = self->calls; c; c = c->next)
        fqpy_store_clear(&c->store);
    for (;;) {
        if (fqpy_drive(self, -1) < 0)
            goto out;
        if (self->outstanding == 0 && self->ndeferred == 0)
            break;
    }
    int rc = fqpy_core_finish(&self->core);
    fqpy_cancel(self); /* nothing left to cancel: frees and drops */
    if (rc < 0 && rc != FQ_EFINISHED) {
        fqpy_core_error(&self->core, rc, "finishing");
        goto out;
    }
    ret = Py_NewRef(Py_None);
out:
    self->dropping = 0;
    fqpy_leave(self);
    return ret;
}

static PyObject *queue_cancel(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (self->core.finished)
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
    if (!self->core.finished && fqpy_enter(self, 1) == 0) {
        fqpy_cancel(self);
        fqpy_leave(self);
    }
    PyErr_Clear();
    Py_RETURN_FALSE;
}

/* The one method any thread may call while another waits on the queue (the
 * GIL is all it needs): makes that wait return early, or the next one. */
static PyObject *queue_wakeup(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (!self->core.opened)
        Py_RETURN_NONE; /* finished: nothing waits any more */
    self->woken = 1;
    int rc = fq_wakeup(self->core.q);
    if (rc < 0 && rc != FQ_ECLOSED)
        return fqpy_core_error(&self->core, rc, "waking the queue");
    Py_RETURN_NONE;
}

static PyObject *queue_worker_pids(fqpy_queue *self, PyObject *noargs)
{
    (void)noargs;
    if (fqpy_check_usable(self) < 0)
        return NULL;
    pid_t pids[4096];
    int n = fq_worker_pids(self->core.q, pids, 4096);
    if (n < 0)
        return fqpy_core_error(&self->core, n, "listing workers");
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
    int rc = fq_stats_get(self->core.q, &s);
    if (rc < 0)
        return fqpy_core_error(&self->core, rc, "reading statistics");
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsisnsnsn}", "submitted",
        (unsigned long long)s.submitted, "finished",
        (unsigned long long)s.finished, "taken", (unsigned long long)s.taken,
        "pending", (unsigned long long)s.pending, "running",
        (unsigned long long)s.running, "crashed", (unsigned long long)s.crashed,
        "timedout", (unsigned long long)s.timedout, "respawns",
        (unsigned long long)s.respawns, "workers", s.workers, "registry",
        self->core.reg.nlive, "stored", (Py_ssize_t)fqpy_stored_items(self),
        "deferred", (Py_ssize_t)self->ndeferred);
}

static PyObject *get_finished(fqpy_queue *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->core.finished);
}

static PyMethodDef queue_methods[] = {
    {"add", (PyCFunction)(void (*)(void))queue_add,
     METH_VARARGS | METH_KEYWORDS,
     "add($self, func, args, argsv=None, jobid=None, timeout=None)\n--\n\n"
     "Queue the call func(*args, **argsv) with the given id (default: the\n"
     "next integer of a counter starting at 0). Raises ValueError if the id\n"
     "belongs to a job whose result has not been yielded yet. timeout: the\n"
     "job's time limit in seconds (default: the queue's)."},
    {"poll", (PyCFunction)(void (*)(void))queue_poll,
     METH_VARARGS | METH_KEYWORDS,
     "poll($self, timeout=0)\n--\n\n"
     "Collect results arriving within timeout seconds (0: do not wait,\n"
     "None: until one arrives). Returns True if any arrived."},
    {"wait", (PyCFunction)queue_wait, METH_NOARGS,
     "wait($self)\n--\n\nRun until every added job has finished; results stay "
     "stored."},
    {"yield_results", (PyCFunction)queue_yield_results, METH_NOARGS,
     "yield_results($self)\n--\n\nIterate over the results available now, "
     "without blocking."},
    {"results", (PyCFunction)(void (*)(void))queue_results,
     METH_VARARGS | METH_KEYWORDS,
     "results($self, poll=False, interval=None)\n--\n\n"
     "Iterate over the remaining results, waiting for them (poll=False) or\n"
     "only over those available now (poll=True)."},
    {"process", (PyCFunction)(void (*)(void))queue_process,
     METH_VARARGS | METH_KEYWORDS,
     "process($self, func, iterable, argsv=None, interval=None, *, "
     "progress=None)"
     "\n--\n\n"
     "Lazily run func(*item, **argsv) for each item of iterable, yielding\n"
     "results as they become available, then the rest. progress: a\n"
     "callable (done, total_or_None), or True for a bar on stderr."},
    {"map", (PyCFunction)(void (*)(void))queue_map,
     METH_VARARGS | METH_KEYWORDS,
     "map($self, func, *iterables, progress=None)\n--\n\nSame as process(func, "
     "zip(*iterables)): a lazy generator of the results."},
    {"finish", (PyCFunction)queue_finish, METH_NOARGS,
     "finish($self)\n--\n\nRun every queued job, then stop and reap the "
     "workers.\n"
     "Results not yet taken are dropped. Harmless when called again."},
    {"cancel", (PyCFunction)queue_cancel, METH_NOARGS,
     "cancel($self)\n--\n\nDrop queued jobs, stop the workers now (SIGTERM, "
     "then\n"
     "SIGKILL) and reap them. The queue is finished afterwards."},
    {"submit_job", (PyCFunction)(void (*)(void))fqpy_queue_submit_job,
     METH_VARARGS | METH_KEYWORDS,
     "submit_job($self, func, /, *args, **kwargs)\n--\n\nRuns func(*args, "
     "**kwargs) in a worker and returns a Job, a future for its outcome "
     "(since 0.2.0). Its result never appears in results() or "
     "yield_results()."},
    {"__enter__", (PyCFunction)queue_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)queue_exit, METH_VARARGS, NULL},
    {"_worker_pids", (PyCFunction)queue_worker_pids, METH_NOARGS,
     "Pids of the live workers (for tests and monitoring)."},
    {"_stats", (PyCFunction)queue_stats, METH_NOARGS,
     "Counters of the core queue (for tests and monitoring)."},
    {"stats", (PyCFunction)queue_stats, METH_NOARGS,
     "stats($self)\n--\n\nThe queue's counters as a dict (see the docs)."},
    /* Engine methods (thread-safe, for other faces and event loops) go
     * below this line. */
    {"_wakeup", (PyCFunction)queue_wakeup, METH_NOARGS,
     "_wakeup($self)\n--\n\nThread-safe: makes a poll() or wait() running in "
     "another thread return early (or the next one, if none runs)."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef queue_members[] = {
    {"numforks", T_INT, offsetof(fqpy_queue, numforks), READONLY,
     "Number of worker processes."},
    {"ordered", T_BOOL, offsetof(fqpy_queue, ordered), READONLY, NULL},
    {"reraise", T_BOOL, offsetof(fqpy_queue, reraise), READONLY, NULL},
    {"retn_ids", T_BOOL, offsetof(fqpy_queue, retn_ids), READONLY, NULL},
    {"timeout", T_DOUBLE, offsetof(fqpy_queue, timeout), READONLY,
     "Default time limit of a job in seconds (0.0: none)."},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(fqpy_queue, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyObject *get_worker_kind(fqpy_queue *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(self->thread_kind ? "thread" : "process");
}

static PyGetSetDef queue_getset[] = {
    {"worker_kind", (getter)get_worker_kind, NULL,
     "'process' (forked workers, the default) or 'thread'.", NULL},
    {"finished", (getter)get_finished, NULL,
     "True once the queue is finished (no further use possible).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot queue_slots[] = {
    {Py_tp_doc,
     "ForkQueue(numforks=16, initfunc=None, reraise=True, ordered=True, "
     "retn_ids=False, env=None, timeout=None, initargs=(), "
     "max_jobs_per_worker=None, *, worker_kind='process')\n--\n\n"
     "A pool of numforks worker processes forked from this one (or, with\n"
     "worker_kind='thread', threads of this process).\n\n"
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

/* ---- registration ------------------------------------------------------- */

int fqpy_forkqueue_register(PyObject *m, fqpy_state *st)
{
    st->exc_type = PyErr_NewExceptionWithDoc(
        "forkqueue.ForkQueueException",
        "A job failed: its exception, or the death of the worker running "
        "it.\n\nThe message is 'Exception running task:\\n' followed by the "
        "worker's\nformatted traceback (or the cause of the worker's death). "
        "The same text\nis in the attribute `backtrace`. Attributes: jobid, "
        "exception (the job's\nexception, or None), signal and exitcode (a "
        "dead worker's, or None).",
        PyExc_RuntimeError, NULL);
    if (st->exc_type == NULL ||
        PyModule_AddObjectRef(m, "ForkQueueException", st->exc_type) < 0)
        return -1;
    if ((st->exc_subtypes = PyDict_New()) == NULL)
        return -1;
    st->call_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &fqpy_call_spec, NULL);
    if (st->call_type == NULL)
        return -1;
    st->queue_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &fqpy_queue_spec, NULL);
    if (st->queue_type == NULL || PyModule_AddType(m, st->queue_type) < 0)
        return -1;
    st->job_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &fqpy_job_spec, NULL);
    if (st->job_type == NULL ||
        PyModule_AddObjectRef(m, "Job", (PyObject *)st->job_type) < 0)
        return -1;
    st->iter_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &fqpy_iter_spec, NULL);
    if (st->iter_type == NULL ||
        PyModule_AddObjectRef(m, "ResultIterator", (PyObject *)st->iter_type) <
            0)
        return -1;
    return 0;
}
