/*
 * The worker server (fq_server_*): one thread, one poll loop. A connection
 * gets the server's challenge at once and must authenticate (auth/), then
 * send its request, all before a deadline; a silent, slow or garbage-sending
 * connection is dropped then, and never holds up the others (no read
 * blocks). A C engine request forks a worker (worker/served.c) that takes
 * the connection over and runs jobs for the client; the server keeps its
 * copy of the connection only to see the client hang up, and then ends the
 * worker's process group. A Python request is refused with a message: the
 * Python server (python3 -m forkqueue.server) serves those.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>

#include "auth/auth.h"
#include "core/internal.h"
#include "transport/tls.h"
#include "transport/transport.h"
#include "worker/remote.h"

#define FQ__EXPORT __attribute__((visibility("default")))

#define DEFAULT_HANDSHAKE_MS 5000
#define DEFAULT_MAX_PENDING 512
/* A worker whose client hung up, or at stop: its jobs get SIGTERM and
 * this long to end, then everything is killed. */
#define KILL_GRACE_NS INT64_C(1000000000)
/* Without pidfds, children are looked at this often. */
#define REAP_POLL_MS 100
/* After EMFILE and the like, accepting pauses this long. */
#define ACCEPT_PAUSE_NS INT64_C(100000000)

typedef struct conn {
    int fd;
    SSL *ssl;   /* with TLS */
    int tls_ok; /* its handshake is done */
    short ev;   /* what poll waits for */
    int authed;
    int64_t deadline;
    size_t have;
    unsigned char challenge[FQ__AUTH_CHAL];
    unsigned char buf[FQ__AUTH_ANSWER_LEN];
} conn;

typedef struct child {
    pid_t pid;
    int pidfd; /* -1 without pidfds */
    int sock;  /* our copy of the connection, -1 once the client hung up */
    int64_t kill_at;
} child;

struct fq_server {
    int lfd, port;
    int wake_rd, wake_wr;
    _Atomic int stop;
    _Atomic int running;
    fq__key key;
    SSL_CTX *tls; /* NULL: no TLS */
    int hs_ms;
    int max_pending;
    fq_init_fn init;
    void *udata;
    int verbose;
    conn *pend;
    int npend;
    child *kids;
    int nkids, capkids;
    struct pollfd *pfd; /* fq_server_run()'s poll set */
    size_t pfd_cap;
    int64_t accept_pause_until;
};

