/*
 * The thread kind (fq__thread_ops): each worker is a thread of the caller's
 * process, talking to the parent over a socketpair with the same frames as a
 * forked worker, and running the same loop (main.c).
 *
 * What it gives up: isolation. A job that crashes takes the process down, and
 * a job cannot be killed: cancellation is cooperative. When a job passes its
 * time limit, or fq_cancel() or fq_queue_free() stops its worker, the worker
 * is abandoned: its cancel flag is set (fq_ctx_cancelled() sees it), its
 * exit descriptor becomes readable, and the queue settles its jobs at once
 * (FQ_ETIMEDOUT, FQ_ECANCELED) and starts a new thread if needed. The old
 * thread runs until its job returns; what it replies then is discarded and
 * it ends. A thread that never returns stays behind, detached.
 *
 * What the thread uses (its end of the channel, its status page, its exit
 * descriptor) is in a block shared by the parent and the thread with a
 * reference count: whichever lets go last frees it, so freeing the queue
 * never waits for a stuck thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/worker.h"

typedef struct tshared {
    _Atomic int refs;   /* the parent's and the thread's */
    _Atomic int cancel; /* set by the parent: the worker is abandoned */
    _Atomic int ended;  /* the thread's loop returned */
    _Atomic int status; /* its exit status, once ended */
    int fd;             /* the thread's end of the channel */
    int exit_rd, exit_wr;
    int abandon_sig; /* parent only: signal it was abandoned with, 0: none */
    fq_init_fn init;
    void *udata;
    fq__wstat *stat;
    fq__thread_io tio;
} tshared;

static void release(tshared *sh)
{
    if (atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    fq__fds_lock();
    fq__fds_close_locked(sh->fd);
    fq__fds_close_locked(sh->exit_rd);
    fq__fds_close_locked(sh->exit_wr);
    fq__fds_unlock();
    free(sh->stat);
    free(sh);
}

static void notify_exit(tshared *sh)
{
    char b = 1;
    ssize_t r;
    do
        r = write(sh->exit_wr, &b, 1);
    while (r < 0 && errno == EINTR); /* EAGAIN: already readable */
}

static void *thread_main(void *arg)
{
    tshared *sh = arg;
    int st = fq__worker_loop(sh->init, sh->udata, sh->stat, sh->fd, &sh->tio);
    /* The parent may still read what was sent: only the write side goes
     * now; the descriptor is closed with the block. */
    shutdown(sh->fd, SHUT_WR);
    atomic_store(&sh->status, st);
    atomic_store(&sh->ended, 1);
    notify_exit(sh);
    release(sh);
    return NULL;
}

static int thread_start(fq__wenv *q, fq__worker **wp)
{
    int ch[2], ex[2];
    fq__worker *w = calloc(1, sizeof(*w));
    tshared *sh = calloc(1, sizeof(*sh));
    fq__wstat *stat = calloc(1, FQ__WSTAT_SIZE);

    if (!w || !sh || !stat) {
        free(w);
        free(sh);
        free(stat);
        return FQ_ENOMEM;
    }
    fq__fds_lock();
    int rc = fq__channel_pair(ch);
    if (rc == 0 && pipe2(ex, O_CLOEXEC | O_NONBLOCK) < 0) {
        fq__fds_close_locked(ch[0]);
        fq__fds_close_locked(ch[1]);
        rc = FQ_ENOMEM;
    }
    if (rc == 0 && (fq__fds_add_locked(ch[0]) || fq__fds_add_locked(ch[1]) ||
                    fq__fds_add_locked(ex[0]) || fq__fds_add_locked(ex[1]))) {
        fq__fds_close_locked(ch[0]);
        fq__fds_close_locked(ch[1]);
        fq__fds_close_locked(ex[0]);
        fq__fds_close_locked(ex[1]);
        rc = FQ_ENOMEM;
    }
    fq__fds_unlock();
    if (rc) {
        q->fork_errno = errno;
        free(w);
        free(sh);
        free(stat);
        return rc;
    }
    atomic_init(&sh->refs, 2);
    sh->fd = ch[1];
    sh->exit_rd = ex[0];
    sh->exit_wr = ex[1];
    sh->init = q->opts.init;
    sh->udata = q->opts.udata;
    sh->stat = stat;
    sh->tio.cancel = &sh->cancel;

    w->ops = &fq__thread_ops;
    w->kind_data = sh;
    w->pid = getpid();
    w->fd = ch[0];
    w->pidfd = -1;
    w->avg_run_ns = -1;
    w->stat = stat;
    fq__rbuf_init(&w->rb);

    /* The thread blocks every signal: the host's handlers run in its own
     * threads, as before. */
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&t, &attr, thread_main, sh);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (e) {
        q->fork_errno = e;
        atomic_store(&sh->refs, 1);
        release(sh); /* closes the descriptors, frees stat */
        fq__fds_close(w->fd);
        free(w);
        return FQ_EFORK;
    }
    *wp = w;
    return 0;
}

