/*
 * A queue as a source of a loop object (fq_loop_add_queue(); the loop is
 * loop/lobj.c, which knows the queue only through the table below). Each
 * pass runs the same steps as fq__drive() (events.c): maintain, the poll
 * set, what poll() found. The loop holds a reference to the queue, so a
 * queue freed while in a loop lives until the loop lets it go: its
 * wake-up descriptor, also in the poll set, wakes the loop, which reports
 * it once (FQ_LOOP_CLOSED) and releases it (the last release destroys it).
 *
 * Sources that ride on a queue (job handles: a job has no descriptor of its
 * own, its queue does the moving) hold it with fq__loop_queue_hold(): the
 * queue is then driven, once however many jobs of it are in the loop, but
 * reported only if fq_loop_add_queue() added it too. A held queue that is
 * freed leaves the loop without an event.
 */
#include <stdlib.h>

#include "job/job.h"
#include "loop/source.h"
#include "queue/queue.h"

#define FQ__EXPORT __attribute__((visibility("default")))

typedef struct qsrc {
    fq__queue *q;   /* a reference held by the loop */
    int woken;      /* fq_wakeup() on the queue, not reported yet */
    int nfd;        /* the queue's entries in this pass's poll set */
    int visible;    /* added by fq_loop_add_queue(): reported */
    void *udata;    /* fq_loop_add_queue()'s */
    unsigned holds; /* fq__loop_queue_hold() by sources that ride on it */
} qsrc;

/* A call of the queue in progress (another thread, or the loop waited on
 * from one of the queue's own callbacks) keeps the loop off the queue: the
 * pass leaves it alone. */
static int enter(fq__queue *q)
{
    int e = 0;
    return atomic_compare_exchange_strong(&q->busy, &e, 1);
}

static void leave(fq__queue *q)
{
    atomic_store(&q->busy, 0);
}

static int closing(const fq__queue *q)
{
    return atomic_load_explicit(&q->hd.closing, memory_order_relaxed);
}

static int64_t q_maintain(void *obj)
{
    fq__queue *q = ((qsrc *)obj)->q;
    if (closing(q) || !enter(q))
        return INT64_MAX;
    int64_t next = fq__queue_maintain(q);
    leave(q);
    return next;
}

static int q_ready(void *obj)
{
    qsrc *s = obj;
    /* Callbacks of job handles that got their outcome are due: report()
     * runs them, at the end of the wait as every driving call does. */
    if (closing(s->q) || s->q->notify_head)
        return 1;
    return s->visible && (s->q->nready > 0 || s->woken);
}

static int q_sources(void *obj, struct pollfd **pfdp)
{
    qsrc *s = obj;
    fq__queue *q = s->q;
    s->nfd = 0;
    if (closing(q) || !enter(q))
        return 0;
    struct pollfd *pfd;
    int n = fq__queue_sources(q, 1, &pfd);
    leave(q);
    if (n < 0)
        return n;
    /* The queue's wake-up: fq_wakeup() and fq_queue_free() reach the loop. */
    pfd[n] = (struct pollfd){q->hd.wake_rd, POLLIN, 0};
    s->nfd = n;
    *pfdp = pfd;
    return n + 1;
}

static void q_events(void *obj, struct pollfd *pfd, int nfd, int n)
{
    qsrc *s = obj;
    fq__queue *q = s->q;
    (void)nfd;
    if (pfd[s->nfd].revents) {
        fq__wake_drain(q);
        if (!closing(q))
            s->woken = 1;
        n--;
    }
    if (n > 0 && !closing(q) && enter(q)) {
        fq__queue_events(q, pfd, n);
        leave(q);
    }
}

static int q_report(void *obj, fq_loop_event *ev)
{
    qsrc *s = obj;
    ev->udata = s->udata;
    /* Outside the loop's iteration of sources: callbacks may add and remove
     * sources, submit, cancel, free handles (not wait: FQ_EBUSY). */
    if (s->q->notify_head && !closing(s->q) && enter(s->q)) {
        fq__notify(s->q);
        leave(s->q);
    }
    if (closing(s->q)) {
        ev->flags = FQ_LOOP_CLOSED;
        return s->visible ? 2 : -1;
    }
    if (!s->visible)
        return 0;
    if (s->q->nready == 0 && !s->woken)
        return 0;
    ev->count = s->q->nready;
    ev->flags = s->woken ? FQ_LOOP_WOKEN : 0;
    s->woken = 0;
    return 1;
}

static void q_release(void *obj)
{
    qsrc *s = obj;
    fq__handle_release(&s->q); /* destroys a freed queue */
    free(s);
}

static const fq__source_ops queue_source_ops = {
    FQ_LOOP_QUEUE, q_maintain, q_ready,   q_sources,
    q_events,      q_report,   q_release,
};

