/*
 * forkqueue: run jobs in parallel in forked worker processes.
 *
 * This is the one public header of libforkqueue. Everything not declared here
 * is internal and may change without notice.
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

/* ---- Channels (since 0.2.0) -------------------------------------------- */

/*
 * A channel is a child process connected to its parent by a socketpair that
 * carries whole messages (framed: a message is never split or merged with
 * another). fq_channel_fork() forks like fork() and returns in both
 * processes; fq_channel_start() runs a function in the child. The child gets
 * the same hygiene as a queue's workers: its own process group (so a signal
 * to the group never reaches the caller), killed with the thread that
 * forked it (PR_SET_PDEATHSIG, plus a check that the parent is still there),
 * signal mask and caught signals reset, every descriptor of other channels
 * and of queues' workers closed, every descriptor close-on-exec.
 *
 * The handle is an id passed by value, like fq_queue: ids are never reused,
 * so a freed handle answers FQ_ECLOSED, and a handle inherited across a fork
 * answers FQ_ECLOSED in the child (the child's own end is a new handle).
 * One thread may send while another receives on the same channel; otherwise
 * a channel is used by one thread at a time.
 */
typedef struct fq_channel {
    uint32_t id;
} fq_channel;

/* Channel options. Zero-initialise; every zero field is the default. */
typedef struct fq_channel_options {
    /* Non-zero: a wait interrupted by a caught signal returns FQ_EINTR
     * instead of resuming (interactive hosts use this for Ctrl-C). */
    int return_on_eintr;
    /* Messages larger than this are refused by fq_channel_recv() with
     * FQ_ETOOBIG (the channel is then unusable). 0: no limit. */
    uint64_t max_msg_bytes;
    /* Called around the fork (prepare and parent in the parent, child
     * first thing in the child after the hygiene above). */
    fq_fork_hooks hooks;
    void *hook_arg;
    /* Parent's end (since 0.2.0): receives the records the child sends
     * with fq_channel_log(), from inside fq_channel_recv() (job_id 0, pid
     * the child's). NULL: they are dropped. */
    fq_log_fn log;
    void *log_arg;
} fq_channel_options;

/* A received message: data (malloc'd, aligned for any type; NULL when len
 * is 0) belongs to the caller until fq_msg_free(). */
typedef struct fq_msg {
    void *data;
    size_t len;
} fq_msg;

/* Frees m->data and zeroes *m. NULL and an empty message are fine. */
void fq_msg_free(fq_msg *m);

/*
 * Forks a child connected to the caller by a new channel. Returns 0 in both
 * processes with *ch set to this process's end: fq_channel_pid(*ch) is the
 * child's pid in the parent and 0 in the child. o may be NULL. The child
 * continues from this call; it should end with _exit() (or
 * fq_channel_close() then _exit()), not by returning into code meant for the
 * parent. Errors: FQ_EINVAL, FQ_ENOMEM, FQ_ESYS, FQ_EFORK.
 */
int fq_channel_fork(fq_channel *ch, const fq_channel_options *o);

/* The function a child runs for fq_channel_start(). Its return value is
 * the child's exit status (& 0xff). */
typedef int (*fq_channel_fn)(fq_channel ch, void *arg);

/*
 * Forks a child that runs fn(its end of the channel, arg), closes its end
 * and _exit()s with fn's return value. Returns 0 in the parent only, with
 * *ch its end. Errors as fq_channel_fork().
 */
int fq_channel_start(fq_channel *ch, fq_channel_fn fn, void *arg,
                     const fq_channel_options *o);

/* The child's pid on the parent's end, 0 on the child's end, or a negative
 * error (FQ_EINVAL, FQ_ECLOSED). */
pid_t fq_channel_pid(fq_channel ch);

/*
 * Sends one message of len bytes (0 is fine), whole, in one frame. Blocks
 * while the peer is not reading (back-pressure). Never raises SIGPIPE.
 * Returns 0, FQ_ECLOSED when the peer has gone or the channel was closed,
 * FQ_EINTR (return_on_eintr; if part of the message had gone out, the
 * channel's sending side is shut down, as the stream cannot be resumed),
 * FQ_EINVAL, FQ_ESYS.
 */
int fq_channel_send(fq_channel ch, const void *data, size_t len);