/* Abandons the worker: its job is cancelled, and the queue sees it as ended
 * from now on. */
static void thread_abandon(fq__worker *w, int sig)
{
    tshared *sh = w->kind_data;
    if (sh->abandon_sig)
        return;
    sh->abandon_sig = sig;
    w->flags |= FQ__W_KILLED;
    w->hard_kill_at = 0;
    atomic_store(&sh->cancel, 1);
    /* The queue now gives the jobs it sent and the thread did not start
     * to other workers: take them back, so that the thread, which may
     * still be between two jobs, never starts one of them too. They are
     * among the sequence numbers from the first job not finished to the
     * last one given (the others there were taken back already: their
     * claims say so again). */
    uint64_t from = atomic_load(&w->stat->done);
    for (uint64_t s = from; s < w->next_wseq && s - from < FQ__RING; s++)
        atomic_exchange(&w->stat->claim[s % FQ__RING], FQ__CLAIM_REVOKED(s));
    /* An idle thread reads EOF and ends; a busy one ends after its job. */
    shutdown(w->fd, SHUT_WR);
    notify_exit(sh);
}

static void thread_signal(fq__worker *w, int sig)
{
    if (sig != 0)
        thread_abandon(w, sig);
}

static void thread_terminate(fq__worker *w, int grace_ms)
{
    (void)grace_ms; /* nothing to wait for: the outcome is given now */
    thread_abandon(w, SIGTERM);
}

static void thread_kill_all(fq__worker *w)
{
    thread_abandon(w, SIGKILL);
}

static int thread_exit_fd(const fq__worker *w)
{
    return ((const tshared *)w->kind_data)->exit_rd;
}

static int thread_exited(fq__worker *w)
{
    tshared *sh = w->kind_data;
    return sh->abandon_sig || atomic_load(&sh->ended) ? 1 : 0;
}

static void thread_await_exit(fq__worker *w, int64_t until)
{
    tshared *sh = w->kind_data;
    while (!thread_exited(w)) {
        int64_t left = until - fq__now_ns();
        if (left <= 0)
            return;
        struct pollfd p = {sh->exit_rd, POLLIN, 0};
        poll(&p, 1, (int)((left + 999999) / 1000000));
    }
}

static int thread_reap(fq__worker *w, int *wstatus)
{
    tshared *sh = w->kind_data;
    while (!thread_exited(w)) {
        struct pollfd p = {sh->exit_rd, POLLIN, 0};
        poll(&p, 1, -1);
    }
    if (sh->abandon_sig)
        *wstatus = sh->abandon_sig & 0x7f; /* as if killed by it */
    else
        *wstatus = (atomic_load(&sh->status) & 0xff) << 8;
    return 1;
}

static size_t thread_held_output(fq__worker *w, const unsigned char **p)
{
    /* A thread sends every frame at once: nothing is held. */
    *p = w->stat->out;
    return 0;
}

static void thread_describe_exit(const fq__worker *w, char *buf, size_t n,
                                 int signo, int exit_status)
{
    (void)w;
    if (signo)
        snprintf(buf, n, "worker thread cancelled (signal %d)", signo);
    else
        snprintf(buf, n, "worker thread ended with status %d", exit_status);
}

static void thread_free(fq__worker *w)
{
    tshared *sh = w->kind_data;
    /* A thread still running a job finds its channel closed and ends. */
    atomic_store(&sh->cancel, 1);
    fq__fds_close(w->fd);
    fq__rbuf_free(&w->rb);
    free(w->direct_buf);
    release(sh);
    free(w);
}

const fq__worker_ops fq__thread_ops = {
    .name = "thread",
    .start = thread_start,
    .signal = thread_signal,
    .terminate = thread_terminate,
    .kill_all = thread_kill_all,
    .exit_fd = thread_exit_fd,
    .exited = thread_exited,
    .reap = thread_reap,
    .await_exit = thread_await_exit,
    .held_output = thread_held_output,
    .describe_exit = thread_describe_exit,
    .free = thread_free,
};
