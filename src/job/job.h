/*
 * Jobs and their futures: the job record's memory, and the public handle
 * (fq_job) that owns a job's outcome. A handle does not know how its job
 * runs: whoever ran the job (the queue, queue/handles.c) hands it a table
 * of operations to wait, poll and cancel, and tells it the outcome with
 * fq__future_complete(); callbacks run later, from fq__future_notify(),
 * outside any loop (as NNG's aio providers call nni_aio_finish()).
 */
#ifndef FQ_JOB_H
#define FQ_JOB_H

#include "job/record.h"

typedef struct fq__future_ops {
    /* Drives until the job has its outcome or timeout_ms passes. */
    int (*wait)(fq_job *h, int timeout_ms);
    /* Moves I/O once without waiting. */
    int (*poll)(fq_job *h);
    /* 0: cancelled by this call; 1: it had its outcome; or an error. */
    int (*cancel)(fq_job *h);
} fq__future_ops;

struct fq_job {
    /* The caller's (until fq_job_free()) and the provider's (until the
     * callback has run, fq__future_notify()). */
    _Atomic unsigned refs;
    /* The outcome is in job (stored with release order). */
    _Atomic int done;
    const fq__future_ops *ops;
    uint32_t qid; /* the queue that runs it (fq_queue.id) */
    uint64_t id;
    /* The provider's record of the job; the handle's once done. */
    fq__job *job;
    fq_job_cb cb;
    void *cb_arg;
    struct fq_job *notify_next; /* on the provider's list of due callbacks */
    size_t room; /* bytes for the provider after the handle (its record) */
};

/* Frees a job record and its outcome payload. */
void fq__job_free(fq__job *j);
/* Frees a job record's outcome payload when it was allocated (not inline)
 * and forgets it. */
void fq__job_drop_result(fq__job *j);

/* A handle with both references, or NULL (out of memory). With room > 0,
 * the same allocation holds room bytes for the provider (maximally
 * aligned, fq__future_room()): its job record, so that a job through a
 * handle costs one allocation. A record kept there is marked `embedded`
 * and freed with the handle. */
fq_job *fq__future_new(const fq__future_ops *ops, uint32_t qid,
                       const fq_job_options *jopts, size_t room);
void *fq__future_room(fq_job *h);
/* Drops the provider's reference of a handle that never got a job (its
 * submission failed): no callback runs. */
void fq__future_abandon(fq_job *h);
/* h->job has its outcome: marks the handle done and appends it to the list
 * *head / *tail of handles whose callback is due. */
void fq__future_complete(fq_job *h, fq_job **head, fq_job **tail);
/* Runs the callbacks of a list made by fq__future_complete(), in order,
 * each once, and drops the provider's references. */
void fq__future_notify(fq_job *list);

#endif
