/*
 * The queue layer's header: the queue (fq__queue) and what its files
 * (queue.c, dispatch.c, collect.c, death.c, ...) share.
 */
#ifndef FQ_QUEUE_H
#define FQ_QUEUE_H

#include <poll.h>

#include "core/internal.h"
#include "core/jobtable.h"
#include "job/job.h"
#include "job/record.h"
#include "loop/wake.h"
#include "worker/kind.h"

enum fq__qstate {
    FQ__Q_RUNNING = 1,
    FQ__Q_STOPPING, /* finish/cancel in progress: no respawn */
    FQ__Q_FINISHED,
};

struct fq__queue {
    /* What the registry and fq_wakeup() know of the queue (core/internal.h):
     * first, so that they can hold the queue without knowing it. */
    fq__qhead hd;
    fq_options opts;
    const fq__worker_ops *kind; /* the kind of its workers */
    int nworkers;               /* target number of active workers */
    int state;
    int canceling; /* unfinished jobs of dying workers become ECANCELED */
    int broken;    /* an init failed: every job ends FQ_EINIT */
    char *broken_msg;

    fq__worker **w; /* active and retiring workers */
    int nw, capw;

    fq__job *pend_head, *pend_tail;
    uint64_t npending;

    /* Ordered: every untaken job in submission order; ord_scan is the
     * first one not done. Unordered: done jobs in completion order. */
    fq__job *ord_head, *ord_tail, *ord_scan;
    uint64_t nready;

    /* Live job ids, for duplicate detection: kept only once a job has
     * come with its own id (FQ_JOB_ID); until then every id is
     * next_auto++, unique by construction (queue/queue.c). */
    fq__jobtable table;
    int ids_tracked;
    uint64_t next_auto;
    fq__job *last_taken;
    /* Records of taken jobs kept for reuse (queue/queue.c): a burst of
     * submissions then of takes defeats malloc's per-thread caches. */
    fq__job *spare;
    unsigned nspare;

    fq_stats st;
    int64_t avg_run_ns; /* moving average of job run time, -1: unknown */
    int64_t now_ns;     /* the loop's last clock reading (for dispatch) */
    unsigned inflight_limit;
    /* The last fq__dispatch() left jobs pending: every worker was full.
     * Until a worker gets room (a result, a new worker: whoever gives it
     * clears this), fq_submit() does not look again. */
    int dispatch_full;

    int64_t respawn_at; /* after a failed fork, retry at this time */
    unsigned fork_failures;
    /* Workers that died in init with no job since the last result: while
     * no job waits, replacing them waits until idle_respawn_at, 10 ms
     * doubling to ~1.3 s, so an init that always crashes costs a bounded
     * number of forks however long the queue idles (queue/death.c). */
    unsigned idle_init_deaths;
    int64_t idle_respawn_at;
    int fork_errno;
    const char *fork_why; /* a kind's own reason its start failed, or NULL */

    void *pfd_mem; /* poll set cache (queue/events.c) */
    size_t pfd_cap;
    int poll_nslot;          /* workers in the poll set being waited on */
    unsigned char *held_buf; /* copy of a worker's out[] (queue/events.c) */

    /* A call is in progress: 1; fq_stream() is in a callback: 2 (only
     * fq_submit() may enter then). Re-entry otherwise gets FQ_EBUSY. */
    _Atomic int busy;
    /* Job handles (job/job.h, queue/handles.c): handles whose job got its
     * outcome and whose callback is due (it runs at the end of the call
     * that drives the queue, fq__notify()); how many jobs were submitted
     * through handles, and how many of them have no outcome yet; the job
     * an fq_job_wait() waits for. */
    struct fq_job *notify_head, *notify_tail;
    uint64_t nhandle_jobs, nhandle_live;
    fq__job *wait_job;
    int notifying;
};

/* queue/events.c: asks the running (or a queued) job job_id of w to stop
 * cooperatively: a CANCEL frame goes out after the frames already
 * written, and fq_ctx_cancelled() turns true in the job once it arrives.
 * A job not started yet is skipped by the worker, which answers it with a
 * RESULT saying FQ_ECANCELED (worker/main.c). Returns 0,
 * FQ_EINVAL (no such job in w's FIFO), FQ_ECLOSED (the worker's channel is
 * shut), FQ_ENOMEM. */
int fq__worker_send_cancel(fq__worker *w, uint64_t job_id);

/* Jobs a worker can have in flight at most. */
#define FQ__MAX_INFLIGHT FQ__RING

/* dispatch.c */
int fq__active_workers(const fq__queue *q);
int fq__add_worker(fq__queue *q);

/* queue.c: kills and reaps the workers, frees everything (q->destroy). */
void fq__queue_destroy(fq__queue *q);

/* death.c: results a dead worker produced but had not flushed. */
void fq__recover_output(fq__queue *q, fq__worker *w);
/* death.c: decides which job wrote the bytes that broke w's stream. */
void fq__blame_proto(fq__queue *q, fq__worker *w);

/* events.c: the queue's side of the poll loop (loop/loop.h) */
typedef int (*fq__cond_fn)(fq__queue *q);
/* Flags of fq__drive(). */
#define FQ__DRIVE_UNINTERRUPTIBLE                                              \
    1                        /* no FQ_EINTR, even with return_on_eintr         \
                              */
#define FQ__DRIVE_WAKEABLE 2 /* fq_wakeup() ends a wait: returns 1 */
/* Moves jobs and results until cond(q) holds or timeout_ms passes (-1: no
 * limit). Returns 0, FQ_ETIMEDOUT, FQ_EINTR (only with return_on_eintr and
 * not FQ__DRIVE_UNINTERRUPTIBLE), 1 when woken by fq_wakeup() (only with
 * FQ__DRIVE_WAKEABLE and a non-zero timeout) or another error. */
