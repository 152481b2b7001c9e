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

#include <pthread.h>

#include "core/internal.h"
#include "queue/queue.h"
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
static char fake_fns[500];

static void test_func_many(void **state)
{
    (void)state;
    /* Distinct addresses that no real function has (the table only
     * compares them; nothing is called). */
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "frames.many.%d", i);
        fq_job_fn fn = (fq_job_fn)(void (*)(void))((uintptr_t)fake_fns + i);
        uint64_t id;
        FQT_OK(fq_func_register(name, fn, &id));
    }
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "frames.many.%d", i);
        uint64_t id;
        FQT_OK(fq_func_id(name, &id));
        fq_job_fn fn = (fq_job_fn)(void (*)(void))((uintptr_t)fake_fns + i);
        assert_true(fq__func_by_id(id) == fn);
        assert_true(fq__func_id_of(fn) == id);
    }
}

/* Threads register and look up at once (also under TSan): every lookup
 * finds either nothing or the complete entry, and every name is there in
 * the end. */
#define REG_THREADS 4
#define REG_EACH 300
static char thread_fns[REG_THREADS][REG_EACH];

static fq_job_fn thread_fn(int t, int i)
{
    return (fq_job_fn)(void (*)(void))(uintptr_t)&thread_fns[t][i];
}

static void *register_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < REG_EACH; i++) {
        char name[48];
        snprintf(name, sizeof name, "frames.thread.%d.%d", t, i);
        if (fq_func_register(name, thread_fn(t, i), NULL) != 0)
            return (void *)1;
        /* Look at what the others registered so far. */
        int o = (t + 1) % REG_THREADS;
        snprintf(name, sizeof name, "frames.thread.%d.%d", o, i);
        uint64_t id;
        int rc = fq_func_id(name, &id);
        if (rc == 0 && (fq__func_by_id(id) != thread_fn(o, i) ||
                        fq__func_id_of(thread_fn(o, i)) != id))
            return (void *)2;
        if (rc != 0 && rc != FQ_ENOFUNC)
            return (void *)3;
    }
    return NULL;
}

static void test_thread_func_register(void **state)
{
    (void)state;
    pthread_t th[REG_THREADS];
    for (int t = 0; t < REG_THREADS; t++)
        assert_int_equal(
            pthread_create(&th[t], NULL, register_thread, (void *)(intptr_t)t),
            0);
    for (int t = 0; t < REG_THREADS; t++) {
        void *res;
        assert_int_equal(pthread_join(th[t], &res), 0);
        assert_null(res);
    }
    for (int t = 0; t < REG_THREADS; t++)
        for (int i = 0; i < REG_EACH; i++) {
            char name[48];
            snprintf(name, sizeof name, "frames.thread.%d.%d", t, i);
            uint64_t id;
            FQT_OK(fq_func_id(name, &id));
            assert_true(fq__func_by_id(id) == thread_fn(t, i));
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

/* ---- STARTED: a worker without a page --------------------------------- */

/* The parent knows which job ran when a worker died only from STARTED
 * frames: the crashing job is blamed, the others all succeed. */
static void test_wire_kind_crash_attribution(void **state)
{
    (void)state;
    register_all();
    fq_queue q = wire_queue(2, NULL);
    enum { N = 60 };
    uint64_t crash_id[3];
    int ncrash = 0;
    for (int i = 0; i < N; i++) {
        if (i % 20 == 10)
            crash_id[ncrash++] = submit(q, crash_job, NULL, 0);
        else
            submit(q, echo_job, &i, sizeof i);
    }
    int ok = 0, crashed = 0;
    for (int i = 0; i < N; i++) {
        fq_result r;
        take_one(q, &r);
        if (r.status == 0) {
            ok++;
            continue;
        }
        assert_int_equal(r.status, FQ_ECRASHED);
        assert_int_equal(r.signo, SIGSEGV);
        int known = 0;
        for (int k = 0; k < ncrash; k++)
            known |= r.id == crash_id[k];
        assert_true(known);
        crashed++;
    }
    assert_int_equal(ok, N - ncrash);
    assert_int_equal(crashed, ncrash);
    FQT_OK(fq_queue_free(q));
}

/* Time limits run from the STARTED frame: the long job is killed, a job
 * within its limit and the jobs queued behind the killed one succeed. */
static void test_wire_kind_time_limits(void **state)
{
    (void)state;
    register_all();
    fq_queue q = wire_queue(1, NULL);
    fq_job_options jo = {.timeout_ms = 300};
    int long_ms = 20000, short_ms = 20;
    uint64_t a, b, c;
    FQT_OK(fq_submit(q, sleep_job, &short_ms, sizeof short_ms, &jo, &a));
    FQT_OK(fq_submit(q, sleep_job, &long_ms, sizeof long_ms, &jo, &b));
    FQT_OK(fq_submit(q, echo_job, "z", 1, &jo, &c));
    int64_t t0 = fqp_now_ms();
    for (int i = 0; i < 3; i++) {
        fq_result r;
        take_one(q, &r);
        if (r.id == b) {
            assert_int_equal(r.status, FQ_ETIMEDOUT);
            assert_non_null(strstr(r.data, "300 ms"));
        } else {
            assert_true(r.id == a || r.id == c);
            assert_int_equal(r.status, 0);
        }
    }
    /* Killed at its limit, not after its 20 s. */
    assert_true(fqp_now_ms() - t0 < 10000);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.timedout, 1);
    FQT_OK(fq_queue_free(q));
}

/* ---- HELLO ------------------------------------------------------------- */

/* A worker that speaks another protocol version: the queue reports it as a
 * failed init with a message naming both versions, instead of reading its
 * frames as garbage. */
static int done_signal_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int fd;
    assert_int_equal(len, sizeof fd);
    memcpy(&fd, arg, sizeof fd);
    int rc = fq_reply(ctx, "ran", 3);
    return rc == 0 && fqt_write_all(fd, "d", 1) == 0 ? 0 : 1;
}

