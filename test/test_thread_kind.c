/* The thread worker kind (fq_options.kind = FQ_WORKER_THREAD): outcomes,
 * time limits with cooperative and uncooperative jobs, fq_cancel(),
 * fq_finish(), freeing a queue whose job is stuck, and many jobs. Jobs run in
 * this process, so they talk to the test through atomics. */
#include <stdatomic.h>

#include "fq_test.h"

static _Atomic int started;  /* jobs that began a blocking wait */
static _Atomic int returned; /* blocking jobs that returned */
static _Atomic int saw_cancel;
static _Atomic int release_flag; /* lets stuck jobs return */
static _Atomic int inits;

static void reset(void)
{
    atomic_store(&started, 0);
    atomic_store(&returned, 0);
    atomic_store(&saw_cancel, 0);
    atomic_store(&release_flag, 0);
    atomic_store(&inits, 0);
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static fq_queue thread_queue(int workers, int ordered, int timeout_ms)
{
    fq_options o;
    memset(&o, 0, sizeof o);
    o.kind = FQ_WORKER_THREAD;
    o.workers = workers;
    o.ordered = ordered;
    o.timeout_ms = timeout_ms;
    return fqt_queue_opts(&o);
}

/* Drives q until *flag reaches want or ms pass; returns whether it did. */
static int await_count(fq_queue q, _Atomic int *flag, int want, int ms)
{
    int64_t end = fqp_now_ms() + ms;
    while (atomic_load(flag) < want) {
        if (fqp_now_ms() > end)
            return 0;
        if (q.id)
            (void)fq_poll(q, 1);
        else
            nap_us(1000);
    }
    return 1;
}

/* Argument: int64 n. Result: n * n. */
static int job_square(fq_ctx *ctx, const void *arg, size_t len)
{
    int64_t n;
    if (len != sizeof n)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(&n, arg, sizeof n);
    n *= n;
    return fq_reply(ctx, &n, sizeof n);
}

/* Odd n: fq_fail(n, "odd n"); even n: returns n (FQ_EJOB, empty message) if
 * non-zero. */
static int job_fail(fq_ctx *ctx, const void *arg, size_t len)
{
    int64_t n;
    (void)len;
    memcpy(&n, arg, sizeof n);
    if (n % 2)
        return fq_fail(ctx, (int)n, "odd n");
    return (int)n;
}

/* Runs until it is cancelled, then returns (what it replies is dropped). */
static int job_cooperative(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    atomic_fetch_add(&started, 1);
    while (!fq_ctx_cancelled(ctx))
        nap_us(500);
    atomic_fetch_add(&saw_cancel, 1);
    int64_t v = 1;
    fq_reply(ctx, &v, sizeof v);
    atomic_fetch_add(&returned, 1);
    return 0;
}

/* Ignores cancellation: runs until the test releases it. */
static int job_stuck(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&release_flag))
        nap_us(500);
    int64_t v = 7;
    fq_reply(ctx, &v, sizeof v);
    atomic_fetch_add(&returned, 1);
    return 0;
}

static int job_cancel_flag(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int64_t v = fq_ctx_cancelled(ctx);
    return fq_reply(ctx, &v, sizeof v);
}

static uint64_t submit_n(fq_queue q, fq_job_fn fn, int64_t n, int timeout_ms)
{
    fq_job_options jo = {.timeout_ms = timeout_ms};
    uint64_t id;
    FQT_OK(fq_submit(q, fn, &n, sizeof n, &jo, &id));
    return id;
}

static int64_t result_i64(const fq_result *r)
{
    int64_t v;
    if (r->status != 0)
        print_error("job %" PRIu64 ": %s %.*s\n", r->id, fq_err_name(r->status),
                    (int)r->len, (const char *)r->data);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->len, sizeof v);
    memcpy(&v, r->data, sizeof v);
    return v;
}

static void test_ordered_results(void **state)
{
    (void)state;
    fq_queue q = thread_queue(4, 1, 0);
    for (int64_t i = 0; i < 500; i++)
        assert_int_equal(submit_n(q, job_square, i, 0), (uint64_t)i);
    for (int64_t i = 0; i < 500; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
        assert_int_equal(r.id, (uint64_t)i);
        assert_int_equal(result_i64(&r), i * i);
    }
    FQT_OK(fq_queue_free(q));
}

static void test_unordered_results(void **state)
{
    (void)state;
    fq_queue q = thread_queue(3, 0, 0);
    static unsigned char seen[300];
    memset(seen, 0, sizeof seen);
    for (int64_t i = 0; i < 300; i++)
        submit_n(q, job_square, i, 0);
    for (int k = 0; k < 300; k++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
        assert_true(r.id < 300);
        assert_false(seen[r.id]);
        seen[r.id] = 1;
        assert_int_equal(result_i64(&r), (int64_t)(r.id * r.id));
    }
    fq_result r;
    assert_int_equal(fq_take(q, &r), 0);
    FQT_OK(fq_queue_free(q));
}

