/*
 * Public channels: a child forked with the core's hygiene (channel/child.c's
 * fq__child_hygiene), connected by a socketpair (transport/socketpair.c) that
 * carries MSG frames (wire.c; the decoder is the only reader of the peer's
 * bytes).
 *
 * This file: the handles, forking, waiting, signalling and the orphans;
 * chan_msg.c sends and receives. Both ends are non-blocking; waits are
 * poll() with a deadline, so that a timeout or (with return_on_eintr) a
 * signal ends them.
 *
 * Handles are ids in a registry, as queues' are (handle.c). The registry and
 * the list of orphans (children of freed channels, not reaped yet) are
 * guarded by a lock that a child re-creates (pthread_atfork).
 */
#include "channel/chan_public.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "wire/wire.h"

#define FQ__EXPORT __attribute__((visibility("default")))

typedef struct orphan {
    pid_t pid;
    int pidfd;
} orphan;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static fq__chan **tab;
static size_t ntab, captab; /* tab sorted by id */
static uint32_t next_id = 1;
static pid_t cached_pid;
static orphan *orph;
static size_t norph, caporph;

static void atfork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    lock = fresh;
    cached_pid = 0;
}

static void setup(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

static pid_t self_pid(void)
{
    if (cached_pid == 0)
        cached_pid = getpid();
    return cached_pid;
}

/* Room for one more entry, so that adding after a fork cannot fail. */
static int reserve_locked(void)
{
    if (next_id == 0) /* 2^32 channels later: refuse, never reuse an id */
        return FQ_ENOMEM;
    if (ntab < captab)
        return 0;
    size_t ncap = captab ? captab * 2 : 16;
    fq__chan **n = realloc(tab, ncap * sizeof(*n));
    if (!n)
        return FQ_ENOMEM;
    tab = n;
    captab = ncap;
    return 0;
}

static void add_locked(fq__chan *c)
{
    c->id = next_id++; /* 0 after the last id: reserve_locked() refuses */
    tab[ntab++] = c;
}

int fq__chan_get(fq_channel h, fq__chan **cp)
{
    int rc = FQ_ECLOSED;

    if (h.id == 0)
        return FQ_EINVAL;
    pthread_mutex_lock(&lock);
    /* tab is sorted by id: ids only grow and removal keeps the order. */
    size_t lo = 0, hi = ntab;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tab[mid]->id < h.id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ntab && tab[lo]->id == h.id) {
        *cp = tab[lo];
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    if (rc == 0 && (*cp)->owner != self_pid())
        rc = FQ_ECLOSED; /* inherited through a fork made by the host */
    return rc;
}

int64_t fq__deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : fq__now_ns() + (int64_t)timeout_ms * 1000000;
}

int fq__remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - fq__now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > 1000000000 ? 1000000000 : (int)ms;
}

int fq__wait_fd(int fd, short events, int64_t deadline, int eintr)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, fq__remaining_ms(deadline));
        if (r > 0)
            return 0;
        if (r == 0)
            return FQ_ETIMEDOUT;
        if (errno == EINTR) {
            if (eintr)
                return FQ_EINTR;
            continue;
        }
        return FQ_ESYS;
    }
}

/* 0 sent, -1 the process is gone (reaped), 1 cannot tell (no pidfd). */
static int pidfd_signal(int pidfd, int sig)
{
    if (fq__pidfd_signal(pidfd, sig) == 0)
        return 0;
    return pidfd >= 0 && errno == ESRCH ? -1 : 1;
}

/* Signals the group of a child not yet reaped by us. */
static void signal_child(pid_t pid, int pidfd, int sig)
{
    if (pidfd_signal(pidfd, sig) < 0)
        return; /* collected by someone else: the pid may be reused */
    if (kill(-pid, sig) < 0 && errno == ESRCH)
        kill(pid, sig);
}

/* ---- orphans ------------------------------------------------------------ */

static void reap_orphans_locked(void)
{
    for (size_t i = 0; i < norph;) {
        int st;
        pid_t r = waitpid(orph[i].pid, &st, WNOHANG);
        if (r == orph[i].pid || (r < 0 && errno == ECHILD)) {
            if (orph[i].pidfd >= 0)
                close(orph[i].pidfd);
            orph[i] = orph[--norph];
            continue;
        }
        i++;
    }
}

void fq__chan_reap_orphans(void)
{
    pthread_once(&once, setup);
    pthread_mutex_lock(&lock);
    reap_orphans_locked();
    pthread_mutex_unlock(&lock);
}

static void add_orphan(pid_t pid, int pidfd)
{
    pthread_mutex_lock(&lock);
    if (norph == caporph) {
        size_t ncap = caporph ? caporph * 2 : 8;
        orphan *n = realloc(orph, ncap * sizeof(*n));
        if (!n) { /* cannot remember it: at worst a zombie until exit */
            pthread_mutex_unlock(&lock);
            if (pidfd >= 0)
                close(pidfd);
            return;
        }
        orph = n;
        caporph = ncap;
    }
    orph[norph++] = (orphan){pid, pidfd};
    pthread_mutex_unlock(&lock);
}

