/*
 * The loop object's descriptor for outside event loops (fq_loop_fd()).
 *
 * On Linux it is an epoll descriptor, owned by the loop, whose interest set
 * follows the loop's poll set: fq_loop_process() and fq_loop_timeout() end
 * by listing the current poll set (fq__lobj_fd_sync()). The wake-up
 * descriptor is in it for good, level-triggered; every source descriptor
 * is one-shot and re-armed at each sync. The outside loop only learns
 * "something may be ready": fq_loop_process() then polls the real set
 * itself, so a stale entry can cost at most one spurious wake-up, never a
 * wrong event.
 *
 * Stale entries: epoll names an entry by descriptor number and open file.
 * A source descriptor closed and its number reused between two syncs (a
 * dead worker replaced) must not be mistaken for the old entry, so a sync
 * re-arms every listed descriptor with EPOLL_CTL_MOD, and adds it when the
 * kernel has no entry for that number and file (ENOENT). An entry whose
 * file lives on elsewhere (a child forked by the host holds it) cannot be
 * deleted once its number is gone; being one-shot, it fires at most once.
 *
 * Elsewhere fq_loop_fd() answers FQ_ESYS (kqueue would fit the same
 * scheme; it is not written yet).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "loop/lobj.h"

#if defined(__linux__)
#include <sys/epoll.h>
#define FQ__HAVE_EPOLL 1
#endif

#define FQ__EXPORT __attribute__((visibility("default")))

#ifdef FQ__HAVE_EPOLL

static uint32_t ep_events(short ev)
{
    uint32_t e = EPOLLONESHOT;
    if (ev & POLLIN)
        e |= EPOLLIN;
    if (ev & POLLOUT)
        e |= EPOLLOUT;
    return e;
}

static int ep_reserve(fq_loop *l, int fd)
{
    if (fd < l->capep)
        return 0;
    int ncap = l->capep ? l->capep : 64;
    while (ncap <= fd)
        ncap *= 2;
    /* reg lists distinct descriptors below capep: as long as ep. */
    int *r = realloc(l->reg, (size_t)ncap * sizeof(*r));
    if (!r)
        return FQ_ENOMEM;
    l->reg = r;
    l->capreg = ncap;
    struct epst *n = realloc(l->ep, (size_t)ncap * sizeof(*n));
    if (!n)
        return FQ_ENOMEM;
    memset(n + l->capep, 0, (size_t)(ncap - l->capep) * sizeof(*n));
    l->ep = n;
    l->capep = ncap;
    return 0;
}

/* Lists fd (wanting `events`) in the epoll set, armed. */
static void ep_arm(fq_loop *l, int fd, short events)
{
    struct epoll_event e;
    memset(&e, 0, sizeof(e));
    e.events = ep_events(events);
    e.data.fd = fd;
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &e) == 0)
        return;
    if (errno == ENOENT && epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &e) == 0)
        return;
    /* EEXIST cannot follow ENOENT; anything else (EBADF, EPERM) leaves the
     * descriptor to the loop's own poll(). */
}

FQ__EXPORT int fq_loop_fd(fq_loop *l)
{
    if (!l)
        return FQ_EINVAL;
    if (l->epfd >= 0)
        return l->epfd;
    fq__fds_lock();
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
        fq__fds_unlock();
        return FQ_ESYS;
    }
    if (fq__fds_add_locked(fd) < 0) {
        close(fd);
        fq__fds_unlock();
        return FQ_ENOMEM;
    }
    fq__fds_unlock();
    struct epoll_event e;
    memset(&e, 0, sizeof(e));
    e.events = EPOLLIN; /* level-triggered, for good */
    e.data.fd = l->wake_rd;
    if (epoll_ctl(fd, EPOLL_CTL_ADD, l->wake_rd, &e) < 0) {
        fq__fds_close(fd);
        return FQ_ESYS;
    }
    l->epfd = fd;
    /* Its set is filled by the next sync; until then a wake-up makes it
     * readable, and fq_loop_timeout() (called before any wait) syncs. */
    return fd;
}

void fq__lobj_fd_drain(fq_loop *l)
{
    if (l->epfd < 0)
        return;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(l->epfd, evs, 64, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 64)
            return;
    }
}

int fq__lobj_fd_sync(fq_loop *l)
{
    if (l->epfd < 0)
        return 0;
    struct pollfd *pfd;
    int nfd = fq__lobj_gather(l, 0, &pfd);
    if (nfd < 0)
        return nfd;
    if (++l->gen == 0)
        l->gen = 1;
    for (int i = 0; i < nfd; i++) {
        int fd = pfd[i].fd;
        if (i == l->wake_idx || fd < 0)
            continue;
        if (ep_reserve(l, fd) < 0)
            return FQ_ENOMEM;
        struct epst *st = &l->ep[fd];
        if (st->gen == l->gen)
            st->events |= pfd[i].events; /* listed twice */
        else
            st->events = pfd[i].events;
        st->gen = l->gen;
        ep_arm(l, fd, st->events);
        if (!st->reg) {
            st->reg = 1;
            l->reg[l->nreg++] = fd;
        }
    }
    for (int i = 0; i < l->nreg;) {
        int fd = l->reg[i];
        if (l->ep[fd].gen == l->gen) {
            i++;
            continue;
        }
        /* Gone from the set: closed (the kernel dropped its entry; this
         * fails) or not polled now (a channel with a message buffered). */
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        l->ep[fd].reg = 0;
        l->reg[i] = l->reg[--l->nreg];
    }
    return 0;
}

void fq__lobj_fd_close(fq_loop *l)
{
    if (l->epfd >= 0)
        fq__fds_close(l->epfd);
    l->epfd = -1;
    free(l->ep);
    free(l->reg);
    l->ep = NULL;
    l->reg = NULL;
    l->capep = l->nreg = l->capreg = 0;
}

#else /* no epoll */

FQ__EXPORT int fq_loop_fd(fq_loop *l)
{
    return l ? FQ_ESYS : FQ_EINVAL;
}

void fq__lobj_fd_drain(fq_loop *l)
{
    (void)l;
}

int fq__lobj_fd_sync(fq_loop *l)
{
    (void)l;
    return 0;
}

void fq__lobj_fd_close(fq_loop *l)
{
    (void)l;
}

#endif