static void say(const fq_server *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(const fq_server *s, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (s->verbose < level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "[fq-server %ld] %s\n", (long)getpid(), line);
}

static void seterr(const fq_server_options *o, const char *msg)
{
    if (o && o->errbuf && o->errbuf_size)
        snprintf(o->errbuf, o->errbuf_size, "%s", msg);
}

FQ__EXPORT int fq_server_new(fq_server **sp, const fq_server_options *o)
{
    fq_server_options dflt = {0};
    char err[512], host[256];
    int rc;

    if (!sp)
        return FQ_EINVAL;
    *sp = NULL;
    if (!o)
        o = &dflt;
    if (o->port < 0 || o->port > 65535 || o->handshake_timeout_ms < 0 ||
        o->max_pending < 0 || (o->key && o->key_len == 0)) {
        seterr(o, "invalid option");
        return FQ_EINVAL;
    }
    const char *addr = o->addr && *o->addr ? o->addr : "127.0.0.1";
    if (strlen(addr) >= sizeof(host)) {
        seterr(o, "address too long");
        return FQ_EINVAL;
    }
    /* "[::1]" and the like: brackets are not part of the address. */
    if (addr[0] == '[' && addr[strlen(addr) - 1] == ']') {
        memcpy(host, addr + 1, strlen(addr) - 2);
        host[strlen(addr) - 2] = '\0';
    } else {
        strcpy(host, addr);
    }
    fq_server *s = calloc(1, sizeof(*s));
    if (!s) {
        seterr(o, "out of memory");
        return FQ_ENOMEM;
    }
    s->lfd = s->wake_rd = s->wake_wr = -1;
    s->hs_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms
                                       : DEFAULT_HANDSHAKE_MS;
    s->max_pending = o->max_pending ? o->max_pending : DEFAULT_MAX_PENDING;
    s->init = o->init;
    s->udata = o->udata;
    s->verbose = o->verbose;
    rc = fq__auth_key_get(o->key, o->key_len, &s->key, err, sizeof(err));
    if (rc < 0) {
        seterr(o, err);
        free(s);
        return rc;
    }
    if (o->tls_cert && *o->tls_cert) {
        s->tls = fq__tls_server_ctx(o->tls_cert, o->tls_key, err, sizeof(err));
        if (!s->tls) {
            seterr(o, err);
            fq__key_free(&s->key);
            free(s);
            return FQ_EINVAL;
        }
    } else if (o->tls_key) {
        seterr(o, "tls_key without tls_cert");
        fq__key_free(&s->key);
        free(s);
        return FQ_EINVAL;
    }
    s->pend = calloc((size_t)s->max_pending, sizeof(*s->pend));
    int p[2];
    if (!s->pend || pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = s->pend ? FQ_ESYS : FQ_ENOMEM;
        seterr(o, s->pend ? strerror(errno) : "out of memory");
        fq__key_free(&s->key);
        SSL_CTX_free(s->tls);
        free(s->pend);
        free(s);
        return rc;
    }
    s->wake_rd = p[0];
    s->wake_wr = p[1];
    rc = fq__tcp_listen(host, o->port, 128, &s->lfd);
    if (rc < 0) {
        int e = errno;
        if (rc == FQ_EINVAL)
            snprintf(err, sizeof(err), "cannot listen on %s: unknown address",
                     addr);
        else
            snprintf(err, sizeof(err), "cannot listen on %s:%d: %s", addr,
                     o->port, strerror(e));
        seterr(o, err);
        fq_server_free(s);
        errno = e;
        return rc;
    }
    s->port = fq__tcp_local_port(s->lfd);
    *sp = s;
    return 0;
}

FQ__EXPORT int fq_server_port(const fq_server *s)
{
    return s ? s->port : FQ_EINVAL;
}

FQ__EXPORT int fq_server_stop(fq_server *s)
{
    if (!s)
        return FQ_EINVAL;
    int saved = errno;
    atomic_store(&s->stop, 1);
    char b = 1;
    ssize_t r;
    do
        r = write(s->wake_wr, &b, 1);
    while (r < 0 && errno == EINTR); /* EAGAIN: a wake-up is pending */
    errno = saved;
    return 0;
}

/* ---- Connections being authenticated ------------------------------------ */

/* Sends a short message (the socket's buffer takes it: nothing is queued).
 * Returns 0 or -1. */
static int conn_send(conn *c, const void *buf, size_t n)
{
    if (c->ssl) {
        int r = SSL_write(c->ssl, buf, (int)n);
        ERR_clear_error();
        return r == (int)n ? 0 : -1;
    }
    return send(c->fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Reads as read(2) does (-1 with EAGAIN when nothing came yet). */
static ssize_t conn_recv(conn *c, void *buf, size_t n)
{
    ssize_t r;
    if (!c->ssl) {
        do
            r = read(c->fd, buf, n);
        while (r < 0 && errno == EINTR);
        return r;
    }
    int k = SSL_read(c->ssl, buf, (int)n);
    if (k > 0)
        return k;
    int e = SSL_get_error(c->ssl, k);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    }
    return 0; /* closed, or not TLS: as an end of stream */
}

static void drop_conn(fq_server *s, int i, const char *why)
{
    if (why)
        say(s, 1, "dropping connection %d: %s", s->pend[i].fd, why);
    SSL_free(s->pend[i].ssl); /* sends nothing */
    close(s->pend[i].fd);
    s->pend[i] = s->pend[--s->npend];
}

static void accept_all(fq_server *s, int64_t now)
{
    for (;;) {
        int fd;
        int r = fq__tcp_accept(s->lfd, &fd);
        if (r == 0)
            return;
        if (r < 0) {
            /* EMFILE and the like: keep serving the others, and try again
             * a moment later instead of spinning on a readable socket. */
            say(s, 1, "accept failed: %s", strerror(errno));
            s->accept_pause_until = now + ACCEPT_PAUSE_NS;
            return;
        }
        if (s->npend >= s->max_pending) {
            say(s, 2, "too many connections authenticating: closing one");
            close(fd);
            continue;
        }
        conn *c = &s->pend[s->npend];
        unsigned char hello[FQ__AUTH_HELLO_LEN];
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->ev = POLLIN;
        /* The TLS handshake, the exchange and the request: one deadline. */
        c->deadline = now + (int64_t)s->hs_ms * 1000000;
        if (s->tls) {
            /* The challenge goes once the TLS handshake is done. */
            if (!(c->ssl = fq__tls_new(s->tls, fd))) {
                close(fd);
                continue;
            }
            SSL_set_accept_state(c->ssl);
            s->npend++;
            say(s, 2, "connection %d accepted (TLS)", fd);
            continue;
        }
        /* A new socket's buffer always takes the 36 bytes. */
        if (fq__auth_server_hello(hello, c->challenge) < 0 ||
            conn_send(c, hello, sizeof(hello)) < 0) {
            close(fd);
            continue;
        }
        s->npend++;
        say(s, 2, "connection %d accepted", fd);
    }
}

static int grow_kids(fq_server *s)
{
    if (s->nkids < s->capkids)
        return 0;
    int n = s->capkids ? 2 * s->capkids : 16;
    child *k = realloc(s->kids, (size_t)n * sizeof(*k));
    if (!k)
        return FQ_ENOMEM;
    s->kids = k;
    s->capkids = n;
    return 0;
}

/* Forks a worker for the authenticated connection pend[i]. */
static void start_worker(fq_server *s, int i)
{
    int fd = s->pend[i].fd;
    sigset_t all, old;

    if (grow_kids(s) < 0) {
        drop_conn(s, i, "out of memory");
        return;
    }
    pid_t parent = getpid();
    fflush(stderr);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* Only the connection stays open in the worker. */
        close(s->lfd);
        close(s->wake_rd);
        close(s->wake_wr);
        for (int k = 0; k < s->npend; k++)
            if (s->pend[k].fd != fd)
                close(s->pend[k].fd);
        for (int k = 0; k < s->nkids; k++) {
            if (s->kids[k].sock >= 0)
                close(s->kids[k].sock);
            if (s->kids[k].pidfd >= 0)
                close(s->kids[k].pidfd);
        }
        fq__key_free(&s->key);
        if (s->pend[i].ssl)
            fq__worker_serve_tls(fd, s->pend[i].ssl, s->init, s->udata, parent,
                                 &old);
        fq__worker_serve(fd, s->init, s->udata, parent, &old);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        say(s, 1, "cannot fork a worker: %s", strerror(e));
        unsigned char msg[FQ__REPLY_HDR + 64];
        size_t n = fq__reply_encode(msg, sizeof(msg),
                                    "the server cannot fork a worker");
        conn_send(&s->pend[i], msg, n);
        drop_conn(s, i, NULL);
        return;
    }
    /* The worker's process has the session now: ours goes, unsent. */
    SSL_free(s->pend[i].ssl);
    setpgid(pid, pid);
    child *k = &s->kids[s->nkids++];
    k->pid = pid;
    k->pidfd = fq__pidfd_open(pid);
    k->sock = fd;
    k->kill_at = 0;
    say(s, 1, "worker %ld started for connection %d", (long)pid, fd);
    s->pend[i] = s->pend[--s->npend];
}

/* Moves pend[i]'s TLS handshake on; once done, sends the challenge.
 * Returns 1 if the connection is still there. */
static int conn_tls_step(fq_server *s, int i)
{
    conn *c = &s->pend[i];
    char why[256];
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        unsigned char hello[FQ__AUTH_HELLO_LEN];
        c->tls_ok = 1;
        c->ev = POLLIN;
        if (fq__auth_server_hello(hello, c->challenge) < 0 ||
            conn_send(c, hello, sizeof(hello)) < 0) {
            drop_conn(s, i, "cannot send the challenge");
            return 0;
        }
        say(s, 2, "connection %d: TLS handshake done", c->fd);
        return 1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return 1;
    }
    errno = 0;
    fq__tls_reason(why, sizeof(why));
    char msg[320];
    snprintf(msg, sizeof(msg), "TLS handshake failed (%s)", why);
    drop_conn(s, i, msg);
    return 0;
}

