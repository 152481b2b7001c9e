/*
 * Public channels: a child forked with the core's hygiene (worker.c's
 * fq__child_hygiene), connected by a socketpair (channel.c) that carries MSG
 * frames (wire.c; the decoder is the only reader of the peer's bytes).
 *
 * Both ends are non-blocking; waits are poll() with a deadline, so that a
 * timeout or (with return_on_eintr) a signal ends them. Small messages are
 * read in batches into a receive buffer; a large one (FQ__CHAN_DIRECT bytes
 * or more) is read straight into the buffer handed to the caller.
 *
 * Handles are ids in a registry, as queues' are (handle.c). The registry and
 * the list of orphans (children of freed channels, not reaped yet) are
 * guarded by a lock that a child re-creates (pthread_atfork).
 */
#include "chan_public.h"

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

#include "internal.h"
#include "wire.h"

#define FQ__EXPORT __attribute__((visibility("default")))

#define FQ__CHAN_DIRECT (64u * 1024)
#define FQ__CHAN_READ (16u * 1024)

enum {
    CH_EOF = 1 << 0,     /* the peer's end is closed */
    CH_DRAINED = 1 << 1, /* the last read emptied the socket: poll first */
};

typedef struct fq__chan {
    uint32_t id;
    pid_t owner; /* the process holding this end */
    pid_t pid;   /* the child (parent's end), 0 (child's end) */
    int fd;      /* -1 once closed */
    int pidfd;   /* -1: none */
    /* Separate fields for what the sending side, the receiving side and a
     * wait touch, so that they may run in different threads. */
    unsigned flags; /* receiving side */
    int wshut;      /* a send was interrupted midway: no more sends */
    int reaped;     /* the child was reaped (wstatus is valid) */
    int err;        /* sticky receive error */
    int wstatus;
    int eintr;
    uint64_t max_msg;
    fq__rbuf rb;
    unsigned char *big; /* a large message being read, or NULL */
    size_t big_have, big_len;
} fq__chan;

typedef struct orphan {
    pid_t pid;
    int pidfd;
} orphan;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static fq__chan **tab;
static size_t ntab, captab, last_hit;
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
    c->id = next_id++;
    if (next_id == 0) /* after 2^32 channels ids wrap (0 stays invalid) */
        next_id = 1;
    tab[ntab++] = c;
}

static int get(fq_channel h, fq__chan **cp)
{
    int rc = FQ_ECLOSED;

    if (h.id == 0)
        return FQ_EINVAL;
    pthread_mutex_lock(&lock);
    if (last_hit < ntab && tab[last_hit]->id == h.id) {
        *cp = tab[last_hit];
        rc = 0;
    } else {
        for (size_t i = 0; i < ntab; i++) {
            if (tab[i]->id == h.id) {
                *cp = tab[i];
                last_hit = i;
                rc = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&lock);
    if (rc == 0 && (*cp)->owner != self_pid())
        rc = FQ_ECLOSED; /* inherited through a fork made by the host */
    return rc;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : fq__now_ns() + (int64_t)timeout_ms * 1000000;
}

static int remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - fq__now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > 1000000000 ? 1000000000 : (int)ms;
}

/* Waits for events on fd until the deadline (-1: none). Returns 0 when
 * ready, FQ_ETIMEDOUT, FQ_EINTR (with eintr) or FQ_ESYS. */
static int wait_fd(int fd, short events, int64_t deadline, int eintr)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, remaining_ms(deadline));
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

static int open_pidfd(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
#else
    (void)pid;
    return -1;
#endif
}

/* 0 sent, -1 the process is gone (reaped), 1 cannot tell (no pidfd). */
static int pidfd_signal(int pidfd, int sig)
{
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
    if (pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
            return 0;
        if (errno == ESRCH)
            return -1;
    }
#else
    (void)pidfd;
    (void)sig;
#endif
    return 1;
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
    int64_t deadline = deadline_of(timeout_ms);
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
        int ms = remaining_ms(deadline);
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
    last_hit = 0;
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
    fq__rbuf_init(&c->rb);
    pthread_mutex_lock(&lock);
    int rc = reserve_locked();
    pthread_mutex_unlock(&lock);
    if (rc == 0)
        rc = fq__channel_pair(fds);
    if (rc) {
        free(c);
        return rc;
    }
    int fl = fcntl(fds[1], F_GETFL);
    if (fl < 0 || fcntl(fds[1], F_SETFL, fl | O_NONBLOCK) < 0) {
        close(fds[0]);
        close(fds[1]);
        free(c);
        return FQ_ESYS;
    }
    /* Whatever the caller's stdio holds would otherwise be printed twice. */
    fflush(NULL);
    pid_t parent = getpid();
    if (opts.hooks.prepare)
        opts.hooks.prepare(opts.hook_arg);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
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
    if (opts.hooks.parent)
        opts.hooks.parent(opts.hook_arg);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        free(c);
        errno = fork_errno;
        return FQ_EFORK;
    }
    setpgid(pid, pid); /* also done by the child; whoever runs first wins */
    c->owner = parent;
    c->pid = pid;
    c->fd = fds[0];
    c->pidfd = open_pidfd(pid);
    pthread_mutex_lock(&lock);
    if (reserve_locked() < 0) { /* another thread took the room: retry */
        pthread_mutex_unlock(&lock);
        signal_child(pid, c->pidfd, SIGKILL);
        chan_release(c);
        add_orphan(pid, c->pidfd);
        free(c);
        return FQ_ENOMEM;
    }
    add_locked(c);
    ch->id = c->id;
    pthread_mutex_unlock(&lock);
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
    int rc = get(h, &c);
    return rc < 0 ? rc : c->pid;
}

