/*
 * forkqueue: Worker servers and remote workers (since 0.2.0).
 *
 * Part of the public API; include <forkqueue.h>, which includes this file
 * after the declarations it relies on.
 */
#ifndef FORKQUEUE_SERVER_H
#define FORKQUEUE_SERVER_H

#ifndef FORKQUEUE_H
#error "include <forkqueue.h>, not <fq/server.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Worker servers and remote workers (since 0.2.0) -------------------- */

/*
 * A worker server accepts TCP connections, authenticates them with a
 * shared key (HMAC-SHA256 challenge-response, the same exchange as the
 * Python server `python3 -m forkqueue.server`), and serves each
 * authenticated connection that asks for a C engine worker by forking a
 * worker process that runs jobs for it, like a local queue's worker. A job
 * names its function by the id it was registered under, so a server runs
 * only the functions it registered itself (fq_func_register()). Whoever
 * has the key can run any of them: keep the key secret, and the server on
 * loopback (the default) unless you mean it. See docs/remote.md.
 */
typedef struct fq_server fq_server;

/* Server options. Zero-initialise; every zero field is the default. */
typedef struct fq_server_options {
    /* Address to listen on (a name, an IPv4 or IPv6 address). NULL:
     * "127.0.0.1", this machine only. */
    const char *addr;
    /* Port. 0: any free port (fq_server_port() tells which). */
    int port;
    /* The shared key, key_len bytes. NULL: $FORKQUEUE_AUTHKEY, else the
     * per-user key file (created if missing; see docs/remote.md). The
     * server refuses to start without a key (FQ_EAUTH). */
    const void *key;
    size_t key_len;
    /* Milliseconds a connection has to authenticate and send its request;
     * silent, slow or garbage-sending connections are dropped then. 0:
     * 5000. */
    int handshake_timeout_ms;
    /* Connections authenticating at once; more are closed at once. 0:
     * 512. */
    int max_pending;
    /* Runs in each worker process before its first job, as
     * fq_options.init; udata is passed to it and to jobs (fq_ctx_udata()).
     * A failing init fails the client's jobs with FQ_EINIT. */
    fq_init_fn init;
    void *udata;
    /* 0: silent. 1: connections, workers, refusals on stderr. 2: more. */
    int verbose;
    /* Where fq_server_new() writes why it failed (may be NULL). */
    char *errbuf;
    size_t errbuf_size;
    /* Since 0.2.0. TLS: the server's certificate chain (PEM file) and its
     * private key (PEM file; NULL: in tls_cert's file). With tls_cert set,
     * every connection must speak TLS (1.2 or later) first, and the key
     * exchange and the jobs then travel inside it; NULL: no TLS. */
    const char *tls_cert;
    const char *tls_key;
} fq_server_options;

/*
 * Creates a server listening on addr:port. o may be NULL. Errors:
 * FQ_EINVAL (bad option or address), FQ_EAUTH (no key, or a key file that
 * others can read), FQ_ESYS (address in use: errno tells), FQ_ENOMEM.
 */
int fq_server_new(fq_server **s, const fq_server_options *o);

/* The port the server listens on, or FQ_EINVAL. */
int fq_server_port(const fq_server *s);

/*
 * Serves connections in the calling thread until fq_server_stop(), then
 * stops every worker (SIGTERM to its jobs' processes, SIGKILL a second
 * later) and reaps them. Returns 0, or FQ_EINVAL, FQ_EBUSY (already
 * running), FQ_ESYS. Returns at once if fq_server_stop() came first.
 */
int fq_server_run(fq_server *s);

/* Makes fq_server_run() return. Async-signal-safe and thread-safe: call it
 * from a signal handler or another thread. Returns 0 or FQ_EINVAL. */
int fq_server_stop(fq_server *s);

/* Closes the socket and frees the server (after fq_server_run() returned,
 * or if it never ran). NULL is fine. */
void fq_server_free(fq_server *s);

/* Options of fq_queue_add_remote(). Zero-initialise. */
typedef struct fq_remote_options {
    /* The shared key, key_len bytes. NULL: $FORKQUEUE_AUTHKEY, else the
     * per-user key file. */
    const void *key;
    size_t key_len;
    /* Milliseconds to connect, authenticate and get the worker. 0: 5000. */
    int connect_timeout_ms;
    /* FQ_REMOTE_REPLACE_LOCAL: the remote worker takes the place of a
     * local one (which retires once its jobs are done), and a local worker
     * takes its place again if it ends. Without it, the remote worker is
     * one more, and the queue has one fewer when it ends. */
    unsigned flags;
    /* Where a failure's reason is written (may be NULL). */
    char *errbuf;
    size_t errbuf_size;
    /* Since 0.2.0. Non-zero: speak TLS to a server started with a
     * certificate (fq_server_options.tls_cert), verifying it: its
     * certificate must be signed by a CA of tls_ca_file (PEM; NULL: the
     * system's trust store) and name tls_server_name (NULL: the host of
     * addr). Setting tls_ca_file or tls_insecure turns TLS on too. */
    int tls;
    const char *tls_ca_file;
    const char *tls_server_name;
    /* UNSAFE, for tests with self-signed certificates only: non-zero
     * accepts any certificate, so anyone on the path can pose as the
     * server, relay the key exchange, and then read and change what
     * travels, jobs and results included. */
    int tls_insecure;
} fq_remote_options;

/*
 * Adds to q one worker that runs on the worker server at addr ("host:port",
 * "[v6addr]:port"; port 60006 when absent): connects, authenticates, and
 * asks the server for a worker, waiting up to connect_timeout_ms. Call it
 * once per remote worker wanted; local and remote workers of a queue share
 * its jobs (with FQ_REMOTE_REPLACE_LOCAL, remote workers take the places of
 * local ones: a queue of remote workers only, with local ones as
 * fallback). From this call on the queue's jobs name their functions by
 * registered id, so every job function must be registered with
 * fq_func_register() under the same name here and in the server
 * (fq_submit() returns FQ_ENOFUNC otherwise). A remote worker that ends
 * (its server died, the connection dropped, a time limit or fq_cancel()
 * stopped it) is not replaced (but by a local worker with
 * FQ_REMOTE_REPLACE_LOCAL): the job it was running ends with
 * FQ_ECRASHED and a message naming the server, the jobs it had not
 * started go to the other workers. o may be NULL. Errors: FQ_EINVAL,
 * FQ_ECLOSED (connection refused), FQ_ETIMEDOUT, FQ_EAUTH (wrong key, or
 * none), FQ_EPROTO (not a C worker server, or it refused), FQ_EBUSY (jobs
 * submitted before, by address, have no outcome yet), FQ_EFINISHED,
 * FQ_EINIT, FQ_ENOMEM, FQ_ESYS.
 */
int fq_queue_add_remote(fq_queue q, const char *addr,
                        const fq_remote_options *o);
#define FQ_REMOTE_REPLACE_LOCAL 0x1u

#ifdef __cplusplus
}
#endif

#endif /* FORKQUEUE_SERVER_H */
