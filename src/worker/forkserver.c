/*
 * The fork server: a worker kind (fq__forkserver_ops) whose workers are
 * forked by a helper process instead of by the thread that drives the
 * queue.
 *
 * Why: fork() copies only the calling thread. A lock another thread of the
 * host held at that moment (in malloc, stdio, a logger, the host's own
 * mutexes) stays locked forever in the child. The helper is forked once,
 * early (fq_forkserver_start() at the top of main(), before any thread),
 * and stays single-threaded: every worker it forks starts from a process in
 * which no lock was held by anyone else.
 *
 * The price: a worker is a copy of the helper, so it sees the caller's
 * memory as it was when the helper started, not as it is now (see
 * docs/design.md, "The fork server").
 *
 * How: the caller and the helper share one SOCK_SEQPACKET socketpair (the
 * control socket). Every exchange is one request and one reply, under a
 * process-wide lock, with a deadline (a helper that does not answer within
 * FS_REPLY_MS is killed: never a hang):
 *
 *   SPAWN    the worker's end of its channel and its status page (a memfd)
 *            travel with SCM_RIGHTS, with init, udata and the child hook
 *            (addresses: the helper is a fork of the caller, so code has the
 *            same addresses); the helper forks, the worker maps its page and
 *            runs the same setup and loop as a forked-process worker. Reply:
 *            the pid. The caller opens a pidfd on it (pidfd_open works on
 *            any process, not only children) to watch for its end.
 *   REAP     the helper kills what is left of the worker's process group
 *            and reaps it (it is its parent), and relays the wait status.
 *   PEEK     has the worker exited? (where there is no pidfd)
 *   SIGQUEUE fq_cancel()'s graceful request, which a worker accepts only
 *            from its parent.
 *
 * The helper reaps a worker only when asked: until then the worker's pid,
 * and so its process-group id, cannot be reused, so the caller may signal
 * the group directly, as it does for its own children.
 *
 * Lifetimes: the helper exits when its control socket reaches end of file
 * (the caller closed it, or died: the kernel closes its descriptors) or
 * when its parent changes (checked every second); its workers then get
 * their parent-death signal and end with their jobs' processes. A helper
 * that dies is never restarted behind the program's back: the queue's
 * workers end with it, their jobs get outcomes, and starting workers fails
 * with FQ_EFORK until the program calls fq_forkserver_start() again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
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
#include "worker/forkserver.h"
#include "worker/worker.h"

#define FQ__EXPORT __attribute__((visibility("default")))

/* How long the caller waits for any reply (a fork of the helper included)
 * before it takes the helper for hung and kills it. */
#define FS_REPLY_MS 10000
/* How long reap() waits for a worker that was asked to end. */
#define FS_REAP_MS 5000

/* ---- The caller's side of the control socket --------------------------- */

enum { FS_NONE = 0, FS_RUNNING, FS_DEAD };

static pthread_mutex_t fs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fs_once = PTHREAD_ONCE_INIT;
static int fs_state;
static int fs_fd = -1;
static pid_t fs_pid, fs_owner, fs_dead_pid;
static unsigned fs_gen; /* bumped by each start: which helper forked whom */

/* A fork of this process (a worker, or the host's own fork()) does not own
 * the helper: it forgets it (its copy of the control socket is closed by
 * the hygiene of the library's children) and may start its own. */
static void fs_atfork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    fs_lock = fresh;
    fs_state = FS_NONE;
    fs_fd = -1;
    fs_pid = fs_owner = fs_dead_pid = 0;
}

static void fs_setup(void)
{
    pthread_atfork(NULL, NULL, fs_atfork_child);
}

/* The helper is gone or hung: make sure it is dead and reaped, and
 * remember that it died. */
