/*
 * What the worker layer offers for remote workers: the body of a worker
 * that a worker server forks for an authenticated connection (served.c),
 * and the remote kind, a worker of a local queue that lives on a server
 * (remote.c).
 */
#ifndef FQ_WORKER_REMOTE_H
#define FQ_WORKER_REMOTE_H

#include <signal.h>
#include <sys/types.h>

#include "worker/kind.h"

/*
 * In the child a worker server just forked (with every signal blocked;
 * oldmask is the mask to restore): the hygiene of a worker (process group,
 * dies with the server, other descriptors closed but fd, the job's process
 * tree tracked), then the answer accepting the request, then the engine's
 * worker loop over the connection fd. Never returns: ends with _exit().
 */
__attribute__((noreturn)) void fq__worker_serve(int fd, fq_init_fn init,
                                                void *udata, pid_t parent,
                                                const sigset_t *oldmask);

/*
 * The same for a connection that speaks TLS (ssl, a session of
 * transport/tls.h on fd, past its handshake and authentication): this
 * process becomes the relay between the connection and a worker it forks
 * (fq__worker_serve() over a socketpair, in this process group), passes
 * the server's cleanup signal on to it, and ends once the worker ended and
 * what it wrote was sent. Never returns.
 */
__attribute__((noreturn)) void fq__worker_serve_tls(int fd, void *ssl,
                                                    fq_init_fn init,
                                                    void *udata, pid_t parent,
                                                    const sigset_t *oldmask);

/* The remote kind (remote.c). */
extern const fq__worker_ops fq__remote_ops;

/*
 * Connects to the worker server at addr ("host:port"; port 60006 when
 * absent), with TLS if o asks for it (then through a relay thread: see
 * transport/tls.h), authenticates with o's key (NULL: $FORKQUEUE_AUTHKEY
 * or the key file), asks for a worker, all within o->connect_timeout_ms
 * (<= 0: 5000), and
 * makes a worker of the remote kind. *nworkers (if nworkers is not NULL) is
 * the queue's worker target, decremented when the worker is freed (it is
 * not replaced).
 * Returns 0, or FQ_EINVAL, FQ_EAUTH, FQ_ETIMEDOUT, FQ_ECLOSED, FQ_EPROTO,
 * FQ_ENOMEM, FQ_ESYS with the reason in err.
 */
int fq__remote_connect(const char *addr, const fq_remote_options *o,
                       int *nworkers, fq__worker **wp, char *err, size_t errn);

/* The variant of a local kind whose jobs name functions by id (a queue
 * with remote workers encodes every job so): kind itself if it does
 * already, NULL for a kind without such a variant. */
const fq__worker_ops *fq__kind_by_id(const fq__worker_ops *kind);

#endif
