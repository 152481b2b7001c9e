/*
 * forkqueue: Function ids and job handles (since 0.2.0).
 *
 * Part of the public API; include <forkqueue.h>, which includes this file
 * after the declarations it relies on.
 */
#ifndef FORKQUEUE_JOB_H
#define FORKQUEUE_JOB_H

#ifndef FORKQUEUE_H
#error "include <forkqueue.h>, not <fq/job.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Function ids (since 0.2.0) ---------------------------------------- */

/*
 * A job names its function by address when its worker was forked from the
 * caller. A worker that was not (a remote worker, one forked by a helper
 * started early) finds it by a registered id instead: register every job
 * function under the same name in every process that submits or runs it
 * (before the queue is created, or in init for the worker side).
 *
 * The id is a 64-bit hash of the name, the same in every process. Returns 0
 * and stores the id in *id (may be NULL). Registering the same name with the
 * same function again is a no-op returning 0. Errors: FQ_EINVAL (NULL or
 * empty name, name longer than FQ_FUNC_NAME_MAX bytes, NULL fn), FQ_EEXIST
 * (the name, or its id, is taken by another function, or fn is registered
 * under another name), FQ_ENOMEM. Thread-safe. A job whose function id is
 * not registered in its worker ends with status FQ_ENOFUNC and a message
 * naming the id.
 */
#define FQ_FUNC_NAME_MAX 255
int fq_func_register(const char *name, fq_job_fn fn, uint64_t *id);

/* The id of a registered name: 0 and *id, or FQ_ENOFUNC (not registered in
 * this process), FQ_EINVAL. */
int fq_func_id(const char *name, uint64_t *id);

/* ---- Job handles: jobs as futures (since 0.2.0) ------------------------ */

/*
 * Submits a job as fq_submit() does and returns a handle to it in *job: the
 * job's outcome goes to the handle, never to fq_take(), and stays there,
 * owned by the handle, until fq_job_free(). The job counts in the queue's
 * fq_stats (submitted, pending, running, finished; never taken), fq_wait()
 * and fq_finish() wait for it, fq_cancel() cancels it, and an ordered queue
 * orders only the jobs of fq_submit(). jopts may be NULL; jopts->callback,
 * if set, runs exactly once when the job has its outcome, whatever it is
 * (a result, an error, FQ_ECANCELED, FQ_ECLOSED when the queue is freed
 * first), also when the handle was freed before: it runs in the thread and
 * at the end of the call that gave the job its outcome (fq_poll(),
 * fq_wait(), fq_take(), fq_stream(), fq_finish(), fq_cancel(),
 * fq_job_wait(), fq_job_done(), fq_job_cancel(), or the call that frees
 * the queue), never inside the loop. A callback may read the outcome
 * (fq_job_result()), free the handle, submit jobs and cancel jobs (with
 * fq_job_cancel(), fq_cancel()); calls that wait (fq_poll(), fq_wait(),
 * fq_take(), fq_job_wait()) answer FQ_EBUSY there. Errors as fq_submit();
 * on error *job is NULL and no callback will run.
 *
 * Threads: a handle follows the rule of its queue: calls on a queue and on
 * the handles of its jobs are made by one thread at a time (any thread,
 * handed over with the usual synchronisation). The queue may be freed from
 * another thread meanwhile (see fq_queue_free()): its unfinished jobs then
 * end FQ_ECLOSED in the thread that destroys it.
 */
int fq_job_submit(fq_queue q, fq_job_fn fn, const void *arg, size_t len,
                  const fq_job_options *jopts, fq_job **job);

/*
 * Drives the job's queue until the job has its outcome or timeout_ms has
 * passed (-1: no limit; 0: do not wait). Callbacks of jobs that end
 * meanwhile run during the wait. Returns 0 once the job has its outcome
 * (read it with fq_job_result()), FQ_ETIMEDOUT, FQ_EINTR (fq_wakeup() on
 * the queue, or a signal with return_on_eintr), FQ_EBUSY (from a callback,
 * or while another call uses the queue), FQ_ECLOSED (the queue was freed
 * and its destruction is still pending in another thread), FQ_EINVAL.
 */
int fq_job_wait(fq_job *job, int timeout_ms);

/*
 * 1 if the job has its outcome, 0 if not yet, or a negative error. Moves
 * the queue's I/O once without waiting (as fq_take() does), so a loop of
 * fq_job_done() calls makes progress; from a callback it only looks.
 */
int fq_job_done(fq_job *job);

/*
 * Cancels the job, unless it already has its outcome. A job not started
 * yet (queued in the parent, or sent to a worker that has not started it)
 * is dropped at once. A running job's worker is stopped for it: a CANCEL
 * frame (the job's fq_ctx_cancelled() becomes 1) and SIGTERM to the worker
 * and the processes its jobs started, SIGKILL after fq_options.grace_ms
 * (negative: SIGKILL at once), and the worker is replaced; the jobs queued
 * behind it go to other workers. A thread worker
 * (FQ_WORKER_THREAD) cannot be stopped: its job's fq_ctx_cancelled()
 * becomes 1, the thread is left to return on its own (its reply is
 * discarded) and a new thread takes its place. Either way the job ends
 * FQ_ECANCELED, before this call returns (for a running process job, up to
 * grace_ms plus 200 ms), whatever the job does meanwhile (a reply after the
 * cancel is discarded), and its callback has run. Returns 0 when this call
 * cancelled the job, 1 when the job already had its outcome (finished,
 * cancelled before, or its queue freed: nothing changed, the outcome
 * stands), or a negative error
 * (FQ_EINVAL, FQ_EBUSY when another call uses the queue, FQ_ECLOSED as for
 * fq_job_wait()).
 */
int fq_job_cancel(fq_job *job);

/*
 * Fills *r with the job's outcome, as fq_take() would (r->data stays valid
 * until fq_job_free()). Returns 0, FQ_EBUSY if the job has no outcome yet,
 * or FQ_EINVAL. Does not touch the queue: also usable once it is freed.
 */
int fq_job_result(const fq_job *job, fq_result *r);

/* The job's id (its fq_job_options.id, or the automatic one). */
uint64_t fq_job_id(const fq_job *job);

/*
 * Releases the handle and its outcome. A job still queued or running goes
 * on: it gets its one outcome, which is then discarded (its callback, if
 * any, still runs, with the handle valid for the duration of the call).
 * The handle must not be used afterwards. NULL is fine.
 */
void fq_job_free(fq_job *job);

#ifdef __cplusplus
}
#endif

#endif /* FORKQUEUE_JOB_H */
