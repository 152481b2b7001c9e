/*
 * unordered_ids: take outcomes in whatever order jobs finish, and use each
 * outcome's job id to put its result in the right place. Prints
 * [1, 4, 9, 16].
 *
 * Unordered mode hands out a result as soon as it arrives, so nothing waits
 * behind a slow job and the queue buffers less.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "forkqueue.h"

struct factors {
    long x, y;
};

static int multiply(fq_ctx *ctx, const void *arg, size_t len)
{
    const struct factors *f = arg;
    if (len != sizeof *f)
        return fq_fail(ctx, 1, "expected struct factors");
    long p = f->x * f->y;
    return fq_reply(ctx, &p, sizeof p);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, fq_strerror(rc));
    exit(1);
}

int main(void)
{
    enum { N = 4 };
    long out[N];
    fq_options opts = {0}; /* ordered = 0: completion order */

    fq_queue q = {0};
    int rc = fq_queue_new(&q, &opts);
    if (rc < 0)
        die("fq_queue_new", rc);

    /* The ids are given here to show how; the automatic ids would be the
     * same (they count from 0). An id may be any uint64_t not in use. */
    for (int i = 0; i < N; i++) {
        struct factors f = {i + 1, i + 1};
        fq_job_options jo = {0};
        jo.id = (uint64_t)i;
        jo.flags = FQ_JOB_ID;
        rc = fq_submit(q, multiply, &f, sizeof f, &jo, NULL);
        if (rc < 0)
            die("fq_submit", rc);
    }

    for (int taken = 0; taken < N;) {
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
        if (r.status != 0 || r.len != sizeof(long) || r.id >= N) {
            fprintf(stderr, "job %" PRIu64 ": %s\n", r.id,
                    r.status != 0 ? (const char *)r.data : "bad result");
            return 1;
        }
        out[r.id] = *(const long *)r.data;
        taken++;
    }

    rc = fq_queue_free(q);
    if (rc < 0)
        die("fq_queue_free", rc);

    printf("[");
    for (int i = 0; i < N; i++)
        printf("%s%ld", i ? ", " : "", out[i]);
    printf("]\n");
    return 0;
}
