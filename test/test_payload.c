/* Payloads: 256 MiB both ways, many sizes, and the result size limit. */
#include "fq_test.h"

#include <stdalign.h>

#define MiB ((size_t)1 << 20)

/* Argument: {seed, reply_len} then len-16 pattern bytes of seed. The job
 * checks the pattern, then replies reply_len pattern bytes of ~seed, or
 * echoes the whole argument when reply_len is UINT64_MAX. */
struct phdr {
    uint64_t seed;
    uint64_t reply_len;
};

#define ECHO UINT64_MAX

static int job_payload(fq_ctx *ctx, const void *arg, size_t len)
{
    if ((uintptr_t)arg % alignof(max_align_t) != 0)
        return fq_fail(ctx, 77, "argument not aligned");
    struct phdr h;
    if (len < sizeof h)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(&h, arg, sizeof h);
    const unsigned char *p = (const unsigned char *)arg + sizeof h;
    size_t n = len - sizeof h;
    if (fqt_check(p, n, h.seed) != n)
        return fq_fail(ctx, 78, "argument corrupted");
    if (h.reply_len == ECHO)
        return fq_reply(ctx, arg, len) == 0 ? 0 : 100;
    void *out = malloc(h.reply_len ? h.reply_len : 1);
    if (!out)
        return fq_fail(ctx, 79, "out of memory in the job");
    fqt_fill(out, h.reply_len, ~h.seed);
    int rc = fq_reply(ctx, out, h.reply_len);
    free(out);
    return rc == 0 ? 0 : 100;
}

static unsigned char *make_arg(size_t len, uint64_t seed, uint64_t reply_len)
{
    assert_true(len >= sizeof(struct phdr));
    unsigned char *a = malloc(len);
    assert_non_null(a);
    struct phdr h = {seed, reply_len};
    memcpy(a, &h, sizeof h);
    fqt_fill(a + sizeof h, len - sizeof h, seed);
    return a;
}

static void check_outcome(const fq_result *r, size_t arg_len, uint64_t seed,
                          uint64_t reply_len)
{
    if (r->status != 0)
        print_error("job %" PRIu64 ": %s code %d: %s\n", r->id,
                    fq_err_name(r->status), r->code,
                    r->data ? (const char *)r->data : "");
    assert_int_equal(r->status, 0);
    if (r->len)
        assert_true((uintptr_t)r->data % alignof(max_align_t) == 0);
    if (reply_len == ECHO) {
        assert_true(r->len == arg_len);
        struct phdr h;
        memcpy(&h, r->data, sizeof h);
        assert_true(h.seed == seed && h.reply_len == ECHO);
        size_t n = arg_len - sizeof h;
        assert_true(
            fqt_check((const unsigned char *)r->data + sizeof h, n, seed) == n);
    } else {
        assert_true(r->len == reply_len);
        assert_true(fqt_check(r->data, r->len, ~seed) == r->len);
    }
}

static size_t big_size(void)
{
    return 256 * MiB;
}

static void test_256mib_echo(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    size_t len = big_size();
    unsigned char *a = make_arg(len, 4242, ECHO);
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_submit(q, job_payload, a, len, NULL, NULL));
    /* The bytes were copied: the caller may reuse its buffer at once. */
    memset(a, 0, len);
    free(a);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 120000), 1);
    int64_t took = fqp_now_ms() - t0;
    check_outcome(&r, len, 4242, ECHO);
    print_message("256 MiB each way in %lld ms\n", (long long)took);
    FQT_OK(fq_queue_free(q));
}

static void test_256mib_result(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    unsigned char *a = make_arg(64, 7, big_size());
    FQT_OK(fq_submit(q, job_payload, a, 64, NULL, NULL));
    free(a);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 120000), 1);
    check_outcome(&r, 64, 7, big_size());
    FQT_OK(fq_queue_free(q));
}

static void test_256mib_argument(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    size_t len = big_size() + 13; /* odd size */
    unsigned char *a = make_arg(len, 8, 16);
    FQT_OK(fq_submit(q, job_payload, a, len, NULL, NULL));
    free(a);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 120000), 1);
    check_outcome(&r, len, 8, 16);
    FQT_OK(fq_queue_free(q));
}

/* Many sizes, submitted all at once so that both directions are busy at
 * the same time (a blocking design would deadlock here). */
