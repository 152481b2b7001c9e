/* Time limits: per job, per queue, unlimited, and the job's process tree. */
#include "fq_test.h"

/* Argument: {sleep ms, value}. Result: value. */
static int job_sleep(fq_ctx *ctx, const void *arg, size_t len)
{
    int64_t a[2];
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(a, arg, sizeof a);
    struct timespec ts = {(time_t)(a[0] / 1000), (long)(a[0] % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return fq_reply(ctx, &a[1], sizeof a[1]) == 0 ? 0 : 100;
}

/* Blocks until killed. */
static int job_hang(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    for (;;)
        pause();
    return 0;
}

/* Blocks every signal it can, then until killed. */
static int job_hang_blocking(fq_ctx *ctx, const void *arg, size_t len)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    return job_hang(ctx, arg, len);
}

static uint64_t submit_sleep(fq_queue q, int64_t ms, int64_t value,
                             int timeout_ms)
{
    int64_t a[2] = {ms, value};
    fq_job_options jo = {.timeout_ms = timeout_ms};
    uint64_t id;
    FQT_OK(fq_submit(q, job_sleep, a, sizeof a, &jo, &id));
    return id;
}

static uint64_t submit_hang(fq_queue q, int timeout_ms)
{
    fq_job_options jo = {.timeout_ms = timeout_ms};
    uint64_t id;
    FQT_OK(fq_submit(q, job_hang, NULL, 0, &jo, &id));
    return id;
}

static void check_timedout(const fq_result *r)
{
    if (r->status != FQ_ETIMEDOUT)
        print_error("job %" PRIu64 ": status %s\n", r->id,
                    fq_err_name(r->status));
    assert_int_equal(r->status, FQ_ETIMEDOUT);
    fqt_assert_msg(r);
    assert_true(r->len > 0);
}

static void test_per_job_timeout(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    uint64_t hung = submit_hang(q, 200);
    for (uint64_t i = 0; i < 100; i++)
        fqt_submit_square(q, i);
    uint64_t hung2 = submit_hang(q, 300);
    for (uint64_t i = 0; i < 100; i++)
        fqt_submit_square(q, i + 100);
    int timeouts = 0;
    for (int n = 0; n < 202; n++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        if (r.id == hung || r.id == hung2) {
            check_timedout(&r);
            timeouts++;
        } else {
            uint64_t x = r.id < hung2 ? r.id - 1 : r.id - 2;
            assert_true(fqt_u64(&r) == fqt_square(x));
        }
    }
    assert_int_equal(timeouts, 2);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.timedout == 2);
    assert_true(st.crashed == 0);
    assert_true(st.respawns >= 2);
    /* still usable */
    fqt_submit_square(q, 7);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == fqt_square(7));
    FQT_OK(fq_finish(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));
}

static void test_queue_default_timeout(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .timeout_ms = 500, .ordered = 1};
    fq_queue q = fqt_queue_opts(&o);
    submit_hang(q, 0);             /* queue default: times out */
    submit_sleep(q, 900, 1, -1);   /* no limit: finishes */
    submit_sleep(q, 700, 2, 5000); /* own, longer limit: finishes */
    submit_sleep(q, 10000, 3, 0);  /* queue default: times out */
    submit_sleep(q, 10, 4, 0);     /* well within the default */
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    check_timedout(&r);
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == 1);
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == 2);
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    check_timedout(&r);
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == 4);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.timedout == 2);
    FQT_OK(fq_queue_free(q));
}

/* The limit counts from the start of the job, not from its submission:
 * with one worker, a job queued behind a long one still gets its time. */
static void test_timeout_counts_from_start(void **state)
{
    (void)state;
    fq_options o = {.workers = 1, .ordered = 1};
    fq_queue q = fqt_queue_opts(&o);
    submit_sleep(q, 1500, 1, -1);
    submit_sleep(q, 0, 2, 1000);
    submit_sleep(q, 0, 3, 1000);
    for (uint64_t want = 1; want <= 3; want++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(fqt_u64(&r) == want);
    }
    FQT_OK(fq_queue_free(q));
}

