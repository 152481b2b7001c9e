/*
 * Messages on public channels (see chan_public.c for the channels
 * themselves): one MSG frame per message, and LOG frames from the child's
 * fq_channel_log() to the parent's log callback. Small messages are read in
 * batches into the channel's receive buffer; a large one (FQ__CHAN_DIRECT
 * bytes or more) is read straight into the buffer handed to the caller.
 * The frame decoder (wire.c) is the only reader of the peer's bytes.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel/chan_public.h"
#include "core/internal.h"
#include "wire/wire.h"

#define FQ__EXPORT __attribute__((visibility("default")))

#define FQ__CHAN_DIRECT (64u * 1024)
#define FQ__CHAN_READ (16u * 1024)

FQ__EXPORT void fq_msg_free(fq_msg *m)
{
    if (!m)
        return;
    free(m->data);
    m->data = NULL;
    m->len = 0;
}

/* Sends one frame whole, waiting while the peer does not read. */
static int send_frame(fq__chan *c, const fq__frame *f, const void *data)
{
    int rc;
    size_t len = (size_t)f->len;
    unsigned char hdr[FQ__WIRE_HDR];
    fq__frame_encode(f, hdr);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};
    struct iovec *v = iov;
    int n = len ? 2 : 1;
    int sent = 0;
    while (n > 0) {
        ssize_t r = fq__send_iov(c->fd, v, n);
        if (r >= 0) {
            size_t left = (size_t)r;
            sent = 1;
            while (n > 0 && left >= v->iov_len) {
                left -= v->iov_len;
                v++;
                n--;
            }
            if (n > 0) {
                v->iov_base = (char *)v->iov_base + left;
                v->iov_len -= left;
            }
            continue;
        }
        if (r != FQ_ETIMEDOUT)
            return (int)r;
        rc = fq__wait_fd(c->fd, POLLOUT, -1, c->eintr);
        if (rc == FQ_EINTR && sent) {
            /* Half a frame is out: the stream cannot be resumed. */
            shutdown(c->fd, SHUT_WR);
            c->wshut = 1;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

FQ__EXPORT int fq_channel_send(fq_channel h, const void *data, size_t len)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    if (!data && len)
        return FQ_EINVAL;
    if (c->fd < 0 || c->wshut)
        return FQ_ECLOSED;
    fq__frame f = {0};
    f.type = FQ__FRAME_MSG;
    f.len = len;
    return send_frame(c, &f, data);
}

FQ__EXPORT int fq_channel_log(fq_channel h, int level, const char *msg)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    if (c->pid != 0 || !msg || level < 0 || level > FQ_LOG_LEVEL_MAX)
        return FQ_EINVAL; /* only the child's end sends records */
    size_t len = strlen(msg);
    if (len > FQ_LOG_MAX)
        return FQ_ETOOBIG;
    if (c->fd < 0 || c->wshut)
        return FQ_ECLOSED;
    fq__frame f = {0};
    f.type = FQ__FRAME_LOG;
    f.level = level;
    f.len = len;
    return send_frame(c, &f, msg);
}

/* The parent's end also takes the child's log records. */
static unsigned accept_of(const fq__chan *c)
{
    return c->pid ? FQ__ACCEPT_MSG_LOG : FQ__ACCEPT_MSG;
}

/* Hands a log record to the channel's callback (or drops it). */
static void deliver_log(fq__chan *c, const fq__frame *f, const unsigned char *p)
{
    if (!c->log)
        return;
    char text[FQ_LOG_MAX + 1];
    memcpy(text, p, (size_t)f->len); /* <= FQ_LOG_MAX: the decoder checked */
    text[f->len] = '\0';
    fq_log_record rec;
    rec.level = f->level;
    rec.job_id = 0;
    rec.pid = c->pid;
    rec.msg = text;
    rec.len = strlen(text);
    c->log(c->log_arg, &rec);
}

static int fail(fq__chan *c, int err)
{
    c->err = err;
    return err;
}

/* Reads once. Returns > 0 bytes, 0 at EOF, FQ_ETIMEDOUT when nothing is
 * there, or another error. */
static ssize_t read_some(fq__chan *c)
{
    ssize_t n;
    if (c->big) {
        size_t want = c->big_len - c->big_have;
        for (;;) {
            n = read(c->fd, c->big + c->big_have, want);
            if (n >= 0 || errno != EINTR)
                break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                n = FQ_ETIMEDOUT;
            else
                n = errno == ECONNRESET ? 0 : FQ_ESYS;
        }
        if (n > 0)
            c->big_have += (size_t)n;
        if (n >= 0 && (size_t)n < want)
            c->flags |= FQ__CH_DRAINED;
        return n;
    }
    n = fq__rbuf_read(&c->rb, c->fd, FQ__CHAN_READ);
    if (n >= 0 && (size_t)n < FQ__CHAN_READ)
        c->flags |= FQ__CH_DRAINED;
    return n;
}

