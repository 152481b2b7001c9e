/*
 * The wire format between the parent and its workers.
 *
 * Every message is a frame: a fixed 32-byte header followed by `len` payload
 * bytes. Integers are little-endian so that the format can later cross
 * machines (remote workers); today both ends are the same program.
 *
 *   offset size  field
 *   0      2     magic 0x71 0x66 ("qf")
 *   2      1     version (1)
 *   3      1     type (FQ__FRAME_*)
 *   4      4     s32: RESULT status (0 or FQ_EJOB); zero in other frames
 *   8      8     JOB: function address; RESULT: s32 code + u32 run time in
 *                microseconds (saturating); zero in other frames
 *   16     8     JOB: job id; RESULT: the job's sequence number at its
 *                worker (0, 1, 2, ...); zero otherwise
 *   24     8     payload length
 *
 * A MSG frame (public channels, chan.c) carries one message of `len` bytes
 * and has every other field zero.
 *
 * The sequence number lets the parent match every result to the job it
 * sent, and drop a result it has already received when it recovers the
 * unflushed output of a dead worker (see worker/main.c).
 *
 * The decoder is the only code that reads bytes from another process; it
 * validates every field and never reads past what it is given.
 */
#ifndef FQ_WIRE_H
#define FQ_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define FQ__WIRE_HDR 32u
#define FQ__WIRE_VERSION 1u

/* Largest payload accepted from the wire (1 TiB): a sanity bound, far above
 * anything memory allows, that rejects garbage lengths. */
#define FQ__WIRE_MAX_PAYLOAD (UINT64_C(1) << 40)

enum fq__frame_type {
    FQ__FRAME_JOB = 1,       /* parent -> worker: run fn(arg) */
    FQ__FRAME_RESULT = 2,    /* worker -> parent: outcome of the oldest job */
    FQ__FRAME_INIT_FAIL = 3, /* worker -> parent: init failed; payload text */
    FQ__FRAME_MSG = 4,       /* either way on a public channel: one message */
};
#define FQ__FRAME_LAST FQ__FRAME_MSG

typedef struct fq__frame {
    unsigned type;
    int32_t status;
    int32_t code;
    uint64_t fn;     /* JOB: function address */
    uint64_t id;     /* JOB: job id */
    uint64_t wseq;   /* RESULT: sequence number of the job at its worker */
    uint32_t run_us; /* RESULT: time the job ran, in microseconds */
    uint64_t len;    /* payload length */
} fq__frame;

/* Which frame types a side accepts. */
#define FQ__ACCEPT_JOB (1u << FQ__FRAME_JOB)
#define FQ__ACCEPT_FROM_WORKER                                                 \
    ((1u << FQ__FRAME_RESULT) | (1u << FQ__FRAME_INIT_FAIL))
#define FQ__ACCEPT_MSG (1u << FQ__FRAME_MSG)

/* Writes the header of f into out[FQ__WIRE_HDR]. */
void fq__frame_encode(const fq__frame *f, unsigned char *out);

/*
 * Decodes a header from buf[0..avail). Returns FQ__WIRE_HDR when a valid
 * header of an accepted type was decoded into *f (the payload may still be
 * incomplete), 0 when fewer than FQ__WIRE_HDR bytes are available, or
 * FQ_EPROTO for anything invalid.
 */
int fq__frame_decode(const void *buf, size_t avail, unsigned accept,
                     fq__frame *f);

#endif
