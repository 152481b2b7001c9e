/*
 * forkqueue: The loop object (since 0.2.0).
 *
 * Part of the public API; include <forkqueue.h>, which includes this file
 * after the declarations it relies on.
 */
#ifndef FORKQUEUE_LOOP_H
#define FORKQUEUE_LOOP_H

#ifndef FORKQUEUE_H
#error "include <forkqueue.h>, not <fq/loop.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif /* FORKQUEUE_LOOP_H */
