/*
 * The ForkQueue face (seed 000): forkqueue.ForkQueue.
 *
 *   queue.c    the type: constructor, methods, attributes
 *   args.c     checking the methods' arguments
 *   submit.c   job records, ids, pickling payloads, deferred submission
 *   outcome.c  outcomes -> result slots, errors, waiting, cancelling
 *   call.c     a process()/map() call: its own results, cancellation
 *   iter.c     the iterators of results(), yield_results(), process()
 *   store.c    the buffer of results not yet yielded
 *   worker.c   what runs inside a worker
 *   job.c      submit_job() and Job: a job handle as a future (0.2.0)
 *
 * One core job carries one or more Python items (a batch) of one callable.
 */
#ifndef FQPY_FACE_FORKQUEUE_H
#define FQPY_FACE_FORKQUEUE_H

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
    uint64_t stamp; /* arrival order among every store of the queue */
} fqpy_entry;

/* A ring buffer of result slots with absolute sequence numbers, so that a
 * placeholder can be found again after more slots were appended. */
typedef struct fqpy_store {
    fqpy_entry *buf;
    size_t cap;      /* power of two, or 0 */
    size_t head;     /* index of the oldest slot */
    size_t count;    /* slots in use */
    size_t items;    /* results not yet yielded (a batch slot holds many) */
    uint64_t seq0;   /* sequence number of the slot at head */
    size_t nerrors;  /* slots in state FQPY_ERROR */
    uint64_t *clock; /* the queue's stamp counter */
} fqpy_store;

int fqpy_store_push(fqpy_store *s, PyObject *id, long long num, PyObject *value,
                    int state, uint64_t *seq);
/* The id of a slot (new reference); of its item i for a batch slot. */
PyObject *fqpy_entry_id(const fqpy_entry *e, Py_ssize_t i);
/* Results held by a slot. */
Py_ssize_t fqpy_entry_items(const fqpy_entry *e);
fqpy_entry *fqpy_store_at(fqpy_store *s, uint64_t seq);
static inline fqpy_entry *fqpy_store_front(fqpy_store *s)
{
    return s->count ? &s->buf[s->head] : NULL;
}
/* Removes the front slot; its references move to *out. */
void fqpy_store_pop(fqpy_store *s, fqpy_entry *out);
void fqpy_store_clear(fqpy_store *s);
int fqpy_store_traverse(fqpy_store *s, visitproc visit, void *arg);

/* The results of one process()/map() call, or (id 0) of add(). A closed
 * call's outcomes are dropped on arrival and its unstarted items skipped by
 * the workers (a bit in a page shared with them). */
typedef struct fqpy_call {
    PyObject_HEAD struct fqpy_queue *q; /* borrowed; NULL once unlinked */
    fqpy_store store;
    uint32_t id;
    int closed;
    Py_ssize_t jobs_out; /* core jobs (and deferred) without an outcome */
    struct fqpy_call *next, **prev; /* the queue's live calls */
} fqpy_call;

/* A job waiting for a refork before it can be submitted. */
typedef struct fqpy_deferred {
    PyObject *rec;     /* job record, see submit.c */
    PyObject *payload; /* pickled bytes */
} fqpy_deferred;

#define FQPY_CANCEL_BITS 32768 /* calls tracked by the shared page */

typedef struct fqpy_tlink fqpy_tlink;

typedef struct fqpy_queue {
    PyObject_HEAD fqpy_core core;
    fqpy_state *st;
    int reraise, ordered, retn_ids;
    int numforks;
    double timeout; /* seconds per item, 0: none */
    uint64_t max_jobs_per_worker;
    PyObject *initfunc;
    PyObject *initargs;

    PyObject *jobs;         /* dict: core id -> job record */
    uint64_t next_core_id;  /* the core ids we give (FQ_JOB_ID) */
    Py_ssize_t outstanding; /* core jobs submitted, outcome not taken */
    Py_ssize_t items_out;   /* Python items in those jobs and deferred */
    PyObject *live_ids;     /* set of Python ids not yet yielded or dropped */
    int track_ids;          /* live_ids is maintained (a caller gave an id) */
    long long next_auto_id;

    fqpy_deferred *deferred;
    size_t ndeferred, deferred_cap;
    double last_refork; /* monotonic seconds */

    fqpy_call *main;  /* results of add() */
    fqpy_call *calls; /* live calls (main included) */
    uint64_t clock;   /* stamps of result slots */
    uint32_t next_call_id;
    unsigned char *cancel_page; /* MAP_SHARED with the workers */
    int dropping;               /* finish(): outcomes are discarded */

    PyObject *weakreflist;
    int woken;       /* _wakeup() was called: the wait in progress returns */
    int thread_kind; /* worker_kind="thread" */
    struct fqpy_tlink *tlink; /* thread kind: what the threads see */

    /* Job handles (job.c): pending Jobs by handle address; handles whose
     * core callback ran, to settle (raw memory: appended without the
     * GIL). */
    PyObject *hjobs;
    fq_job **hdone;
    size_t nhdone, hdone_cap;
    int settling;
} fqpy_queue;

/* queue.c */
extern PyType_Spec fqpy_queue_spec;
int fqpy_enter(fqpy_queue *self, int allow_finished);
void fqpy_leave(fqpy_queue *self);
int fqpy_check_usable(fqpy_queue *self);

/* args.c (fqpy_parse_timeout() is in the core: core/wait.c) */
/* A time limit in seconds (None: none) as ms for the core: -1 for none. */
int fqpy_parse_limit(PyObject *o, const char *what, int *ms);
PyObject *fqpy_normalize_kwargs(PyObject *argsv);
int fqpy_check_callable(PyObject *func, const char *method);
PyObject *fqpy_add_args(PyObject *fargs);
Py_ssize_t fqpy_input_len(PyObject *o);