static void fs_died_locked(void)
{
    if (fs_state != FS_RUNNING)
        return;
    fq__fds_close(fs_fd);
    fs_fd = -1;
    /* Only while it is still our child (alive, or a zombie): a host that
     * reaps with waitpid(-1), or ignores SIGCHLD, may have collected it,
     * and its pid may belong to another process by now. */
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)fs_pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
        kill(fs_pid, SIGKILL);
        while (waitpid(fs_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    fs_dead_pid = fs_pid;
    fs_pid = 0;
    fs_state = FS_DEAD;
}

static int fs_start_locked(void)
{
    int sv[2];
    sigset_t all, old;

    if (fs_state == FS_RUNNING)
        return 0;
    pid_t parent = getpid();
    fq__fds_lock();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        fq__fds_unlock();
        return FQ_ESYS;
    }
    if (fq__fds_add_locked(sv[0]) || fq__fds_add_locked(sv[1])) {
        fq__fds_close_locked(sv[0]);
        fq__fds_close_locked(sv[1]);
        fq__fds_unlock();
        return FQ_ENOMEM;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* The hygiene of every child (own process group, so a terminal's
         * Ctrl-C does not reach it; no other queue's descriptors), but no
         * parent-death signal: it would follow the thread that called
         * this, not the process. End of file and getppid() tell instead. */
        fq__child_hygiene_keep(sv[0], sv[1], parent);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, 0);
#endif
        sigprocmask(SIG_SETMASK, &old, NULL);
        fq__forkserver_helper_main(sv[1], parent);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fq__fds_close_locked(sv[1]);
    if (pid < 0) {
        fq__fds_close_locked(sv[0]);
        fq__fds_unlock();
        errno = e;
        return FQ_EFORK;
    }
    fq__fds_unlock();
    setpgid(pid, pid);
    fs_fd = sv[0];
    fs_pid = pid;
    fs_owner = parent;
    fs_state = FS_RUNNING;
    fs_gen++;
    return 0;
}

static void fs_lock_owned(void)
{
    pthread_once(&fs_once, fs_setup);
    pthread_mutex_lock(&fs_lock);
}

/* One request and its reply. Returns 0, or FQ_EFORK when the helper is
 * gone (or did not answer in time, and was killed for it). */
static int fs_call_locked(const fs_req *rq, const int *fds, int nfd,
                          fs_rep *rep)
{
    if (fs_state != FS_RUNNING)
        return FQ_EFORK;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } cm;
    struct iovec iov = {(void *)rq, sizeof(*rq)};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    memset(&cm, 0, sizeof(cm));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfd > 0) {
        mh.msg_control = cm.b;
        mh.msg_controllen = CMSG_SPACE((size_t)nfd * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfd * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(fs_fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(*rq)) {
        fs_died_locked();
        return FQ_EFORK;
    }
    int64_t until = fq__now_ns() + (int64_t)FS_REPLY_MS * 1000000;
    for (;;) {
        int64_t left = (until - fq__now_ns()) / 1000000;
        if (left < 0)
            left = 0;
        struct pollfd p = {fs_fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fs_died_locked(); /* hung (stopped?): never a hang here */
            return FQ_EFORK;
        }
        do
            n = recv(fs_fd, rep, sizeof(*rep), 0);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(*rep))
            return 0;
        fs_died_locked(); /* end of file: it died */
        return FQ_EFORK;
    }
}

static int fs_call(const fs_req *rq, fs_rep *rep, unsigned gen)
{
    fs_lock_owned();
    int rc = gen == fs_gen ? fs_call_locked(rq, NULL, 0, rep) : FQ_EFORK;
    pthread_mutex_unlock(&fs_lock);
    return rc;
}

/* Whether the helper that forked a worker of generation gen still runs: only
 * then does it hold the worker's pid (a zombie included) for us. */
static int fs_holds(unsigned gen)
{
    int alive = 0;
    fs_lock_owned();
    if (fs_state == FS_RUNNING && gen == fs_gen) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        alive = waitid(P_PID, (id_t)fs_pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
                    0 &&
                si.si_pid != fs_pid;
        if (!alive)
            fs_died_locked();
    }
    pthread_mutex_unlock(&fs_lock);
    return alive;
}