static void test_fail(void **state)
{
    (void)state;
    fq_queue q = thread_queue(2, 1, 0);
    submit_n(q, job_fail, 3, 0);
    submit_n(q, job_fail, 4, 0);
    submit_n(q, job_fail, 0, 0);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.status, FQ_EJOB);
    assert_int_equal(r.code, 3);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "odd n", 5);
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.status, FQ_EJOB);
    assert_int_equal(r.code, 4);
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 0);
    FQT_OK(fq_queue_free(q));
}

static void check_status(const fq_result *r, int want)
{
    if (r->status != want)
        print_error("job %" PRIu64 ": %s, want %s\n", r->id,
                    fq_err_name(r->status), fq_err_name(want));
    assert_int_equal(r->status, want);
    fqt_assert_msg(r);
}

static void test_timeout_cooperative(void **state)
{
    (void)state;
    reset();
    fq_queue q = thread_queue(1, 1, 0);
    submit_n(q, job_cooperative, 0, 100);
    submit_n(q, job_square, 5, 0); /* behind it: runs on a new thread */
    fq_result r;
    int64_t t0 = fqp_now_ms();
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    check_status(&r, FQ_ETIMEDOUT);
    assert_true(fqp_now_ms() - t0 < 5000);
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(result_i64(&r), 25);
    /* The job saw the cancellation and returned; its reply was dropped. */
    assert_true(await_count(q, &returned, 1, 10000));
    assert_int_equal(atomic_load(&saw_cancel), 1);
    assert_int_equal(fq_take(q, &r), 0);
    FQT_OK(fq_queue_free(q));
}

static void test_timeout_ignored(void **state)
{
    (void)state;
    reset();
    fq_queue q = thread_queue(2, 0, 0);
    uint64_t stuck = submit_n(q, job_stuck, 0, 150);
    fq_result r;
    int64_t t0 = fqp_now_ms();
    /* Its outcome comes when the limit passes, though it still runs. */
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.id, stuck);
    check_status(&r, FQ_ETIMEDOUT);
    assert_true(fqp_now_ms() - t0 < 5000);
    assert_int_equal(atomic_load(&returned), 0);
    /* The queue goes on with its workers. */
    for (int64_t i = 0; i < 20; i++)
        submit_n(q, job_square, i, 0);
    FQT_OK(fq_wait(q, 10000));
    for (int k = 0; k < 20; k++) {
        assert_int_equal(fq_take(q, &r), 1);
        assert_int_equal(result_i64(&r),
                         (int64_t)(r.id - 1) * (int64_t)(r.id - 1));
    }
    /* Released late, its reply is discarded. */
    atomic_store(&release_flag, 1);
    assert_true(await_count(q, &returned, 1, 10000));
    FQT_OK(fq_poll(q, 50));
    assert_int_equal(fq_take(q, &r), 0);
    FQT_OK(fq_queue_free(q));
}

static void test_cancel(void **state)
{
    (void)state;
    reset();
    fq_queue q = thread_queue(2, 0, 0);
    submit_n(q, job_cooperative, 0, 0);
    submit_n(q, job_stuck, 0, 0);
    for (int64_t i = 0; i < 10; i++)
        submit_n(q, job_square, i, -1);
    assert_true(await_count(q, &started, 2, 10000));
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_cancel(q));
    assert_true(fqp_now_ms() - t0 < 5000);
    int n = 0, cancelled = 0;
    fq_result r;
    while (fq_take(q, &r) == 1) {
        n++;
        if (r.status == FQ_ECANCELED) {
            fqt_assert_msg(&r);
            cancelled++;
        } else {
            assert_int_equal(r.status, 0);
        }
    }
    assert_int_equal(n, 12);
    assert_true(cancelled >= 2); /* the two running jobs at least */
    uint64_t id;
    FQT_EQ(fq_submit(q, job_square, &t0, sizeof t0, NULL, &id), FQ_EFINISHED);
    assert_true(await_count((fq_queue){0}, &saw_cancel, 1, 10000));
    atomic_store(&release_flag, 1);
    assert_true(await_count((fq_queue){0}, &returned, 2, 10000));
    FQT_OK(fq_queue_free(q));
}

static void test_finish(void **state)
{
    (void)state;
    fq_queue q = thread_queue(3, 1, 0);
    for (int64_t i = 0; i < 100; i++)
        submit_n(q, job_square, i, 0);
    FQT_OK(fq_finish(q));
    for (int64_t i = 0; i < 100; i++) {
        fq_result r;
        assert_int_equal(fq_take(q, &r), 1);
        assert_int_equal(result_i64(&r), i * i);
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.workers, 0);
    FQT_OK(fq_queue_free(q));
}

