/*
 * The queue: job table, dispatch to workers, outcomes and their order, and
 * the public API. The poll loop that moves bytes is loop/loop.c, driven by
 * events.c; workers are reached through their kind (w->ops).
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
#include "worker/remote.h"

#define FQ__EXPORT __attribute__((visibility("default")))

#define DEFAULT_GRACE_MS 1000

/* ---- Conditions for the loop ------------------------------------------- */

static int cond_ready(fq__queue *q)
{
    /* A handle's job that got its outcome counts: its callback is due. */
    return q->nready > 0 || q->notify_head || q->st.finished == q->st.submitted;
}

/* fq_stream(): an outcome to consume, or none of its jobs (nor any other
 * job fq_take() would return) left to wait for: jobs of handles do not
 * keep it waiting (it then produces more, or ends). */
static int cond_stream(fq__queue *q)
{
    return cond_ready(q) || q->st.submitted - q->st.finished == q->nhandle_live;
}

static int cond_all_done(fq__queue *q)
{
    return q->st.finished == q->st.submitted;
}

static int cond_no_workers(fq__queue *q)
{
    return q->nw == 0;
}

/* ---- Public API -------------------------------------------------------- */

/* LOOKUP and ENTER: see queue.h. */

static void kill_all_and_reap(fq__queue *q)
{
    /* Each worker is asked to kill what its jobs started and itself; what
     * is left of its process group a moment later is killed from here. */
    for (int i = 0; i < q->nw; i++)
        q->w[i]->ops->signal(q->w[i], SIGKILL);
    int64_t until = fq__now_ns() + FQ__HARD_KILL_NS;
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        int st;
        w->ops->await_exit(w, until);
        w->ops->kill_all(w);
        w->ops->reap(w, &st);
        free(w->ctl);
        w->ops->free(w);
    }
    q->nw = 0;
}

static void free_list(fq__job *j, int by_onext)
{
    while (j) {
        fq__job *n = by_onext ? j->onext : j->next;
        fq__job_free(j);
        j = n;
    }
}

void fq__queue_destroy(fq__queue *q)
{
    /* Jobs of handles end FQ_ECLOSED; their callbacks run once the queue
     * is gone (a callback that uses it finds it closed). */
    fq_job *due = fq__close_handles(q);
    /* Ordered: every untaken job is on the submission list. Unordered:
     * pending, in flight and ready jobs are on three kinds of list. */
    if (q->opts.ordered) {
        for (int i = 0; i < q->nw; i++)
            q->w[i]->head = NULL;
        free_list(q->ord_head, 1);
    } else {
        free_list(q->pend_head, 0);
        for (int i = 0; i < q->nw; i++) {
            free_list(q->w[i]->head, 0);
            q->w[i]->head = NULL;
        }
        free_list(q->ord_head, 1);
    }
    kill_all_and_reap(q);
    if (q->last_taken)
        fq__job_free(q->last_taken);
    free_list(q->spare, 0);
    fq__jobtable_free(&q->table);
    free(q->w);
    free(q->broken_msg);
    free(q->pfd_mem);
    free(q->held_buf);
    fq__wake_close(q);
    free(q);
    fq__future_notify(due);
}

