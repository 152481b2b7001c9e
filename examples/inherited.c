/*
 * inherited: a job that reads data the parent built before the queue
 * existed. Prints a + (a + 1) + (1 + 2 + 3) for a = 0 .. 99, one per line
 * (7, 9, ..., 205), computed by four workers.
 *
 * Workers are forks of the parent, so the array below exists in each of
 * them at the same address: the job follows the pointer it finds in udata
 * and nothing is serialised or copied up front.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "forkqueue.h"

struct table {
    long *values;
    size_t count;
};

struct pair {
    long a, b;
};

static int sum_with_table(fq_ctx *ctx, const void *arg, size_t len)
{
    const struct table *c = fq_ctx_udata(ctx);
    const struct pair *p = arg;
    if (len != sizeof *p)
        return fq_fail(ctx, 1, "expected a struct pair");
    long sum = p->a + p->b;
    for (size_t i = 0; i < c->count; i++)
        sum += c->values[i];
    return fq_reply(ctx, &sum, sizeof sum);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, fq_strerror(rc));
    exit(1);
}

int main(void)
{
    /* Built at run time on the heap, before the queue forks its workers. */
    struct table c = {malloc(3 * sizeof(long)), 3};
    if (c.values == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < c.count; i++)
        c.values[i] = (long)i + 1;

    fq_options opts = {0};
    opts.workers = 4;
    opts.ordered = 1;
    opts.udata = &c;

    fq_queue q = {0};
    int rc = fq_queue_new(&q, &opts);
    if (rc < 0)
        die("fq_queue_new", rc);

    enum { NJOBS = 100 };
    for (long a = 0; a < NJOBS; a++) {
        struct pair p = {a, a + 1};
        rc = fq_submit(q, sum_with_table, &p, sizeof p, NULL, NULL);
        if (rc < 0)
            die("fq_submit", rc);
    }

    /* Wait for outcomes and print each as soon as it is next in order. */
    for (int taken = 0; taken < NJOBS;) {
        fq_result r;
        rc = fq_take(q, &r);
        if (rc < 0)
            die("fq_take", rc);
        if (rc == 0) {
            rc = fq_poll(q, -1);
            if (rc < 0)
                die("fq_poll", rc);
            continue;
        }
        if (r.status != 0) {
            fprintf(stderr, "job %" PRIu64 ": %s\n", r.id,
                    (const char *)r.data);
            return 1;
        }
        if (r.len != sizeof(long)) {
            fprintf(stderr, "job %" PRIu64 ": bad result size\n", r.id);
            return 1;
        }
        printf("%ld\n", *(const long *)r.data);
        taken++;
    }

    rc = fq_queue_free(q);
    if (rc < 0)
        die("fq_queue_free", rc);
    free(c.values);
    return 0;
}
