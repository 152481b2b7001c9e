/*
 * Fuzzes the stream parser that turns bytes read from a socket into frames:
 * fq__rbuf_append() then the fq__rbuf_frame() / fq__rbuf_consume() loop that
 * the parent (and the worker) run after every read.
 *
 * Input layout: byte 0 picks the accepted frame types (bit 7: a public
 * channel's MSG frames, with bit 6 its parent's end, which also takes LOG;
 * else bit 0: a worker's or the parent's) and seeds the
 * way the rest is cut into chunks, so that frames arrive split at every
 * possible place, as they do from a real socket. The rest is the byte stream.
 *
 * Checked: no crash or out-of-bounds access (ASan); every frame returned lies
 * inside the buffered bytes and its payload equals the stream bytes at that
 * offset; the incremental parser agrees with a one-shot decode of the whole
 * stream (same frames, and a protocol error exactly where the reference finds
 * one); after a protocol error the stream is abandoned, as a real channel is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/channel.h"
#include "forkqueue.h"
#include "wire/wire.h"

static uint32_t next_rand(uint32_t *s)
{
    /* xorshift32: cheap and deterministic, so a crash input replays. */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Headers reported by the frame walker (fq__wscan), fed the same chunks:
 * it must see exactly the frames the receive buffer returns, and give up
 * exactly where it finds a protocol error. */
struct walk {
    fq__frame *f;
    size_t n, head, cap;
};

static void on_walk(void *arg, const fq__frame *f)
{
    struct walk *w = arg;
    if (w->n == w->cap)
        abort(); /* more headers than the stream can hold */
    w->f[w->n++] = *f;
}

/* Reference parse of the whole stream from `off`: 1 frame, 0 incomplete,
 * FQ_EPROTO garbage. */
static int ref_frame(const uint8_t *s, size_t n, size_t off, unsigned accept,
                     fq__frame *f)
{
    int rc = fq__frame_decode(s + off, n - off, accept, f);
    if (rc <= 0)
        return rc;
    if (f->len > n - off - FQ__WIRE_HDR)
        return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned accept = (data[0] & 0x80) ? ((data[0] & 0x40) ? FQ__ACCEPT_MSG_LOG
                                                           : FQ__ACCEPT_MSG)
                      : (data[0] & 1)  ? FQ__ACCEPT_FROM_WORKER
                                       : FQ__ACCEPT_TO_WORKER;
    uint32_t seed = 0x9e3779b9u ^ (uint32_t)data[0] * 2654435761u;
    const uint8_t *s = data + 1;
    size_t n = size - 1;

    fq__rbuf rb;
    fq__rbuf_init(&rb);
    {
        /* An empty buffer (as a worker has before its first read). */
        fq__frame f;
        const unsigned char *payload;
        if (fq__rbuf_frame(&rb, accept, &f, &payload) != 0)
            abort();
    }
    struct walk walk = {0};
    walk.cap = n / FQ__WIRE_HDR + 1;
    walk.f = malloc(walk.cap * sizeof(*walk.f));
    if (!walk.f)
        return 0;
    fq__wscan scan;
    fq__wscan_init(&scan);
    size_t fed = 0; /* stream bytes appended so far */
    size_t off = 0; /* stream offset of the first unconsumed byte */
    int broken = 0;

    while (fed < n && !broken) {
        size_t chunk = 1 + next_rand(&seed) % 64;
        if (next_rand(&seed) % 8 == 0)
            chunk = n - fed; /* sometimes everything at once */
        if (chunk > n - fed)
            chunk = n - fed;
        if (fq__rbuf_append(&rb, s + fed, chunk) != 0)
            abort();
        int wrc = fq__wscan_feed(&scan, s + fed, chunk, accept, on_walk, &walk);
        if (wrc != 0 && wrc != FQ_EPROTO)
            abort();
        fed += chunk;

        for (;;) {
            fq__frame f;
            const unsigned char *payload = NULL;
            int rc = fq__rbuf_frame(&rb, accept, &f, &payload);
            size_t avail = rb.end - rb.start;
            if (avail != fed - off || rb.end > rb.cap)
                abort();

            fq__frame r;
            int want = ref_frame(s, fed, off, accept, &r);
            if (rc != want)
                abort();
            if (rc == FQ_EPROTO) {
                broken = 1;
                break;
            }
            if (rc == 0)
                break;
            if (rc != 1 || f.type != r.type || f.len != r.len ||
                f.status != r.status || f.code != r.code || f.id != r.id ||
                f.fn != r.fn || f.wseq != r.wseq || f.run_us != r.run_us ||
                f.flags != r.flags || f.level != r.level ||
                f.version != r.version)
                abort();
            /* The frame walker saw the same header, in the same order. */
            if (walk.head == walk.n)
                abort();
            const fq__frame *wf = &walk.f[walk.head++];
            if (wf->type != f.type || wf->len != f.len || wf->id != f.id ||
                wf->wseq != f.wseq || wf->fn != f.fn)
                abort();
            if (f.len > avail - FQ__WIRE_HDR)
                abort();
            if (payload != rb.buf + rb.start + FQ__WIRE_HDR)
                abort();
            /* Touches every payload byte: ASan checks the bounds. */
            if (f.len && memcmp(payload, s + off + FQ__WIRE_HDR, f.len) != 0)
                abort();
            fq__rbuf_consume(&rb, FQ__WIRE_HDR + (size_t)f.len);
            off += FQ__WIRE_HDR + (size_t)f.len;
        }
        /* The walker saw every header returned, and at most one more (one
         * whose payload is still coming); it gave up exactly when the
         * buffer found garbage. */
        if (scan.broken != broken || walk.n - walk.head > 1)
            abort();
    }
    free(walk.f);
    fq__rbuf_free(&rb);
    return 0;
}
