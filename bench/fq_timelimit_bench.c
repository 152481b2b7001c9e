/*
 * fq_timelimit_bench: what a time limit costs the parent on tiny jobs.
 * Streams JOBS tiny jobs (x + 1) through fq_stream() on 2 workers, with a
 * queue time limit of TIMEOUT_MS (0: none), and prints the parent's CPU
 * time. Instruction counts, which the machine's load does not move, come
 * from running it under callgrind with two job counts and subtracting
 * (docs/benchmarks.md, "Python: ForkQueue"):
 *
 *   fq_timelimit_bench [JOBS [TIMEOUT_MS]]      default 200000 0
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forkqueue.h"

static long njobs, next_x;
static uint64_t sum;

static int inc_job(fq_ctx *c, const void *arg, size_t len)
{
    uint64_t x;
    if (len != sizeof x)
        return 1;
    memcpy(&x, arg, sizeof x);
    x += 1;
    return fq_reply(c, &x, sizeof x);
}

static int produce(fq_queue q, void *udata)
{
    (void)udata;
    if (next_x >= njobs)
        return 0;
    uint64_t x = (uint64_t)next_x++;
    return fq_submit(q, inc_job, &x, sizeof x, NULL, NULL) < 0 ? -1 : 1;
}

static int consume(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    (void)udata;
    uint64_t v;
    if (r->status != 0 || r->len != sizeof v)
        return -1;
    memcpy(&v, r->data, sizeof v);
    sum += v;
    return 0;
}

static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    njobs = argc > 1 ? atol(argv[1]) : 200000;
    fq_options o = {0};
    o.workers = 2;
    o.timeout_ms = argc > 2 ? atoi(argv[2]) : 0;
    if (njobs < 1 || o.timeout_ms < 0) {
        fprintf(stderr, "usage: fq_timelimit_bench [JOBS [TIMEOUT_MS]]\n");
        return 2;
    }
    fq_queue q;
    int rc = fq_queue_new(&q, &o);
    if (rc < 0) {
        fprintf(stderr, "fq_queue_new: %s\n", fq_strerror(rc));
        return 1;
    }
    double c0 = cpu_ms();
    rc = fq_stream(q, produce, consume, NULL, 0);
    double c1 = cpu_ms();
    fq_finish(q);
    fq_queue_free(q);
    uint64_t want = (uint64_t)njobs * (uint64_t)(njobs + 1) / 2;
    if (rc != 0 || sum != want) {
        fprintf(stderr, "fq_stream: %d, sum %llu (want %llu)\n", rc,
                (unsigned long long)sum, (unsigned long long)want);
        return 1;
    }
    printf("%ld jobs, time limit %d ms: parent CPU %.1f ms\n", njobs,
           o.timeout_ms, c1 - c0);
    return 0;
}
