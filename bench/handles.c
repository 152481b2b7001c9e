/*
 * latency_jobs, throughput_jobs: the same round trip and the same tiny jobs
 * as latency_roundtrip and throughput_unordered, submitted through job
 * handles (fq_job_submit, futures), against the same baselines: what a
 * handle adds to fq_submit/fq_take.
 */
#include <inttypes.h>
#include <stdio.h>

#include "figures.h"

/* One round trip through a handle: fq_job_submit, fq_job_wait,
 * fq_job_result, fq_job_free. */
static uint64_t job_trip(void *ctx, long i)
{
    fq_queue q = *(fq_queue *)ctx;
    fq_job *j;
    fq_result r;
    fq_check(fq_job_submit(q, job_where, &i, sizeof i, NULL, &j),
             "fq_job_submit");
    fq_check(fq_job_wait(j, -1), "fq_job_wait");
    fq_check(fq_job_result(j, &r), "fq_job_result");
    fq_check_result(&r);
    uint64_t cpu = result_u64(&r);
    fq_job_free(j);
    return cpu;
}

void run_fq_latency_jobs(enum placement pl, long iters, run_info *out)
{
    run_fq_latency_with(pl, iters, job_trip, out);
}

/* Throughput through job handles: the same tiny jobs and window as
 * fq_stream()'s default, each submitted with a completion callback and its
 * handle released at once (fire and forget); fq_poll() drives the queue
 * and runs the callbacks. */
typedef struct tpj_state {
    uint64_t done, sum;
} tpj_state;

static void tpj_done(fq_job *j, void *arg)
{
    tpj_state *s = arg;
    fq_result r;
    fq_check(fq_job_result(j, &r), "fq_job_result");
    fq_check_result(&r);
    s->sum += result_u64(&r);
    s->done++;
}

void run_fq_throughput_jobs(const bench_opts *bo, run_info *out)
{
    fq_options o = {0};
    o.workers = 2;
    o.inflight = bo->inflight;
    fq_run r;
    fq_run_open(&r, &o);
    tpj_state s = {0, 0};
    fq_job_options jo = {0};
    jo.callback = tpj_done;
    jo.callback_arg = &s;
    size_t window = bo->lookahead;
    if (window == 0) { /* fq_stream()'s default for 2 workers */
        size_t depth = bo->inflight > 0 ? (size_t)bo->inflight : 256;
        window = 4 * 2 * depth;
    }
    fq_run_start(&r);
    uint64_t n = (uint64_t)bo->tp_jobs, next = 0;
    while (s.done < n) {
        while (next < n && next - s.done < window) {
            fq_job *j;
            uint64_t x = next++;
            fq_check(fq_job_submit(r.q, job_inc, &x, sizeof x, &jo, &j),
                     "fq_job_submit");
            fq_job_free(j);
        }
        fq_check(fq_poll(r.q, -1), "fq_poll");
    }
    double t = fq_run_stop(&r, out, "fq throughput (handles)");
    if (s.done != n || s.sum != n * (n + 1) / 2)
        die("fq throughput (handles): %" PRIu64 " outcomes, sum %" PRIu64,
            s.done, s.sum);
    out->value = (double)n / t;
}
