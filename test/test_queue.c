/* Queue semantics: ordering, ids, init, job errors, replies, the driving
 * calls, finish, cancel, refork, recycling, stats, hooks, threads. */
#include "fq_test.h"

#include <pthread.h>
#include <sys/time.h>

#define MAXJ 4096

/* Takes `n` outcomes (waiting up to 30 s in all) into out[]. */
static void take_n(fq_queue q, fq_result *out, int n)
{
    for (int i = 0; i < n; i++) {
        fq_result r;
        int rc = fqt_take_wait(q, &r, 30000);
        if (rc != 1)
            print_error("outcome %d of %d: take returned %d\n", i, n, rc);
        assert_int_equal(rc, 1);
        out[i] = r;
        out[i].data = NULL; /* only valid until the next take */
        if (r.status == 0 && r.len == sizeof(uint64_t)) {
            static uint64_t vals[MAXJ];
            memcpy(&vals[i % MAXJ], r.data, sizeof(uint64_t));
            out[i].data = &vals[i % MAXJ];
        }
    }
}

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

/* Argument: {sleep microseconds, value}; result: value. */
static int job_sleep_value(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t a[2];
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(a, arg, sizeof a);
    if (a[0]) {
        struct timespec ts = {(time_t)(a[0] / 1000000),
                              (long)(a[0] % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return fq_reply(ctx, &a[1], sizeof a[1]) == 0 ? 0 : 100;
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

/* ---- init ------------------------------------------------------------- */

static int g_init_count;
static pid_t g_init_pid;
static void *g_init_udata;
static int g_init_pipe = -1;
static int g_child_hook_ran;
static int g_init_saw_child_hook;
static int g_init_gate = -1;

static int init_record(void *udata)
{
    g_init_count++;
    g_init_pid = getpid();
    g_init_udata = udata;
    g_init_saw_child_hook = g_child_hook_ran;
    if (g_init_pipe >= 0) {
        pid_t p = getpid();
        if (fqt_write_all(g_init_pipe, &p, sizeof p) != 0)
            return fq_init_fail("cannot write the init pipe");
    }
    return 0;
}

struct info {
    pid_t pid;
    int init_count;
    pid_t init_pid;
    int udata_ok;
    int child_hook;
    int init_saw_child_hook;
};

static int job_info(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    struct info in = {getpid(),         g_init_count,
                      g_init_pid,       fq_ctx_udata(ctx) == g_init_udata,
                      g_child_hook_ran, g_init_saw_child_hook};
    return fq_reply(ctx, &in, sizeof in) == 0 ? 0 : 100;
}

static void test_init_once_per_worker(void **state)
{
    (void)state;
    int p[2];
    fqt_pipe(p);
    g_init_pipe = p[1];
    static int marker;
    fq_options o = {.workers = 3, .init = init_record, .udata = &marker};
    fq_queue q = fqt_queue_opts(&o);
    g_init_pipe = -1;
    pid_t pids[8];
    assert_int_equal(fq_worker_pids(q, pids, 8), 3);
    enum { N = 300 };
    for (int i = 0; i < N; i++)
        FQT_OK(fq_submit(q, job_info, NULL, 0, NULL, NULL));
    for (int i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, sizeof(struct info));
        struct info in;
        memcpy(&in, r.data, sizeof in);
        assert_int_equal(in.init_count, 1); /* once, before the job */
        assert_int_equal(in.init_pid, in.pid);
        assert_int_equal(in.udata_ok, 1);
        int known = 0;
        for (int k = 0; k < 3; k++)
            known |= pids[k] == in.pid;
        assert_true(known);
    }
    /* The parent never ran init. */
    assert_int_equal(g_init_count, 0);
    FQT_OK(fq_finish(q));
    /* Exactly one init per worker. */
    close(p[1]);
    pid_t got[8];
    int n = 0;
    while (n < 8 && fqt_read_all(p[0], &got[n], sizeof got[n]) == 0)
        n++;
    close(p[0]);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int k = 0; k < 3; k++)
            found += got[k] == pids[i];
        assert_int_equal(found, 1);
    }
    FQT_OK(fq_queue_free(q));
}

static int init_fail_at_gate(void *udata)
{
    (void)udata;
    char c;
    if (fqt_read_all(g_init_gate, &c, 1) != 0)
        return fq_init_fail("gate closed");
    return fq_init_fail("no database");
}

static void test_init_failure(void **state)
{
    (void)state;
    int gate[2];
    fqt_pipe(gate);
    g_init_gate = gate[0];
    fq_options o = {.workers = 2, .init = init_fail_at_gate};
    fq_queue q = fqt_queue_opts(&o);
    /* The inits have not failed yet (they wait for the gate). */
    for (int i = 0; i < 5; i++)
        FQT_OK(fq_submit(q, fqt_job_echo, "x", 1, NULL, NULL));
    /* One worker's init fails; the other stays blocked in init. */
    assert_int_equal(fqt_write_all(gate[1], "x", 1), 0);
    FQT_OK(fq_wait(q, 30000));
    for (int i = 0; i < 5; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 1000), 1);
        assert_int_equal(r.status, FQ_EINIT);
        fqt_assert_msg(&r);
        assert_non_null(strstr(r.data, "no database"));
    }
    fq_result r;
    assert_int_equal(fq_take(q, &r), 0);
    /* The queue stopped. */
    FQT_EQ(fq_submit(q, fqt_job_echo, "x", 1, NULL, NULL), FQ_EINIT);
    FQT_OK(fq_queue_free(q));
    /* The worker blocked in init was stopped and reaped too. */
    fqt_assert_no_children();
    close(gate[0]);
    close(gate[1]);
    g_init_gate = -1;
}