/*
 * Receives one whole message, waiting up to timeout_ms (-1: no limit, 0: do
 * not wait). Returns 1 with *m filled (free it with fq_msg_free()), 0 at the
 * end of the stream (the peer closed its end or ended, and every message it
 * sent has been received), or a negative error: FQ_ETIMEDOUT, FQ_EINTR
 * (return_on_eintr), FQ_EPROTO (the peer sent bytes that are not a frame,
 * or ended in the middle of one), FQ_ETOOBIG, FQ_ENOMEM, FQ_ECLOSED (the
 * channel was closed), FQ_ESYS. After FQ_EPROTO, FQ_ETOOBIG or FQ_ENOMEM the
 * channel only reports that error again.
 */
int fq_channel_recv(fq_channel ch, fq_msg *m, int timeout_ms);

/*
 * From the child's end (since 0.2.0): sends a log record to the parent's
 * fq_channel_options.log callback, as fq_log() does from a job; it is
 * handed out by the parent's fq_channel_recv() on its way to the next
 * message, in order. Blocks like fq_channel_send(). Returns 0, FQ_EINVAL
 * (the parent's end, NULL msg, level out of 0..FQ_LOG_LEVEL_MAX),
 * FQ_ETOOBIG (longer than FQ_LOG_MAX), or fq_channel_send()'s errors.
 */
int fq_channel_log(fq_channel ch, int level, const char *msg);

/* 1 when fq_channel_recv() would return at once without reading (a whole
 * message is buffered, the end of the stream or an error was seen, or the
 * channel was closed), 0 when it would have to read from the descriptor,
 * or a negative error. No system call. */
int fq_channel_ready(fq_channel ch);

/* The channel's descriptor (to poll for POLLIN from another event loop;
 * check fq_channel_ready() first, as messages may already be buffered), or
 * a negative error (FQ_ECLOSED once closed). */
int fq_channel_fd(fq_channel ch);

/* Closes this end: the peer sees the end of the stream. Messages buffered
 * and not received are dropped. The handle stays valid for
 * fq_channel_pid(), fq_channel_wait() and fq_channel_kill(). Idempotent. */
int fq_channel_close(fq_channel ch);

/*
 * On the parent's end: waits up to timeout_ms (-1: no limit, 0: do not
 * wait) for the child to end and reaps it. Returns 0 with *status (may be
 * NULL) set to the status as waitpid() reports it (WIFEXITED() etc.), or -1
 * when another part of the program collected it first (waitpid(-1), SIGCHLD
 * ignored); FQ_ETIMEDOUT; FQ_EINTR (return_on_eintr); FQ_EINVAL on the
 * child's end. Once reaped, it returns the same status again at once. Uses
 * a pidfd where the kernel has them, a bounded polling sleep elsewhere.
 */
int fq_channel_wait(fq_channel ch, int *status, int timeout_ms);

/*
 * Sends sig to the child's process group (the child and whatever it
 * started), never to the caller's. Does nothing once the child was reaped,
 * so a reused pid is never signalled; where pidfds exist the child is
 * checked through its pidfd first. Returns 0 or a negative error
 * (FQ_EINVAL on the child's end or for a bad signal).
 */
int fq_channel_kill(fq_channel ch, int sig);

/*
 * Closes the channel and frees the handle. A child that was not reaped yet
 * is not waited for: it is reaped later, without blocking, by the next
 * fq_channel_fork() or fq_channel_cleanup() of this process.
 */
int fq_channel_free(fq_channel ch);

/*
 * Reaps the children of freed channels. With sig non-zero, sends it first to
 * those still running (their process groups). Waits up to timeout_ms (-1:
 * no limit, 0: do not wait). Returns how many such children are still
 * running. Programs call it before exiting (the Python binding does, at
 * interpreter exit).
 */
int fq_channel_cleanup(int sig, int timeout_ms);

/* ---- Exchanges (since 0.2.0) ------------------------------------------- */

/*
 * An exchange watches many channels (parent's ends) at once and tells which
 * have a message and which have ended; an ended channel (end of stream with
 * every message received) is removed from the exchange and its child
 * reaped. With a limit, at most `limit` channels run at once: work started
 * with fq_exchange_start() beyond it waits, first in first out, and starts
 * as soon as a running channel ends. Used by one thread at a time.
 */
typedef struct fq_exchange fq_exchange;

typedef struct fq_exchange_options {
    /* Most channels running at once (watched, or ended but not yet
     * reaped). 0: no limit. Negative: FQ_EINVAL. */
    int limit;
    /* Non-zero: a wait interrupted by a caught signal returns FQ_EINTR. */
    int return_on_eintr;
    /* Options of the channels fq_exchange_start() forks. */
    fq_channel_options channel;
} fq_exchange_options;