int fq__drive(fq__queue *q, int timeout_ms, fq__cond_fn cond, int flags);
/* The steps of one pass of fq__drive(), for the loop object (loopsrc.c):
 * the work that does not wait (returns the next deadline, INT64_MAX for
 * none); the poll set (*pfd points into the queue's cache, with room for
 * `extra` more entries; returns the count or FQ_ENOMEM); what poll() found
 * there (n ready entries; may free workers). */
int64_t fq__queue_maintain(fq__queue *q);
int fq__queue_sources(fq__queue *q, int extra, struct pollfd **pfd);
void fq__queue_events(fq__queue *q, struct pollfd *pfd, int n);
/* loopsrc.c: for sources that ride on a queue (job handles): the loop
 * drives the queue of h while it holds it, without reporting it unless
 * fq_loop_add_queue() added it too. Each hold (0, or FQ_ECLOSED,
 * FQ_EFOREIGN, FQ_EINVAL, FQ_ENOMEM) is undone by one unhold. */
int fq__loop_queue_hold(fq_loop *loop, fq_queue h);
void fq__loop_queue_unhold(fq_loop *loop, fq_queue h);

/* dispatch.c, collect.c, death.c: what events.c calls */
void fq__dispatch(fq__queue *q);
void fq__flush_worker(fq__worker *w);
int fq__deliver(fq__queue *q, fq__worker *w, const fq__frame *f, void *owned,
                const unsigned char *copy, int override);
void fq__fail_pending(fq__queue *q, int status, const char *msg);
fq__job *fq__fifo_pop(fq__queue *q, fq__worker *w);
/* queue.c: a job's id is no longer live (its outcome was taken or went to
 * its handle). */
void fq__ids_forget(fq__queue *q, uint64_t id);
/* Start time of the job w is running, if it is the head of its FIFO and
 * has not ended; else -1. */
int64_t fq__head_stalled_since(const fq__worker *w);
/* Takes back the jobs w has not started (events.c); returns how many. */
int fq__revoke_unstarted(fq__queue *q, fq__worker *w);
/* The same for every job w has not started, the head of its FIFO too. */
int fq__revoke_all_unstarted(fq__queue *q, fq__worker *w);
/* recycle.c: retires the workers that reported being over max_rss. */
void fq__recycle_scan(fq__queue *q);
/* The same from j on (j may be the head): returns 1 if j was taken back
 * (to the front of the pending list), 0 if w had started it, -1 if it is
 * partly written (ask again once it is written). */
int fq__revoke_from(fq__queue *q, fq__worker *w, fq__job *j);
/* handles.c: job handles. Runs the callbacks of handles whose job got its
 * outcome (outside the loop, the queue marked as in a callback). */
void fq__notify(fq__queue *q);
/* Gives every unfinished handle job FQ_ECLOSED (the queue is destroyed)
 * and returns the list of handles whose callback is due. */
fq_job *fq__close_handles(fq__queue *q);
extern const fq__future_ops fq__queue_future_ops;
/* handles.c: stops w for its running job j (fq_job_cancel()'s running
 * case): no more jobs for w, those it has not started go back, a CANCEL
 * frame (unless j is a ghost, which had one), then terminate or SIGKILL
 * after the queue's grace. */
void fq__cancel_stop(fq__queue *q, fq__worker *w, fq__job *j);
void fq__job_finish(fq__queue *q, fq__job *j, int status, int code,
                    const char *msg);
void fq__worker_gone(fq__queue *q, fq__worker *w, int wstatus, int have);
int fq__handle_frame(fq__queue *q, fq__worker *w, const fq__frame *f,
                     const unsigned char *payload);
void fq__refill_workers(fq__queue *q);

/* ---- What every public call of the queue layer does first -------------- */

/* Every public call holds a reference to its queue until it returns (on
 * every path: the cleanup attribute releases it), so a queue freed by
 * another thread meanwhile stays valid until then. */
#define LOOKUP(h, q)                                                           \
    fq__queue *q __attribute__((cleanup(fq__handle_release))) = NULL;          \
    do {                                                                       \
        int rc_ = fq__handle_get(h, &q);                                       \
        if (rc_)                                                               \
            return rc_;                                                        \
    } while (0)

/* A call in progress marks its queue busy; a hook or callback of that call
 * (fork hooks, fq_stream()'s producer and consumer, job handles'
 * callbacks) that calls back into the queue gets FQ_EBUSY, except
 * fq_submit(), fq_job_submit(), fq_cancel() and fq_job_cancel() from those
 * callbacks, and fq_queue_free(), fq_stats_get(), fq_worker_pids(),
 * fq_wakeup(), which are always allowed. Declared after LOOKUP's
 * reference, so it is left before the reference is released. */
typedef struct fq__guard {
    fq__queue *q;
    int prev;
} fq__guard;

static inline void guard_leave(fq__guard *g)
{
    if (g->q)
        atomic_store_explicit(&g->q->busy, g->prev, memory_order_release);
}

#define ENTER(q, in_callback_ok)                                               \
    fq__guard guard_ __attribute__((cleanup(guard_leave))) = {NULL, 0};        \
    do {                                                                       \
        int e_ = atomic_load_explicit(&(q)->busy, memory_order_relaxed);       \
        do {                                                                   \
            if (e_ != 0 && !((in_callback_ok) && e_ == 2))                     \
                return FQ_EBUSY;                                               \
        } while (!atomic_compare_exchange_weak(&(q)->busy, &e_, 1));           \
        guard_.prev = e_;                                                      \
        guard_.q = (q);                                                        \
    } while (0)

#endif