FQ__EXPORT int fq_queue_new(fq_queue *h, const fq_options *opts)
{
    fq_options defaults = {0};

    if (!h)
        return FQ_EINVAL;
    h->id = 0;
    if (!opts)
        opts = &defaults;
    if (opts->workers < 0 || opts->timeout_ms < 0 || opts->inflight < 0 ||
        (opts->kind != FQ_WORKER_PROCESS && opts->kind != FQ_WORKER_THREAD &&
         opts->kind != FQ__WORKER_PROCESS_WIRE) ||
        (opts->fork_server && opts->kind != FQ_WORKER_PROCESS))
        return FQ_EINVAL;
    fq__queue *q = calloc(1, sizeof(*q));
    if (!q)
        return FQ_ENOMEM;
    q->opts = *opts;
    q->hd.destroy = fq__queue_destroy;
    q->kind =
        q->opts.kind == FQ_WORKER_THREAD ? &fq__thread_ops : &fq__process_ops;
    if (q->opts.kind == FQ__WORKER_PROCESS_WIRE)
        q->kind = fq__process_wire_kind();
    if (q->opts.fork_server)
        q->kind = &fq__forkserver_ops;
    q->nworkers = opts->workers;
    if (q->nworkers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        q->nworkers = n > 0 ? (int)n : 1;
    }
    if (q->opts.inflight > (int)FQ__MAX_INFLIGHT)
        q->opts.inflight = (int)FQ__MAX_INFLIGHT;
    q->state = FQ__Q_RUNNING;
    q->avg_run_ns = -1;
    fq__jobtable_init(&q->table);
    int rc = fq__wake_open(q);
    if (rc) {
        free(q);
        return rc;
    }
    rc = fq__handle_add(q);
    if (rc) {
        fq__wake_close(q);
        free(q);
        return rc;
    }
    fq__wake_publish(q);
    for (int i = 0; i < q->nworkers; i++) {
        rc = fq__add_worker(q);
        if (rc) {
            fq__handle_remove(q);
            fq__queue_destroy(q);
            return rc;
        }
    }
    h->id = q->hd.id;
    return 0;
}

/* Sends queued jobs to a worker now when it would otherwise sit idle, or
 * when enough have piled up; the rest go out in the next drive, batched. */
static void eager_flush(fq__queue *q)
{
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        if (!w->unsent)
            continue;
        if (w->unsent == w->head || w->nunsent >= 64)
            fq__flush_worker(w);
    }
}

static int track_list(fq__queue *q, const fq__job *j, int by_onext)
{
    for (; j; j = by_onext ? j->onext : j->next) {
        if (j->cancel == FQ__CANCEL_GHOST)
            continue; /* its job, cancelled, is not live */
        int rc = fq__jobtable_add(&q->table, j->id);
        if (rc < 0 && rc != FQ_EEXIST)
            return rc;
    }
    return 0;
}

/* The first job with its own id: from now on the table holds every live
 * id, starting with those of the jobs on the queue's lists (the same lists
 * fq__queue_destroy() frees; an ordered queue's jobs are on two). */
static int track_ids(fq__queue *q)
{
    int rc = track_list(q, q->pend_head, 0);
    for (int i = 0; rc == 0 && i < q->nw; i++)
        rc = track_list(q, q->w[i]->head, 0);
    if (rc == 0)
        rc = track_list(q, q->ord_head, 1);
    if (rc < 0) {
        fq__jobtable_free(&q->table);
        fq__jobtable_init(&q->table);
        return rc;
    }
    q->ids_tracked = 1;
    return 0;
}

void fq__ids_forget(fq__queue *q, uint64_t id)
{
    if (q->ids_tracked)
        fq__jobtable_del(&q->table, id);
}

/* Spare job records kept at most (each about 260 bytes). */
#define FQ__SPARE_MAX 4096u

/* A zeroed job record with room for len argument bytes. Records of jobs
 * taken with fq_take() are reused; a handle's job is freed by its handle,
 * possibly in another thread, so it never comes from or goes to the
 * spares. */
static fq__job *job_alloc(fq__queue *q, size_t len, fq_job *fut)
{
    fq__job *j = fut ? fq__future_room(fut) : NULL;
    int embedded = j && fut->room >= sizeof(*j) + len;
    int small = !fut && len <= FQ__JOB_SMALL_ARG;
    if (embedded) {
        /* j is the handle's room */
    } else if (small && q->spare) {
        j = q->spare;
        q->spare = j->next;
        q->nspare--;
    } else if (!(j = malloc(sizeof(*j) + (small ? FQ__JOB_SMALL_ARG : len)))) {
        return NULL;
    }
    memset(j, 0, sizeof(*j));
    j->embedded = (unsigned)embedded;
    j->small = (unsigned)small;
    return j;
}

