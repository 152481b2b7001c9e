/*
 * What runs inside a worker process (or, for worker_kind="thread", a worker
 * thread: thread.c takes the GIL and calls fqpy_worker_run()).
 *
 * A worker is a fork of the interpreter that created (or reforked) the
 * queue; it holds the GIL from the fork until it _exit()s, so these
 * functions call into Python freely. The callable is found by its key in the
 * worker's inherited copy of the queue's registry: nothing about the
 * callable itself is ever pickled.
 *
 * Job payload (pickled):  (key, [args, ...], kwargs or None, flat, call id,
 *                          index of the first item in the call or None)
 *                         flat: each element is the single argument itself
 * Reply (pickled):        ([value, ...], {index: (exception, traceback)} or
 *                          None, nanoseconds spent in the worker)
 */
#include "../../fqpy.h"

#include <stdio.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Records the current exception as the error of item i. With prefix, the
 * traceback text starts with it (for a result that could not be pickled). */
static int record_error(fqpy_state *st, PyObject **errors, Py_ssize_t i,
                        const char *prefix)
{
    PyObject *exc = NULL;
    PyObject *tb = fqpy_format_current_exc(st, &exc);
    int rc = -1;
    if (tb == NULL || exc == NULL)
        goto out;
    if (prefix) {
        PyObject *full = PyUnicode_FromFormat("%s%U", prefix, tb);
        if (full == NULL)
            goto out;
        Py_SETREF(tb, full);
    }
    exc = fqpy_shippable_exc(st, exc);
    if (*errors == NULL && (*errors = PyDict_New()) == NULL)
        goto out;
    PyObject *k = PyLong_FromSsize_t(i);
    PyObject *pair = PyTuple_Pack(2, exc, tb);
    if (k && pair)
        rc = PyDict_SetItem(*errors, k, pair);
    Py_XDECREF(k);
    Py_XDECREF(pair);
out:
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    return rc;
}

/* An item that is not a tuple: used as the arguments if it is a sequence
 * (as func(*item) would), else a clear TypeError naming the item. */
static PyObject *bad_item(PyObject *a, PyObject *first, Py_ssize_t i)
{
    PyObject *t = PySequence_Tuple(a);
    if (t || !PyErr_ExceptionMatches(PyExc_TypeError))
        return t;
    PyErr_Clear();
    Py_ssize_t idx = first == Py_None ? -1 : PyLong_AsSsize_t(first) + i;
    PyObject *r = PyObject_Repr(a);
    if (r == NULL)
        PyErr_Clear();
    PyErr_Format(PyExc_TypeError,
                 "item %zd of the input is %.200S (%.100s), not a tuple of "
                 "positional arguments: process() calls func(*item); write "
                 "(%.200S,) for a single argument, or use map()",
                 idx, r ? r : Py_None, Py_TYPE(a)->tp_name, r ? r : Py_None);
    Py_XDECREF(r);
    return NULL;
}

static PyObject *build_reply(PyObject *values, PyObject *errors, int64_t ns)
{
    return Py_BuildValue("(OOL)", values, errors ? errors : Py_None,
                         (long long)ns);
}

/* Reports a failure of the whole job (malformed payload, unknown callable,
 * reply that cannot be pickled even after clean-up) with its traceback. */
static int fail_job(fq_ctx *ctx, fqpy_queue *self)
{
    PyObject *tb = fqpy_format_current_exc(self->st, NULL);
    const char *msg = tb ? PyUnicode_AsUTF8(tb) : NULL;
    if (msg == NULL)
        PyErr_Clear();
    int rc;
    if (self->thread_kind) {
        Py_BEGIN_ALLOW_THREADS
        rc = fq_fail(ctx, 1, msg ? msg : "forkqueue: job failed\n");
        Py_END_ALLOW_THREADS
    } else {
        rc = fq_fail(ctx, 1, msg ? msg : "forkqueue: job failed\n");
        fqpy_flush_std_streams();
    }
    Py_XDECREF(tb);
    return rc;
}

/* Sends the pickled reply. A thread worker writes it to the channel at
 * once, which may wait for the parent to read: without the GIL. */
static int send_reply(fq_ctx *ctx, fqpy_queue *self, PyObject *bytes)
{
    const char *p = PyBytes_AS_STRING(bytes);
    size_t n = (size_t)PyBytes_GET_SIZE(bytes);
    int rc;
    if (!self->thread_kind)
        return fq_reply(ctx, p, n);
    Py_BEGIN_ALLOW_THREADS
    rc = fq_reply(ctx, p, n);
    Py_END_ALLOW_THREADS
    return rc;
}

int fqpy_worker_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fqpy_worker_run(ctx, fq_ctx_udata(ctx), arg, len);
}

