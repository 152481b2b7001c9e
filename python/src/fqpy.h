/*
 * Internal header of the forkqueue CPython extension (_forkqueue).
 *
 * Layout: module.c (module state, types, exceptions), queue.c (the ForkQueue
 * type: submission, draining outcomes, waiting), store.c (the buffer of
 * results not yet yielded), iter.c (the iterators behind results(),
 * yield_results() and process()), worker.c (what runs inside a worker).
 */
#ifndef FQPY_H
#define FQPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "forkqueue.h"

/* Per-module state: everything the module needs, no static PyObject. */
typedef struct fqpy_state {
    PyTypeObject *queue_type;
    PyTypeObject *iter_type;
    PyObject *exc_type;         /* ForkQueueException */
    PyObject *dumps;            /* _pickle.dumps */
    PyObject *loads;            /* _pickle.loads */
    PyObject *protocol;         /* pickle.HIGHEST_PROTOCOL as an int object */
    PyObject *format_exception; /* traceback.format_exception */
    PyObject *empty_str;
    /* Queues not yet closed, for the atexit clean-up (borrowed). */
    struct fqpy_queue *live;
} fqpy_state;

/* Result slot states. */
enum {
    FQPY_READY = 0,   /* value is the result */
    FQPY_PENDING = 1, /* placeholder, filled when a re-run item ends */
    FQPY_ERROR = 2,   /* value is a ForkQueueException not raised yet */
    FQPY_BATCH = 3    /* value is the list of results of a whole batch that
                         succeeded; id its list of ids, or NULL for the
                         automatic ids num, num + 1, ...; pos the next one */
};

typedef struct fqpy_entry {
    PyObject *id; /* NULL: the automatic id `num` (made on demand) */
    long long num;
    PyObject *value;
    int state;
    Py_ssize_t pos;
} fqpy_entry;

/* A ring buffer of result slots with absolute sequence numbers, so that a
 * placeholder can be found again after more slots were appended. */
typedef struct fqpy_store {
    fqpy_entry *buf;
    size_t cap;     /* power of two, or 0 */
    size_t head;    /* index of the oldest slot */
    size_t count;   /* slots in use */
    size_t items;   /* results not yet yielded (a batch slot holds many) */
    uint64_t seq0;  /* sequence number of the slot at head */
    size_t nerrors; /* slots in state FQPY_ERROR */
} fqpy_store;

int fqpy_store_push(fqpy_store *s, PyObject *id, long long num, PyObject *value,
                    int state, uint64_t *seq);
/* The id of a slot (new reference); of its item i for a batch slot. */
PyObject *fqpy_entry_id(const fqpy_entry *e, Py_ssize_t i);
/* Results held by a slot. */
Py_ssize_t fqpy_entry_items(const fqpy_entry *e);
fqpy_entry *fqpy_store_at(fqpy_store *s, uint64_t seq);
fqpy_entry *fqpy_store_front(fqpy_store *s);
/* Removes the front slot; its references move to *out. */
void fqpy_store_pop(fqpy_store *s, fqpy_entry *out);
void fqpy_store_clear(fqpy_store *s);
int fqpy_store_traverse(fqpy_store *s, visitproc visit, void *arg);

/* A job waiting for a refork before it can be submitted. */
typedef struct fqpy_deferred {
    PyObject *rec;     /* job record, see queue.c */
    PyObject *payload; /* pickled bytes */
} fqpy_deferred;

