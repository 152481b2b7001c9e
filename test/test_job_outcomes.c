/* Job handles (fq_job_submit() and friends): outcomes, waiting with time
 * limits, polling, how handle jobs mix with fq_take(), fq_stream() and
 * fq_wait(), and bad input. */
#include "job_test.h"

/* ---- Outcomes and waiting ---------------------------------------------- */

static void test_result_and_callback(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    cb_rec rec = {0};
    fq_job *j = submit_square(q, 7, &rec);
    uint64_t id = fq_job_id(j);

    FQT_OK(fq_job_wait(j, 10000));
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(rec.status, 0);
    assert_int_equal(rec.value, fqt_square(7));
    assert_true(pthread_equal(rec.thread, pthread_self()));
    fq_result r;
    FQT_OK(fq_job_result(j, &r));
    assert_int_equal(r.id, id);
    assert_int_equal(fqt_u64(&r), fqt_square(7));
    FQT_EQ(fq_job_done(j), 1);
    FQT_OK(fq_job_wait(j, 0));
    /* A finished job is unaffected by cancel, which says so. */
    FQT_EQ(fq_job_cancel(j), 1);
    FQT_OK(fq_job_result(j, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(7));
    /* Its id was released with the outcome: it may be used again. */
    fq_job_options o;
    memset(&o, 0, sizeof o);
    o.flags = FQ_JOB_ID;
    o.id = id;
    uint64_t x = 3;
    FQT_OK(fq_submit(q, fqt_job_square, &x, sizeof x, &o, NULL));
    FQT_OK(fq_wait(q, 10000));
    assert_int_equal(atomic_load(&rec.calls), 1);
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
}

/* Error outcomes reach the handle as they reach fq_take(). */
static int job_fail(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return fq_fail(ctx, 42, "nope");
}

static int job_crash(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    raise(SIGKILL);
    return 0;
}

static void test_error_outcomes(void **state)
{
    (void)state;
    fq_options opts;
    memset(&opts, 0, sizeof opts);
    opts.workers = 1;
    fq_queue q = fqt_queue_opts(&opts);
    fq_job *a = NULL, *b = NULL, *c = NULL;
    FQT_OK(fq_job_submit(q, job_fail, NULL, 0, NULL, &a));
    FQT_OK(fq_job_submit(q, job_crash, NULL, 0, NULL, &b));
    c = submit_square(q, 5, NULL);
    FQT_OK(fq_job_wait(c, 20000));
    FQT_OK(fq_job_wait(a, 0));
    FQT_OK(fq_job_wait(b, 0));
    fq_result r;
    FQT_OK(fq_job_result(a, &r));
    assert_int_equal(r.status, FQ_EJOB);
    assert_int_equal(r.code, 42);
    assert_string_equal(r.data, "nope");
    FQT_OK(fq_job_result(b, &r));
    assert_int_equal(r.status, FQ_ECRASHED);
    assert_int_equal(r.signo, SIGKILL);
    FQT_OK(fq_job_result(c, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(5));
    fq_job_free(a);
    fq_job_free(b);
    fq_job_free(c);
    FQT_OK(fq_queue_free(q));
}

static void test_wait_timeout_and_poll(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(1, 0);
    cb_rec rec = {0};
    fq_job *j = submit_gate(q, &g, 9, 0, &rec);
    fqt_gate_started(q, &g);

    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_job_wait(j, 100), FQ_ETIMEDOUT);
    int64_t took = fqp_now_ms() - t0;
    assert_true(took >= 95);
    assert_true(took < 5000);
    FQT_EQ(fq_job_wait(j, 0), FQ_ETIMEDOUT);
    FQT_EQ(fq_job_done(j), 0);
    fq_result r;
    FQT_EQ(fq_job_result(j, &r), FQ_EBUSY);
    assert_int_equal(atomic_load(&rec.calls), 0);

    /* fq_job_done() makes progress on its own. */
    fqt_gate_open(&g, 1);
    int64_t end = fqp_now_ms() + 20000;
    int d;
    while ((d = fq_job_done(j)) == 0 && fqp_now_ms() < end)
        ;
    FQT_EQ(d, 1);
    assert_int_equal(atomic_load(&rec.calls), 1);
    FQT_OK(fq_job_result(j, &r));
    assert_int_equal(fqt_u64(&r), 9);
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* fq_wakeup() ends a handle's wait as it ends fq_wait(): called once the
 * main thread blocks in it. */
typedef struct waker {
    fq_queue q;
    pid_t main_tid;
} waker;

static void *wake_later(void *arg)
{
    waker *w = arg;
    fqt_await_sleeping(w->main_tid);
    fq_wakeup(w->q);
    return NULL;
}

static void test_wait_woken(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(1, 0);
    fq_job *j = submit_gate(q, &g, 1, 0, NULL);
    pthread_t t;
    waker w = {q, fqt_tid()};
    assert_int_equal(pthread_create(&t, NULL, wake_later, &w), 0);
    FQT_EQ(fq_job_wait(j, 20000), FQ_EINTR);
    pthread_join(t, NULL);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(j, 20000));
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* ---- Mixing with fq_take(), ordering, fq_stream() --------------------- */

static void mix(int ordered)
{
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, ordered);
    /* A handle job that blocks, submitted first: an ordered queue must
     * not wait for it. */
    fq_job *blocked = submit_gate(q, &g, 1, 0, NULL);
    fq_job *h[5];
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        h[i] = submit_square(q, (uint64_t)(100 + i), NULL);
        ids[i] = fqt_submit_square(q, (uint64_t)i);
    }
    fq_result r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fqt_take_wait(q, &r, 20000), 1);
        /* Only fq_submit()'s jobs come out, in order when ordered. */
        int k = -1;
        for (int m = 0; m < 5; m++)
            if (ids[m] == r.id)
                k = m;
        assert_true(k >= 0);
        if (ordered)
            assert_int_equal(k, i);
        assert_int_equal(fqt_u64(&r), fqt_square((uint64_t)k));
    }
    FQT_EQ(fq_take(q, &r), 0);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.submitted, 11);
    assert_int_equal(st.taken, 5);
    /* fq_wait() waits for the handle jobs too. */
    FQT_EQ(fq_wait(q, 50), FQ_ETIMEDOUT);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_wait(q, 20000));
    FQT_EQ(fq_take(q, &r), 0);
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.finished, 11);
    assert_int_equal(st.taken, 5);
    for (int i = 0; i < 5; i++) {
        FQT_EQ(fq_job_done(h[i]), 1);
        FQT_OK(fq_job_result(h[i], &r));
        assert_int_equal(fqt_u64(&r), fqt_square((uint64_t)(100 + i)));
        fq_job_free(h[i]);
    }
    FQT_OK(fq_job_result(blocked, &r));
    assert_int_equal(fqt_u64(&r), 1);
    fq_job_free(blocked);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

