/* What a worker starts from: init functions, inherited data, recycled
 * workers, many queues and workers, fork hooks. */
#include "queue_test.h"

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
        struct info in;
        take_ok(q, &in, sizeof in);
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
        uint64_t out[3];
        take_ok(q, out, sizeof out);
        assert_true(out[0] == sum);
        assert_true(out[1] == 999);
        assert_true(out[2] == 3 * i);
    }
    FQT_OK(fq_queue_free(q));
    free(g_heap_text);
    g_heap_text = NULL;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_init_once_per_worker),
        FQT_TEST(test_init_failure),
        FQT_TEST(test_init_crashes),
        FQT_TEST(test_init_crashes_once),
        FQT_TEST(test_inherited_data),
        FQT_TEST(test_max_jobs_per_worker),
        FQT_TEST(test_recycled_workers_run_init),
        FQT_TEST(test_many_queues),
        FQT_TEST(test_worker_pids_truncated),
        FQT_TEST(test_many_workers),
        FQT_TEST(test_fork_hooks),
    };
    return FQT_RUN(tests);
}
