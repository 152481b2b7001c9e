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

#include "chan_public.h"
#include "internal.h"

#define FQ__EXPORT __attribute__((visibility("default")))

/* Results are flushed to the parent when FQ__FLUSH_BYTES are buffered,
 * or when the worker runs out of input (so a lone job is answered at once);
 * while it runs further jobs, the parent takes buffered results that are
 * FQ__FLUSH_AGE_NS old straight from the shared out[] (loop.c). Batches
 * amortise system calls and, as much, wake-ups of the parent, which on a
 * machine with no idle CPU preempt a worker each time. Results of
 * FQ__DIRECT_BYTES or more are written straight from the job's buffer. */

/* Exit statuses of a worker that ends on its own. */
#define EXIT_OK 0
#define EXIT_IO 120    /* channel failed */
#define EXIT_PROTO 121 /* parent sent garbage */
#define EXIT_INIT 122  /* init failed (after reporting it) */
#define EXIT_NOMEM 123

/* ---- Parent side ------------------------------------------------------- */

static int open_pidfd(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    /* pidfd_open fds are always close-on-exec. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

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

static void kill_descendants(void)
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

static void cleanup_handler(int sig)
{
    (void)sig;
    kill_descendants();
    kill(getpid(), SIGKILL);
}

/* Ends a worker: its jobs' processes first. */
static __attribute__((noreturn)) void worker_exit(int status)
{
    kill_descendants();
    _exit(status);
}

/* The hygiene of every forked child (workers, public channels): see the top
 * of this file. Runs with every signal blocked. `keep` is the one worker
 * descriptor the child keeps (a worker's own end of its channel), or -1. */
void fq__child_hygiene_keep(int parent_end, int keep, pid_t parent)
{
    /* Default dispositions, as a new process would have (SIG_IGN is kept
     * except for the signals we rely on or a job may wait on). */
    for (int s = 1; s < NSIG; s++) {
        struct sigaction sa;
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        if (sigaction(s, NULL, &sa) < 0)
            continue;
        if (sa.sa_handler == SIG_IGN && s != SIGTERM && s != SIGINT &&
            s != SIGCHLD && s != SIGHUP)
            continue;
        if (sa.sa_handler == SIG_DFL && !(sa.sa_flags & SA_SIGINFO))
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(s, &sa, NULL);
    }
    /* Every worker channel and pidfd of every queue of this process
     * (the parent's end of a worker's own channel among them): only `keep`
     * stays. */
    fq__fds_child_keep_only(keep);
    close(parent_end); /* a public channel's; already closed for a worker */
    fq__chan_forget_inherited();
    setpgid(0, 0);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    /* The parent may have died before PDEATHSIG was armed. */
    if (getppid() != parent)
        _exit(EXIT_IO);
}

void fq__child_hygiene(int parent_end, pid_t parent)
{
    fq__child_hygiene_keep(parent_end, -1, parent);
}

static void child_setup(fq__queue *q, int parent_end, int own_end, pid_t parent,
                        const sigset_t *oldmask)
{
    fq__child_hygiene_keep(parent_end, own_end, parent);
#ifdef __linux__
    /* A worker also tracks its jobs' process trees (see above): it adopts
     * their orphans and, on its parent's death, kills them before itself. */
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = cleanup_handler;
        sigfillset(&sa.sa_mask);
        sigaction(FQ__SIG_CLEANUP, &sa, NULL);
        pid_t probe[1];
        tree_tracked = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 &&
                       read_children(probe, 1) >= 0;
        prctl(PR_SET_PDEATHSIG, FQ__SIG_CLEANUP);
    }
    if (getppid() != parent)
        _exit(EXIT_IO);
#endif
    if (q->opts.hooks.child)
        q->opts.hooks.child(q->opts.hook_arg);
    pthread_sigmask(SIG_SETMASK, oldmask, NULL);
}

int fq__worker_spawn(fq__queue *q, fq__worker **wp)
{
    int fds[2];
    sigset_t all, old;
    fq__worker *w = calloc(1, sizeof(*w));

    if (!w)
        return FQ_ENOMEM;
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
        child_setup(q, fds[0], fds[1], parent, &old);
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
    w->pidfd = open_pidfd(pid);
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
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
    /* Through the pidfd, a signal can never reach a process that reused
     * the pid of a worker the host reaped. */
    if (w->pidfd >= 0)
        return (int)syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0);
#endif
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

/* ---- Child side -------------------------------------------------------- */

struct fq_ctx {
    uint64_t id;
    void *udata;
    int replied;
    int fd;
    uint64_t wseq;
    int64_t start_ns;
    fq__wstat *st;
    size_t out_len;    /* bytes of st->out in use */
    uint64_t tx;       /* bytes written to the channel so far */
    unsigned fork_gen; /* fq__fork_gen in this worker */
};

