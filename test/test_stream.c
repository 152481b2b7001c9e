/* fq_stream: long streams with bounded memory, stop values, lookahead. */
#include "fq_test.h"

static int job_triple(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t i;
    if (len != sizeof i)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(&i, arg, sizeof i);
    if (i % 1000003 == 999) /* a few failures mixed in */
        return fq_fail(ctx, 5, "every millionth");
    uint64_t out[2] = {i, 3 * i + 1};
    return fq_reply(ctx, out, sizeof out) == 0 ? 0 : 100;
}

struct run {
    uint64_t n;        /* jobs to produce */
    uint64_t produced; /* jobs submitted so far */
    uint64_t consumed; /* outcomes seen so far */
    uint64_t base_id;  /* id of job 0 */
    int ordered;
    unsigned char *seen;
    uint64_t bad; /* wrong outcomes (checked in the main thread) */
    uint64_t first_bad;
    uint64_t max_outstanding;
    int per_call;           /* jobs per producer call (0: 1) */
    uint64_t stop_consumed; /* consumer stops after this many (0: never) */
    int stop_value;
    uint64_t fail_produced; /* producer fails at this many (0: never) */
    int fail_value;
    int submit_rc;
    uint64_t calls; /* producer calls */
};

static int produce(fq_queue q, void *udata)
{
    struct run *s = udata;
    if (s->fail_produced && s->produced == s->fail_produced)
        return s->fail_value;
    if (s->produced >= s->n)
        return 0;
    uint64_t out = s->produced - s->consumed;
    if (out > s->max_outstanding)
        s->max_outstanding = out;
    int k = s->per_call ? s->per_call : 1;
    /* Vary the batch: sometimes none at all (still "more to come"). */
    if (s->per_call && ++s->calls % 7 == 3)
        k = 0;
    for (int j = 0; j < k && s->produced < s->n; j++) {
        uint64_t i = s->produced;
        int rc = fq_submit(q, job_triple, &i, sizeof i, NULL, NULL);
        if (rc) {
            s->submit_rc = rc;
            return rc;
        }
        s->produced++;
    }
    return 1;
}

static void mark_bad(struct run *s, uint64_t what)
{
    if (!s->bad)
        s->first_bad = what;
    s->bad++;
}

static int consume(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    struct run *s = udata;
    uint64_t i = r->id - s->base_id;
    if (i >= s->n || s->seen[i]) {
        mark_bad(s, r->id);
        return 0;
    }
    s->seen[i] = 1;
    if (s->ordered && i != s->consumed)
        mark_bad(s, r->id);
    if (i % 1000003 == 999) {
        if (r->status != FQ_EJOB || r->code != 5)
            mark_bad(s, r->id);
    } else {
        uint64_t out[2];
        if (r->status != 0 || r->len != sizeof out) {
            mark_bad(s, r->id);
        } else {
            memcpy(out, r->data, sizeof out);
            if (out[0] != i || out[1] != 3 * i + 1)
                mark_bad(s, r->id);
        }
    }
    s->consumed++;
    if (s->stop_consumed && s->consumed == s->stop_consumed)
        return s->stop_value;
    return 0;
}

static void run_init(struct run *s, uint64_t n, unsigned char *seen)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->seen = seen;
    memset(seen, 0, n);
}

static void check_all_seen(const struct run *s)
{
    if (s->bad)
        print_error("%" PRIu64 " bad outcomes, first id %" PRIu64 "\n", s->bad,
                    s->first_bad);
    assert_true(s->bad == 0);
    assert_int_equal(s->submit_rc, 0);
    assert_true(s->produced == s->n);
    assert_true(s->consumed == s->n);
    for (uint64_t i = 0; i < s->n; i++)
        if (!s->seen[i]) {
            print_error("job %" PRIu64 " never seen\n", i);
            fail();
        }
}

static uint64_t stream_n(void)
{
    const char *e = getenv("FQ_TEST_STREAM_N");
    if (e && *e)
        return strtoull(e, NULL, 10);
    return 1000000;
}

/* Peak resident set (VmHWM) of a process, in KiB; -1 if unknown. */
static long vm_hwm_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            break;
    fclose(f);
    return v;
}