/* What fq_exchange_ready() reports about one channel. */
typedef struct fq_exchange_event {
    fq_channel ch; /* {0} when error is set */
    void *udata;   /* given to fq_exchange_add() or fq_exchange_start() */
    int ended;     /* 0: a message (or a receive error) is ready on ch;
                      1: ch ended: removed, child reaped, status set */
    int status;    /* ended: the waitpid() status (-1: collected elsewhere) */
    int error;     /* waiting work that could not be started (FQ_EFORK...) */
} fq_exchange_event;

/* Creates an exchange. o may be NULL. Errors: FQ_EINVAL, FQ_ENOMEM. */
int fq_exchange_new(fq_exchange **ex, const fq_exchange_options *o);

/* Watches a channel (the parent's end; the caller keeps owning it). It
 * counts against the limit even beyond it. Errors: FQ_EINVAL (child's end,
 * already watched), FQ_ECLOSED, FQ_ENOMEM. */
int fq_exchange_add(fq_exchange *ex, fq_channel ch, void *udata);

/* Stops watching ch (not closed, not reaped). Errors: FQ_EINVAL when ch is
 * not watched. */
int fq_exchange_remove(fq_exchange *ex, fq_channel ch);

/*
 * Starts fn(child's end, arg) in a new child (fq_channel_start()) and
 * watches it with udata arg, or, when `limit` channels run, queues the work
 * to start later. Returns 0 with *ch set when started, 1 when queued (*ch
 * zeroed; ch may be NULL), or an error (FQ_EFORK...). The started channels
 * belong to the caller, who frees them once they ended.
 */
int fq_exchange_start(fq_exchange *ex, fq_channel_fn fn, void *arg,
                      fq_channel *ch);

/*
 * Waits up to timeout_ms (-1: no limit, 0: just look) until something can be
 * reported and fills out[0..max) with events: a channel with a whole
 * message ready (receive it; it stays watched), or a channel that ended
 * (removed, child reaped: free it when done), or waiting work that failed
 * to start. Slots freed by ended channels start waiting work first. Returns
 * the number of events, 0 on timeout or when nothing is watched or
 * waiting, or FQ_EINTR (return_on_eintr), FQ_EINVAL, FQ_ESYS.
 */
int fq_exchange_ready(fq_exchange *ex, fq_exchange_event *out, int max,
                      int timeout_ms);

/* Channels watched (running), and work waiting to start. */
int fq_exchange_active(const fq_exchange *ex);
int fq_exchange_waiting(const fq_exchange *ex);

/* Frees the exchange. Watched channels are left to their owner; waiting
 * work is dropped. Returns how much waiting work was dropped. */
int fq_exchange_free(fq_exchange *ex);

/* ---- Shared memory blocks (since 0.2.0) --------------------------------- */

/*
 * A block of memory shared between processes that cannot leak: an anonymous
 * memory file (memfd_create), never a name in /dev/shm. Forked children keep
 * the creator's mapping; any process of the same user maps the same memory
 * with fq_shm_attach() and the block's name ("fq_<pid>_<fd>_<token>") while
 * the creating process still holds it. The memory is freed by the kernel
 * when the last descriptor and mapping are gone, in whatever process, also
 * after crashes. Linux only (elsewhere fq_shm_create() returns FQ_ESYS).
 * The Python package's MemoryBlock uses the same names.
 */
typedef struct fq_shm fq_shm;

/* Creates a zero-filled block of size bytes, mapped read-write. Errors:
 * FQ_EINVAL (size 0), FQ_ENOMEM, FQ_ESYS. */
int fq_shm_create(fq_shm **out, size_t size);

/* Maps the block called name, made by fq_shm_create() (or Python's
 * MemoryBlock) in a process that still holds it. Errors: FQ_EINVAL (not a
 * block name), FQ_ECLOSED (its holder is gone or let it go), FQ_ENOMEM,
 * FQ_ESYS. */
int fq_shm_attach(fq_shm **out, const char *name);

/* The mapped memory, its size, and the name to pass to other processes
 * (valid until fq_shm_free()). NULL / 0 for a NULL block. */
void *fq_shm_data(const fq_shm *b);
size_t fq_shm_size(const fq_shm *b);
const char *fq_shm_name(const fq_shm *b);

/* Unmaps the block and, in the creator, closes its descriptor: the memory
 * goes once no other process has it mapped. NULL is fine. */
void fq_shm_free(fq_shm *b);

/* ---- Loops (since 0.2.0) ------------------------------------------------ */

