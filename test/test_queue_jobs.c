/* What jobs do: errors and replies, nested queues, threads submitting at
 * once, signals during waits. */
#include "queue_test.h"

/* ---- job errors and replies ------------------------------------------- */

struct fail_arg {
    int code;
    int null_msg;
    char msg[32];
};

static int job_fail(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)len;
    const struct fail_arg *a = arg;
    return fq_fail(ctx, a->code, a->null_msg ? NULL : a->msg);
}

static int job_return(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)len;
    int v;
    memcpy(&v, arg, sizeof v);
    return v;
}

static int job_reply_then_return(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    if (fq_reply(ctx, "data", 4) != 0)
        return 100;
    return 7;
}

static void test_job_errors(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 1);
    struct fail_arg fa = {42, 0, "bad input"};
    FQT_OK(fq_submit(q, job_fail, &fa, sizeof fa, NULL, NULL));
    struct fail_arg fb = {-3, 1, ""};
    FQT_OK(fq_submit(q, job_fail, &fb, sizeof fb, NULL, NULL));
    int v = 3;
    FQT_OK(fq_submit(q, job_return, &v, sizeof v, NULL, NULL));
    v = -5;
    FQT_OK(fq_submit(q, job_return, &v, sizeof v, NULL, NULL));
    v = INT_MIN;
    FQT_OK(fq_submit(q, job_return, &v, sizeof v, NULL, NULL));
    FQT_OK(fq_submit(q, job_reply_then_return, NULL, 0, NULL, NULL));
    /* a job after the failures still succeeds */
    fqt_submit_square(q, 9);

    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, FQ_EJOB);
    assert_int_equal(r.code, 42);
    fqt_assert_msg(&r);
    assert_string_equal(r.data, "bad input");

    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, FQ_EJOB);
    assert_int_equal(r.code, -3);
    fqt_assert_msg(&r);

    const int codes[] = {3, -5, INT_MIN};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        if (r.status != FQ_EJOB)
            print_error("job returning %d: status %s\n", codes[i],
                        fq_err_name(r.status));
        assert_int_equal(r.status, FQ_EJOB);
        assert_int_equal(r.code, codes[i]);
        fqt_assert_msg(&r);
    }
    /* fq_reply() settled the outcome; the later return 7 is ignored. */
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 4);
    assert_memory_equal(r.data, "data", 4);
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == fqt_square(9));
    assert_int_equal(r.code, 0);
    FQT_OK(fq_queue_free(q));
}

/*
 * The return values of fq_reply()/fq_fail() inside a job are reported
 * through a pipe: once a job has replied, its own return value no longer
 * reaches the test.
 */
static int g_report_fd = -1;

static void report(int a, int b, int c)
{
    int v[3] = {a, b, c};
    (void)fqt_write_all(g_report_fd, v, sizeof v);
}

static int job_reply_twice(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int a = fq_reply(ctx, "first", 5);
    int b = fq_reply(ctx, "second", 6);
    int c = fq_fail(ctx, 9, "late");
    report(a, b, c);
    return 0;
}

static int job_fail_then_reply(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int a = fq_fail(ctx, 5, "failed first");
    int b = fq_reply(ctx, "x", 1);
    int c = fq_fail(ctx, 6, "again");
    report(a, b, c);
    return 5;
}

static int job_nothing(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    return 0;
}

static int job_reply_empty(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int a = fq_reply(ctx, NULL, 0);
    int b = fq_reply(ctx, "x", 1);
    report(a, b, 0);
    return 0;
}

/* The state of one job does not leak into the next on the same worker. */
static int job_reply_once_more(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int a = fq_reply(ctx, "fresh", 5);
    report(a, 0, 0);
    return 0;
}

static void expect_report(int fd, int a, int b, int c)
{
    int v[3];
    assert_int_equal(fqt_read_all(fd, v, sizeof v), 0);
    if (v[0] != a || v[1] != b || v[2] != c)
        print_error("in-job calls returned %d %d %d, want %d %d %d\n", v[0],
                    v[1], v[2], a, b, c);
    assert_int_equal(v[0], a);
    assert_int_equal(v[1], b);
    assert_int_equal(v[2], c);
}

