/* Ending work: finish, cancel (with and without a grace period), freeing
 * a busy queue, refork. */
#include "queue_test.h"

/* ---- finish and cancel ------------------------------------------------ */

static void test_finish(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 1);
    enum { N = 50 };
    for (uint64_t i = 0; i < N; i++) {
        uint64_t a[2] = {500, i};
        FQT_OK(fq_submit(q, job_sleep_value, a, sizeof a, NULL, NULL));
    }
    FQT_OK(fq_finish(q));
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.finished == N);
    assert_true(st.taken == 0);
    assert_int_equal(st.workers, 0);
    assert_int_equal(fq_worker_pids(q, NULL, 0), 0);
    fqt_assert_no_children();
    FQT_EQ(fq_submit(q, fqt_job_echo, "x", 1, NULL, NULL), FQ_EFINISHED);
    FQT_OK(fq_finish(q)); /* harmless twice */
    FQT_OK(fq_wait(q, -1));
    assert_int_equal(fq_poll(q, 0), N);
    for (uint64_t i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fq_take(q, &r), 1);
        assert_true(r.id == i);
        assert_true(fqt_u64(&r) == i);
    }
    fq_result r;
    assert_int_equal(fq_take(q, &r), 0);
    FQT_EQ(fq_refork(q), FQ_EFINISHED);
    int again = fq_cancel(q); /* nothing left to cancel */
    assert_true(again == 0 || again == FQ_EFINISHED);
    FQT_OK(fq_queue_free(q));
}

static void cancel_with(int ignore_term, int grace_ms)
{
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o = {.workers = 2, .inflight = 1, .grace_ms = grace_ms};
    fq_queue q = fqt_queue_opts(&o);
    fqt_submit_gate(q, &g, 1, ignore_term);
    fqt_submit_gate(q, &g, 2, ignore_term);
    pid_t held[2];
    held[0] = fqt_gate_started(q, &g);
    held[1] = fqt_gate_started(q, &g);
    assert_int_not_equal(held[0], held[1]);
    enum { PENDING = 10 };
    for (uint64_t i = 0; i < PENDING; i++)
        fqt_submit_square(q, i);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.running == 2);
    assert_true(st.pending == PENDING);

    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_cancel(q));
    int64_t took = fqp_now_ms() - t0;
    if (ignore_term && grace_ms > 0)
        assert_true(took >= grace_ms - 10); /* SIGTERM alone did nothing */

    /* Workers are reaped before fq_cancel returns. */
    for (int i = 0; i < 2; i++) {
        int stt;
        assert_int_equal(waitpid(held[i], &stt, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
    }
    fqt_assert_no_children();
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.workers, 0);
    assert_true(st.finished == 2 + PENDING);
    assert_true(st.pending == 0 && st.running == 0);

    unsigned char seen[2 + PENDING] = {0};
    for (int i = 0; i < 2 + PENDING; i++) {
        fq_result r;
        assert_int_equal(fq_take(q, &r), 1);
        assert_true(r.id < 2 + PENDING);
        assert_int_equal(seen[r.id], 0);
        seen[r.id] = 1;
        assert_int_equal(r.status, FQ_ECANCELED);
        fqt_assert_msg(&r);
    }
    fq_result r;
    assert_int_equal(fq_take(q, &r), 0);
    FQT_EQ(fq_submit(q, fqt_job_echo, "x", 1, NULL, NULL), FQ_EFINISHED);
    int again = fq_cancel(q); /* twice is harmless */
    assert_true(again == 0 || again == FQ_EFINISHED);
    FQT_OK(fq_finish(q));
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

static void test_cancel(void **state)
{
    (void)state;
    cancel_with(0, 0);
}

static void test_cancel_grace_then_kill(void **state)
{
    (void)state;
    cancel_with(1, 300);
}

static void test_cancel_no_grace(void **state)
{
    (void)state;
    cancel_with(1, -1);
}

/* Freeing a busy queue stops and reaps everything. */
static void test_free_busy(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o = {.workers = 2, .inflight = 1};
    fq_queue q = fqt_queue_opts(&o);
    fqt_submit_gate(q, &g, 1, 1);
    pid_t held = fqt_gate_started(q, &g);
    for (uint64_t i = 0; i < 100; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_queue_free(q));
    int st;
    assert_int_equal(waitpid(held, &st, WNOHANG), -1);
    fqt_assert_no_children();
    fq_result r;
    FQT_EQ(fq_take(q, &r), FQ_ECLOSED);
    fqt_gate_free(&g);
}

/* ---- refork ----------------------------------------------------------- */

static uint64_t g_value;

static int job_value(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t out[2] = {g_value, (uint64_t)getpid()};
    return fq_reply(ctx, out, sizeof out) == 0 ? 0 : 100;
}

static void value_of(fq_queue q, uint64_t *value, pid_t *pid)
{
    FQT_OK(fq_submit(q, job_value, NULL, 0, NULL, NULL));
    uint64_t out[2];
    take_ok(q, out, sizeof out);
    *value = out[0];
    *pid = (pid_t)out[1];
}

/* Polls (driving q) until the process is gone or a zombie. */
static int wait_gone_driving(fq_queue q, pid_t pid, int deadline_ms)
{
    int64_t end = fqp_now_ms() + deadline_ms;
    while (fqt_proc_alive(pid, 0)) {
        if (fqp_now_ms() > end)
            return 0;
        if (fq_poll(q, 10) > 0) {
            struct timespec ts = {0, 5 * 1000 * 1000}; /* polling interval */
            nanosleep(&ts, NULL);
        }
    }
    return 1;
}

static void test_refork(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    g_value = 1;
    fq_options o = {.workers = 2, .inflight = 1};
    fq_queue q = fqt_queue_opts(&o);
    uint64_t v;
    pid_t p;
    value_of(q, &v, &p);
    assert_true(v == 1);
    g_value = 2;
    value_of(q, &v, &p);
    assert_true(v == 1); /* workers keep the memory of their fork */

    pid_t old[2];
    assert_int_equal(fq_worker_pids(q, old, 2), 2);
    fqt_submit_gate(q, &g, 77, 0);
    pid_t held = fqt_gate_started(q, &g);
    assert_true(held == old[0] || held == old[1]);

    g_value = 3;
    FQT_OK(fq_refork(q));
    pid_t now[8];
    int n = fq_worker_pids(q, now, 8);
    assert_true(n >= 2 && n <= 8);
    int fresh = 0;
    for (int i = 0; i < n; i++)
        fresh += now[i] != old[0] && now[i] != old[1];
    assert_true(fresh >= 2);

    /* New jobs run in new workers and see the new memory, while the held
     * job is still running in its old worker. */
    for (int i = 0; i < 20; i++) {
        value_of(q, &v, &p);
        assert_true(v == 3);
        assert_true(p != old[0] && p != old[1]);
    }
    fqt_gate_open(&g, 1);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == 77); /* the old job finished normally */

    /* The old workers go away once idle. */
    for (int i = 0; i < 2; i++)
        assert_true(wait_gone_driving(q, old[i], 20000));
    FQT_OK(fq_finish(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_finish),
        FQT_TEST(test_cancel),
        FQT_TEST(test_cancel_grace_then_kill),
        FQT_TEST(test_cancel_no_grace),
        FQT_TEST(test_free_busy),
        FQT_TEST(test_refork),
    };
    return FQT_RUN(tests);
}
