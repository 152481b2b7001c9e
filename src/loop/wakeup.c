/*
 * Waking a queue's wait from another thread or a signal handler.
 *
 * Each queue owns a wake-up descriptor: an eventfd where there is one, else
 * a pipe. fq_wakeup() makes it readable; the poll loop watches it while it
 * waits in fq_poll() or fq_wait() and returns early, draining it. The
 * descriptor stays readable until a wait consumes it, so a wake-up sent
 * while nobody waits is not lost: the next wait returns at once.
 *
 * fq_wakeup() must not take a lock (a signal handler may call it), yet it
 * must never write to a descriptor that fq_queue_free() has closed, nor to
 * one reused since. So the descriptors of live queues are published in a
 * fixed table of slots, each guarded by a count of wakers inside it:
 *
 *   waker:   find the slot whose id is the handle's; users++; check the id
 *            again; if it still matches, write; users--.
 *   retire:  id = RETIRING (no new waker matches); wait until users == 0;
 *            close; id = 0 (free).
 *
 * A waker that counted itself in before the retire is waited for; one that
 * counts itself in later sees the id changed and leaves without touching
 * the descriptor. Ids are never reused, so a slot reused by another queue
 * never matches a stale handle. All of it is atomic loads, stores and
 * adds, and write(): async-signal-safe. The wait in retire is short (a
 * write), and a handler that interrupts it has finished before it goes on.
 *
 * fq_queue_free() unpublishes the queue at once (a freed handle answers
 * FQ_ECLOSED), though a call still running in another thread may keep the
 * queue, and its descriptors, alive a little longer.
 *
 * More live queues than slots: the others are found through the handle
 * registry, under its lock (thread-safe, not async-signal-safe).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/eventfd.h>
#define FQ__HAVE_EVENTFD 1
#endif

#include "core/internal.h"
#include "loop/wake.h"

#define FQ__EXPORT __attribute__((visibility("default")))

#define WAKE_SLOTS 256
#define SLOT_RETIRING UINT32_MAX /* claimed or retiring: matches no handle */

static struct wake_slot {
    _Atomic uint32_t id; /* 0: free */
    _Atomic int users;   /* wakers inside */
    _Atomic int fd;      /* write end */
    _Atomic int eventfd; /* 1: write 8 bytes, 0: a pipe, 1 byte */
    _Atomic pid_t owner;
} wake_slots[WAKE_SLOTS];

/* Live queues of this process that found no free slot. */
static _Atomic int wake_unslotted;

/* A wake-up pair: an eventfd (rd == wr) or a non-blocking pipe, both ends
 * close-on-exec. */
static int pair_make(int *rd, int *wr)
{
    *rd = *wr = -1;
#ifdef FQ__HAVE_EVENTFD
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd >= 0) {
        *rd = *wr = fd;
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
    *rd = p[0];
    *wr = p[1];
    return 0;
}

/* The descriptors are on the core's list (see fq__fds_lock()), so that no
 * worker or channel child forked meanwhile keeps them. */
int fq__wake_pair_open(int *rd, int *wr)
{
    fq__fds_lock();
    int rc = pair_make(rd, wr);
    if (rc == 0 &&
        (fq__fds_add_locked(*rd) || (*wr != *rd && fq__fds_add_locked(*wr)))) {
        fq__fds_close_locked(*rd);
        if (*wr != *rd)
            fq__fds_close_locked(*wr);
        *rd = *wr = -1;
        rc = FQ_ENOMEM;
    }
    fq__fds_unlock();
    return rc;
}

void fq__wake_pair_close(int rd, int wr)
{
    fq__fds_lock();
    if (wr >= 0 && wr != rd)
        fq__fds_close_locked(wr);
    if (rd >= 0)
        fq__fds_close_locked(rd);
    fq__fds_unlock();
}