static void test_reply_rules(void **state)
{
    (void)state;
    int rep[2];
    fqt_pipe(rep);
    g_report_fd = rep[1];
    fq_queue q = fqt_queue(1, 1);
    FQT_OK(fq_submit(q, job_reply_twice, NULL, 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_reply_once_more, NULL, 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_fail_then_reply, NULL, 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_reply_once_more, NULL, 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_nothing, NULL, 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_reply_empty, NULL, 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_nothing, "ignored", 7, NULL, NULL));

    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "first", 5);

    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "fresh", 5);

    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, FQ_EJOB);
    assert_int_equal(r.code, 5);
    fqt_assert_msg(&r);
    assert_string_equal(r.data, "failed first");

    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "fresh", 5);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.code, 0);
        assert_int_equal(r.len, 0);
    }
    FQT_OK(fq_queue_free(q));
    g_report_fd = -1;
    close(rep[1]);
    /* Only the first of fq_reply()/fq_fail() counts; later calls return
     * FQ_EBUSY (forkqueue.h). */
    expect_report(rep[0], 0, FQ_EBUSY, FQ_EBUSY);
    expect_report(rep[0], 0, 0, 0);
    expect_report(rep[0], 5, FQ_EBUSY, FQ_EBUSY);
    expect_report(rep[0], 0, 0, 0);
    expect_report(rep[0], 0, FQ_EBUSY, 0);
    close(rep[0]);
}

/* ---- nesting ---------------------------------------------------------- */

static int job_nested(fq_ctx *ctx, const void *arg, size_t len)
{
    int inner = 2;
    if (len == sizeof inner)
        memcpy(&inner, arg, sizeof inner);
    fq_options o = {.workers = inner};
    fq_queue q = {0};
    int rc = fq_queue_new(&q, &o);
    if (rc)
        return fq_fail(ctx, 1, fq_strerror(rc));
    for (uint64_t i = 0; i < 20; i++)
        if (fq_submit(q, fqt_job_square, &i, sizeof i, NULL, NULL) != 0)
            return fq_fail(ctx, 2, "submit");
    uint64_t sum = 0;
    for (int i = 0; i < 20; i++) {
        fq_result r;
        if (fqt_take_wait(q, &r, 20000) != 1 || r.status != 0)
            return fq_fail(ctx, 3, "take");
        uint64_t v;
        memcpy(&v, r.data, sizeof v);
        sum += v;
    }
    fq_stats st;
    if (fq_stats_get(q, &st) != 0 || st.respawns != 0)
        return fq_fail(ctx, 5, "inner workers were respawned");
    if (fq_queue_free(q) != 0)
        return fq_fail(ctx, 4, "free");
    return fq_reply(ctx, &sum, sizeof sum) == 0 ? 0 : 100;
}

static void test_nested_queue(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    for (int i = 0; i < 3; i++)
        FQT_OK(fq_submit(q, job_nested, NULL, 0, NULL, NULL));
    uint64_t want = 0;
    for (uint64_t i = 0; i < 20; i++)
        want += fqt_square(i);
    for (int i = 0; i < 3; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
        assert_true(fqt_u64(&r) == want);
    }
    FQT_OK(fq_queue_free(q));
}

/* One inner worker per outer worker: the inner worker must keep its own
 * channel whatever descriptor numbers the inner queue got (a worker once
 * closed the numbers its parent's registry copy still listed). Every job
 * must succeed without a single inner respawn. */
static void test_nested_one_inner_worker(void **state)
{
    (void)state;
    int one = 1;
    fq_queue q = fqt_queue(3, 0);
    for (int i = 0; i < 9; i++)
        FQT_OK(fq_submit(q, job_nested, &one, sizeof one, NULL, NULL));
    uint64_t want = 0;
    for (uint64_t i = 0; i < 20; i++)
        want += fqt_square(i);
    for (int i = 0; i < 9; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
        if (r.status != 0)
            print_error("nested job: %s: %.*s\n", fq_err_name(r.status),
                        (int)r.len, (const char *)r.data);
        assert_int_equal(r.status, 0);
        assert_true(fqt_u64(&r) == want);
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.respawns == 0);
    FQT_OK(fq_queue_free(q));
}

