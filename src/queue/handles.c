/*
 * The queue's side of job handles (job/job.h): a handle's job is an fq__job
 * like any other, on the same pending list, in the same worker FIFOs, with
 * the same crash, timeout and cancel logic; only its outcome goes to the
 * handle (collect.c) instead of the ready list, and the handle's callback
 * runs at the end of the call that drove the queue (fq__notify()). Here:
 * waiting for one job, polling, cancelling one job, and what becomes of
 * handles when the queue is destroyed.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

#define DEFAULT_GRACE_MS 1000

void fq__notify(fq__queue *q)
{
    /* Callbacks may submit or cancel, which may end more jobs: those are
     * appended to the list and run by the outermost call. */
    if (!q->notify_head || q->notifying)
        return;
    q->notifying = 1;
    int prev = atomic_exchange(&q->busy, 2);
    while (q->notify_head) {
        fq_job *h = q->notify_head;
        q->notify_head = h->notify_next;
        if (!q->notify_head)
            q->notify_tail = NULL;
        h->notify_next = NULL;
        fq__future_notify(h);
        if (atomic_load(&q->hd.closing))
            break; /* freed by a callback: destroy runs the rest */
    }
    atomic_store(&q->busy, prev);
    q->notifying = 0;
}

/* Removes handle jobs from a list linked by ->next; returns the new head
 * and sets *tail. They end FQ_ECLOSED. */
static fq__job *close_list(fq__queue *q, fq__job *j, fq__job **tail)
{
    fq__job *head = NULL, *t = NULL;
    while (j) {
        fq__job *nx = j->next;
        j->next = NULL;
        if (j->fut) {
            fq__job_finish(q, j, FQ_ECLOSED, 0,
                           "the queue was freed before the job ended");
        } else if (j->cancel == FQ__CANCEL_GHOST) {
            fq__job_free(j); /* its job had its outcome */
        } else {
            if (t)
                t->next = j;
            else
                head = j;
            t = j;
        }
        j = nx;
    }
    if (tail)
        *tail = t;
    return head;
}

fq_job *fq__close_handles(fq__queue *q)
{
    if (q->nhandle_jobs) {
        q->pend_head = close_list(q, q->pend_head, &q->pend_tail);
        for (int i = 0; i < q->nw; i++) {
            fq__worker *w = q->w[i];
            w->head = close_list(q, w->head, &w->tail);
            w->unsent = NULL;
        }
    }
    fq_job *due = q->notify_head;
    q->notify_head = q->notify_tail = NULL;
    return due;
}

/* ---- Waiting --------------------------------------------------------- */

static int cond_job_done(fq__queue *q)
{
    /* Also when another handle's callback is due: it runs, and the wait
     * goes on. */
    return q->wait_job->state == FQ__JOB_DONE || q->notify_head;
}

static int job_done(const fq_job *h)
{
    return atomic_load_explicit(&h->done, memory_order_acquire);
}

