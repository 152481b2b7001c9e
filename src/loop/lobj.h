/*
 * The loop object's insides, shared by lobj.c (sources, timers, wake-up,
 * waiting) and lobj_fd.c (the epoll descriptor for outside event loops).
 */
#ifndef FQ_LOBJ_H
#define FQ_LOBJ_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "forkqueue.h"
#include "loop/source.h"

struct lsrc {
    const fq__source_ops *ops; /* NULL: left the loop, compacted later */
    void *obj;
    uint64_t id;
    void *udata;
    /* This pass's slice of the poll set: the source's own array and where
     * its copy starts in the loop's. */
    struct pollfd *spfd;
    int first, n;
};

struct ltimer {
    uint64_t id;
    int64_t at; /* CLOCK_MONOTONIC ns */
    fq_loop_timer_fn fn;
    void *udata;
};

/* Per descriptor number, in the epoll set (lobj_fd.c). */
struct epst {
    uint32_t gen; /* the last sync that listed it */
    short events; /* poll events wanted */
    unsigned char reg;
};

struct fq_loop {
    fq_loop_options o;
    pid_t owner;
    struct lsrc *s;
    int ns, caps, dead;
    unsigned cursor; /* where the next report starts: fairness */
    struct ltimer *t;
    int nt, capt;
    uint64_t next_tid;
    int wake_rd, wake_wr; /* an eventfd (both the same) or a pipe */
    int woken;
    struct pollfd *pfd; /* the poll set of all sources, then wake_rd */
    int cappfd, wake_idx;
    int busy; /* in a call that waits or processes (callbacks included) */
    /* lobj_fd.c */
    int epfd; /* -1 until fq_loop_fd() */
    struct epst *ep;
    int capep;
    int *reg; /* descriptors in the epoll set */
    int nreg, capreg;
    uint32_t gen;
};

/* lobj.c: one step of a pass over every source. */
int64_t fq__lobj_maintain(fq_loop *l);
int fq__lobj_ready(fq_loop *l);
int fq__lobj_gather(fq_loop *l, int extra, struct pollfd **pfd);
void fq__lobj_compact(fq_loop *l);

/* lobj_fd.c: empties the epoll descriptor's ready list; makes its set the
 * current poll set (no-op until fq_loop_fd() was called); closes it. */
void fq__lobj_fd_drain(fq_loop *l);
int fq__lobj_fd_sync(fq_loop *l);
void fq__lobj_fd_close(fq_loop *l);

#endif
