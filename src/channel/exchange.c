/*
 * The exchange: many channels watched with one poll(), ended ones removed
 * and reaped, and a limit on how many run at once with waiting work started
 * first in, first out.
 *
 * State is re-derived from the channels at every call (whether a message
 * is buffered, whether the stream ended), so what the caller receives
 * between two calls is always accounted for. An event "ended" is reported
 * only after every message was received and the child was reaped, so data
 * a child sent before it ended is never lost.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "channel/chan_public.h"
#include "core/internal.h"
#include "loop/source.h"

#define FQ__EXPORT __attribute__((visibility("default")))

/* Without a pidfd, an ended stream's child is looked at this often. */
#define FQ__XCH_REAP_MS 10

typedef struct xent {
    fq_channel ch;
    void *udata;
    int ending; /* the stream ended: waiting to reap the child */
} xent;

typedef struct xwork {
    fq_channel_fn fn;
    void *arg;
} xwork;

struct fq_exchange {
    fq_exchange_options o;
    xent *e;
    int ne, cape;
    xwork *w; /* ring buffer of waiting work */
    size_t wh, wn, wcap;
    fq_exchange_event *fails; /* work that could not start, not reported */
    int nfails, capfails;
    struct pollfd *pfd;
    int *pidx;
    int pcap;
    /* Loops it is a source of (xloop.c): fq_exchange_free() leaves them. */
    fq_loop **loops;
    int nloops, caploops;
};

FQ__EXPORT int fq_exchange_new(fq_exchange **exp, const fq_exchange_options *o)
{
    if (!exp)
        return FQ_EINVAL;
    *exp = NULL;
    if (o && o->limit < 0)
        return FQ_EINVAL;
    fq_exchange *ex = calloc(1, sizeof(*ex));
    if (!ex)
        return FQ_ENOMEM;
    if (o)
        ex->o = *o;
    *exp = ex;
    return 0;
}

static int find(const fq_exchange *ex, fq_channel ch)
{
    for (int i = 0; i < ex->ne; i++)
        if (ex->e[i].ch.id == ch.id)
            return i;
    return -1;
}

