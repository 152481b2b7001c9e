/*
 * forkqueue: run jobs in parallel in forked worker processes.
 *
 * This is the public header of libforkqueue; it includes the rest of the API,
 * one header per concept (fq/channel.h, fq/job.h, fq/loop.h, fq/server.h).
 * Everything not declared in these is internal and may change without notice.
 *
 * The model
 * ---------
 * A queue owns N worker processes, forked from the caller. Because workers are
 * forks, they inherit the caller's memory: a job is a plain C function pointer
 * plus a block of argument bytes, and the function may read any data that
 * existed when the worker was forked, without serialisation.
 *
 * The caller submits jobs, then drives the queue with fq_poll(), fq_wait() or
 * fq_take(), in the style of libcurl's multi interface: nothing blocks unless
 * asked to, and results come back as completion records that carry the job id.
 *
 * Every submitted job gets exactly one outcome, reported by fq_take() (or,
 * for a job submitted with fq_job_submit(), kept by its handle): a
 * result, an error raised by the job, a crash of the worker that ran it, a
 * timeout, or a cancellation. A worker that dies is reaped and replaced; the
 * other jobs go on.
 *
 * Handles
 * -------
 * fq_queue is a small struct holding a numeric id, passed by value (as in
 * NNG). Ids are never reused, so a handle used after fq_queue_free() is
 * detected and answered with FQ_ECLOSED instead of touching freed memory. A
 * zero-initialised handle is invalid (FQ_EINVAL).
 *
 * Threads
 * -------
 * Different queues may be used from different threads at the same time. One
 * queue must be used by one thread at a time; only fq_wakeup() may be called
 * from another thread meanwhile. Forking from a multi-threaded
 * program is subject to the usual POSIX rules: only the forking thread exists
 * in a worker, so a job must not rely on locks that other threads of the
 * parent may have held at fork time, or use the fork server
 * (fq_options.fork_server, fq_forkserver_start()).
 *
 * Signals
 * -------
 * The library installs no signal handler in the parent (a worker has one,
 * for SIGRTMAX - 1: its parent-death signal and the parent's "end now",
 * which kills every process its jobs started). Writes use MSG_NOSIGNAL, so a
 * dead worker never raises SIGPIPE in the parent. In workers, every caught
 * signal is reset to its default action (so are SIGTERM, SIGINT, SIGHUP and
 * SIGCHLD when ignored; other ignored signals stay ignored), and they run in a
 * process group of their own (so a terminal's Ctrl-C
 * reaches only the parent, which decides what to do), and on Linux they end
 * when the thread that forked them exits (PR_SET_PDEATHSIG): create
 * and drive a queue from a thread that outlives it. Workers are reaped with
 * waitpid() on their own pid only; a host that ignores SIGCHLD or reaps with
 * waitpid(-1) still gets correct outcomes, but crash reports then lack the
 * exit status.
 *
 * Return values
 * -------------
 * Functions return 0 (or a count) on success and a negative FQ_E* code on
 * failure; fq_strerror() gives its text.
 */
#ifndef FORKQUEUE_H
#define FORKQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FQ_VERSION_MAJOR 0
#define FQ_VERSION_MINOR 2
#define FQ_VERSION_PATCH 0
#define FQ_VERSION_STRING "0.2.0"

/* Returns FQ_VERSION_STRING of the library actually linked. */
const char *fq_version(void);

/*
 * Error codes. All are negative. XX(name, text).
 *
 * The job outcome codes (FQ_EJOB, FQ_ECRASHED, FQ_ETIMEDOUT, FQ_ECANCELED,
 * FQ_EINIT, FQ_EPROTO, FQ_ETOOBIG, FQ_EFORK) also appear in fq_result.status.
 */
#define FQ_ERRNO_MAP(XX)                                                       \
    XX(EINVAL, -1, "invalid argument")                                         \
    XX(ENOMEM, -2, "out of memory")                                            \
    XX(ECLOSED, -3, "handle is closed or unknown")                             \
    XX(EFINISHED, -4, "queue is finished or cancelled")                        \
    XX(EEXIST, -5, "duplicate job id")                                         \
    XX(ETIMEDOUT, -6, "timed out")                                             \
    XX(EINTR, -7, "interrupted by a signal")                                   \
    XX(EFORK, -8, "could not start a worker process")                          \
    XX(ESYS, -9, "system call failed")                                         \
    XX(EJOB, -10, "job reported an error")                                     \
    XX(ECRASHED, -11, "worker died while running the job")                     \
    XX(ECANCELED, -12, "job cancelled")                                        \
    XX(EPROTO, -13, "protocol error on a worker channel")                      \
    XX(ETOOBIG, -14, "message too large")                                      \
    XX(EINIT, -15, "worker init function failed")                              \
    XX(EFOREIGN, -16, "handle belongs to another process")                     \
    XX(EBUSY, -17, "operation not allowed now")                                \
    XX(ENOFUNC, -18, "function not registered")                                \
    XX(EAUTH, -19, "authentication failed or no key")

