/*
 * The hygiene of a forked child and the tracking of a worker's process
 * tree (see process.c for the fork itself).
 */
#include <errno.h>
#include <fcntl.h>
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

/* ---- A worker's process tree ------------------------------------------ */

/*
 * Every process a job starts must end no later than its worker. A worker is
 * a child subreaper (Linux), so a process a job started that is orphaned
 * (its parent exited, after setsid() or daemon() or not) is adopted by the
 * worker instead of init, and stays its descendant. Before a worker ends on
 * its own (end of file from the parent: fq_finish(), retirement, re-fork,
 * the parent gone), and when the parent asks it to end (time limits,
 * fq_queue_free(), protocol errors) or dies (the parent-death signal), the
 * worker kills its children with SIGKILL and reaps them, round after round,
 * until none is left: each round's orphans are the next round's children.
 *
 * Everything here is async-signal-safe (it also runs in a signal handler,
 * interrupting a job): no stdio, no malloc.
 */
static int tree_tracked; /* subreaper set and the children file readable */

static char *fmt_uint(char *p, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Reads the pids of this process's children (one thread's list: a worker
 * forks from its only thread, and orphans go to the thread group leader).
 * Returns how many, or -1. */
static int read_children(pid_t *out, int max)
{
    char path[64] = "/proc/self/task/", *p;
    char buf[4096];
    p = fmt_uint(path + 16, (unsigned long)getpid());
    memcpy(p, "/children", 10);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int n = 0;
    unsigned long cur = 0;
    int in = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                cur = cur * 10 + (unsigned long)(buf[i] - '0');
                in = 1;
            } else if (in) {
                if (n < max)
                    out[n++] = (pid_t)cur;
                cur = 0;
                in = 0;
            }
        }
    }
    if (in && n < max)
        out[n++] = (pid_t)cur;
    close(fd);
    return n;
}

void fq__kill_descendants(void)
{
    pid_t kids[256];

    if (!tree_tracked) {
        /* No subreaper or no children list: what stayed in the worker's
         * process group at least, the worker included. */
        kill(0, SIGKILL);
        return;
    }
    for (int round = 0; round < 10000; round++) {
        int n = read_children(kids, 256);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++)
            kill(kids[i], SIGKILL);
        for (int i = 0; i < n; i++)
            while (waitpid(kids[i], NULL, __WALL) < 0 && errno == EINTR)
                ;
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* fq_cancel(): SIGTERM to the worker's group (the worker's own stays
 * pending, blocked while this handler runs) and to the processes it
 * adopted, up to grace_ms for them to end, then SIGKILL to what is left.
 * When the handler returns, the pending SIGTERM takes its course in the
 * worker as if the parent had sent it: the default action ends it, or the
 * job's own handler runs. */
static void terminate_gently(int grace_ms)
{
    pid_t kids[256];
    kill(0, SIGTERM);
    int n = tree_tracked ? read_children(kids, 256) : 0;
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGTERM);
    for (int waited = 0; tree_tracked && waited < grace_ms; waited += 5) {
        while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
            ;
        if (read_children(kids, 1) <= 0)
            break;
        sleep_ms(5);
    }
    fq__kill_descendants();
}

static void cleanup_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if (si && si->si_code == SI_QUEUE && si->si_value.sival_int > 0 &&
        getppid() == si->si_pid) {
        /* The job goes on if it handles SIGTERM: keep its errno. */
        int saved = errno;
        terminate_gently(si->si_value.sival_int - 1);
        errno = saved;
        return;
    }
    fq__kill_descendants();
    kill(getpid(), SIGKILL);
}

/* Ends a worker: its jobs' processes first. */
void fq__worker_exit(int status)
{
    fq__kill_descendants();
    _exit(status);
}

void fq__worker_child_setup(fq__wenv *q, int parent_end, int own_end,
                            pid_t parent, const sigset_t *oldmask)
{
    fq__child_hygiene_keep(parent_end, own_end, parent);
    fq__worker_tree_setup(parent);
    if (q->opts.hooks.child)
        q->opts.hooks.child(q->opts.hook_arg);
    pthread_sigmask(SIG_SETMASK, oldmask, NULL);
}

void fq__worker_tree_setup(pid_t parent)
{
#ifdef __linux__
    /* A worker also tracks its jobs' process trees (see above): it adopts
     * their orphans and, on its parent's death, kills them before itself. */
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = cleanup_handler;
        sa.sa_flags = SA_SIGINFO;
        sigfillset(&sa.sa_mask);
        sigaction(FQ__SIG_CLEANUP, &sa, NULL);
        pid_t probe[1];
        tree_tracked = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 &&
                       read_children(probe, 1) >= 0;
        prctl(PR_SET_PDEATHSIG, FQ__SIG_CLEANUP);
    }
    if (getppid() != parent)
        _exit(FQ__EXIT_IO);
#else
    (void)parent;
#endif
}
