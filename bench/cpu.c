/*
 * cpu_speedup: ~100 us CPU-bound jobs on 2 workers, versus the same
 * function called in a sequential loop; two forked loops without any
 * communication give the machine's ceiling.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "figures.h"

void run_sequential(long njobs, run_info *out)
{
    uint64_t sum = 0;
    long pm0 = migrations(getpid());
    meter m0, m1;
    meter_read(&m0, NULL, 0);
    double t0 = now_s();
    for (long i = 0; i < njobs; i++)
        sum += burn((uint64_t)i, cpu_iters);
    double t = now_s() - t0;
    meter_read(&m1, NULL, 0);
    out->other = meter_other(&m0, &m1);
    out->checksum = sum;
    observe(&out->where, NULL, 0, pm0);
    out->value = (double)njobs / t;
    out->job_us = t / (double)njobs * 1e6;
    out->cross = -1;
}

/*
 * The machine's own ceiling: two forked processes share the loop between
 * them without any communication. No pool can beat it, and on a shared
 * machine it shows how much parallelism was there to be had.
 */
void run_forked_loops(long njobs, run_info *out)
{
    pid_t pids[2];
    meter m0, m1;
    fflush(NULL);
    meter_read(&m0, NULL, 0);
    double t0 = now_s();
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        if (pids[k] < 0)
            die("fork: %s", strerror(errno));
        if (pids[k] == 0) {
            volatile uint64_t sink = 0;
            for (long i = k; i < njobs; i += 2)
                sink += burn((uint64_t)i, cpu_iters);
            (void)sink;
            _exit(0);
        }
    }
    /* Wait without reaping: the children's CPU time is read from /proc
     * before they go. */
    while (waitid(P_PID, (id_t)pids[0], NULL, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR)
        ;
    while (waitid(P_PID, (id_t)pids[1], NULL, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR)
        ;
    double t = now_s() - t0;
    meter_read(&m1, pids, 2);
    out->other = meter_other(&m0, &m1);
    for (int k = 0; k < 2; k++)
        reap(pids[k]);
    out->value = (double)njobs / t;
    out->cross = -1;
}

void run_fq_cpu(const bench_opts *bo, run_info *out)
{
    fq_options o = {0};
    o.workers = 2;
    o.inflight = bo->inflight;
    stream_state s = {.n = (uint64_t)bo->cpu_jobs, .iters = cpu_iters};
    double t = fq_run_stream(&o, &s, 0, out, "fq cpu");
    if (s.taken != s.n)
        die("fq cpu: %" PRIu64 " outcomes of %" PRIu64, s.taken, s.n);
    out->value = (double)s.n / t;
    out->checksum = s.sum;
}