typedef enum fq_errno {
#define FQ__XX(name, value, text) FQ_##name = value,
    FQ_ERRNO_MAP(FQ__XX)
#undef FQ__XX
        FQ_OK = 0
} fq_errno;

/* Text of an error code ("unknown error" for anything else). Never NULL. */
const char *fq_strerror(int err);

/* Name of an error code, such as "FQ_ECRASHED". Never NULL. */
const char *fq_err_name(int err);

/* A queue handle. Zero-initialise it; fq_queue_new() fills it in. */
typedef struct fq_queue {
    uint32_t id;
} fq_queue;

/* The worker-side context of the job being run. Only valid inside a job. */
typedef struct fq_ctx fq_ctx;

/*
 * A job. Runs in a worker with the argument bytes given to fq_submit(). It
 * settles its outcome in one of three ways: fq_reply() (a result), fq_fail()
 * (an FQ_EJOB error with a code and message), or its return value when it
 * called neither (0: an empty result; anything else: FQ_EJOB with that value
 * as fq_result.code and an empty message). The first of these settles the
 * outcome for good: after fq_reply() the return value is ignored, and later
 * fq_reply() or fq_fail() calls return FQ_EBUSY. (A large reply is already
 * on its way to the parent when fq_reply() returns, so it cannot be taken
 * back.) `arg` is valid only during the call and is suitably aligned for any
 * type (malloc alignment).
 */
typedef int (*fq_job_fn)(fq_ctx *ctx, const void *arg, size_t len);

/*
 * Runs once in each worker, after fork and before its first job. A non-zero
 * return marks the init as failed: every job not yet finished then ends with
 * FQ_EINIT (message from fq_init_fail(), if called) and the queue stops. A
 * worker that dies inside init (crash, or killed from outside) is replaced
 * and its jobs are sent elsewhere; a job that saw three workers die in init
 * ends as FQ_ECRASHED, with a message naming the init function.
 */
typedef int (*fq_init_fn)(void *udata);

/*
 * Fork hooks, for hosts that must prepare for fork() (an interpreter, say).
 * prepare runs in the parent just before each fork of a worker, parent just
 * after it in the parent, child first thing in the new worker. Any may be
 * NULL. They receive fq_options.hook_arg. Workers are also forked to replace
 * dead ones, so these may run inside fq_poll(), fq_wait() and friends.
 */
typedef struct fq_fork_hooks {
    void (*prepare)(void *arg);
    void (*parent)(void *arg);
    void (*child)(void *arg);
} fq_fork_hooks;

/* A record sent by a job with fq_log() (since 0.2.0). */
typedef struct fq_log_record {
    int level;       /* 0..FQ_LOG_LEVEL_MAX, as given to fq_log() */
    uint64_t job_id; /* the job that sent it */
    pid_t pid;       /* its worker's pid (the caller's own for threads) */
    const char *msg; /* NUL-terminated, valid during the callback only */
    size_t len;      /* strlen(msg) */
} fq_log_record;

/* fq_options.log (since 0.2.0). */
typedef void (*fq_log_fn)(void *arg, const fq_log_record *rec);

/* Limits of fq_log() (since 0.2.0). */
#define FQ_LOG_MAX 4096
#define FQ_LOG_LEVEL_MAX 255

/*
 * Queue options. Zero-initialise and set what you need; every zero field
 * means the default given in its comment.
 */
