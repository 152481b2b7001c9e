/* The socketpair transport (see channel.h): a pair of close-on-exec stream
 * sockets, and sends that never raise SIGPIPE. */
#include "transport/channel.h"
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forkqueue.h"

int fq__channel_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return FQ_ESYS;
    int fl = fcntl(fds[0], F_GETFL);
    if (fl < 0 || fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) < 0) {
        close(fds[0]);
        close(fds[1]);
        return FQ_ESYS;
    }
    /* Bigger socket buffers mean fewer wake-ups for batched small frames;
     * the kernel caps the value, failure is harmless. */
    int sz = 1 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    return 0;
}

ssize_t fq__send_iov(int fd, const struct iovec *iov, int n)
{
    struct msghdr mh;

    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)n;
    for (;;) {
        ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FQ_ETIMEDOUT;
        if (errno == EPIPE || errno == ECONNRESET)
            return FQ_ECLOSED;
        return FQ_ESYS;
    }
}

int fq__send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t r = fq__send_iov(fd, iov, n);
        if (r < 0)
            return (int)r;
        size_t left = (size_t)r;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* ---- The table (transport.h) -------------------------------------------- */

ssize_t fq__stream_recv(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FQ_ETIMEDOUT;
        if (errno == ECONNRESET)
            return 0;
        return FQ_ESYS;
    }
}

void fq__stream_shutdown(int fd)
{
    shutdown(fd, SHUT_WR);
}

void fq__stream_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

const fq__transport_ops fq__socketpair_transport = {
    .name = "socketpair",
    .send_iov = fq__send_iov,
    .recv = fq__stream_recv,
    .shutdown = fq__stream_shutdown,
    .close = fq__stream_close,
};
