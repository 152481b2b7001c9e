/*
 * Worker lifecycle: forking a worker with clean process hygiene, the loop a
 * worker runs, and the job context API used inside jobs.
 *
 * Fork follows git's run-command and musl's posix_spawn: all signals are
 * blocked around fork() so that no handler of the parent runs in the child
 * before dispositions are reset; the child then closes every channel it
 * inherited except its own, joins a process group of its own, asks to be
 * killed with its parent, and only then runs user code. A worker never
 * returns into the caller's stack: it ends with _exit().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <stdio_ext.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "channel/chan_public.h"
#include "worker/worker.h"

/* ---- Parent side ------------------------------------------------------- */

int fq__worker_spawn(fq__wenv *q, fq__worker **wp)
{
    int fds[2];
    sigset_t all, old;
    fq__worker *w = calloc(1, sizeof(*w));

    if (!w)
        return FQ_ENOMEM;
    /* The process kind, or a variant of it (worker/wire_kind.c). */
    w->ops = q->kind->start == fq__worker_spawn ? q->kind : &fq__process_ops;
    w->fd = w->pidfd = -1;
    w->avg_run_ns = -1;
    fq__rbuf_init(&w->rb);
    w->stat = mmap(NULL, FQ__WSTAT_SIZE, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w->stat == MAP_FAILED) {
        q->fork_errno = errno;
        free(w);
        return FQ_ENOMEM;
    }
    w->stat->max_rss = q->opts.max_rss;
    pid_t parent = getpid();
    if (q->opts.hooks.prepare)
        q->opts.hooks.prepare(q->opts.hook_arg);
    /* Held from the channel's creation to the end of the fork: see
     * fq__fds_lock(). */
    fq__fds_lock();
    int rc = fq__channel_pair(fds);
    if (rc == 0 && (fq__fds_add_locked(fds[0]) || fq__fds_add_locked(fds[1]))) {
        fq__fds_close_locked(fds[0]);
        fq__fds_close_locked(fds[1]);
        errno = ENOMEM;
        rc = FQ_ENOMEM;
    }
    if (rc) {
        q->fork_errno = errno;
        fq__fds_unlock();
        if (q->opts.hooks.parent)
            q->opts.hooks.parent(q->opts.hook_arg);
        munmap(w->stat, FQ__WSTAT_SIZE);
        free(w);
        return rc;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        fq__worker_child_setup(q, fds[0], fds[1], parent, &old);
        fq__worker_main(q, w, fds[1]);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fq__fds_close_locked(fds[1]);
    if (pid < 0) {
        fq__fds_close_locked(fds[0]);
        fq__fds_unlock();
        if (q->opts.hooks.parent)
            q->opts.hooks.parent(q->opts.hook_arg);
        munmap(w->stat, FQ__WSTAT_SIZE);
        free(w);
        q->fork_errno = fork_errno;
        return FQ_EFORK;
    }
    w->pid = pid;
    w->fd = fds[0];
    w->pidfd = fq__pidfd_open(pid);
    if (w->pidfd >= 0 && fq__fds_add_locked(w->pidfd) < 0) {
        close(w->pidfd);
        w->pidfd = -1;
    }
    fq__fds_unlock();
    if (q->opts.hooks.parent)
        q->opts.hooks.parent(q->opts.hook_arg);
    setpgid(pid, pid); /* also done by the child; whoever runs first wins */
    *wp = w;
    return 0;
}

static int signal_worker(fq__worker *w, int sig)
{
    /* Through the pidfd, a signal can never reach a process that reused
     * the pid of a worker the host reaped. */
    if (w->pidfd >= 0)
        return fq__pidfd_signal(w->pidfd, sig);
    return kill(w->pid, sig);
}

/* 0 when the worker was reaped by someone else (the host): its pid, and so
 * its group id, may belong to another process by now. */
static int still_ours(const fq__worker *w)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 ||
           errno != ECHILD;
}

void fq__worker_kill(fq__worker *w, int sig)
{
    if (!still_ours(w)) {
        w->flags |= sig == SIGKILL ? FQ__W_KILLED : 0;
        w->hard_kill_at = 0;
        return;
    }
    if (sig == SIGKILL) {
#ifdef __linux__
        /* The worker kills every process its jobs started, then itself
         * (see kill_descendants()); the group gets SIGKILL from the loop
         * if it has not ended a moment later. */
        if (!(w->flags & FQ__W_KILLED) &&
            signal_worker(w, FQ__SIG_CLEANUP) == 0) {
            w->flags |= FQ__W_KILLED;
            w->hard_kill_at = fq__now_ns() + FQ__HARD_KILL_NS;
            return;
        }
#endif
        w->flags |= FQ__W_KILLED;
        w->hard_kill_at = 0;
    }
    /* The whole process group: a job's own children go too. Fall back to
     * the pid in case the group was never formed. */
    if (kill(-w->pid, sig) < 0)
        signal_worker(w, sig);
}

