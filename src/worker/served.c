/*
 * A worker forked by a worker server (server/server.c) for one
 * authenticated connection: it runs the same loop as a local worker
 * (main.c), with the TCP connection as its channel, naming functions by
 * registered id only and reporting each job it starts with a STARTED frame
 * (which also sends the results before it): the client shares no page.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "channel/chan_public.h"
#include "transport/transport.h"
#include "worker/remote.h"
#include "worker/worker.h"

void fq__worker_serve(int fd, fq_init_fn init, void *udata, pid_t parent,
                      const sigset_t *oldmask)
{
    unsigned char ok[FQ__REPLY_HDR];

    fq__child_hygiene_keep(-1, fd, parent);
    fq__worker_tree_setup(parent);
    pthread_sigmask(SIG_SETMASK, oldmask, NULL);
    if (fq__fd_blocking(fd, 1) < 0)
        fq__worker_exit(FQ__EXIT_IO);
    size_t n = fq__reply_encode(ok, sizeof(ok), NULL);
    struct iovec iov = {ok, n};
    if (fq__send_all(fd, &iov, 1) < 0)
        fq__worker_exit(FQ__EXIT_IO);
    /* Functions by id only, progress in STARTED frames; never returns. */
    fq__worker_loop_ex(init, udata, NULL, fd, NULL,
                       FQ__KIND_BY_ID | FQ__KIND_NO_PAGE);
    fq__worker_exit(FQ__EXIT_OK);
}