static void test_version_mismatch(void **state)
{
    (void)state;
    int p[2];
    fqt_pipe(p);
    fq__test_hello_version = 9; /* inherited by the workers forked now */
    fq_options o = {.workers = 1};
    fq_queue q = fqt_queue_opts(&o);
    fq__test_hello_version = 0;
    /* The worker runs the job before the parent reads its HELLO: its
     * result, sent or still in the shared buffer, is not believed. */
    FQT_OK(fq_submit(q, done_signal_job, &p[1], sizeof p[1], NULL, NULL));
    char c;
    assert_int_equal(fqt_read_all(p[0], &c, 1), 0);
    fq_result r;
    take_one(q, &r);
    assert_int_equal(r.status, FQ_EINIT);
    assert_non_null(strstr(r.data, "wire protocol version 9"));
    char want[32];
    snprintf(want, sizeof want, "speaks version %u", FQ__WIRE_VERSION);
    assert_non_null(strstr(r.data, want));
    FQT_EQ(fq_submit(q, echo_job, "x", 1, NULL, NULL), FQ_EINIT);
    FQT_OK(fq_queue_free(q));
    fqt_close(&p[0]);
    fqt_close(&p[1]);
}

/* ---- LOG --------------------------------------------------------------- */

#define MAX_RECS 64
struct logs {
    int n;
    fq_log_record rec[MAX_RECS];
    char text[MAX_RECS][80];
};

static void collect_log(void *arg, const fq_log_record *rec)
{
    struct logs *l = arg;
    if (l->n >= MAX_RECS)
        return;
    l->rec[l->n] = *rec;
    snprintf(l->text[l->n], sizeof l->text[0], "%s", rec->msg);
    assert_int_equal(strlen(rec->msg), rec->len);
    l->n++;
}

static void check_log(int kind)
{
    register_all();
    struct logs l = {0};
    fq_options o = {.log = collect_log, .log_arg = &l};
    fq_queue q = kind_queue(kind, 1, &o);
    uint64_t id = submit(q, log_job, "hello parent", 12);
    fq_result r;
    take_one(q, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 6);
    /* Both records came before the result. */
    assert_int_equal(l.n, 2);
    assert_int_equal(l.rec[0].level, 20);
    assert_true(l.rec[0].job_id == id);
    assert_string_equal(l.text[0], "hello parent");
    assert_int_equal(l.rec[1].level, FQ_LOG_LEVEL_MAX);
    char want[40];
    snprintf(want, sizeof want, "id %llu", (unsigned long long)id);
    assert_string_equal(l.text[1], want);
    pid_t pid;
    if (kind == FQ_WORKER_THREAD) {
        pid = getpid();
    } else {
        assert_int_equal(fq_worker_pids(q, &pid, 1), 1);
    }
    assert_int_equal(l.rec[0].pid, pid);
    assert_int_equal(l.rec[1].pid, pid);
    FQT_OK(fq_queue_free(q));
}

static void test_log_process(void **state)
{
    (void)state;
    check_log(FQ_WORKER_PROCESS);
}

static void test_thread_log(void **state)
{
    (void)state;
    check_log(FQ_WORKER_THREAD);
}

static void test_log_wire(void **state)
{
    (void)state;
    check_log(FQ__WORKER_PROCESS_WIRE);
}

/* Bad input is refused in the job; without a callback records are
 * dropped and the jobs are not affected. */
