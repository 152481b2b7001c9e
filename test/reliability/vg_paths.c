/*
 * A small tour of the error and teardown paths of the core, sized to run
 * under valgrind memcheck in a few tens of seconds: results (small, large,
 * ordered, streamed), job errors, crashes, a time-out, garbage from a job,
 * results over the size limit, cancellation with jobs running, refork,
 * finish, and freeing a queue with work in flight.
 *
 * Exits 0 when every outcome is the expected one; valgrind's own exit code
 * (--error-exitcode) reports memory errors and definite leaks, in the parent
 * and in every worker, since valgrind follows fork().
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forkqueue.h"
#include "rel_util.h"

static int failures;

#define EXPECT(c)                                                              \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "vg_paths: line %d: expected %s\n", __LINE__, #c); \
            failures++;                                                        \
        }                                                                      \
    } while (0)

enum { OK, FAIL, KILL, SEGV, HANG, BIG, GARBAGE };

static int tour_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int a[2];
    if (len != sizeof a)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(a, arg, sizeof a);
    switch (a[0]) {
    case FAIL:
        return fq_fail(ctx, 5, "failed on purpose");
    case KILL:
        raise(SIGKILL);
        break;
    case SEGV:
        raise(SIGSEGV);
        break;
    case HANG:
        fqp_sleep_ms(20000);
        break;
    case BIG: {
        size_t n = (size_t)a[1];
        unsigned char *p = malloc(n);
        if (!p)
            return fq_fail(ctx, 2, "malloc failed");
        for (size_t i = 0; i < n; i++)
            p[i] = (unsigned char)(i * 31);
        int rc = fq_reply(ctx, p, n);
        free(p);
        return rc;
    }
    case GARBAGE: {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            struct stat st;
            int fd = atoi(e->d_name);
            if (e->d_name[0] != '.' && fd != dirfd(d) && fstat(fd, &st) == 0 &&
                S_ISSOCK(st.st_mode)) {
                static const char junk[40] = "garbage, not a frame";
                ssize_t w = write(fd, junk, sizeof junk);
                (void)w;
            }
        }
        if (d)
            closedir(d);
        fqp_sleep_ms(20000);
        break;
    }
    default:
        break;
    }
    int v = a[1] * 2;
    return fq_reply(ctx, &v, sizeof v);
}

static fq_queue open_queue(int workers, int ordered, uint64_t max_result)
{
    fq_options o = {0};
    o.workers = workers;
    o.ordered = ordered;
    o.max_result_bytes = max_result;
    o.grace_ms = 200;
    fq_queue q = {0};
    EXPECT(fq_queue_new(&q, &o) == 0);
    return q;
}

static uint64_t submit(fq_queue q, int kind, int v, int timeout_ms)
{
    int a[2] = {kind, v};
    fq_job_options jo = {0};
    jo.timeout_ms = timeout_ms;
    uint64_t id = 0;
    EXPECT(fq_submit(q, tour_job, a, sizeof a, &jo, &id) == 0);
    return id;
}

/* Waits for everything and returns the status of each kind seen, checking
 * plain results on the way. */
static void drain(fq_queue q, int *by_kind_status, const int *kinds, int n)
{
    EXPECT(fq_wait(q, 60000) == 0);
    fq_result r;
    int got = 0;
    while (fq_take(q, &r) == 1) {
        EXPECT(r.id < (uint64_t)n);
        if (r.id >= (uint64_t)n)
            continue;
        by_kind_status[r.id] = r.status;
        if (r.status == 0 && kinds[r.id] == OK) {
            int v;
            EXPECT(r.len == sizeof v);
            memcpy(&v, r.data, sizeof v);
            EXPECT(v == (int)r.id * 2);
        }
        if (r.status == 0 && kinds[r.id] == BIG) {
            const unsigned char *p = r.data;
            EXPECT(r.len == 3u << 20);
            for (size_t i = 0; i < r.len; i += 4099)
                EXPECT(p[i] == (unsigned char)(i * 31));
        }
        got++;
    }
    EXPECT(got == n);
}

struct stream_state {
    int next, n, ok;
};

