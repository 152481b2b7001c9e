/*
 * The frames beyond JOB and RESULT, end to end: function ids (a worker that
 * did not fork from the caller finds functions by registered id), HELLO and
 * a version mismatch, STARTED (progress, crash attribution and time limits
 * of a worker without a shared page), LOG (fq_log() to the log callback) and
 * CANCEL (fq_ctx_cancelled()).
 *
 * Workers that speak only the wire protocol are the internal process-wire
 * kind (FQ__WORKER_PROCESS_WIRE): forked processes that are told to behave
 * as if they were not.
 */
#include "fq_test.h"

#include "core/internal.h"
#include "worker/worker.h"

/* ---- jobs -------------------------------------------------------------- */

static int echo_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

static int other_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return fq_reply(ctx, "other", 5);
}

static int late_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return fq_reply(ctx, "late", 4);
}

static int unregistered_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return fq_reply(ctx, "never", 5);
}

static int long_name_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return fq_reply(ctx, "long", 4);
}

static int crash_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    raise(SIGSEGV);
    return 0;
}

static int sleep_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int ms = 0;
    (void)ctx;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return 0;
}

/* Logs its argument at level 20, then its id in a second record. */
static int log_job(fq_ctx *ctx, const void *arg, size_t len)
{
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)len, (const char *)arg);
    if (fq_log(ctx, 20, text) != 0)
        return 1;
    snprintf(text, sizeof text, "id %llu", (unsigned long long)fq_ctx_id(ctx));
    if (fq_log(ctx, FQ_LOG_LEVEL_MAX, text) != 0)
        return 2;
    return fq_reply(ctx, "logged", 6);
}

/* fq_log()'s checks, from inside a job: replies with the codes. */
static int log_bad_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    static char big[FQ_LOG_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    int rc[6] = {
        fq_log(ctx, -1, "x"),
        fq_log(ctx, FQ_LOG_LEVEL_MAX + 1, "x"),
        fq_log(ctx, 1, NULL),
        fq_log(NULL, 1, "x"),
        fq_log(ctx, 1, big), /* FQ_LOG_MAX + 1 bytes */
        0,
    };
    big[FQ_LOG_MAX] = '\0';
    rc[5] = fq_log(ctx, 1, big); /* exactly FQ_LOG_MAX */
    return fq_reply(ctx, rc, sizeof rc);
}

/* Tells the parent it runs (a log record), then spins until
 * fq_ctx_cancelled() or 20 s; replies how it ended and how often it
 * asked. */
static int spin_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int was = fq_ctx_cancelled(ctx);
    fq_log(ctx, 1, "running");
    int64_t end = fqp_now_ms() + 20000;
    unsigned long calls = 0;
    while (!fq_ctx_cancelled(ctx) && fqp_now_ms() < end)
        calls++;
    char out[64];
    int n =
        snprintf(out, sizeof out, "%s %d %lu",
                 fq_ctx_cancelled(ctx) ? "cancelled" : "timeout", was, calls);
    return fq_reply(ctx, out, (size_t)n);
}

/* ---- helpers ----------------------------------------------------------- */

static void register_all(void)
{
    FQT_OK(fq_func_register("frames.echo", echo_job, NULL));
    FQT_OK(fq_func_register("test.crash", crash_job, NULL));
    FQT_OK(fq_func_register("test.sleep", sleep_job, NULL));
    FQT_OK(fq_func_register("test.log", log_job, NULL));
    FQT_OK(fq_func_register("test.spin", spin_job, NULL));
}

static fq_queue wire_queue(int workers, fq_options *o)
{
    fq_options d = {0};
    if (!o)
        o = &d;
    o->workers = workers;
    o->kind = FQ__WORKER_PROCESS_WIRE;
    return fqt_queue_opts(o);
}

static fq_queue kind_queue(int kind, int workers, fq_options *o)
{
    if (kind == FQ__WORKER_PROCESS_WIRE)
        return wire_queue(workers, o);
    o->workers = workers;
    o->kind = kind;
    return fqt_queue_opts(o);
}

static uint64_t submit(fq_queue q, fq_job_fn fn, const void *arg, size_t len)
{
    uint64_t id;
    FQT_OK(fq_submit(q, fn, arg, len, NULL, &id));
    return id;
}

static void take_one(fq_queue q, fq_result *r)
{
    assert_int_equal(fqt_take_wait(q, r, 30000), 1);
}

/* ---- function ids ------------------------------------------------------ */