FQ__EXPORT int fq_channel_fd(fq_channel h)
{
    fq__chan *c;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    return c->fd >= 0 ? c->fd : FQ_ECLOSED;
}

FQ__EXPORT int fq_channel_close(fq_channel h)
{
    fq__chan *c;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    chan_release(c);
    return 0;
}

FQ__EXPORT int fq_channel_free(fq_channel h)
{
    fq__chan *c;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ntab; i++) {
        if (tab[i] == c) {
            tab[i] = tab[--ntab];
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
    free(c);
    return 0;
}

/* ---- messages ----------------------------------------------------------- */

FQ__EXPORT void fq_msg_free(fq_msg *m)
{
    if (!m)
        return;
    free(m->data);
    m->data = NULL;
    m->len = 0;
}

FQ__EXPORT int fq_channel_send(fq_channel h, const void *data, size_t len)
{
    fq__chan *c;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    if (!data && len)
        return FQ_EINVAL;
    if (c->fd < 0 || c->wshut)
        return FQ_ECLOSED;

    unsigned char hdr[FQ__WIRE_HDR];
    fq__frame f = {0};
    f.type = FQ__FRAME_MSG;
    f.len = len;
    fq__frame_encode(&f, hdr);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};
    struct iovec *v = iov;
    int n = len ? 2 : 1;
    int sent = 0;
    while (n > 0) {
        ssize_t r = fq__send_iov(c->fd, v, n);
        if (r >= 0) {
            size_t left = (size_t)r;
            sent = 1;
            while (n > 0 && left >= v->iov_len) {
                left -= v->iov_len;
                v++;
                n--;
            }
            if (n > 0) {
                v->iov_base = (char *)v->iov_base + left;
                v->iov_len -= left;
            }
            continue;
        }
        if (r != FQ_ETIMEDOUT)
            return (int)r;
        rc = wait_fd(c->fd, POLLOUT, -1, c->eintr);
        if (rc == FQ_EINTR && sent) {
            /* Half a frame is out: the stream cannot be resumed. */
            shutdown(c->fd, SHUT_WR);
            c->wshut = 1;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int fail(fq__chan *c, int err)
{
    c->err = err;
    return err;
}

/* Reads once. Returns > 0 bytes, 0 at EOF, FQ_ETIMEDOUT when nothing is
 * there, or another error. */
static ssize_t read_some(fq__chan *c)
{
    ssize_t n;
    if (c->big) {
        size_t want = c->big_len - c->big_have;
        for (;;) {
            n = read(c->fd, c->big + c->big_have, want);
            if (n >= 0 || errno != EINTR)
                break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                n = FQ_ETIMEDOUT;
            else
                n = errno == ECONNRESET ? 0 : FQ_ESYS;
        }
        if (n > 0)
            c->big_have += (size_t)n;
        if (n >= 0 && (size_t)n < want)
            c->flags |= CH_DRAINED;
        return n;
    }
    n = fq__rbuf_read(&c->rb, c->fd, FQ__CHAN_READ);
    if (n >= 0 && (size_t)n < FQ__CHAN_READ)
        c->flags |= CH_DRAINED;
    return n;
}

/* A whole message at hand: 1 (delivered into *m), 0 (not yet), or an
 * error. Starts a direct read for a large message. */
static int take_buffered(fq__chan *c, fq_msg *m)
{
    if (c->big) {
        if (c->big_have < c->big_len)
            return 0;
        m->data = c->big;
        m->len = c->big_len;
        c->big = NULL;
        c->big_have = c->big_len = 0;
        return 1;
    }
    fq__frame f;
    const unsigned char *p;
    int rc = fq__rbuf_frame(&c->rb, FQ__ACCEPT_MSG, &f, &p);
    if (rc < 0)
        return fail(c, FQ_EPROTO);
    size_t have = c->rb.end - c->rb.start;
    if (have < FQ__WIRE_HDR)
        return 0;
    /* rc == 1, or rc == 0 with the header decoded into f */
    if ((c->max_msg && f.len > c->max_msg) || f.len > SIZE_MAX / 2)
        return fail(c, FQ_ETOOBIG);
    if (rc == 1) {
        void *d = NULL;
        if (f.len) {
            d = malloc((size_t)f.len);
            if (!d)
                return fail(c, FQ_ENOMEM);
            memcpy(d, p, (size_t)f.len);
        }
        fq__rbuf_consume(&c->rb, FQ__WIRE_HDR + (size_t)f.len);
        m->data = d;
        m->len = (size_t)f.len;
        return 1;
    }
    if (f.len >= FQ__CHAN_DIRECT) {
        size_t got = have - FQ__WIRE_HDR;
        c->big = malloc((size_t)f.len);
        if (!c->big)
            return fail(c, FQ_ENOMEM);
        memcpy(c->big, c->rb.buf + c->rb.start + FQ__WIRE_HDR, got);
        fq__rbuf_consume(&c->rb, have);
        c->big_len = (size_t)f.len;
        c->big_have = got;
    }
    return 0;
}

FQ__EXPORT int fq_channel_recv(fq_channel h, fq_msg *m, int timeout_ms)
{
    fq__chan *c;
    if (!m)
        return FQ_EINVAL;
    m->data = NULL;
    m->len = 0;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    if (c->err)
        return c->err;
    if (c->fd < 0)
        return FQ_ECLOSED;
    int64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        rc = take_buffered(c, m);
        if (rc != 0)
            return rc;
        if (c->flags & CH_EOF) {
            if (c->big || c->rb.end > c->rb.start)
                return fail(c, FQ_EPROTO); /* ended inside a frame */
            return 0;
        }
        if (c->flags & CH_DRAINED) {
            rc = wait_fd(c->fd, POLLIN, deadline, c->eintr);
            if (rc < 0)
                return rc;
            c->flags &= ~(unsigned)CH_DRAINED;
        }
        ssize_t n = read_some(c);
        if (n == 0)
            c->flags |= CH_EOF;
        else if (n == FQ_ETIMEDOUT)
            c->flags |= CH_DRAINED; /* poll before the next read */
        else if (n < 0)
            return n == FQ_ENOMEM ? fail(c, FQ_ENOMEM) : (int)n;
    }
}

FQ__EXPORT int fq_channel_ready(fq_channel h)
{
    fq__chan *c;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    if (c->fd < 0 || c->err || (c->flags & CH_EOF))
        return 1; /* recv answers at once: closed, an error, or the end */
    if (c->big)
        return c->big_have == c->big_len;
    fq__frame f;
    const unsigned char *p;
    rc = fq__rbuf_frame(&c->rb, FQ__ACCEPT_MSG, &f, &p);
    return rc != 0;
}

/* ---- the child ---------------------------------------------------------- */

FQ__EXPORT int fq_channel_wait(fq_channel h, int *status, int timeout_ms)
{
    fq__chan *c;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    if (c->pid <= 0)
        return FQ_EINVAL;
    int64_t deadline = deadline_of(timeout_ms);
    int step = 1;
    while (!c->reaped) {
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == c->pid || (r < 0 && errno == ECHILD)) {
            c->wstatus = r == c->pid ? st : -1;
            c->reaped = 1;
            if (c->pidfd >= 0)
                close(c->pidfd);
            c->pidfd = -1;
            break;
        }
        if (r < 0)
            return FQ_ESYS;
        int ms = remaining_ms(deadline);
        if (ms == 0)
            return FQ_ETIMEDOUT;
        if (c->pidfd >= 0) {
            rc = wait_fd(c->pidfd, POLLIN, deadline, c->eintr);
            if (rc == FQ_EINTR)
                return rc;
            if (rc == FQ_ESYS) { /* fall back to polling */
                close(c->pidfd);
                c->pidfd = -1;
            }
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
    int rc = get(h, &c);
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
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    info->fd = c->fd;
    info->pidfd = c->pidfd;
    info->pid = c->pid;
    info->reaped = c->reaped != 0;
    info->ready = fq_channel_ready(h) == 1;
    info->ended = c->fd < 0 || c->err ||
                  ((c->flags & CH_EOF) && !c->big && c->rb.end == c->rb.start);
    return 0;
}

int fq__chan_fill(fq_channel h)
{
    fq__chan *c;
    int rc = get(h, &c);
    if (rc < 0)
        return rc;
    if (c->fd < 0 || fq_channel_ready(h) == 1)
        return 0;
    ssize_t n = read_some(c);
    if (n == 0)
        c->flags |= CH_EOF;
    else if (n == FQ_ETIMEDOUT)
        c->flags |= CH_DRAINED;
    else if (n > 0)
        c->flags &= ~(unsigned)CH_DRAINED;
    return 0;
}
