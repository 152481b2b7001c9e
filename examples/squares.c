/*
 * squares: the forkqueue demo.
 *
 * Squares the numbers 0 to 9 in two forked worker processes. The job for 7
 * kills its own worker on purpose: that job ends with FQ_ECRASHED, a fresh
 * worker takes over, and every other job still gets its result.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "forkqueue.h"

/* A job: runs in a worker, reads its argument bytes, replies with bytes. */
static int square(fq_ctx *ctx, const void *arg, size_t len)
{
    long x = *(const long *)arg;
    (void)len;
    if (x == 7)
        raise(SIGKILL); /* stands in for a segfault or the OOM killer */
    long y = x * x;
    return fq_reply(ctx, &y, sizeof y);
}

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", what, fq_strerror(rc));
        exit(1);
    }
}

int main(void)
{
    fq_options opts = {0};
    opts.workers = 2;
    opts.ordered = 1; /* take outcomes in submission order */

    fq_queue q = {0};
    check(fq_queue_new(&q, &opts), "fq_queue_new");

    /* Automatic job ids count from 0, so here a job's id is its x. */
    for (long x = 0; x < 10; x++)
        check(fq_submit(q, square, &x, sizeof x, NULL, NULL), "fq_submit");
    check(fq_wait(q, -1), "fq_wait");

    fq_result r;
    int rc;
    while ((rc = fq_take(q, &r)) == 1) {
        if (r.status == 0)
            printf("%" PRIu64 " squared is %ld\n", r.id, *(const long *)r.data);
        else
            printf("%" PRIu64 " failed: %s, signal %d\n", r.id,
                   fq_err_name(r.status), r.signo);
    }
    check(rc, "fq_take");

    fq_stats st;
    check(fq_stats_get(q, &st), "fq_stats_get");
    printf("%" PRIu64 " jobs, %" PRIu64 " crashed\n", st.submitted, st.crashed);
    check(fq_queue_free(q), "fq_queue_free");
    return 0;
}
