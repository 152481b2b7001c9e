/*
 * The remote kind (fq__remote_ops): a worker of a local queue that is a
 * process on a worker server (server/server.c, tools/fq-server), reached
 * over an authenticated TCP connection. The queue and the loop see an
 * ordinary worker: its channel is the connection, its frames those of
 * wire/wire.h. Jobs name functions by registered id (FQ__KIND_BY_ID), and
 * since no page is shared, the parent's copy of the status page is kept
 * from the worker's STARTED and RESULT frames (FQ__KIND_NO_PAGE): time
 * limits and crash attribution work as for local workers.
 *
 * The worker's process is the server's to start and end. Stopping it here
 * (a time limit, fq_cancel(), fq_queue_free()) closes the connection: the
 * server then ends the worker's process group (SIGTERM, SIGKILL a second
 * later). The worker has ended, for the loop, once the server has closed its
 * side of the connection (end of stream or reset): a dead server, a killed
 * worker or a dropped connection all end it, and the job it was running
 * ends with FQ_ECRASHED saying so, while jobs it had not started go to
 * other workers. After we close (shut for writing), the worker has not
 * ended yet: jobs written to it may still run there, and their results
 * still come. Its end is awaited, so that no job runs here while it still
 * runs there, for at most REMOTE_END_NS (a server that does not answer is
 * then given up on). A remote worker is not replaced when it ends: the queue
 * goes on with its other workers (or, if it took the place of a local
 * worker, the queue's count of workers brings a local one back).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "transport/tls.h"
#include "transport/transport.h"
#include "worker/remote.h"
#include "worker/worker.h"

/* How long a remote worker's end is awaited after we closed its
 * connection: the server's grace (a second) and its SIGKILL, with room for
 * the network. */
#define REMOTE_END_NS (5 * INT64_C(1000000000))

typedef struct rshared {
    char where[300]; /* host:port, for messages */
    int closed;      /* we closed the connection (stop, kill) */
    int given_up;    /* closed, and the server did not end it in time */
    int *nworkers;   /* the queue's worker target, one less when freed (NULL:
                        it took a local worker's place, which comes back) */
    fq__tls_relay *relay; /* with TLS: w->fd is its plain end */
} rshared;

static int remote_start(fq__wenv *q, fq__worker **wp)
{
    (void)q;
    (void)wp;
    return FQ_EINVAL; /* made by fq__remote_connect() only */
}

/* With TLS: the handshake on fd, then a relay thread; *fd becomes the
 * relay's plain end (the TCP socket is the relay's from then on). */
static int tls_wrap(const fq_remote_options *o, const char *host, int *fd,
                    int64_t deadline, fq__tls_relay **relay, char *err,
                    size_t errn)
{
    SSL *ssl = NULL;
    SSL_CTX *ctx =
        fq__tls_client_ctx(o->tls_ca_file, o->tls_insecure, err, errn);
    if (!ctx)
        return FQ_EINVAL;
    const char *name =
        o->tls_server_name && *o->tls_server_name ? o->tls_server_name : host;
    int rc = fq__tls_connect(ctx, *fd, name, deadline, &ssl, err, errn);
    SSL_CTX_free(ctx); /* the session keeps what it needs */
    if (rc < 0)
        return rc;
    rc = fq__tls_relay_start(ssl, *fd, fd, relay);
    if (rc < 0) {
        *fd = -1; /* closed by fq__tls_relay_start() */
        snprintf(err, errn, "cannot start the TLS relay: %s",
                 rc == FQ_ENOMEM ? "out of memory" : strerror(errno));
    }
    return rc;
}