static int fut_wait(fq_job *h, int timeout_ms)
{
    fq_queue qh = {h->qid};
    LOOKUP(qh, q);
    ENTER(q, 0);
    int64_t until =
        timeout_ms > 0 ? fq__now_ns() + (int64_t)timeout_ms * 1000000 : 0;
    int rc = 0;

    while (!job_done(h)) {
        int t = timeout_ms;
        if (timeout_ms > 0) {
            int64_t left = until - fq__now_ns();
            t = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        q->wait_job = h->job;
        rc = fq__drive(q, t, cond_job_done, FQ__DRIVE_WAKEABLE);
        q->wait_job = NULL;
        fq__notify(q);
        if (job_done(h))
            return 0;
        if (rc == 1)
            return FQ_EINTR; /* fq_wakeup() */
        if (rc < 0)
            return rc;
        if (t == 0)
            return FQ_ETIMEDOUT;
    }
    return 0;
}

static int fut_poll(fq_job *h)
{
    fq_queue qh = {h->qid};
    LOOKUP(qh, q);
    ENTER(q, 0);
    q->wait_job = h->job;
    int rc = fq__drive(q, 0, cond_job_done, 0);
    q->wait_job = NULL;
    fq__notify(q);
    return rc == FQ_ETIMEDOUT || rc == FQ_EINTR ? 0 : rc;
}

/* ---- Cancelling ------------------------------------------------------ */

static fq__worker *holder(fq__queue *q, const fq__job *j)
{
    for (int i = 0; i < q->nw; i++)
        for (fq__job *k = q->w[i]->head; k; k = k->next)
            if (k == j)
                return q->w[i];
    return NULL;
}

static void unlink_pending(fq__queue *q, fq__job *j)
{
    fq__job *prev = NULL;
    for (fq__job *k = q->pend_head; k; prev = k, k = k->next) {
        if (k != j)
            continue;
        if (prev)
            prev->next = j->next;
        else
            q->pend_head = j->next;
        if (q->pend_tail == j)
            q->pend_tail = prev;
        j->next = NULL;
        q->npending--;
        return;
    }
}

void fq__cancel_stop(fq__queue *q, fq__worker *w, fq__job *j)
{
    int ghost = j->cancel == FQ__CANCEL_GHOST;
    if (!ghost)
        j->cancel = FQ__CANCEL_STOP;
    /* It takes no more jobs, and as a retiring worker it is replaced at
     * once: the jobs waiting for a worker do not wait for its end. A job
     * that returns on the CANCEL frame leaves it idle: it is shut down
     * and exits (or is killed at kill_at if it does not). What it has not
     * started goes back to the pending list (dispatched by the caller, or
     * by the loop's next pass). */
    w->flags |= FQ__W_CANCELED | FQ__W_RETIRING;
    (void)fq__revoke_unstarted(q, w);
    if (!ghost)
        (void)fq__worker_send_cancel(w, j->id);
    int grace = q->opts.grace_ms ? q->opts.grace_ms : DEFAULT_GRACE_MS;
    if (grace < 0) {
        w->ops->signal(w, SIGKILL);
    } else {
        w->ops->terminate(w, grace);
        if (!w->kill_at)
            w->kill_at = fq__now_ns() + (int64_t)grace * 1000000;
    }
}

/* j was written to w, a worker without a shared page, which has not said
 * that it started it: there is no claim word to revoke it with, so a
 * CANCEL frame asks the worker to skip it, and a ghost record takes j's
 * place in w's FIFO, to take the worker's answer (a RESULT saying
 * FQ_ECANCELED, or, if the CANCEL came too late, a STARTED: collect.c then
 * stops w as for a running job). j leaves the FIFO and can have its
 * outcome at once. Returns 0, FQ_ENOMEM or FQ_ECLOSED (w's channel is
 * shut: its end brings j back). */
static int cancel_by_frame(fq__worker *w, fq__job *j)
{
    fq__job *g = malloc(sizeof(*g));
    if (!g)
        return FQ_ENOMEM;
    int rc = fq__worker_send_cancel(w, j->id);
    if (rc < 0) {
        free(g);
        return rc;
    }
    memcpy(g, j, sizeof(*g)); /* the record, without the argument */
    g->fut = NULL;
    g->res = NULL;
    g->res_len = 0;
    g->arg_len = 0;
    g->onext = NULL;
    g->small = g->embedded = 0; /* its own allocation, freed as such */
    g->cancel = FQ__CANCEL_GHOST;
    fq__job **pp = &w->head;
    while (*pp != j)
        pp = &(*pp)->next;
    *pp = g;
    if (w->tail == j)
        w->tail = g;
    j->next = NULL;
    return 0;
}

/* One step towards the job's end. Returns 1 when it has its outcome or its
 * worker was asked to stop (then the outcome comes with the worker's end),
 * 0 when it must be looked at again a moment later (partly written, or
 * finished in its worker with the result on its way). */
static int cancel_step(fq__queue *q, fq__job *j, int *asked)
{
    if (j->state == FQ__JOB_PENDING) {
        unlink_pending(q, j);
        *asked = 1;
        fq__job_finish(q, j, FQ_ECANCELED, 0, "job cancelled");
        return 1;
    }
    if (j->cancel)
        return 1; /* its worker is being stopped */
    fq__worker *w = holder(q, j);
    if (!w)
        return 0;
    int r = fq__revoke_from(q, w, j);
    if (r < 0)
        return 0;
    if (r == 1) {
        unlink_pending(q, j);
        *asked = 1;
        fq__job_finish(q, j, FQ_ECANCELED, 0, "job cancelled");
        fq__dispatch(q); /* the others taken back with it */
        return 1;
    }
    /* The worker has started it. Finished already: the result stands. */
    if (atomic_load_explicit(&w->stat->done, memory_order_acquire) > j->wseq)
        return 0;
    /* Without a shared page, "started" is what STARTED frames said: a job
     * written but not known to have started is skipped by the worker on a
     * CANCEL frame (and the worker stays). */
    if ((w->ops->flags & FQ__KIND_NO_PAGE) &&
        atomic_load_explicit(&w->stat->started, memory_order_acquire) <=
            j->wseq) {
        int rc = cancel_by_frame(w, j);
        if (rc == FQ_ECLOSED)
            return 0;
        if (rc == 0) {
            *asked = 1;
            fq__job_finish(q, j, FQ_ECANCELED, 0, "job cancelled");
            fq__dispatch(q); /* jobs not written yet, taken back above */
            return 1;
        }
        /* Out of memory: stopped as a running job. */
    }
    /* Running: stop the worker, after taking back what waits behind. The
     * graceful step is twofold: a CANCEL frame (fq_ctx_cancelled() turns
     * true: a job that polls it may return) and SIGTERM (which ends any
     * other job at once); SIGKILL follows after the grace. Either way the
     * job ends FQ_ECANCELED (publish(), collect.c). */
    *asked = 1;
    fq__cancel_stop(q, w, j);
    fq__dispatch(q);
    return 1;
}

static int cond_this_done(fq__queue *q)
{
    return q->wait_job->state == FQ__JOB_DONE;
}

static int fut_cancel(fq_job *h)
{
    fq_queue qh = {h->qid};
    LOOKUP(qh, q);
    ENTER(q, 1); /* also from callbacks */
    fq__job *j = h->job;
    int asked = 0, rc = 0;

    while (!job_done(h)) {
        int settled = cancel_step(q, j, &asked);
        if (job_done(h))
            break;
        q->wait_job = j;
        rc = fq__drive(q, settled ? -1 : 2, cond_this_done,
                       FQ__DRIVE_UNINTERRUPTIBLE);
        q->wait_job = NULL;
        if (rc < 0 && rc != FQ_ETIMEDOUT && !job_done(h))
            break;
        rc = 0;
    }
    int status = job_done(h) ? h->job->status : 0;
    fq__notify(q);
    if (rc < 0)
        return rc;
    return asked && status == FQ_ECANCELED ? 0 : 1;
}

const fq__future_ops fq__queue_future_ops = {
    .wait = fut_wait,
    .poll = fut_poll,
    .cancel = fut_cancel,
};