/* Frees a taken job, or keeps its record for job_alloc(). */
static void job_recycle(fq__queue *q, fq__job *j)
{
    if (!j->small || q->nspare >= FQ__SPARE_MAX) {
        fq__job_free(j);
        return;
    }
    fq__job_drop_result(j);
    j->next = q->spare;
    q->spare = j;
    q->nspare++;
}

/* fq_submit() and fq_job_submit(): one path. fut is the job's handle, or
 * NULL. */
static int submit(fq__queue *q, fq_job_fn fn, const void *arg, size_t len,
                  const fq_job_options *jopts, fq_job *fut, uint64_t *id_out)
{
    uint64_t id;
    int rc;

    if (!fn || (!arg && len))
        return FQ_EINVAL;
    if (jopts && ((jopts->flags & ~FQ_JOB_ID) || (jopts->callback && !fut)))
        return FQ_EINVAL;
    if (q->broken)
        return FQ_EINIT;
    if (q->state != FQ__Q_RUNNING)
        return FQ_EFINISHED;
    if (len > FQ__WIRE_MAX_PAYLOAD ||
        len > SIZE_MAX - sizeof(fq__job) - FQ__INLINE_RESULT)
        return FQ_ETOOBIG;
    /* Workers that did not fork from us need the function's id. */
    fq__frame f = {0};
    f.type = FQ__FRAME_JOB;
    f.fn = (uint64_t)(uintptr_t)fn;
    if (q->kind->flags & FQ__KIND_BY_ID) {
        f.fn = fq__func_id_of(fn);
        f.flags = FQ__JOB_BY_ID;
        if (!f.fn)
            return FQ_ENOFUNC;
    }
    if (jopts && (jopts->flags & FQ_JOB_ID)) {
        if (!q->ids_tracked && (rc = track_ids(q)) < 0)
            return rc;
        id = jopts->id;
    } else {
        while (q->ids_tracked && fq__jobtable_has(&q->table, q->next_auto))
            q->next_auto++;
        id = q->next_auto++;
    }
    if (q->ids_tracked && (rc = fq__jobtable_add(&q->table, id)) < 0)
        return rc;
    fq__job *j = job_alloc(q, len, fut);
    if (!j) {
        fq__ids_forget(q, id);
        return FQ_ENOMEM;
    }
    j->id = id;
    j->state = FQ__JOB_PENDING;
    j->exit_status = -1;
    int tmo = jopts ? jopts->timeout_ms : 0;
    j->timeout_ms = tmo > 0 ? tmo : tmo < 0 ? 0 : q->opts.timeout_ms;
    j->arg_len = len;
    j->fut = fut;
    f.id = id;
    f.len = len;
    fq__frame_encode(&f, j->hdr);
    if (len)
        memcpy(j->arg, arg, len);

    if (q->pend_tail)
        q->pend_tail->next = j;
    else
        q->pend_head = j;
    q->pend_tail = j;
    q->npending++;
    if (fut) {
        fut->job = j;
        fut->id = id;
        q->nhandle_jobs++;
        q->nhandle_live++;
    } else if (q->opts.ordered) {
        if (q->ord_tail)
            q->ord_tail->onext = j;
        else
            q->ord_head = j;
        q->ord_tail = j;
        if (!q->ord_scan)
            q->ord_scan = j;
    }
    q->st.submitted++;
    if (!q->dispatch_full)
        fq__dispatch(q);
    eager_flush(q);
    if (id_out)
        *id_out = id;
    return 0;
}

FQ__EXPORT int fq_submit(fq_queue h, fq_job_fn fn, const void *arg, size_t len,
                         const fq_job_options *jopts, uint64_t *id_out)
{
    LOOKUP(h, q);
    ENTER(q, 1);
    return submit(q, fn, arg, len, jopts, NULL, id_out);
}

