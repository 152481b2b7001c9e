/*
 * process: run one function over a list of arguments and print the results
 * in order, as they arrive. Prints 1, 2, 3 and 4 on four lines.
 *
 * fq_stream() pulls jobs from a producer only while few are outstanding, so
 * the same code works for an argument list too long to hold in memory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "forkqueue.h"

static int add_one(fq_ctx *ctx, const void *arg, size_t len)
{
    long x;
    if (len != sizeof x)
        return fq_fail(ctx, 1, "expected one long");
    x = *(const long *)arg + 1;
    return fq_reply(ctx, &x, sizeof x);
}

struct args {
    const long *items;
    size_t count;
    size_t next;
};

/* Submits the next argument, or returns 0 when there is none left. */
static int produce(fq_queue q, void *udata)
{
    struct args *a = udata;
    if (a->next == a->count)
        return 0;
    int rc =
        fq_submit(q, add_one, &a->items[a->next], sizeof(long), NULL, NULL);
    if (rc < 0)
        return rc;
    a->next++;
    return 1;
}

/* Prints one result; a non-zero return stops the stream. */
static int consume(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    (void)udata;
    if (r->status != 0) {
        fprintf(stderr, "job %" PRIu64 ": %s\n", r->id, (const char *)r->data);
        return 1;
    }
    if (r->len != sizeof(long)) {
        fprintf(stderr, "job %" PRIu64 ": unexpected result size %zu\n", r->id,
                r->len);
        return 1;
    }
    printf("%ld\n", *(const long *)r->data);
    return 0;
}

int main(void)
{
    static const long items[] = {0, 1, 2, 3};
    struct args a = {items, sizeof items / sizeof items[0], 0};
    fq_options opts = {0};
    opts.ordered = 1;

    fq_queue q = {0};
    int rc = fq_queue_new(&q, &opts);
    if (rc < 0) {
        fprintf(stderr, "fq_queue_new: %s\n", fq_strerror(rc));
        return 1;
    }
    rc = fq_stream(q, produce, consume, &a, 0);
    if (rc < 0)
        fprintf(stderr, "fq_stream: %s\n", fq_strerror(rc));
    int frc = fq_queue_free(q);
    if (frc < 0) {
        fprintf(stderr, "fq_queue_free: %s\n", fq_strerror(frc));
        return 1;
    }
    return rc == 0 ? 0 : 1;
}