static int produce(fq_queue q, void *ud)
{
    struct stream_state *s = ud;
    if (s->next >= s->n)
        return 0;
    int a[2] = {OK, s->next++};
    return fq_submit(q, tour_job, a, sizeof a, NULL, NULL) == 0 ? 1 : -1;
}

static int consume(fq_queue q, const fq_result *r, void *ud)
{
    struct stream_state *s = ud;
    (void)q;
    s->ok += r->status == 0;
    return 0;
}

int main(void)
{
    /* One of each path on a two-worker queue, ids 0..n-1 in order. */
    static const int kinds[] = {OK,  FAIL, KILL, OK, SEGV, OK,      HANG,
                                BIG, OK,   OK,   OK, OK,   GARBAGE, OK};
    int n = (int)(sizeof kinds / sizeof *kinds);
    int status[sizeof kinds / sizeof *kinds];
    fq_queue q = open_queue(2, 1, 0);
    for (int i = 0; i < n; i++)
        submit(q, kinds[i], kinds[i] == BIG ? 3 << 20 : i,
               kinds[i] == HANG      ? 300
               : kinds[i] == GARBAGE ? 10000
                                     : 0);
    drain(q, status, kinds, n);
    for (int i = 0; i < n; i++) {
        if (failures == 0)
            fprintf(stderr, "vg_paths: job %d (kind %d): %s\n", i, kinds[i],
                    fq_err_name(status[i]));
        switch (kinds[i]) {
        case OK:
        case BIG:
            EXPECT(status[i] == 0);
            break;
        case FAIL:
            EXPECT(status[i] == FQ_EJOB);
            break;
        case KILL:
        case SEGV:
            EXPECT(status[i] == FQ_ECRASHED);
            break;
        case HANG:
            EXPECT(status[i] == FQ_ETIMEDOUT);
            break;
        case GARBAGE:
            EXPECT(status[i] == FQ_EPROTO);
            break;
        }
    }

    /* A stream, a refork, then finish with the queue empty. */
    struct stream_state s = {0, 300, 0};
    EXPECT(fq_stream(q, produce, consume, &s, 0) == 0);
    EXPECT(s.ok == 300);
    EXPECT(fq_refork(q) == 0);
    s.next = 0;
    s.ok = 0;
    EXPECT(fq_stream(q, produce, consume, &s, 0) == 0);
    EXPECT(s.ok == 300);
    EXPECT(fq_finish(q) == 0);
    EXPECT(fq_queue_free(q) == 0);

    /* Results over the limit, small and large. */
    q = open_queue(1, 0, 1000);
    int a1[2] = {BIG, 5000}, a2[2] = {BIG, 2 << 20};
    EXPECT(fq_submit(q, tour_job, a1, sizeof a1, NULL, NULL) == 0);
    EXPECT(fq_submit(q, tour_job, a2, sizeof a2, NULL, NULL) == 0);
    EXPECT(fq_wait(q, 60000) == 0);
    fq_result r;
    int toobig = 0;
    while (fq_take(q, &r) == 1)
        toobig += r.status == FQ_ETOOBIG;
    EXPECT(toobig == 2);
    EXPECT(fq_queue_free(q) == 0);

    /* Cancel with jobs running and queued. */
    q = open_queue(2, 0, 0);
    for (int i = 0; i < 6; i++)
        submit(q, HANG, i, 0);
    fq_poll(q, 50);
    EXPECT(fq_cancel(q) == 0);
    int canceled = 0;
    while (fq_take(q, &r) == 1)
        canceled += r.status == FQ_ECANCELED;
    EXPECT(canceled == 6);
    EXPECT(fq_queue_free(q) == 0);

    /* Free with work in flight and results not taken. */
    q = open_queue(2, 0, 0);
    for (int i = 0; i < 4; i++)
        submit(q, OK, i, 0);
    for (int i = 0; i < 2; i++)
        submit(q, HANG, i, 0);
    fq_poll(q, 100);
    EXPECT(fq_queue_free(q) == 0);

    int z = 0;
    EXPECT(fqp_children(getpid(), NULL, 0, &z) == 0);
    printf("vg_paths: %s\n", failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
