/*
 * The poll loop, knowing nothing of what it waits for. Its owner (the
 * queue today; a loop object over many queues and channels later) hands it
 * a small table of operations: the loop asks the owner for its sources and
 * its next deadline, blocks in poll() until something is ready or due, and
 * reports what poll() found. It calls nothing else: the layers above it
 * implement this table, the loop never calls into them by name.
 */
#ifndef FQ_LOOP_H
#define FQ_LOOP_H

#include <poll.h>
#include <stdint.h>

typedef struct fq__loop_ops {
    /* Non-zero when the owner was freed meanwhile (by another thread or a
     * callback): the wait ends with FQ_ECLOSED. */
    int (*closing)(void *owner);
    /* Does every piece of work that does not wait (send, time limits,
     * replacement of workers...). Returns the CLOCK_MONOTONIC time in ns
     * when something is next due, INT64_MAX for nothing. */
    int64_t (*maintain)(void *owner);
    /* Non-zero when the caller's wait is over. */
    int (*satisfied)(void *owner);
    /* The poll set: points *pfd at the owner's array of entries, with room
     * for `extra` more after them (for the loop's own). Returns how many
     * entries the owner filled, or a negative FQ_E* code. */
    int (*sources)(void *owner, int extra, struct pollfd **pfd);
    /* Reports the poll set after poll() returned n > 0 ready entries; the
     * owner acts on them (and may free the objects behind them). */
    void (*events)(void *owner, struct pollfd *pfd, int nfd, int n);
} fq__loop_ops;

/* Flags of fq__loop_run(). */
#define FQ__LOOP_EINTR 1 /* a signal ends the wait: FQ_EINTR */

/*
 * Runs passes of maintain / poll / events until satisfied() holds after a
 * pass, or timeout_ms passes (-1: no limit). Every call makes at least one
 * pass, without waiting when satisfied() already holds or the time is up,
 * so that even a zero timeout moves bytes and notices deaths. wake_fd (-1:
 * none) is polled too; when it is readable the run returns 1, without
 * reading it. Returns 0, 1, FQ_ETIMEDOUT, FQ_EINTR (only with
 * FQ__LOOP_EINTR), FQ_ECLOSED, FQ_EBUSY when nothing could ever happen (no
 * source, no deadline, no timeout), FQ_ENOMEM or FQ_ESYS.
 */
int fq__loop_run(const fq__loop_ops *ops, void *owner, int timeout_ms,
                 int wake_fd, int flags);

/* CLOCK_MONOTONIC now, in ns (core/handle.c). */
int64_t fq__now_ns(void);

#endif