/* A job forked and the copy is running worker code: it must never act as
 * the worker (write results, read jobs), or the parent would take it for
 * the worker and blame the wrong jobs. */
static int forked_copy(const fq_ctx *c)
{
    return c->fork_gen !=
           atomic_load_explicit(&fq__fork_gen, memory_order_relaxed);
}

static char init_msg[1024];

FQ__EXPORT int fq_init_fail(const char *msg)
{
    snprintf(init_msg, sizeof(init_msg), "%s", msg ? msg : "");
    return -1;
}

static void flush_out(fq_ctx *c)
{
    if (c->out_len == 0)
        return;
    struct iovec iov = {c->st->out, c->out_len};
    if (fq__send_all(c->fd, &iov, 1) < 0)
        worker_exit(EXIT_IO);
    c->tx += c->out_len;
    atomic_store_explicit(&c->st->tx, c->tx, memory_order_relaxed);
    c->out_len = 0;
    atomic_store_explicit(&c->st->committed, 0, memory_order_relaxed);
    /* out[] is rewritten from the start from now on: a copy the parent
     * is making must be seen as torn. */
    atomic_fetch_add_explicit(&c->st->gen, 1, memory_order_acq_rel);
}

/* Queues (or, when large, writes at once) one frame to the parent. A queued
 * frame is committed to the shared buffer before the job after it starts,
 * so the parent can recover it if this process dies. */
static void emit(fq_ctx *c, const fq__frame *f, const void *data)
{
    unsigned char hdr[FQ__WIRE_HDR];

    fq__frame_encode(f, hdr);
    if (f->len >= FQ__DIRECT_BYTES) {
        struct iovec iov[2] = {{hdr, sizeof(hdr)},
                               {(void *)data, (size_t)f->len}};
        flush_out(c);
        if (fq__send_all(c->fd, iov, 2) < 0)
            worker_exit(EXIT_IO);
        c->tx += FQ__WIRE_HDR + (size_t)f->len;
        atomic_store_explicit(&c->st->tx, c->tx, memory_order_relaxed);
        return;
    }
    if (c->out_len + FQ__WIRE_HDR + f->len > FQ__OUT_CAP)
        flush_out(c);
    memcpy(c->st->out + c->out_len, hdr, FQ__WIRE_HDR);
    if (f->len)
        memcpy(c->st->out + c->out_len + FQ__WIRE_HDR, data, (size_t)f->len);
    c->out_len += FQ__WIRE_HDR + (size_t)f->len;
    atomic_store_explicit(&c->st->committed, c->out_len, memory_order_release);
}

static void emit_result(fq_ctx *c, int status, int code, const void *data,
                        size_t len)
{
    fq__frame f = {0};
    f.type = FQ__FRAME_RESULT;
    f.status = status;
    f.code = code;
    int64_t us = (fq__now_ns() - c->start_ns) / 1000;
    f.run_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    f.wseq = c->wseq;
    f.len = len;
    c->replied = 1;
    emit(c, &f, data);
}

FQ__EXPORT int fq_reply(fq_ctx *ctx, const void *data, size_t len)
{
    if (!ctx || (!data && len))
        return FQ_EINVAL;
    if (len > FQ__WIRE_MAX_PAYLOAD)
        return FQ_ETOOBIG; /* as fq_submit(): never read past the buffer */
    if (forked_copy(ctx))
        return FQ_EFOREIGN;
    if (ctx->replied)
        return FQ_EBUSY;
    emit_result(ctx, 0, 0, data, len);
    return 0;
}

FQ__EXPORT int fq_fail(fq_ctx *ctx, int code, const char *msg)
{
    if (!ctx)
        return FQ_EINVAL;
    if (code == 0)
        code = -1;
    if (forked_copy(ctx))
        return FQ_EFOREIGN;
    if (ctx->replied)
        return FQ_EBUSY;
    emit_result(ctx, FQ_EJOB, code, msg ? msg : "", msg ? strlen(msg) : 0);
    return code;
}

FQ__EXPORT uint64_t fq_ctx_id(const fq_ctx *ctx)
{
    return ctx ? ctx->id : 0;
}

FQ__EXPORT void *fq_ctx_udata(const fq_ctx *ctx)
{
    return ctx ? ctx->udata : NULL;
}

/* Runs one job frame. The argument is copied when its place in the buffer is
 * not aligned for any type, as the API promises. */
