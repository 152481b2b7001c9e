/*
 * What happens when a worker is gone: the results it produced but had not
 * flushed are recovered from the memory it shares with the parent, the job
 * that killed it (or broke its stream) is blamed, and every other job it
 * held is sent again or settled. Called by the poll loop (events.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "queue/queue.h"

/* A job whose result died with its worker (it ran, but its result was
 * being written when the worker was killed) runs again at most this many
 * times; one that was sent but never started is sent again at most
 * MAX_BOUNCES times. Beyond that it ends as FQ_ECRASHED. */
#define MAX_REQUEUES 16
#define MAX_BOUNCES 1000
/* Workers that may die in their init under one job before it fails. */
#define INIT_DEATHS 3

/*
 * A worker's stream broke at offset w->rx: the bytes there are not a frame.
 * The worker itself only writes whole frames, between jobs (or a large
 * result from inside fq_reply()), so the bytes were written by a job that
 * ran while the worker's own byte count stood at w->rx. The shared page
 * keeps that count at the start and the end of each job. One such job:
 * it is the guilty one. Several (jobs that ran between the same two
 * flushes): none can be told from the others, so each is sent again, alone
 * in an idle worker, where the next break names it; the others then run a
 * second time, and no more. None (bytes written by some other process):
 * the job running at the time is blamed, as for a crash.
 */
void fq__blame_proto(fq__queue *q, fq__worker *w)
{
    uint64_t started = atomic_load(&w->stat->started);
    uint64_t done = atomic_load(&w->stat->done);
    uint64_t p = w->rx;
    fq__job *cand = NULL;
    int ncand = 0;

    (void)q;
    w->guilty_wseq = 0;
    for (fq__job *j = w->head; j && j->wseq < started; j = j->next) {
        unsigned k = (unsigned)(j->wseq % FQ__RING);
        uint64_t s = atomic_load(&w->stat->tx_start[k]);
        uint64_t e =
            j->wseq < done ? atomic_load(&w->stat->tx_end[k]) : UINT64_MAX;
        if (s <= p && p <= e) {
            if (!cand)
                cand = j;
            ncand++;
        }
    }
    if (ncand == 1) {
        w->guilty_wseq = cand->wseq + 1;
    } else if (ncand > 1) {
        for (fq__job *j = cand; j && j->wseq < started; j = j->next) {
            unsigned k = (unsigned)(j->wseq % FQ__RING);
            uint64_t s = atomic_load(&w->stat->tx_start[k]);
            uint64_t e =
                j->wseq < done ? atomic_load(&w->stat->tx_end[k]) : UINT64_MAX;
            if (s <= p && p <= e)
                j->suspect = 1;
        }
    } else if (started > done) {
        w->guilty_wseq = started;
    }
}

static void finish_guilty(fq__queue *q, fq__job *j)
{
    fq__job_finish(q, j, FQ_EPROTO, 0,
                   "the job wrote bytes that are not a valid frame into "
                   "its worker's channel; the worker was killed");
}

void fq__recover_output(fq__queue *q, fq__worker *w)
{
    /* The worker is dead: nothing writes the buffer any more. Its bytes
     * come from another process, so they are decoded like any input. */
    const unsigned char *p;
    uint64_t n = w->ops->held_output(w, &p);
    size_t off = 0;

    /* A worker that never said a valid HELLO (another protocol version)
     * is not believed. */
    if (n > FQ__OUT_CAP || !(w->flags & FQ__W_HELLO))
        return;
    while (w->head && off < n) {
        fq__frame f;
        if (w->flags & FQ__W_PROTO) {
            if (w->head->wseq + 1 == w->guilty_wseq) {
                finish_guilty(q, fq__fifo_pop(q, w));
                continue; /* its frame, if here, is skipped below */
            }
            if (w->head->suspect)
                return; /* its result cannot be told from a forgery */
        }
        int rc = fq__frame_decode(p + off, (size_t)n - off,
                                  FQ__ACCEPT_FROM_WORKER, &f);
        if (rc <= 0 || f.len > n - off - FQ__WIRE_HDR)
            return;
        if (f.type == FQ__FRAME_RESULT && f.wseq < w->head->wseq) {
            /* already received, or the guilty job's, skipped above */
        } else if (f.type == FQ__FRAME_RESULT && f.wseq == w->head->wseq) {
            if (fq__deliver(q, w, &f, NULL, p + off + FQ__WIRE_HDR, 0) < 0)
                return;
        } else {
            return; /* garbage */
        }
        off += FQ__WIRE_HDR + (size_t)f.len;
    }
}

static void remove_worker(fq__queue *q, fq__worker *w)
{
    for (int i = 0; i < q->nw; i++) {
        if (q->w[i] == w) {
            memmove(&q->w[i], &q->w[i + 1],
                    (size_t)(q->nw - i - 1) * sizeof(*q->w));
            q->nw--;
            break;
        }
    }
    free(w->ctl);
    w->ops->free(w);
}