static void test_log_bad_input_and_no_callback(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    submit(q, log_bad_job, NULL, 0);
    fq_result r;
    take_one(q, &r);
    assert_int_equal(r.status, 0);
    int rc[6];
    assert_int_equal(r.len, sizeof rc);
    memcpy(rc, r.data, sizeof rc);
    assert_int_equal(rc[0], FQ_EINVAL);
    assert_int_equal(rc[1], FQ_EINVAL);
    assert_int_equal(rc[2], FQ_EINVAL);
    assert_int_equal(rc[3], FQ_EINVAL);
    assert_int_equal(rc[4], FQ_ETOOBIG);
    assert_int_equal(rc[5], 0);
    for (int i = 0; i < 20; i++)
        submit(q, log_job, "dropped", 7);
    for (int i = 0; i < 20; i++) {
        take_one(q, &r);
        assert_int_equal(r.status, 0);
    }
    FQT_OK(fq_queue_free(q));
}

/* ---- CANCEL ------------------------------------------------------------ */

/* Sends a CANCEL for job_id. With `mark`, the job is first marked as one
 * fq_job_cancel() stops (as it does before it lets a worker skip a job: the
 * parent refuses a skipped job's RESULT for a job it did not cancel). */
static void send_cancel(fq_queue h, uint64_t job_id, int mark)
{
    fq__queue *q;
    FQT_OK(fq__handle_get(h, &q));
    int rc = FQ_EINVAL;
    for (int i = 0; i < q->nw && rc == FQ_EINVAL; i++) {
        for (fq__job *j = q->w[i]->head; j && mark; j = j->next)
            if (j->id == job_id)
                j->cancel = FQ__CANCEL_STOP;
        rc = fq__worker_send_cancel(q->w[i], job_id);
    }
    fq__handle_release(&q);
    FQT_OK(rc);
}

/* Drives q until the log callback has seen n records. */
static void wait_logs(fq_queue q, struct logs *l, int n)
{
    int64_t end = fqp_now_ms() + 30000;
    while (l->n < n) {
        assert_true(fqp_now_ms() < end);
        int rc = fq_poll(q, 10);
        assert_true(rc >= 0);
    }
}

static void check_cancel(int kind)
{
    register_all();
    struct logs l = {0};
    fq_options o = {.log = collect_log, .log_arg = &l, .inflight = 4};
    fq_queue q = kind_queue(kind, 1, &o);
    /* a runs; b waits behind it in the same worker; c is never cancelled
     * and ends by itself... after b. */
    uint64_t a = submit(q, spin_job, NULL, 0);
    uint64_t b = submit(q, spin_job, NULL, 0);
    uint64_t c = submit(q, echo_job, "c", 1);
    wait_logs(q, &l, 1);
    assert_true(l.rec[0].job_id == a);
    /* b is cancelled before it starts (the worker skips it), then a while
     * it runs (fq_ctx_cancelled() turns true in it). */
    send_cancel(q, b, 1);
    send_cancel(q, a, 0);
    fq_result r;
    take_one(q, &r);
    assert_true(r.id == a);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "cancelled 0 ", 12);
    take_one(q, &r);
    assert_true(r.id == b);
    assert_int_equal(r.status, FQ_ECANCELED);
    assert_string_equal(r.data, "job cancelled before it started");
    take_one(q, &r);
    assert_true(r.id == c);
    assert_int_equal(r.status, 0);
    /* A job no longer in any worker: refused. */
    fq__queue *iq;
    FQT_OK(fq__handle_get(q, &iq));
    for (int i = 0; i < iq->nw; i++)
        FQT_EQ(fq__worker_send_cancel(iq->w[i], a), FQ_EINVAL);
    fq__handle_release(&iq);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.respawns, 0);
    FQT_OK(fq_queue_free(q));
}

static void test_cancel_process(void **state)
{
    (void)state;
    check_cancel(FQ_WORKER_PROCESS);
}

static void test_thread_cancel(void **state)
{
    (void)state;
    check_cancel(FQ_WORKER_THREAD);
}

static void test_cancel_wire(void **state)
{
    (void)state;
    check_cancel(FQ__WORKER_PROCESS_WIRE);
}

/* Spins on fq_ctx_cancelled() for 300 ms; replies how many calls it made,
 * how often the channel was read and how long it spun. */
static int cheap_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    unsigned long r0 = fq__test_cancel_reads, calls = 0;
    int64_t t0 = fqp_now_ms();
    while (fqp_now_ms() - t0 < 300) {
        if (fq_ctx_cancelled(ctx))
            return fq_fail(ctx, 1, "cancelled?");
        calls++;
    }
    unsigned long out[3] = {calls, fq__test_cancel_reads - r0,
                            (unsigned long)(fqp_now_ms() - t0)};
    return fq_reply(ctx, out, sizeof out);
}

