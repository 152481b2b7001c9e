/*
 * Blame: when a worker's stream breaks or its process goes away because of
 * one job, only that job is reported; the jobs queued behind it on the same
 * worker get their real outcomes, and none of them runs more than twice
 * (twice only when its finished result was lost with the broken stream).
 *
 * Every job counts its runs in memory shared by the test and the workers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

#define NJOBS 40

static _Atomic int *runs; /* runs[id]: how many times job id started */

static int innocent_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t id = fq_ctx_id(ctx);
    runs[id]++;
    fqp_sleep_ms(1);
    return fq_reply(ctx, &id, sizeof id);
}

/* Writes a few bytes (fewer than a frame header) into its channel, then
 * replies normally. */
static int stray_bytes_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t id = fq_ctx_id(ctx);
    int fds[4];
    runs[id]++;
    if (rel_list_sockets(fds, 4) != 1)
        return fq_fail(ctx, 99, "no channel socket found");
    if (write(fds[0], "stray", 5) != 5)
        return fq_fail(ctx, 98, "write");
    return fq_reply(ctx, &id, sizeof id);
}

/* Daemonizes: the worker process exits inside daemon(), the copy that
 * returns here is a new process. */
static int daemon_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t id = fq_ctx_id(ctx);
    runs[id]++;
    if (daemon(1, 1) != 0)
        return fq_fail(ctx, 97, "daemon");
    return fq_reply(ctx, &id, sizeof id);
}

static void setup_runs(void)
{
    runs = fqp_shared_new(sizeof(*runs) * NJOBS);
    assert_non_null((void *)runs);
}

/* Runs job `guilty` (id 0, then NJOBS - 1 innocent jobs) on `workers`
 * workers with `inflight` jobs per worker and checks every outcome. */
static void run_scenario(fq_job_fn guilty, int workers, int inflight,
                         int want_status)
{
    fq_options o = {0};
    o.workers = workers;
    o.inflight = inflight;
    fq_queue q = {0};
    int kids0 = fqp_children(getpid(), NULL, 0, NULL);

    setup_runs();
    assert_int_equal(fq_queue_new(&q, &o), 0);
    for (int i = 0; i < NJOBS; i++)
        assert_int_equal(
            fq_submit(q, i == 0 ? guilty : innocent_job, NULL, 0, NULL, NULL),
            0);
    assert_int_equal(fq_wait(q, 30000), 0);
    int seen = 0;
    fq_result r;
    while (fq_take(q, &r) == 1) {
        seen++;
        if (r.id == 0) {
            print_message("guilty job: %s: %.*s (ran %d times)\n",
                          fq_err_name(r.status), (int)r.len,
                          (const char *)r.data, runs[0]);
            assert_int_equal(r.status, want_status);
            continue;
        }
        if (r.status != 0)
            print_message("innocent job %llu: %s: %.*s\n",
                          (unsigned long long)r.id, fq_err_name(r.status),
                          (int)r.len, (const char *)r.data);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, sizeof(uint64_t));
        uint64_t v;
        memcpy(&v, r.data, sizeof v);
        assert_true(v == r.id);
        assert_in_range(runs[r.id], 1, 2);
    }
    assert_int_equal(seen, NJOBS);
    assert_int_equal(fq_queue_free(q), 0);
    assert_int_equal(fqp_children(getpid(), NULL, 0, NULL), kids0);
    fqp_shared_free((void *)runs, sizeof(*runs) * NJOBS);
}

static void test_stray_bytes_one_worker(void **state)
{
    (void)state;
    run_scenario(stray_bytes_job, 1, 0, FQ_EPROTO);
}

static void test_stray_bytes_deep_batch(void **state)
{
    (void)state;
    run_scenario(stray_bytes_job, 2, 64, FQ_EPROTO);
}

static void test_daemon_job(void **state)
{
    (void)state;
    run_scenario(daemon_job, 1, 16, FQ_ECRASHED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stray_bytes_one_worker),
        cmocka_unit_test(test_stray_bytes_deep_batch),
        cmocka_unit_test(test_daemon_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