/*
 * A loop waits on many queues, channels, exchanges and job handles at once,
 * with timers and a wake-up that other threads and signal handlers may send,
 * and says which are ready. It is driven either by fq_loop_wait() (it blocks in
 * poll()), or by another event loop (asyncio, libuv, a plain poll()) through
 * one descriptor and one timeout, as libcurl's multi interface is:
 *
 *     for (;;) {
 *         struct pollfd p = {fq_loop_fd(loop), POLLIN, 0};
 *         int ms;
 *         fq_loop_timeout(loop, &ms);
 *         poll(&p, 1, ms);
 *         int n = fq_loop_process(loop, ev, 16);
 *         ... handle ev[0..n) ...
 *     }
 *
 * Either way, the loop moves every queue added to it forward (jobs sent,
 * results read, deaths noticed, time limits, replacements): the queue's own
 * fq_take() then hands out what arrived. Used by one thread at a time, and
 * only in the process that created it; fq_loop_wakeup() may be called from
 * anywhere.
 */
typedef struct fq_loop fq_loop;

/* Loop options. Zero-initialise; every zero field is the default. */
typedef struct fq_loop_options {
    /* Non-zero: a wait interrupted by a caught signal returns FQ_EINTR. */
    int return_on_eintr;
} fq_loop_options;

/* Values of fq_loop_event.type. */
enum {
    FQ_LOOP_QUEUE = 1,
    FQ_LOOP_CHANNEL = 2,
    FQ_LOOP_TIMER = 3,
    FQ_LOOP_WAKEUP = 4,
    FQ_LOOP_JOB = 5,
    FQ_LOOP_EXCHANGE = 6
};

/* Bits of fq_loop_event.flags. */
#define FQ_LOOP_ENDED 0x1u  /* channel: ended, and left the loop */
#define FQ_LOOP_CLOSED 0x2u /* its handle was freed: left the loop */
#define FQ_LOOP_WOKEN 0x4u  /* queue: fq_wakeup() was called on it */

/* One thing fq_loop_wait() found ready. */
typedef struct fq_loop_event {
    int type;       /* FQ_LOOP_QUEUE, ... */
    unsigned flags; /* FQ_LOOP_ENDED, FQ_LOOP_CLOSED, FQ_LOOP_WOKEN */
    /* The source: fq_queue.id, fq_channel.id, fq_job_id(), the timer's
     * id, the exchange's address; 0 for a wake-up. */
    uint64_t id;
    void *udata; /* given when the source was added */
    /* Queue: outcomes that fq_take() can hand out now. */
    uint64_t count;
} fq_loop_event;

/* A timer's callback, run by fq_loop_wait() or fq_loop_process() in the
 * loop's thread. It may add and remove sources and timers. */
typedef void (*fq_loop_timer_fn)(fq_loop *loop, uint64_t id, void *udata);

/* Creates a loop. o may be NULL. Errors: FQ_EINVAL, FQ_ENOMEM, FQ_ESYS. */
int fq_loop_new(fq_loop **loop, const fq_loop_options *o);

/* Frees the loop: its sources leave it (queues and channels stay their
 * owners'; a queue freed while in the loop is destroyed now), timers are
 * dropped, descriptors closed. Errors: FQ_EINVAL, FQ_EBUSY (from a
 * callback of this loop). */
int fq_loop_free(fq_loop *loop);

/*
 * Adds a queue. The loop then moves it forward in each wait and reports it
 * (FQ_LOOP_QUEUE) while outcomes can be taken (count), once for each
 * fq_wakeup() on it (FQ_LOOP_WOKEN), and once when it was freed
 * (FQ_LOOP_CLOSED: it left the loop; the loop held it until then). Errors:
 * FQ_EINVAL (already in this loop), FQ_ECLOSED, FQ_EFOREIGN, FQ_ENOMEM.
 */
int fq_loop_add_queue(fq_loop *loop, fq_queue q, void *udata);

/* Takes a queue out of the loop. Errors: FQ_EINVAL when it is not in it. */
int fq_loop_remove_queue(fq_loop *loop, fq_queue q);

/*
 * Adds a channel (either end). It is reported (FQ_LOOP_CHANNEL) while a
 * whole message is ready for fq_channel_recv(), and once, with
 * FQ_LOOP_ENDED, when the stream ended (every message received, or an
 * error, or fq_channel_close()): it then leaves the loop; reap the child
 * with fq_channel_wait(). A channel freed meanwhile is reported once with
 * FQ_LOOP_CLOSED. Errors: FQ_EINVAL (already in this loop), FQ_ECLOSED,
 * FQ_ENOMEM.
 */