typedef struct fq_options {
    /* Number of worker processes. 0: the number of online CPUs. Negative
     * values are rejected with FQ_EINVAL. */
    int workers;

    /* Non-zero: fq_take() returns results in submission order. Zero: in
     * completion order (lower latency, less buffering). */
    int ordered;

    /* Runs once in each worker before its first job. */
    fq_init_fn init;

    /* Passed to init and available to jobs through fq_ctx_udata(). */
    void *udata;

    /* Default time limit of a job, in milliseconds, measured from the moment
     * the worker starts it. 0: no limit. A job over its limit is killed
     * together with its worker's process group (any processes it started),
     * its outcome is FQ_ETIMEDOUT and a fresh worker replaces the old one. */
    int timeout_ms;

    /* Maximum number of jobs sent ahead to one worker. More in flight hides
     * the round trip for tiny jobs; fewer balances long jobs better. 0: adapt
     * each worker's depth to the observed duration of its jobs (up to 256
     * for tiny jobs, 2 for jobs of more than 2 ms). Either way, jobs queued
     * behind a job that has run for 2 ms move to an idle worker. */
    int inflight;

    /* Replace a worker after it has run this many jobs (bounds the memory of
     * leaky jobs). 0: never. */
    uint64_t max_jobs_per_worker;

    /* fq_cancel() and fq_queue_free() send SIGTERM, wait this long, then
     * SIGKILL. 0: 1000 ms. Negative: SIGKILL at once. */
    int grace_ms;

    /* Results larger than this fail with FQ_ETOOBIG instead of being
     * buffered in the parent. 0: no limit besides available memory (a result
     * that cannot be allocated ends as FQ_ENOMEM; the queue goes on). */
    uint64_t max_result_bytes;

    /* Non-zero: a wait interrupted by a caught signal returns FQ_EINTR
     * instead of resuming. Interactive hosts (Python) use this to react to
     * Ctrl-C; the default resumes, as a plain C program expects. */
    int return_on_eintr;

    /* Called around every fork of a worker. */
    fq_fork_hooks hooks;
    void *hook_arg;

    /* What a worker is (since 0.2.0). FQ_WORKER_PROCESS (0, the default): a
     * forked process. FQ_WORKER_THREAD: a thread of the caller's process,
     * same API and outcomes, but no isolation (a job that crashes takes the
     * whole process down) and cooperative cancellation: a job over its time
     * limit or cancelled by fq_cancel() gets its outcome at once, but its
     * thread runs until the job returns (it should poll fq_ctx_cancelled());
     * a thread that never returns is left behind, detached, and its late
     * result discarded. init runs once per thread; hooks are not used. */
    int kind;

    /* Retire a worker once its peak resident memory (getrusage()'s
     * ru_maxrss, pages it shares with the parent copy-on-write included)
     * passes this many bytes (since 0.2.0). The worker measures itself at
     * most once a millisecond, after a job or before it waits for more
     * work; it finishes the job it runs, the jobs it has not started move
     * to other workers, and a fresh worker is forked. 0: never. Process
     * workers only (ignored by FQ_WORKER_THREAD). Set it well above the
     * parent's own size, which every new worker starts with. */
    uint64_t max_rss;

    /* Non-zero: workers are forked by the fork server (see
     * fq_forkserver_start()), a single-threaded helper process, instead of
     * by the calling thread (since 0.2.0). Workers then start from the
     * helper's copy of memory, taken when it started, not from the caller's
     * memory of now. The helper is started on first use if it is not
     * running. Not with FQ_WORKER_THREAD (FQ_EINVAL). */
    int fork_server;
    /* Receives the records jobs send with fq_log() (since 0.2.0), in the
     * thread that drives the queue, during fq_poll(), fq_wait() and the
     * other calls that read from workers. NULL: records are dropped. It
     * must not call the queue (FQ_EBUSY). */
    fq_log_fn log;
    void *log_arg;
} fq_options;

/* Values of fq_options.kind (since 0.2.0). */
enum { FQ_WORKER_PROCESS = 0, FQ_WORKER_THREAD = 1 };

/* A job handle, a future (since 0.2.0): see fq_job_submit(). */
typedef struct fq_job fq_job;

/* Completion callback of a job handle (since 0.2.0): see fq_job_submit(). */
typedef void (*fq_job_cb)(fq_job *job, void *arg);

/* Per-job options for fq_submit() and fq_job_submit(). Zero-initialise. */
typedef struct fq_job_options {
    /* With FQ_JOB_ID in flags: the job's id. It must not be the id of
     * another job of this queue whose result has not been taken yet
     * (FQ_EEXIST). Otherwise an automatic id is used: a counter that starts
     * at 0 and skips ids still in use. */
    uint64_t id;
    unsigned flags;
    /* Time limit of this job in ms. 0: the queue's timeout_ms. Negative: no
     * limit. */
    int timeout_ms;
    /* fq_job_submit() only (since 0.2.0): called exactly once, with
     * callback_arg, once the job has its outcome. fq_submit() answers
     * FQ_EINVAL when it is set. */
    fq_job_cb callback;
    void *callback_arg;
} fq_job_options;

