/*
 * Fuzzes the frame header decoder, the first code to look at bytes written by
 * another process, with each set of frame types a side accepts.
 *
 * Besides "no crash, no out-of-bounds read" it checks the decoder's contract:
 * a short buffer is "need more" (0), and every accepted header is canonical,
 * i.e. re-encoding the decoded frame gives back exactly the input bytes. That
 * last property means no two byte strings decode to the same frame, so no
 * field can be silently ignored (a field the decoder forgot to validate would
 * break the round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forkqueue.h"
#include "wire/wire.h"

static const unsigned accept_sets[] = {
    FQ__ACCEPT_JOB,
    FQ__ACCEPT_TO_WORKER,
    FQ__ACCEPT_FROM_WORKER,
    FQ__ACCEPT_MSG,
    FQ__ACCEPT_TO_WORKER | FQ__ACCEPT_FROM_WORKER | FQ__ACCEPT_MSG,
    FQ__ACCEPT_MSG_LOG,
};
#define NSETS (sizeof accept_sets / sizeof *accept_sets)

static int same_frame(const fq__frame *a, const fq__frame *b)
{
    return a->type == b->type && a->version == b->version &&
           a->flags == b->flags && a->status == b->status &&
           a->code == b->code && a->level == b->level && a->fn == b->fn &&
           a->id == b->id && a->wseq == b->wseq && a->run_us == b->run_us &&
           a->len == b->len;
}

/* The rules wire.h states, checked on every header the decoder accepts. */
static int valid(const fq__frame *f)
{
    if (f->len > FQ__WIRE_MAX_PAYLOAD)
        return 0;
    if (f->type != FQ__FRAME_HELLO && f->version != FQ__WIRE_VERSION)
        return 0;
    switch (f->type) {
    case FQ__FRAME_JOB:
        return f->fn != 0 && (f->flags & ~FQ__JOB_BY_ID) == 0;
    case FQ__FRAME_RESULT:
        if (f->status == FQ_EJOB)
            return 1;
        return (f->status == 0 || f->status == FQ_ENOFUNC ||
                f->status == FQ_ECANCELED) &&
               f->code == 0;
    case FQ__FRAME_INIT_FAIL:
        return f->len <= FQ__INIT_MSG_MAX;
    case FQ__FRAME_HELLO:
        if (f->version == 0 || f->len > FQ__HELLO_MAX)
            return 0;
        return f->version != FQ__WIRE_VERSION ||
               (f->len == 0 && f->id != 0 && f->wseq == 0 &&
                (f->flags & ~FQ__HELLO_PAGE) == 0);
    case FQ__FRAME_LOG:
        return f->len <= FQ_LOG_MAX && f->level >= 0 &&
               f->level <= FQ_LOG_LEVEL_MAX;
    case FQ__FRAME_STARTED:
    case FQ__FRAME_CANCEL:
        return f->len == 0;
    case FQ__FRAME_MSG:
        return 1;
    }
    return 0;
}

static int check(const uint8_t *data, size_t size, unsigned accept)
{
    fq__frame f;
    int rc = fq__frame_decode(data, size, accept, &f);

    if (size < FQ__WIRE_HDR)
        return rc == 0 ? 0 : -1;
    if (rc == FQ_EPROTO)
        return 0;
    if (rc != (int)FQ__WIRE_HDR)
        return -1;
    if (f.type > 31 || !(accept & (1u << f.type)))
        return -1;
    if (!valid(&f))
        return -1;

    unsigned char out[FQ__WIRE_HDR];
    fq__frame_encode(&f, out);
    if (memcmp(out, data, FQ__WIRE_HDR) != 0)
        return -1;
    fq__frame g;
    if (fq__frame_decode(out, sizeof out, accept, &g) != (int)FQ__WIRE_HDR ||
        !same_frame(&f, &g))
        return -1;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int ok[NSETS];

    for (size_t i = 0; i < NSETS; i++) {
        ok[i] = check(data, size, accept_sets[i]);
        if (ok[i] < 0)
            abort();
    }
    /* The union of the sides accepts exactly what one of them accepts;
     * what a worker accepts includes the JOB frames alone. */
    if (ok[4] != (ok[1] || ok[2] || ok[3]))
        abort();
    if (ok[0] && !ok[1])
        abort();
    /* A channel's parent end: its messages, and the records a worker's
     * parent would take too. */
    if (ok[5] != (ok[3] || (ok[2] && data[3] == FQ__FRAME_LOG)))
        abort();
    /* Truncating a header never turns garbage into "need more" wrongly:
     * every prefix shorter than a header asks for more bytes. */
    if (size >= FQ__WIRE_HDR) {
        fq__frame f;
        for (size_t n = 0; n < FQ__WIRE_HDR; n += 7)
            if (fq__frame_decode(data, n, accept_sets[4], &f) != 0)
                abort();
    }
    return 0;
}
