/*
 * The TCP transport (transport.h): connections to and from worker servers.
 * A connection is an ordinary stream socket, so once it is made (and
 * authenticated, auth/), the frames of wire/wire.h travel on it exactly as
 * on a socketpair: fq__send_iov() and fq__rbuf_read() serve both.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"
#include "transport/transport.h"

int fq__tcp_split(const char *addr, char *host, size_t hn, int *port,
                  int default_port)
{
    const char *h = addr ? addr : "", *colon = NULL;
    size_t len;

    *port = default_port;
    if (h[0] == '[') { /* [v6]:port */
        const char *end = strchr(h, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return FQ_EINVAL;
        len = (size_t)(end - h - 1);
        h++;
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(h, ':');
        /* More than one colon and no brackets: a bare IPv6 address. */
        if (colon && strchr(h, ':') != colon)
            colon = NULL;
        len = colon ? (size_t)(colon - h) : strlen(h);
    }
    if (colon) {
        char *end;
        errno = 0;
        long p = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0' || errno || p < 0 || p > 65535)
            return FQ_EINVAL;
        *port = (int)p;
    }
    if (len == 0) {
        h = "127.0.0.1";
        len = strlen(h);
    }
    if (len + 1 > hn)
        return FQ_EINVAL;
    memcpy(host, h, len);
    host[len] = '\0';
    return 0;
}

int fq__fd_blocking(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return FQ_ESYS;
    int nfl = on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
    if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
        return FQ_ESYS;
    return 0;
}

/* Low latency for small frames, and keepalive probes so that a peer whose
 * machine vanished is noticed (after 30 s idle, every 10 s, 3 probes: the
 * Python side's values). Failures are harmless. */
static void tune(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
#ifdef TCP_KEEPIDLE
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
#else
    (void)idle, (void)intvl, (void)cnt;
#endif
}

static int resolve(const char *host, int port, int passive,
                   struct addrinfo **res)
{
    struct addrinfo hints;
    char service[16];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(service, sizeof(service), "%d", port);
    return getaddrinfo(host, service, &hints, res);
}

int fq__tcp_listen(const char *host, int port, int backlog, int *fd)
{
    struct addrinfo *res, *ai;
    int saved = 0;

    *fd = -1;
    if (port < 0 || port > 65535)
        return FQ_EINVAL;
    if (resolve(host, port, 1, &res) != 0)
        return FQ_EINVAL;
    for (ai = res; ai; ai = ai->ai_next) {
        int s = socket(ai->ai_family,
                       ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                       ai->ai_protocol);
        if (s < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(s, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(s, backlog > 0 ? backlog : 128) == 0) {
            *fd = s;
            break;
        }
        saved = errno;
        close(s);
    }
    freeaddrinfo(res);
    if (*fd < 0) {
        errno = saved;
        return FQ_ESYS;
    }
    return 0;
}

int fq__tcp_local_port(int fd)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return FQ_ESYS;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return FQ_ESYS;
}

int fq__tcp_accept(int lfd, int *fd)
{
    for (;;) {
        int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (s >= 0) {
            tune(s);
            *fd = s;
            return 1;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return FQ_ESYS;
    }
}

/* Waits for fd to become ready for `events` until deadline_ns. Returns 1
 * ready, 0 timed out, FQ_ESYS. */
static int wait_fd(int fd, short events, int64_t deadline_ns)
{
    for (;;) {
        int64_t left = deadline_ns - fq__now_ns();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)((left + 999999) / 1000000));
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return FQ_ESYS;
    }
}

static int connect_one(const struct addrinfo *ai, int64_t deadline, int *fd)
{
    int s =
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
               ai->ai_protocol);
    if (s < 0)
        return FQ_ESYS;
    int r = connect(s, ai->ai_addr, ai->ai_addrlen);
    if (r < 0 && errno != EINPROGRESS && errno != EINTR) {
        int e = errno;
        close(s);
        errno = e;
        return FQ_ECLOSED;
    }
    if (r < 0) {
        int w = wait_fd(s, POLLOUT, deadline);
        int err = 0;
        socklen_t len = sizeof(err);
        if (w <= 0) {
            close(s);
            if (w == 0)
                errno = ETIMEDOUT;
            return w == 0 ? FQ_ETIMEDOUT : FQ_ESYS;
        }
        if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            close(s);
            errno = err ? err : errno;
            return FQ_ECLOSED;
        }
    }
    tune(s);
    *fd = s;
    return 0;
}

int fq__tcp_connect(const char *host, int port, int timeout_ms, int *fd,
                    char *err, size_t errn)
{
    struct addrinfo *res;
    int rc = FQ_ECLOSED;

    *fd = -1;
    if (timeout_ms <= 0)
        timeout_ms = 5000;
    int64_t deadline = fq__now_ns() + (int64_t)timeout_ms * 1000000;
    int e = resolve(host, port, 0, &res);
    if (e != 0) {
        snprintf(err, errn, "cannot resolve %s: %s", host, gai_strerror(e));
        return FQ_EINVAL;
    }
    errno = ECONNREFUSED;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = connect_one(ai, deadline, fd);
        if (rc == 0 || rc == FQ_ETIMEDOUT)
            break;
    }
    int saved = errno;
    freeaddrinfo(res);
    if (rc == FQ_ETIMEDOUT)
        snprintf(err, errn, "cannot connect to %s:%d: no answer within %d ms",
                 host, port, timeout_ms);
    else if (rc)
        snprintf(err, errn, "cannot connect to %s:%d: %s", host, port,
                 strerror(saved));
    return rc;
}

int fq__fd_read_exact(int fd, void *buf, size_t n, int64_t deadline_ns)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return FQ_ECLOSED;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return FQ_ECLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return FQ_ESYS;
        int w = wait_fd(fd, POLLIN, deadline_ns);
        if (w <= 0)
            return w == 0 ? FQ_ETIMEDOUT : w;
    }
    return 0;
}

int fq__fd_write_all(int fd, const void *buf, size_t n, int64_t deadline_ns)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r >= 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPIPE || errno == ECONNRESET)
            return FQ_ECLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return FQ_ESYS;
        int w = wait_fd(fd, POLLOUT, deadline_ns);
        if (w <= 0)
            return w == 0 ? FQ_ETIMEDOUT : w;
    }
    return 0;
}

/* ---- The table ---------------------------------------------------------- */

const fq__transport_ops fq__tcp_transport = {
    .name = "tcp",
    .send_iov = fq__send_iov,
    .recv = fq__stream_recv,
    .shutdown = fq__stream_shutdown,
    .close = fq__stream_close,
};
