/* API misuse is answered with error codes, never with a crash. */
#include "fq_test.h"

static int job_noop(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    return 0;
}

static int producer_none(fq_queue q, void *udata)
{
    (void)q;
    (void)udata;
    return 0;
}

static int consumer_none(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    (void)r;
    (void)udata;
    return 0;
}

/* Every call that takes a handle answers `want` for this handle. */
static void all_calls_fail(fq_queue q, int want)
{
    fq_result r;
    fq_stats st;
    pid_t pids[4];
    FQT_EQ(fq_submit(q, job_noop, NULL, 0, NULL, NULL), want);
    FQT_EQ(fq_take(q, &r), want);
    FQT_EQ(fq_poll(q, 0), want);
    FQT_EQ(fq_poll(q, -1), want);
    FQT_EQ(fq_wait(q, 0), want);
    FQT_EQ(fq_wait(q, -1), want);
    FQT_EQ(fq_stream(q, producer_none, consumer_none, NULL, 0), want);
    FQT_EQ(fq_refork(q), want);
    FQT_EQ(fq_finish(q), want);
    FQT_EQ(fq_cancel(q), want);
    FQT_EQ(fq_stats_get(q, &st), want);
    FQT_EQ(fq_worker_pids(q, pids, 4), want);
    FQT_EQ(fq_queue_free(q), want);
}

static void test_zero_handle(void **state)
{
    (void)state;
    fq_queue z = {0};
    all_calls_fail(z, FQ_EINVAL);
}

