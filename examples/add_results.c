/*
 * add_results: submit jobs one by one, possibly running different
 * functions, then collect every outcome. Prints 0, 1 and 4.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "forkqueue.h"

static int square(fq_ctx *ctx, const void *arg, size_t len)
{
    long x;
    if (len != sizeof x)
        return fq_fail(ctx, 1, "expected one long");
    x = *(const long *)arg;
    x *= x;
    return fq_reply(ctx, &x, sizeof x);
}

static int identity(fq_ctx *ctx, const void *arg, size_t len)
{
    /* No copy needed: fq_reply() copies the bytes it is given. */
    return fq_reply(ctx, arg, len);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, fq_strerror(rc));
    exit(1);
}

static void add(fq_queue q, fq_job_fn fn, long x)
{
    int rc = fq_submit(q, fn, &x, sizeof x, NULL, NULL);
    if (rc < 0)
        die("fq_submit", rc);
}

int main(void)
{
    fq_options opts = {0};
    opts.ordered = 1;

    fq_queue q = {0};
    int rc = fq_queue_new(&q, &opts);
    if (rc < 0)
        die("fq_queue_new", rc);

    add(q, square, 0);
    add(q, identity, 1);
    add(q, square, 2);

    /* Runs every job to its outcome and stops the workers; the outcomes
     * stay in the queue until taken. */
    rc = fq_finish(q);
    if (rc < 0)
        die("fq_finish", rc);

    fq_result r;
    while ((rc = fq_take(q, &r)) == 1) {
        if (r.status != 0 || r.len != sizeof(long)) {
            fprintf(stderr, "job %" PRIu64 ": %s\n", r.id,
                    r.status != 0 ? (const char *)r.data : "bad size");
            return 1;
        }
        printf("%ld\n", *(const long *)r.data);
    }
    if (rc < 0)
        die("fq_take", rc);

    rc = fq_queue_free(q);
    if (rc < 0)
        die("fq_queue_free", rc);
    return 0;
}
