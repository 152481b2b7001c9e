/*
 * latency_roundtrip: one tiny job at a time on 1 worker, versus a raw
 * socketpair ping-pong with one child, under each CPU placement. Every
 * round trip answers with the CPU the other side ran on, so that it can be
 * classified as same-CPU or cross-CPU.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "figures.h"

#define WARMUP 200

void measure_roundtrips(roundtrip_fn trip, void *ctx, const pid_t *kids, int n,
                        long pm0, long iters, run_info *out)
{
    long cross = 0;
    double t0 = 0;
    meter m0, m1;
    for (long i = -WARMUP; i < iters; i++) {
        if (i == 0) {
            meter_read(&m0, kids, n);
            t0 = now_s();
        }
        uint64_t cpu = trip(ctx, i);
        if (i >= 0 && (int)cpu != sched_getcpu())
            cross++;
    }
    double t = now_s() - t0;
    meter_read(&m1, kids, n);
    out->other = meter_other(&m0, &m1);
    observe(&out->where, kids, n, pm0);
    out->value = t / (double)iters * 1e6;
    out->cross = (double)cross / (double)iters;
}

/* Baseline of the latency: the child answers each 8-byte message with the
 * CPU it ran on. */
static uint64_t where_answer(uint64_t m)
{
    (void)m;
    return (uint64_t)sched_getcpu();
}

static uint64_t pingpong_trip(void *ctx, long i)
{
    int fd = *(int *)ctx;
    uint64_t m = (uint64_t)i;
    if (write_full(fd, &m, sizeof m) < 0 || read_full(fd, &m, sizeof m) != 1)
        die("ping-pong: %s", strerror(errno));
    return m;
}

void run_pingpong(enum placement pl, long iters, run_info *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair: %s", strerror(errno));
    place_parent(pl);
    long pm0 = migrations(getpid());
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(sv[0]);
        baseline_child(sv[1], where_answer);
    }
    close(sv[1]);
    place_child(pid, pl);
    measure_roundtrips(pingpong_trip, &sv[0], &pid, 1, pm0, iters, out);
    close(sv[0]);
    reap(pid);
    unplace();
}

void run_fq_latency_with(enum placement pl, long iters, roundtrip_fn trip,
                         run_info *out)
{
    fq_options o = {0};
    o.workers = 1;
    place_parent(pl);
    fq_run r;
    fq_run_open(&r, &o);
    if (r.nw != 1)
        die("expected 1 worker, got %d", r.nw);
    place_child(r.pids[0], pl);
    measure_roundtrips(trip, &r.q, r.pids, r.nw, r.pm0, iters, out);
    fq_check(fq_queue_free(r.q), "fq_queue_free");
    unplace();
}

static uint64_t submit_trip(void *ctx, long i)
{
    fq_queue q = *(fq_queue *)ctx;
    fq_result r;
    fq_check(fq_submit(q, job_where, &i, sizeof i, NULL, NULL), "fq_submit");
    /* Waiting first spares a read that would find nothing yet. */
    int rc;
    do
        fq_check(fq_poll(q, -1), "fq_poll");
    while ((rc = fq_take(q, &r)) == 0);
    fq_check(rc, "fq_take");
    fq_check_result(&r);
    return result_u64(&r);
}

void run_fq_latency(enum placement pl, long iters, run_info *out)
{
    run_fq_latency_with(pl, iters, submit_trip, out);
}