FQ__EXPORT int fq_channel_cleanup(int sig, int timeout_ms)
{
    if (sig < 0 || sig >= NSIG)
        return FQ_EINVAL;
    int64_t deadline = fq__deadline_of(timeout_ms);
    int step = 1;
    pthread_once(&once, setup);
    pthread_mutex_lock(&lock);
    reap_orphans_locked();
    if (sig)
        for (size_t i = 0; i < norph; i++)
            signal_child(orph[i].pid, orph[i].pidfd, sig);
    for (;;) {
        reap_orphans_locked();
        int left = (int)norph;
        int ms = fq__remaining_ms(deadline);
        if (left == 0 || ms == 0) {
            pthread_mutex_unlock(&lock);
            return left;
        }
        pthread_mutex_unlock(&lock);
        poll(NULL, 0, ms >= 0 && ms < step ? ms : step);
        step = step < 32 ? step * 2 : 50;
        pthread_mutex_lock(&lock);
    }
}

/* ---- life cycle --------------------------------------------------------- */

/* Closes the child's pidfd under the fds lock, which a thread forking a
 * child holds from its socketpair to the fork: a child forked meanwhile
 * must not find the number still in this channel (its hygiene would close
 * it, and the number may be its own channel's by then). */
static void close_pidfd(fq__chan *c)
{
    fq__fds_lock();
    if (c->pidfd >= 0)
        close(c->pidfd);
    c->pidfd = -1;
    fq__fds_unlock();
}

static void chan_release(fq__chan *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    fq__rbuf_free(&c->rb);
    free(c->big);
    c->big = NULL;
    c->big_have = c->big_len = 0;
}

void fq__chan_forget_inherited(void)
{
    for (size_t i = 0; i < ntab; i++) {
        chan_release(tab[i]);
        if (tab[i]->pidfd >= 0)
            close(tab[i]->pidfd);
        free(tab[i]);
    }
    ntab = 0;
    for (size_t i = 0; i < norph; i++)
        if (orph[i].pidfd >= 0)
            close(orph[i].pidfd);
    norph = 0;
}

FQ__EXPORT int fq_channel_fork(fq_channel *ch, const fq_channel_options *o)
{
    fq_channel_options opts;
    int fds[2];
    sigset_t all, old;

    if (!ch)
        return FQ_EINVAL;
    ch->id = 0;
    memset(&opts, 0, sizeof(opts));
    if (o)
        opts = *o;
    pthread_once(&once, setup);
    fq__chan_reap_orphans();

    fq__chan *c = calloc(1, sizeof(*c));
    if (!c)
        return FQ_ENOMEM;
    c->fd = c->pidfd = -1;
    c->eintr = opts.return_on_eintr;
    c->max_msg = opts.max_msg_bytes;
    c->log = opts.log;
    c->log_arg = opts.log_arg;
    fq__rbuf_init(&c->rb);
    pthread_mutex_lock(&lock);
    int rc = reserve_locked();
    pthread_mutex_unlock(&lock);
    if (rc) {
        free(c);
        return rc;
    }
    /* Whatever the caller's stdio holds would otherwise be printed twice. */
    fflush(NULL);
    pid_t parent = getpid();
    if (opts.hooks.prepare)
        opts.hooks.prepare(opts.hook_arg);
    /* Held from the socketpair's creation until the channel is in the
     * registry, as fq__worker_spawn() does for a worker: a child that
     * another thread forks (a worker or a channel) never inherits a
     * descriptor of this channel that no list names, so it closes them
     * all (see fq__fds_lock()). Lock order: fds lock, then `lock`. */
    fq__fds_lock();
    rc = fq__channel_pair(fds);
    if (rc == 0) {
        int fl = fcntl(fds[1], F_GETFL);
        if (fl < 0 || fcntl(fds[1], F_SETFL, fl | O_NONBLOCK) < 0) {
            close(fds[0]);
            close(fds[1]);
            rc = FQ_ESYS;
        }
    }
    if (rc) {
        fq__fds_unlock();
        if (opts.hooks.parent)
            opts.hooks.parent(opts.hook_arg);
        free(c);
        return rc;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* The fds lock was re-created by the atfork handler. */
        fq__child_hygiene(fds[0], parent); /* forgets inherited channels */
        c->owner = getpid();
        c->pid = 0;
        c->fd = fds[1];
        add_locked(c); /* room was reserved before the fork */
        ch->id = c->id;
        if (opts.hooks.child)
            opts.hooks.child(opts.hook_arg);
        sigemptyset(&all); /* a new process's mask: nothing blocked */
        pthread_sigmask(SIG_SETMASK, &all, NULL);
        return 0;
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        fq__fds_unlock();
        if (opts.hooks.parent)
            opts.hooks.parent(opts.hook_arg);
        free(c);
        errno = fork_errno;
        return FQ_EFORK;
    }
    setpgid(pid, pid); /* also done by the child; whoever runs first wins */
    c->owner = parent;
    c->pid = pid;
    c->fd = fds[0];
    c->pidfd = fq__pidfd_open(pid);
    pthread_mutex_lock(&lock);
    if (reserve_locked() < 0) { /* another thread took the room: retry */
        pthread_mutex_unlock(&lock);
        signal_child(pid, c->pidfd, SIGKILL);
        chan_release(c);
        add_orphan(pid, c->pidfd);
        fq__fds_unlock();
        if (opts.hooks.parent)
            opts.hooks.parent(opts.hook_arg);
        free(c);
        return FQ_ENOMEM;
    }
    add_locked(c);
    ch->id = c->id;
    pthread_mutex_unlock(&lock);
    fq__fds_unlock();
    if (opts.hooks.parent)
        opts.hooks.parent(opts.hook_arg);
    return 0;
}

