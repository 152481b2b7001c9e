/*
 * Dispatch: which worker gets which job, in-flight depth, taking back
 * jobs a busy worker has not started, and the supply of workers.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"

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
        return FQ__MAX_INFLIGHT;
    /* Enough to keep a worker busy for twice FQ__FLUSH_AGE_NS (the age at
     * which the parent takes held results); 2 for jobs over 2 ms, so that
     * long jobs stay balanced across workers. */
    int64_t n = 2 + 2 * FQ__FLUSH_AGE_NS / avg;
    return n > (int64_t)FQ__MAX_INFLIGHT ? FQ__MAX_INFLIGHT : (unsigned)n;
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
    return !(w->flags &
             (FQ__W_RETIRING | FQ__W_SHUT | FQ__W_EOF | FQ__W_KILLED |
              FQ__W_PROTO | FQ__W_SOLO | FQ__W_CANCELED));
}

static fq__job *pend_pop(fq__queue *q)
{
    fq__job *j = q->pend_head;
    q->pend_head = j->next;
    if (!q->pend_head)
        q->pend_tail = NULL;
    j->next = NULL;
    q->npending--;
    return j;
}

/* Jobs taken back from w after they were written leave its FIFO (and its
 * in-flight count) at once, but their frames wait in the channel until the
 * worker reads and skips them, and their claim words stay live until then:
 * no job sent meanwhile may reuse one (FQ__RING apart). */
static unsigned ring_room(fq__worker *w, unsigned limit)
{
    if (!w->unread_revoked)
        return limit;
    if (atomic_load_explicit(&w->stat->started, memory_order_acquire) >
        w->unread_revoked) {
        w->unread_revoked = 0; /* it started a later job: it read them */
        return limit;
    }
    uint64_t cap = w->unread_revoked - 1 + FQ__RING;
    if (w->next_wseq >= cap)
        return 0;
    uint64_t room = w->inflight + (cap - w->next_wseq);
    return room < limit ? (unsigned)room : limit;
}

void fq__dispatch(fq__queue *q)
{
    int revoked = 0;

    q->dispatch_full = 0;
    if (!q->pend_head)
        return;
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        w->limit = !accepts_jobs(w) || stalled(q, w) ? 0 : inflight_limit(q, w);
        w->limit = ring_room(w, w->limit);
        revoked |= w->unread_revoked != 0;
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
        if (!best) {
            /* Room comes back with a result or a new worker, except room
             * in the claim ring, which the worker gives by itself. */
            q->dispatch_full = !revoked;
            return;
        }
        fq__job *j = pend_pop(q);
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
        if (j->timeout_ms > 0) {
            best->ntimed++;
            if (!best->tmin_ms || j->timeout_ms < best->tmin_ms) {
                best->tmin_ms = j->timeout_ms;
                best->tcheck_at = 0; /* it may expire sooner */
            }
        }
        /* (A remote worker is not replaced: it is not retired either.) */
        if (q->opts.max_jobs_per_worker &&
            best->next_wseq >= q->opts.max_jobs_per_worker &&
            !(best->ops->flags & FQ__KIND_REMOTE)) {
            best->flags |= FQ__W_RETIRING;
            best->limit = 0;
            q->st.recycled++;
        }
    }
}

/*
 * Takes back the jobs queued in w after `keep` (from its head when keep is
 * NULL) that w has not started, for an idle worker or for fq_job_cancel().
 * Jobs not yet written are unlinked (and the worker's sequence numbers
 * rolled back, since it never saw them); for jobs already written the
 * parent and the worker exchange the job's claim word in the shared page:
 * whoever comes first wins, so a job is either run by w or revoked, never
 * both. Revoked jobs go back to the front of the pending list, in order.
 * keep must be written (or partly written) when not NULL. With `all` (a
 * worker being retired) every job not started goes back; otherwise the
 * first job found started keeps the rest. Returns how many were taken back.
 */