static void test_many_sizes(void **state)
{
    (void)state;
    static const size_t edges[] = {
        16,      17,      31,     32,          33,          48,         4095,
        4096,    4097,    65535,  65536,       65537,       MiB - 1,    MiB,
        MiB + 1, 8 * MiB, 212992, 212992 + 17, 425984 - 16, 3 * MiB + 5};
    enum { N = 160 };
    size_t alen[N];
    uint64_t rlen[N];
    uint64_t seed = 1;
    for (int i = 0; i < N; i++) {
        uint64_t x = fqt_mix(seed++);
        uint64_t y = fqt_mix(seed++);
        if (i < (int)(sizeof edges / sizeof *edges)) {
            alen[i] = edges[i];
            rlen[i] = edges[sizeof edges / sizeof *edges - 1 - i] - 16;
        } else {
            /* log-uniform in [16, 8 MiB] */
            alen[i] = 16 + (size_t)(x % ((uint64_t)1 << (1 + x % 23)));
            rlen[i] = (y % ((uint64_t)1 << (y % 24)));
            if (alen[i] > 8 * MiB)
                alen[i] = 8 * MiB;
        }
        if (i % 5 == 0)
            rlen[i] = ECHO;
    }
    for (int pass = 0; pass < 2; pass++) {
        fq_options o = {.workers = 2, .ordered = pass};
        fq_queue q = fqt_queue_opts(&o);
        for (int i = 0; i < N; i++) {
            unsigned char *a = make_arg(alen[i], 1000 + (uint64_t)i, rlen[i]);
            uint64_t id;
            FQT_OK(fq_submit(q, job_payload, a, alen[i], NULL, &id));
            assert_true(id == (uint64_t)i);
            free(a);
        }
        for (int n = 0; n < N; n++) {
            fq_result r;
            assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
            assert_true(r.id < N);
            if (pass)
                assert_true(r.id == (uint64_t)n);
            check_outcome(&r, alen[r.id], 1000 + r.id, rlen[r.id]);
        }
        FQT_OK(fq_queue_free(q));
    }
}

/* Several 32 MiB round trips in flight on both workers. */
static void test_large_in_flight(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .inflight = 4};
    fq_queue q = fqt_queue_opts(&o);
    enum { N = 8 };
    size_t len = 32 * MiB;
    for (int i = 0; i < N; i++) {
        unsigned char *a = make_arg(len, 50 + (uint64_t)i, ECHO);
        FQT_OK(fq_submit(q, job_payload, a, len, NULL, NULL));
        free(a);
    }
    for (int n = 0; n < N; n++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
        check_outcome(&r, len, 50 + r.id, ECHO);
    }
    FQT_OK(fq_queue_free(q));
}

static void test_max_result_bytes(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .ordered = 1, .max_result_bytes = MiB};
    fq_queue q = fqt_queue_opts(&o);
    const uint64_t sizes[] = {MiB, MiB + 1, 0, 64 * MiB, 10, MiB + 4096, 1};
    const int n = sizeof sizes / sizeof *sizes;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < n; i++) {
            unsigned char *a = make_arg(32, (uint64_t)i, sizes[i]);
            FQT_OK(fq_submit(q, job_payload, a, 32, NULL, NULL));
            free(a);
        }
    int toobig = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < n; i++) {
            fq_result r;
            assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
            assert_true(r.id == (uint64_t)(round * n + i));
            if (sizes[i] > MiB) {
                if (r.status != FQ_ETOOBIG)
                    print_error("result of %" PRIu64 " bytes: %s\n", sizes[i],
                                fq_err_name(r.status));
                assert_int_equal(r.status, FQ_ETOOBIG);
                fqt_assert_msg(&r);
                toobig++;
            } else {
                check_outcome(&r, 32, (uint64_t)i, sizes[i]);
            }
        }
    assert_int_equal(toobig, 9);
    /* An argument bigger than the result limit is fine. */
    unsigned char *a = make_arg(4 * MiB, 9, 8);
    FQT_OK(fq_submit(q, job_payload, a, 4 * MiB, NULL, NULL));
    free(a);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
    check_outcome(&r, 4 * MiB, 9, 8);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.crashed == 0);
    FQT_OK(fq_queue_free(q));
}

/* Zero bytes: a NULL argument arrives as length 0. */
static int job_len(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    uint64_t l = len;
    return fq_reply(ctx, &l, sizeof l) == 0 ? 0 : 100;
}

static void test_empty_argument(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 1);
    FQT_OK(fq_submit(q, job_len, NULL, 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_len, "abc", 0, NULL, NULL));
    FQT_OK(fq_submit(q, job_len, "abc", 3, NULL, NULL));
    const uint64_t want[] = {0, 0, 3};
    for (int i = 0; i < 3; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(fqt_u64(&r) == want[i]);
    }
    FQT_OK(fq_queue_free(q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_256mib_echo),     FQT_TEST(test_256mib_result),
        FQT_TEST(test_256mib_argument), FQT_TEST(test_many_sizes),
        FQT_TEST(test_large_in_flight), FQT_TEST(test_max_result_bytes),
        FQT_TEST(test_empty_argument),
    };
    return FQT_RUN(tests);
}