/*
 * The big one: a long stream (1,000,000 jobs in the normal build) runs with
 * the memory of a short one, in the parent and in the workers.
 */
static void test_stream_bounded_memory(void **state)
{
    (void)state;
    uint64_t n = stream_n();
    uint64_t warm = n / 10;
    unsigned char *seen = malloc(n);
    assert_non_null(seen);
    memset(seen, 1, n); /* resident before the first measure */
    fq_queue q = fqt_queue(2, 0);
    pid_t w[2];
    assert_int_equal(fq_worker_pids(q, w, 2), 2);

    struct run s;
    run_init(&s, warm, seen);
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_stream(q, produce, consume, &s, 0));
    int64_t t_warm = fqp_now_ms() - t0;
    check_all_seen(&s);
    long p1 = vm_hwm_kib(getpid());
    long w1[2] = {vm_hwm_kib(w[0]), vm_hwm_kib(w[1])};

    uint64_t base = warm; /* automatic ids go on from the first run */
    run_init(&s, n, seen);
    s.base_id = base;
    t0 = fqp_now_ms();
    FQT_OK(fq_stream(q, produce, consume, &s, 0));
    int64_t t_full = fqp_now_ms() - t0;
    check_all_seen(&s);
    long p2 = vm_hwm_kib(getpid());
    long w2[2] = {vm_hwm_kib(w[0]), vm_hwm_kib(w[1])};

    /* Same workers all along: none was recycled or replaced. */
    pid_t w_now[2];
    assert_int_equal(fq_worker_pids(q, w_now, 2), 2);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    print_message("stream: %" PRIu64 " jobs in %lld ms (%" PRIu64
                  " in %lld ms); max outstanding %" PRIu64
                  "; VmHWM parent %ld -> %ld KiB, workers %ld -> %ld, "
                  "%ld -> %ld KiB\n",
                  n, (long long)t_full, warm, (long long)t_warm,
                  s.max_outstanding, p1, p2, w1[0], w2[0], w1[1], w2[1]);
    assert_true(st.submitted == warm + n && st.taken == warm + n);
    assert_true(st.respawns == 0 && st.crashed == 0);
#if FQT_SANITIZE
    /* ASan's quarantine keeps freed blocks resident on purpose, so the
     * resident size says nothing about the library here; the normal build
     * checks it. */
    print_message("stream: memory bound not checked under ASan\n");
#else
    assert_true(p1 > 0 && p2 > 0);
    const long bound = 4 * 1024; /* KiB */
    assert_true(p2 - p1 < bound);
    for (int i = 0; i < 2; i++) {
        assert_true(w1[i] > 0 && w2[i] > 0);
        assert_true(w2[i] - w1[i] < bound);
    }
#endif
    FQT_OK(fq_queue_free(q));
    free(seen);
}

static void test_stream_ordered(void **state)
{
    (void)state;
    uint64_t n = stream_n() / 5;
    unsigned char *seen = malloc(n);
    assert_non_null(seen);
    fq_queue q = fqt_queue(2, 1);
    struct run s;
    run_init(&s, n, seen);
    s.ordered = 1;
    FQT_OK(fq_stream(q, produce, consume, &s, 0));
    check_all_seen(&s);
    /* The default lookahead is bounded (4 per worker x depth, >= 64). */
    assert_true(s.max_outstanding >= 2);
    assert_true(s.max_outstanding <= 4 * 2 * 256);
    FQT_OK(fq_queue_free(q));
    free(seen);
}

static void test_stream_lookahead(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 2, 16, 100};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        enum { N = 5000 };
        unsigned char seen[N];
        fq_queue q = fqt_queue(2, (int)(k & 1));
        struct run s;
        run_init(&s, N, seen);
        s.ordered = (int)(k & 1);
        FQT_OK(fq_stream(q, produce, consume, &s, sizes[k]));
        check_all_seen(&s);
        /* produce is called only while fewer than lookahead are out */
        if (s.max_outstanding >= sizes[k])
            print_error("lookahead %zu: %" PRIu64 " outstanding\n", sizes[k],
                        s.max_outstanding);
        assert_true(s.max_outstanding < sizes[k]);
        FQT_OK(fq_queue_free(q));
    }
}

