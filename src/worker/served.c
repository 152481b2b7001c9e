/*
 * A worker forked by a worker server (server/server.c) for one
 * authenticated connection: it runs the same loop as a local worker
 * (main.c), with the TCP connection as its channel, naming functions by
 * registered id only and reporting each job it starts with a STARTED frame
 * (which also sends the results before it): the client shares no page.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/auth.h"
#include "channel/chan_public.h"
#include "transport/tls.h"
#include "transport/transport.h"
#include "worker/remote.h"
#include "worker/worker.h"

/* fq__worker_serve(), in the process group pgid (0: its own). */
static __attribute__((noreturn)) void
fq__worker_serve_in(int fd, fq_init_fn init, void *udata, pid_t parent,
                    const sigset_t *oldmask, pid_t pgid)
{
    unsigned char ok[FQ__REPLY_HDR];

    fq__child_hygiene_keep(-1, fd, parent);
    if (pgid)
        setpgid(0, pgid); /* the relay's: the server ends both at once */
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

void fq__worker_serve(int fd, fq_init_fn init, void *udata, pid_t parent,
                      const sigset_t *oldmask)
{
    fq__worker_serve_in(fd, init, udata, parent, oldmask, 0);
}

/* ---- Over TLS: this process relays, a child is the worker --------------- */

typedef struct fwd {
    int sfd;
    pid_t worker;
} fwd;

/* The server's cleanup signal goes on to the worker as it came (with its
 * value when queued: the worker's handler then sees its parent, us, as the
 * sender). Other signals the worker's jobs send to the group are dropped:
 * the relay ends when the worker does. */
static void forward(void *arg)
{
    fwd *f = arg;
    struct signalfd_siginfo si;
    ssize_t r;
    while ((r = read(f->sfd, &si, sizeof(si))) == (ssize_t)sizeof(si) ||
           (r < 0 && errno == EINTR)) {
        if (r < 0 || (int)si.ssi_signo != FQ__SIG_CLEANUP)
            continue;
        if (si.ssi_code == SI_QUEUE) {
            union sigval v;
            memset(&v, 0, sizeof(v));
            v.sival_int = si.ssi_int;
            sigqueue(f->worker, FQ__SIG_CLEANUP, v);
        } else {
            kill(f->worker, FQ__SIG_CLEANUP);
        }
    }
}

void fq__worker_serve_tls(int fd, void *ssl, fq_init_fn init, void *udata,
                          pid_t parent, const sigset_t *oldmask)
{
    int sv[2], st = 0;

    /* Every signal stays blocked here (the server blocked them for the
     * fork); the cleanup signal and SIGTERM are read from a signalfd. */
    fq__child_hygiene_keep(-1, fd, parent);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        _exit(FQ__EXIT_IO);
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(fd);
        close(sv[0]);
        fq__worker_serve_in(sv[1], init, udata, me, oldmask, me);
    }
    close(sv[1]);
    if (pid < 0)
        _exit(FQ__EXIT_IO);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, FQ__SIG_CLEANUP);
    sigaddset(&set, SIGTERM);
    fwd f = {signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), pid};
    fq__tls_relay_run(ssl, fd, sv[0], 0, f.sfd, forward, &f);
    /* The worker reads end of file if it is still there. */
    close(sv[0]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}
