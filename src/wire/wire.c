/* Frame encoding and validation: see wire.h for the layout. */
#include "wire/wire.h"

#include <string.h>

#include "forkqueue.h"

/* Little-endian on the wire. On a little-endian host each field is one
 * unaligned load or store; elsewhere the bytes are assembled one by one. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FQ__WIRE_LE_HOST 1
#else
#define FQ__WIRE_LE_HOST 0
#endif

static void put32(unsigned char *p, uint32_t v)
{
    if (FQ__WIRE_LE_HOST) {
        memcpy(p, &v, 4);
        return;
    }
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    if (FQ__WIRE_LE_HOST) {
        memcpy(p, &v, 8);
        return;
    }
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    if (FQ__WIRE_LE_HOST) {
        memcpy(&v, p, 4);
        return v;
    }
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    if (FQ__WIRE_LE_HOST) {
        memcpy(&v, p, 8);
        return v;
    }
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void fq__frame_encode(const fq__frame *f, unsigned char *out)
{
    uint32_t w4 = 0;
    uint64_t w8 = 0, w16 = 0;

    switch (f->type) {
    case FQ__FRAME_JOB:
        w4 = f->flags;
        w8 = f->fn;
        w16 = f->id;
        break;
    case FQ__FRAME_RESULT:
        w4 = (uint32_t)f->status;
        w8 = (uint32_t)f->code | (uint64_t)f->run_us << 32;
        w16 = f->wseq;
        break;
    case FQ__FRAME_HELLO:
        w4 = f->flags;
        w8 = f->id;
        w16 = f->wseq;
        break;
    case FQ__FRAME_LOG:
        w4 = (uint32_t)f->level;
        /* fall through */
    case FQ__FRAME_STARTED:
    case FQ__FRAME_CANCEL:
        w8 = f->id;
        w16 = f->wseq;
        break;
    default: /* INIT_FAIL, MSG */
        break;
    }
    out[0] = 0x71;
    out[1] = 0x66;
    out[2] = (unsigned char)(f->type == FQ__FRAME_HELLO && f->version
                                 ? f->version
                                 : FQ__WIRE_VERSION);
    out[3] = (unsigned char)f->type;
    put32(out + 4, w4);
    put64(out + 8, w8);
    put64(out + 16, w16);
    put64(out + 24, f->len);
}

int fq__frame_decode(const void *buf, size_t avail, unsigned accept,
                     fq__frame *f)
{
    const unsigned char *p = buf;

    if (avail < FQ__WIRE_HDR)
        return 0;
    if (p[0] != 0x71 || p[1] != 0x66)
        return FQ_EPROTO;
    f->type = p[3];
    if (f->type < FQ__FRAME_JOB || f->type > FQ__FRAME_LAST ||
        !(accept & (1u << f->type)))
        return FQ_EPROTO;
    /* A HELLO of any version is read, so that a mismatch can be named. */
    f->version = p[2];
    if (f->version != FQ__WIRE_VERSION &&
        (f->type != FQ__FRAME_HELLO || f->version == 0))
        return FQ_EPROTO;
    uint32_t w4 = get32(p + 4);
    uint64_t w8 = get64(p + 8), w16 = get64(p + 16);
    f->len = get64(p + 24);
    if (f->len > FQ__WIRE_MAX_PAYLOAD)
        return FQ_EPROTO;
    f->flags = 0;
    f->status = f->code = f->level = 0;
    f->fn = f->id = f->wseq = 0;
    f->run_us = 0;
    switch (f->type) {
    case FQ__FRAME_JOB:
        f->flags = w4;
        f->fn = w8;
        f->id = w16;
        if ((w4 & ~FQ__JOB_BY_ID) || w8 == 0)
            return FQ_EPROTO;
        break;
    case FQ__FRAME_RESULT:
        f->status = (int32_t)w4;
        f->code = (int32_t)(uint32_t)w8;
        f->run_us = (uint32_t)(w8 >> 32);
        f->wseq = w16;
        if (f->status != 0 && f->status != FQ_EJOB && f->status != FQ_ENOFUNC &&
            f->status != FQ_ECANCELED)
            return FQ_EPROTO;
        if (f->status != FQ_EJOB && f->code != 0)
            return FQ_EPROTO;
        break;
    case FQ__FRAME_HELLO:
        f->flags = w4;
        f->id = w8;
        f->wseq = w16;
        if (f->len > FQ__HELLO_MAX)
            return FQ_EPROTO;
        if (f->version == FQ__WIRE_VERSION &&
            ((w4 & ~FQ__HELLO_PAGE) || w8 == 0 || w8 > INT32_MAX || w16 != 0 ||
             f->len != 0))
            return FQ_EPROTO;
        break;
    case FQ__FRAME_LOG:
        f->level = (int32_t)w4;
        if (w4 > FQ_LOG_LEVEL_MAX || f->len > FQ_LOG_MAX)
            return FQ_EPROTO;
        /* fall through */
    case FQ__FRAME_STARTED:
    case FQ__FRAME_CANCEL:
        f->id = w8;
        f->wseq = w16;
        if ((f->type != FQ__FRAME_LOG && (w4 != 0 || f->len != 0)))
            return FQ_EPROTO;
        break;
    default: /* INIT_FAIL, MSG */
        if (w4 != 0 || w8 != 0 || w16 != 0)
            return FQ_EPROTO;
        if (f->type == FQ__FRAME_INIT_FAIL && f->len > FQ__INIT_MSG_MAX)
            return FQ_EPROTO;
        break;
    }
    return (int)FQ__WIRE_HDR;
}
