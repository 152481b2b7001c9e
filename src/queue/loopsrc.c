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
    return atomic_load_explicit(&q->closing, memory_order_relaxed);
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
    if (!s->visible)
        return closing(s->q); /* to leave the loop, and let it go */
    return s->q->nready > 0 || s->woken || closing(s->q);
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
    pfd[n] = (struct pollfd){q->wake_rd, POLLIN, 0};
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
