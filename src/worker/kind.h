/*
 * Workers as the layers above see them (docs/design.md): a worker
 * (fq__worker), the status page it shares with the parent (fq__wstat), the
 * method table of its kind (fq__worker_ops) and what a kind is given to
 * start one (fq__wenv). worker/worker.h is the worker layer's own.
 */
#ifndef FQ_WORKER_KIND_H
#define FQ_WORKER_KIND_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/internal.h"
#include "transport/channel.h"
#include "wire/rbuf.h"
#include "wire/wire.h"

/* Jobs (job/record.h) sit in a worker's FIFO; this layer only links them. */
struct fq__job;

/*
 * A page shared between the parent and one worker, written only by the
 * worker. It tells the parent which job is running (for timeouts and for
 * blaming the right job when the worker dies) without any message.
 */
/* Jobs a worker can have in flight at most (a power of two). */
#define FQ__RING 256u

typedef struct fq__wstat {
    _Atomic uint64_t started; /* wseq+1 of the job started last, 0: none */
    _Atomic uint64_t done;    /* wseq+1 of the job finished last, 0: none */
    _Atomic int64_t start_ns; /* CLOCK_MONOTONIC start of job started-1 */
    _Atomic int ready;        /* init has run */
    /* Bytes the worker itself has written to its channel so far, and, per
     * job (wseq % FQ__RING), that count when the job started and when it
     * ended. When the parent finds bytes that are not a frame at stream
     * offset P, the jobs that can have written them are those that ran
     * while the count was P: see fq__blame_proto(). */
    _Atomic uint64_t tx;
    _Atomic uint64_t tx_start[FQ__RING];
    _Atomic uint64_t tx_end[FQ__RING];
    /* The worker's output buffer: result frames not yet known to be sent.
     * The first `committed` bytes of out[] are whole frames. When a worker
     * dies, the parent recovers from here the results it had produced but
     * not yet flushed, so a crash never costs the results of the jobs
     * before it. */
    _Atomic uint64_t committed;
    /* Bumped by the worker each time it empties out[] (a seqlock): the
     * parent copies results out of out[] while the worker runs a long job,
     * and keeps the copy only if gen did not change meanwhile. */
    _Atomic uint64_t gen;
    /* Per job (wseq % FQ__RING): FQ__CLAIM_STARTED(wseq) once the worker
     * starts it, FQ__CLAIM_REVOKED(wseq) if the parent took it back first.
     * Both sides exchange the word, so exactly one of them wins. */
    _Atomic uint64_t claim[FQ__RING];
    /* Recycling by memory (worker/recycle.c, queue/recycle.c): the limit,
     * set by the parent before the worker starts (0: none), and the flag
     * the worker raises once over it, for the parent to retire it. */
    uint64_t max_rss;
    _Atomic int over_rss;
    /* 1 while the worker sends its results after every job (its jobs run
     * FQ__FLUSH_AGE_NS or more: nothing is held in out[] between jobs, so
     * the parent need not look there); 0 while it holds them. The worker
     * sets it before the flush that follows the job that changed it, so
     * the parent, woken by that flush, sees it. */
    _Atomic int flush_each;
    unsigned char out[];
} fq__wstat;

/* Size of the shared page set: the status, then the output buffer, which
 * holds a full batch (FQ__FLUSH_BYTES) plus one small frame. */
#define FQ__FLUSH_BYTES (64u * 1024)
#define FQ__FLUSH_AGE_NS (1000 * 1000)
/* A job running this long holds up the jobs sent behind it: the worker gets
 * no new ones, and those not started move to an idle worker. */
#define FQ__STALL_NS (2 * 1000 * 1000)
#define FQ__CLAIM_STARTED(wseq) (((uint64_t)(wseq) + 1) << 1)
#define FQ__CLAIM_REVOKED(wseq) ((((uint64_t)(wseq) + 1) << 1) | 1)
#define FQ__DIRECT_BYTES (64u * 1024)
#define FQ__WSTAT_SIZE (256u * 1024)
#define FQ__OUT_CAP (FQ__WSTAT_SIZE - sizeof(fq__wstat))