int fq_loop_add_channel(fq_loop *loop, fq_channel ch, void *udata);

/* Takes a channel out of the loop. Errors: FQ_EINVAL when not in it. */
int fq_loop_remove_channel(fq_loop *loop, fq_channel ch);

/*
 * Adds an exchange. It is reported (FQ_LOOP_EXCHANGE) while
 * fq_exchange_ready(ex, out, max, 0) has something to hand out (a message,
 * a channel that ended, work that failed to start); the loop also starts
 * its waiting work as slots free up. fq_exchange_free() takes it out of
 * every loop. Errors: FQ_EINVAL (NULL, already in this loop), FQ_ENOMEM.
 */
int fq_loop_add_exchange(fq_loop *loop, fq_exchange *ex, void *udata);

/* Takes an exchange out of the loop. Errors: FQ_EINVAL when not in it. */
int fq_loop_remove_exchange(fq_loop *loop, fq_exchange *ex);

/*
 * Adds a job handle (fq_job_submit()). The loop drives the job's queue
 * (once, however many of its jobs are in the loop, and without reporting
 * the queue unless it was added too) and reports the job once, when it has
 * its outcome (FQ_LOOP_JOB, id fq_job_id()): it then leaves the loop; read
 * the outcome with fq_job_result(). The loop holds a reference to the
 * handle, so fq_job_free() may come first. Job callbacks due run in
 * fq_loop_wait() and fq_loop_process(), after the wait. Errors: FQ_EINVAL
 * (NULL, already in this loop), FQ_ECLOSED, FQ_ENOMEM.
 */
int fq_loop_add_job(fq_loop *loop, fq_job *job, void *udata);

/* Takes a job handle out of the loop. Errors: FQ_EINVAL when not in it. */
int fq_loop_remove_job(fq_loop *loop, fq_job *job);

/*
 * A one-shot timer due in delay_ms (0: at the next wait). When due, fn runs
 * (if not NULL) or an event FQ_LOOP_TIMER is reported with udata. Stores
 * its id (never 0) in *id if id is not NULL. Errors: FQ_EINVAL, FQ_ENOMEM.
 */
int fq_loop_timer(fq_loop *loop, int delay_ms, fq_loop_timer_fn fn, void *udata,
                  uint64_t *id);

/* Cancels a timer that has not fired. Errors: FQ_EINVAL (no such timer). */
int fq_loop_timer_cancel(fq_loop *loop, uint64_t id);

/*
 * Wakes the loop: the wait in progress (or the next one) returns, reporting
 * FQ_LOOP_WAKEUP once for any number of wake-ups since the last report; an
 * outside event loop sees fq_loop_fd() readable. Thread-safe and
 * async-signal-safe (one write(); errno is kept), as long as the loop is
 * not freed meanwhile. Returns 0, FQ_EINVAL, FQ_ESYS.
 */
int fq_loop_wakeup(fq_loop *loop);

/*
 * Waits up to timeout_ms (-1: no limit, 0: do not wait) until something is
 * ready, moving every source forward meanwhile, then runs the callbacks of
 * due timers and fills ev[0..max) with what is ready: wake-up first, then
 * due timers without a callback, then sources (taken in turn from call to
 * call, so that a small max starves none). What does not fit stays for the
 * next call. Returns the number of events (0 on timeout, or when the wait
 * ended with nothing to report: only timer callbacks ran, say), or FQ_EINVAL,
 * FQ_EBUSY (from a callback of this loop), FQ_EFOREIGN (in a forked child),
 * FQ_EINTR (return_on_eintr), FQ_ENOMEM, FQ_ESYS. With no source and no timer,
 * only fq_loop_wakeup() or the timeout ends the wait.
 */
int fq_loop_wait(fq_loop *loop, fq_loop_event *ev, int max, int timeout_ms);

/* fq_loop_wait() with a zero timeout: the call for an outside event loop,
 * when fq_loop_fd() is readable or fq_loop_timeout() has passed. */
int fq_loop_process(fq_loop *loop, fq_loop_event *ev, int max);

/*
 * A descriptor that is readable whenever fq_loop_process() has something to
 * do (an epoll descriptor, Linux only: elsewhere FQ_ESYS, and the loop is
 * driven by fq_loop_wait(), from a thread woken by fq_loop_wakeup()). Owned
 * by the loop: poll it for POLLIN, never read or close it. Its set of
 * descriptors is brought up to date by fq_loop_process() and
 * fq_loop_timeout(): call the latter each time before the outside loop
 * waits again.
 */