/* An init function that kills its worker every time: jobs do not wait
 * forever for a worker that never gets through init. Each job ends as a
 * crash that names the init function once three workers died in init under
 * it; the queue itself goes on (only an init that returns non-zero stops
 * it), and the number of forks stays bounded by the jobs. */
static int init_abort(void *udata)
{
    (void)udata;
    abort();
}

static void test_init_crashes(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .init = init_abort};
    fq_queue q = fqt_queue_opts(&o);
    enum { N = 5 };
    for (int i = 0; i < N; i++)
        FQT_OK(fq_submit(q, fqt_job_echo, "x", 1, NULL, NULL));
    FQT_OK(fq_wait(q, 30000));
    for (int i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fq_take(q, &r), 1);
        assert_int_equal(r.status, FQ_ECRASHED);
        assert_int_equal(r.signo, SIGABRT);
        fqt_assert_msg(&r);
        assert_non_null(strstr(r.data, "init function"));
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    /* Three deaths per job, plus idle workers dying in init meanwhile:
     * bounded by the work, not a runaway fork loop. */
    if (st.respawns > 20 * N)
        print_error("%" PRIu64 " respawns for %d jobs\n", st.respawns, N);
    assert_true(st.respawns <= 20 * N);
    /* Still usable: a later job meets the same fate, it does not hang. */
    FQT_OK(fq_submit(q, fqt_job_echo, "x", 1, NULL, NULL));
    FQT_OK(fq_wait(q, 30000));
    fq_result r;
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(r.status, FQ_ECRASHED);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

/* One worker's init dies once (the first to take a token from a pipe);
 * the others get through, so the queue goes on and every job succeeds. */
static int g_token_fd = -1;

static int init_abort_once(void *udata)
{
    (void)udata;
    char c;
    if (read(g_token_fd, &c, 1) == 1)
        abort();
    return 0;
}

static void test_init_crashes_once(void **state)
{
    (void)state;
    int tok[2];
    assert_int_equal(pipe2(tok, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(fqt_write_all(tok[1], "t", 1), 0);
    g_token_fd = tok[0];
    fq_options o = {.workers = 2, .init = init_abort_once};
    fq_queue q = fqt_queue_opts(&o);
    for (uint64_t i = 0; i < 50; i++)
        fqt_submit_square(q, i);
    for (int i = 0; i < 50; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(fqt_u64(&r) == fqt_square(r.id));
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.crashed == 0);
    FQT_OK(fq_queue_free(q));
    g_token_fd = -1;
    close(tok[0]);
    close(tok[1]);
}

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

/* ---- inherited data --------------------------------------------------- */

static uint64_t g_table[8192];
static char *g_heap_text;

static uint64_t times_three(uint64_t x)
{
    return 3 * x;
}

struct inherit_arg {
    uint64_t (*fn)(uint64_t);
    uint64_t x;
};

static int job_inherited(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)len;
    const struct inherit_arg *a = arg;
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof g_table / sizeof *g_table; i++)
        sum += g_table[i];
    uint64_t out[3] = {sum, g_heap_text ? strlen(g_heap_text) : 0, a->fn(a->x)};
    return fq_reply(ctx, out, sizeof out) == 0 ? 0 : 100;
}