int fq__remote_connect(const char *addr, const fq_remote_options *o,
                       int *nworkers, fq__worker **wp, char *err, size_t errn)
{
    char host[256];
    int port, fd = -1, rc;
    fq__key k;
    fq__tls_relay *relay = NULL;
    const int tls = o->tls || o->tls_ca_file || o->tls_insecure;

    *wp = NULL;
    if (fq__tcp_split(addr, host, sizeof(host), &port, FQ__TCP_DEFAULT_PORT) <
        0) {
        snprintf(err, errn, "bad server address \"%s\" (want host:port)",
                 addr ? addr : "");
        return FQ_EINVAL;
    }
    int timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    int64_t deadline = fq__now_ns() + (int64_t)timeout_ms * 1000000;
    rc = fq__auth_key_get(o->key, o->key_len, &k, err, errn);
    if (rc < 0)
        return rc;
    rc = fq__tcp_connect(host, port, timeout_ms, &fd, err, errn);
    if (rc == 0 && tls)
        rc = tls_wrap(o, host, &fd, deadline, &relay, err, errn);
    if (rc == 0) {
        rc = fq__auth_client(fd, &k, deadline, err, errn);
        if (!tls && (rc == FQ_ETIMEDOUT || rc == FQ_ECLOSED)) {
            size_t l = strlen(err);
            snprintf(err + l, errn - l, " (if the server uses TLS, set tls)");
        }
    }
    fq__key_free(&k);
    if (rc == 0)
        rc = fq__request_worker(fd, deadline, err, errn);
    fq__worker *w = NULL;
    rshared *sh = NULL;
    fq__wstat *stat = NULL;
    if (rc == 0) {
        w = calloc(1, sizeof(*w));
        sh = calloc(1, sizeof(*sh));
        stat = calloc(1, FQ__WSTAT_SIZE);
        if (!w || !sh || !stat) {
            snprintf(err, errn, "out of memory");
            rc = FQ_ENOMEM;
        }
    }
    if (rc == 0 && !relay) {
        fq__fds_lock();
        rc = fq__fds_add_locked(fd) < 0 ? FQ_ENOMEM : 0;
        fq__fds_unlock();
    }
    if (rc < 0) {
        if (relay) {
            fq__fds_close(fd); /* the relay ends */
            fq__tls_relay_join(relay);
        } else if (fd >= 0) {
            close(fd);
        }
        free(w);
        free(sh);
        free(stat);
        return rc;
    }
    snprintf(sh->where, sizeof(sh->where), "%s%s%s:%d",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
             port);
    sh->nworkers = nworkers;
    sh->relay = relay;
    /* Its init (if the server has one) is the server's: from here the
     * worker counts as started. */
    atomic_store(&stat->ready, 1);
    w->ops = &fq__remote_ops;
    w->kind_data = sh;
    w->pid = -1; /* none of ours; its HELLO tells peer_pid */
    w->fd = fd;
    w->pidfd = -1;
    w->avg_run_ns = -1;
    w->stat = stat;
    fq__rbuf_init(&w->rb);
    *wp = w;
    return 0;
}

/* Every way to stop a remote worker closes its connection; the server ends
 * the process, then closes its side: that is the worker's end. */
static void remote_close(fq__worker *w)
{
    rshared *sh = w->kind_data;
    if (sh->closed)
        return;
    sh->closed = 1;
    w->flags |= FQ__W_KILLED;
    /* The loop calls kill_all then, if the server has not answered. */
    w->hard_kill_at = fq__now_ns() + REMOTE_END_NS;
    /* The server sees the end of stream; what the worker sent until then
     * can still be read. */
    shutdown(w->fd, SHUT_WR);
}

static void remote_signal(fq__worker *w, int sig)
{
    if (sig != 0)
        remote_close(w);
}

static void remote_terminate(fq__worker *w, int grace_ms)
{
    (void)grace_ms; /* the server gives the worker its own grace */
    remote_close(w);
}

static int remote_exit_fd(const fq__worker *w)
{
    (void)w;
    return -1; /* the loop asks exited() once the connection ended */
}

