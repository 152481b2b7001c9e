/* Queue basics: error texts, ids, ordering, the driving calls, stats. */
#include "queue_test.h"

/* ---- error texts ------------------------------------------------------ */

static void test_error_texts(void **state)
{
    (void)state;
    assert_string_equal(fq_version(), FQ_VERSION_STRING);
    int count = 0;
#define CHECK(name, value, text)                                               \
    assert_int_equal(FQ_##name, value);                                        \
    assert_string_equal(fq_strerror(value), text);                             \
    assert_string_equal(fq_err_name(value), "FQ_" #name);                      \
    count++;
    FQ_ERRNO_MAP(CHECK)
#undef CHECK
    assert_int_equal(count, 19);
    const int unknown[] = {1, -20, -1000, INT_MIN, INT_MAX, 12345};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        assert_string_equal(fq_strerror(unknown[i]), "unknown error");
        assert_non_null(fq_err_name(unknown[i]));
    }
    assert_non_null(fq_strerror(0));
    assert_non_null(fq_err_name(0));
}

/* ---- ids -------------------------------------------------------------- */

static int job_ctx_id(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t id = fq_ctx_id(ctx);
    return fq_reply(ctx, &id, sizeof id) == 0 ? 0 : 100;
}

static void test_auto_ids(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 1);
    for (uint64_t i = 0; i < 20; i++) {
        uint64_t id = 999;
        FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, NULL, &id));
        assert_true(id == i);
    }
    /* A NULL id pointer is fine. */
    FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, NULL, NULL));
    fq_result r[21];
    take_n(q, r, 21);
    for (uint64_t i = 0; i < 21; i++) {
        assert_true(r[i].id == i);
        assert_true(fqt_u64(&r[i]) == i); /* the job saw its own id */
    }
    FQT_OK(fq_queue_free(q));
}

static void test_explicit_ids(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 1);
    const uint64_t ids[] = {1000, 5, UINT64_MAX, 0, 1u << 31, 77};
    const int n = sizeof ids / sizeof *ids;
    for (int i = 0; i < n; i++) {
        fq_job_options jo = {.id = ids[i], .flags = FQ_JOB_ID};
        uint64_t got = 12345;
        FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, &jo, &got));
        assert_true(got == ids[i]);
    }
    fq_result r[6];
    take_n(q, r, n);
    for (int i = 0; i < n; i++) {
        assert_true(r[i].id == ids[i]); /* ordered: submission order */
        assert_true(fqt_u64(&r[i]) == ids[i]);
    }
    FQT_OK(fq_queue_free(q));
}

static void test_duplicate_id(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    fq_job_options jo = {.id = 7, .flags = FQ_JOB_ID};
    FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, &jo, NULL));
    /* Still running or queued. */
    FQT_EQ(fq_submit(q, job_ctx_id, NULL, 0, &jo, NULL), FQ_EEXIST);
    FQT_OK(fq_wait(q, 30000));
    /* Finished, but its outcome is not taken yet. */
    FQT_EQ(fq_submit(q, job_ctx_id, NULL, 0, &jo, NULL), FQ_EEXIST);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.submitted == 1); /* refused submissions do not count */
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 1000), 1);
    assert_true(r.id == 7 && fqt_u64(&r) == 7);
    /* Taken: the id is free again. */
    FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, &jo, NULL));
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(r.id == 7);

    /* An automatic id that is live cannot be reused explicitly. */
    uint64_t a;
    FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, NULL, &a));
    fq_job_options same = {.id = a, .flags = FQ_JOB_ID};
    FQT_EQ(fq_submit(q, job_ctx_id, NULL, 0, &same, NULL), FQ_EEXIST);
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(r.id == a);
    /* Nothing else ever produced an outcome. */
    assert_int_equal(fq_take(q, &r), 0);
    FQT_OK(fq_queue_free(q));
}

/* A queue tracks live ids only from its first job with an explicit id:
 * that job must still see every live automatic id, wherever its job is
 * (outcome not taken, running, sent, pending, a handle's), in both modes. */