static void test_inherited_data(void **state)
{
    (void)state;
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof g_table / sizeof *g_table; i++) {
        g_table[i] = fqt_mix(i);
        sum += g_table[i];
    }
    g_heap_text = malloc(1000);
    assert_non_null(g_heap_text);
    memset(g_heap_text, 'a', 999);
    g_heap_text[999] = 0;
    fq_queue q = fqt_queue(2, 1);
    for (uint64_t i = 0; i < 10; i++) {
        struct inherit_arg a = {times_three, i};
        FQT_OK(fq_submit(q, job_inherited, &a, sizeof a, NULL, NULL));
    }
    for (uint64_t i = 0; i < 10; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, 3 * sizeof(uint64_t));
        uint64_t out[3];
        memcpy(out, r.data, sizeof out);
        assert_true(out[0] == sum);
        assert_true(out[1] == 999);
        assert_true(out[2] == 3 * i);
    }
    FQT_OK(fq_queue_free(q));
    free(g_heap_text);
    g_heap_text = NULL;
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
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 2 * sizeof(uint64_t));
    uint64_t out[2];
    memcpy(out, r.data, sizeof out);
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

/* ---- recycling -------------------------------------------------------- */

static void test_max_jobs_per_worker(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .max_jobs_per_worker = 3};
    fq_queue q = fqt_queue_opts(&o);
    enum { N = 60 };
    for (int i = 0; i < N; i++)
        FQT_OK(fq_submit(q, fqt_job_pid, NULL, 0, NULL, NULL));
    pid_t pids[N];
    int npids = 0, count[N] = {0};
    unsigned char seen[N] = {0};
    for (int i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(r.status, 0);
        assert_true(r.id < N);
        assert_int_equal(seen[r.id], 0);
        seen[r.id] = 1;
        pid_t p;
        memcpy(&p, r.data, sizeof p);
        int k = 0;
        while (k < npids && pids[k] != p)
            k++;
        if (k == npids)
            pids[npids++] = p;
        count[k]++;
    }
    assert_true(npids >= N / 3);
    for (int k = 0; k < npids; k++)
        assert_true(count[k] <= 3);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.respawns >= N / 3 - 2);
    assert_true(st.crashed == 0);
    assert_true(st.finished == N);
    FQT_OK(fq_finish(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));
}

/* Recycled workers run init again, once each. */
static void test_recycled_workers_run_init(void **state)
{
    (void)state;
    fq_options o = {
        .workers = 2, .max_jobs_per_worker = 2, .init = init_record};
    fq_queue q = fqt_queue_opts(&o);
    enum { N = 20 };
    for (int i = 0; i < N; i++)
        FQT_OK(fq_submit(q, job_info, NULL, 0, NULL, NULL));
    for (int i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(r.status, 0);
        struct info in;
        memcpy(&in, r.data, sizeof in);
        assert_int_equal(in.init_count, 1);
        assert_int_equal(in.init_pid, in.pid);
    }
    FQT_OK(fq_queue_free(q));
}

/* Several queues side by side in one thread: outcomes never cross. */
static int job_tag(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t t[2];
    if (len != sizeof t)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(t, arg, sizeof t);
    return fq_reply(ctx, t, sizeof t) == 0 ? 0 : 100;
}

static void test_many_queues(void **state)
{
    (void)state;
    enum { Q = 6, N = 200 };
    fq_queue qs[Q];
    for (int k = 0; k < Q; k++) {
        qs[k] = fqt_queue(1 + k % 2, k % 2);
        for (int j = 0; j < k; j++)
            assert_int_not_equal(qs[k].id, qs[j].id);
    }
    for (uint64_t i = 0; i < N; i++)
        for (int k = 0; k < Q; k++) {
            uint64_t t[2] = {(uint64_t)k, i};
            FQT_OK(fq_submit(qs[k], job_tag, t, sizeof t, NULL, NULL));
        }
    for (int k = Q - 1; k >= 0; k--) {
        for (uint64_t i = 0; i < N; i++) {
            fq_result r;
            assert_int_equal(fqt_take_wait(qs[k], &r, 30000), 1);
            assert_int_equal(r.status, 0);
            uint64_t t[2];
            memcpy(t, r.data, sizeof t);
            assert_true(t[0] == (uint64_t)k);
            assert_true(t[1] == r.id);
        }
        FQT_OK(fq_queue_free(qs[k]));
    }
    /* Many short-lived queues: handle ids are never reused. */
    uint32_t seen[100];
    for (int k = 0; k < 100; k++) {
        fq_queue q = fqt_queue(1, 0);
        for (int j = 0; j < k; j++)
            assert_int_not_equal(q.id, seen[j]);
        seen[k] = q.id;
        FQT_OK(fq_queue_free(q));
    }
    fqt_assert_no_children();
}

/* Many more workers than CPUs. */
static void test_many_workers(void **state)
{
    (void)state;
    enum { W = 32, N = 2000 };
    fq_queue q = fqt_queue(W, 0);
    assert_int_equal(fq_worker_pids(q, NULL, 0), W);
    for (uint64_t i = 0; i < N; i++)
        fqt_submit_square(q, i);
    for (int i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(fqt_u64(&r) == fqt_square(r.id));
    }
    FQT_OK(fq_finish(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));
}

