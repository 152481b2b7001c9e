/*
 * A channel as a source of a loop object (fq_loop_add_channel(); the loop
 * is loop/lobj.c, which knows the channel only through the table below).
 * As the exchange does, it re-derives the channel's state at each step
 * from the channel itself (a whole message buffered, the end of the
 * stream), so what the caller receives between two waits is always
 * accounted for. A channel with a message buffered is not polled: it is
 * ready already.
 */
#include <stdlib.h>

#include "channel/chan_public.h"
#include "loop/source.h"

#define FQ__EXPORT __attribute__((visibility("default")))

typedef struct csrc {
    fq_channel ch;
    struct pollfd p;
} csrc;

static int64_t c_maintain(void *obj)
{
    (void)obj;
    return INT64_MAX;
}

static int c_ready(void *obj)
{
    fq__chan_info inf;
    if (fq__chan_info_get(((csrc *)obj)->ch, &inf) < 0)
        return 1; /* freed: reported once */
    return inf.ready || inf.ended;
}

static int c_sources(void *obj, struct pollfd **pfd)
{
    csrc *s = obj;
    fq__chan_info inf;
    if (fq__chan_info_get(s->ch, &inf) < 0 || inf.ready || inf.ended ||
        inf.fd < 0)
        return 0;
    s->p = (struct pollfd){inf.fd, POLLIN, 0};
    *pfd = &s->p;
    return 1;
}

static void c_events(void *obj, struct pollfd *pfd, int nfd, int n)
{
    (void)pfd;
    (void)nfd;
    (void)n;
    fq__chan_fill(((csrc *)obj)->ch);
}

static int c_report(void *obj, fq_loop_event *ev)
{
    fq__chan_info inf;
    if (fq__chan_info_get(((csrc *)obj)->ch, &inf) < 0) {
        ev->flags = FQ_LOOP_CLOSED;
        return 2;
    }
    if (inf.ended) {
        ev->flags = FQ_LOOP_ENDED;
        return 2;
    }
    return inf.ready ? 1 : 0;
}

static void c_release(void *obj)
{
    free(obj);
}

static const fq__source_ops channel_source_ops = {
    FQ_LOOP_CHANNEL, c_maintain, c_ready,   c_sources,
    c_events,        c_report,   c_release,
};

FQ__EXPORT int fq_loop_add_channel(fq_loop *loop, fq_channel ch, void *udata)
{
    if (!loop)
        return FQ_EINVAL;
    pid_t pid = fq_channel_pid(ch); /* FQ_EINVAL, FQ_ECLOSED */
    if (pid < 0)
        return (int)pid;
    csrc *s = calloc(1, sizeof(*s));
    if (!s)
        return FQ_ENOMEM;
    s->ch = ch;
    int rc = fq__loop_source_add(loop, &channel_source_ops, s, ch.id, udata);
    if (rc)
        free(s);
    return rc;
}

FQ__EXPORT int fq_loop_remove_channel(fq_loop *loop, fq_channel ch)
{
    if (!loop || ch.id == 0)
        return FQ_EINVAL;
    return fq__loop_source_remove(loop, &channel_source_ops, ch.id);
}
