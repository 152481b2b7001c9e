/*
 * Private to the queue layer: what its files (queue.c, dispatch.c,
 * collect.c, death.c) share beyond core/internal.h.
 */
#ifndef FQ_QUEUE_H
#define FQ_QUEUE_H

#include "core/internal.h"

/* Jobs a worker can have in flight at most. */
#define FQ__MAX_INFLIGHT FQ__RING

/* collect.c */
void fq__job_free(fq__job *j);
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

/* dispatch.c, collect.c, death.c: what events.c calls */
void fq__dispatch(fq__queue *q);
void fq__flush_worker(fq__worker *w);
int fq__deliver(fq__queue *q, fq__worker *w, const fq__frame *f, void *owned,
                const unsigned char *copy, int override);
void fq__fail_pending(fq__queue *q, int status, const char *msg);
fq__job *fq__fifo_pop(fq__worker *w);
/* Start time of the job w is running, if it is the head of its FIFO and
 * has not ended; else -1. */
int64_t fq__head_stalled_since(const fq__worker *w);
/* Takes back the jobs w has not started (events.c); returns how many. */
int fq__revoke_unstarted(fq__queue *q, fq__worker *w);
/* The same for every job w has not started, the head of its FIFO too. */
int fq__revoke_all_unstarted(fq__queue *q, fq__worker *w);
/* recycle.c: retires the workers that reported being over max_rss. */
void fq__recycle_scan(fq__queue *q);
void fq__job_finish(fq__queue *q, fq__job *j, int status, int code,
                    const char *msg);
void fq__worker_gone(fq__queue *q, fq__worker *w, int wstatus, int have);
int fq__handle_frame(fq__queue *q, fq__worker *w, const fq__frame *f,
                     const unsigned char *payload);
void fq__refill_workers(fq__queue *q);

#endif