static void test_explicit_id_after_auto_ids(void **state)
{
    (void)state;
    for (int ordered = 0; ordered <= 1; ordered++) {
        fqt_gate g;
        fqt_gate_new(&g);
        fq_options o = {0};
        o.workers = 1;
        o.ordered = ordered;
        o.inflight = 2; /* some jobs stay pending in the parent */
        fq_queue q = fqt_queue_opts(&o);
        fq_result r;

        uint64_t done = fqt_submit_square(q, 3);
        FQT_OK(fq_wait(q, 30000)); /* done, outcome not taken */
        uint64_t gated = fqt_submit_gate(q, &g, 42, 0);
        fqt_gate_started(q, &g); /* running */
        uint64_t behind[6];
        for (int i = 0; i < 6; i++) /* sent, then pending */
            behind[i] = fqt_submit_square(q, (uint64_t)i);
        fq_job *h = NULL;
        uint64_t x = 9;
        FQT_OK(fq_job_submit(q, fqt_job_square, &x, sizeof x, NULL, &h));
        uint64_t hid = fq_job_id(h);

        uint64_t live[9] = {done, gated, hid};
        memcpy(live + 3, behind, sizeof behind);
        for (int i = 0; i < 9; i++) {
            fq_job_options jo = {.id = live[i], .flags = FQ_JOB_ID};
            FQT_EQ(fq_submit(q, fqt_job_square, &x, sizeof x, &jo, NULL),
                   FQ_EEXIST);
        }
        /* A free id is taken, and automatic ids skip it from then on. */
        uint64_t next = hid + 1, got = 0;
        fq_job_options jo = {.id = next, .flags = FQ_JOB_ID};
        FQT_OK(fq_submit(q, fqt_job_square, &x, sizeof x, &jo, NULL));
        FQT_OK(fq_submit(q, fqt_job_square, &x, sizeof x, NULL, &got));
        assert_true(got == next + 1);

        fqt_gate_open(&g, 1);
        for (int i = 0; i < 10; i++)
            assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(fq_job_wait(h, 30000), 0);
        fq_job_free(h);
        /* Taken: the ids are free again. */
        jo.id = done;
        FQT_OK(fq_submit(q, fqt_job_square, &x, sizeof x, &jo, NULL));
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(r.id == done);
        FQT_OK(fq_queue_free(q));
        fqt_gate_free(&g);
    }
}

static void test_auto_ids_skip_explicit(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 1);
    for (uint64_t e = 1; e <= 2; e++) {
        fq_job_options jo = {.id = e, .flags = FQ_JOB_ID};
        FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, &jo, NULL));
    }
    fq_job_options j5 = {.id = 5, .flags = FQ_JOB_ID};
    FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, &j5, NULL));
    uint64_t got[4];
    for (int i = 0; i < 4; i++)
        FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, NULL, &got[i]));
    assert_true(got[0] == 0);
    assert_true(got[1] == 3);
    assert_true(got[2] == 4);
    assert_true(got[3] == 6);
    fq_result r[7];
    take_n(q, r, 7);
    const uint64_t want[] = {1, 2, 5, 0, 3, 4, 6};
    for (int i = 0; i < 7; i++) {
        assert_true(r[i].id == want[i]);
        assert_true(fqt_u64(&r[i]) == want[i]);
    }
    /* The counter goes on from where it was; it does not go back. */
    uint64_t next;
    FQT_OK(fq_submit(q, job_ctx_id, NULL, 0, NULL, &next));
    assert_true(next == 7);
    FQT_OK(fq_wait(q, 30000));
    FQT_OK(fq_queue_free(q));
}

/* ---- ordering --------------------------------------------------------- */

/*
 * Job 0 is held at a gate on one worker while jobs 1..N finish on the
 * other (inflight 1 keeps them off the blocked worker).
 */