/* Reads what pend[i] sent and moves it on. */
static void conn_readable(fq_server *s, int i)
{
    conn *c = &s->pend[i];
    size_t want = c->authed ? FQ__REQ_LEN : FQ__AUTH_ANSWER_LEN;
    ssize_t r;

    if (c->ssl && !c->tls_ok) {
        if (!conn_tls_step(s, i) || !c->tls_ok)
            return;
    }
    r = conn_recv(c, c->buf + c->have, want - c->have);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (r <= 0) {
        drop_conn(s, i,
                  c->authed ? "closed before its request"
                            : "closed before authenticating");
        return;
    }
    c->have += (size_t)r;
    if (!c->authed) {
        if (c->have < FQ__AUTH_ANSWER_LEN)
            return;
        unsigned char verdict[FQ__AUTH_VERDICT_LEN];
        size_t vlen;
        int ok = fq__auth_server_check(&s->key, c->challenge, c->buf, c->have,
                                       verdict, &vlen);
        conn_send(c, verdict, vlen);
        if (!ok) {
            say(s, 1, "authentication failed for connection %d", c->fd);
            drop_conn(s, i, NULL);
            return;
        }
        c->authed = 1;
        c->have = 0;
        c->deadline = fq__now_ns() + (int64_t)s->hs_ms * 1000000;
        say(s, 2, "connection %d authenticated", c->fd);
        return;
    }
    unsigned char msg[FQ__REPLY_HDR + 160];
    size_t n;
    switch (fq__request_classify(c->buf, c->have)) {
    case FQ__REQ_MORE:
        return;
    case FQ__REQ_ENGINE:
        start_worker(s, i);
        return;
    case FQ__REQ_PYTHON:
        /* Its client expects pickles, which this server never makes: it
         * sees the connection close. */
        say(s, 0,
            "refusing a Python forkqueue.workers request on connection %d: "
            "this server runs C engine workers; Python workers are served "
            "by python3 -m forkqueue.server",
            c->fd);
        drop_conn(s, i, NULL);
        return;
    case FQ__REQ_BADVER:
        n = fq__reply_encode(msg, sizeof(msg),
                             "unsupported engine request (version or kind)");
        conn_send(c, msg, n);
        drop_conn(s, i, "unsupported engine request");
        return;
    default:
        drop_conn(s, i, "bad request");
        return;
    }
}