/* ---- threads ---------------------------------------------------------- */

struct thread_run {
    int ordered;
    int rc_new, rc_free, bad, taken;
};

static void *thread_main(void *p)
{
    struct thread_run *t = p;
    fq_options o = {.workers = 2, .ordered = t->ordered};
    fq_queue q = {0};
    t->rc_new = fq_queue_new(&q, &o);
    if (t->rc_new)
        return NULL;
    enum { N = 500 };
    for (uint64_t i = 0; i < N; i++)
        if (fq_submit(q, fqt_job_square, &i, sizeof i, NULL, NULL) != 0)
            t->bad++;
    for (int i = 0; i < N; i++) {
        fq_result r;
        if (fqt_take_wait(q, &r, 30000) != 1) {
            t->bad++;
            break;
        }
        uint64_t v;
        if (r.status != 0 || r.len != sizeof v) {
            t->bad++;
            continue;
        }
        memcpy(&v, r.data, sizeof v);
        if (v != fqt_square(r.id) || (t->ordered && r.id != (uint64_t)i))
            t->bad++;
        t->taken++;
    }
    t->rc_free = fq_queue_free(q);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct thread_run runs[3] = {
        {.ordered = 0}, {.ordered = 1}, {.ordered = 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &runs[i]),
                         0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(runs[i].rc_new, 0);
        assert_int_equal(runs[i].bad, 0);
        assert_int_equal(runs[i].taken, 500);
        assert_int_equal(runs[i].rc_free, 0);
    }
    fqt_assert_no_children();
}

/* ---- signals during waits --------------------------------------------- */

static volatile sig_atomic_t g_alarms;

static void on_alarm(int sig)
{
    (void)sig;
    g_alarms++;
}

static void set_timer(int ms)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_interval.tv_usec = ms * 1000;
    it.it_value.tv_usec = ms * 1000;
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void test_return_on_eintr(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);

    fqt_gate g;
    fqt_gate_new(&g);
    for (int mode = 0; mode < 2; mode++) {
        fq_options o = {.workers = 1, .return_on_eintr = mode};
        fq_queue q = fqt_queue_opts(&o);
        fqt_submit_gate(q, &g, 5, 0);
        (void)fqt_gate_started(q, &g);
        g_alarms = 0;
        if (mode) {
            set_timer(50);
            FQT_EQ(fq_wait(q, -1), FQ_EINTR);
            FQT_EQ(fq_poll(q, -1), FQ_EINTR);
        } else {
            set_timer(20);
            int64_t t0 = fqp_now_ms();
            FQT_EQ(fq_wait(q, 400), FQ_ETIMEDOUT);
            int64_t took = fqp_now_ms() - t0;
            assert_true(took >= 390);
            assert_true(took < 10000); /* the deadline is not restarted */
            t0 = fqp_now_ms();
            assert_int_equal(fq_poll(q, 200), 0);
            assert_true(fqp_now_ms() - t0 >= 190);
        }
        set_timer(0);
        assert_true(g_alarms > 0);
        fqt_gate_open(&g, 1);
        FQT_OK(fq_wait(q, 30000));
        fq_result r;
        assert_int_equal(fq_take(q, &r), 1);
        assert_true(fqt_u64(&r) == 5);
        FQT_OK(fq_queue_free(q));
    }
    assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
    fqt_gate_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_job_errors),   FQT_TEST(test_reply_rules),
        FQT_TEST(test_nested_queue), FQT_TEST(test_nested_one_inner_worker),
        FQT_TEST(test_threads),      FQT_TEST(test_return_on_eintr),
    };
    return FQT_RUN(tests);
}