static void test_worker_pids_truncated(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(3, 0);
    pid_t p[3] = {-1, -1, -1};
    assert_int_equal(fq_worker_pids(q, p, 1), 3);
    assert_true(p[0] > 0);
    assert_int_equal(p[1], -1); /* only max entries are written */
    assert_int_equal(fq_worker_pids(q, p, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_true(p[i] > 0);
        assert_true(fqt_proc_alive(p[i], 0));
        for (int j = 0; j < i; j++)
            assert_int_not_equal(p[i], p[j]);
    }
    FQT_OK(fq_queue_free(q));
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

/* ---- fork hooks ------------------------------------------------------- */

static int g_prepare, g_parent, g_hook_arg_ok;
static int g_hook_marker;

static void hook_prepare(void *arg)
{
    g_prepare++;
    g_hook_arg_ok += arg == &g_hook_marker;
}

static void hook_parent(void *arg)
{
    g_parent++;
    g_hook_arg_ok += arg == &g_hook_marker;
}

static void hook_child(void *arg)
{
    g_child_hook_ran = arg == &g_hook_marker ? 1 : -1;
}

static int job_exit3(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    _exit(3);
}

static void test_fork_hooks(void **state)
{
    (void)state;
    g_prepare = g_parent = g_hook_arg_ok = 0;
    fq_options o = {.workers = 2, .init = init_record};
    o.hooks.prepare = hook_prepare;
    o.hooks.parent = hook_parent;
    o.hooks.child = hook_child;
    o.hook_arg = &g_hook_marker;
    fq_queue q = fqt_queue_opts(&o);
    assert_int_equal(g_prepare, 2);
    assert_int_equal(g_parent, 2);
    assert_int_equal(g_child_hook_ran, 0); /* never in the parent */

    FQT_OK(fq_submit(q, job_exit3, NULL, 0, NULL, NULL));
    for (int i = 0; i < 10; i++)
        FQT_OK(fq_submit(q, job_info, NULL, 0, NULL, NULL));
    int crashed = 0;
    for (int i = 0; i < 11; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        if (r.status == FQ_ECRASHED) {
            crashed++;
            continue;
        }
        assert_int_equal(r.status, 0);
        struct info in;
        memcpy(&in, r.data, sizeof in);
        assert_int_equal(in.child_hook, 1);
        assert_int_equal(in.init_saw_child_hook, 1); /* child runs first */
    }
    assert_int_equal(crashed, 1);
    /* The dead worker is replaced, through the hooks too. */
    int64_t end = fqp_now_ms() + 20000;
    while (fq_worker_pids(q, NULL, 0) < 2 && fqp_now_ms() < end)
        assert_true(fq_poll(q, 10) >= 0);
    assert_int_equal(fq_worker_pids(q, NULL, 0), 2);
    assert_true(g_prepare >= 3);
    assert_int_equal(g_parent, g_prepare);
    assert_int_equal(g_hook_arg_ok, g_prepare + g_parent);
    FQT_OK(fq_queue_free(q));
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
        FQT_TEST(test_error_texts),
        FQT_TEST(test_auto_ids),
        FQT_TEST(test_explicit_ids),
        FQT_TEST(test_duplicate_id),
        FQT_TEST(test_auto_ids_skip_explicit),
        FQT_TEST(test_ordered_held_first),
        FQT_TEST(test_unordered_held_first),
        FQT_TEST(test_poll_drives_without_take),
        FQT_TEST(test_ordered_random),
        FQT_TEST(test_unordered_random),
        FQT_TEST(test_init_once_per_worker),
        FQT_TEST(test_init_failure),
        FQT_TEST(test_init_crashes),
        FQT_TEST(test_init_crashes_once),
        FQT_TEST(test_job_errors),
        FQT_TEST(test_reply_rules),
        FQT_TEST(test_inherited_data),
        FQT_TEST(test_poll_wait_take),
        FQT_TEST(test_finish),
        FQT_TEST(test_cancel),
        FQT_TEST(test_cancel_grace_then_kill),
        FQT_TEST(test_cancel_no_grace),
        FQT_TEST(test_free_busy),
        FQT_TEST(test_refork),
        FQT_TEST(test_max_jobs_per_worker),
        FQT_TEST(test_recycled_workers_run_init),
        FQT_TEST(test_many_queues),
        FQT_TEST(test_worker_pids_truncated),
        FQT_TEST(test_many_workers),
        FQT_TEST(test_stats),
        FQT_TEST(test_default_workers),
        FQT_TEST(test_fork_hooks),
        FQT_TEST(test_nested_queue),
        FQT_TEST(test_nested_one_inner_worker),
        FQT_TEST(test_threads),
        FQT_TEST(test_return_on_eintr),
    };
    return FQT_RUN(tests);
}