FQ__EXPORT int fq_job_submit(fq_queue h, fq_job_fn fn, const void *arg,
                             size_t len, const fq_job_options *jopts,
                             fq_job **job)
{
    if (job)
        *job = NULL;
    LOOKUP(h, q);
    ENTER(q, 1);
    if (!job)
        return FQ_EINVAL;
    /* The job record shares the handle's allocation (job_alloc()). */
    size_t room =
        len <= FQ__WIRE_MAX_PAYLOAD && len <= SIZE_MAX - sizeof(fq__job)
            ? sizeof(fq__job) + len
            : 0;
    fq_job *fut = fq__future_new(&fq__queue_future_ops, q->hd.id, jopts, room);
    if (!fut)
        return FQ_ENOMEM;
    int rc = submit(q, fn, arg, len, jopts, fut, NULL);
    if (rc) {
        fq__future_abandon(fut);
        return rc;
    }
    *job = fut;
    return 0;
}

/* Hands out the next ready outcome, if any, without driving the queue. */
static int take_ready(fq__queue *q, fq_result *r)
{
    if (q->last_taken) {
        job_recycle(q, q->last_taken);
        q->last_taken = NULL;
    }
    if (q->nready == 0)
        return 0;
    fq__job *j = q->ord_head;
    q->ord_head = j->onext;
    if (!q->ord_head)
        q->ord_tail = NULL;
    q->nready--;
    fq__ids_forget(q, j->id);
    q->st.taken++;
    j->state = FQ__JOB_TAKEN;
    q->last_taken = j;
    r->id = j->id;
    r->status = j->status;
    r->code = j->code;
    r->signo = j->signo;
    r->exit_status = j->exit_status;
    r->data = j->res;
    r->len = j->res_len;
    return 1;
}

FQ__EXPORT int fq_take(fq_queue h, fq_result *r)
{
    LOOKUP(h, q);
    ENTER(q, 0);

    if (!r)
        return FQ_EINVAL;
    /* Also with no worker left but jobs pending: the drive forks again
     * (after a failed fork, once its back-off has passed). */
    if (q->nready == 0 && (q->nw > 0 || q->npending)) {
        int rc = fq__drive(q, 0, cond_ready, 0);
        fq__notify(q);
        if (rc < 0 && rc != FQ_ETIMEDOUT && rc != FQ_EINTR)
            return rc;
    }
    return take_ready(q, r);
}

FQ__EXPORT int fq_poll(fq_queue h, int timeout_ms)
{
    LOOKUP(h, q);
    ENTER(q, 0);

    if (timeout_ms < -1)
        return FQ_EINVAL;
    if (q->nw > 0 || q->npending) {
        int rc = fq__drive(q, timeout_ms, cond_ready, FQ__DRIVE_WAKEABLE);
        fq__notify(q);
        if (rc < 0 && rc != FQ_ETIMEDOUT)
            return rc;
    }
    return q->nready > INT32_MAX ? INT32_MAX : (int)q->nready;
}

FQ__EXPORT int fq_wait(fq_queue h, int timeout_ms)
{
    LOOKUP(h, q);
    ENTER(q, 0);
    if (timeout_ms < -1)
        return FQ_EINVAL;
    int rc = fq__drive(q, timeout_ms, cond_all_done, FQ__DRIVE_WAKEABLE);
    fq__notify(q);
    if (rc == 1) /* fq_wakeup() */
        return cond_all_done(q) ? 0 : FQ_EINTR;
    return rc;
}