/* The default lookahead is 4 per worker times the in-flight depth, at
 * least 64: one worker with depth 4 gets 64, not 16. */
static void test_stream_default_lookahead_floor(void **state)
{
    (void)state;
    enum { N = 3000 };
    static unsigned char seen[N];
    fq_options o = {.workers = 1, .inflight = 4};
    fq_queue q = fqt_queue_opts(&o);
    struct run s;
    run_init(&s, N, seen);
    FQT_OK(fq_stream(q, produce, consume, &s, 0));
    check_all_seen(&s);
    if (s.max_outstanding <= 16 || s.max_outstanding >= 64)
        print_error("max outstanding %" PRIu64 "\n", s.max_outstanding);
    assert_true(s.max_outstanding > 16 && s.max_outstanding < 64);
    FQT_OK(fq_queue_free(q));
}

/* A stream on a queue whose init fails ends with FQ_EINIT after handing
 * every outcome (all FQ_EINIT) to the consumer. */
static int init_fails(void *udata)
{
    (void)udata;
    return fq_init_fail("init says no");
}

static int consume_count_einit(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    struct run *s = udata;
    if (r->status != FQ_EINIT)
        mark_bad(s, r->id);
    s->consumed++;
    return 0;
}

static void test_stream_init_failure(void **state)
{
    (void)state;
    enum { N = 1000 };
    static unsigned char seen[N];
    fq_options o = {.workers = 2, .init = init_fails};
    fq_queue q = fqt_queue_opts(&o);
    struct run s;
    run_init(&s, N, seen);
    int rc = fq_stream(q, produce, consume_count_einit, &s, 16);
    if (s.submit_rc)
        /* the producer saw the queue stop and passed its error on */
        assert_int_equal(s.submit_rc, FQ_EINIT);
    FQT_EQ(rc, FQ_EINIT);
    assert_true(s.bad == 0);
    assert_true(s.produced < N); /* it stopped early */
    /* every job it accepted had its outcome consumed */
    fq_result r;
    FQT_OK(fq_wait(q, 30000));
    while (fq_take(q, &r) == 1)
        assert_int_equal(consume_count_einit(q, &r, &s), 0);
    assert_true(s.consumed == s.produced);
    assert_true(s.bad == 0);
    FQT_OK(fq_queue_free(q));
}

/* A consumer may submit follow-up jobs; the stream runs them to the end. */
static int consume_and_follow(fq_queue q, const fq_result *r, void *udata)
{
    struct run *s = udata;
    uint64_t out[2];
    if (r->status != 0 || r->len != sizeof out) {
        mark_bad(s, r->id);
        return 0;
    }
    memcpy(out, r->data, sizeof out);
    if (out[1] != 3 * out[0] + 1)
        mark_bad(s, r->id);
    s->consumed++;
    if (out[0] < 1000) {
        uint64_t next = out[0] + 1000;
        int rc = fq_submit(q, job_triple, &next, sizeof next, NULL, NULL);
        if (rc)
            return rc;
    } else {
        s->calls++; /* counts the follow-ups */
    }
    return 0;
}

static void test_stream_consumer_submits(void **state)
{
    (void)state;
    enum { N = 500 };
    static unsigned char seen[N];
    for (int ordered = 0; ordered < 2; ordered++) {
        fq_queue q = fqt_queue(2, ordered);
        struct run s;
        run_init(&s, N, seen);
        FQT_OK(fq_stream(q, produce, consume_and_follow, &s, 32));
        assert_true(s.bad == 0);
        assert_true(s.produced == N);
        assert_true(s.consumed == 2 * N);
        assert_true(s.calls == N); /* follow-ups seen */
        fq_result r;
        assert_int_equal(fq_take(q, &r), 0);
        FQT_OK(fq_queue_free(q));
    }
}

