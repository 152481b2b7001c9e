/*
 * Internal structures of the parent side, shared by the queue, the worker
 * lifecycle and the poll loop. Nothing here is visible to users.
 *
 * Life of a job: fq_submit() allocates an fq__job and puts it on the pending
 * list; dispatch moves it to the in-flight FIFO of a worker (which runs jobs
 * in the order received and answers in that order, so the FIFO head is
 * always the job the next result belongs to); its outcome moves it to the
 * ready list (completion order) or marks it done in the submission list
 * (ordered mode); fq_take() hands it out and frees it at the next take.
 */
#ifndef FQ_INTERNAL_H
#define FQ_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "channel.h"
#include "forkqueue.h"
#include "jobtable.h"
#include "wire.h"

#define FQ__INLINE_RESULT 32

enum fq__job_state {
    FQ__JOB_PENDING = 1, /* on q->pend list */
    FQ__JOB_SENT,        /* in a worker's in-flight FIFO */
    FQ__JOB_DONE,        /* has its outcome; waiting to be taken */
    FQ__JOB_TAKEN,       /* handed out; freed at the next take */
};

typedef struct fq__job {
    struct fq__job *next;  /* pending list or in-flight FIFO */
    struct fq__job *onext; /* submission order (ordered) or ready list */
    uint64_t id;
    uint64_t wseq; /* position in its worker's stream of jobs */
    int state;
    int timeout_ms;       /* 0: none */
    unsigned requeues;    /* ran, but the result died with the worker */
    unsigned bounces;     /* sent, never started, worker died */
    unsigned init_deaths; /* first job of workers that died in init */
    unsigned suspect;     /* may have broken a stream: runs alone */
    int status, code, signo, exit_status;
    void *res; /* outcome payload: inline_res, or malloc'd */
    size_t res_len;
    union {
        max_align_t align;
        unsigned char bytes[FQ__INLINE_RESULT];
    } inline_res;
    size_t arg_len;
    /* The frame header and the argument bytes are contiguous, so that one
     * iovec sends a whole job. */
    unsigned char hdr[FQ__WIRE_HDR];
    unsigned char arg[];
} fq__job;

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
    unsigned char out[];
} fq__wstat;

/* Size of the shared page set: the status, then the output buffer, which
 * holds a full batch (FQ__FLUSH_BYTES) plus one small frame. */
#define FQ__FLUSH_BYTES (64u * 1024)
#define FQ__FLUSH_AGE_NS (1000 * 1000)
/* Longest "init failed" message accepted; a longer one is garbage (the
 * worker's own is at most 1 KiB), rejected before it is buffered. */
#define FQ__INIT_MSG_MAX 4096u
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
};

typedef struct fq__worker {
    pid_t pid;
    int fd;    /* parent's end of the channel */
    int pidfd; /* readable when the worker exits; -1 if unsupported */
    unsigned flags;
    fq__wstat *stat;
    fq__rbuf rb;
    /* In-flight FIFO; jobs from `unsent` on are not fully written yet. */
    fq__job *head, *tail, *unsent;
    size_t unsent_off;
    unsigned nunsent; /* jobs from `unsent` to the tail */
    unsigned inflight;
    unsigned ntimed; /* in-flight jobs with a time limit */
    uint64_t next_wseq;
    uint64_t timedout_wseq; /* wseq+1 of the job we killed it for */
    uint64_t rx;            /* stream offset of the next frame to read */
    uint64_t guilty_wseq;   /* wseq+1 of the job that broke the stream */
    uint64_t taken_upto;    /* wseq+1 of the last result taken from out[] */
    int64_t take_at;        /* next look at results held in out[] */
    int64_t avg_run_ns;     /* this worker's moving average, -1: none */
    unsigned limit;         /* in-flight depth for this dispatch round */
    int64_t eof_deadline;   /* kill if still alive after EOF by then */
    int64_t kill_at;        /* escalate SIGTERM to SIGKILL at this time */
    int64_t reap_check_at;  /* no pidfd: next waitpid(WNOHANG) when busy */
    int64_t hard_kill_at;   /* SIGKILL the group if still alive by then */
    /* A large payload read straight into its final buffer (the result of
     * the job at the head of the FIFO). */
    unsigned char *direct_buf; /* NULL while discarding */
    uint64_t direct_have, direct_len;
    int direct_status; /* outcome status of the frame being read */
    fq__frame direct_frame;
} fq__worker;

