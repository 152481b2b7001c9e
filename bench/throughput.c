/*
 * throughput_unordered, throughput_ordered: 1M tiny jobs (x + 1) on 2
 * workers through fq_stream(), versus a pipelined socketpair farm of 2
 * children that sends one message per job (no batching).
 * throughput_threads: the unordered throughput with worker threads
 * (FQ_WORKER_THREAD), versus the same farm.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "figures.h"

/* Baseline of the throughput: each child reads one job, computes it and
 * writes one reply, one system call per message. */
static uint64_t inc_answer(uint64_t x)
{
    return x + 1;
}

#define FARM_KIDS 2

typedef struct farm {
    uint64_t n, next, done, sum;
    uint64_t out[FARM_KIDS]; /* jobs sent to each child, reply not read */
    int window;
} farm;

/* Sends jobs to child k, one write each, until its window is full or its
 * socket is: a blocking write could deadlock with a child blocked on
 * writing replies the parent has not read yet. */
static void farm_fill(farm *f, int k, int fd)
{
    while (f->out[k] < (uint64_t)f->window && f->next < f->n) {
        ssize_t n =
            send(fd, &f->next, sizeof f->next, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            die("farm write: %s", strerror(errno));
        if (n < (ssize_t)sizeof f->next &&
            write_full(fd, (char *)&f->next + n, sizeof f->next - (size_t)n) <
                0)
            die("farm write: %s", strerror(errno));
        f->next++;
        f->out[k]++;
    }
}

void run_farm(long njobs, int window, run_info *out)
{
    int fds[FARM_KIDS];
    pid_t pids[FARM_KIDS];
    long pm0 = migrations(getpid());
    fflush(NULL);
    for (int k = 0; k < FARM_KIDS; k++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            die("socketpair: %s", strerror(errno));
        pids[k] = fork();
        if (pids[k] < 0)
            die("fork: %s", strerror(errno));
        if (pids[k] == 0) {
            for (int j = 0; j < k; j++)
                close(fds[j]);
            close(sv[0]);
            baseline_child(sv[1], inc_answer);
        }
        close(sv[1]);
        fds[k] = sv[0];
    }

    meter m0, m1;
    meter_read(&m0, pids, FARM_KIDS);
    double t0 = now_s();
    farm f = {.n = (uint64_t)njobs, .window = window};
    for (int k = 0; k < FARM_KIDS; k++)
        farm_fill(&f, k, fds[k]);
    struct pollfd pf[FARM_KIDS];
    while (f.done < f.n) {
        for (int k = 0; k < FARM_KIDS; k++) {
            short ev = POLLIN;
            if (f.out[k] < (uint64_t)window && f.next < f.n)
                ev |= POLLOUT;
            pf[k] = (struct pollfd){.fd = fds[k], .events = ev};
        }
        if (poll(pf, FARM_KIDS, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        for (int k = 0; k < FARM_KIDS; k++) {
            if (pf[k].revents & (POLLERR | POLLHUP | POLLNVAL))
                die("farm: child %d hung up", k);
            if (!(pf[k].revents & POLLIN)) {
                if (pf[k].revents & POLLOUT)
                    farm_fill(&f, k, fds[k]);
                continue;
            }
            /* Drain what is there, one reply per read, sending the next
             * job as soon as a reply frees a slot of the window. */
            for (;;) {
                uint64_t y;
                ssize_t n = recv(fds[k], &y, sizeof y, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (n <= 0)
                    die("farm read: %s", n ? strerror(errno) : "EOF");
                if (n < (ssize_t)sizeof y &&
                    read_full(fds[k], (char *)&y + n, sizeof y - (size_t)n) !=
                        1)
                    die("farm read: short");
                f.sum += y;
                f.done++;
                f.out[k]--;
                farm_fill(&f, k, fds[k]);
            }
        }
    }
    uint64_t sum = f.sum;
    double t = now_s() - t0;
    meter_read(&m1, pids, FARM_KIDS);
    out->other = meter_other(&m0, &m1);
    uint64_t n = (uint64_t)njobs;
    if (sum != n * (n + 1) / 2)
        die("farm: wrong sum %" PRIu64, sum);
    observe(&out->where, pids, FARM_KIDS, pm0);
    for (int k = 0; k < FARM_KIDS; k++)
        close(fds[k]);
    for (int k = 0; k < FARM_KIDS; k++)
        reap(pids[k]);
    out->value = (double)njobs / t;
    out->cross = -1;
}

void run_fq_throughput_kind(int kind, int ordered, const bench_opts *bo,
                            run_info *out)
{
    fq_options o = {0};
    o.kind = kind;
    o.workers = 2;
    o.ordered = ordered;
    o.inflight = bo->inflight;
    stream_state s = {.n = (uint64_t)bo->tp_jobs, .ordered = ordered};
    double t = fq_run_stream(&o, &s, bo->lookahead, out, "fq throughput");
    uint64_t n = s.n;
    if (s.taken != n || s.sum != n * (n + 1) / 2)
        die("fq throughput: %" PRIu64 " outcomes, sum %" PRIu64, s.taken,
            s.sum);
    out->value = (double)n / t;
}
