/* The jobs fq_bench runs, the checks of their outcomes, and the queue
 * under measurement (fq_run_*). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* ---- the work ----------------------------------------------------------- */

/* A dependent xorshift chain: no vectorising or shortcut is possible, so
 * its run time is proportional to iters. */
__attribute__((noinline)) uint64_t burn(uint64_t seed, uint64_t iters)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15u | 1;
    for (uint64_t i = 0; i < iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

uint64_t cpu_iters;

void calibrate(double target_us)
{
    uint64_t probe = 200000;
    double best = 1e9;
    burn(1, probe); /* fault in, warm up the clock */
    for (int i = 0; i < 5; i++) {
        double t0 = now_s();
        volatile uint64_t r = burn((uint64_t)i, probe);
        (void)r;
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    double ns_per_iter = best * 1e9 / (double)probe;
    cpu_iters = (uint64_t)(target_us * 1e3 / ns_per_iter);
    if (cpu_iters < 1)
        cpu_iters = 1;
}

int job_cpu(fq_ctx *ctx, const void *arg, size_t len)
{
    cpu_arg a;
    if (len != sizeof a)
        return fq_fail(ctx, 1, "bad argument length");
    memcpy(&a, arg, sizeof a);
    uint64_t r = burn(a.seed, a.iters);
    return fq_reply(ctx, &r, sizeof r) < 0 ? 2 : 0;
}

/* The tiny job: x + 1. */
int job_inc(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t x;
    if (len != sizeof x)
        return fq_fail(ctx, 1, "bad argument length");
    memcpy(&x, arg, sizeof x);
    x++;
    return fq_reply(ctx, &x, sizeof x) < 0 ? 2 : 0;
}

/* The latency job answers with the CPU it ran on, so that each round trip
 * can be classified as same-CPU or cross-CPU. */
int job_where(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t c = (uint64_t)sched_getcpu();
    return fq_reply(ctx, &c, sizeof c) < 0 ? 2 : 0;
}

void fq_check(int rc, const char *what)
{
    if (rc < 0)
        die("%s: %s (%s)", what, fq_strerror(rc), fq_err_name(rc));
}

void fq_check_result(const fq_result *r)
{
    if (r->status != 0)
        die("job %" PRIu64 " failed: %s: %.*s", r->id, fq_err_name(r->status),
            (int)r->len, (const char *)r->data);
    if (r->len != sizeof(uint64_t))
        die("job %" PRIu64 ": result of %zu bytes", r->id, r->len);
}

uint64_t result_u64(const fq_result *r)
{
    uint64_t v;
    memcpy(&v, r->data, sizeof v);
    return v;
}

/* ---- a queue under measurement ------------------------------------------ */

void fq_run_open(fq_run *r, const fq_options *o)
{
    r->q = (fq_queue){0};
    r->pm0 = migrations(getpid());
    fflush(NULL);
    fq_check(fq_queue_new(&r->q, o), "fq_queue_new");
    int nw = fq_worker_pids(r->q, r->pids, 8);
    r->nw = nw < 8 ? nw : 8;
}

void fq_run_start(fq_run *r)
{
    meter_read(&r->m0, r->pids, r->nw);
    r->t0 = now_s();
}

double fq_run_stop(fq_run *r, run_info *out, const char *what)
{
    double t = now_s() - r->t0;
    meter m1;
    meter_read(&m1, r->pids, r->nw);
    out->other = meter_other(&r->m0, &m1);
    /* A replaced worker would have escaped the meter. */
    if (fq_worker_pids(r->q, r->pids, 8) != r->nw)
        die("%s: the workers changed", what);
    observe(&out->where, r->pids, r->nw, r->pm0);
    fq_check(fq_queue_free(r->q), "fq_queue_free");
    out->cross = -1;
    return t;
}

static int stream_produce(fq_queue q, void *udata)
{
    stream_state *s = udata;
    if (s->next >= s->n)
        return 0;
    int rc;
    if (s->iters) {
        cpu_arg a = {.seed = s->next++, .iters = s->iters};
        rc = fq_submit(q, job_cpu, &a, sizeof a, NULL, NULL);
    } else {
        uint64_t x = s->next++;
        rc = fq_submit(q, job_inc, &x, sizeof x, NULL, NULL);
    }
    return rc < 0 ? rc : 1;
}

static int stream_consume(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    stream_state *s = udata;
    fq_check_result(r);
    uint64_t v = result_u64(r);
    /* Automatic ids start at 0 and follow submission order, so an ordered
     * queue must hand back job i as the i-th outcome. */
    if (s->ordered && (r->id != s->taken || v != s->taken + 1))
        die("ordered: outcome %" PRIu64 " has id %" PRIu64 " value %" PRIu64,
            s->taken, r->id, v);
    s->sum += v;
    s->taken++;
    return 0;
}

double fq_run_stream(const fq_options *o, stream_state *s, size_t lookahead,
                     run_info *out, const char *what)
{
    fq_run r;
    fq_run_open(&r, o);
    fq_run_start(&r);
    fq_check(fq_stream(r.q, stream_produce, stream_consume, s, lookahead),
             "fq_stream");
    return fq_run_stop(&r, out, what);
}