static int remote_exited(fq__worker *w)
{
    rshared *sh = w->kind_data;
    if (sh->given_up || (w->flags & FQ__W_EOF))
        return 1;
    /* The loop asks now and then while jobs run, and after we closed: a
     * reset or an end of stream that the loop has not read yet ends it
     * (what is still unread is collected before the worker is settled). */
    struct pollfd p = {w->fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
               ? 1
               : 0;
}

static int remote_reap(fq__worker *w, int *wstatus)
{
    (void)w;
    *wstatus = 0;
    return 0; /* no exit status crosses the connection */
}

static void remote_await_exit(fq__worker *w, int64_t until)
{
    while (!remote_exited(w)) {
        int64_t left = until - fq__now_ns();
        if (left <= 0)
            return;
        struct pollfd p = {w->fd, POLLRDHUP, 0};
        poll(&p, 1, (int)((left + 999999) / 1000000));
    }
}

/* Last resort: closes the connection if it was not, and stops waiting for
 * the server to end the worker. */
static void remote_kill_all(fq__worker *w)
{
    rshared *sh = w->kind_data;
    remote_close(w);
    sh->given_up = 1;
}

static size_t remote_held_output(fq__worker *w, const unsigned char **p)
{
    *p = w->stat->out;
    return 0; /* nothing shared: what it did not send is lost with it */
}

static void remote_describe_exit(const fq__worker *w, char *buf, size_t n,
                                 int signo, int exit_status)
{
    const rshared *sh = w->kind_data;
    (void)signo;
    (void)exit_status;
    if (sh->closed)
        snprintf(buf, n, "remote worker %ld on %s stopped (connection closed)",
                 (long)w->peer_pid, sh->where);
    else
        snprintf(buf, n,
                 "connection to remote worker %ld on %s lost (server or "
                 "worker died, or the network failed)",
                 (long)w->peer_pid, sh->where);
}

static void remote_free(fq__worker *w)
{
    rshared *sh = w->kind_data;
    if (sh->nworkers && *sh->nworkers > 0)
        (*sh->nworkers)--; /* not replaced */
    fq__fds_close(w->fd);
    fq__tls_relay_join(sh->relay); /* it ends with its plain end closed */
    fq__rbuf_free(&w->rb);
    free(w->direct_buf);
    free(w->stat);
    free(sh);
    free(w);
}

const fq__worker_ops fq__remote_ops = {
    .name = "remote",
    .flags = FQ__KIND_BY_ID | FQ__KIND_NO_PAGE | FQ__KIND_REMOTE,
    .start = remote_start,
    .signal = remote_signal,
    .terminate = remote_terminate,
    .kill_all = remote_kill_all,
    .exit_fd = remote_exit_fd,
    .exited = remote_exited,
    .reap = remote_reap,
    .await_exit = remote_await_exit,
    .held_output = remote_held_output,
    .describe_exit = remote_describe_exit,
    .free = remote_free,
};

/* ---- Local kinds that name functions by id ------------------------------ */

static fq__worker_ops by_id_process, by_id_thread, by_id_forkserver;
static pthread_once_t by_id_once = PTHREAD_ONCE_INIT;

static void by_id_setup(void)
{
    by_id_process = fq__process_ops;
    by_id_process.flags |= FQ__KIND_BY_ID;
    by_id_thread = fq__thread_ops;
    by_id_thread.flags |= FQ__KIND_BY_ID;
    by_id_forkserver = fq__forkserver_ops;
    by_id_forkserver.flags |= FQ__KIND_BY_ID;
}

const fq__worker_ops *fq__kind_by_id(const fq__worker_ops *kind)
{
    if (kind->flags & FQ__KIND_BY_ID)
        return kind;
    pthread_once(&by_id_once, by_id_setup);
    if (kind == &fq__process_ops)
        return &by_id_process;
    if (kind == &fq__thread_ops)
        return &by_id_thread;
    if (kind == &fq__forkserver_ops)
        return &by_id_forkserver;
    return NULL;
}
