/*
 * Transports: how the bytes of a channel travel. A channel is a connected
 * stream descriptor; a transport says how one is made (a socketpair to a
 * forked worker, a TCP connection to a worker server) and how bytes go out
 * and come in. The layers above send with fq__send_iov() and read with
 * fq__rbuf_read(), which work on any connected stream socket, and reach the
 * rest through this table (as NNG reaches a connection through its
 * transport's pipe operations).
 *
 * Every descriptor a transport makes is close-on-exec; sends use
 * MSG_NOSIGNAL (a dead peer is an error code, never SIGPIPE); EINTR is
 * retried everywhere.
 */
#ifndef FQ_TRANSPORT_H
#define FQ_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "transport/channel.h"

typedef struct fq__transport_ops {
    const char *name;
    /* Sends iov[0..n) with one call; as fq__send_iov(). */
    ssize_t (*send_iov)(int fd, const struct iovec *iov, int n);
    /* Reads up to len bytes: the count, 0 at end of stream, FQ_ETIMEDOUT
     * when a non-blocking descriptor has nothing, FQ_ESYS. */
    ssize_t (*recv)(int fd, void *buf, size_t len);
    /* Ends the sending side (the peer reads end of stream). */
    void (*shutdown)(int fd);
    void (*close)(int fd);
} fq__transport_ops;

/* transport/socketpair.c: the table's functions for any stream socket. */
ssize_t fq__stream_recv(int fd, void *buf, size_t len);
void fq__stream_shutdown(int fd);
void fq__stream_close(int fd);
extern const fq__transport_ops fq__socketpair_transport;
/* transport/tcp.c */
extern const fq__transport_ops fq__tcp_transport;

/* ---- TCP (transport/tcp.c) ---------------------------------------------- */

/* The default port of worker servers (the Python server's too). */
#define FQ__TCP_DEFAULT_PORT 60006

/*
 * Splits "host:port", "[v6addr]:port", ":port" or "host" into host (at most
 * hn bytes with its NUL; "127.0.0.1" when empty) and *port (default_port
 * when absent). Returns 0 or FQ_EINVAL.
 */
int fq__tcp_split(const char *addr, char *host, size_t hn, int *port,
                  int default_port);

/*
 * Listens on host:port (port 0: any free port), non-blocking, close-on-exec,
 * SO_REUSEADDR. Returns 0 with *fd set, or FQ_EINVAL (bad host) / FQ_ESYS
 * (errno tells: EADDRINUSE, ...).
 */
int fq__tcp_listen(const char *host, int port, int backlog, int *fd);

/* The local port of a bound socket, or FQ_ESYS. */
int fq__tcp_local_port(int fd);

/*
 * Accepts one connection: returns 1 with *fd (non-blocking, close-on-exec,
 * TCP_NODELAY, keepalive), 0 when none is waiting, FQ_ESYS (errno tells:
 * EMFILE, ...). EINTR and ECONNABORTED are retried.
 */
int fq__tcp_accept(int lfd, int *fd);

/*
 * Connects to host:port within timeout_ms (<= 0: 5000), trying every
 * address the name resolves to. Returns 0 with *fd (non-blocking,
 * close-on-exec, TCP_NODELAY, keepalive), or FQ_ETIMEDOUT, FQ_ECLOSED
 * (refused, unreachable), FQ_EINVAL (unknown host), FQ_ESYS; err gets the
 * reason.
 */
int fq__tcp_connect(const char *host, int port, int timeout_ms, int *fd,
                    char *err, size_t errn);

/* Makes fd blocking (on != 0) or not. Returns 0 or FQ_ESYS. */
int fq__fd_blocking(int fd, int on);

/*
 * On a non-blocking descriptor: reads exactly n bytes, or writes all n, by
 * deadline_ns (fq__now_ns() clock; waits with poll). Returns 0,
 * FQ_ETIMEDOUT, FQ_ECLOSED (end of stream, reset, broken pipe), FQ_ESYS.
 */
int fq__fd_read_exact(int fd, void *buf, size_t n, int64_t deadline_ns);
int fq__fd_write_all(int fd, const void *buf, size_t n, int64_t deadline_ns);

#endif
