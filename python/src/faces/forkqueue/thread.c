/*
 * ForkQueue(worker_kind="thread"): the workers are threads of this process
 * (fq_options.kind = FQ_WORKER_THREAD), started by the core, not by Python.
 *
 * The GIL: each worker thread gets a Python thread state when it starts
 * (before initfunc), kept for its life, so that what initfunc puts in a
 * threading.local() is there for every job of that thread. A job takes the
 * GIL with it and releases it around anything that may block on the parent
 * (fq_reply writes to the channel at once for a thread). The thread state
 * is deleted when the thread ends, unless the interpreter is finalizing
 * (it then frees every thread state itself). The main thread always waits in
 * the core with the GIL released, and freeing the queue never waits for a
 * thread, so neither side holds the GIL while waiting for the other.
 *
 * Lifetime: a thread may outlive its queue (the core abandons a thread over
 * its time limit or at cancel(), and the thread runs until its job returns),
 * so the threads do not point at the ForkQueue object directly but at a
 * link: a small block holding a borrowed pointer to the queue, cleared
 * (under the GIL) when the queue is cleared, and counted by the queue and
 * by every thread that started (a thread's count goes at thread exit,
 * through a thread-specific key's destructor, which needs no GIL). A job
 * holds a reference to the queue while it runs; if that is the last one,
 * it is dropped by the main thread (a pending call), so that a queue is
 * never destroyed from one of its own workers.
 *
 * Payloads and results are pickled as for processes: a job never shares a
 * mutable object with the caller, and the same job code (worker.c) runs.
 */
#include "../../fqpy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct fqpy_tlink {
    fqpy_queue *self; /* borrowed; NULL once the queue is cleared */
    atomic_long refs;
};

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static int key_ok;

static void link_release(fqpy_tlink *l)
{
    if (atomic_fetch_sub(&l->refs, 1) == 1)
        free(l);
}

/* What a worker thread keeps: the key's value. */
typedef struct tthread {
    fqpy_tlink *link;
    PyThreadState *ts;
} tthread;

static int finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return !Py_IsInitialized() || Py_IsFinalizing();
#else
    return !Py_IsInitialized() || _Py_IsFinalizing();
#endif
}

/* At thread exit (no GIL held). */
static void thread_gone(void *p)
{
    tthread *t = p;
    if (t->ts && !finalizing()) {
        PyEval_RestoreThread(t->ts);
        PyThreadState_Clear(t->ts);
        PyThreadState_DeleteCurrent();
    }
    link_release(t->link);
    free(t);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&key, thread_gone) == 0;
}

fqpy_tlink *fqpy_tlink_new(fqpy_queue *self)
{
    fqpy_tlink *l = malloc(sizeof(*l));
    if (l == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    l->self = self;
    atomic_init(&l->refs, 1);
    return l;
}

void fqpy_tlink_drop(fqpy_queue *self)
{
    fqpy_tlink *l = self->tlink;
    if (l == NULL)
        return;
    self->tlink = NULL;
    l->self = NULL; /* under the GIL: no job sees the queue any more */
    link_release(l);
}

static int decref_later(void *o)
{
    Py_DECREF((PyObject *)o);
    return 0;
}

/* A reference to the queue (GIL held); NULL if it is gone. */
static fqpy_queue *hold_queue(fqpy_tlink *l)
{
    fqpy_queue *self = l->self;
    if (self)
        Py_INCREF(self);
    return self;
}

static void release_queue(fqpy_queue *self)
{
    if (Py_REFCNT(self) == 1 && Py_AddPendingCall(decref_later, self) == 0)
        return; /* destroyed by the main thread, not by its own worker */
    Py_DECREF(self);
}

int fqpy_thread_init(void *udata)
{
    fqpy_tlink *l = udata;
    tthread *t = malloc(sizeof(*t));
    pthread_once(&key_once, make_key);
    if (t == NULL || !key_ok || pthread_setspecific(key, t) != 0) {
        free(t);
        return fq_init_fail("forkqueue: could not set up a worker thread");
    }
    atomic_fetch_add(&l->refs, 1);
    t->link = l;
    t->ts = NULL;
    /* A thread state for the thread's life: the gilstate count stays at
     * one, jobs swap it in and out. */
    (void)PyGILState_Ensure();
    t->ts = PyThreadState_Get();
    int rc = 0;
    fqpy_queue *self = hold_queue(l);
    if (self) {
        rc = fqpy_worker_init(self);
        release_queue(self);
    }
    PyEval_SaveThread();
    return rc;
}

int fqpy_thread_job(fq_ctx *ctx, const void *arg, size_t len)
{
    tthread *t = key_ok ? pthread_getspecific(key) : NULL;
    if (t == NULL || t->ts == NULL) /* not a thread its init set up */
        return fq_fail(ctx, 1, "forkqueue: worker thread not set up");
    PyEval_RestoreThread(t->ts);
    fqpy_queue *self = hold_queue(t->link);
    int rc;
    if (self) {
        rc = fqpy_worker_run(ctx, self, arg, len);
        release_queue(self);
        PyEval_SaveThread();
    } else {
        PyEval_SaveThread();
        rc = fq_fail(ctx, 1, "forkqueue: the queue was freed");
    }
    return rc;
}