static void test_not_taken_unordered(void **state)
{
    (void)state;
    mix(0);
}

static void test_not_taken_ordered(void **state)
{
    (void)state;
    mix(1);
}

typedef struct stream_st {
    int next, n, consumed;
} stream_st;

static int produce(fq_queue q, void *u)
{
    stream_st *s = u;
    if (s->next >= s->n)
        return 0;
    uint64_t x = (uint64_t)s->next++;
    return fq_submit(q, fqt_job_square, &x, sizeof x, NULL, NULL) < 0 ? -1 : 1;
}

static int consume(fq_queue q, const fq_result *r, void *u)
{
    (void)q;
    stream_st *s = u;
    if (r->status != 0)
        return 7;
    s->consumed++;
    return 0;
}

/* A stream neither consumes handle jobs nor waits for them. */
static void test_stream_ignores_handles(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, 0);
    fq_job *blocked = submit_gate(q, &g, 1, 0, NULL);
    fqt_gate_started(q, &g);
    /* Look-ahead 1: every round consumes the one outcome and must go on
     * producing, although a job (the handle's) is still running. */
    stream_st s = {0, 200, 0};
    FQT_OK(fq_stream(q, produce, consume, &s, 1));
    assert_int_equal(s.consumed, 200);
    stream_st s2 = {0, 300, 0};
    FQT_OK(fq_stream(q, produce, consume, &s2, 16));
    assert_int_equal(s2.consumed, 300);
    FQT_EQ(fq_job_done(blocked), 0);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(blocked, 20000));
    fq_job_free(blocked);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* fq_poll() returns when a handle job ends, its callback run. */