static void test_freed_handle(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_submit(q, job_noop, NULL, 0, NULL, NULL));
    FQT_OK(fq_queue_free(q));
    all_calls_fail(q, FQ_ECLOSED);
    fqt_assert_no_children();
    /* Ids are never reused: a new queue does not revive the old handle. */
    fq_queue q2 = fqt_queue(1, 0);
    assert_int_not_equal(q2.id, q.id);
    FQT_EQ(fq_submit(q, job_noop, NULL, 0, NULL, NULL), FQ_ECLOSED);
    FQT_OK(fq_queue_free(q2));
    /* An id that was never handed out. */
    fq_queue bogus = {.id = 0x7ffffff0u};
    all_calls_fail(bogus, FQ_ECLOSED);
    fq_queue bogus2 = {.id = UINT32_MAX};
    all_calls_fail(bogus2, FQ_ECLOSED);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    FQT_EQ(fq_submit(q, NULL, NULL, 0, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_submit(q, NULL, "x", 1, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_submit(q, job_noop, NULL, 1, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_submit(q, job_noop, NULL, SIZE_MAX, NULL, NULL), FQ_EINVAL);
    FQT_OK(fq_submit(q, job_noop, NULL, 0, NULL, NULL));
    FQT_EQ(fq_take(q, NULL), FQ_EINVAL);
    FQT_EQ(fq_stats_get(q, NULL), FQ_EINVAL);
    FQT_EQ(fq_stream(q, NULL, consumer_none, NULL, 0), FQ_EINVAL);
    /* pids may be NULL when max is 0: only the count is wanted. */
    assert_int_equal(fq_worker_pids(q, NULL, 0), 1);
    FQT_OK(fq_wait(q, 30000));
    fq_result r;
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(r.status, 0);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.submitted == 1); /* refused submissions do not count */
    FQT_OK(fq_queue_free(q));
}

static void test_bad_options(void **state)
{
    (void)state;
    fq_queue q = {.id = 1234};
    fq_options o = {.workers = -1};
    FQT_EQ(fq_queue_new(&q, &o), FQ_EINVAL);
    assert_int_equal(q.id, 0); /* zeroed on error */
    o.workers = INT_MIN;
    q.id = 99;
    FQT_EQ(fq_queue_new(&q, &o), FQ_EINVAL);
    assert_int_equal(q.id, 0);
    FQT_EQ(fq_queue_new(NULL, NULL), FQ_EINVAL);
    o.workers = 1;
    FQT_EQ(fq_queue_new(NULL, &o), FQ_EINVAL);
    /* No process was left behind by the refused calls. */
    fqt_assert_no_children();
}

static void test_after_finish_and_cancel(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_finish(q));
    FQT_EQ(fq_submit(q, job_noop, NULL, 0, NULL, NULL), FQ_EFINISHED);
    fq_job_options jo = {.id = 5, .flags = FQ_JOB_ID};
    FQT_EQ(fq_submit(q, job_noop, NULL, 0, &jo, NULL), FQ_EFINISHED);
    FQT_EQ(fq_refork(q), FQ_EFINISHED);
    FQT_OK(fq_finish(q));
    FQT_OK(fq_queue_free(q));

    q = fqt_queue(1, 0);
    FQT_OK(fq_submit(q, job_noop, NULL, 0, NULL, NULL));
    FQT_OK(fq_cancel(q));
    FQT_EQ(fq_submit(q, job_noop, NULL, 0, NULL, NULL), FQ_EFINISHED);
    /* A stream on a finished queue is refused; the outcome left over (the
     * job above: done before the cancel, or cancelled) can still be taken. */
    FQT_EQ(fq_stream(q, producer_none, consumer_none, NULL, 0), FQ_EFINISHED);
    fq_result r;
    assert_int_equal(fq_take(q, &r), 1);
    assert_true(r.status == 0 || r.status == FQ_ECANCELED);
    assert_int_equal(fq_take(q, &r), 0);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

static void test_ctx_outside_job(void **state)
{
    (void)state;
    FQT_EQ(fq_reply(NULL, "x", 1), FQ_EINVAL);
    FQT_EQ(fq_reply(NULL, NULL, 0), FQ_EINVAL);
    FQT_EQ(fq_fail(NULL, 3, "x"), FQ_EINVAL);
    FQT_EQ(fq_fail(NULL, 3, NULL), FQ_EINVAL);
    /* fq_init_fail outside init changes nothing and returns -1. */
    assert_int_equal(fq_init_fail("not in init"), -1);
    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_submit(q, job_noop, NULL, 0, NULL, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    FQT_OK(fq_queue_free(q));
}

/* Inside a job: NULL data with a length is refused and the job goes on. */
static int job_reply_misuse(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    if (fq_reply(ctx, NULL, 5) != FQ_EINVAL)
        return 101;
    if (fq_reply(ctx, "ok", 2) != 0)
        return 102;
    return 0;
}

static void test_reply_misuse_in_job(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_submit(q, job_reply_misuse, NULL, 0, NULL, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    if (r.status)
        print_error("status %s code %d\n", fq_err_name(r.status), r.code);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 2);
    assert_memory_equal(r.data, "ok", 2);
    FQT_OK(fq_queue_free(q));
}

static fq_queue g_owner_queue;

/* A job (a forked child of the queue's owner) uses the owner's handle. */
static int job_use_parent_queue(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    fq_result r;
    fq_stats st;
    int rcs[] = {
        fq_submit(g_owner_queue, job_noop, NULL, 0, NULL, NULL),
        fq_take(g_owner_queue, &r),
        fq_poll(g_owner_queue, 0),
        fq_wait(g_owner_queue, 0),
        fq_stats_get(g_owner_queue, &st),
        fq_worker_pids(g_owner_queue, NULL, 0),
        fq_refork(g_owner_queue),
        fq_finish(g_owner_queue),
        fq_cancel(g_owner_queue),
        fq_queue_free(g_owner_queue),
    };
    for (size_t i = 0; i < sizeof rcs / sizeof *rcs; i++)
        if (rcs[i] != FQ_EFOREIGN)
            return fq_fail(ctx, (int)i + 1, fq_err_name(rcs[i]));
    return 0;
}

static void test_foreign_in_job(void **state)
{
    (void)state;
    g_owner_queue.id = 0;
    fq_queue q = fqt_queue(1, 0);
    g_owner_queue = q;
    FQT_OK(fq_refork(q)); /* workers must know the handle's value */
    FQT_OK(fq_submit(q, job_use_parent_queue, NULL, 0, NULL, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    if (r.status)
        print_error("call %d answered %s\n", r.code,
                    r.data ? (const char *)r.data : "?");
    assert_int_equal(r.status, 0);
    /* The queue itself was not disturbed. */
    FQT_OK(fq_submit(q, job_noop, NULL, 0, NULL, NULL));
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    FQT_OK(fq_queue_free(q));
}

static void test_foreign_in_forked_child(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    pid_t workers[2];
    assert_int_equal(fq_worker_pids(q, workers, 2), 2);
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0) {
        fq_result r;
        fq_stats st;
        int rcs[] = {
            fq_submit(q, job_noop, NULL, 0, NULL, NULL),
            fq_take(q, &r),
            fq_poll(q, 0),
            fq_poll(q, -1),
            fq_wait(q, -1),
            fq_stream(q, producer_none, consumer_none, NULL, 0),
            fq_stats_get(q, &st),
            fq_worker_pids(q, NULL, 0),
            fq_refork(q),
            fq_finish(q),
            fq_cancel(q),
            fq_queue_free(q),
        };
        for (size_t i = 0; i < sizeof rcs / sizeof *rcs; i++)
            if (rcs[i] != FQ_EFOREIGN)
                _exit(10 + (int)i);
        _exit(0);
    }
    int st = fqt_wait_child(c);
    if (st)
        print_error("child: call %d did not answer FQ_EFOREIGN\n", st - 10);
    assert_int_equal(st, 0);
    /* The child's attempts did not touch the owner's workers. */
    pid_t now[2];
    assert_int_equal(fq_worker_pids(q, now, 2), 2);
    for (int i = 0; i < 2; i++) {
        assert_true(now[i] == workers[0] || now[i] == workers[1]);
        assert_true(fqt_proc_alive(workers[i], 0));
    }
    for (uint64_t i = 0; i < 10; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_wait(q, 30000));
    for (int i = 0; i < 10; i++) {
        fq_result r;
        assert_int_equal(fq_take(q, &r), 1);
        assert_true(fqt_u64(&r) == fqt_square(r.id));
    }
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

/* Freeing the queue from inside a stream's callback ends the stream with
 * FQ_ECLOSED; the stream never touches the freed queue (ASan would say). */
static int producer_two(fq_queue q, void *udata)
{
    int *n = udata;
    if (*n >= 2)
        return 0;
    (*n)++;
    return fq_submit(q, fqt_job_echo, "x", 1, NULL, NULL) == 0 ? 1 : -1;
}

static int consumer_frees(fq_queue q, const fq_result *r, void *udata)
{
    (void)r;
    (void)udata;
    return fq_queue_free(q);
}

static int producer_frees(fq_queue q, void *udata)
{
    (void)udata;
    return fq_queue_free(q) == 0 ? 1 : -1;
}

static void test_free_inside_stream(void **state)
{
    (void)state;
    int n = 0;
    fq_queue q;
    FQT_OK(fq_queue_new(&q, &(fq_options){.workers = 1}));
    FQT_EQ(fq_stream(q, producer_two, consumer_frees, &n, 0), FQ_ECLOSED);
    FQT_EQ(fq_take(q, &(fq_result){0}), FQ_ECLOSED);
    FQT_OK(fq_queue_new(&q, &(fq_options){.workers = 1}));
    FQT_EQ(fq_stream(q, producer_frees, consumer_none, NULL, 0), FQ_ECLOSED);
    fqt_assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_zero_handle),
        FQT_TEST(test_freed_handle),
        FQT_TEST(test_bad_arguments),
        FQT_TEST(test_bad_options),
        FQT_TEST(test_after_finish_and_cancel),
        FQT_TEST(test_ctx_outside_job),
        FQT_TEST(test_reply_misuse_in_job),
        FQT_TEST(test_foreign_in_job),
        FQT_TEST(test_foreign_in_forked_child),
        FQT_TEST(test_free_inside_stream),
    };
    return FQT_RUN(tests);
}
