/*
 * The sources of a loop object (fq_loop, lobj.c). The loop knows nothing
 * of queues, channels or jobs: each kind of source hands it a table of
 * operations, as the queue hands fq__loop_run() its fq__loop_ops. The
 * layers above implement the tables and the public fq_loop_add_*()
 * functions (queue/loopsrc.c: queues, job handles; channel/chan_loop.c and
 * channel/exchange.c: channels, exchanges), so a new kind of source needs
 * no change here.
 *
 * Every operation runs in the loop's thread, inside fq_loop_wait(),
 * fq_loop_process() or fq_loop_timeout(). One pass calls, for every source:
 * maintain, then ready (if any source is ready the wait ends), then sources
 * (the poll set), and after poll() events; report hands out what is ready.
 */
#ifndef FQ_LOOP_SOURCE_H
#define FQ_LOOP_SOURCE_H

#include <poll.h>
#include <stdint.h>

#include "forkqueue.h"

typedef struct fq__source_ops {
    int type; /* FQ_LOOP_QUEUE, ... (what report() puts in ev->type) */
    /* Work that does not wait; returns the CLOCK_MONOTONIC time in ns when
     * something is next due, INT64_MAX for nothing. */
    int64_t (*maintain)(void *obj);
    /* Non-zero when report() has something to hand out. */
    int (*ready)(void *obj);
    /* The poll set: *pfd points at the source's own array, which stays
     * valid until events() of the same pass. Returns how many entries, or a
     * negative FQ_E* code. */
    int (*sources)(void *obj, struct pollfd **pfd);
    /* What poll() found in that array (n > 0 entries with revents). */
    void (*events)(void *obj, struct pollfd *pfd, int nfd, int n);
    /* Fills *ev (type, id, udata are preset by the loop) when ready.
     * Returns 0 (nothing), 1 (reported), 2 (reported, and the source leaves
     * the loop: release() follows), or -1 (the source leaves the loop
     * without an event: a source the caller never added, such as a queue
     * held only for the jobs of it that are in the loop). */
    int (*report)(void *obj, fq_loop_event *ev);
    /* The source leaves the loop (removed, reported gone, loop freed):
     * releases what the loop held. */
    void (*release)(void *obj);
} fq__source_ops;

/* Adds a source: obj is handed to every operation; (ops, id) names it.
 * FQ_EINVAL when (ops, id) is already in the loop, FQ_ENOMEM. On error
 * release() is not called. */
int fq__loop_source_add(fq_loop *loop, const fq__source_ops *ops, void *obj,
                        uint64_t id, void *udata);
/* Removes the source (ops, id), calling its release(). FQ_EINVAL when
 * there is none. */
int fq__loop_source_remove(fq_loop *loop, const fq__source_ops *ops,
                           uint64_t id);
/* The obj of source (ops, id), or NULL: for a kind of source that shares
 * one underlying source between many of its own (jobs of one queue). */
void *fq__loop_source_find(fq_loop *loop, const fq__source_ops *ops,
                           uint64_t id);

#endif
