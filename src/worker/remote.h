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

#endif