int fq_loop_fd(fq_loop *loop);

/*
 * Stores in *timeout_ms the milliseconds until the loop must be processed
 * even if fq_loop_fd() stays quiet (the nearest time limit, respawn
 * back-off, flush age, waitpid() check or timer of its sources), 0 when
 * something is ready now, -1 for no deadline. Does the work that does not
 * wait (jobs submitted since are sent) and brings fq_loop_fd()'s set up to
 * date: call it after every fq_loop_process() and after submitting work,
 * before the outside loop waits. Returns 0, FQ_EINVAL, FQ_EBUSY (from a
 * callback), FQ_EFOREIGN, FQ_ENOMEM or FQ_ESYS.
 */
int fq_loop_timeout(fq_loop *loop, int *timeout_ms);

/* ---- Function ids (since 0.2.0) ---------------------------------------- */

/*
 * A job names its function by address when its worker was forked from the
 * caller. A worker that was not (a remote worker, one forked by a helper
 * started early) finds it by a registered id instead: register every job
 * function under the same name in every process that submits or runs it
 * (before the queue is created, or in init for the worker side).
 *
 * The id is a 64-bit hash of the name, the same in every process. Returns 0
 * and stores the id in *id (may be NULL). Registering the same name with the
 * same function again is a no-op returning 0. Errors: FQ_EINVAL (NULL or
 * empty name, name longer than FQ_FUNC_NAME_MAX bytes, NULL fn), FQ_EEXIST
 * (the name, or its id, is taken by another function, or fn is registered
 * under another name), FQ_ENOMEM. Thread-safe. A job whose function id is
 * not registered in its worker ends with status FQ_ENOFUNC and a message
 * naming the id.
 */
#define FQ_FUNC_NAME_MAX 255
int fq_func_register(const char *name, fq_job_fn fn, uint64_t *id);

/* The id of a registered name: 0 and *id, or FQ_ENOFUNC (not registered in
 * this process), FQ_EINVAL. */
int fq_func_id(const char *name, uint64_t *id);

/* ---- Job handles: jobs as futures (since 0.2.0) ------------------------ */

/*
 * Submits a job as fq_submit() does and returns a handle to it in *job: the
 * job's outcome goes to the handle, never to fq_take(), and stays there,
 * owned by the handle, until fq_job_free(). The job counts in the queue's
 * fq_stats (submitted, pending, running, finished; never taken), fq_wait()
 * and fq_finish() wait for it, fq_cancel() cancels it, and an ordered queue
 * orders only the jobs of fq_submit(). jopts may be NULL; jopts->callback,
 * if set, runs exactly once when the job has its outcome, whatever it is
 * (a result, an error, FQ_ECANCELED, FQ_ECLOSED when the queue is freed
 * first), also when the handle was freed before: it runs in the thread and
 * at the end of the call that gave the job its outcome (fq_poll(),
 * fq_wait(), fq_take(), fq_stream(), fq_finish(), fq_cancel(),
 * fq_job_wait(), fq_job_done(), fq_job_cancel(), or the call that frees
 * the queue), never inside the loop. A callback may read the outcome
 * (fq_job_result()), free the handle, submit jobs and cancel jobs (with
 * fq_job_cancel(), fq_cancel()); calls that wait (fq_poll(), fq_wait(),
 * fq_take(), fq_job_wait()) answer FQ_EBUSY there. Errors as fq_submit();
 * on error *job is NULL and no callback will run.
 *
 * Threads: a handle follows the rule of its queue: calls on a queue and on
 * the handles of its jobs are made by one thread at a time (any thread,
 * handed over with the usual synchronisation). The queue may be freed from
 * another thread meanwhile (see fq_queue_free()): its unfinished jobs then
 * end FQ_ECLOSED in the thread that destroys it.
 */
int fq_job_submit(fq_queue q, fq_job_fn fn, const void *arg, size_t len,
                  const fq_job_options *jopts, fq_job **job);

/*
 * Drives the job's queue until the job has its outcome or timeout_ms has
 * passed (-1: no limit; 0: do not wait). Callbacks of jobs that end
 * meanwhile run during the wait. Returns 0 once the job has its outcome
 * (read it with fq_job_result()), FQ_ETIMEDOUT, FQ_EINTR (fq_wakeup() on
 * the queue, or a signal with return_on_eintr), FQ_EBUSY (from a callback,
 * or while another call uses the queue), FQ_ECLOSED (the queue was freed
 * and its destruction is still pending in another thread), FQ_EINVAL.
 */