static void test_stream_batches(void **state)
{
    (void)state;
    enum { N = 20000 };
    static unsigned char seen[N];
    fq_queue q = fqt_queue(2, 1);
    struct run s;
    run_init(&s, N, seen);
    s.ordered = 1;
    s.per_call = 3;
    FQT_OK(fq_stream(q, produce, consume, &s, 50));
    check_all_seen(&s);
    FQT_OK(fq_queue_free(q));
}

static void test_stream_consumer_stops(void **state)
{
    (void)state;
    enum { N = 20000 };
    static unsigned char seen[N];
    for (int ordered = 0; ordered < 2; ordered++) {
        fq_queue q = fqt_queue(2, ordered);
        struct run s;
        run_init(&s, N, seen);
        s.ordered = ordered;
        s.stop_consumed = 1000;
        s.stop_value = 42;
        assert_int_equal(fq_stream(q, produce, consume, &s, 0), 42);
        assert_true(s.consumed == 1000); /* not called after the stop */
        assert_true(s.produced >= 1000 && s.produced <= N);
        /* A second call first consumes what the first left outstanding,
         * then goes on producing: every job is seen exactly once. */
        s.stop_consumed = 0;
        FQT_OK(fq_stream(q, produce, consume, &s, 0));
        check_all_seen(&s);
        /* A negative stop value is returned as is, too. */
        run_init(&s, N, seen);
        s.base_id = N;
        s.ordered = ordered;
        s.stop_consumed = 10;
        s.stop_value = -1234;
        assert_int_equal(fq_stream(q, produce, consume, &s, 0), -1234);
        FQT_OK(fq_queue_free(q));
    }
}

static void test_stream_producer_fails(void **state)
{
    (void)state;
    enum { N = 20000 };
    static unsigned char seen[N];
    fq_queue q = fqt_queue(2, 0);
    struct run s;
    run_init(&s, N, seen);
    s.fail_produced = 500;
    s.fail_value = -77;
    assert_int_equal(fq_stream(q, produce, consume, &s, 0), -77);
    assert_true(s.produced == 500);
    assert_true(s.consumed <= 500);
    assert_true(s.bad == 0);
    /* The jobs it submitted are still there, each with one outcome. */
    FQT_OK(fq_wait(q, 30000));
    fq_result r;
    while (fq_take(q, &r) == 1)
        assert_int_equal(consume(q, &r, &s), 0);
    assert_true(s.consumed == 500);
    assert_true(s.bad == 0);
    /* The queue is still usable, by a stream too. */
    s.fail_produced = 0;
    s.n = 1000;
    s.base_id = 0;
    memset(seen + 500, 0, 500);
    FQT_OK(fq_stream(q, produce, consume, &s, 0));
    check_all_seen(&s);
    FQT_OK(fq_queue_free(q));
}

static void test_stream_takes_earlier_jobs(void **state)
{
    (void)state;
    enum { N = 40 };
    unsigned char seen[N];
    fq_queue q = fqt_queue(2, 1);
    struct run s;
    run_init(&s, N, seen);
    s.ordered = 1;
    /* Half the jobs submitted before the stream starts. */
    for (uint64_t i = 0; i < N / 2; i++) {
        FQT_OK(fq_submit(q, job_triple, &i, sizeof i, NULL, NULL));
        s.produced++;
    }
    FQT_OK(fq_stream(q, produce, consume, &s, 0));
    check_all_seen(&s);
    /* An empty producer with nothing outstanding returns at once. */
    run_init(&s, 0, seen);
    FQT_OK(fq_stream(q, produce, consume, &s, 0));
    assert_true(s.consumed == 0);
    FQT_OK(fq_queue_free(q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_stream_bounded_memory),
        FQT_TEST(test_stream_ordered),
        FQT_TEST(test_stream_lookahead),
        FQT_TEST(test_stream_default_lookahead_floor),
        FQT_TEST(test_stream_init_failure),
        FQT_TEST(test_stream_consumer_submits),
        FQT_TEST(test_stream_batches),
        FQT_TEST(test_stream_consumer_stops),
        FQT_TEST(test_stream_producer_fails),
        FQT_TEST(test_stream_takes_earlier_jobs),
    };
    return FQT_RUN(tests);
}