FQ__EXPORT int fq_forkserver_start(void)
{
    fs_lock_owned();
    if (fs_state == FS_DEAD)
        fs_state = FS_NONE; /* the program asks for a new one */
    int rc = fs_start_locked();
    pthread_mutex_unlock(&fs_lock);
    return rc;
}

FQ__EXPORT int fq_forkserver_stop(void)
{
    fs_lock_owned();
    if (fs_state == FS_RUNNING) {
        /* End of file ends it; a helper that does not go within a second
         * (stopped, say) is killed. */
        pid_t pid = fs_pid;
        fq__fds_close(fs_fd);
        fs_fd = -1;
        int64_t until = fq__now_ns() + INT64_C(1000000000);
        for (;;) {
            pid_t r = waitpid(pid, NULL, WNOHANG);
            if (r == pid || (r < 0 && errno != EINTR))
                break;
            if (fq__now_ns() >= until) {
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                    ;
                break;
            }
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        fs_pid = 0;
        fs_state = FS_NONE;
    } else if (fs_state == FS_DEAD) {
        fs_state = FS_NONE;
    }
    pthread_mutex_unlock(&fs_lock);
    return 0;
}

FQ__EXPORT pid_t fq_forkserver_pid(void)
{
    fs_lock_owned();
    if (fs_state == FS_RUNNING) {
        /* A helper that died is reaped and reported as gone. */
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)fs_pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
            si.si_pid == fs_pid)
            fs_died_locked();
    }
    pid_t p = fs_state == FS_RUNNING ? fs_pid : 0;
    pthread_mutex_unlock(&fs_lock);
    return p;
}

/* ---- The kind's table -------------------------------------------------- */

static unsigned gen_of(const fq__worker *w)
{
    return (unsigned)(uintptr_t)w->kind_data;
}

