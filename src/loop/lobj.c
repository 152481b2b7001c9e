/*
 * The loop object (fq_loop): many sources waited on at once, timers, a
 * wake-up, and an fd plus a timeout for outside event loops.
 *
 * It is one more owner of the generic poll loop (loop.c): its fq__loop_ops
 * run over all its sources (source.h), each a table of operations handed
 * in by the layer above that owns the object (queue/loopsrc.c: queues and
 * job handles; channel/: channels and exchanges), so this file never names
 * any of them. Timers and the wake-up
 * are its own.
 *
 * The wake-up is an eventfd (a pipe elsewhere), always in the poll set:
 * fq_loop_wakeup() writes to it, async-signal-safely. For outside event
 * loops, lobj_fd.c keeps an epoll descriptor whose interest set follows the
 * poll set (fq_loop_fd()).
 *
 * Sources that leave the loop while it iterates (a timer callback removes
 * one, a report says it is gone) are marked dead and compacted at the next
 * safe point, so no iteration ever sees the array move under it.
 */
#include "loop/lobj.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "loop/wake.h"
#include "loop/loop.h"

#define FQ__EXPORT __attribute__((visibility("default")))

/* ---- sources ------------------------------------------------------------ */

static struct lsrc *find_src(fq_loop *l, const fq__source_ops *ops, uint64_t id)
{
    for (int i = 0; i < l->ns; i++)
        if (l->s[i].ops == ops && l->s[i].id == id)
            return &l->s[i];
    return NULL;
}