int fq_job_wait(fq_job *job, int timeout_ms);

/*
 * 1 if the job has its outcome, 0 if not yet, or a negative error. Moves
 * the queue's I/O once without waiting (as fq_take() does), so a loop of
 * fq_job_done() calls makes progress; from a callback it only looks.
 */
int fq_job_done(fq_job *job);

/*
 * Cancels the job, unless it already has its outcome. A job not started
 * yet (queued in the parent, or sent to a worker that has not started it)
 * is dropped at once. A running job's worker is stopped for it: a CANCEL
 * frame (the job's fq_ctx_cancelled() becomes 1) and SIGTERM to the worker
 * and the processes its jobs started, SIGKILL after fq_options.grace_ms
 * (negative: SIGKILL at once), and the worker is replaced; the jobs queued
 * behind it go to other workers. A thread worker
 * (FQ_WORKER_THREAD) cannot be stopped: its job's fq_ctx_cancelled()
 * becomes 1, the thread is left to return on its own (its reply is
 * discarded) and a new thread takes its place. Either way the job ends
 * FQ_ECANCELED, before this call returns (for a running process job, up to
 * grace_ms plus 200 ms), whatever the job does meanwhile (a reply after the
 * cancel is discarded), and its callback has run. Returns 0 when this call
 * cancelled the job, 1 when the job already had its outcome (finished,
 * cancelled before, or its queue freed: nothing changed, the outcome
 * stands), or a negative error
 * (FQ_EINVAL, FQ_EBUSY when another call uses the queue, FQ_ECLOSED as for
 * fq_job_wait()).
 */
int fq_job_cancel(fq_job *job);

/*
 * Fills *r with the job's outcome, as fq_take() would (r->data stays valid
 * until fq_job_free()). Returns 0, FQ_EBUSY if the job has no outcome yet,
 * or FQ_EINVAL. Does not touch the queue: also usable once it is freed.
 */
int fq_job_result(const fq_job *job, fq_result *r);

/* The job's id (its fq_job_options.id, or the automatic one). */
uint64_t fq_job_id(const fq_job *job);

/*
 * Releases the handle and its outcome. A job still queued or running goes
 * on: it gets its one outcome, which is then discarded (its callback, if
 * any, still runs, with the handle valid for the duration of the call).
 * The handle must not be used afterwards. NULL is fine.
 */
void fq_job_free(fq_job *job);

/* ---- Worker servers and remote workers (since 0.2.0) -------------------- */

/*
 * A worker server accepts TCP connections, authenticates them with a
 * shared key (HMAC-SHA256 challenge-response, the same exchange as the
 * Python server `python3 -m forkqueue.server`), and serves each
 * authenticated connection that asks for a C engine worker by forking a
 * worker process that runs jobs for it, like a local queue's worker. A job
 * names its function by the id it was registered under, so a server runs
 * only the functions it registered itself (fq_func_register()). Whoever
 * has the key can run any of them: keep the key secret, and the server on
 * loopback (the default) unless you mean it. See docs/remote.md.
 */
typedef struct fq_server fq_server;

/* Server options. Zero-initialise; every zero field is the default. */
typedef struct fq_server_options {
    /* Address to listen on (a name, an IPv4 or IPv6 address). NULL:
     * "127.0.0.1", this machine only. */
    const char *addr;
    /* Port. 0: any free port (fq_server_port() tells which). */
    int port;
    /* The shared key, key_len bytes. NULL: $FORKQUEUE_AUTHKEY, else the
     * per-user key file (created if missing; see docs/remote.md). The
     * server refuses to start without a key (FQ_EAUTH). */
    const void *key;
    size_t key_len;
    /* Milliseconds a connection has to authenticate and send its request;
     * silent, slow or garbage-sending connections are dropped then. 0:
     * 5000. */
    int handshake_timeout_ms;
    /* Connections authenticating at once; more are closed at once. 0:
     * 512. */
    int max_pending;
    /* Runs in each worker process before its first job, as
     * fq_options.init; udata is passed to it and to jobs (fq_ctx_udata()).
     * A failing init fails the client's jobs with FQ_EINIT. */
    fq_init_fn init;
    void *udata;
    /* 0: silent. 1: connections, workers, refusals on stderr. 2: more. */
    int verbose;
    /* Where fq_server_new() writes why it failed (may be NULL). */
    char *errbuf;
    size_t errbuf_size;
    /* Since 0.2.0. TLS: the server's certificate chain (PEM file) and its
     * private key (PEM file; NULL: in tls_cert's file). With tls_cert set,
     * every connection must speak TLS (1.2 or later) first, and the key
     * exchange and the jobs then travel inside it; NULL: no TLS. */
    const char *tls_cert;
    const char *tls_key;
} fq_server_options;