static int fs_worker_start(fq__wenv *q, fq__worker **wp)
{
    int ch[2], page = -1;

    fs_lock_owned();
    /* Started on first use; never again behind the program's back once it
     * died (fq_forkserver_start() does that). */
    int rc = fs_state == FS_NONE ? fs_start_locked() : 0;
    unsigned gen = fs_gen;
    int state = fs_state;
    pid_t dead = fs_dead_pid;
    pthread_mutex_unlock(&fs_lock);
    if (rc || state != FS_RUNNING) {
        static _Thread_local char why[96];
        if (state == FS_DEAD)
            snprintf(why, sizeof(why),
                     "the fork server (pid %ld) is gone; "
                     "fq_forkserver_start() starts another",
                     (long)dead);
        else
            snprintf(why, sizeof(why), "could not start the fork server: %s",
                     strerror(errno));
        q->fork_why = why;
        q->fork_errno = ESRCH;
        return FQ_EFORK;
    }
    fq__worker *w = calloc(1, sizeof(*w));
    if (!w)
        return FQ_ENOMEM;
    w->ops = &fq__forkserver_ops;
    w->kind_data = (void *)(uintptr_t)gen;
    w->fd = w->pidfd = -1;
    w->avg_run_ns = -1;
    fq__rbuf_init(&w->rb);

    /* The channel and the page's memfd are registered at once, so a child
     * another thread forks meanwhile closes them. */
    fq__fds_lock();
    rc = fq__channel_pair(ch);
    if (rc == 0) {
        page = memfd_create("fq_worker", MFD_CLOEXEC);
        if (page < 0 || ftruncate(page, FQ__WSTAT_SIZE) < 0 ||
            fq__fds_add_locked(ch[0]) || fq__fds_add_locked(ch[1]) ||
            fq__fds_add_locked(page)) {
            q->fork_errno = errno;
            fq__fds_close_locked(ch[0]);
            fq__fds_close_locked(ch[1]);
            fq__fds_close_locked(page);
            rc = FQ_ESYS;
        }
    } else {
        q->fork_errno = errno;
    }
    fq__fds_unlock();
    if (rc == 0) {
        w->stat = mmap(NULL, FQ__WSTAT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                       page, 0);
        if (w->stat == MAP_FAILED) {
            q->fork_errno = errno;
            w->stat = NULL;
            fq__fds_lock();
            fq__fds_close_locked(ch[0]);
            fq__fds_close_locked(ch[1]);
            fq__fds_close_locked(page);
            fq__fds_unlock();
            rc = FQ_ENOMEM;
        }
    }
    if (rc) {
        free(w);
        return rc;
    }
    w->stat->max_rss = q->opts.max_rss;

    fs_req rq;
    fs_rep rep;
    memset(&rq, 0, sizeof(rq));
    memset(&rep, 0, sizeof(rep));
    rq.op = FS_SPAWN;
    rq.init = (uint64_t)(uintptr_t)q->opts.init;
    rq.udata = (uint64_t)(uintptr_t)q->opts.udata;
    rq.child = (uint64_t)(uintptr_t)q->opts.hooks.child;
    rq.hook_arg = (uint64_t)(uintptr_t)q->opts.hook_arg;
    int pass[2] = {ch[1], page};
    if (q->opts.hooks.prepare)
        q->opts.hooks.prepare(q->opts.hook_arg);
    fs_lock_owned();
    rc = gen == fs_gen ? fs_call_locked(&rq, pass, 2, &rep) : FQ_EFORK;
    pid_t dead_now = fs_dead_pid;
    pthread_mutex_unlock(&fs_lock);
    if (q->opts.hooks.parent)
        q->opts.hooks.parent(q->opts.hook_arg);
    fq__fds_lock();
    fq__fds_close_locked(ch[1]);
    fq__fds_close_locked(page);
    fq__fds_unlock();
    if (rc == 0 && (rep.err || rep.pid <= 0)) {
        q->fork_errno = rep.err ? rep.err : EPROTO;
        rc = FQ_EFORK;
    } else if (rc) {
        static _Thread_local char why[96];
        snprintf(why, sizeof(why),
                 "the fork server (pid %ld) died or did not answer",
                 (long)dead_now);
        q->fork_why = why;
        q->fork_errno = ESRCH;
    }
    if (rc) {
        fq__fds_close(ch[0]);
        munmap(w->stat, FQ__WSTAT_SIZE);
        free(w);
        return rc;
    }
    w->pid = rep.pid;
    w->fd = ch[0];
    /* The helper reaps the worker only when asked: its pid cannot have been
     * reused, and a pidfd opened now is the worker's. */
    fq__fds_lock();
    w->pidfd = fq__pidfd_open(w->pid);
    if (w->pidfd >= 0 && fq__fds_add_locked(w->pidfd) < 0) {
        close(w->pidfd);
        w->pidfd = -1;
    }
    fq__fds_unlock();
    *wp = w;
    return 0;
}

/* 1: the worker has ended (a zombie of the helper, or gone), 0: running. */
static int fs_exited(fq__worker *w)
{
    if (w->pidfd >= 0) {
        struct pollfd p = {w->pidfd, POLLIN, 0};
        return poll(&p, 1, 0) > 0 ? 1 : 0;
    }
    fs_req rq;
    fs_rep rep;
    memset(&rq, 0, sizeof(rq));
    rq.op = FS_PEEK;
    rq.pid = w->pid;
    if (fs_call(&rq, &rep, gen_of(w)) < 0 || rep.state < 0)
        return -1;
    return rep.state;
}