#define FQ_JOB_ID 0x1u

/*
 * The outcome of one job, filled in by fq_take().
 *
 * status is 0 for a result, else the reason the job has none:
 *   FQ_EJOB       the job returned non-zero; code is that value, data holds
 *                 the message given to fq_fail() (maybe empty).
 *   FQ_ECRASHED   the worker died while running it; signo is the signal that
 *                 killed it, or 0 with exit_status its exit status (-1 when
 *                 the status could not be collected).
 *   FQ_ETIMEDOUT  it ran past its time limit and was killed.
 *   FQ_ECANCELED  fq_cancel() or fq_queue_free() dropped it.
 *   FQ_EINIT      the init function failed in a worker; data holds its
 *                 message.
 *   FQ_EPROTO     its worker sent bytes that are not a valid frame.
 *   FQ_ETOOBIG    its result exceeded max_result_bytes.
 *   FQ_ENOMEM     its result could not be allocated in the parent.
 *   FQ_EFORK      no worker could be started to run it.
 * For every error, data is a NUL-terminated, human-readable description
 * (len excludes the NUL), for instance
 * "worker 4242 killed by signal 9 (SIGKILL)".
 *
 * data stays valid until the next fq_take() on the same queue or until
 * fq_queue_free(), whichever comes first. It is aligned for any type.
 */
typedef struct fq_result {
    uint64_t id;
    int status;
    int code;
    int signo;
    int exit_status;
    const void *data;
    size_t len;
} fq_result;

/* Counters, for progress bars and tests. */
typedef struct fq_stats {
    uint64_t submitted; /* jobs accepted by fq_submit() */
    uint64_t finished;  /* jobs with an outcome (taken or not) */
    uint64_t taken;     /* outcomes returned by fq_take() (jobs of
                           fq_job_submit() count everywhere but here) */
    uint64_t pending;   /* accepted, not yet sent to a worker */
    uint64_t running;   /* sent to a worker, no outcome yet */
    uint64_t crashed;   /* outcomes FQ_ECRASHED */
    uint64_t timedout;  /* outcomes FQ_ETIMEDOUT */
    uint64_t respawns;  /* workers started after the initial ones */
    int workers;        /* worker processes alive now */
    uint64_t recycled;  /* workers retired by max_jobs_per_worker or
                           max_rss (since 0.2.0) */
} fq_stats;

/* ---- The queue (parent side) ------------------------------------------- */

/*
 * Creates a queue and forks its workers; they exist when this returns.
 * opts may be NULL for all defaults. On error *q is zeroed and no process is
 * left behind. Errors: FQ_EINVAL, FQ_ENOMEM, FQ_EFORK, FQ_ESYS.
 */
int fq_queue_new(fq_queue *q, const fq_options *opts);

/*
 * Submits a job: fn(ctx, arg, len) will run in a worker. The argument bytes
 * are copied, so the caller's buffer may be reused at once; any size works.
 * jopts may be NULL. On success the job id is stored in *id if id is not
 * NULL. Never blocks: the job is queued and sent to a worker as soon as one
 * has room, by this call or by the next fq_poll(), fq_wait() or fq_take().
 * Errors: FQ_EINVAL, FQ_ECLOSED, FQ_EFINISHED, FQ_EEXIST, FQ_ENOMEM, FQ_EINIT.
 */
int fq_submit(fq_queue q, fq_job_fn fn, const void *arg, size_t len,
              const fq_job_options *jopts, uint64_t *id);

/*
 * Takes one outcome without blocking (it drives pending I/O once, without
 * waiting). Returns 1 and fills *r, or 0 when no outcome is ready: in ordered
 * mode, when the oldest job not yet taken is not finished. Negative on error.
 */
int fq_take(fq_queue q, fq_result *r);

/*
 * Drives the queue until at least one outcome can be taken or timeout_ms has
 * passed (-1: no limit; 0: do not wait). Returns how many outcomes can be
 * taken now (0 on timeout, or when there is no job left at all), or a
 * negative error (FQ_EINTR with return_on_eintr). Since 0.2.0 it also
 * returns when a job of fq_job_submit() got its outcome (its callback has
 * run by then), possibly with 0.
 */