/* Adds the queue of h as a source (visible or held), or finds it. */
static int get_source(fq_loop *loop, fq_queue h, qsrc **out)
{
    qsrc *s = fq__loop_source_find(loop, &queue_source_ops, h.id);
    if (s) {
        *out = s;
        return 0;
    }
    if (!(s = calloc(1, sizeof(*s))))
        return FQ_ENOMEM;
    int rc = fq__handle_get(h, &s->q);
    if (rc) {
        free(s);
        return rc;
    }
    rc = fq__loop_source_add(loop, &queue_source_ops, s, h.id, NULL);
    if (rc) {
        fq__handle_release(&s->q);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

FQ__EXPORT int fq_loop_add_queue(fq_loop *loop, fq_queue h, void *udata)
{
    qsrc *s;
    if (!loop)
        return FQ_EINVAL;
    int rc = get_source(loop, h, &s);
    if (rc)
        return rc;
    if (s->visible)
        return FQ_EINVAL; /* already in this loop */
    if (closing(s->q))
        return FQ_ECLOSED; /* held for its jobs, but freed meanwhile */
    s->visible = 1;
    s->udata = udata;
    return 0;
}

FQ__EXPORT int fq_loop_remove_queue(fq_loop *loop, fq_queue h)
{
    if (!loop || h.id == 0)
        return FQ_EINVAL;
    qsrc *s = fq__loop_source_find(loop, &queue_source_ops, h.id);
    if (!s || !s->visible)
        return FQ_EINVAL;
    if (s->holds > 0) { /* still driven for the sources riding on it */
        s->visible = 0;
        s->udata = NULL;
        s->woken = 0;
        return 0;
    }
    return fq__loop_source_remove(loop, &queue_source_ops, h.id);
}

int fq__loop_queue_hold(fq_loop *loop, fq_queue h)
{
    qsrc *s;
    if (!loop)
        return FQ_EINVAL;
    int rc = get_source(loop, h, &s);
    if (rc == 0)
        s->holds++;
    return rc;
}

void fq__loop_queue_unhold(fq_loop *loop, fq_queue h)
{
    qsrc *s = loop ? fq__loop_source_find(loop, &queue_source_ops, h.id) : NULL;
    if (!s || s->holds == 0) /* it left the loop already (freed) */
        return;
    if (--s->holds == 0 && !s->visible)
        fq__loop_source_remove(loop, &queue_source_ops, h.id);
}

/* ---- job handles as sources (fq_loop_add_job) -----------------------------
 */

/*
 * A job handle has no descriptor of its own: its queue does the moving, so
 * the job source holds the queue (driven once for all its jobs in the loop)
 * and is ready when the handle has its outcome; reported once, it leaves.
 * The loop keeps a reference to the handle, so the caller may free it
 * meanwhile.
 */
typedef struct jsrc {
    fq_job *h;
    fq_loop *loop;
    fq_queue q; /* held, or {0} (the job had its outcome when added) */
} jsrc;

static int64_t j_maintain(void *obj)
{
    (void)obj;
    return INT64_MAX;
}

static int j_ready(void *obj)
{
    return atomic_load_explicit(&((jsrc *)obj)->h->done, memory_order_acquire);
}

static int j_sources(void *obj, struct pollfd **pfd)
{
    (void)obj;
    (void)pfd;
    return 0;
}

static void j_events(void *obj, struct pollfd *pfd, int nfd, int n)
{
    (void)obj;
    (void)pfd;
    (void)nfd;
    (void)n;
}

static int j_report(void *obj, fq_loop_event *ev)
{
    jsrc *s = obj;
    if (!j_ready(obj))
        return 0;
    /* The callbacks due on its queue run first, as q_report() would: this
     * source may be the queue's last hold, and the queue leaves with it
     * before its own report comes (the callback would wait for the next
     * call of the queue, which may never come). */
    qsrc *qs = s->q.id
                   ? fq__loop_source_find(s->loop, &queue_source_ops, s->q.id)
                   : NULL;
    if (qs && qs->q->notify_head && !closing(qs->q) && enter(qs->q)) {
        fq__notify(qs->q);
        leave(qs->q);
    }
    ev->id = s->h->id;
    return 2;
}

static void j_release(void *obj)
{
    jsrc *s = obj;
    if (s->q.id)
        fq__loop_queue_unhold(s->loop, s->q);
    fq_job_free(s->h); /* the loop's reference */
    free(s);
}

static const fq__source_ops job_source_ops = {
    FQ_LOOP_JOB, j_maintain, j_ready, j_sources, j_events, j_report, j_release,
};

FQ__EXPORT int fq_loop_add_job(fq_loop *loop, fq_job *h, void *udata)
{
    if (!loop || !h)
        return FQ_EINVAL;
    if (fq__loop_source_find(loop, &job_source_ops, (uint64_t)(uintptr_t)h))
        return FQ_EINVAL;
    jsrc *s = calloc(1, sizeof(*s));
    if (!s)
        return FQ_ENOMEM;
    s->h = h;
    s->loop = loop;
    if (!atomic_load_explicit(&h->done, memory_order_acquire)) {
        fq_queue q = {h->qid};
        int rc = fq__loop_queue_hold(loop, q);
        if (rc) {
            free(s);
            return rc;
        }
        s->q = q;
    }
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    int rc = fq__loop_source_add(loop, &job_source_ops, s,
                                 (uint64_t)(uintptr_t)h, udata);
    if (rc) {
        if (s->q.id)
            fq__loop_queue_unhold(loop, s->q);
        atomic_fetch_sub_explicit(&h->refs, 1, memory_order_relaxed);
        free(s);
    }
    return rc;
}

FQ__EXPORT int fq_loop_remove_job(fq_loop *loop, fq_job *h)
{
    if (!loop || !h)
        return FQ_EINVAL;
    return fq__loop_source_remove(loop, &job_source_ops,
                                  (uint64_t)(uintptr_t)h);
}
