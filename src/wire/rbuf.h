/*
 * Receive buffer: turns a byte stream from another process into frames.
 */
#ifndef FQ_RBUF_H
#define FQ_RBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire/wire.h"

/* Receive buffer: bytes [start, end) of buf are received and not yet
 * consumed. */
typedef struct fq__rbuf {
    unsigned char *buf;
    size_t cap;
    size_t start;
    size_t end;
} fq__rbuf;

void fq__rbuf_init(fq__rbuf *rb);
void fq__rbuf_free(fq__rbuf *rb);

/* Makes room for at least `need` unconsumed bytes in total (compacting
 * first). Returns 0 or FQ_ENOMEM. */
int fq__rbuf_reserve(fq__rbuf *rb, size_t need);

/* Appends len bytes (for tests and fuzzing). Returns 0 or FQ_ENOMEM. */
int fq__rbuf_append(fq__rbuf *rb, const void *data, size_t len);

/*
 * Reads once from fd into the free space (growing it to at least `min_free`
 * bytes). Returns the number of bytes read, 0 at end of file, FQ_ETIMEDOUT
 * when a non-blocking fd has nothing (EAGAIN), or FQ_ESYS / FQ_ENOMEM.
 * EINTR is retried.
 */
ssize_t fq__rbuf_read(fq__rbuf *rb, int fd, size_t min_free);

/*
 * Looks at the next frame. Returns 1 when a whole frame (header and payload)
 * is buffered: *f is filled and *payload points at its payload inside the
 * buffer (valid until the buffer changes); 0 when more bytes are needed (if
 * a valid header is already buffered, *f is filled in, so the caller can
 * size a direct read of a large payload); FQ_EPROTO for invalid bytes. The
 * frame stays buffered until fq__rbuf_consume(rb, FQ__WIRE_HDR + f->len).
 */
int fq__rbuf_frame(fq__rbuf *rb, unsigned accept, fq__frame *f,
                   const unsigned char **payload);

void fq__rbuf_consume(fq__rbuf *rb, size_t n);

/*
 * Frame walker: follows the frame boundaries of a stream fed in pieces,
 * without keeping the payloads, and reports each header it decodes. A
 * worker uses it to see a CANCEL for its running job among bytes it reads
 * while the job runs (the receive buffer holding the job's argument must not
 * move then). Headers go through fq__frame_decode(), as everywhere.
 */
typedef struct fq__wscan {
    unsigned char hdr[FQ__WIRE_HDR];
    unsigned have; /* header bytes collected */
    uint64_t skip; /* payload bytes still to pass over */
    int broken;    /* invalid bytes seen: nothing more is reported */
} fq__wscan;

void fq__wscan_init(fq__wscan *s);

/* Feeds n stream bytes; calls on(arg, &frame) for each header decoded.
 * Returns 0, or FQ_EPROTO once the stream is invalid. */
int fq__wscan_feed(fq__wscan *s, const unsigned char *p, size_t n,
                   unsigned accept, void (*on)(void *arg, const fq__frame *f),
                   void *arg);

#endif
