/*
 * Waking a queue's wait from another thread.
 *
 * Each queue owns a wake-up descriptor: an eventfd where there is one, else
 * a pipe. fq_wakeup() makes it readable; the poll loop watches it while it
 * waits in fq_poll() or fq_wait() and returns early, draining it. The
 * descriptor stays readable until a wait consumes it, so a wake-up sent
 * while nobody waits is not lost: the next wait returns at once.
 *
 * fq_wakeup() writes under the handle registry's lock, and fq_queue_free()
 * removes the queue from the registry (under the same lock) before it closes
 * the descriptor: a wake-up racing with the free either reaches a live
 * descriptor or finds no queue (FQ_ECLOSED), never a closed or reused one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/eventfd.h>
#define FQ__HAVE_EVENTFD 1
#endif

#include "internal.h"

#define FQ__EXPORT __attribute__((visibility("default")))

/* The descriptors are on the core's list (see fq__fds_lock()), so that no
 * worker of any queue keeps them. */
static int wake_open(fq__queue *q);

int fq__wake_open(fq__queue *q)
{
    fq__fds_lock();
    int rc = wake_open(q);
    if (rc == 0 &&
        (fq__fds_add_locked(q->wake_rd) ||
         (q->wake_wr != q->wake_rd && fq__fds_add_locked(q->wake_wr)))) {
        fq__fds_unlock();
        fq__wake_close(q);
        return FQ_ENOMEM;
    }
    fq__fds_unlock();
    return rc;
}

static int wake_open(fq__queue *q)
{
    q->wake_rd = q->wake_wr = -1;
#ifdef FQ__HAVE_EVENTFD
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd >= 0) {
        q->wake_rd = q->wake_wr = fd;
        return 0;
    }
#endif
    int p[2];
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) ||       \
    defined(__OpenBSD__)
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return FQ_ESYS;
#else
    if (pipe(p) < 0)
        return FQ_ESYS;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    }
#endif
    q->wake_rd = p[0];
    q->wake_wr = p[1];
    return 0;
}

void fq__wake_close(fq__queue *q)
{
    fq__fds_lock();
    if (q->wake_wr >= 0 && q->wake_wr != q->wake_rd)
        fq__fds_close_locked(q->wake_wr);
    if (q->wake_rd >= 0)
        fq__fds_close_locked(q->wake_rd);
    fq__fds_unlock();
    q->wake_rd = q->wake_wr = -1;
}

void fq__wake_drain(fq__queue *q)
{
    unsigned char buf[64];
    for (;;) {
        ssize_t n = read(q->wake_rd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        /* An eventfd is emptied by one read; a pipe until EAGAIN. */
        if (n <= 0 || q->wake_rd == q->wake_wr || (size_t)n < sizeof buf)
            return;
    }
}

int fq__wake_signal(fq__queue *q)
{
    uint64_t one = 1;
    for (;;) {
        ssize_t n =
            write(q->wake_wr, &one, q->wake_rd == q->wake_wr ? sizeof one : 1);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        /* Full (a pipe with a wake-up pending, or an eventfd counter at its
         * maximum): the reader will wake anyway. */
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return FQ_ESYS;
    }
}

FQ__EXPORT int fq_wakeup(fq_queue h)
{
    return fq__handle_wake(h);
}
