/*
 * Dispatch: which worker gets each pending job (each worker's own in-flight
 * depth, none for a worker stalled on a long job), taking back the jobs
 * queued behind a long one for an idle worker, and the worker FIFO.
 */
#include <stdatomic.h>

#include "internal.h"

#define MAX_INFLIGHT FQ__RING

/* ---- Dispatch ---------------------------------------------------------- */

/* The in-flight depth of one worker, from the run times of its own jobs
 * (the queue's average until it has some). */
static unsigned inflight_limit(const fq__queue *q, const fq__worker *w)
{
    if (q->opts.inflight > 0)
        return (unsigned)q->opts.inflight;
    int64_t avg = w->avg_run_ns >= 0 ? w->avg_run_ns : q->avg_run_ns;
    if (avg < 0)
        return 4;
    if (avg < 20000)
        return MAX_INFLIGHT;
    /* Enough to keep a worker busy for twice FQ__FLUSH_AGE_NS (the age at
     * which the parent takes held results); 2 for jobs over 2 ms, so that
     * long jobs stay balanced across workers. */
    int64_t n = 2 + 2 * FQ__FLUSH_AGE_NS / avg;
    return n > (int64_t)MAX_INFLIGHT ? MAX_INFLIGHT : (unsigned)n;
}

int64_t fq__head_stalled_since(const fq__worker *w)
{
    if (!w->head || w->head == w->unsent)
        return -1;
    uint64_t started =
        atomic_load_explicit(&w->stat->started, memory_order_acquire);
    if (started != w->head->wseq + 1 ||
        atomic_load_explicit(&w->stat->done, memory_order_acquire) >= started)
        return -1;
    return atomic_load_explicit(&w->stat->start_ns, memory_order_relaxed);
}

/* A worker whose current job has run for FQ__STALL_NS gets no more jobs
 * until it ends: the jobs would wait behind it. */
static int stalled(const fq__queue *q, const fq__worker *w)
{
    int64_t since = fq__head_stalled_since(w);
    return since >= 0 && q->now_ns - since >= FQ__STALL_NS;
}

static int accepts_jobs(const fq__worker *w)
{
    return !(w->flags & (FQ__W_RETIRING | FQ__W_SHUT | FQ__W_EOF |
                         FQ__W_KILLED | FQ__W_PROTO | FQ__W_SOLO));
}

fq__job *fq__pend_pop(fq__queue *q)
{
    fq__job *j = q->pend_head;
    q->pend_head = j->next;
    if (!q->pend_head)
        q->pend_tail = NULL;
    j->next = NULL;
    q->npending--;
    return j;
}

void fq__dispatch(fq__queue *q)
{
    if (!q->pend_head)
        return;
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        w->limit = !accepts_jobs(w) || stalled(q, w) ? 0 : inflight_limit(q, w);
    }
    while (q->pend_head) {
        fq__worker *best = NULL;
        /* A job suspected of breaking a stream runs alone in an idle
         * worker, so that its output is told apart from any other's. */
        int suspect = q->pend_head->suspect != 0;
        for (int i = 0; i < q->nw; i++) {
            fq__worker *w = q->w[i];
            unsigned lim = suspect && w->limit ? 1 : w->limit;
            if (w->inflight < lim && !(w->flags & FQ__W_SOLO) &&
                (!best || w->inflight < best->inflight))
                best = w;
        }
        if (!best)
            return;
        fq__job *j = fq__pend_pop(q);
        if (j->suspect)
            best->flags |= FQ__W_SOLO;
        j->state = FQ__JOB_SENT;
        j->wseq = best->next_wseq++;
        if (best->tail)
            best->tail->next = j;
        else
            best->head = j;
        best->tail = j;
        if (!best->unsent) {
            best->unsent = j;
            best->unsent_off = 0;
        }
        best->nunsent++;
        best->inflight++;
        if (j->timeout_ms > 0)
            best->ntimed++;
        if (q->opts.max_jobs_per_worker &&
            best->next_wseq >= q->opts.max_jobs_per_worker) {
            best->flags |= FQ__W_RETIRING;
            best->limit = 0;
        }
    }
}

/*
 * Takes back the jobs queued in w behind the one it is running, for an idle
 * worker. Jobs not yet written are unlinked (and the worker's sequence
 * numbers rolled back, since it never saw them); for jobs already written
 * the parent and the worker exchange the job's claim word in the shared
 * page: whoever comes first wins, so a job is either run by w or revoked,
 * never both. Revoked jobs go back to the front of the pending list.
 */
int fq__revoke_unstarted(fq__queue *q, fq__worker *w)
{
    fq__job *keep = w->head, *back = NULL, *back_tail = NULL;
    int n = 0, stop = 0;

    if (!keep || keep == w->unsent)
        return 0;
    /* Jobs from first_unwritten on never reached the worker; a job partly
     * written must still reach it whole, so it stays. */
    uint64_t first_unwritten = UINT64_MAX;
    fq__job *partial = w->unsent && w->unsent_off > 0 ? w->unsent : NULL;
    if (w->unsent) {
        first_unwritten = w->unsent->wseq + (partial ? 1 : 0);
        w->next_wseq = first_unwritten;
    }
    w->unsent = partial;
    w->nunsent = partial ? 1 : 0;
    fq__job *j = keep->next;
    keep->next = NULL;
    w->tail = keep;
    while (j) {
        fq__job *nx = j->next;
        int take;
        if (j->wseq >= first_unwritten) {
            take = 1;
        } else if (j == partial || stop) {
            take = 0;
        } else {
            uint64_t prev = atomic_exchange(&w->stat->claim[j->wseq % FQ__RING],
                                            FQ__CLAIM_REVOKED(j->wseq));
            take = prev != FQ__CLAIM_STARTED(j->wseq);
            stop = !take; /* the worker has moved on: keep the rest */
        }
        j->next = NULL;
        if (take) {
            w->inflight--;
            if (j->timeout_ms > 0)
                w->ntimed--;
            if (j->suspect)
                w->flags &= ~FQ__W_SOLO;
            j->state = FQ__JOB_PENDING;
            if (back_tail)
                back_tail->next = j;
            else
                back = j;
            back_tail = j;
            q->npending++;
            n++;
        } else {
            w->tail->next = j;
            w->tail = j;
        }
        j = nx;
    }
    if (back) {
        back_tail->next = q->pend_head;
        q->pend_head = back;
        if (!q->pend_tail)
            q->pend_tail = back_tail;
    }
    return n;
}

fq__job *fq__fifo_pop(fq__worker *w)
{
    fq__job *j = w->head;
    w->head = j->next;
    if (!w->head)
        w->tail = NULL;
    j->next = NULL;
    w->inflight--;
    if (j->timeout_ms > 0)
        w->ntimed--;
    if (j->suspect)
        w->flags &= ~FQ__W_SOLO;
    return j;
}