/* submit.c */
enum {
    REC_IDS,
    REC_ARGS,
    REC_KWARGS,
    REC_KEY,
    REC_MEASURED,
    REC_SEQ,
    REC_FLAT,
    REC_CALL,
    REC_FIRST,
    REC_TIMEOUT,
    REC_LEN
};
/* first: index in the call's input of the first item (None for add()).
 * timeout_ms: the job's limit (0: the queue's, -1: none). */
int fqpy_submit(fqpy_queue *self, fqpy_call *call, Py_ssize_t key,
                PyObject *ids, PyObject *argslist, PyObject *kwargs,
                int measured, int flat, PyObject *first, int timeout_ms);
int fqpy_submit_full(fqpy_queue *self, fqpy_call *call, Py_ssize_t key,
                     PyObject *ids, PyObject *argslist, PyObject *kwargs,
                     int measured, PyObject *seq, int flat, PyObject *first,
                     int timeout_ms);
/* Submits the jobs held back until the workers know their callable. A
 * refork waits while the workers that would outlive it exceed numforks, so
 * at most 2 * numforks workers are at work (idle ones being replaced may
 * linger while they exit). */
int fqpy_flush(fqpy_queue *self);
void fqpy_drop_deferred(fqpy_queue *self);
int64_t fqpy_next_batch(fqpy_queue *self, Py_ssize_t key);
PyObject *fqpy_next_auto_id(fqpy_queue *self);
int fqpy_start_tracking_ids(fqpy_queue *self);
PyObject *fqpy_rec_id(PyObject *rec, Py_ssize_t i);
PyObject *fqpy_rec_id_or_num(PyObject *rec, Py_ssize_t i, long long *num);
Py_ssize_t fqpy_rec_len(PyObject *rec);
/* The record is done with (outcome handled or dropped). */
void fqpy_rec_release(fqpy_queue *self, PyObject *rec);

/* outcome.c */
/* Takes the outcomes that are ready without waiting. Returns how many, or
 * -1 with an exception set. */
Py_ssize_t fqpy_take_ready(fqpy_queue *self);
/* Waits until at least one outcome was taken, timeout_s passed (negative:
 * no limit) or no job is left. Returns outcomes taken, or -1. */
Py_ssize_t fqpy_drive(fqpy_queue *self, double timeout_s);
/* The same, taking at first at most `known` outcomes (negative: all there
 * are, looking at the workers if none is at hand; 0: none, when the caller
 * just took them). */
Py_ssize_t fqpy_drive_ex(fqpy_queue *self, double timeout_s, Py_ssize_t known);
/* Raises the oldest error of add() not raised yet, if any: returns -1. */
int fqpy_raise_pending(fqpy_queue *self);
/* Pops the next ready slot of the call (and, for a process() call, of
 * add(), whichever came first): the object to yield (new reference), NULL
 * with an exception (a job error, raised once), or NULL without an
 * exception when nothing is ready. */
PyObject *fqpy_pop_result(fqpy_queue *self, fqpy_call *call);
void fqpy_cancel(fqpy_queue *self);
/* Gives every item of a record (already released) the error text. */
int fqpy_fail_rec(fqpy_queue *self, PyObject *rec, const char *text);
size_t fqpy_stored_items(fqpy_queue *self);

/* call.c */
extern PyType_Spec fqpy_call_spec;
fqpy_call *fqpy_call_new(fqpy_queue *q);
/* Closes the call: its unstarted items are skipped, its results dropped. */
void fqpy_call_close(fqpy_call *call);
int fqpy_call_cancelled(const unsigned char *page, uint32_t id);
void fqpy_call_unlink(fqpy_call *call);

/* iter.c */
extern PyType_Spec fqpy_iter_spec;
/* FQPY_IT_MAP1: process() whose items are the single arguments themselves
 * (map() over one iterable: zip() would only wrap each in a 1-tuple). */
enum { FQPY_IT_AVAILABLE, FQPY_IT_ALL, FQPY_IT_PROCESS, FQPY_IT_MAP1 };
PyObject *fqpy_iter_new(fqpy_queue *q, int mode, PyObject *func,
                        PyObject *source, PyObject *kwargs, PyObject *progress,
                        Py_ssize_t total);

/* job.c: Job, ForkQueue.submit_job(), and turning the handles that got
 * their outcome into results and done callbacks (called after the face's
 * core calls that drive the queue). */
extern PyType_Spec fqpy_job_spec;
PyObject *fqpy_queue_submit_job(fqpy_queue *self, PyObject *args,
                                PyObject *kwargs);
void fqpy_jobs_settle(fqpy_queue *q);
/* For the loop binding (loop.c): 1 with the core handle and the queue of
 * a Job still waiting for its outcome, 0 when it has it (settled), -1 with
 * TypeError when obj is not a Job. */
int fqpy_job_source(fqpy_state *st, PyObject *obj, fq_job **h, fqpy_queue **q);

/* worker.c: run inside the worker processes (and threads, GIL held). */
int fqpy_worker_job(fq_ctx *ctx, const void *arg, size_t len);
int fqpy_worker_run(fq_ctx *ctx, fqpy_queue *self, const void *arg, size_t len);
int fqpy_worker_init(void *udata);

/* thread.c: worker_kind="thread". The core's udata is a link to the queue
 * that the threads may outlive. */
fqpy_tlink *fqpy_tlink_new(fqpy_queue *self);
/* Under the GIL, when the queue is cleared: no job sees it from now on. */
void fqpy_tlink_drop(fqpy_queue *self);
int fqpy_thread_init(void *udata);
int fqpy_thread_job(fq_ctx *ctx, const void *arg, size_t len);

#endif
