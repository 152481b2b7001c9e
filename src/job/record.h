/*
 * The job record (fq__job): one job's frame, argument and outcome, from
 * submission to the release of its outcome.
 *
 * Life of a job: fq_submit() allocates an fq__job and puts it on the pending
 * list; dispatch moves it to the in-flight FIFO of a worker (which runs jobs
 * in the order received and answers in that order, so the FIFO head is
 * always the job the next result belongs to); its outcome moves it to the
 * ready list (completion order) or marks it done in the submission list
 * (ordered mode); fq_take() hands it out and frees it at the next take.
 */
#ifndef FQ_JOB_RECORD_H
#define FQ_JOB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "wire/wire.h"

#define FQ__INLINE_RESULT 32
/* Job records whose argument fits in this many bytes are reused. */
#define FQ__JOB_SMALL_ARG 64

enum fq__job_state {
    FQ__JOB_PENDING = 1, /* on q->pend list */
    FQ__JOB_SENT,        /* in a worker's in-flight FIFO */
    FQ__JOB_DONE,        /* has its outcome; waiting to be taken */
    FQ__JOB_TAKEN,       /* handed out; freed at the next take */
};

typedef struct fq__job {
    struct fq__job *next;  /* pending list or in-flight FIFO */
    struct fq__job *onext; /* submission order (ordered) or ready list */
    uint64_t id;
    uint64_t wseq; /* position in its worker's stream of jobs */
    int state;
    int timeout_ms;       /* 0: none */
    unsigned requeues;    /* ran, but the result died with the worker */
    unsigned bounces;     /* sent, never started, worker died */
    unsigned init_deaths; /* first job of workers that died in init */
    unsigned suspect;     /* may have broken a stream: runs alone */
    unsigned cancel;      /* fq_job_cancel(): FQ__CANCEL_* */
    unsigned small;       /* arg[] holds FQ__JOB_SMALL_ARG bytes (reusable) */
    unsigned embedded;    /* lives in its handle's allocation (job/job.h) */
    /* Its handle (job/job.h) when submitted by fq_job_submit(): its outcome
     * goes to the handle, never to fq_take(). NULL for fq_submit(). */
    struct fq_job *fut;
    int status, code, signo, exit_status;
    void *res; /* outcome payload: inline_res, or malloc'd */
    size_t res_len;
    union {
        max_align_t align;
        unsigned char bytes[FQ__INLINE_RESULT];
    } inline_res;
    size_t arg_len;
    /* The frame header and the argument bytes are contiguous, so that one
     * iovec sends a whole job. */
    unsigned char hdr[FQ__WIRE_HDR];
    unsigned char arg[];
} fq__job;

_Static_assert(offsetof(fq__job, arg) == offsetof(fq__job, hdr) + FQ__WIRE_HDR,
               "a job's argument follows its frame header with no gap");

/* The byte `off` of j's frame (header, then argument), addressed from the
 * record: `j->hdr + off` past the header would index hdr[] out of its
 * bounds (undefined, and flagged by UBSan's bounds check). */
static inline unsigned char *fq__job_frame(fq__job *j, size_t off)
{
    return (unsigned char *)j + offsetof(fq__job, hdr) + off;
}

/* fq__job.cancel. STOP: fq_job_cancel() stops the job's worker for it (it
 * was running). GHOST: the record stands in a worker's FIFO for a job that
 * was cancelled after it was written to a worker without a shared page,
 * before it started (queue/handles.c): the job itself has its outcome;
 * the ghost takes the worker's answer (the RESULT of the skipped job) and
 * is freed then, never published. */
#define FQ__CANCEL_STOP 1u
#define FQ__CANCEL_GHOST 2u

#endif