void fq__worker_gone(fq__queue *q, fq__worker *w, int wstatus, int have)
{
    int signo = 0, exit_status = -1;
    char msg[256];
    fq__job *rq_head = NULL, *rq_tail = NULL;
    uint64_t started = atomic_load(&w->stat->started);
    uint64_t done = atomic_load(&w->stat->done);
    int ready = atomic_load(&w->stat->ready);

    if (have && WIFSIGNALED(wstatus))
        signo = WTERMSIG(wstatus);
    else if (have && WIFEXITED(wstatus))
        exit_status = WEXITSTATUS(wstatus);
    if (w->flags & FQ__W_PROTO)
        snprintf(msg, sizeof(msg),
                 "worker %ld sent bytes that are not a valid frame (the job "
                 "wrote to the channel?); it was killed",
                 (long)w->pid);
    else
        w->ops->describe_exit(w, msg, sizeof(msg), signo, exit_status);

    /* A worker that died before its init function returned cannot tell us
     * whether init crashed or something killed it. Its first job is the
     * one that waited for that init: it is sent elsewhere, but once
     * INIT_DEATHS workers died in init under it, it ends as a crash that
     * names the init function. So an init that always crashes fails jobs
     * one by one (never hangs them), one that crashes now and then or is
     * killed from outside costs nothing, and the queue never stops for it;
     * only an init that returns non-zero stops the queue. */
    int in_init = !ready && q->opts.init != NULL;
    if (in_init && !w->head) {
        unsigned f = q->idle_init_deaths < 7 ? q->idle_init_deaths : 7;
        q->idle_init_deaths++;
        q->idle_respawn_at = fq__now_ns() + (INT64_C(10000000) << f);
    }
    if (in_init) {
        size_t l = strlen(msg);
        snprintf(msg + l, sizeof(msg) - l, " while running the init function");
    }
    while (w->head) {
        fq__job *j = fq__fifo_pop(q, w);
        if (q->canceling || j->cancel) {
            fq__job_finish(q, j, FQ_ECANCELED, 0, "job cancelled");
        } else if (q->broken) {
            fq__job_finish(q, j, FQ_EINIT, 0, q->broken_msg);
        } else if (w->timedout_wseq && j->wseq + 1 == w->timedout_wseq) {
            char m[128];
            snprintf(m, sizeof(m), "job exceeded its time limit of %d ms",
                     j->timeout_ms);
            fq__job_finish(q, j, FQ_ETIMEDOUT, 0, m);
        } else if ((w->flags & FQ__W_PROTO) && j->wseq + 1 == w->guilty_wseq) {
            finish_guilty(q, j);
        } else if ((in_init && j->wseq == 0 &&
                    ++j->init_deaths >= INIT_DEATHS) ||
                   /* Not when the parent killed the worker for a time
                    * limit: the job running then may be the next one (the
                    * limited job ended as the limit fired, and its result,
                    * recovered above, stands); it is sent again. Nor
                    * when fq_job_cancel() stopped it for a job that ended
                    * just before: the next one, running then, runs
                    * again. */
                   (!(w->flags & (FQ__W_PROTO | FQ__W_CANCELED)) &&
                    !w->timedout_wseq && j->wseq + 1 == started &&
                    done < started)) {
            int st = (w->flags & FQ__W_PROTO) ? FQ_EPROTO : FQ_ECRASHED;
            fq__job_finish(q, j, st, 0, msg);
            j->signo = signo;
            j->exit_status = signo ? -1 : exit_status;
        } else if ((j->wseq < done ? ++j->requeues > MAX_REQUEUES
                                   : ++j->bounces > MAX_BOUNCES)) {
            char m[300];
            snprintf(m, sizeof(m), "job lost %u workers; last: %s",
                     j->requeues + j->bounces - 1, msg);
            fq__job_finish(q, j, FQ_ECRASHED, 0, m);
            j->signo = signo;
            j->exit_status = signo ? -1 : exit_status;
        } else {
            /* Never started, or ran but its result died with the worker:
             * run it again elsewhere, ahead of newer jobs. */
            j->state = FQ__JOB_PENDING;
            j->next = NULL;
            if (rq_tail)
                rq_tail->next = j;
            else
                rq_head = j;
            rq_tail = j;
            q->npending++;
        }
    }
    if (rq_head) {
        rq_tail->next = q->pend_head;
        q->pend_head = rq_head;
        if (!q->pend_tail)
            q->pend_tail = rq_tail;
    }
    if (q->broken)
        fq__fail_pending(q, FQ_EINIT, q->broken_msg);
    remove_worker(q, w);
}