static void held_first(int ordered)
{
    enum { N = 40 };
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o = {.workers = 2, .ordered = ordered, .inflight = 1};
    fq_queue q = fqt_queue_opts(&o);
    assert_true(fqt_submit_gate(q, &g, 4242, 0) == 0);
    (void)fqt_gate_started(q, &g);
    for (uint64_t i = 1; i <= N; i++)
        assert_true(fqt_submit_square(q, i) == i);

    /* Wait until jobs 1..N are finished, job 0 still held. */
    int64_t end = fqp_now_ms() + 10000;
    fq_stats st;
    for (;;) {
        FQT_OK(fq_stats_get(q, &st));
        if (st.finished == N || fqp_now_ms() > end)
            break;
        int rc = fq_poll(q, 100);
        assert_true(rc >= 0);
    }
    if (st.finished != N)
        print_error("finished %" PRIu64 " running %" PRIu64 " pending %" PRIu64
                    "\n",
                    st.finished, st.running, st.pending);
    assert_true(st.finished == N);
    fq_result r;
    if (ordered) {
        /* The oldest job is not finished: nothing can be taken. */
        assert_int_equal(fq_take(q, &r), 0);
        assert_int_equal(fq_poll(q, 0), 0);
        fqt_gate_open(&g, 1);
        for (uint64_t i = 0; i <= N; i++) {
            assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
            assert_true(r.id == i);
            assert_true(fqt_u64(&r) == (i ? fqt_square(i) : 4242));
        }
    } else {
        /* Completion order: the held job comes last. */
        unsigned char seen[N + 1] = {0};
        for (int k = 0; k < N; k++) {
            assert_int_equal(fq_take(q, &r), 1);
            assert_true(r.id >= 1 && r.id <= N);
            assert_int_equal(seen[r.id], 0);
            seen[r.id] = 1;
            assert_true(fqt_u64(&r) == fqt_square(r.id));
        }
        assert_int_equal(fq_take(q, &r), 0);
        fqt_gate_open(&g, 1);
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(r.id == 0);
        assert_true(fqt_u64(&r) == 4242);
    }
    assert_int_equal(fq_take(q, &r), 0);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

static void test_ordered_held_first(void **state)
{
    (void)state;
    held_first(1);
}

static void test_unordered_held_first(void **state)
{
    (void)state;
    held_first(0);
}

/* fq_poll() drives the queue even when outcomes are already waiting to be
 * taken: a caller that polls and looks at the counters sees progress. */
static void test_poll_drives_without_take(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .inflight = 1};
    fq_queue q = fqt_queue_opts(&o);
    enum { N = 10 };
    for (uint64_t i = 0; i < N; i++)
        fqt_submit_square(q, i);
    fq_stats st;
    int64_t end = fqp_now_ms() + 5000;
    do {
        assert_true(fq_poll(q, 20) >= 0);
        FQT_OK(fq_stats_get(q, &st));
    } while (st.finished < N && fqp_now_ms() < end);
    if (st.finished != N)
        print_error("finished %" PRIu64 " of %d after 5 s of fq_poll()\n",
                    st.finished, N);
    assert_true(st.finished == N);
    assert_int_equal(fq_poll(q, 0), N);
    FQT_OK(fq_queue_free(q));
}

static void random_durations(int ordered)
{
    enum { N = 400 };
    fq_queue q = fqt_queue(2, ordered);
    uint64_t seed = 99;
    for (uint64_t i = 0; i < N; i++) {
        uint64_t a[2] = {fqt_mix(seed++) % 1500, i * 7 + 3};
        /* a few long ones, so that later jobs overtake them */
        if (i % 50 == 0)
            a[0] = 30000;
        FQT_OK(fq_submit(q, job_sleep_value, a, sizeof a, NULL, NULL));
    }
    unsigned char seen[N] = {0};
    int out_of_order = 0;
    for (uint64_t k = 0; k < N; k++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(r.id < N);
        if (ordered)
            assert_true(r.id == k);
        else if (r.id != k)
            out_of_order++;
        assert_int_equal(seen[r.id], 0);
        seen[r.id] = 1;
        assert_true(fqt_u64(&r) == r.id * 7 + 3);
    }
    (void)out_of_order;
    fq_result r;
    assert_int_equal(fq_take(q, &r), 0);
    FQT_OK(fq_queue_free(q));
}

static void test_ordered_random(void **state)
{
    (void)state;
    random_durations(1);
}

static void test_unordered_random(void **state)
{
    (void)state;
    random_durations(0);
}

/* ---- driving calls ---------------------------------------------------- */