static void fs_signal(fq__worker *w, int sig)
{
    if (fs_exited(w) != 0) {
        w->flags |= sig == SIGKILL ? FQ__W_KILLED : 0;
        w->hard_kill_at = 0;
        return;
    }
    if (sig == SIGKILL) {
#ifdef __linux__
        /* As for a direct child: the worker ends its jobs' processes and
         * itself; the loop kills the group a moment later if need be. */
        if (!(w->flags & FQ__W_KILLED) &&
            (fq__pidfd_signal(w->pidfd, FQ__SIG_CLEANUP) == 0 ||
             (w->pidfd < 0 && fs_holds(gen_of(w)) &&
              kill(w->pid, FQ__SIG_CLEANUP) == 0))) {
            w->flags |= FQ__W_KILLED;
            w->hard_kill_at = fq__now_ns() + FQ__HARD_KILL_NS;
            return;
        }
#endif
        w->flags |= FQ__W_KILLED;
        w->hard_kill_at = 0;
    }
    if (!fs_holds(gen_of(w)) || kill(-w->pid, sig) < 0)
        fq__pidfd_signal(w->pidfd, sig);
}

static void fs_terminate(fq__worker *w, int grace_ms)
{
#ifdef __linux__
    /* A worker takes the graceful request only from its parent. */
    fs_req rq;
    fs_rep rep;
    memset(&rq, 0, sizeof(rq));
    rq.op = FS_SIGQUEUE;
    rq.pid = w->pid;
    rq.sig = FQ__SIG_CLEANUP;
    rq.value = (grace_ms < INT32_MAX - 1 ? grace_ms : INT32_MAX - 1) + 1;
    if (fs_call(&rq, &rep, gen_of(w)) == 0 && rep.err == 0)
        return;
#endif
    fs_signal(w, SIGTERM);
}

static void fs_kill_all(fq__worker *w)
{
    w->hard_kill_at = 0;
    /* Until the helper reaps it (on our request), the worker's group id
     * stays its own. */
    if (!fs_holds(gen_of(w)) || kill(-w->pid, SIGKILL) < 0)
        fq__pidfd_signal(w->pidfd, SIGKILL);
}

static int fs_exit_fd(const fq__worker *w)
{
    return w->pidfd;
}

static void fs_await_exit(fq__worker *w, int64_t until)
{
    for (;;) {
        int64_t left = until - fq__now_ns();
        if (fs_exited(w) != 0 || left <= 0)
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

/* The helper reaps it and relays its wait status. */
static int fs_reap(fq__worker *w, int *wstatus)
{
    *wstatus = 0;
    fs_await_exit(w, fq__now_ns() + (int64_t)FS_REAP_MS * 1000000);
    fs_req rq;
    fs_rep rep;
    memset(&rq, 0, sizeof(rq));
    rq.op = FS_REAP;
    rq.pid = w->pid;
    if (fs_call(&rq, &rep, gen_of(w)) < 0 || rep.state != 1)
        return 0;
    *wstatus = rep.wstatus;
    return 1;
}

static void fs_describe_exit(const fq__worker *w, char *buf, size_t n,
                             int signo, int exit_status)
{
    if (!signo && exit_status < 0) {
        fs_lock_owned();
        int gone = gen_of(w) != fs_gen || fs_state != FS_RUNNING;
        pid_t dead = fs_dead_pid;
        pthread_mutex_unlock(&fs_lock);
        if (gone) {
            snprintf(buf, n,
                     "worker %ld ended with its fork server (pid %ld), "
                     "which is gone",
                     (long)w->pid, (long)dead);
            return;
        }
    }
    fq__describe_exit(buf, n, w->pid, signo, exit_status);
}

const fq__worker_ops fq__forkserver_ops = {
    .name = "forkserver",
    .start = fs_worker_start,
    .signal = fs_signal,
    .terminate = fs_terminate,
    .kill_all = fs_kill_all,
    .exit_fd = fs_exit_fd,
    .exited = fs_exited,
    .reap = fs_reap,
    .await_exit = fs_await_exit,
    .held_output = fq__page_held_output,
    .describe_exit = fs_describe_exit,
    .free = fq__worker_free,
};