int fq_poll(fq_queue q, int timeout_ms);

/*
 * Drives the queue until every submitted job has an outcome (taken or not),
 * or timeout_ms has passed (-1: no limit). Returns 0 when all are finished,
 * FQ_ETIMEDOUT on timeout, or another negative error.
 */
int fq_wait(fq_queue q, int timeout_ms);

/*
 * Producer of a stream: submits zero or more jobs with fq_submit() (usually
 * one) and returns 1, or returns 0 when it has no more, or a negative value
 * to stop the stream with that error.
 */
typedef int (*fq_producer_fn)(fq_queue q, void *udata);

/* Consumer of a stream: receives each outcome. A non-zero return stops the
 * stream and fq_stream() returns that value. */
typedef int (*fq_consumer_fn)(fq_queue q, const fq_result *r, void *udata);

/*
 * Runs a possibly endless stream of jobs with bounded memory: calls produce
 * while fewer than `lookahead` jobs are outstanding (submitted, outcome not
 * yet consumed), hands every outcome to consume (in the queue's order), and
 * returns when the producer is exhausted and all its jobs are consumed.
 * lookahead 0 means 4 per worker times the in-flight depth, at least 64.
 * Outcomes of jobs submitted before the call are also consumed. Returns 0,
 * the consumer's or producer's stop value, or a negative error: FQ_EFINISHED
 * on a finished queue, FQ_EINIT once an init function failed (after the
 * outcomes of the jobs already submitted have been consumed).
 */
int fq_stream(fq_queue q, fq_producer_fn produce, fq_consumer_fn consume,
              void *udata, size_t lookahead);

/*
 * Replaces every worker by a fresh fork of the caller as it is now. Jobs
 * already sent to the old workers finish there; jobs sent afterwards run in
 * the new workers, which see memory as it was at this call. Use it when a job
 * needs data or code created after the queue (Python uses it for lambdas).
 */
int fq_refork(fq_queue q);

/*
 * Runs every queued job to its outcome, then stops the workers and reaps
 * them. Outcomes not yet taken can still be taken afterwards. Further
 * submissions fail with FQ_EFINISHED. Calling it twice is harmless.
 */
int fq_finish(fq_queue q);

/*
 * Cancels: jobs not yet sent get outcome FQ_ECANCELED; running workers get
 * SIGTERM, then SIGKILL after grace_ms, and their unfinished jobs end as
 * FQ_ECANCELED. All workers are reaped before it returns. The queue is then
 * finished (as after fq_finish()).
 */
int fq_cancel(fq_queue q);

/*
 * Frees the queue. Workers still running are stopped as by fq_cancel() with
 * no grace (SIGKILL) and reaped. The handle becomes invalid (FQ_ECLOSED).
 */
int fq_queue_free(fq_queue q);

/*
 * Wakes a wait on the queue (since 0.2.0). Unlike every other function here
 * it may be called from any thread, while another thread drives the queue:
 * an fq_poll() or fq_wait() blocked in that thread returns early, fq_poll()
 * with the number of outcomes ready (maybe 0), fq_wait() with FQ_EINTR if
 * not every job is finished. When no wait is in progress, the next fq_poll()
 * or fq_wait() with a non-zero timeout returns at once: a wake-up is never
 * lost, and several before one wait count as one. Use it to hand work to a
 * thread that waits on the queue (put the jobs where that thread will look,
 * then wake it). Calls that do not wait (fq_take(), timeout 0) neither
 * notice nor consume it; fq_stream(), fq_finish() and fq_cancel() ignore it.
 * Thread-safe, and async-signal-safe (it takes no lock, and keeps errno)
 * while the process has at most 256 live queues; wake-ups of the queues
 * beyond take a lock. Returns 0, or FQ_EINVAL, FQ_ECLOSED (freed queue,
 * also when freed concurrently), FQ_EFOREIGN, FQ_ESYS.
 */
int fq_wakeup(fq_queue q);

/* Fills *st with the queue's counters. */
int fq_stats_get(fq_queue q, fq_stats *st);

/*
 * Stores the pids of the live workers in pids (at most max) and returns how
 * many there are (which may exceed max). For tests and monitoring. Thread
 * workers (FQ_WORKER_THREAD) have no pid and are not counted.
 */
int fq_worker_pids(fq_queue q, pid_t *pids, int max);