FQ__EXPORT int fq_stream(fq_queue h, fq_producer_fn produce,
                         fq_consumer_fn consume, void *udata, size_t lookahead)
{
    LOOKUP(h, q);
    ENTER(q, 0);
    fq_result r;
    int exhausted = 0, rc;

    if (!produce || !consume)
        return FQ_EINVAL;
    if (q->state != FQ__Q_RUNNING && !q->broken)
        return FQ_EFINISHED;
    if (lookahead == 0) {
        size_t depth =
            q->opts.inflight > 0 ? (size_t)q->opts.inflight : FQ__MAX_INFLIGHT;
        lookahead = 4 * (size_t)q->nworkers * depth;
        if (lookahead < 64)
            lookahead = 64;
    }
    for (;;) {
        /* Jobs of handles are not the stream's: never taken. */
        while (!exhausted &&
               q->st.submitted - q->nhandle_jobs - q->st.taken < lookahead) {
            if (q->state != FQ__Q_RUNNING || q->broken) {
                exhausted = 1;
                break;
            }
            atomic_store_explicit(&q->busy, 2, memory_order_release);
            rc = produce(h, udata);
            atomic_store_explicit(&q->busy, 1, memory_order_release);
            if (rc < 0)
                return rc;
            exhausted = rc == 0;
            /* A callback may have freed the queue (our reference keeps
             * the memory until we return). */
            if (atomic_load(&q->hd.closing))
                return FQ_ECLOSED;
        }
        /* Outcomes already in: the drive below is what waits for more. */
        while (take_ready(q, &r) == 1) {
            atomic_store_explicit(&q->busy, 2, memory_order_release);
            int stop = consume(h, &r, udata);
            atomic_store_explicit(&q->busy, 1, memory_order_release);
            if (stop)
                return stop;
            if (q->canceling)
                return FQ_ECANCELED; /* the consumer cancelled the queue */
            if (atomic_load(&q->hd.closing))
                return FQ_ECLOSED;
        }
        if (exhausted && q->st.submitted - q->nhandle_jobs == q->st.taken)
            return q->broken ? FQ_EINIT : 0;
        rc = fq__drive(q, -1, cond_stream, 0);
        fq__notify(q);
        if (rc < 0)
            return rc;
    }
}

FQ__EXPORT int fq_refork(fq_queue h)
{
    LOOKUP(h, q);
    ENTER(q, 0);

    if (q->broken)
        return FQ_EINIT;
    if (q->state != FQ__Q_RUNNING)
        return FQ_EFINISHED;
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        if (w->ops->flags & FQ__KIND_REMOTE)
            continue; /* shares no memory with us: nothing to refresh */
        w->flags |= FQ__W_RETIRING;
        if (w->inflight == 0 && !(w->flags & FQ__W_SHUT)) {
            shutdown(w->fd, SHUT_WR);
            w->flags |= FQ__W_SHUT;
        }
    }
    q->respawn_at = 0;
    fq__refill_workers(q);
    if (fq__active_workers(q) == 0)
        return FQ_EFORK;
    fq__dispatch(q);
    eager_flush(q);
    return 0;
}

static int stop_workers(fq__queue *q, int sig)
{
    int64_t now = fq__now_ns();
    int grace = q->opts.grace_ms ? q->opts.grace_ms : DEFAULT_GRACE_MS;

    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        if (sig == 0) {
            if (!(w->flags & FQ__W_SHUT)) {
                shutdown(w->fd, SHUT_WR);
                w->flags |= FQ__W_SHUT;
            }
        } else if (grace < 0) {
            w->ops->signal(w, SIGKILL);
        } else if (sig == SIGTERM) {
            w->ops->terminate(w, grace);
        } else {
            w->ops->signal(w, sig);
        }
        if (grace >= 0 && !w->kill_at)
            w->kill_at = now + (int64_t)grace * 1000000;
    }
    return fq__drive(q, -1, cond_no_workers, 1);
}

FQ__EXPORT int fq_finish(fq_queue h)
{
    LOOKUP(h, q);
    ENTER(q, 0);
    int rc;

    if (q->state == FQ__Q_FINISHED)
        return 0;
    if (q->state == FQ__Q_RUNNING && !q->broken) {
        rc = fq__drive(q, -1, cond_all_done, 0);
        fq__notify(q);
        if (rc < 0)
            return rc;
    }
    q->state = FQ__Q_STOPPING;
    rc = stop_workers(q, q->broken ? SIGKILL : 0);
    q->state = FQ__Q_FINISHED;
    fq__notify(q);
    return rc;
}

FQ__EXPORT int fq_cancel(fq_queue h)
{
    LOOKUP(h, q);
    ENTER(q, 1); /* also from fq_stream() callbacks */

    if (q->state == FQ__Q_FINISHED)
        return 0;
    q->state = FQ__Q_STOPPING;
    q->canceling = 1;
    fq__fail_pending(q, FQ_ECANCELED, "job cancelled");
    int rc = stop_workers(q, SIGTERM);
    q->state = FQ__Q_FINISHED;
    fq__notify(q);
    return rc;
}