int fqpy_worker_run(fq_ctx *ctx, fqpy_queue *self, const void *arg, size_t len)
{
    fqpy_state *st = self->st;
    int64_t t0 = now_ns();
    PyObject *payload = NULL, *values = NULL, *errors = NULL, *reply = NULL;
    PyObject *bytes = NULL;
    int rc;

    payload = fqpy_loads_mem(st, arg, len);
    if (payload == NULL)
        goto fail;
    if (!PyTuple_Check(payload) || PyTuple_GET_SIZE(payload) != 6 ||
        !PyList_Check(PyTuple_GET_ITEM(payload, 1))) {
        PyErr_SetString(PyExc_RuntimeError, "forkqueue: malformed job");
        goto fail;
    }
    Py_ssize_t key = PyLong_AsSsize_t(PyTuple_GET_ITEM(payload, 0));
    if (key == -1 && PyErr_Occurred())
        goto fail;
    PyObject *func = fqpy_reg_get(&self->core.reg, key);
    if (func == NULL)
        goto fail;
    uint32_t callid =
        (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(payload, 4));
    PyObject *first = PyTuple_GET_ITEM(payload, 5);
    PyObject *argslist = PyTuple_GET_ITEM(payload, 1);
    PyObject *kwargs = PyTuple_GET_ITEM(payload, 2);
    if (kwargs == Py_None)
        kwargs = NULL;
    int flat = PyTuple_GET_ITEM(payload, 3) == Py_True;
    Py_INCREF(func);
    Py_ssize_t n = PyList_GET_SIZE(argslist);
    values = PyList_New(n);
    if (values == NULL) {
        Py_DECREF(func);
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = PyList_GET_ITEM(argslist, i);
        PyObject *r;
        if (fqpy_call_cancelled(self->cancel_page, callid) ||
            (self->thread_kind && fq_ctx_cancelled(ctx))) {
            /* Its call was closed, or its thread abandoned (time limit,
             * cancel()): the parent drops this reply. */
            PyList_SET_ITEM(values, i, Py_NewRef(Py_None));
            continue;
        }
        if (flat && kwargs == NULL) {
            r = PyObject_CallOneArg(func, a);
        } else {
            PyObject *t = flat               ? PyTuple_Pack(1, a)
                          : PyTuple_Check(a) ? Py_NewRef(a)
                                             : bad_item(a, first, i);
            r = t ? PyObject_Call(func, t, kwargs) : NULL;
            Py_XDECREF(t);
        }
        if (r == NULL) {
            /* Any BaseException (SystemExit, KeyboardInterrupt) included:
             * it is the job's outcome and must not unwind this worker. */
            if (record_error(st, &errors, i, NULL) < 0) {
                Py_DECREF(func);
                goto fail;
            }
            r = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(values, i, r);
    }
    Py_DECREF(func);
    if (!self->thread_kind) /* a thread shares the parent's streams */
        fqpy_flush_std_streams();

    reply = build_reply(values, errors, now_ns() - t0);
    if (reply == NULL)
        goto fail;
    bytes = PyObject_CallFunctionObjArgs(st->dumps, reply, st->protocol, NULL);
    if (bytes == NULL) {
        /* Find the results that cannot be pickled and turn each into the
         * error of its own item. */
        PyErr_Clear();
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = PyList_GET_ITEM(values, i);
            if (v == Py_None)
                continue;
            PyObject *b =
                PyObject_CallFunctionObjArgs(st->dumps, v, st->protocol, NULL);
            if (b) {
                Py_DECREF(b);
                continue;
            }
            char pre[200];
            snprintf(pre, sizeof(pre),
                     "Result could not be pickled (a %.100s) to send it "
                     "back:\n",
                     Py_TYPE(v)->tp_name);
            if (record_error(st, &errors, i, pre) < 0)
                goto fail;
            PyList_SetItem(values, i, Py_NewRef(Py_None));
        }
        Py_SETREF(reply, build_reply(values, errors, now_ns() - t0));
        if (reply == NULL)
            goto fail;
        bytes =
            PyObject_CallFunctionObjArgs(st->dumps, reply, st->protocol, NULL);
        if (bytes == NULL)
            goto fail;
    }
    rc = send_reply(ctx, self, bytes);
    if (rc < 0) /* an empty result would read as a corrupt reply */
        rc = fq_fail(ctx, 1, fq_strerror(rc));
    Py_DECREF(bytes);
    Py_DECREF(reply);
    Py_XDECREF(errors);
    Py_DECREF(values);
    Py_DECREF(payload);
    return rc;

fail:
    rc = fail_job(ctx, self);
    Py_XDECREF(bytes);
    Py_XDECREF(reply);
    Py_XDECREF(errors);
    Py_XDECREF(values);
    Py_XDECREF(payload);
    return rc;
}

int fqpy_worker_init(void *udata)
{
    fqpy_queue *self = udata;
    if (self->initfunc == NULL || self->initfunc == Py_None)
        return 0;
    PyObject *r = self->initargs
                      ? PyObject_Call(self->initfunc, self->initargs, NULL)
                      : PyObject_CallNoArgs(self->initfunc);
    if (r) {
        Py_DECREF(r);
        if (!self->thread_kind)
            fqpy_flush_std_streams();
        return 0;
    }
    PyObject *tb = fqpy_format_current_exc(self->st, NULL);
    PyObject *msg =
        tb ? PyUnicode_FromFormat("initfunc failed:\n%U", tb) : NULL;
    const char *s = msg ? PyUnicode_AsUTF8(msg) : NULL;
    PyErr_Clear();
    if (!self->thread_kind)
        fqpy_flush_std_streams();
    int rc = fq_init_fail(s ? s : "initfunc failed"); /* copies s */
    Py_XDECREF(tb);
    Py_XDECREF(msg);
    return rc;
}