/*
 * The job forks a grandchild that would outlive it; the grandchild reports
 * its pid and sleeps. When the job times out, the grandchild must die too.
 */
static int g_gc_pipe = -1;

static int job_fork_grandchild(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    pid_t c = fork();
    if (c < 0)
        return fq_fail(ctx, 1, "fork failed");
    if (c == 0) {
        pid_t me = getpid();
        (void)fqt_write_all(g_gc_pipe, &me, sizeof me);
        for (;;)
            pause();
        _exit(0);
    }
    for (;;)
        pause();
    return 0;
}

static void test_timeout_kills_grandchild(void **state)
{
    (void)state;
    int p[2];
    fqt_pipe(p);
    g_gc_pipe = p[1];
    fq_queue q = fqt_queue(2, 0);
    fq_job_options jo = {.timeout_ms = 300};
    FQT_OK(fq_submit(q, job_fork_grandchild, NULL, 0, &jo, NULL));
    FQT_OK(fq_submit(q, job_fork_grandchild, NULL, 0, &jo, NULL));
    pid_t gc[2];
    assert_int_equal(fqt_read_driving(q, p[0], &gc[0], sizeof gc[0], 20000), 0);
    assert_int_equal(fqt_read_driving(q, p[0], &gc[1], sizeof gc[1], 20000), 0);
    unsigned long long start[2] = {fqt_proc_start(gc[0]),
                                   fqt_proc_start(gc[1])};
    assert_true(start[0] != 0 && start[1] != 0);
    for (int i = 0; i < 2; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        check_timedout(&r);
    }
    int alive = 0;
    for (int i = 0; i < 2; i++) {
        if (!fqt_wait_gone(gc[i], start[i], 5000)) {
            print_error("grandchild %d still alive after its job timed "
                        "out\n",
                        (int)gc[i]);
            alive++;
            /* It holds our stdout: it must not outlive a failed test. */
            kill(gc[i], SIGKILL);
        }
    }
    assert_int_equal(alive, 0);
    /* The queue goes on. */
    fqt_submit_square(q, 4);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == fqt_square(4));
    FQT_OK(fq_queue_free(q));
    close(p[0]);
    close(p[1]);
    g_gc_pipe = -1;
}

/* A job that ignores SIGTERM still ends at its limit. */
static int job_hang_ignoring_term(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    for (;;)
        pause();
    return 0;
}

static void test_timeout_ignoring_term(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    fq_job_options jo = {.timeout_ms = 200};
    FQT_OK(fq_submit(q, job_hang_ignoring_term, NULL, 0, &jo, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    check_timedout(&r);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

/* Timed-out jobs spread among normal ones, in an ordered queue. */
/* The worker cannot end itself for the limit (its clean-up signal stays
 * blocked): the parent kills it without its help, in a bounded time. */
static void test_timeout_blocking_signals(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    fq_job_options jo = {.timeout_ms = 100};
    uint64_t id;
    FQT_OK(fq_submit(q, job_hang_blocking, NULL, 0, &jo, &id));
    int64_t t0 = fqp_now_ms();
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.id, id);
    check_timedout(&r);
    assert_true(fqp_now_ms() - t0 < 5000);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

static void test_many_timeouts(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .ordered = 1};
    fq_queue q = fqt_queue_opts(&o);
    enum { N = 60 };
    for (uint64_t i = 0; i < N; i++) {
        if (i % 10 == 3)
            submit_hang(q, 100);
        else
            submit_sleep(q, 1, (int64_t)i, 0);
    }
    for (uint64_t i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(r.id == i);
        if (i % 10 == 3)
            check_timedout(&r);
        else
            assert_true(fqt_u64(&r) == i);
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.timedout == N / 10);
    FQT_OK(fq_finish(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_per_job_timeout),
        FQT_TEST(test_queue_default_timeout),
        FQT_TEST(test_timeout_counts_from_start),
        FQT_TEST(test_timeout_kills_grandchild),
        FQT_TEST(test_timeout_ignoring_term),
        FQT_TEST(test_timeout_blocking_signals),
        FQT_TEST(test_many_timeouts),
    };
    return FQT_RUN(tests);
}