static void run_job(fq_ctx *c, fq__wstat *st, const fq__frame *f,
                    const unsigned char *payload)
{
    fq_job_fn fn = (fq_job_fn)(uintptr_t)f->fn;
    const void *arg = payload;
    void *copy = NULL;

    /* The parent may have taken this job back to give it to an idle
     * worker: exactly one of us wins the exchange. */
    if (atomic_exchange(&st->claim[c->wseq % FQ__RING],
                        FQ__CLAIM_STARTED(c->wseq)) ==
        FQ__CLAIM_REVOKED(c->wseq)) {
        c->wseq++;
        return;
    }
    if (((uintptr_t)payload % _Alignof(max_align_t)) != 0 && f->len > 0) {
        copy = malloc((size_t)f->len);
        if (!copy)
            worker_exit(EXIT_NOMEM);
        memcpy(copy, payload, (size_t)f->len);
        arg = copy;
    }
    c->id = f->id;
    c->replied = 0;
    c->start_ns = fq__now_ns();
    atomic_store_explicit(&st->start_ns, c->start_ns, memory_order_relaxed);
    atomic_store_explicit(&st->tx_start[c->wseq % FQ__RING], c->tx,
                          memory_order_relaxed);
    atomic_store_explicit(&st->started, c->wseq + 1, memory_order_release);
    int rc = fn(c, arg, (size_t)f->len);
    if (forked_copy(c))
        _exit(EXIT_OK); /* a copy made by the job (fork, daemon) */
    if (!c->replied) {
        if (rc == 0)
            emit_result(c, 0, 0, NULL, 0);
        else
            emit_result(c, FQ_EJOB, rc, "", 0);
    }
    atomic_store_explicit(&st->tx_end[c->wseq % FQ__RING], c->tx,
                          memory_order_relaxed);
    atomic_store_explicit(&st->done, c->wseq + 1, memory_order_release);
    c->wseq++;
    free(copy);
}

#ifdef __GLIBC__
/* Registered last, so it runs first when a job calls exit(): it ends the
 * worker before the parent's atexit handlers run and before stdio flushes
 * the buffers the worker inherited (they are the parent's to write). The
 * job's own output on stdout and stderr is written: what was inherited
 * there was dropped when the worker started. */
static pid_t exit_guard_pid;

static void on_job_exit(int status, void *arg)
{
    (void)arg;
    if (getpid() == exit_guard_pid)
        kill_descendants(); /* the worker itself: its jobs' processes too */
    fflush(stdout);
    fflush(stderr);
    _exit(status & 0xff);
}

static void guard_exit(void)
{
    exit_guard_pid = getpid();
    __fpurge(stdout);
    __fpurge(stderr);
    on_exit(on_job_exit, NULL);
}
#else
static void guard_exit(void)
{
}
#endif

void fq__worker_main(fq__queue *q, fq__worker *w, int fd)
{
    fq_ctx c;
    fq__rbuf rb;
    fq__wstat *st = w->stat;

    memset(&c, 0, sizeof(c));
    c.fd = fd;
    c.st = st;
    c.udata = q->opts.udata;
    c.fork_gen = atomic_load_explicit(&fq__fork_gen, memory_order_relaxed);
    fq__rbuf_init(&rb);
    guard_exit();

    if (q->opts.init && q->opts.init(q->opts.udata) != 0) {
        fq__frame f = {0};
        f.type = FQ__FRAME_INIT_FAIL;
        f.len = strlen(init_msg);
        emit(&c, &f, init_msg);
        flush_out(&c);
        worker_exit(EXIT_INIT);
    }
    atomic_store_explicit(&st->ready, 1, memory_order_release);

    for (;;) {
        fq__frame f;
        const unsigned char *payload;
        int rc = fq__rbuf_frame(&rb, FQ__ACCEPT_JOB, &f, &payload);
        if (rc < 0)
            worker_exit(EXIT_PROTO);
        if (rc == 1) {
            run_job(&c, st, &f, payload);
            fq__rbuf_consume(&rb, FQ__WIRE_HDR + (size_t)f.len);
            /* Results younger than a batch stay here while jobs are
             * queued: the parent takes them from out[] when they are
             * FQ__FLUSH_AGE_NS old, whatever job runs next. */
            if (c.out_len >= FQ__FLUSH_BYTES)
                flush_out(&c);
            continue;
        }
        /* Out of complete frames: send what we have, then block. */
        flush_out(&c);
        size_t want = 64 * 1024;
        if (rb.end - rb.start >= FQ__WIRE_HDR) {
            /* A header is here (rc == 0 decoded it): room for all of it. */
            want = FQ__WIRE_HDR + (size_t)f.len - (rb.end - rb.start);
            if (fq__rbuf_reserve(&rb, FQ__WIRE_HDR + (size_t)f.len) < 0)
                worker_exit(EXIT_NOMEM);
        }
        ssize_t n = fq__rbuf_read(&rb, fd, want < 4096 ? 4096 : want);
        if (n == 0)
            worker_exit(EXIT_OK); /* parent closed: finished, or gone */
        if (n < 0)
            worker_exit(EXIT_IO);
    }
}
