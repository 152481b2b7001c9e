/*
 * A channel: one end of a socketpair between the parent and one worker, with
 * a receive buffer that turns a byte stream into frames and a send queue of
 * iovecs that goes out with as few system calls as possible.
 *
 * The parent's end is non-blocking and always drained by the poll loop; the
 * worker's end is blocking. Both ends are close-on-exec, and every send uses
 * MSG_NOSIGNAL so that a dead peer is an error code, never SIGPIPE.
 */
#ifndef FQ_CHANNEL_H
#define FQ_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "wire/rbuf.h"

/* Creates a socketpair, both ends close-on-exec; fds[0] is made
 * non-blocking (the parent's end). Returns 0 or FQ_ESYS. */
int fq__channel_pair(int fds[2]);

/*
 * Sends iov[0..n) with one sendmsg (MSG_NOSIGNAL). Returns the number of
 * bytes sent, FQ_ETIMEDOUT on EAGAIN, FQ_ECLOSED when the peer is gone
 * (EPIPE/ECONNRESET), FQ_ESYS otherwise. EINTR is retried.
 */
ssize_t fq__send_iov(int fd, const struct iovec *iov, int n);

/* Sends all of iov[0..n) on a blocking fd, however many calls it takes.
 * Modifies iov. Returns 0 or a negative code as fq__send_iov(). */
int fq__send_all(int fd, struct iovec *iov, int n);

#endif
