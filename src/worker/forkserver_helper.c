/*
 * The fork server's helper process: a single-threaded fork of the caller
 * that forks workers on request, reaps them when asked and relays their
 * wait statuses (the protocol is described in forkserver.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "channel/chan_public.h"
#include "worker/worker.h"

#include "worker/forkserver.h"

/* ---- The helper -------------------------------------------------------- */

static ssize_t recv_req(int fd, fs_req *rq, int fds[2], int *nfd)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } cm;
    struct iovec iov = {rq, sizeof(*rq)};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cm.b;
    mh.msg_controllen = sizeof(cm.b);
    *nfd = 0;
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfd < 2)
                fds[(*nfd)++] = f;
            else
                close(f);
        }
    }
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        return -EPROTO;
    return n;
}

/* In the new worker: map the status page, then become a worker exactly as
 * a forked-process worker does (worker/tree.c, worker/main.c). */
__attribute__((noreturn)) static void worker_child(const fs_req *rq, int chan,
                                                   int page, pid_t helper,
                                                   const sigset_t *oldmask)
{
    fq__wstat *st =
        mmap(NULL, FQ__WSTAT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, page, 0);
    close(page);
    if (st == MAP_FAILED)
        _exit(FQ__EXIT_NOMEM);
    fq__wenv q;
    fq__worker w;
    memset(&q, 0, sizeof(q));
    memset(&w, 0, sizeof(w));
    q.kind = &fq__forkserver_ops;
    q.opts.init = (fq_init_fn)(uintptr_t)rq->init;
    q.opts.udata = (void *)(uintptr_t)rq->udata;
    q.opts.hooks.child = (void (*)(void *))(uintptr_t)rq->child;
    q.opts.hook_arg = (void *)(uintptr_t)rq->hook_arg;
    w.stat = st;
    fq__worker_child_setup(&q, -1, chan, helper, oldmask);
    fq__worker_main(&q, &w, chan);
}

static void helper_spawn(const fs_req *rq, const int fds[2], fs_rep *rep)
{
    sigset_t all, old;
    pid_t me = getpid();

    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        worker_child(rq, fds[0], fds[1], me, &old);
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        rep->err = e ? e : EAGAIN;
        return;
    }
    setpgid(pid, pid); /* also done by the child: the group exists now */
    rep->pid = pid;
}

static void helper_wait(const fs_req *rq, fs_rep *rep, int reap)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (rq->pid <= 0 ||
        waitid(P_PID, (id_t)rq->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        rep->state = -1;
        return;
    }
    if (si.si_pid != rq->pid) {
        rep->state = 0;
        return;
    }
    rep->state = 1;
    if (!reap)
        return;
    /* Still a zombie: its group id is its own, whatever is left in the
     * group ends now (as proc_reap() does for a direct child). */
    kill(-rq->pid, SIGKILL);
    int st = 0;
    while (waitpid(rq->pid, &st, 0) < 0 && errno == EINTR)
        ;
    rep->wstatus = st;
}

__attribute__((noreturn)) void fq__forkserver_helper_main(int fd, pid_t parent)
{
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 || getppid() != parent)
                _exit(0);
            continue;
        }
        fs_req rq;
        int fds[2] = {-1, -1}, nfd = 0;
        ssize_t r = recv_req(fd, &rq, fds, &nfd);
        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r <= 0)
            _exit(0); /* end of file: the caller closed it or died */
        fs_rep rep;
        memset(&rep, 0, sizeof(rep));
        if (r != (ssize_t)sizeof(rq))
            rep.err = EPROTO;
        else if (rq.op == FS_SPAWN && nfd == 2)
            helper_spawn(&rq, fds, &rep);
        else if (rq.op == FS_REAP || rq.op == FS_PEEK)
            helper_wait(&rq, &rep, rq.op == FS_REAP);
        else if (rq.op == FS_SIGQUEUE) {
            fs_rep chk;
            memset(&chk, 0, sizeof(chk));
            helper_wait(&rq, &chk, 0);
            union sigval v;
            v.sival_int = rq.value;
            if (chk.state != 0 || sigqueue(rq.pid, rq.sig, v) < 0)
                rep.err = chk.state != 0 ? ESRCH : errno;
        } else
            rep.err = EINVAL;
        for (int i = 0; i < nfd; i++)
            close(fds[i]);
        ssize_t s;
        do
            s = send(fd, &rep, sizeof(rep), MSG_NOSIGNAL);
        while (s < 0 && errno == EINTR);
        if (s != (ssize_t)sizeof(rep))
            _exit(0);
    }
}