FQ__EXPORT int fq_channel_start(fq_channel *ch, fq_channel_fn fn, void *arg,
                                const fq_channel_options *o)
{
    if (!ch || !fn)
        return FQ_EINVAL;
    int rc = fq_channel_fork(ch, o);
    if (rc < 0)
        return rc;
    if (fq_channel_pid(*ch) == 0) {
        int code = fn(*ch, arg);
        fflush(NULL); /* what the child printed; nothing inherited */
        fq_channel_free(*ch);
        _exit(code & 0xff);
    }
    return 0;
}

FQ__EXPORT pid_t fq_channel_pid(fq_channel h)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    return rc < 0 ? rc : c->pid;
}

FQ__EXPORT int fq_channel_fd(fq_channel h)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    return c->fd >= 0 ? c->fd : FQ_ECLOSED;
}

FQ__EXPORT int fq_channel_close(fq_channel h)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    /* Under the fds lock: a child forked meanwhile by another thread sees
     * the descriptor either open and named in the registry (and closes it)
     * or closed, never open and unnamed. */
    fq__fds_lock();
    chan_release(c);
    fq__fds_unlock();
    return 0;
}

FQ__EXPORT int fq_channel_free(fq_channel h)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    fq__fds_lock(); /* until its descriptors are closed: see close above */
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ntab; i++) {
        if (tab[i] == c) {
            memmove(&tab[i], &tab[i + 1], (ntab - i - 1) * sizeof(*tab));
            ntab--;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    chan_release(c);
    if (c->pid > 0 && !c->reaped) {
        int st;
        pid_t r;
        do
            r = waitpid(c->pid, &st, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            add_orphan(c->pid, c->pidfd);
            c->pidfd = -1;
        }
    }
    if (c->pidfd >= 0)
        close(c->pidfd);
    fq__fds_unlock();
    free(c);
    return 0;
}

/* ---- the child ---------------------------------------------------------- */

FQ__EXPORT int fq_channel_wait(fq_channel h, int *status, int timeout_ms)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    if (c->pid <= 0)
        return FQ_EINVAL;
    int64_t deadline = fq__deadline_of(timeout_ms);
    int step = 1;
    while (!c->reaped) {
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == c->pid || (r < 0 && errno == ECHILD)) {
            c->wstatus = r == c->pid ? st : -1;
            c->reaped = 1;
            close_pidfd(c);
            break;
        }
        if (r < 0)
            return FQ_ESYS;
        int ms = fq__remaining_ms(deadline);
        if (ms == 0)
            return FQ_ETIMEDOUT;
        if (c->pidfd >= 0) {
            rc = fq__wait_fd(c->pidfd, POLLIN, deadline, c->eintr);
            if (rc == FQ_EINTR)
                return rc;
            if (rc == FQ_ESYS) /* fall back to polling */
                close_pidfd(c);
            continue;
        }
        /* No pidfd: a bounded polling sleep (1 ms doubling to 50 ms). */
        if (poll(NULL, 0, ms >= 0 && ms < step ? ms : step) < 0 &&
            errno == EINTR && c->eintr)
            return FQ_EINTR;
        step = step < 32 ? step * 2 : 50;
    }
    if (status)
        *status = c->wstatus;
    return 0;
}

FQ__EXPORT int fq_channel_kill(fq_channel h, int sig)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    if (c->pid <= 0 || sig < 0 || sig >= NSIG)
        return FQ_EINVAL;
    if (c->reaped)
        return 0;
    signal_child(c->pid, c->pidfd, sig);
    return 0;
}

int fq__chan_info_get(fq_channel h, fq__chan_info *info)
{
    fq__chan *c;
    int rc = fq__chan_get(h, &c);
    if (rc < 0)
        return rc;
    info->fd = c->fd;
    info->pidfd = c->pidfd;
    info->pid = c->pid;
    info->reaped = c->reaped != 0;
    info->ready = fq_channel_ready(h) == 1;
    info->ended =
        c->fd < 0 || c->err ||
        ((c->flags & FQ__CH_EOF) && !c->big && c->rb.end == c->rb.start);
    return 0;
}
