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

#include "transport/channel.h"
#include "forkqueue.h"
#include "core/jobtable.h"
#include "wire/wire.h"

#define FQ__INLINE_RESULT 32
/* Job records whose argument fits in this many bytes are reused. */
#define FQ__JOB_SMALL_ARG 64

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
    unsigned cancel;      /* fq_job_cancel(): FQ__CANCEL_* */
    unsigned small;       /* arg[] holds FQ__JOB_SMALL_ARG bytes (reusable) */
    unsigned embedded;    /* lives in its handle's allocation (job/job.h) */
    /* Its handle (job/job.h) when submitted by fq_job_submit(): its outcome
     * goes to the handle, never to fq_take(). NULL for fq_submit(). */
    struct fq_job *fut;
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

/* fq__job.cancel. STOP: fq_job_cancel() stops the job's worker for it (it
 * was running). GHOST: the record stands in a worker's FIFO for a job that
 * was cancelled after it was written to a worker without a shared page,
 * before it started (queue/handles.c): the job itself has its outcome;
 * the ghost takes the worker's answer (the RESULT of the skipped job) and
 * is freed then, never published. */
#define FQ__CANCEL_STOP 1u
#define FQ__CANCEL_GHOST 2u

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

enum fq__qstate {
    FQ__Q_RUNNING = 1,
    FQ__Q_STOPPING, /* finish/cancel in progress: no respawn */
    FQ__Q_FINISHED,
};

typedef struct fq__queue {
    uint32_t id;
    pid_t owner;
    fq_options opts;
    const fq__worker_ops *kind; /* the kind of its workers */
    int nworkers;               /* target number of active workers */
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

    /* Live job ids, for duplicate detection: kept only once a job has
     * come with its own id (FQ_JOB_ID); until then every id is
     * next_auto++, unique by construction (queue/queue.c). */
    fq__jobtable table;
    int ids_tracked;
    uint64_t next_auto;
    fq__job *last_taken;
    /* Records of taken jobs kept for reuse (queue/queue.c): a burst of
     * submissions then of takes defeats malloc's per-thread caches. */
    fq__job *spare;
    unsigned nspare;

    fq_stats st;
    int64_t avg_run_ns; /* moving average of job run time, -1: unknown */
    int64_t now_ns;     /* the loop's last clock reading (for dispatch) */
    unsigned inflight_limit;
    /* The last fq__dispatch() left jobs pending: every worker was full.
     * Until a worker gets room (a result, a new worker: whoever gives it
     * clears this), fq_submit() does not look again. */
    int dispatch_full;

    int64_t respawn_at; /* after a failed fork, retry at this time */
    unsigned fork_failures;
    /* Workers that died in init with no job since the last result: while
     * no job waits, replacing them waits until idle_respawn_at, 10 ms
     * doubling to ~1.3 s, so an init that always crashes costs a bounded
     * number of forks however long the queue idles (queue/death.c). */
    unsigned idle_init_deaths;
    int64_t idle_respawn_at;
    int fork_errno;
    const char *fork_why; /* a kind's own reason its start failed, or NULL */

    void *pfd_mem; /* poll set cache (queue/events.c) */
    size_t pfd_cap;
    int poll_nslot;          /* workers in the poll set being waited on */
    unsigned char *held_buf; /* copy of a worker's out[] (queue/events.c) */

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
    void (*destroy)(struct fq__queue *q);
    _Atomic int closing; /* fq_queue_free() was called */
    /* A call is in progress: 1; fq_stream() is in a callback: 2 (only
     * fq_submit() may enter then). Re-entry otherwise gets FQ_EBUSY. */
    _Atomic int busy;
    /* Job handles (job/job.h, queue/handles.c): handles whose job got its
     * outcome and whose callback is due (it runs at the end of the call
     * that drives the queue, fq__notify()); how many jobs were submitted
     * through handles, and how many of them have no outcome yet; the job
     * an fq_job_wait() waits for. */
    struct fq_job *notify_head, *notify_tail;
    uint64_t nhandle_jobs, nhandle_live;
    fq__job *wait_job;
    int notifying;
} fq__queue;

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
/* channel/child.c: fq__child_hygiene() (chan_public.h) keeping one worker
 * descriptor, a new worker's own end of its channel. */
void fq__child_hygiene_keep(int parent_end, int keep, pid_t parent);

/* time */
int64_t fq__now_ns(void);
/* core/pidfd.c: pidfd_open() and pidfd_send_signal(); -1 with errno
 * (ENOSYS where there are none, or pidfd < 0) when they fail. */
int fq__pidfd_open(pid_t pid);
int fq__pidfd_signal(int pidfd, int sig);

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
    int (*start)(fq__queue *q, fq__worker **wp);
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
__attribute__((noreturn)) void fq__worker_main(fq__queue *q, fq__worker *w,
                                               int fd);

/* loop/wakeup.c: wake-up pairs (an eventfd, rd == wr, or a pipe), on the
 * core's descriptor list; signal is async-signal-safe and keeps errno. */
int fq__wake_pair_open(int *rd, int *wr);
void fq__wake_pair_close(int rd, int wr);
void fq__wake_pair_drain(int rd, int wr);
int fq__wake_pair_signal(int wr, int is_eventfd);
/* A queue's pair, for fq_wakeup(). */
int fq__wake_open(fq__queue *q);
/* After fq__handle_add(): makes the queue reachable by fq_wakeup(). */
void fq__wake_publish(fq__queue *q);
/* fq_wakeup() no longer finds the queue (FQ_ECLOSED); idempotent. */
void fq__wake_unpublish(fq__queue *q);
/* Unpublishes, then closes the descriptors. */
void fq__wake_close(fq__queue *q);
void fq__wake_drain(fq__queue *q);
int fq__wake_signal(fq__queue *q);

/* core/funcs.c: the function table behind fq_func_register(). Lookups take
 * no lock and cost one hash probe; 0 / NULL when not registered. */
uint64_t fq__func_hash(const char *name);
uint64_t fq__func_id_of(fq_job_fn fn);
fq_job_fn fq__func_by_id(uint64_t id);
const char *fq__func_name(uint64_t id);

/* queue/events.c: asks the running (or a queued) job job_id of w to stop
 * cooperatively: a CANCEL frame goes out after the frames already
 * written, and fq_ctx_cancelled() turns true in the job once it arrives.
 * A job not started yet is skipped by the worker, which answers it with a
 * RESULT saying FQ_ECANCELED (worker/main.c). Returns 0,
 * FQ_EINVAL (no such job in w's FIFO), FQ_ECLOSED (the worker's channel is
 * shut), FQ_ENOMEM. */
int fq__worker_send_cancel(fq__worker *w, uint64_t job_id);

#endif