/* ---- The fork server (since 0.2.0) ------------------------------------- */

/*
 * Starts the process's fork server: a helper process, forked now, that
 * forks the workers of every queue created with fq_options.fork_server. It
 * stays single-threaded, so a worker never starts with a lock another
 * thread of the caller held at the moment of the fork. Call it at the top
 * of main(), before any thread starts: a worker is a copy of the helper, so
 * it sees the program's memory as it was at this call (code, and data that
 * existed then; jobs get the rest through their arguments). fq_options'
 * udata and hook_arg pointers are passed as they are: they must point to
 * memory that existed at this call.
 *
 * Idempotent. A queue with fork_server starts the helper itself if this was
 * never called (then the copy is of that moment, and if other threads run,
 * of their locks too). The helper ends when the process ends (its control
 * socket closes) or at fq_forkserver_stop(). If it dies, the workers it
 * forked end with it, their jobs get outcomes (FQ_ECRASHED for a running
 * job, FQ_EFORK for the others once no worker is left), and starting
 * workers fails with FQ_EFORK until this is called again. Linux (other
 * systems work without pidfds, more slowly). Returns 0, FQ_ESYS, FQ_ENOMEM,
 * FQ_EFORK.
 */
int fq_forkserver_start(void);

/*
 * Ends the fork server and reaps it (waiting up to a second before
 * SIGKILL). Workers it forked end with it: free their queues first.
 * Returns 0 (also when none runs).
 */
int fq_forkserver_stop(void);

/* The fork server's pid, or 0 when none runs (for tests and monitoring). */
pid_t fq_forkserver_pid(void);

/* ---- Inside a job (worker side) ---------------------------------------- */

/*
 * Sets the result of the running job to a copy of len bytes and settles its
 * outcome (see fq_job_fn). Large results are written straight from data,
 * without a copy. Returns 0, or FQ_EBUSY when the outcome was already
 * settled, FQ_EINVAL for a NULL ctx or NULL data with len > 0.
 */
int fq_reply(fq_ctx *ctx, const void *data, size_t len);

/*
 * Makes the running job fail with outcome FQ_EJOB, the given code and
 * message (may be NULL), and settles its outcome. A code of 0 would read as
 * success and is replaced by -1. Returns the code used, so a job can end
 * with `return fq_fail(ctx, 3, "bad input");`, or FQ_EBUSY when the outcome
 * was already settled.
 */
int fq_fail(fq_ctx *ctx, int code, const char *msg);

/* The id of the running job. */
uint64_t fq_ctx_id(const fq_ctx *ctx);

/* fq_options.udata of the job's queue. */
void *fq_ctx_udata(const fq_ctx *ctx);

/* Non-zero once the job of ctx was asked to stop (since 0.2.0): in a
 * thread worker, when it was cancelled (time limit, fq_cancel(),
 * fq_queue_free()) and its outcome given: it should then return soon;
 * whatever it replies is discarded. In any worker, when the parent sent a
 * cooperative cancel for this job (job handles): the job should return
 * soon; what it replies still counts. Cheap enough for a tight loop: the
 * worker's channel is looked at every 2 ms at most. */
int fq_ctx_cancelled(const fq_ctx *ctx);

/*
 * Sends a log record to the parent (since 0.2.0): the queue's
 * fq_options.log callback receives it with the job's id and the worker's
 * pid, or it is dropped when none is set. level is the caller's own scale
 * (syslog priorities, Python logging levels...), 0..FQ_LOG_LEVEL_MAX.
 * Records reach the parent in the order they were sent, and before the
 * job's result if sent before fq_reply(). Returns 0, FQ_EINVAL (NULL ctx or
 * msg, level out of range), FQ_ETOOBIG (msg longer than FQ_LOG_MAX bytes),
 * FQ_EFOREIGN (called in a process the job forked), FQ_ECLOSED (the
 * channel to the parent is gone).
 */
int fq_log(fq_ctx *ctx, int level, const char *msg);

/*
 * From an init function: sets the message that the failed init reports with
 * FQ_EINIT. Returns -1 so that init can `return fq_init_fail("...");`.
 */
int fq_init_fail(const char *msg);

#ifdef __cplusplus
}
#endif

/* The rest of the API, one header per concept (each needs the above). */
#include "fq/channel.h"
#include "fq/job.h"
#include "fq/loop.h"
#include "fq/server.h"

#endif /* FORKQUEUE_H */