static void test_free_with_stuck_job(void **state)
{
    (void)state;
    reset();
    fq_queue q = thread_queue(1, 0, 0);
    submit_n(q, job_stuck, 0, 0);
    assert_true(await_count(q, &started, 1, 10000));
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_queue_free(q));
    assert_true(fqp_now_ms() - t0 < 2000 * fqp_time_scale());
    /* The thread outlives the queue, and ends cleanly once released. */
    assert_int_equal(atomic_load(&returned), 0);
    atomic_store(&release_flag, 1);
    assert_true(await_count((fq_queue){0}, &returned, 1, 10000));
}

static int init_count(void *udata)
{
    (void)udata;
    atomic_fetch_add(&inits, 1);
    return 0;
}

static void test_init_per_thread(void **state)
{
    (void)state;
    reset();
    fq_options o;
    memset(&o, 0, sizeof o);
    o.kind = FQ_WORKER_THREAD;
    o.workers = 3;
    o.init = init_count;
    fq_queue q = fqt_queue_opts(&o);
    for (int64_t i = 0; i < 30; i++)
        submit_n(q, job_square, i, 0);
    FQT_OK(fq_wait(q, 10000));
    assert_int_equal(atomic_load(&inits), 3);
    /* fq_refork() replaces the threads: each new one runs init once. */
    FQT_OK(fq_refork(q));
    for (int64_t i = 0; i < 30; i++)
        submit_n(q, job_square, i, 0);
    FQT_OK(fq_finish(q));
    assert_int_equal(atomic_load(&inits), 6);
    int n = 0;
    fq_result r;
    while (fq_take(q, &r) == 1) {
        assert_int_equal(result_i64(&r),
                         (int64_t)(r.id % 30) * (int64_t)(r.id % 30));
        n++;
    }
    assert_int_equal(n, 60);
    FQT_OK(fq_queue_free(q));
}

static int init_fails(void *udata)
{
    (void)udata;
    return fq_init_fail("no database here");
}

static void test_init_fails(void **state)
{
    (void)state;
    fq_options o;
    memset(&o, 0, sizeof o);
    o.kind = FQ_WORKER_THREAD;
    o.workers = 2;
    o.init = init_fails;
    fq_queue q = fqt_queue_opts(&o);
    for (int64_t i = 0; i < 5; i++)
        submit_n(q, job_square, i, 0);
    FQT_OK(fq_wait(q, 10000));
    fq_result r;
    for (int k = 0; k < 5; k++) {
        assert_int_equal(fq_take(q, &r), 1);
        check_status(&r, FQ_EINIT);
        assert_non_null(strstr(r.data, "no database here"));
    }
    FQT_OK(fq_queue_free(q));
}

static void test_many_jobs(void **state)
{
    (void)state;
#ifdef FQ_TEST_TSAN
    int64_t n = 20000;
#else
    int64_t n = FQT_SANITIZE ? 20000 : 200000;
#endif
    if (getenv("FQ_TEST_STREAM_N")) /* the valgrind run's smaller count */
        n = atoll(getenv("FQ_TEST_STREAM_N"));
    fq_queue q = thread_queue(2, 0, 0);
    int64_t sum = 0, want = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = i % 1000;
        submit_n(q, job_square, k, 0);
        want += k * k;
        fq_result r;
        while (fq_take(q, &r) == 1)
            sum += result_i64(&r);
    }
    FQT_OK(fq_wait(q, 60000));
    fq_result r;
    while (fq_take(q, &r) == 1)
        sum += result_i64(&r);
    assert_true(sum == want);
    FQT_OK(fq_queue_free(q));
}

static void test_bad_kind_and_process_flag(void **state)
{
    (void)state;
    fq_options o;
    memset(&o, 0, sizeof o);
    o.kind = 7;
    fq_queue q = {0};
    FQT_EQ(fq_queue_new(&q, &o), FQ_EINVAL);
    assert_int_equal(fq_ctx_cancelled(NULL), 0);
    /* A process worker is killed, never asked: the flag stays 0. */
    q = fqt_queue(1, 0);
    submit_n(q, job_cancel_flag, 0, 0);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(result_i64(&r), 0);
    FQT_OK(fq_queue_free(q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_ordered_results),
        FQT_TEST(test_unordered_results),
        FQT_TEST(test_fail),
        FQT_TEST(test_timeout_cooperative),
        FQT_TEST(test_timeout_ignored),
        FQT_TEST(test_cancel),
        FQT_TEST(test_finish),
        FQT_TEST(test_free_with_stuck_job),
        FQT_TEST(test_init_per_thread),
        FQT_TEST(test_init_fails),
        FQT_TEST(test_many_jobs),
        FQT_TEST(test_bad_kind_and_process_flag),
    };
    return FQT_RUN(tests);
}