enum {
    FQ__W_RETIRING = 1 << 0, /* takes no new jobs; stops when idle */
    FQ__W_SHUT = 1 << 1,     /* write side shut down: worker will exit */
    FQ__W_EOF = 1 << 2,      /* channel closed by the worker */
    FQ__W_KILLED = 1 << 3,   /* we sent SIGKILL */
    FQ__W_PROTO = 1 << 4,    /* sent garbage */
    FQ__W_SOLO = 1 << 5,     /* runs a suspect job: nothing else meanwhile */
    FQ__W_HELLO = 1 << 6,    /* its HELLO was received */
    FQ__W_CANCELED = 1 << 7, /* stopped by fq_job_cancel() for one job */
};

typedef struct fq__worker_ops fq__worker_ops;

typedef struct fq__worker {
    const fq__worker_ops *ops; /* its kind (see fq__worker_ops below) */
    void *kind_data;           /* the kind's own state (thread kind) */
    pid_t pid;
    int fd;    /* parent's end of the channel */
    int pidfd; /* readable when the worker exits; -1 if unsupported */
    unsigned flags;
    fq__wstat *stat;
    fq__rbuf rb;
    /* In-flight FIFO; jobs from `unsent` on are not fully written yet. */
    struct fq__job *head, *tail, *unsent;
    size_t unsent_off;
    unsigned nunsent; /* jobs from `unsent` to the tail */
    unsigned inflight;
    unsigned ntimed; /* in-flight jobs with a time limit */
    /* At most the smallest limit of those, in ms (0 when there are none):
     * set by dispatch, reset once none is left (queue/events.c). */
    int tmin_ms;
    /* No limit of those expires before this (0: look at the next pass). */
    int64_t tcheck_at;
    uint64_t next_wseq;
    uint64_t timedout_wseq; /* wseq+1 of the job we killed it for */
    uint64_t rx;            /* stream offset of the next frame to read */
    uint64_t guilty_wseq;   /* wseq+1 of the job that broke the stream */
    uint64_t taken_upto;    /* wseq+1 of the last result taken from out[] */
    /* wseq+1 of the oldest job taken back after it was written, whose frame
     * the worker may not have read yet (its claim word is still live); 0:
     * none. Dispatch keeps the jobs it sends within FQ__RING of it. */
    uint64_t unread_revoked;
    int64_t take_at;       /* next look at results held in out[] */
    int64_t avg_run_ns;    /* this worker's moving average, -1: none */
    unsigned limit;        /* in-flight depth for this dispatch round */
    int64_t eof_deadline;  /* kill if still alive after EOF by then */
    int64_t kill_at;       /* escalate SIGTERM to SIGKILL at this time */
    int64_t reap_check_at; /* no pidfd: next waitpid(WNOHANG) when busy */
    int64_t hard_kill_at;  /* SIGKILL the group if still alive by then */
    /* A large payload read straight into its final buffer (the result of
     * the job at the head of the FIFO). */
    unsigned char *direct_buf; /* NULL while discarding */
    uint64_t direct_have, direct_len;
    int direct_status; /* outcome status of the frame being read */
    fq__frame direct_frame;
    /* Control frames (CANCEL) waiting to go out between two jobs' frames:
     * ctl[ctl_off..ctl_len) (queue/events.c). */
    unsigned char *ctl;
    size_t ctl_len, ctl_off, ctl_cap;
    /* The pid its HELLO announced (its own host's, for a remote worker:
     * never signalled), 0 before. */
    pid_t peer_pid;
} fq__worker;

/* What a kind is given to start a worker for a queue (queue/dispatch.c
 * fills it from the queue): a copy of the queue's options and its kind;
 * the kind says why a start failed in fork_errno (an errno value) and
 * fork_why (its own reason, or NULL). The kinds call it q. */
typedef struct fq__wenv {
    fq_options opts;
    const fq__worker_ops *kind;
    int fork_errno;
    const char *fork_why;
} fq__wenv;