/* ---- Workers ------------------------------------------------------------ */

static void kill_group(const child *k, int sig)
{
    if (kill(-k->pid, sig) < 0)
        kill(k->pid, sig);
}

/* Asks a worker to end as a local queue does (worker/tree.c): gently, its
 * jobs' processes SIGTERM and the rest killed after the grace, even those
 * that left its process group; or at once (hard), its jobs' processes
 * first. The group gets SIGKILL if the worker is still there later. */
static void end_worker(const child *k, int hard)
{
    if (!hard) {
        union sigval v;
        memset(&v, 0, sizeof(v));
        v.sival_int = (int)(KILL_GRACE_NS / 1000000) + 1;
        if (sigqueue(k->pid, FQ__SIG_CLEANUP, v) == 0)
            return;
        kill_group(k, SIGTERM);
        return;
    }
    if (kill(k->pid, FQ__SIG_CLEANUP) < 0)
        kill_group(k, SIGKILL);
}

/* Reaps kids[i] if it ended; returns 1 if it did (and was removed). */
static int try_reap(fq_server *s, int i)
{
    child *k = &s->kids[i];
    int st;
    pid_t r;
    do
        r = waitpid(k->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    /* The worker's group may hold processes its jobs left (it kills them
     * itself, unless it was killed): they go too. */
    kill(-k->pid, SIGKILL);
    if (r == k->pid && WIFSIGNALED(st))
        say(s, 1, "worker %ld killed by signal %d", (long)k->pid, WTERMSIG(st));
    else if (r == k->pid)
        say(s, 1, "worker %ld exited with status %d", (long)k->pid,
            WEXITSTATUS(st));
    if (k->sock >= 0)
        close(k->sock);
    if (k->pidfd >= 0)
        close(k->pidfd);
    s->kids[i] = s->kids[--s->nkids];
    return 1;
}

/* The client of kids[i] hung up: its worker ends (at once if idle, since it
 * reads end of file; gently now and by force later if it runs a job). */
static void client_gone(fq_server *s, int i)
{
    child *k = &s->kids[i];
    close(k->sock);
    k->sock = -1;
    say(s, 2, "client of worker %ld hung up", (long)k->pid);
    end_worker(k, 0);
    k->kill_at = fq__now_ns() + KILL_GRACE_NS + KILL_GRACE_NS / 2;
}

/* ---- The loop ----------------------------------------------------------- */

static int64_t next_due(fq_server *s, int64_t now)
{
    int64_t t = now + INT64_C(1000000000);
    for (int i = 0; i < s->npend; i++)
        if (s->pend[i].deadline < t)
            t = s->pend[i].deadline;
    for (int i = 0; i < s->nkids; i++) {
        if (s->kids[i].kill_at && s->kids[i].kill_at < t)
            t = s->kids[i].kill_at;
        if (s->kids[i].pidfd < 0 && now + REAP_POLL_MS * 1000000 < t)
            t = now + REAP_POLL_MS * 1000000;
    }
    if (s->accept_pause_until > now && s->accept_pause_until < t)
        t = s->accept_pause_until;
    return t;
}

static void timers(fq_server *s, int64_t now)
{
    for (int i = 0; i < s->npend; i++)
        if (s->pend[i].deadline <= now)
            drop_conn(s, i--, "no authenticated request in time");
    for (int i = 0; i < s->nkids; i++) {
        child *k = &s->kids[i];
        if (try_reap(s, i)) {
            i--;
            continue;
        }
        if (k->kill_at && k->kill_at <= now) {
            end_worker(k, 1);
            kill_group(k, SIGKILL);
            k->kill_at = now + 5 * KILL_GRACE_NS;
        }
    }
}

/* Stops every worker: gently, by force a moment later, all reaped. */
static void stop_all(fq_server *s)
{
    while (s->npend > 0)
        drop_conn(s, 0, NULL);
    for (int i = 0; i < s->nkids; i++)
        end_worker(&s->kids[i], 0);
    int64_t hard = fq__now_ns() + KILL_GRACE_NS + KILL_GRACE_NS / 2;
    int killed = 0;
    while (s->nkids > 0) {
        for (int i = 0; i < s->nkids; i++)
            if (try_reap(s, i))
                i--;
        if (s->nkids == 0)
            break;
        if (!killed && fq__now_ns() >= hard) {
            for (int i = 0; i < s->nkids; i++) {
                end_worker(&s->kids[i], 1);
                kill_group(&s->kids[i], SIGKILL);
            }
            killed = 1;
        }
        struct pollfd p = {s->kids[0].pidfd, POLLIN, 0};
        poll(&p, p.fd >= 0 ? 1 : 0, 5);
    }
}

FQ__EXPORT int fq_server_run(fq_server *s)
{
    int rc = 0;

    if (!s)
        return FQ_EINVAL;
    if (atomic_exchange(&s->running, 1))
        return FQ_EBUSY;
    say(s, 1, "listening on port %d", s->port);
    while (!atomic_load(&s->stop)) {
        size_t need = 2 + (size_t)s->npend + 2 * (size_t)s->nkids;
        if (need > s->pfd_cap) {
            struct pollfd *n = realloc(s->pfd, need * sizeof(*n));
            if (!n) {
                rc = FQ_ENOMEM;
                break;
            }
            s->pfd = n;
            s->pfd_cap = need;
        }
        struct pollfd *pfd = s->pfd;
        int64_t now = fq__now_ns();
        int np = 0;
        pfd[np++] = (struct pollfd){s->wake_rd, POLLIN, 0};
        pfd[np++] = (struct pollfd){now >= s->accept_pause_until ? s->lfd : -1,
                                    POLLIN, 0};
        int pend0 = np;
        int buffered = 0; /* TLS holds bytes read but not yet taken */
        for (int i = 0; i < s->npend; i++) {
            pfd[np++] = (struct pollfd){s->pend[i].fd, s->pend[i].ev, 0};
            if (s->pend[i].ssl && SSL_pending(s->pend[i].ssl) > 0)
                buffered = 1;
        }
        int kid0 = np;
        for (int i = 0; i < s->nkids; i++) {
            pfd[np++] = (struct pollfd){s->kids[i].sock, POLLRDHUP, 0};
            pfd[np++] = (struct pollfd){s->kids[i].pidfd, POLLIN, 0};
        }
        int64_t due = next_due(s, now);
        int ms =
            due <= now || buffered ? 0 : (int)((due - now + 999999) / 1000000);
        int n = poll(pfd, (nfds_t)np, ms);
        if (n < 0 && errno != EINTR) {
            rc = FQ_ESYS;
            break;
        }
        now = fq__now_ns();
        if (n > 0 || buffered) {
            if (pfd[0].revents) {
                char b[64];
                while (read(s->wake_rd, b, sizeof(b)) > 0)
                    ;
            }
            /* Workers and connections first (by position: handlers move
             * entries), from the back so removals do not shift the rest. */
            int nk = s->nkids;
            for (int i = nk - 1; i >= 0; i--) {
                short sre = pfd[kid0 + 2 * i].revents;
                short pre = pfd[kid0 + 2 * i + 1].revents;
                if (pre && try_reap(s, i))
                    continue;
                if (s->kids[i].sock >= 0 &&
                    (sre & (POLLRDHUP | POLLHUP | POLLERR)))
                    client_gone(s, i);
            }
            for (int i = s->npend - 1; i >= 0; i--)
                if (pfd[pend0 + i].revents ||
                    (s->pend[i].ssl && SSL_pending(s->pend[i].ssl) > 0))
                    conn_readable(s, i);
            if (pfd[1].revents & POLLIN)
                accept_all(s, now);
        }
        timers(s, now);
    }
    stop_all(s);
    say(s, 1, "stopped");
    atomic_store(&s->running, 0);
    return rc;
}

FQ__EXPORT void fq_server_free(fq_server *s)
{
    if (!s)
        return;
    stop_all(s);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->wake_rd >= 0)
        close(s->wake_rd);
    if (s->wake_wr >= 0)
        close(s->wake_wr);
    fq__key_free(&s->key);
    SSL_CTX_free(s->tls);
    free(s->pend);
    free(s->kids);
    free(s->pfd);
    free(s);
}