static int push_entry(fq_exchange *ex, fq_channel ch, void *udata)
{
    if (ex->ne == ex->cape) {
        int ncap = ex->cape ? ex->cape * 2 : 16;
        xent *n = realloc(ex->e, (size_t)ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        ex->e = n;
        ex->cape = ncap;
    }
    ex->e[ex->ne++] = (xent){ch, udata, 0};
    return 0;
}

static void remove_at(fq_exchange *ex, int i)
{
    memmove(&ex->e[i], &ex->e[i + 1], (size_t)(ex->ne - i - 1) * sizeof(xent));
    ex->ne--;
}

FQ__EXPORT int fq_exchange_add(fq_exchange *ex, fq_channel ch, void *udata)
{
    if (!ex)
        return FQ_EINVAL;
    pid_t pid = fq_channel_pid(ch);
    if (pid < 0)
        return pid;
    if (pid == 0 || find(ex, ch) >= 0)
        return FQ_EINVAL;
    return push_entry(ex, ch, udata);
}

FQ__EXPORT int fq_exchange_remove(fq_exchange *ex, fq_channel ch)
{
    int i = ex ? find(ex, ch) : -1;
    if (i < 0)
        return FQ_EINVAL;
    remove_at(ex, i);
    return 0;
}

FQ__EXPORT int fq_exchange_active(const fq_exchange *ex)
{
    return ex ? ex->ne : FQ_EINVAL;
}

FQ__EXPORT int fq_exchange_waiting(const fq_exchange *ex)
{
    return ex ? (int)ex->wn : FQ_EINVAL;
}

static int full(const fq_exchange *ex)
{
    return ex->o.limit > 0 && ex->ne >= ex->o.limit;
}

/* Forks one piece of work and watches it. */
static int start_now(fq_exchange *ex, fq_channel_fn fn, void *arg,
                     fq_channel *out)
{
    fq_channel ch = {0};
    /* Room first, so that a started child is always watched. */
    int rc = push_entry(ex, ch, arg);
    if (rc < 0)
        return rc;
    ex->ne--;
    rc = fq_channel_start(&ch, fn, arg, &ex->o.channel);
    if (rc < 0)
        return rc;
    ex->e[ex->ne++] = (xent){ch, arg, 0};
    if (out)
        *out = ch;
    return 0;
}

static void record_failure(fq_exchange *ex, void *arg, int err)
{
    if (ex->nfails == ex->capfails) {
        int ncap = ex->capfails ? ex->capfails * 2 : 8;
        fq_exchange_event *n = realloc(ex->fails, (size_t)ncap * sizeof(*n));
        if (!n)
            return; /* cannot report it: the work is dropped */
        ex->fails = n;
        ex->capfails = ncap;
    }
    fq_exchange_event ev = {0};
    ev.udata = arg;
    ev.error = err;
    ex->fails[ex->nfails++] = ev;
}

/* Starts waiting work while there is room. */
static void start_waiting(fq_exchange *ex)
{
    while (ex->wn > 0 && !full(ex)) {
        xwork w = ex->w[ex->wh];
        ex->wh = (ex->wh + 1) % ex->wcap;
        ex->wn--;
        int rc = start_now(ex, w.fn, w.arg, NULL);
        if (rc < 0)
            record_failure(ex, w.arg, rc);
    }
}

FQ__EXPORT int fq_exchange_start(fq_exchange *ex, fq_channel_fn fn, void *arg,
                                 fq_channel *ch)
{
    if (!ex || !fn)
        return FQ_EINVAL;
    if (ch)
        ch->id = 0;
    if (!full(ex) && ex->wn == 0)
        return start_now(ex, fn, arg, ch);
    if (ex->wn == ex->wcap) {
        size_t ncap = ex->wcap ? ex->wcap * 2 : 16;
        xwork *n = malloc(ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        for (size_t i = 0; i < ex->wn; i++)
            n[i] = ex->w[(ex->wh + i) % ex->wcap];
        free(ex->w);
        ex->w = n;
        ex->wh = 0;
        ex->wcap = ncap;
    }
    ex->w[(ex->wh + ex->wn) % ex->wcap] = (xwork){fn, arg};
    ex->wn++;
    return 1;
}

/* One pass: fills out[] with what can be reported now. */
static int scan(fq_exchange *ex, fq_exchange_event *out, int max)
{
    int n = 0;
    while (ex->nfails > 0 && n < max) {
        out[n++] = ex->fails[0];
        memmove(ex->fails, ex->fails + 1,
                (size_t)(--ex->nfails) * sizeof(*ex->fails));
    }
    for (int i = 0; i < ex->ne && n < max;) {
        xent *x = &ex->e[i];
        fq__chan_info inf;
        if (fq__chan_info_get(x->ch, &inf) < 0) {
            remove_at(ex, i); /* freed by its owner: nothing to report */
            start_waiting(ex);
            continue;
        }
        if (!x->ending) {
            if (inf.ended)
                x->ending = 1;
            else {
                if (inf.ready)
                    out[n++] = (fq_exchange_event){x->ch, x->udata, 0, 0, 0};
                i++;
                continue;
            }
        }
        int st = 0;
        if (fq_channel_wait(x->ch, &st, 0) == 0) {
            out[n++] = (fq_exchange_event){x->ch, x->udata, 1, st, 0};
            remove_at(ex, i);
            start_waiting(ex);
            continue;
        }
        i++;
    }
    return n;
}

static int reserve_poll(fq_exchange *ex)
{
    if (ex->pcap >= ex->ne)
        return 0;
    int ncap = ex->ne * 2;
    struct pollfd *p = realloc(ex->pfd, (size_t)ncap * sizeof(*p));
    if (!p)
        return FQ_ENOMEM;
    ex->pfd = p;
    int *q = realloc(ex->pidx, (size_t)ncap * sizeof(*q));
    if (!q)
        return FQ_ENOMEM;
    ex->pidx = q;
    ex->pcap = ncap;
    return 0;
}

FQ__EXPORT int fq_exchange_ready(fq_exchange *ex, fq_exchange_event *out,
                                 int max, int timeout_ms)
{
    if (!ex || !out || max <= 0)
        return FQ_EINVAL;
    int64_t deadline =
        timeout_ms < 0 ? -1 : fq__now_ns() + (int64_t)timeout_ms * 1000000;
    start_waiting(ex);
    for (;;) {
        int n = scan(ex, out, max);
        if (n > 0)
            return n;
        if (ex->ne == 0 && ex->wn == 0)
            return 0;
        int ms = -1;
        if (deadline >= 0) {
            int64_t left = deadline - fq__now_ns();
            if (left <= 0)
                return 0;
            ms = (int)((left + 999999) / 1000000);
        }
        if (reserve_poll(ex) < 0)
            return FQ_ENOMEM;
        int np = 0;
        for (int i = 0; i < ex->ne; i++) {
            fq__chan_info inf;
            if (fq__chan_info_get(ex->e[i].ch, &inf) < 0)
                continue;
            int fd = ex->e[i].ending ? inf.pidfd : inf.fd;
            if (fd < 0) {
                if (ms < 0 || ms > FQ__XCH_REAP_MS)
                    ms = FQ__XCH_REAP_MS;
                continue;
            }
            ex->pfd[np] = (struct pollfd){fd, POLLIN, 0};
            ex->pidx[np++] = i;
        }
        int r = poll(ex->pfd, (nfds_t)np, ms);
        if (r < 0) {
            if (errno != EINTR)
                return FQ_ESYS;
            if (ex->o.return_on_eintr)
                return FQ_EINTR;
            continue;
        }
        for (int k = 0; r > 0 && k < np; k++) {
            xent *x = &ex->e[ex->pidx[k]];
            if (ex->pfd[k].revents && !x->ending)
                fq__chan_fill(x->ch);
        }
    }
}

static const fq__source_ops exchange_source_ops;

FQ__EXPORT int fq_exchange_free(fq_exchange *ex)
{
    if (!ex)
        return FQ_EINVAL;
    int dropped = (int)ex->wn;
    while (ex->nloops > 0) /* each removal drops one entry */
        fq__loop_source_remove(ex->loops[ex->nloops - 1], &exchange_source_ops,
                               (uint64_t)(uintptr_t)ex);
    free(ex->loops);
    free(ex->e);
    free(ex->w);
    free(ex->fails);
    free(ex->pfd);
    free(ex->pidx);
    free(ex);
    return dropped;
}

/* ---- the exchange as a source of a loop object (fq_loop_add_exchange) ---- */

/*
 * The loop polls what fq_exchange_ready() would poll (a running channel's
 * descriptor, an ending one's pidfd) and reports the exchange while
 * fq_exchange_ready(ex, ..., 0) has something to hand out. Checking that
 * makes the transitions scan() would make (a stream that ended is marked
 * ending; a child that ended is reaped, its status kept by the channel for
 * fq_channel_wait()), so the report never promises what the call then
 * cannot give.
 */
typedef struct xsrc {
    fq_exchange *ex;
    fq_loop *loop;
    struct pollfd *pfd;
    int *idx; /* entry of each poll slot */
    int cap;
} xsrc;

static int64_t x_maintain(void *obj)
{
    fq_exchange *ex = ((xsrc *)obj)->ex;
    int64_t next = INT64_MAX;
    start_waiting(ex);
    for (int i = 0; i < ex->ne; i++) {
        fq__chan_info inf;
        if (fq__chan_info_get(ex->e[i].ch, &inf) < 0)
            continue;
        if (!ex->e[i].ending && inf.ended)
            ex->e[i].ending = 1;
        if (ex->e[i].ending && inf.pidfd < 0 && !inf.reaped)
            next = fq__now_ns() + (int64_t)FQ__XCH_REAP_MS * 1000000;
    }
    return next;
}

static int x_ready(void *obj)
{
    fq_exchange *ex = ((xsrc *)obj)->ex;
    if (ex->nfails > 0)
        return 1;
    for (int i = 0; i < ex->ne; i++) {
        fq__chan_info inf;
        if (fq__chan_info_get(ex->e[i].ch, &inf) < 0)
            continue;
        /* An ended stream is reported once its child is reaped, as scan()
         * would: reaping here keeps the status for it. */
        if (ex->e[i].ending || inf.ended
                ? fq_channel_wait(ex->e[i].ch, NULL, 0) == 0
                : inf.ready)
            return 1;
    }
    return 0;
}

static int x_sources(void *obj, struct pollfd **pfdp)
{
    xsrc *s = obj;
    fq_exchange *ex = s->ex;
    if (s->cap < ex->ne) {
        int ncap = ex->ne * 2;
        struct pollfd *p = realloc(s->pfd, (size_t)ncap * sizeof(*p));
        if (!p)
            return FQ_ENOMEM;
        s->pfd = p;
        int *ix = realloc(s->idx, (size_t)ncap * sizeof(*ix));
        if (!ix)
            return FQ_ENOMEM;
        s->idx = ix;
        s->cap = ncap;
    }
    int n = 0;
    for (int i = 0; i < ex->ne; i++) {
        fq__chan_info inf;
        if (fq__chan_info_get(ex->e[i].ch, &inf) < 0)
            continue;
        int ending = ex->e[i].ending || inf.ended;
        if (!ending && inf.ready)
            continue; /* a message is buffered: ready already */
        int fd = ending ? inf.pidfd : inf.fd;
        if (fd < 0)
            continue;
        s->pfd[n] = (struct pollfd){fd, POLLIN, 0};
        s->idx[n++] = i;
    }
    *pfdp = s->pfd;
    return n;
}

static void x_events(void *obj, struct pollfd *pfd, int nfd, int n)
{
    xsrc *s = obj;
    (void)n;
    for (int k = 0; k < nfd; k++) {
        xent *x = &s->ex->e[s->idx[k]];
        if (pfd[k].revents && !x->ending)
            fq__chan_fill(x->ch);
    }
}

static int x_report(void *obj, fq_loop_event *ev)
{
    (void)ev;
    return x_ready(obj);
}

static void x_release(void *obj)
{
    xsrc *s = obj;
    fq_exchange *ex = s->ex;
    for (int i = 0; i < ex->nloops; i++) {
        if (ex->loops[i] == s->loop) {
            ex->loops[i] = ex->loops[--ex->nloops];
            break;
        }
    }
    free(s->pfd);
    free(s->idx);
    free(s);
}

static const fq__source_ops exchange_source_ops = {
    FQ_LOOP_EXCHANGE, x_maintain, x_ready,   x_sources,
    x_events,         x_report,   x_release,
};

FQ__EXPORT int fq_loop_add_exchange(fq_loop *loop, fq_exchange *ex, void *udata)
{
    if (!loop || !ex)
        return FQ_EINVAL;
    if (ex->nloops == ex->caploops) {
        int ncap = ex->caploops ? ex->caploops * 2 : 2;
        fq_loop **n = realloc(ex->loops, (size_t)ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        ex->loops = n;
        ex->caploops = ncap;
    }
    xsrc *s = calloc(1, sizeof(*s));
    if (!s)
        return FQ_ENOMEM;
    s->ex = ex;
    s->loop = loop;
    int rc = fq__loop_source_add(loop, &exchange_source_ops, s,
                                 (uint64_t)(uintptr_t)ex, udata);
    if (rc) {
        free(s);
        return rc;
    }
    ex->loops[ex->nloops++] = loop;
    return 0;
}

FQ__EXPORT int fq_loop_remove_exchange(fq_loop *loop, fq_exchange *ex)
{
    if (!loop || !ex)
        return FQ_EINVAL;
    return fq__loop_source_remove(loop, &exchange_source_ops,
                                  (uint64_t)(uintptr_t)ex);
}