typedef struct fqpy_queue {
    PyObject_HEAD fqpy_state *st;
    fq_queue q;
    int opened;   /* fq_queue_new succeeded, fq_queue_free not yet called */
    int finished; /* finish(), cancel or Ctrl-C happened: no more use */
    int busy;     /* methods running (possibly with the GIL released) */
    unsigned long busy_thread; /* the thread running them */
    int reraise, ordered, retn_ids;
    int numforks;
    pid_t owner_pid;           /* the process that created the queue */
    PyGILState_STATE gilstate; /* from the prepare hook to the parent hook */

    PyObject *initfunc;
    /* Callables that jobs may use: registry[key]. Workers forked after an
     * entry was added know it; `known` entries are known by all workers. */
    PyObject *registry;  /* list */
    PyObject *keycache;  /* dict: callable (or id) -> key */
    PyObject *last_func; /* borrowed: registry holds it */
    Py_ssize_t last_key;
    Py_ssize_t known;
    double *item_ns; /* per key: measured worker time per item (EWMA) */
    Py_ssize_t item_ns_cap;
    int64_t *batch_seen; /* per key: largest batch whose result came back */

    PyObject *jobs;         /* dict: core id -> job record */
    Py_ssize_t outstanding; /* core jobs submitted, outcome not taken */
    Py_ssize_t items_out;   /* Python items in those jobs and deferred */
    PyObject *live_ids;     /* set of Python ids not yet yielded or dropped */
    int track_ids;          /* live_ids is maintained (a caller gave an id) */
    long long next_auto_id;

    fqpy_deferred *deferred;
    size_t ndeferred, deferred_cap;
    double last_refork; /* monotonic seconds */

    fqpy_store store;

    struct fqpy_queue *live_next, **live_prev;
    PyObject *weakreflist;
    int woken; /* _wakeup() was called: the wait in progress returns */
} fqpy_queue;

/* queue.c */
extern PyType_Spec fqpy_queue_spec;
int fqpy_check_usable(fqpy_queue *self);
/* Marks the queue in use by this thread (re-entry allowed), after checking
 * it can be used; fqpy_leave() undoes it. */
int fqpy_enter(fqpy_queue *self, int allow_finished);
void fqpy_leave(fqpy_queue *self);
Py_ssize_t fqpy_func_key(fqpy_queue *self, PyObject *func);
int fqpy_submit(fqpy_queue *self, Py_ssize_t key, PyObject *ids,
                PyObject *argslist, PyObject *kwargs, int measured, int flat);
int fqpy_flush(fqpy_queue *self);
/* Takes the outcomes that are ready without waiting. Returns how many, or
 * -1 with an exception set. */
Py_ssize_t fqpy_take_ready(fqpy_queue *self);
/* Waits until at least one outcome was taken, timeout_s passed (negative:
 * no limit) or no job is left. Returns outcomes taken, or -1. */
Py_ssize_t fqpy_drive(fqpy_queue *self, double timeout_s);
/* Raises the oldest error not raised yet, if any: returns -1 then. */
int fqpy_raise_pending(fqpy_queue *self);
/* Pops the front slot if it is ready: returns the object to yield (new
 * reference), NULL with an exception (a job error, raised once), or NULL
 * without an exception when nothing is ready. */
PyObject *fqpy_pop_result(fqpy_queue *self);
void fqpy_cancel(fqpy_queue *self);
double fqpy_now(void);
int64_t fqpy_next_batch(fqpy_queue *self, Py_ssize_t key);
PyObject *fqpy_next_auto_id(fqpy_queue *self);

/* iter.c */
extern PyType_Spec fqpy_iter_spec;
/* FQPY_IT_MAP1: process() whose items are the single arguments themselves
 * (map() over one iterable: zip() would only wrap each in a 1-tuple). */
enum { FQPY_IT_AVAILABLE, FQPY_IT_ALL, FQPY_IT_PROCESS, FQPY_IT_MAP1 };
PyObject *fqpy_iter_new(fqpy_queue *q, int mode, PyObject *func,
                        PyObject *source, PyObject *kwargs);

/* worker.c: run inside the worker processes. */
int fqpy_worker_job(fq_ctx *ctx, const void *arg, size_t len);
int fqpy_worker_init(void *udata);
/* Formats the current exception as traceback text; clears it. New ref, or
 * NULL (with the error cleared) if even that fails. */
PyObject *fqpy_format_current_exc(fqpy_state *st, PyObject **exc_out);

/* module.c */
fqpy_state *fqpy_state_of_type(PyTypeObject *tp);

/* channel.c: adds Channel, fork_channel(), child_exit(), wait_channels(). */
int fqpy_channel_add(PyObject *m);

#endif
