/*
 * The TLS relay (see tls.h): one poll loop moving bytes between a TLS
 * session and a plain stream socket, in both directions, with a buffer
 * each way. Used by a remote worker's client (a thread per connection,
 * fq__tls_relay_start()) and by the worker server (a process between the
 * connection and the worker, worker/served.c), so that what a worker
 * wrote before it ended is still sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/internal.h"
#include "transport/tls.h"
#include "transport/transport.h"

#define RELAY_BUF 65536

typedef struct dir {
    unsigned char b[RELAY_BUF];
    size_t off, len;
} dir;

/* After an SSL_read() or SSL_write() that returned n <= 0: what to wait
 * for (POLLIN, POLLOUT), or 0 when the TLS side is finished, *clean telling
 * whether it ended with close_notify. */
static short tls_wait(SSL *ssl, int n, int *clean)
{
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_READ)
        return POLLIN;
    if (e == SSL_ERROR_WANT_WRITE)
        return POLLOUT;
    *clean = e == SSL_ERROR_ZERO_RETURN;
    ERR_clear_error();
    return 0;
}

void fq__tls_relay_run(SSL *ssl, int tcp, int plain, unsigned flags, int xfd,
                       void (*xcb)(void *), void *xarg)
{
    const int drop = (flags & FQ__RELAY_DROP_ON_CLOSE) != 0;
    dir *up = malloc(sizeof(*up)), *down = malloc(sizeof(*down));
    int plain_eof = 0, tls_eof = 0, tls_broken = 0, tls_shut = 0;
    int plain_shut = 0;

    if (!up || !down)
        goto out;
    up->len = down->len = 0;
    fq__fd_blocking(plain, 0);
    for (;;) {
        short tev, pev;
        int progress, clean = 0;
        short ev;
        do {
            progress = 0;
            tev = pev = 0;
            /* TLS -> plain */
            if (!tls_eof && down->len == 0) {
                int n = SSL_read(ssl, down->b, RELAY_BUF);
                if (n > 0) {
                    down->off = 0;
                    down->len = (size_t)n;
                    progress = 1;
                } else if ((ev = tls_wait(ssl, n, &clean)) != 0) {
                    tev |= ev;
                } else {
                    /* close_notify, end of stream, reset, bad data */
                    tls_eof = 1;
                    tls_broken |= !clean;
                    progress = 1;
                }
            }
            if (down->len) {
                ssize_t n =
                    send(plain, down->b + down->off, down->len, MSG_NOSIGNAL);
                if (n > 0) {
                    down->off += (size_t)n;
                    down->len -= (size_t)n;
                    progress = 1;
                } else if (n < 0 && errno == EINTR) {
                    progress = 1;
                } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    pev |= POLLOUT;
                } else {
                    goto out; /* the plain side is gone */
                }
            }
            if (tls_eof && down->len == 0 && !plain_shut) {
                shutdown(plain, SHUT_WR);
                plain_shut = 1;
            }
            /* plain -> TLS */
            if (!plain_eof && up->len == 0) {
                ssize_t n = recv(plain, up->b, RELAY_BUF, 0);
                if (n > 0) {
                    up->off = 0;
                    up->len = (size_t)n;
                    progress = 1;
                } else if (n < 0 && errno == EINTR) {
                    progress = 1;
                } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    pev |= POLLIN;
                } else {
                    plain_eof = 1;
                    progress = 1;
                }
            }
            if (up->len && tls_broken) {
                up->len = 0; /* nowhere to go */
                progress = 1;
            }
            if (up->len) {
                int n = SSL_write(ssl, up->b + up->off, (int)up->len);
                if (n > 0) {
                    up->off += (size_t)n;
                    up->len -= (size_t)n;
                    progress = 1;
                } else if ((ev = tls_wait(ssl, n, &clean)) != 0) {
                    tev |= ev;
                } else {
                    tls_broken = tls_eof = 1;
                    progress = 1;
                }
            }
            if (plain_eof && up->len == 0 && !tls_shut) {
                int r = tls_broken ? 1 : SSL_shutdown(ssl);
                if (r < 0 && SSL_get_error(ssl, r) == SSL_ERROR_WANT_WRITE) {
                    tev |= POLLOUT;
                } else {
                    ERR_clear_error();
                    shutdown(tcp, SHUT_WR);
                    tls_shut = 1;
                    progress = 1;
                }
            }
            if (plain_eof && tls_shut && tls_eof && down->len == 0)
                goto out;
        } while (progress);

        /* A descriptor is watched only for what is awaited from it (a
         * reset socket would report POLLHUP at every call otherwise). Once
         * plain ended and our close_notify is out, only the peer's end is
         * awaited: plain closing outright (POLLHUP) ends it too. */
        struct pollfd p[3] = {
            {tev ? tcp : -1, tev, 0},
            {(pev || (plain_eof && (tls_shut || drop))) ? plain : -1, pev, 0},
            {xfd, POLLIN, 0},
        };
        int n = poll(p, xfd >= 0 ? 3 : 2, -1);
        if (n < 0 && errno != EINTR)
            goto out;
        if (n <= 0)
            continue;
        if (xfd >= 0 && p[2].revents && xcb)
            xcb(xarg);
        if ((p[1].revents & (POLLHUP | POLLERR)) && plain_eof &&
            (tls_shut || drop))
            goto out;
    }
out:
    free(up);
    free(down);
}

/* ---- A relay in a thread ------------------------------------------------- */

struct fq__tls_relay {
    pthread_t th;
    SSL *ssl;
    int tcp, plain;
};

static void *relay_main(void *arg)
{
    fq__tls_relay *r = arg;
    fq__tls_relay_run(r->ssl, r->tcp, r->plain, FQ__RELAY_DROP_ON_CLOSE, -1,
                      NULL, NULL);
    SSL_free(r->ssl);
    r->ssl = NULL;
    fq__fds_close(r->tcp);
    fq__fds_close(r->plain);
    /* The thread's OpenSSL state (error queue) goes with it. */
    OPENSSL_thread_stop();
    return NULL;
}

int fq__tls_relay_start(SSL *ssl, int tcp, int *plain, fq__tls_relay **rp)
{
    int sv[2] = {-1, -1}, rc = FQ_ENOMEM;
    sigset_t all, old;

    *rp = NULL;
    fq__tls_relay *r = calloc(1, sizeof(*r));
    fq__fds_lock();
    if (fq__fds_add_locked(tcp) < 0 || !r)
        goto fail;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) <
        0) {
        rc = FQ_ESYS;
        goto fail;
    }
    if (fq__fds_add_locked(sv[0]) < 0 || fq__fds_add_locked(sv[1]) < 0)
        goto fail;
    r->ssl = ssl;
    r->tcp = tcp;
    r->plain = sv[1];
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&r->th, NULL, relay_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        rc = FQ_ESYS;
        goto fail;
    }
    fq__fds_unlock();
    *plain = sv[0];
    *rp = r;
    return 0;
fail:
    /* Registered or not, these are ours: closing is the same. */
    fq__fds_close_locked(sv[0]);
    fq__fds_close_locked(sv[1]);
    fq__fds_close_locked(tcp);
    fq__fds_unlock();
    SSL_free(ssl);
    free(r);
    return rc;
}

void fq__tls_relay_join(fq__tls_relay *r)
{
    if (!r)
        return;
    pthread_join(r->th, NULL);
    free(r);
}