/* A whole message at hand: 1 (delivered into *m), 0 (not yet), or an
 * error. Starts a direct read for a large message. */
static int take_buffered(fq__chan *c, fq_msg *m)
{
    if (c->big) {
        if (c->big_have < c->big_len)
            return 0;
        m->data = c->big;
        m->len = c->big_len;
        c->big = NULL;
        c->big_have = c->big_len = 0;
        return 1;
    }
    fq__frame f;
    const unsigned char *p;
    int rc = fq__rbuf_frame(&c->rb, accept_of(c), &f, &p);
    /* Log records are handed to the callback on the way. */
    while (rc == 1 && f.type == FQ__FRAME_LOG) {
        deliver_log(c, &f, p);
        fq__rbuf_consume(&c->rb, FQ__WIRE_HDR + (size_t)f.len);
        rc = fq__rbuf_frame(&c->rb, accept_of(c), &f, &p);
    }
    if (rc < 0)
        return fail(c, FQ_EPROTO);
    size_t have = c->rb.end - c->rb.start;
    if (have < FQ__WIRE_HDR || f.type == FQ__FRAME_LOG)
        return 0; /* (a record is at most FQ_LOG_MAX: never read apart) */
    /* rc == 1, or rc == 0 with the header decoded into f */
    if ((c->max_msg && f.len > c->max_msg) || f.len > SIZE_MAX / 2)
        return fail(c, FQ_ETOOBIG);
    if (rc == 1) {
        void *d = NULL;
        if (f.len) {
            d = malloc((size_t)f.len);
            if (!d)
                return fail(c, FQ_ENOMEM);
            memcpy(d, p, (size_t)f.len);
        }
        fq__rbuf_consume(&c->rb, FQ__WIRE_HDR + (size_t)f.len);
        m->data = d;
        m->len = (size_t)f.len;
        return 1;
    }
    if (f.len >= FQ__CHAN_DIRECT) {
        size_t got = have - FQ__WIRE_HDR;
        c->big = malloc((size_t)f.len);
        if (!c->big)
            return fail(c, FQ_ENOMEM);
        memcpy(c->big, c->rb.buf + c->rb.start + FQ__WIRE_HDR, got);
        fq__rbuf_consume(&c->rb, have);
        c->big_len = (size_t)f.len;
        c->big_have = got;
    }
    return 0;
}

FQ__EXPORT int fq_channel_recv(fq_channel h, fq_msg *m, int timeout_ms)
{
    fq__chan *c;
    if (!m)
        return FQ_EINVAL;
    m->data = NULL;
    m->len = 0;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    if (c->err)
        return c->err;
    if (c->fd < 0)
        return FQ_ECLOSED;
    int64_t deadline = fq__deadline_of(timeout_ms);
    for (;;) {
        rc = take_buffered(c, m);
        if (rc != 0)
            return rc;
        if (c->flags & FQ__CH_EOF) {
            if (c->big || c->rb.end > c->rb.start)
                return fail(c, FQ_EPROTO); /* ended inside a frame */
            return 0;
        }
        if (c->flags & FQ__CH_DRAINED) {
            rc = fq__wait_fd(c->fd, POLLIN, deadline, c->eintr);
            if (rc < 0)
                return rc;
            c->flags &= ~(unsigned)FQ__CH_DRAINED;
        }
        ssize_t n = read_some(c);
        if (n == 0)
            c->flags |= FQ__CH_EOF;
        else if (n == FQ_ETIMEDOUT)
            c->flags |= FQ__CH_DRAINED; /* poll before the next read */
        else if (n < 0)
            return n == FQ_ENOMEM ? fail(c, FQ_ENOMEM) : (int)n;
    }
}

FQ__EXPORT int fq_channel_ready(fq_channel h)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    if (c->fd < 0 || c->err || (c->flags & FQ__CH_EOF))
        return 1; /* recv answers at once: closed, an error, or the end */
    if (c->big)
        return c->big_have == c->big_len;
    /* Past whole log records (recv hands them out on its way): a whole
     * message, or bytes that are not a frame. */
    for (size_t off = c->rb.start;;) {
        fq__frame f;
        size_t have = c->rb.end - off;
        if (have < FQ__WIRE_HDR)
            return 0;
        rc = fq__frame_decode(c->rb.buf + off, have, accept_of(c), &f);
        if (rc < 0)
            return 1;
        if (f.len > have - FQ__WIRE_HDR)
            return 0;
        if (f.type != FQ__FRAME_LOG)
            return 1;
        off += FQ__WIRE_HDR + (size_t)f.len;
    }
}

int fq__chan_fill(fq_channel h)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    if (c->fd < 0 || fq_channel_ready(h) == 1)
        return 0;
    ssize_t n = read_some(c);
    if (n == 0)
        c->flags |= FQ__CH_EOF;
    else if (n == FQ_ETIMEDOUT)
        c->flags |= FQ__CH_DRAINED;
    else if (n > 0)
        c->flags &= ~(unsigned)FQ__CH_DRAINED;
    return 0;
}