FQ__EXPORT int fq_queue_free(fq_queue h)
{
    LOOKUP(h, q);

    /* Calls in progress in other threads (or callbacks of this one) hold
     * references: wake their waits, which then return FQ_ECLOSED; the
     * last reference released destroys the queue. */
    fq__wake_unpublish(q);
    if (fq__handle_remove(q) > 0)
        fq__wake_signal(q);
    return 0;
}

FQ__EXPORT int fq_stats_get(fq_queue h, fq_stats *st)
{
    LOOKUP(h, q);

    if (!st)
        return FQ_EINVAL;
    *st = q->st;
    st->pending = q->npending;
    st->running = q->st.submitted - q->st.finished - q->npending;
    st->workers = q->nw;
    return 0;
}

FQ__EXPORT int fq_worker_pids(fq_queue h, pid_t *pids, int max)
{
    LOOKUP(h, q);
    int n = 0;

    if (max < 0 || (!pids && max > 0))
        return FQ_EINVAL;
    for (int i = 0; i < q->nw; i++) {
        if (q->w[i]->ops == &fq__thread_ops ||
            (q->w[i]->ops->flags & FQ__KIND_REMOTE))
            continue; /* a thread or a remote worker has no pid of ours */
        if (n < max)
            pids[n] = q->w[i]->pid;
        n++;
    }
    return n;
}

/* ---- Remote workers (since 0.2.0) --------------------------------------- */

FQ__EXPORT int fq_queue_add_remote(fq_queue h, const char *addr,
                                   const fq_remote_options *o)
{
    fq_remote_options dflt = {0};
    char err[512] = "";
    LOOKUP(h, q);
    ENTER(q, 0);

    if (!o)
        o = &dflt;
    if (!addr || o->connect_timeout_ms < 0 || (o->key && o->key_len == 0) ||
        (o->flags & ~FQ_REMOTE_REPLACE_LOCAL))
        return FQ_EINVAL;
    if (q->broken)
        return FQ_EINIT;
    if (q->state != FQ__Q_RUNNING)
        return FQ_EFINISHED;
    /* Jobs name their functions by id from now on, in every worker; those
     * submitted before named them by address. */
    const fq__worker_ops *kind = fq__kind_by_id(q->kind);
    if (!kind)
        return FQ_EINVAL;
    if (kind != q->kind && q->st.finished != q->st.submitted)
        return FQ_EBUSY;
    if (q->nw == q->capw) {
        int ncap = q->capw ? q->capw * 2 : 8;
        fq__worker **n = realloc(q->w, (size_t)ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        q->w = n;
        q->capw = ncap;
    }
    /* Instead of a local worker: the newest local one not retiring yet
     * retires (it finishes the jobs it has), and the queue's worker count
     * stays, so a local worker comes back if this one ends. Otherwise one
     * more worker, not replaced when it ends. */
    fq__worker *local = NULL;
    if (o->flags & FQ_REMOTE_REPLACE_LOCAL)
        for (int i = q->nw - 1; i >= 0 && !local; i--)
            if (!(q->w[i]->ops->flags & FQ__KIND_REMOTE) &&
                !(q->w[i]->flags & FQ__W_RETIRING))
                local = q->w[i];
    fq__worker *w;
    int rc = fq__remote_connect(addr, o, local ? NULL : &q->nworkers, &w, err,
                                sizeof(err));
    if (o->errbuf && o->errbuf_size)
        snprintf(o->errbuf, o->errbuf_size, "%s", rc ? err : "");
    if (rc)
        return rc;
    q->kind = kind;
    q->w[q->nw++] = w;
    if (local) {
        local->flags |= FQ__W_RETIRING;
        if (local->inflight == 0 && !(local->flags & FQ__W_SHUT)) {
            shutdown(local->fd, SHUT_WR);
            local->flags |= FQ__W_SHUT;
        }
    } else {
        q->nworkers++;
    }
    fq__dispatch(q);
    eager_flush(q);
    return 0;
}
