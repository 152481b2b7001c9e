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

#include "internal.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static fq__queue **reg;
static size_t reg_n, reg_cap;
static uint32_t reg_next_id = 1;
static pid_t reg_pid; /* getpid() cached; reset in children */

_Atomic unsigned fq__fork_gen;

static void reg_atfork_child(void)
{
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

int fq__handle_add(fq__queue *q)
{
    pthread_once(&reg_once, reg_setup);
    pthread_mutex_lock(&reg_lock);
    if (reg_n == reg_cap) {
        size_t ncap = reg_cap ? reg_cap * 2 : 8;
        fq__queue **n = realloc(reg, ncap * sizeof(*n));
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

void fq__handle_remove(fq__queue *q)
{
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
    pthread_mutex_unlock(&reg_lock);
}

int fq__handle_get(fq_queue h, fq__queue **qp)
{
    int rc = FQ_ECLOSED;

    if (h.id == 0)
        return FQ_EINVAL;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (reg[i]->id == h.id) {
            *qp = reg[i];
            rc = reg[i]->owner == my_pid() ? 0 : FQ_EFOREIGN;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int fq__handle_wake(fq_queue h)
{
    int rc = FQ_ECLOSED;

    if (h.id == 0)
        return FQ_EINVAL;
    /* Written under the lock: fq_queue_free() cannot close the descriptor
     * until the queue has left the registry. */
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (reg[i]->id == h.id) {
            rc = reg[i]->owner == my_pid() ? fq__wake_signal(reg[i])
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
        fn(reg[i], arg);
}