static void test_poll_runs_callbacks(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    cb_rec rec = {0};
    fq_job *j = submit_square(q, 3, &rec);
    int64_t end = fqp_now_ms() + 20000;
    while (atomic_load(&rec.calls) == 0 && fqp_now_ms() < end)
        assert_true(fq_poll(q, 10000) >= 0);
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(rec.value, fqt_square(3));
    FQT_EQ(fq_poll(q, 0), 0);
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
}

/* ---- Bad input --------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    fq_job *j = (fq_job *)0x1;
    uint64_t x = 1;
    FQT_EQ(fq_job_submit(q, NULL, &x, sizeof x, NULL, &j), FQ_EINVAL);
    assert_null(j);
    FQT_EQ(fq_job_submit(q, fqt_job_square, &x, sizeof x, NULL, NULL),
           FQ_EINVAL);
    FQT_EQ(fq_job_submit(q, fqt_job_square, NULL, 8, NULL, &j), FQ_EINVAL);
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_count;
    FQT_EQ(fq_submit(q, fqt_job_square, &x, sizeof x, &jo, NULL), FQ_EINVAL);
    jo.callback = NULL;
    jo.flags = 0x80;
    FQT_EQ(fq_job_submit(q, fqt_job_square, &x, sizeof x, &jo, &j), FQ_EINVAL);
    /* A duplicate id of a live handle job. */
    jo.flags = FQ_JOB_ID;
    jo.id = 77;
    fq_job *a = NULL;
    FQT_OK(fq_job_submit(q, fqt_job_square, &x, sizeof x, &jo, &a));
    assert_int_equal(fq_job_id(a), 77);
    FQT_EQ(fq_submit(q, fqt_job_square, &x, sizeof x, &jo, NULL), FQ_EEXIST);
    FQT_EQ(fq_job_wait(NULL, 0), FQ_EINVAL);
    FQT_EQ(fq_job_wait(a, -2), FQ_EINVAL);
    FQT_EQ(fq_job_done(NULL), FQ_EINVAL);
    FQT_EQ(fq_job_cancel(NULL), FQ_EINVAL);
    fq_result r;
    FQT_EQ(fq_job_result(NULL, &r), FQ_EINVAL);
    FQT_EQ(fq_job_result(a, NULL), FQ_EINVAL);
    assert_int_equal(fq_job_id(NULL), 0);
    fq_job_free(NULL);
    FQT_OK(fq_job_wait(a, 20000));
    fq_job_free(a);
    fq_queue bad = {0};
    FQT_EQ(fq_job_submit(bad, fqt_job_square, &x, sizeof x, NULL, &j),
           FQ_EINVAL);
    FQT_OK(fq_queue_free(q));
    FQT_EQ(fq_job_submit(q, fqt_job_square, &x, sizeof x, NULL, &j),
           FQ_ECLOSED);
    assert_null(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_result_and_callback),
        FQT_TEST(test_error_outcomes),
        FQT_TEST(test_wait_timeout_and_poll),
        FQT_TEST(test_wait_woken),
        FQT_TEST(test_not_taken_unordered),
        FQT_TEST(test_not_taken_ordered),
        FQT_TEST(test_stream_ignores_handles),
        FQT_TEST(test_poll_runs_callbacks),
        FQT_TEST(test_bad_input),
    };
    return FQT_RUN(tests);
}