void fq__worker_terminate(fq__worker *w, int grace_ms)
{
#ifdef __linux__
    /* The worker sends the SIGTERM itself, also to the processes its jobs
     * moved out of its group, and kills what is left after the grace. */
    if (still_ours(w)) {
        union sigval v;
        v.sival_int = (grace_ms < INT32_MAX - 1 ? grace_ms : INT32_MAX - 1) + 1;
        if (sigqueue(w->pid, FQ__SIG_CLEANUP, v) == 0)
            return;
    }
#endif
    fq__worker_kill(w, SIGTERM);
}

void fq__worker_kill_group(fq__worker *w)
{
    w->hard_kill_at = 0;
    if (!still_ours(w))
        return;
    if (kill(-w->pid, SIGKILL) < 0)
        signal_worker(w, SIGKILL);
}

void fq__worker_free(fq__worker *w)
{
    fq__fds_lock();
    fq__fds_close_locked(w->fd);
    fq__fds_close_locked(w->pidfd);
    fq__fds_unlock();
    fq__rbuf_free(&w->rb);
    free(w->direct_buf);
    munmap(w->stat, FQ__WSTAT_SIZE);
    free(w);
}

static const char *signame(int s)
{
    switch (s) {
#define S(x)                                                                   \
    case x:                                                                    \
        return #x
        S(SIGHUP);
        S(SIGINT);
        S(SIGQUIT);
        S(SIGILL);
        S(SIGTRAP);
        S(SIGABRT);
        S(SIGBUS);
        S(SIGFPE);
        S(SIGKILL);
        S(SIGUSR1);
        S(SIGSEGV);
        S(SIGUSR2);
        S(SIGPIPE);
        S(SIGALRM);
        S(SIGTERM);
        S(SIGCHLD);
        S(SIGCONT);
        S(SIGSTOP);
        S(SIGTSTP);
        S(SIGTTIN);
        S(SIGTTOU);
        S(SIGURG);
        S(SIGXCPU);
        S(SIGXFSZ);
        S(SIGVTALRM);
        S(SIGPROF);
        S(SIGSYS);
#undef S
    }
    return "unknown signal";
}

void fq__describe_exit(char *buf, size_t n, pid_t pid, int signo,
                       int exit_status)
{
    if (signo)
        snprintf(buf, n, "worker %ld killed by signal %d (%s)", (long)pid,
                 signo, signame(signo));
    else if (exit_status >= 0)
        snprintf(buf, n, "worker %ld exited with status %d", (long)pid,
                 exit_status);
    else
        snprintf(buf, n, "worker %ld died (exit status not available)",
                 (long)pid);
}

/* ---- The process kind's table ------------------------------------------ */

static int proc_exit_fd(const fq__worker *w)
{
    return w->pidfd;
}

/* Whether the worker has exited: 1 (still ours to reap: a zombie), 0
 * (alive), -1 (gone: the host reaped it). Nothing is reaped. */
static int proc_exited(fq__worker *w)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno == EINTR ? 0 : -1;
    return si.si_pid == w->pid ? 1 : 0;
}

/* Processes a job left in the worker's process group end with it. While
 * the worker is an unreaped zombie its pid, and so its group id, cannot be
 * reused: the signal reaches that group only. Then the worker is reaped. */
static int proc_reap(fq__worker *w, int *wstatus)
{
    *wstatus = 0;
    if (proc_exited(w) == 1)
        kill(-w->pid, SIGKILL);
    for (;;) {
        pid_t r = waitpid(w->pid, wstatus, 0);
        if (r == w->pid)
            return 1;
        if (r < 0 && errno == EINTR)
            continue;
        return 0; /* ECHILD: the host reaped it or ignores SIGCHLD */
    }
}

static void proc_await_exit(fq__worker *w, int64_t until)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
            errno != EINTR)
            return; /* the host reaped it */
        if (si.si_pid == w->pid)
            return;
        int64_t left = until - fq__now_ns();
        if (left <= 0)
            return;
        if (w->pidfd >= 0) {
            struct pollfd p = {w->pidfd, POLLIN, 0};
            poll(&p, 1, (int)((left + 999999) / 1000000));
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

size_t fq__page_held_output(fq__worker *w, const unsigned char **p)
{
    *p = w->stat->out;
    return (size_t)atomic_load(&w->stat->committed);
}

static void proc_describe_exit(const fq__worker *w, char *buf, size_t n,
                               int signo, int exit_status)
{
    fq__describe_exit(buf, n, w->pid, signo, exit_status);
}

const fq__worker_ops fq__process_ops = {
    .name = "process",
    .start = fq__worker_spawn,
    .signal = fq__worker_kill,
    .terminate = fq__worker_terminate,
    .kill_all = fq__worker_kill_group,
    .exit_fd = proc_exit_fd,
    .exited = proc_exited,
    .reap = proc_reap,
    .await_exit = proc_await_exit,
    .held_output = fq__page_held_output,
    .describe_exit = proc_describe_exit,
    .free = fq__worker_free,
};
