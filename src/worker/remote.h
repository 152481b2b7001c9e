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

#include "core/internal.h"

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

/* The remote kind (remote.c). */
extern const fq__worker_ops fq__remote_ops;

/*
 * Connects to the worker server at addr ("host:port"; port 60006 when
 * absent), authenticates with the key (key NULL: $FORKQUEUE_AUTHKEY or the
 * key file), asks for a worker, all within timeout_ms (<= 0: 5000), and
 * makes a worker of the remote kind. *nworkers (if nworkers is not NULL) is
 * the queue's worker target, decremented when the worker is freed (it is
 * not replaced).
 * Returns 0, or FQ_EINVAL, FQ_EAUTH, FQ_ETIMEDOUT, FQ_ECLOSED, FQ_EPROTO,
 * FQ_ENOMEM, FQ_ESYS with the reason in err.
 */
int fq__remote_connect(const char *addr, const void *key, size_t key_len,
                       int timeout_ms, int *nworkers, fq__worker **wp,
                       char *err, size_t errn);

/* The variant of a local kind whose jobs name functions by id (a queue
 * with remote workers encodes every job so): kind itself if it does
 * already, NULL for a kind without such a variant. */
const fq__worker_ops *fq__kind_by_id(const fq__worker_ops *kind);

#endif
