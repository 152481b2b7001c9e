/*
 * forkqueue: Channels, exchanges and shared memory blocks (since 0.2.0).
 *
 * Part of the public API; include <forkqueue.h>, which includes this file
 * after the declarations it relies on.
 */
#ifndef FORKQUEUE_CHANNEL_H
#define FORKQUEUE_CHANNEL_H

#ifndef FORKQUEUE_H
#error "include <forkqueue.h>, not <fq/channel.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif /* FORKQUEUE_CHANNEL_H */