/* fq_ctx_cancelled() in a tight loop reads the channel at most every 2 ms,
 * however often it is called: the other calls make no system call. */
static void test_cancel_check_is_cheap(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    submit(q, cheap_job, NULL, 0);
    fq_result r;
    take_one(q, &r);
    assert_int_equal(r.status, 0);
    unsigned long out[3];
    assert_int_equal(r.len, sizeof out);
    memcpy(out, r.data, sizeof out);
    unsigned long calls = out[0], reads = out[1], ms = out[2];
    assert_true(reads >= 1);
    assert_true(reads <= ms / 2 + 2);
    assert_true(calls > reads);
    FQT_OK(fq_queue_free(q));
}

/* ---- LOG on a public channel ------------------------------------------ */

/* Child: a record, then waits for "go"; then a message and a record. Its
 * exit status says whether fq_channel_log() refused bad input. */
static int log_child(fq_channel ch, void *arg)
{
    (void)arg;
    static char big[FQ_LOG_MAX + 2];
    memset(big, 'y', sizeof big - 1);
    if (fq_channel_log(ch, -1, "x") != FQ_EINVAL ||
        fq_channel_log(ch, 256, "x") != FQ_EINVAL ||
        fq_channel_log(ch, 1, NULL) != FQ_EINVAL ||
        fq_channel_log(ch, 1, big) != FQ_ETOOBIG)
        return 3;
    if (fq_channel_log(ch, 7, "one") != 0)
        return 4;
    fq_msg m;
    if (fq_channel_recv(ch, &m, 30000) != 1)
        return 5;
    fq_msg_free(&m);
    if (fq_channel_send(ch, "m", 1) != 0 || fq_channel_log(ch, 8, "two") != 0)
        return 6;
    return 0;
}

static void test_channel_log(void **state)
{
    (void)state;
    struct logs l = {0};
    fq_channel_options o = {.log = collect_log, .log_arg = &l};
    fq_channel ch = {0};
    FQT_OK(fq_channel_start(&ch, log_child, NULL, &o));
    FQT_EQ(fq_channel_log(ch, 1, "from the parent's end"), FQ_EINVAL);
    /* Only a record has come: the exchange reads it but reports nothing,
     * since recv would have to wait for a message. */
    fq_exchange *ex;
    FQT_OK(fq_exchange_new(&ex, NULL));
    FQT_OK(fq_exchange_add(ex, ch, NULL));
    fq_exchange_event ev[2];
    int64_t until = fqp_now_ms() + 300;
    while (fqp_now_ms() < until)
        FQT_EQ(fq_exchange_ready(ex, ev, 2, 50), 0);
    assert_int_equal(l.n, 0); /* delivered by recv, not by the exchange */
    FQT_OK(fq_channel_send(ch, "go", 2));
    int n;
    do
        n = fq_exchange_ready(ex, ev, 2, 30000);
    while (n == 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].ended, 0);
    fq_msg m;
    assert_int_equal(fq_channel_recv(ch, &m, 30000), 1);
    assert_int_equal(m.len, 1);
    fq_msg_free(&m);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.text[0], "one");
    assert_int_equal(l.rec[0].level, 7);
    assert_true(l.rec[0].job_id == 0);
    assert_int_equal(l.rec[0].pid, fq_channel_pid(ch));
    FQT_OK(fq_exchange_remove(ex, ch));
    fq_exchange_free(ex);
    /* The last record comes with the end of the stream. */
    assert_int_equal(fq_channel_recv(ch, &m, 30000), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.text[1], "two");
    int status;
    FQT_OK(fq_channel_wait(ch, &status, 30000));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    FQT_OK(fq_channel_free(ch));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_func_register),
        FQT_TEST(test_func_many),
        FQT_TEST(test_thread_func_register),
        FQT_TEST(test_wire_kind_runs_by_id),
        FQT_TEST(test_unknown_id_in_worker),
        FQT_TEST(test_wire_kind_crash_attribution),
        FQT_TEST(test_wire_kind_time_limits),
        FQT_TEST(test_version_mismatch),
        FQT_TEST(test_log_process),
        FQT_TEST(test_thread_log),
        FQT_TEST(test_log_wire),
        FQT_TEST(test_log_bad_input_and_no_callback),
        FQT_TEST(test_cancel_process),
        FQT_TEST(test_thread_cancel),
        FQT_TEST(test_cancel_wire),
        FQT_TEST(test_cancel_check_is_cheap),
        FQT_TEST(test_channel_log),
    };
    return FQT_RUN(tests);
}