static void test_func_register(void **state)
{
    (void)state;
    uint64_t id = 1, id2 = 2, found = 3;
    FQT_OK(fq_func_register("frames.echo", echo_job, &id));
    assert_true(id != 0);
    /* The same in every process: a hash of the name alone. */
    assert_true(id == fq__func_hash("frames.echo"));
    /* The same pair again: a no-op with the same id. */
    FQT_OK(fq_func_register("frames.echo", echo_job, &id2));
    assert_true(id2 == id);
    FQT_OK(fq_func_id("frames.echo", &found));
    assert_true(found == id);
    assert_true(fq__func_id_of(echo_job) == id);
    assert_true(fq__func_by_id(id) == echo_job);
    assert_string_equal(fq__func_name(id), "frames.echo");

    /* A name taken by another function, a function under another name. */
    FQT_EQ(fq_func_register("frames.echo", other_job, &id2), FQ_EEXIST);
    assert_true(id2 == 0);
    FQT_EQ(fq_func_register("frames.echo2", echo_job, NULL), FQ_EEXIST);
    FQT_OK(fq_func_register("frames.other", other_job, &id2));
    assert_true(id2 != id);

    /* Invalid input. */
    char longname[FQ_FUNC_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    FQT_EQ(fq_func_register(NULL, echo_job, NULL), FQ_EINVAL);
    FQT_EQ(fq_func_register("", echo_job, NULL), FQ_EINVAL);
    FQT_EQ(fq_func_register("frames.null", NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_func_register(longname, long_name_job, NULL), FQ_EINVAL);
    longname[FQ_FUNC_NAME_MAX] = '\0'; /* exactly the longest */
    FQT_OK(fq_func_register(longname, long_name_job, NULL));
    FQT_EQ(fq_func_id("frames.none", &found), FQ_ENOFUNC);
    assert_true(found == 0);
    FQT_EQ(fq_func_id(NULL, &found), FQ_EINVAL);
    FQT_EQ(fq_func_id("frames.echo", NULL), FQ_EINVAL);
    assert_null(fq__func_name(0));
    assert_null(fq__func_by_id(12345));
    assert_string_equal(fq_strerror(FQ_ENOFUNC), "function not registered");
    assert_string_equal(fq_err_name(FQ_ENOFUNC), "FQ_ENOFUNC");
}

/* Many names: the tables grow, every lookup still finds its entry. */
static int many_fn(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    return 0;
}

static void test_func_many(void **state)
{
    (void)state;
    /* Distinct addresses: one byte apart inside a function is not a
     * function, but the table only compares addresses. */
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "frames.many.%d", i);
        fq_job_fn fn = (fq_job_fn)(void (*)(void))((uintptr_t)many_fn + i);
        uint64_t id;
        FQT_OK(fq_func_register(name, fn, &id));
    }
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "frames.many.%d", i);
        uint64_t id;
        FQT_OK(fq_func_id(name, &id));
        fq_job_fn fn = (fq_job_fn)(void (*)(void))((uintptr_t)many_fn + i);
        assert_true(fq__func_by_id(id) == fn);
        assert_true(fq__func_id_of(fn) == id);
    }
}

/* Jobs by id: results, and a function the caller never registered. */
static void test_wire_kind_runs_by_id(void **state)
{
    (void)state;
    register_all();
    fq_queue q = wire_queue(2, NULL);
    fq_result r;
    for (int i = 0; i < 200; i++)
        submit(q, echo_job, &i, sizeof i);
    for (int i = 0; i < 200; i++) {
        take_one(q, &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, sizeof(int));
    }
    /* Not registered: refused at submit, nothing is sent. */
    FQT_EQ(fq_submit(q, unregistered_job, NULL, 0, NULL, NULL), FQ_ENOFUNC);
    FQT_OK(fq_finish(q));
    FQT_OK(fq_queue_free(q));
}

/* A function registered in the caller after its workers were forked: they
 * do not know its id, and the job fails naming it; the worker goes on. */
static void test_unknown_id_in_worker(void **state)
{
    (void)state;
    register_all();
    fq_queue q = wire_queue(1, NULL);
    fq_result r;
    /* The worker exists (its HELLO came), then the name is registered. */
    submit(q, echo_job, "a", 1);
    take_one(q, &r);
    assert_int_equal(r.status, 0);
    uint64_t id;
    FQT_OK(fq_func_register("frames.late", late_job, &id));
    uint64_t jid = submit(q, late_job, NULL, 0);
    take_one(q, &r);
    assert_true(r.id == jid);
    assert_int_equal(r.status, FQ_ENOFUNC);
    char want[64];
    snprintf(want, sizeof want, "function id 0x%016llx is not registered",
             (unsigned long long)id);
    assert_non_null(strstr(r.data, want));
    /* The worker is fine. */
    submit(q, echo_job, "b", 1);
    take_one(q, &r);
    assert_int_equal(r.status, 0);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.respawns, 0);
    FQT_OK(fq_queue_free(q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_func_register),
        FQT_TEST(test_func_many),
        FQT_TEST(test_wire_kind_runs_by_id),
        FQT_TEST(test_unknown_id_in_worker),
    };
    return FQT_RUN(tests);
}