enum fq__qstate {
    FQ__Q_RUNNING = 1,
    FQ__Q_STOPPING, /* finish/cancel in progress: no respawn */
    FQ__Q_FINISHED,
};

typedef struct fq__queue {
    uint32_t id;
    pid_t owner;
    fq_options opts;
    int nworkers; /* target number of active workers */
    int state;
    int canceling; /* unfinished jobs of dying workers become ECANCELED */
    int broken;    /* an init failed: every job ends FQ_EINIT */
    char *broken_msg;

    fq__worker **w; /* active and retiring workers */
    int nw, capw;

    fq__job *pend_head, *pend_tail;
    uint64_t npending;

    /* Ordered: every untaken job in submission order; ord_scan is the
     * first one not done. Unordered: done jobs in completion order. */
    fq__job *ord_head, *ord_tail, *ord_scan;
    uint64_t nready;

    fq__jobtable table;
    uint64_t next_auto;
    fq__job *last_taken;

    fq_stats st;
    int64_t avg_run_ns; /* moving average of job run time, -1: unknown */
    int64_t now_ns;     /* the loop's last clock reading (for dispatch) */
    unsigned inflight_limit;

    int64_t respawn_at; /* after a failed fork, retry at this time */
    unsigned fork_failures;
    int fork_errno;

    void *pfd_mem; /* poll set cache */
    size_t pfd_cap;
    unsigned char *held_buf; /* copy of a worker's out[] (loop.c) */

    /* fq_wakeup(): an eventfd (both the same) or a pipe, published in
     * slot wake_slot of the wake-up table (-1: none, -2: table full). */
    int wake_rd, wake_wr;
    int wake_slot;
    /* References held by calls in progress (handle.c, under its lock); the
     * queue is destroyed when it is closing and the last one goes. */
    unsigned refs;
    _Atomic int closing; /* fq_queue_free() was called */
    /* A call is in progress: 1; fq_stream() is in a callback: 2 (only
     * fq_submit() may enter then). Re-entry otherwise gets FQ_EBUSY. */
    _Atomic int busy;
} fq__queue;

/* handle.c */
int fq__handle_add(fq__queue *q);
/* Takes q out of the registry (new lookups fail with FQ_ECLOSED) and marks
 * it closing; returns how many references other calls still hold. */
unsigned fq__handle_remove(fq__queue *q);
/* Finds the queue of h and takes a reference to it, released by
 * fq__handle_release() (the LOOKUP of every public call does both). */
int fq__handle_get(fq_queue h, fq__queue **qp);
void fq__handle_release(fq__queue **qp);
/* queue.c: kills and reaps the workers, frees everything. */
void fq__queue_destroy(fq__queue *q);
/* fq_wakeup(): signals the queue's wake-up descriptor under the lock. */
int fq__handle_wake(fq_queue h);
/* Calls fn for every queue of this process (used in a new worker to close
 * the descriptors of all queues). Called without the lock: only from a
 * freshly forked child, where no other thread exists. */
void fq__handle_each_unlocked(void (*fn)(fq__queue *q, void *arg), void *arg);

/* Counts forks in this process's ancestry since it was loaded (a
 * pthread_atfork child handler increments it): a worker compares it after
 * each job to notice that it is a copy a job made. */
extern _Atomic unsigned fq__fork_gen;

/* handle.c: the descriptors of all workers of all queues (see there). */
void fq__fds_lock(void);
void fq__fds_unlock(void);
int fq__fds_add_locked(int fd);
void fq__fds_close_locked(int fd);
void fq__fds_close(int fd);
/* In a new worker (the lock is held by the fork): closes all but keep. */
void fq__fds_child_keep_only(int keep);
/* worker.c: fq__child_hygiene() (chan_public.h) keeping one worker
 * descriptor, a new worker's own end of its channel. */