static void test_poll_wait_take(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, 0);
    fq_result r;
    /* Empty queue: nothing to take, nothing to wait for, no blocking. */
    assert_int_equal(fq_take(q, &r), 0);
    assert_int_equal(fq_poll(q, 0), 0);
    assert_int_equal(fq_poll(q, -1), 0);
    FQT_OK(fq_wait(q, -1));
    FQT_OK(fq_wait(q, 0));

    fqt_submit_gate(q, &g, 1, 0);
    (void)fqt_gate_started(q, &g);
    int64_t t0 = fqp_now_ms();
    assert_int_equal(fq_poll(q, 100), 0);
    assert_true(fqp_now_ms() - t0 >= 90);
    t0 = fqp_now_ms();
    FQT_EQ(fq_wait(q, 100), FQ_ETIMEDOUT);
    assert_true(fqp_now_ms() - t0 >= 90);
    assert_int_equal(fq_take(q, &r), 0);
    FQT_EQ(fq_wait(q, 0), FQ_ETIMEDOUT);
    fqt_gate_open(&g, 1);
    assert_int_equal(fq_poll(q, -1), 1);
    assert_int_equal(fq_poll(q, 0), 1); /* still there until taken */
    assert_int_equal(fq_take(q, &r), 1);
    assert_true(fqt_u64(&r) == 1);
    assert_int_equal(fq_take(q, &r), 0);
    assert_int_equal(fq_poll(q, 0), 0);

    /* fq_poll counts what can be taken now. */
    for (uint64_t i = 0; i < 5; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_wait(q, -1));
    assert_int_equal(fq_poll(q, 0), 5);
    assert_int_equal(fq_poll(q, -1), 5);
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(fq_poll(q, 0), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(fq_take(q, &r), 0);
    assert_int_equal(fq_poll(q, 50), 0);
    FQT_OK(fq_wait(q, -1));
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* ---- stats ------------------------------------------------------------ */

static void test_stats(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o = {.workers = 2, .inflight = 1};
    fq_queue q = fqt_queue_opts(&o);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.submitted == 0 && st.finished == 0 && st.taken == 0);
    assert_true(st.pending == 0 && st.running == 0 && st.crashed == 0);
    assert_true(st.timedout == 0 && st.respawns == 0);
    assert_int_equal(st.workers, 2);

    for (uint64_t i = 0; i < 10; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_wait(q, 30000));
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.submitted == 10 && st.finished == 10 && st.taken == 0);
    assert_true(st.pending == 0 && st.running == 0);
    fq_result r;
    for (int i = 0; i < 4; i++)
        assert_int_equal(fq_take(q, &r), 1);
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.taken == 4);

    fqt_submit_gate(q, &g, 1, 0);
    fqt_submit_gate(q, &g, 2, 0);
    (void)fqt_gate_started(q, &g);
    (void)fqt_gate_started(q, &g);
    for (uint64_t i = 0; i < 3; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.submitted == 15 && st.finished == 10);
    assert_true(st.running == 2 && st.pending == 3);
    fqt_gate_open(&g, 2);
    FQT_OK(fq_wait(q, 30000));
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.finished == 15 && st.running == 0 && st.pending == 0);
    while (fq_take(q, &r) == 1)
        ;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.taken == 15);
    assert_true(st.crashed == 0 && st.timedout == 0 && st.respawns == 0);
    assert_int_equal(st.workers, 2);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

static void test_default_workers(void **state)
{
    (void)state;
    fq_queue q = fqt_queue_opts(NULL);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(st.workers, cpus);
    assert_int_equal(fq_worker_pids(q, NULL, 0), cpus);
    fqt_submit_square(q, 5);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == fqt_square(5));
    FQT_OK(fq_queue_free(q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_error_texts),
        FQT_TEST(test_auto_ids),
        FQT_TEST(test_explicit_ids),
        FQT_TEST(test_duplicate_id),
        FQT_TEST(test_explicit_id_after_auto_ids),
        FQT_TEST(test_auto_ids_skip_explicit),
        FQT_TEST(test_ordered_held_first),
        FQT_TEST(test_unordered_held_first),
        FQT_TEST(test_poll_drives_without_take),
        FQT_TEST(test_ordered_random),
        FQT_TEST(test_unordered_random),
        FQT_TEST(test_poll_wait_take),
        FQT_TEST(test_stats),
        FQT_TEST(test_default_workers),
    };
    return FQT_RUN(tests);
}
