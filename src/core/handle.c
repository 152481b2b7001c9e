/*
 * Handle registry: maps the numeric ids inside fq_queue handles to queues.
 *
 * Ids count up and are never reused, so a stale handle finds nothing and is
 * answered with FQ_ECLOSED. Each queue remembers the process that created it:
 * a forked child (a worker, or a fork made by the host) holds a copy of the
 * registry, and its lookups of inherited handles fail with FQ_EFOREIGN
 * instead of driving another process's workers.
 *
 * The lock is reinitialised in the child by a pthread_atfork handler: the
 * thread that held it at fork time does not exist there.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static fq__qhead **reg; /* the heads of the queues */
static size_t reg_n, reg_cap;
static uint32_t reg_next_id = 1;
static pid_t reg_pid; /* getpid() cached; reset in children */

_Atomic unsigned fq__fork_gen;

/* Every descriptor the core creates for its workers (both ends of each
 * channel, pidfds), so that a new worker can close all of them but its own,
 * whichever thread made them. They are created, registered, unregistered
 * and closed under fd_lock, and fq__worker_spawn() holds it across fork():
 * a worker never inherits a descriptor this list does not name. */
static pthread_mutex_t fd_lock = PTHREAD_MUTEX_INITIALIZER;
static int *fd_list;
static size_t fd_n, fd_cap;

static void reg_setup(void);

void fq__fds_lock(void)
{
    /* The child's copy of the lock must be re-created even in a program
     * that forks channels before it made any queue. */
    pthread_once(&reg_once, reg_setup);
    pthread_mutex_lock(&fd_lock);
}

void fq__fds_unlock(void)
{
    pthread_mutex_unlock(&fd_lock);
}

int fq__fds_add_locked(int fd)
{
    if (fd < 0)
        return 0;
    if (fd_n == fd_cap) {
        size_t ncap = fd_cap ? fd_cap * 2 : 16;
        int *n = realloc(fd_list, ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        fd_list = n;
        fd_cap = ncap;
    }
    fd_list[fd_n++] = fd;
    return 0;
}

void fq__fds_close_locked(int fd)
{
    if (fd < 0)
        return;
    for (size_t i = 0; i < fd_n; i++) {
        if (fd_list[i] == fd) {
            fd_list[i] = fd_list[--fd_n];
            break;
        }
    }
    close(fd);
}

void fq__fds_close(int fd)
{
    if (fd < 0)
        return;
    fq__fds_lock();
    fq__fds_close_locked(fd);
    fq__fds_unlock();
}

void fq__fds_child_keep_only(int keep)
{
    for (size_t i = 0; i < fd_n; i++)
        if (fd_list[i] != keep)
            close(fd_list[i]);
    fd_n = 0;
    if (keep >= 0 && fd_cap > 0)
        fd_list[fd_n++] = keep;
}

static void reg_atfork_child(void)
{
    pthread_mutex_t fresh_fd = PTHREAD_MUTEX_INITIALIZER;
    fd_lock = fresh_fd;
    atomic_fetch_add_explicit(&fq__fork_gen, 1, memory_order_relaxed);
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    reg_lock = fresh;
    reg_pid = 0;
}

static void reg_setup(void)
{
    pthread_atfork(NULL, NULL, reg_atfork_child);
}

static pid_t my_pid(void)
{
    if (reg_pid == 0)
        reg_pid = getpid();
    return reg_pid;
}

int64_t fq__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fq__handle_add(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    pthread_once(&reg_once, reg_setup);
    pthread_mutex_lock(&reg_lock);
    if (reg_n == reg_cap) {
        size_t ncap = reg_cap ? reg_cap * 2 : 8;
        fq__qhead **n = realloc(reg, ncap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&reg_lock);
            return FQ_ENOMEM;
        }
        reg = n;
        reg_cap = ncap;
    }
    if (reg_next_id == 0) { /* 2^32 queues later: refuse, never reuse */
        pthread_mutex_unlock(&reg_lock);
        return FQ_ENOMEM;
    }
    q->id = reg_next_id++;
    q->owner = my_pid();
    reg[reg_n++] = q;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

unsigned fq__handle_remove(fq__queue *queue)
{
    fq__qhead *q = fq__qhead_of(queue);
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (reg[i] == q) {
            reg[i] = reg[--reg_n];
            break;
        }
    }
    if (reg_n == 0) {
        free(reg);
        reg = NULL;
        reg_cap = 0;
    }
    atomic_store(&q->closing, 1);
    unsigned refs = atomic_load(&q->refs);
    unsigned others = refs > 0 ? refs - 1 : 0;
    pthread_mutex_unlock(&reg_lock);
    return others;
}

void fq__handle_release(fq__queue **qp)
{
    if (!*qp)
        return;
    fq__qhead *q = fq__qhead_of(*qp);
    /* Whoever closes the queue holds a reference while it sets closing:
     * the release that takes the count to zero comes after, and sees it. */
    if (atomic_fetch_sub(&q->refs, 1) == 1 && atomic_load(&q->closing))
        q->destroy(*qp);
}

int fq__handle_get(fq_queue h, fq__queue **qp)
{
    int rc = FQ_ECLOSED;

    if (h.id == 0)
        return FQ_EINVAL;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (reg[i]->id == h.id) {
            rc = reg[i]->owner == my_pid() ? 0 : FQ_EFOREIGN;
            if (rc == 0) {
                atomic_fetch_add(&reg[i]->refs, 1);
                *qp = (fq__queue *)(void *)reg[i];
            }
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int fq__handle_call_locked(fq_queue h, int (*fn)(fq__queue *q))
{
    int rc = FQ_ECLOSED;

    if (h.id == 0)
        return FQ_EINVAL;
    /* Written under the lock: fq_queue_free() cannot close the descriptor
     * until the queue has left the registry. */
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (reg[i]->id == h.id) {
            rc = reg[i]->owner == my_pid() ? fn((fq__queue *)(void *)reg[i])
                                           : FQ_EFOREIGN;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void fq__handle_each_unlocked(void (*fn)(fq__queue *q, void *arg), void *arg)
{
    for (size_t i = 0; i < reg_n; i++)
        fn((fq__queue *)(void *)reg[i], arg);
}
