/*
 * Jobs as futures: submit through handles, wait for one, cancel another,
 * and let a callback collect the rest.
 *
 *   build/examples/jobs
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "forkqueue.h"

static int square(fq_ctx *ctx, const void *arg, size_t len)
{
    int64_t x;
    if (len != sizeof x)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(&x, arg, sizeof x);
    x *= x;
    return fq_reply(ctx, &x, sizeof x);
}

/* Runs until it is cancelled (a process worker is stopped by SIGTERM). */
static int forever(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    struct timespec ms = {0, 1000000};
    while (!fq_ctx_cancelled(ctx))
        nanosleep(&ms, NULL);
    return 0;
}

static void collect(fq_job *job, void *arg)
{
    int64_t *sum = arg, v;
    fq_result r;
    if (fq_job_result(job, &r) == 0 && r.status == 0) {
        memcpy(&v, r.data, sizeof v);
        *sum += v;
    }
    fq_job_free(job); /* given to the callback at submission */
}

int main(void)
{
    fq_queue q;
    fq_options o = {0};
    o.workers = 2;
    if (fq_queue_new(&q, &o) != 0)
        return 1;

    /* One job waited for. */
    fq_job *one, *slow;
    int64_t x = 12;
    fq_job_submit(q, square, &x, sizeof x, NULL, &one);
    if (fq_job_wait(one, -1) == 0) {
        fq_result r;
        int64_t v;
        fq_job_result(one, &r);
        memcpy(&v, r.data, sizeof v);
        printf("12 squared is %lld\n", (long long)v);
    }
    fq_job_free(one);

    /* One cancelled while it runs. */
    fq_job_submit(q, forever, NULL, 0, NULL, &slow);
    while (fq_job_done(slow) == 0) {
        fq_stats st;
        fq_stats_get(q, &st);
        if (st.running == 1 && st.pending == 0)
            break; /* sent: it is running or about to */
    }
    printf("cancel: %d\n", fq_job_cancel(slow));
    fq_result r;
    fq_job_result(slow, &r);
    printf("the slow job ended %s\n", fq_err_name(r.status));
    fq_job_free(slow);

    /* Many, collected by their callback. */
    int64_t sum = 0;
    fq_job_options jo = {0};
    jo.callback = collect;
    jo.callback_arg = &sum;
    for (x = 1; x <= 100; x++) {
        fq_job *j;
        fq_job_submit(q, square, &x, sizeof x, &jo, &j);
    }
    fq_wait(q, -1); /* runs the callbacks */
    printf("sum of the squares of 1..100: %lld\n", (long long)sum);

    fq_queue_free(q);
    return 0;
}
