/*
 * Jobs of mixed lengths: a result is not held back behind a long job, and
 * short jobs queued behind a long one do not wait for it while another
 * worker is idle.
 *
 * The thresholds are far from both sides: the long job sleeps 1.5 s, the
 * short ones must be through within 400 ms (about 1 ms each when nothing
 * holds them up), so a loaded machine does not make the tests flaky.
 */
#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

#define LONG_MS 1500
#define SHORT_LIMIT_MS 400

static int sleep_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int ms;
    if (len != sizeof ms)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(&ms, arg, sizeof ms);
    if (ms > 0)
        fqp_sleep_ms(ms);
    if (ms < 0) { /* -ms microseconds */
        struct timespec ts = {0, (long)-ms * 1000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    return fq_reply(ctx, &ms, sizeof ms);
}

static uint64_t submit_ms(fq_queue q, int ms)
{
    uint64_t id;
    assert_int_equal(fq_submit(q, sleep_job, &ms, sizeof ms, NULL, &id), 0);
    return id;
}

/* Takes outcomes until every short job (all ids but `long_id`) is in, or
 * the limit passes, waiting up to poll_ms at a time; returns the time it
 * took. */
static int64_t shorts_done_polling(fq_queue q, uint64_t long_id, int nshort,
                                   int *long_seen, int poll_ms)
{
    int64_t t0 = fqp_now_ms();
    int got = 0;
    while (got < nshort && fqp_now_ms() - t0 < 10000) {
        fq_result r;
        int n = fq_poll(q, poll_ms);
        assert_true(n >= 0);
        while (fq_take(q, &r) == 1) {
            assert_int_equal(r.status, 0);
            if (r.id == long_id)
                *long_seen = 1;
            else
                got++;
        }
    }
    assert_int_equal(got, nshort);
    return fqp_now_ms() - t0;
}

static int64_t shorts_done(fq_queue q, uint64_t long_id, int nshort,
                           int *long_seen)
{
    return shorts_done_polling(q, long_id, nshort, long_seen, 50);
}

/* One worker with room for 8 jobs: those sent while it is busy arrive
 * together. */
static fq_queue one_worker_queue(void)
{
    fq_options o = {0};
    o.workers = 1;
    o.inflight = 8;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    return q;
}

/* One worker: an instant job, then a long one sent in the same batch. The
 * instant job's result must not wait for the long job to end. */
static void test_result_not_held_behind_long_job(void **state)
{
    (void)state;
    fq_queue q = one_worker_queue();
    /* The worker is busy while both are sent, so they arrive together. */
    submit_ms(q, 50);
    uint64_t instant = submit_ms(q, 0);
    uint64_t long_id = submit_ms(q, LONG_MS);
    (void)instant;
    int long_seen = 0;
    int64_t ms = shorts_done(q, long_id, 2, &long_seen);
    print_message("instant job's result after %lld ms\n", (long long)ms);
    assert_false(long_seen);
    assert_true(ms < 50 + SHORT_LIMIT_MS);
    assert_int_equal(fq_queue_free(q), 0);
}

/* A worker whose jobs run a millisecond or more sends each result at once,
 * and the parent stops looking into its out[] (flush_each). When short jobs
 * come again it holds results again: the parent must look again, or the
 * second instant job's result would wait for the long job behind it. */
static void test_result_not_held_after_long_jobs(void **state)
{
    (void)state;
    fq_queue q = one_worker_queue();
    /* A 20 ms job, and behind it (sent while it runs) two jobs of 0.8 ms
     * and a long one. After the 20 ms job the worker sends each result;
     * after the first short job it holds them again, and the queue (which
     * saw the 20 ms result) must start looking into out[] again. */
    submit_ms(q, 20);
    for (int i = 0; i < 2; i++)
        submit_ms(q, -800);
    uint64_t long_id = submit_ms(q, LONG_MS);
    /* Each wait may block up to 5 s: only the queue's own look into out[]
     * can end it before the long job does. */
    int long_seen = 0;
    int64_t ms = shorts_done_polling(q, long_id, 3, &long_seen, 5000);
    print_message("results before the long job after %lld ms\n", (long long)ms);
    assert_false(long_seen);
    assert_true(ms < 20 + SHORT_LIMIT_MS);
    assert_int_equal(fq_queue_free(q), 0);
}

/* Two workers with a deep window (many tiny jobs first), then a long job
 * and short jobs: those sent behind the long job move to the idle worker. */
static void test_short_jobs_not_stuck_behind_long_job(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 2;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    for (int i = 0; i < 2000; i++)
        submit_ms(q, 0);
    assert_int_equal(fq_wait(q, 30000), 0);
    fq_result r;
    while (fq_take(q, &r) == 1)
        assert_int_equal(r.status, 0);

    uint64_t long_id = submit_ms(q, LONG_MS);
    for (int i = 0; i < 60; i++)
        submit_ms(q, 1);
    int long_seen = 0;
    int64_t ms = shorts_done(q, long_id, 60, &long_seen);
    print_message("60 short jobs behind a %d ms one: %lld ms\n", LONG_MS,
                  (long long)ms);
    assert_false(long_seen);
    assert_true(ms < SHORT_LIMIT_MS);
    assert_int_equal(fq_wait(q, 10000), 0);
    assert_int_equal(fq_take(q, &r), 1);
    assert_true(r.id == long_id);
    assert_int_equal(r.status, 0);
    fq_stats st;
    assert_int_equal(fq_stats_get(q, &st), 0);
    assert_true(st.finished == st.submitted);
    assert_int_equal(fq_queue_free(q), 0);
}

static int pid_after_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    if (ms > 0)
        fqp_sleep_ms(ms);
    int pid = (int)getpid();
    return fq_reply(ctx, &pid, sizeof pid);
}

/* Taking jobs back for an idle worker must not change retirement: with
 * max_jobs_per_worker 2, every worker runs exactly two jobs, even when its
 * first job runs long while its replacement sits idle. */
static void test_retiring_worker_keeps_its_jobs(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 1;
    o.max_jobs_per_worker = 2;
    o.inflight = 4;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    for (int i = 0; i < 6; i++) {
        int ms = i % 2 == 0 ? 30 : 0;
        assert_int_equal(
            fq_submit(q, pid_after_job, &ms, sizeof ms, NULL, NULL), 0);
    }
    assert_int_equal(fq_wait(q, 20000), 0);
    int pids[6], n = 0;
    fq_result r;
    while (fq_take(q, &r) == 1) {
        assert_int_equal(r.status, 0);
        memcpy(&pids[n++], r.data, sizeof(int));
    }
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++) {
        int same = 0;
        for (int k = 0; k < 6; k++)
            same += pids[k] == pids[i];
        assert_int_equal(same, 2);
    }
    assert_int_equal(fq_queue_free(q), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_not_held_behind_long_job),
        cmocka_unit_test(test_result_not_held_after_long_jobs),
        cmocka_unit_test(test_short_jobs_not_stuck_behind_long_job),
        cmocka_unit_test(test_retiring_worker_keeps_its_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
