/*
 * The wire format between the parent and its workers.
 *
 * Every message is a frame: a fixed 32-byte header followed by `len` payload
 * bytes. Integers are little-endian so that the format can cross machines
 * (remote workers).
 *
 *   offset size  field
 *   0      2     magic 0x71 0x66 ("qf")
 *   2      1     protocol version (FQ__WIRE_VERSION)
 *   3      1     type (FQ__FRAME_*)
 *   4      4     a 32-bit field (column "4" below)
 *   8      8     a 64-bit field (column "8")
 *   16     8     a 64-bit field (column "16")
 *   24     8     payload length
 *
 *   type       dir  4                8               16          payload
 *   JOB        p>w  flags (BY_ID)    fn address/id   job id      argument
 *   RESULT     w>p  status           s32 code, u32   job's wseq  reply or
 *                   (0, FQ_EJOB,     run time (us,               message
 *                   FQ_ENOFUNC,      see below)
 *                   FQ_ECANCELED)
 *   INIT_FAIL  w>p  0                0               0           message
 *                                                                (<= 4 KiB)
 *   MSG        both 0                0               0           message
 *   HELLO      w>p  flags (PAGE)     worker pid      0           none
 *   STARTED    w>p  0                job id          job's wseq  none
 *   LOG        w>p  level (0..255)   job id          job's wseq  text
 *                                                                (<=
 * FQ_LOG_MAX) CANCEL     p>w  0                job id          job's wseq  none
 *
 * Every field not listed is zero, and the decoder rejects anything else.
 * JOB: with FQ__JOB_BY_ID the 8-byte field is a registered function id
 * (core/funcs.c), else the function's address (a worker forked from the
 * caller). RESULT: run time is that of the worker's latest job to return
 * (this one's, or the one before it when the job replied before
 * returning), saturating at FQ__RUN_UNKNOWN - 1, or FQ__RUN_UNKNOWN: the
 * parent only averages it to size its batches. wseq is the job's sequence
 * number at its worker (0, 1, 2, ...): the parent matches every result to the
 * job it sent, and drops a result it already has when it recovers the unflushed
 * output of a dead worker (see worker/main.c). HELLO is a worker's first frame,
 * sent before its init; its version byte may be any non-zero value (its layout
 * never changes), so that the parent can report a worker speaking another
 * version instead of rejecting garbage; the rest is validated only for this
 * version. PAGE: the worker updates a status page shared with the parent;
 * a worker without one reports each job it starts with STARTED. LOG is a
 * record forwarded to the parent's fq_options.log callback; CANCEL asks the
 * job with that wseq to stop (fq_ctx_cancelled()), or, not started yet, to
 * be skipped: its RESULT then says FQ_ECANCELED. MSG frames travel on
 * public channels only, with LOG frames (job id and wseq 0) from a channel's
 * child to its parent (fq_channel_log()).
 *
 * The decoder is the only code that reads bytes from another process; it
 * validates every field and never reads past what it is given.
 */
#ifndef FQ_WIRE_H
#define FQ_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define FQ__WIRE_HDR 32u
#define FQ__WIRE_VERSION 2u

/* Largest payload accepted from the wire (1 TiB): a sanity bound, far above
 * anything memory allows, that rejects garbage lengths. */
#define FQ__WIRE_MAX_PAYLOAD (UINT64_C(1) << 40)
/* Longest INIT_FAIL message (the worker's own is at most 1 KiB). */
#define FQ__INIT_MSG_MAX 4096u

enum fq__frame_type {
    FQ__FRAME_JOB = 1,       /* parent -> worker: run fn(arg) */
    FQ__FRAME_RESULT = 2,    /* worker -> parent: outcome of the oldest job */
    FQ__FRAME_INIT_FAIL = 3, /* worker -> parent: init failed; payload text */
    FQ__FRAME_MSG = 4,       /* either way on a public channel: one message */
    FQ__FRAME_HELLO = 5,     /* worker -> parent, first: version, pid, page */
    FQ__FRAME_STARTED = 6,   /* worker -> parent: a job started (no page) */
    FQ__FRAME_LOG = 7,       /* worker -> parent: a record for the log hook */
    FQ__FRAME_CANCEL = 8,    /* parent -> worker: stop a job cooperatively */
};
#define FQ__FRAME_LAST FQ__FRAME_CANCEL

/* RESULT: the worker has no run time to report yet. */
#define FQ__RUN_UNKNOWN UINT32_MAX

/* JOB flags: fn is a registered function id, not an address. */
#define FQ__JOB_BY_ID 0x1u
/* HELLO flags: the worker updates a status page shared with the parent. */
#define FQ__HELLO_PAGE 0x1u
/* Longest payload of a HELLO of another version (ours has none). */
#define FQ__HELLO_MAX 4096u

typedef struct fq__frame {
    unsigned type;
    unsigned version; /* HELLO: the sender's version (0 encodes ours) */
    uint32_t flags;   /* JOB: FQ__JOB_*; HELLO: FQ__HELLO_* */
    int32_t status;   /* RESULT */
    int32_t code;     /* RESULT */
    int32_t level;    /* LOG */
    uint64_t fn;      /* JOB: function address or id */
    uint64_t id;      /* JOB, STARTED, LOG, CANCEL: job id; HELLO: pid */
    uint64_t wseq;    /* RESULT, STARTED, LOG, CANCEL: the job's sequence
                         number at its worker; HELLO of another version:
                         the raw field */
    uint32_t run_us;  /* RESULT: time the job ran, in microseconds */
    uint64_t len;     /* payload length */
} fq__frame;

/* Which frame types a side accepts. */
#define FQ__ACCEPT_JOB (1u << FQ__FRAME_JOB)
#define FQ__ACCEPT_TO_WORKER ((1u << FQ__FRAME_JOB) | (1u << FQ__FRAME_CANCEL))
#define FQ__ACCEPT_FROM_WORKER                                                 \
    ((1u << FQ__FRAME_RESULT) | (1u << FQ__FRAME_INIT_FAIL) |                  \
     (1u << FQ__FRAME_HELLO) | (1u << FQ__FRAME_STARTED) |                     \
     (1u << FQ__FRAME_LOG))
#define FQ__ACCEPT_MSG (1u << FQ__FRAME_MSG)
/* A public channel's parent end: messages and the child's log records. */
#define FQ__ACCEPT_MSG_LOG (FQ__ACCEPT_MSG | (1u << FQ__FRAME_LOG))

/* Writes the header of f into out[FQ__WIRE_HDR]. */
void fq__frame_encode(const fq__frame *f, unsigned char *out);

/*
 * Decodes a header from buf[0..avail). Returns FQ__WIRE_HDR when a valid
 * header of an accepted type was decoded into *f (the payload may still be
 * incomplete), 0 when fewer than FQ__WIRE_HDR bytes are available, or
 * FQ_EPROTO for anything invalid (a LOG longer than FQ_LOG_MAX, an
 * INIT_FAIL longer than FQ__INIT_MSG_MAX included: rejected before anything
 * is buffered).
 */
int fq__frame_decode(const void *buf, size_t avail, unsigned accept,
                     fq__frame *f);

#endif