void fq__child_hygiene_keep(int parent_end, int keep, pid_t parent);

/* time */
int64_t fq__now_ns(void);

/* worker.c (parent side) */
int fq__worker_spawn(fq__queue *q, fq__worker **wp);
void fq__worker_free(fq__worker *w);
/* Signals a worker's process group. SIGKILL asks the worker (on Linux) to
 * kill every process its jobs started and then itself; the loop follows
 * with fq__worker_kill_group() at hard_kill_at. */
void fq__worker_kill(fq__worker *w, int sig);
void fq__worker_kill_group(fq__worker *w);
/* fq_cancel()'s SIGTERM: on Linux the worker sends it to its group and to
 * the processes it adopted, and kills what is left after grace_ms. */
void fq__worker_terminate(fq__worker *w, int grace_ms);
/* The worker's parent-death signal and the parent's "end now" request. */
#define FQ__SIG_CLEANUP (SIGRTMAX - 1) /* SIGRTMAX is valgrind's */
#define FQ__HARD_KILL_NS INT64_C(200000000)
/* Describes how a worker ended, for outcome messages. */
void fq__describe_exit(char *buf, size_t n, pid_t pid, int signo,
                       int exit_status);

/* queue.c: results a dead worker produced but had not flushed. */
void fq__recover_output(fq__queue *q, fq__worker *w);
/* queue.c: decides which job wrote the bytes that broke w's stream. */
void fq__blame_proto(fq__queue *q, fq__worker *w);

/* worker.c (child side) */
__attribute__((noreturn)) void fq__worker_main(fq__queue *q, fq__worker *w,
                                               int fd);

/* wakeup.c */
int fq__wake_open(fq__queue *q);
/* After fq__handle_add(): makes the queue reachable by fq_wakeup(). */
void fq__wake_publish(fq__queue *q);
/* fq_wakeup() no longer finds the queue (FQ_ECLOSED); idempotent. */
void fq__wake_unpublish(fq__queue *q);
/* Unpublishes, then closes the descriptors. */
void fq__wake_close(fq__queue *q);
void fq__wake_drain(fq__queue *q);
int fq__wake_signal(fq__queue *q);

/* loop.c */
typedef int (*fq__cond_fn)(fq__queue *q);
/* Flags of fq__drive(). */
#define FQ__DRIVE_UNINTERRUPTIBLE                                              \
    1                        /* no FQ_EINTR, even with return_on_eintr         \
                              */
#define FQ__DRIVE_WAKEABLE 2 /* fq_wakeup() ends a wait: returns 1 */
/* Moves jobs and results until cond(q) holds or timeout_ms passes (-1: no
 * limit). Returns 0, FQ_ETIMEDOUT, FQ_EINTR (only with return_on_eintr and
 * not FQ__DRIVE_UNINTERRUPTIBLE), 1 when woken by fq_wakeup() (only with
 * FQ__DRIVE_WAKEABLE and a non-zero timeout) or another error. */
int fq__drive(fq__queue *q, int timeout_ms, fq__cond_fn cond, int flags);

/* queue.c, used by the loop */
void fq__dispatch(fq__queue *q);
void fq__flush_worker(fq__worker *w);
int fq__deliver(fq__queue *q, fq__worker *w, const fq__frame *f, void *owned,
                const unsigned char *copy, int override);
void fq__fail_pending(fq__queue *q, int status, const char *msg);
fq__job *fq__fifo_pop(fq__worker *w);
fq__job *fq__pend_pop(fq__queue *q);
/* Start time of the job w is running, if it is the head of its FIFO and
 * has not ended; else -1. */
int64_t fq__head_stalled_since(const fq__worker *w);
/* Takes back the jobs w has not started (loop.c); returns how many. */
int fq__revoke_unstarted(fq__queue *q, fq__worker *w);
void fq__job_finish(fq__queue *q, fq__job *j, int status, int code,
                    const char *msg);
void fq__worker_gone(fq__queue *q, fq__worker *w, int wstatus, int have);
int fq__handle_frame(fq__queue *q, fq__worker *w, const fq__frame *f,
                     const unsigned char *payload);
void fq__refill_workers(fq__queue *q);

#endif
