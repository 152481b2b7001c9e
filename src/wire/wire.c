/* Frame encoding and validation: see wire.h for the layout. */
#include "wire/wire.h"

#include "forkqueue.h"

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void fq__frame_encode(const fq__frame *f, unsigned char *out)
{
    out[0] = 0x71;
    out[1] = 0x66;
    out[2] = FQ__WIRE_VERSION;
    out[3] = (unsigned char)f->type;
    put32(out + 4, (uint32_t)f->status);
    switch (f->type) {
    case FQ__FRAME_JOB:
        put64(out + 8, f->fn);
        put64(out + 16, f->id);
        break;
    case FQ__FRAME_RESULT:
        put32(out + 8, (uint32_t)f->code);
        put32(out + 12, f->run_us);
        put64(out + 16, f->wseq);
        break;
    default:
        put64(out + 8, 0);
        put64(out + 16, 0);
        break;
    }
    put64(out + 24, f->len);
}

int fq__frame_decode(const void *buf, size_t avail, unsigned accept,
                     fq__frame *f)
{
    const unsigned char *p = buf;

    if (avail < FQ__WIRE_HDR)
        return 0;
    if (p[0] != 0x71 || p[1] != 0x66 || p[2] != FQ__WIRE_VERSION)
        return FQ_EPROTO;
    f->type = p[3];
    if (f->type < FQ__FRAME_JOB || f->type > FQ__FRAME_LAST ||
        !(accept & (1u << f->type)))
        return FQ_EPROTO;
    f->status = (int32_t)get32(p + 4);
    f->len = get64(p + 24);
    if (f->len > FQ__WIRE_MAX_PAYLOAD)
        return FQ_EPROTO;
    f->fn = f->id = f->wseq = 0;
    f->code = 0;
    f->run_us = 0;
    switch (f->type) {
    case FQ__FRAME_JOB:
        f->fn = get64(p + 8);
        f->id = get64(p + 16);
        if (f->status != 0 || f->fn == 0)
            return FQ_EPROTO;
        break;
    case FQ__FRAME_RESULT:
        f->code = (int32_t)get32(p + 8);
        f->run_us = get32(p + 12);
        f->wseq = get64(p + 16);
        if (f->status != 0 && f->status != FQ_EJOB)
            return FQ_EPROTO;
        if (f->status == 0 && f->code != 0)
            return FQ_EPROTO;
        break;
    default: /* INIT_FAIL, MSG */
        if (f->status != 0 || get64(p + 8) != 0 || get64(p + 16) != 0)
            return FQ_EPROTO;
        break;
    }
    return (int)FQ__WIRE_HDR;
}
