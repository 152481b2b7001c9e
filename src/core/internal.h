/*
 * Internal interfaces of the core, the lowest layer (docs/design.md): the
 * registry of queues behind the public handles, the descriptor list every
 * new worker closes, the function table, the clock and pidfds. Nothing
 * here is visible to users; every layer above may use it. The structures
 * of the other layers are theirs: the job record in job/record.h, the
 * worker, its status page and the kinds' method table in worker/kind.h,
 * the queue in queue/queue.h.
 */
#ifndef FQ_INTERNAL_H
#define FQ_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "forkqueue.h"

/* A queue (queue/queue.h). The layers below the queue hold it by pointer
 * only; what they need of it is its head. */
typedef struct fq__queue fq__queue;

/* The head of every queue, its first member (fq__queue.hd): what the
 * registry (core/handle.c) and the wake-up table (loop/wakeup.c) read. */
typedef struct fq__qhead {
    uint32_t id;
    pid_t owner;
    /* fq_wakeup(): an eventfd (both the same) or a pipe, published in
     * slot wake_slot of the wake-up table (-1: none, -2: table full). */
    int wake_rd, wake_wr;
    int wake_slot;
    /* References held by calls in progress (handle.c: taken under its
     * lock, released without it); the queue is destroyed when it is
     * closing and the last one goes. */
    _Atomic unsigned refs;
    /* Called by the last release of a closing queue: kills and reaps the
     * workers, frees everything (queue/queue.c sets it; the registry below
     * the queue calls it without knowing the queue layer). */
    void (*destroy)(fq__queue *q);
    _Atomic int closing; /* fq_queue_free() was called */
} fq__qhead;

/* The head of q (its first member). */
static inline fq__qhead *fq__qhead_of(fq__queue *q)
{
    return (fq__qhead *)(void *)q;
}

/* core/handle.c */
int fq__handle_add(fq__queue *q);
/* Takes q out of the registry (new lookups fail with FQ_ECLOSED) and marks
 * it closing; returns how many references other calls still hold. */
unsigned fq__handle_remove(fq__queue *q);
/* Finds the queue of h and takes a reference to it, released by
 * fq__handle_release() (the LOOKUP of every public call does both). */
int fq__handle_get(fq_queue h, fq__queue **qp);
void fq__handle_release(fq__queue **qp);
/* Calls fn(q) for the queue of h under the registry's lock, so that
 * fq_queue_free() cannot close what fn uses meanwhile (fq_wakeup() signals
 * the wake-up descriptor this way). FQ_ECLOSED for no such queue,
 * FQ_EFOREIGN for one of another process. */
int fq__handle_call_locked(fq_queue h, int (*fn)(fq__queue *q));
/* Calls fn for every queue of this process (used in a new worker to close
 * the descriptors of all queues). Called without the lock: only from a
 * freshly forked child, where no other thread exists. */
void fq__handle_each_unlocked(void (*fn)(fq__queue *q, void *arg), void *arg);

/* Counts forks in this process's ancestry since it was loaded (a
 * pthread_atfork child handler increments it): a worker compares it after
 * each job to notice that it is a copy a job made. */
extern _Atomic unsigned fq__fork_gen;

/* core/handle.c: the descriptors of all workers of all queues (see there). */
void fq__fds_lock(void);
void fq__fds_unlock(void);
int fq__fds_add_locked(int fd);
void fq__fds_close_locked(int fd);
void fq__fds_close(int fd);
/* In a new worker (the lock is held by the fork): closes all but keep. */
void fq__fds_child_keep_only(int keep);
/* time */
int64_t fq__now_ns(void);
/* core/pidfd.c: pidfd_open() and pidfd_send_signal(); -1 with errno
 * (ENOSYS where there are none, or pidfd < 0) when they fail. */
int fq__pidfd_open(pid_t pid);
int fq__pidfd_signal(int pidfd, int sig);

/* core/funcs.c: the function table behind fq_func_register(). Lookups take
 * no lock and cost one hash probe; 0 / NULL when not registered. */
uint64_t fq__func_hash(const char *name);
uint64_t fq__func_id_of(fq_job_fn fn);
fq_job_fn fq__func_by_id(uint64_t id);
const char *fq__func_name(uint64_t id);

#endif