void fq__wake_pair_drain(int rd, int wr)
{
    unsigned char buf[64];
    for (;;) {
        ssize_t n = read(rd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        /* An eventfd is emptied by one read; a pipe until EAGAIN. */
        if (n <= 0 || rd == wr || (size_t)n < sizeof buf)
            return;
    }
}

int fq__wake_open(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    q->wake_slot = -1;
    return fq__wake_pair_open(&q->wake_rd, &q->wake_wr);
}

void fq__wake_publish(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    for (int i = 0; i < WAKE_SLOTS; i++) {
        struct wake_slot *s = &wake_slots[i];
        uint32_t freeid = 0;
        if (!atomic_compare_exchange_strong(&s->id, &freeid, SLOT_RETIRING))
            continue;
        atomic_store_explicit(&s->fd, q->wake_wr, memory_order_relaxed);
        atomic_store_explicit(&s->eventfd, q->wake_wr == q->wake_rd,
                              memory_order_relaxed);
        atomic_store_explicit(&s->owner, q->owner, memory_order_relaxed);
        atomic_store(&s->id, q->id); /* publishes the fields above */
        q->wake_slot = i;
        return;
    }
    q->wake_slot = -2; /* found through the registry */
    atomic_fetch_add(&wake_unslotted, 1);
}

void fq__wake_unpublish(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    if (q->wake_slot >= 0) {
        struct wake_slot *s = &wake_slots[q->wake_slot];
        atomic_store(&s->id, SLOT_RETIRING);
        while (atomic_load(&s->users) > 0)
            sched_yield();
        atomic_store(&s->id, 0);
    } else if (q->wake_slot == -2) {
        /* Found through the registry, which it has left (or is leaving
         * under its lock): nothing more to do but the count. */
        atomic_fetch_sub(&wake_unslotted, 1);
    }
    q->wake_slot = -1;
}

void fq__wake_close(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    fq__wake_unpublish(queue); /* no waker uses the descriptors after this */
    fq__wake_pair_close(q->wake_rd, q->wake_wr);
    q->wake_rd = q->wake_wr = -1;
}

void fq__wake_drain(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    fq__wake_pair_drain(q->wake_rd, q->wake_wr);
}

int fq__wake_pair_signal(int fd, int is_eventfd)
{
    uint64_t one = 1;
    int saved = errno; /* a signal handler must leave errno as it was */
    int rc = 0;
    for (;;) {
        ssize_t n = write(fd, &one, is_eventfd ? sizeof one : 1);
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        /* Full (a pipe with a wake-up pending, or an eventfd counter at its
         * maximum): the reader will wake anyway. */
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            rc = FQ_ESYS;
        break;
    }
    errno = saved;
    return rc;
}

int fq__wake_signal(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    return fq__wake_pair_signal(q->wake_wr, q->wake_rd == q->wake_wr);
}

FQ__EXPORT int fq_wakeup(fq_queue h)
{
    if (h.id == 0 || h.id == SLOT_RETIRING)
        return FQ_EINVAL;
    for (int i = 0; i < WAKE_SLOTS; i++) {
        struct wake_slot *s = &wake_slots[i];
        if (atomic_load(&s->id) != h.id)
            continue;
        atomic_fetch_add(&s->users, 1);
        int rc = FQ_ECLOSED;
        if (atomic_load(&s->id) == h.id) {
            int saved = errno;
            pid_t me = getpid();
            errno = saved;
            if (atomic_load_explicit(&s->owner, memory_order_relaxed) != me)
                rc = FQ_EFOREIGN;
            else
                rc = fq__wake_pair_signal(
                    atomic_load_explicit(&s->fd, memory_order_relaxed),
                    atomic_load_explicit(&s->eventfd, memory_order_relaxed));
        }
        atomic_fetch_sub(&s->users, 1);
        return rc;
    }
    if (atomic_load(&wake_unslotted) == 0)
        return FQ_ECLOSED; /* no live queue outside the table */
    return fq__handle_call_locked(h, fq__wake_signal);
}