static int revoke_after(fq__queue *q, fq__worker *w, fq__job *keep, int all)
{
    fq__job *back = NULL, *back_tail = NULL, *j;
    int n = 0, stop = 0;

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
    if (keep) {
        j = keep->next;
        keep->next = NULL;
        w->tail = keep;
    } else {
        j = w->head;
        w->head = w->tail = NULL;
    }
    while (j) {
        fq__job *nx = j->next;
        int take;
        if (j->wseq >= first_unwritten) {
            take = 1;
        } else if (j == partial || stop || (w->ops->flags & FQ__KIND_NO_PAGE)) {
            /* Without a shared page there is no claim to race for: a job
             * the worker has may already run. */
            take = 0;
        } else {
            /* A claim that says started stays as it is: a second look
             * (fq_job_cancel() takes back a job, then what is behind it)
             * must see it started again. */
            _Atomic uint64_t *claim = &w->stat->claim[j->wseq % FQ__RING];
            uint64_t prev = atomic_load(claim);
            while (prev != FQ__CLAIM_STARTED(j->wseq) &&
                   !atomic_compare_exchange_weak(claim, &prev,
                                                 FQ__CLAIM_REVOKED(j->wseq)))
                ;
            take = prev != FQ__CLAIM_STARTED(j->wseq);
            if (take && !w->unread_revoked)
                w->unread_revoked = j->wseq + 1;
            /* The worker has moved on: keep the rest, unless all it has
             * not started must go (a retiring worker). */
            stop = !take && !all;
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
            if (w->tail)
                w->tail->next = j;
            else
                w->head = j;
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

int fq__revoke_unstarted(fq__queue *q, fq__worker *w)
{
    if (!w->head || w->head == w->unsent)
        return 0;
    return revoke_after(q, w, w->head, 0);
}

/* The same from the head of the FIFO on: for a worker being retired. */
int fq__revoke_all_unstarted(fq__queue *q, fq__worker *w)
{
    if (!w->head)
        return 0;
    return revoke_after(q, w, NULL, 1);
}

int fq__revoke_from(fq__queue *q, fq__worker *w, fq__job *j)
{
    if (j == w->unsent && w->unsent_off > 0)
        return -1; /* partly written: it must reach the worker whole */
    /* The head stays when it was (partly) written and j is behind it; the
     * unstarted jobs between them go back too, and run elsewhere. */
    fq__job *keep = NULL;
    if (j != w->head && !(w->head == w->unsent && w->unsent_off == 0))
        keep = w->head;
    revoke_after(q, w, keep, 0);
    return j->state == FQ__JOB_PENDING;
}

void fq__fail_pending(fq__queue *q, int status, const char *msg)
{
    while (q->pend_head) {
        fq__job *j = pend_pop(q);
        fq__job_finish(q, j, status, 0, msg);
    }
}

/* ---- Worker supply ----------------------------------------------------- */

int fq__active_workers(const fq__queue *q)
{
    int n = 0;
    for (int i = 0; i < q->nw; i++)
        if (!(q->w[i]->flags & FQ__W_RETIRING))
            n++;
    return n;
}

int fq__add_worker(fq__queue *q)
{
    fq__worker *w;

    if (q->nw == q->capw) {
        int ncap = q->capw ? q->capw * 2 : 8;
        fq__worker **n = realloc(q->w, (size_t)ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        q->w = n;
        q->capw = ncap;
    }
    /* What the kind needs of the queue, and where it says why it failed. */
    fq__wenv env;
    env.opts = q->opts;
    env.kind = q->kind;
    env.fork_errno = q->fork_errno;
    env.fork_why = NULL;
    int rc = q->kind->start(&env, &w);
    q->fork_errno = env.fork_errno;
    q->fork_why = env.fork_why;
    if (rc)
        return rc;
    q->w[q->nw++] = w;
    q->dispatch_full = 0;
    return 0;
}

void fq__refill_workers(fq__queue *q)
{
    if (q->state != FQ__Q_RUNNING || q->broken)
        return;
    int64_t now = fq__now_ns();
    if (now < q->respawn_at)
        return;
    if (q->npending == 0 && q->idle_init_deaths && now < q->idle_respawn_at)
        return;
    for (int n = fq__active_workers(q); n < q->nworkers; n++) {
        if (fq__add_worker(q) < 0) {
            unsigned f = q->fork_failures < 7 ? q->fork_failures : 7;
            q->fork_failures++;
            q->respawn_at = now + (INT64_C(10000000) << f); /* to ~1.3 s */
            if (fq__active_workers(q) == 0) {
                char m[160];
                if (q->fork_why)
                    snprintf(m, sizeof(m), "could not fork a worker: %s",
                             q->fork_why);
                else
                    snprintf(m, sizeof(m), "could not fork a worker: %s",
                             strerror(q->fork_errno));
                fq__fail_pending(q, FQ_EFORK, m);
            }
            return;
        }
        q->st.respawns++;
    }
}