/*
 * A worker kind: how a worker is started, stopped and watched. The queue and
 * the loop know a worker only through this table (as SQLite knows a file
 * through sqlite3_io_methods, or NNG a connection through its transport's
 * pipe operations), so that other kinds (threads, remote hosts, MPI ranks)
 * plug in without changing them. Every kind talks to the parent over a
 * channel (w->fd) carrying the frames of wire/wire.h.
 *
 * Progress (which job runs, since when, what output is buffered) is read
 * from the worker's status page w->stat: shared memory written by the
 * worker for local kinds; a kind without shared memory keeps the parent's
 * copy up to date from STARTED frames.
 */
struct fq__worker_ops {
    const char *name;
    /* FQ__KIND_* */
    unsigned flags;
    /* Starts a worker for q (its channel, status page, process or thread)
     * and sets (*wp)->ops. Returns 0 or a negative FQ_E* code (FQ_EFORK,
     * FQ_ENOMEM, ...). */
    int (*start)(fq__wenv *q, fq__worker **wp);
    /* Asks the worker to stop: SIGKILL ends it and what its jobs started
     * (the loop follows with kill_all at hard_kill_at), other signals are
     * delivered as such. */
    void (*signal)(fq__worker *w, int sig);
    /* fq_cancel(): ends the running job gracefully, forcefully after
     * grace_ms. */
    void (*terminate)(fq__worker *w, int grace_ms);
    /* Last resort: ends whatever is left of the worker and its jobs. */
    void (*kill_all)(fq__worker *w);
    /* A descriptor readable once the worker has ended, for the loop to
     * watch, or -1 (the loop then asks exited() now and then). */
    int (*exit_fd)(const fq__worker *w);
    /* 1: ended, not yet reaped; 0: running; -1: gone without a trace (its
     * status was taken by someone else). Reaps nothing. */
    int (*exited)(fq__worker *w);
    /* Collects an ended (or ending: waits) worker. Stores the wait status
     * in *wstatus; returns 1 if the status is known, 0 if not. */
    int (*reap)(fq__worker *w, int *wstatus);
    /* Waits until the worker has ended or until_ns passes; reaps nothing. */
    void (*await_exit)(fq__worker *w, int64_t until_ns);
    /* Output the worker produced but did not send: *p and its length
     * (whole frames). */
    size_t (*held_output)(fq__worker *w, const unsigned char **p);
    /* Describes how it ended, for outcome messages. */
    void (*describe_exit)(const fq__worker *w, char *buf, size_t n, int signo,
                          int exit_status);
    /* Releases its descriptors and memory (after reap). */
    void (*free)(fq__worker *w);
};

/* fq__worker_ops.flags. BY_ID: the worker did not fork from the caller, so
 * JOB frames name functions by registered id (fq_func_register()); NO_PAGE:
 * the worker shares no status page, the parent keeps w->stat up to date
 * from STARTED and RESULT frames. */
#define FQ__KIND_BY_ID 0x1u
#define FQ__KIND_NO_PAGE 0x2u
/* REMOTE: the worker is a process of another host (worker/remote.c): no
 * pid of ours. */
#define FQ__KIND_REMOTE 0x4u

/* worker/process.c: the forked-process kind. */
extern const fq__worker_ops fq__process_ops;
/* worker/thread.c: the thread kind (threads of the caller's process). */
extern const fq__worker_ops fq__thread_ops;
/* worker/forkserver.c: processes forked by the fork server. */
extern const fq__worker_ops fq__forkserver_ops;
/* worker/wire_kind.c: the process kind speaking only the wire protocol
 * (FQ__KIND_BY_ID | FQ__KIND_NO_PAGE), selected by the internal
 * fq_options.kind value FQ__WORKER_PROCESS_WIRE (tests). */
const fq__worker_ops *fq__process_wire_kind(void);
#define FQ__WORKER_PROCESS_WIRE 0x7701

/* The worker's parent-death signal and the parent's "end now" request. */
#define FQ__SIG_CLEANUP (SIGRTMAX - 1) /* SIGRTMAX is valgrind's */
#define FQ__HARD_KILL_NS INT64_C(200000000)
/* worker/main.c (child side) */
__attribute__((noreturn)) void fq__worker_main(fq__wenv *q, fq__worker *w,
                                               int fd);

#endif