int fq__loop_source_add(fq_loop *l, const fq__source_ops *ops, void *obj,
                        uint64_t id, void *udata)
{
    if (!l || !ops || find_src(l, ops, id))
        return FQ_EINVAL;
    if (l->ns == l->caps) {
        int ncap = l->caps ? l->caps * 2 : 8;
        struct lsrc *n = realloc(l->s, (size_t)ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        l->s = n;
        l->caps = ncap;
    }
    struct lsrc *s = &l->s[l->ns++];
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->obj = obj;
    s->id = id;
    s->udata = udata;
    return 0;
}

/* Releases a source and marks it dead (compacted later). */
static void drop(fq_loop *l, struct lsrc *s)
{
    const fq__source_ops *ops = s->ops;
    void *obj = s->obj;
    s->ops = NULL;
    s->obj = NULL;
    s->n = 0;
    l->dead++;
    ops->release(obj);
}

int fq__loop_source_remove(fq_loop *l, const fq__source_ops *ops, uint64_t id)
{
    struct lsrc *s = l && ops ? find_src(l, ops, id) : NULL;
    if (!s)
        return FQ_EINVAL;
    drop(l, s);
    if (!l->busy)
        fq__lobj_compact(l);
    return 0;
}

void *fq__loop_source_find(fq_loop *l, const fq__source_ops *ops, uint64_t id)
{
    struct lsrc *s = l && ops ? find_src(l, ops, id) : NULL;
    return s ? s->obj : NULL;
}

void fq__lobj_compact(fq_loop *l)
{
    if (!l->dead)
        return;
    int k = 0;
    for (int i = 0; i < l->ns; i++)
        if (l->s[i].ops)
            l->s[k++] = l->s[i];
    l->ns = k;
    l->dead = 0;
}

/* ---- the operations fq__loop_run() calls --------------------------------- */

static int op_closing(void *owner)
{
    (void)owner;
    return 0;
}

int64_t fq__lobj_maintain(fq_loop *l)
{
    int64_t next = INT64_MAX;
    fq__lobj_compact(l);
    for (int i = 0; i < l->ns; i++) {
        struct lsrc *s = &l->s[i];
        if (!s->ops)
            continue;
        int64_t t = s->ops->maintain(s->obj);
        if (t < next)
            next = t;
    }
    for (int i = 0; i < l->nt; i++)
        if (l->t[i].at < next)
            next = l->t[i].at;
    return next;
}

static int64_t op_maintain(void *owner)
{
    return fq__lobj_maintain(owner);
}

int fq__lobj_ready(fq_loop *l)
{
    if (l->woken)
        return 1;
    if (l->nt) {
        int64_t now = fq__now_ns();
        for (int i = 0; i < l->nt; i++)
            if (l->t[i].at <= now)
                return 1;
    }
    for (int i = 0; i < l->ns; i++)
        if (l->s[i].ops && l->s[i].ops->ready(l->s[i].obj))
            return 1;
    return 0;
}

static int op_satisfied(void *owner)
{
    return fq__lobj_ready(owner);
}

static int reserve_pfd(fq_loop *l, int need)
{
    if (need <= l->cappfd)
        return 0;
    int ncap = l->cappfd ? l->cappfd : 16;
    while (ncap < need)
        ncap *= 2;
    struct pollfd *n = realloc(l->pfd, (size_t)ncap * sizeof(*n));
    if (!n)
        return FQ_ENOMEM;
    l->pfd = n;
    l->cappfd = ncap;
    return 0;
}

int fq__lobj_gather(fq_loop *l, int extra, struct pollfd **pfdp)
{
    int nfd = 0;
    for (int i = 0; i < l->ns; i++) {
        struct lsrc *s = &l->s[i];
        s->first = nfd;
        s->n = 0;
        s->spfd = NULL;
        if (!s->ops)
            continue;
        struct pollfd *sp;
        int n = s->ops->sources(s->obj, &sp);
        if (n < 0)
            return n;
        if (n == 0)
            continue;
        if (reserve_pfd(l, nfd + n + 1 + extra) < 0)
            return FQ_ENOMEM;
        memcpy(l->pfd + nfd, sp, (size_t)n * sizeof(*sp));
        s->spfd = sp;
        s->n = n;
        nfd += n;
    }
    if (reserve_pfd(l, nfd + 1 + extra) < 0)
        return FQ_ENOMEM;
    l->pfd[nfd] = (struct pollfd){l->wake_rd, POLLIN, 0};
    l->wake_idx = nfd++;
    *pfdp = l->pfd;
    return nfd;
}

static int op_sources(void *owner, int extra, struct pollfd **pfdp)
{
    return fq__lobj_gather(owner, extra, pfdp);
}

static void op_events(void *owner, struct pollfd *pfd, int nfd, int n)
{
    fq_loop *l = owner;
    (void)nfd;
    if (pfd[l->wake_idx].revents) {
        fq__wake_pair_drain(l->wake_rd, l->wake_wr);
        l->woken = 1;
        n--;
    }
    for (int i = 0; i < l->ns && n > 0; i++) {
        struct lsrc *s = &l->s[i];
        if (!s->ops || s->n == 0)
            continue;
        int ready = 0;
        for (int k = 0; k < s->n; k++) {
            short re = pfd[s->first + k].revents;
            s->spfd[k].revents = re;
            ready += re != 0;
        }
        if (ready) {
            s->ops->events(s->obj, s->spfd, s->n, ready);
            n -= ready;
        }
    }
}

static const fq__loop_ops lobj_ops = {
    op_closing, op_maintain, op_satisfied, op_sources, op_events,
};

/* ---- life cycle ------------------------------------------------------------
 */

FQ__EXPORT int fq_loop_new(fq_loop **lp, const fq_loop_options *o)
{
    if (!lp)
        return FQ_EINVAL;
    *lp = NULL;
    fq_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return FQ_ENOMEM;
    if (o)
        l->o = *o;
    l->owner = getpid();
    l->next_tid = 1;
    l->epfd = -1;
    int rc = fq__wake_pair_open(&l->wake_rd, &l->wake_wr);
    if (rc) {
        free(l);
        return rc;
    }
    *lp = l;
    return 0;
}

FQ__EXPORT int fq_loop_free(fq_loop *l)
{
    if (!l)
        return FQ_EINVAL;
    if (l->busy)
        return FQ_EBUSY;
    l->busy = 1; /* a release() that calls back into the loop is refused */
    for (int i = 0; i < l->ns; i++)
        if (l->s[i].ops)
            drop(l, &l->s[i]);
    fq__lobj_fd_close(l);
    fq__wake_pair_close(l->wake_rd, l->wake_wr);
    free(l->s);
    free(l->t);
    free(l->pfd);
    free(l);
    return 0;
}

/* ---- wake-up --------------------------------------------------------------
 */

FQ__EXPORT int fq_loop_wakeup(fq_loop *l)
{
    if (!l)
        return FQ_EINVAL;
    return fq__wake_pair_signal(l->wake_wr, l->wake_rd == l->wake_wr);
}

/* ---- timers ---------------------------------------------------------------
 */

FQ__EXPORT int fq_loop_timer(fq_loop *l, int delay_ms, fq_loop_timer_fn fn,
                             void *udata, uint64_t *id)
{
    if (id)
        *id = 0;
    if (!l || delay_ms < 0)
        return FQ_EINVAL;
    if (l->nt == l->capt) {
        int ncap = l->capt ? l->capt * 2 : 8;
        struct ltimer *n = realloc(l->t, (size_t)ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        l->t = n;
        l->capt = ncap;
    }
    struct ltimer *t = &l->t[l->nt++];
    t->id = l->next_tid++;
    t->at = fq__now_ns() + (int64_t)delay_ms * 1000000;
    t->fn = fn;
    t->udata = udata;
    if (id)
        *id = t->id;
    return 0;
}

static void timer_remove_at(fq_loop *l, int i)
{
    memmove(&l->t[i], &l->t[i + 1], (size_t)(l->nt - i - 1) * sizeof(*l->t));
    l->nt--;
}

FQ__EXPORT int fq_loop_timer_cancel(fq_loop *l, uint64_t id)
{
    if (!l || id == 0)
        return FQ_EINVAL;
    for (int i = 0; i < l->nt; i++) {
        if (l->t[i].id == id) {
            timer_remove_at(l, i);
            return 0;
        }
    }
    return FQ_EINVAL;
}

/* Runs the callbacks of the timers due now, earliest first; timers added
 * by the callbacks wait for the next call, so a callback that re-arms
 * itself with delay 0 cannot keep this call going forever. */
static void run_timers(fq_loop *l)
{
    int64_t now = fq__now_ns();
    uint64_t limit = l->next_tid;
    for (;;) {
        int best = -1;
        for (int i = 0; i < l->nt; i++) {
            struct ltimer *t = &l->t[i];
            if (t->fn && t->at <= now && t->id < limit &&
                (best < 0 || t->at < l->t[best].at))
                best = i;
        }
        if (best < 0)
            return;
        struct ltimer t = l->t[best];
        timer_remove_at(l, best);
        t.fn(l, t.id, t.udata);
    }
}

/* ---- waiting and reporting ----------------------------------------------- */

static int collect(fq_loop *l, fq_loop_event *ev, int max)
{
    int n = 0;
    run_timers(l);
    if (l->woken && n < max) {
        memset(&ev[n], 0, sizeof(ev[n]));
        ev[n++].type = FQ_LOOP_WAKEUP;
        l->woken = 0;
    }
    /* Due timers without a callback, earliest first. */
    int64_t now = fq__now_ns();
    while (n < max) {
        int best = -1;
        for (int i = 0; i < l->nt; i++)
            if (!l->t[i].fn && l->t[i].at <= now &&
                (best < 0 || l->t[i].at < l->t[best].at))
                best = i;
        if (best < 0)
            break;
        memset(&ev[n], 0, sizeof(ev[n]));
        ev[n].type = FQ_LOOP_TIMER;
        ev[n].id = l->t[best].id;
        ev[n++].udata = l->t[best].udata;
        timer_remove_at(l, best);
    }
    int ns = l->ns;
    unsigned start = ns ? l->cursor % (unsigned)ns : 0;
    for (int k = 0; k < ns && n < max; k++) {
        int i = (int)((start + (unsigned)k) % (unsigned)ns);
        struct lsrc *s = &l->s[i];
        if (!s->ops)
            continue;
        memset(&ev[n], 0, sizeof(ev[n]));
        ev[n].type = s->ops->type;
        ev[n].id = s->id;
        ev[n].udata = s->udata;
        int r = s->ops->report(s->obj, &ev[n]);
        if (r < 0)
            drop(l, &l->s[i]); /* leaves without an event */
        if (r <= 0)
            continue;
        n++;
        l->cursor = (unsigned)i + 1;
        if (r == 2)
            drop(l, &l->s[i]);
    }
    return n;
}

static int check_call(fq_loop *l)
{
    if (!l)
        return FQ_EINVAL;
    if (l->busy)
        return FQ_EBUSY;
    if (getpid() != l->owner)
        return FQ_EFOREIGN;
    return 0;
}

FQ__EXPORT int fq_loop_wait(fq_loop *l, fq_loop_event *ev, int max,
                            int timeout_ms)
{
    if (!ev || max <= 0 || timeout_ms < -1)
        return FQ_EINVAL;
    int rc = check_call(l);
    if (rc)
        return rc;
    l->busy = 1;
    fq__lobj_fd_drain(l);
    rc = fq__loop_run(&lobj_ops, l, timeout_ms, -1,
                      l->o.return_on_eintr ? FQ__LOOP_EINTR : 0);
    if (rc >= 0 || rc == FQ_ETIMEDOUT)
        rc = collect(l, ev, max);
    fq__lobj_compact(l);
    int src = fq__lobj_fd_sync(l);
    l->busy = 0;
    return rc < 0 ? rc : src < 0 ? src : rc;
}

FQ__EXPORT int fq_loop_process(fq_loop *l, fq_loop_event *ev, int max)
{
    return fq_loop_wait(l, ev, max, 0);
}

FQ__EXPORT int fq_loop_timeout(fq_loop *l, int *timeout_ms)
{
    if (!timeout_ms)
        return FQ_EINVAL;
    *timeout_ms = -1;
    int rc = check_call(l);
    if (rc)
        return rc;
    l->busy = 1;
    int64_t next = fq__lobj_maintain(l);
    int ready = fq__lobj_ready(l);
    rc = fq__lobj_fd_sync(l);
    l->busy = 0;
    if (rc < 0)
        return rc;
    if (ready) {
        *timeout_ms = 0;
    } else if (next != INT64_MAX) {
        int64_t ms = (next - fq__now_ns() + 999999) / 1000000;
        *timeout_ms = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
    }
    return 0;
}