/*
 * Creates a server listening on addr:port. o may be NULL. Errors:
 * FQ_EINVAL (bad option or address), FQ_EAUTH (no key, or a key file that
 * others can read), FQ_ESYS (address in use: errno tells), FQ_ENOMEM.
 */
int fq_server_new(fq_server **s, const fq_server_options *o);

/* The port the server listens on, or FQ_EINVAL. */
int fq_server_port(const fq_server *s);

/*
 * Serves connections in the calling thread until fq_server_stop(), then
 * stops every worker (SIGTERM to its jobs' processes, SIGKILL a second
 * later) and reaps them. Returns 0, or FQ_EINVAL, FQ_EBUSY (already
 * running), FQ_ESYS. Returns at once if fq_server_stop() came first.
 */
int fq_server_run(fq_server *s);

/* Makes fq_server_run() return. Async-signal-safe and thread-safe: call it
 * from a signal handler or another thread. Returns 0 or FQ_EINVAL. */
int fq_server_stop(fq_server *s);

/* Closes the socket and frees the server (after fq_server_run() returned,
 * or if it never ran). NULL is fine. */
void fq_server_free(fq_server *s);

/* Options of fq_queue_add_remote(). Zero-initialise. */
typedef struct fq_remote_options {
    /* The shared key, key_len bytes. NULL: $FORKQUEUE_AUTHKEY, else the
     * per-user key file. */
    const void *key;
    size_t key_len;
    /* Milliseconds to connect, authenticate and get the worker. 0: 5000. */
    int connect_timeout_ms;
    /* FQ_REMOTE_REPLACE_LOCAL: the remote worker takes the place of a
     * local one (which retires once its jobs are done), and a local worker
     * takes its place again if it ends. Without it, the remote worker is
     * one more, and the queue has one fewer when it ends. */
    unsigned flags;
    /* Where a failure's reason is written (may be NULL). */
    char *errbuf;
    size_t errbuf_size;
    /* Since 0.2.0. Non-zero: speak TLS to a server started with a
     * certificate (fq_server_options.tls_cert), verifying it: its
     * certificate must be signed by a CA of tls_ca_file (PEM; NULL: the
     * system's trust store) and name tls_server_name (NULL: the host of
     * addr). Setting tls_ca_file or tls_insecure turns TLS on too. */
    int tls;
    const char *tls_ca_file;
    const char *tls_server_name;
    /* UNSAFE, for tests with self-signed certificates only: non-zero
     * accepts any certificate, so anyone on the path can pose as the
     * server, relay the key exchange, and then read and change what
     * travels, jobs and results included. */
    int tls_insecure;
} fq_remote_options;

/*
 * Adds to q one worker that runs on the worker server at addr ("host:port",
 * "[v6addr]:port"; port 60006 when absent): connects, authenticates, and
 * asks the server for a worker, waiting up to connect_timeout_ms. Call it
 * once per remote worker wanted; local and remote workers of a queue share
 * its jobs (with FQ_REMOTE_REPLACE_LOCAL, remote workers take the places of
 * local ones: a queue of remote workers only, with local ones as
 * fallback). From this call on the queue's jobs name their functions by
 * registered id, so every job function must be registered with
 * fq_func_register() under the same name here and in the server
 * (fq_submit() returns FQ_ENOFUNC otherwise). A remote worker that ends
 * (its server died, the connection dropped, a time limit or fq_cancel()
 * stopped it) is not replaced (but by a local worker with
 * FQ_REMOTE_REPLACE_LOCAL): the job it was running ends with
 * FQ_ECRASHED and a message naming the server, the jobs it had not
 * started go to the other workers. o may be NULL. Errors: FQ_EINVAL,
 * FQ_ECLOSED (connection refused), FQ_ETIMEDOUT, FQ_EAUTH (wrong key, or
 * none), FQ_EPROTO (not a C worker server, or it refused), FQ_EBUSY (jobs
 * submitted before, by address, have no outcome yet), FQ_EFINISHED,
 * FQ_EINIT, FQ_ENOMEM, FQ_ESYS.
 */
int fq_queue_add_remote(fq_queue q, const char *addr,
                        const fq_remote_options *o);
#define FQ_REMOTE_REPLACE_LOCAL 0x1u

#ifdef __cplusplus
}
#endif

#endif /* FORKQUEUE_H */
