/* The receive buffer: bytes -> frames (see rbuf.h). With the decoder in
 * wire.c, the only code that reads bytes from another process. */
#include "wire/rbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forkqueue.h"

void fq__rbuf_init(fq__rbuf *rb)
{
    memset(rb, 0, sizeof(*rb));
}

void fq__rbuf_free(fq__rbuf *rb)
{
    free(rb->buf);
    fq__rbuf_init(rb);
}

int fq__rbuf_reserve(fq__rbuf *rb, size_t need)
{
    size_t have = rb->end - rb->start;

    if (rb->cap - rb->start >= need)
        return 0;
    if (rb->start > 0) { /* compact: the frame start is aligned again */
        memmove(rb->buf, rb->buf + rb->start, have);
        rb->start = 0;
        rb->end = have;
        if (rb->cap >= need)
            return 0;
    }
    size_t ncap = rb->cap ? rb->cap : 4096;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return FQ_ENOMEM;
        ncap *= 2;
    }
    unsigned char *n = realloc(rb->buf, ncap);
    if (!n)
        return FQ_ENOMEM;
    rb->buf = n;
    rb->cap = ncap;
    return 0;
}

int fq__rbuf_append(fq__rbuf *rb, const void *data, size_t len)
{
    int rc = fq__rbuf_reserve(rb, rb->end - rb->start + len);
    if (rc)
        return rc;
    memcpy(rb->buf + rb->end, data, len);
    rb->end += len;
    return 0;
}

ssize_t fq__rbuf_read(fq__rbuf *rb, int fd, size_t min_free)
{
    if (rb->cap - rb->end < min_free) {
        int rc = fq__rbuf_reserve(rb, rb->end - rb->start + min_free);
        if (rc)
            return rc;
    }
    for (;;) {
        ssize_t n = read(fd, rb->buf + rb->end, rb->cap - rb->end);
        if (n >= 0) {
            rb->end += (size_t)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FQ_ETIMEDOUT;
        if (errno == ECONNRESET)
            return 0;
        return FQ_ESYS;
    }
}

int fq__rbuf_frame(fq__rbuf *rb, unsigned accept, fq__frame *f,
                   const unsigned char **payload)
{
    size_t have = rb->end - rb->start;

    if (have < FQ__WIRE_HDR) /* also when buf is still NULL */
        return 0;
    int rc = fq__frame_decode(rb->buf + rb->start, have, accept, f);

    if (rc <= 0)
        return rc;
    if (f->len > have - FQ__WIRE_HDR)
        return 0;
    *payload = rb->buf + rb->start + FQ__WIRE_HDR;
    return 1;
}

void fq__rbuf_consume(fq__rbuf *rb, size_t n)
{
    rb->start += n;
    if (rb->start >= rb->end)
        rb->start = rb->end = 0;
}

void fq__wscan_init(fq__wscan *s)
{
    memset(s, 0, sizeof(*s));
}

int fq__wscan_feed(fq__wscan *s, const unsigned char *p, size_t n,
                   unsigned accept, void (*on)(void *arg, const fq__frame *f),
                   void *arg)
{
    while (n > 0 && !s->broken) {
        if (s->skip > 0) {
            size_t k = s->skip < n ? (size_t)s->skip : n;
            s->skip -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = FQ__WIRE_HDR - s->have;
        if (k > n)
            k = n;
        memcpy(s->hdr + s->have, p, k);
        s->have += (unsigned)k;
        p += k;
        n -= k;
        if (s->have < FQ__WIRE_HDR)
            break;
        fq__frame f;
        if (fq__frame_decode(s->hdr, FQ__WIRE_HDR, accept, &f) <= 0) {
            s->broken = 1;
            break;
        }
        s->have = 0;
        s->skip = f.len;
        on(arg, &f);
    }
    return s->broken ? FQ_EPROTO : 0;
}
