/* Job handles (fq_job_submit() and friends): outcomes, waiting with time
 * limits, polling, cancelling in every state (queued, sent but not started,
 * running in a process, running in a thread, finished, queue freed,
 * twice), the completion callback (exactly once on every path, and what it
 * may call), how handle jobs mix with fq_take(), fq_stream(), fq_wait(),
 * fq_cancel(), and many handles. */
#include <pthread.h>
#include <stdatomic.h>

#include "fq_test.h"

#include "core/internal.h" /* FQ__WORKER_PROCESS_WIRE: a kind without page */

/* ---- Callbacks --------------------------------------------------------- */

/* Counts the calls for each handle it is given, and remembers the status
 * the outcome had when the callback ran. */
typedef struct cb_rec {
    _Atomic int calls;
    int status;
    uint64_t value;
    pthread_t thread;
} cb_rec;

static void cb_count(fq_job *job, void *arg)
{
    cb_rec *r = arg;
    fq_result res;
    atomic_fetch_add(&r->calls, 1);
    r->thread = pthread_self();
    if (fq_job_result(job, &res) == 0) {
        r->status = res.status;
        if (res.status == 0 && res.len == sizeof(uint64_t))
            memcpy(&r->value, res.data, sizeof r->value);
    } else {
        r->status = 1; /* no outcome in the callback: a bug */
    }
}

static fq_job *submit_square(fq_queue q, uint64_t x, cb_rec *rec)
{
    fq_job_options o;
    memset(&o, 0, sizeof o);
    o.callback = rec ? cb_count : NULL;
    o.callback_arg = rec;
    fq_job *j = NULL;
    FQT_OK(fq_job_submit(q, fqt_job_square, &x, sizeof x, &o, &j));
    assert_non_null(j);
    return j;
}

static fq_job *submit_gate(fq_queue q, const fqt_gate *g, uint64_t v,
                           int ignore_term, cb_rec *rec)
{
    fqt_gate_arg a = fqt_gate_arg_of(g, v);
    a.ignore_term = ignore_term;
    fq_job_options o;
    memset(&o, 0, sizeof o);
    o.callback = rec ? cb_count : NULL;
    o.callback_arg = rec;
    fq_job *j = NULL;
    FQT_OK(fq_job_submit(q, fqt_job_gate, &a, sizeof a, &o, &j));
    return j;
}

static int job_status(const fq_job *j)
{
    fq_result r;
    FQT_OK(fq_job_result(j, &r));
    fqt_assert_msg(&r);
    return r.status;
}

/* ---- Outcomes and waiting ---------------------------------------------- */

static void test_result_and_callback(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    cb_rec rec = {0};
    fq_job *j = submit_square(q, 7, &rec);
    uint64_t id = fq_job_id(j);

    FQT_OK(fq_job_wait(j, 10000));
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(rec.status, 0);
    assert_int_equal(rec.value, fqt_square(7));
    assert_true(pthread_equal(rec.thread, pthread_self()));
    fq_result r;
    FQT_OK(fq_job_result(j, &r));
    assert_int_equal(r.id, id);
    assert_int_equal(fqt_u64(&r), fqt_square(7));
    FQT_EQ(fq_job_done(j), 1);
    FQT_OK(fq_job_wait(j, 0));
    /* A finished job is unaffected by cancel, which says so. */
    FQT_EQ(fq_job_cancel(j), 1);
    FQT_OK(fq_job_result(j, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(7));
    /* Its id was released with the outcome: it may be used again. */
    fq_job_options o;
    memset(&o, 0, sizeof o);
    o.flags = FQ_JOB_ID;
    o.id = id;
    uint64_t x = 3;
    FQT_OK(fq_submit(q, fqt_job_square, &x, sizeof x, &o, NULL));
    FQT_OK(fq_wait(q, 10000));
    assert_int_equal(atomic_load(&rec.calls), 1);
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
}

/* Error outcomes reach the handle as they reach fq_take(). */
static int job_fail(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return fq_fail(ctx, 42, "nope");
}

static int job_crash(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    raise(SIGKILL);
    return 0;
}

static void test_error_outcomes(void **state)
{
    (void)state;
    fq_options opts;
    memset(&opts, 0, sizeof opts);
    opts.workers = 1;
    fq_queue q = fqt_queue_opts(&opts);
    fq_job *a = NULL, *b = NULL, *c = NULL;
    FQT_OK(fq_job_submit(q, job_fail, NULL, 0, NULL, &a));
    FQT_OK(fq_job_submit(q, job_crash, NULL, 0, NULL, &b));
    c = submit_square(q, 5, NULL);
    FQT_OK(fq_job_wait(c, 20000));
    FQT_OK(fq_job_wait(a, 0));
    FQT_OK(fq_job_wait(b, 0));
    fq_result r;
    FQT_OK(fq_job_result(a, &r));
    assert_int_equal(r.status, FQ_EJOB);
    assert_int_equal(r.code, 42);
    assert_string_equal(r.data, "nope");
    FQT_OK(fq_job_result(b, &r));
    assert_int_equal(r.status, FQ_ECRASHED);
    assert_int_equal(r.signo, SIGKILL);
    FQT_OK(fq_job_result(c, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(5));
    fq_job_free(a);
    fq_job_free(b);
    fq_job_free(c);
    FQT_OK(fq_queue_free(q));
}

static void test_wait_timeout_and_poll(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(1, 0);
    cb_rec rec = {0};
    fq_job *j = submit_gate(q, &g, 9, 0, &rec);
    fqt_gate_started(q, &g);

    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_job_wait(j, 100), FQ_ETIMEDOUT);
    int64_t took = fqp_now_ms() - t0;
    assert_true(took >= 95);
    assert_true(took < 5000);
    FQT_EQ(fq_job_wait(j, 0), FQ_ETIMEDOUT);
    FQT_EQ(fq_job_done(j), 0);
    fq_result r;
    FQT_EQ(fq_job_result(j, &r), FQ_EBUSY);
    assert_int_equal(atomic_load(&rec.calls), 0);

    /* fq_job_done() makes progress on its own. */
    fqt_gate_open(&g, 1);
    int64_t end = fqp_now_ms() + 20000;
    int d;
    while ((d = fq_job_done(j)) == 0 && fqp_now_ms() < end)
        ;
    FQT_EQ(d, 1);
    assert_int_equal(atomic_load(&rec.calls), 1);
    FQT_OK(fq_job_result(j, &r));
    assert_int_equal(fqt_u64(&r), 9);
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* fq_wakeup() ends a handle's wait as it ends fq_wait(). */
static void *wake_later(void *arg)
{
    fq_queue *q = arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    fq_wakeup(*q);
    return NULL;
}

static void test_wait_woken(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(1, 0);
    fq_job *j = submit_gate(q, &g, 1, 0, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wake_later, &q), 0);
    FQT_EQ(fq_job_wait(j, 20000), FQ_EINTR);
    pthread_join(t, NULL);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(j, 20000));
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* ---- Mixing with fq_take(), ordering, fq_stream() --------------------- */

static void mix(int ordered)
{
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, ordered);
    /* A handle job that blocks, submitted first: an ordered queue must
     * not wait for it. */
    fq_job *blocked = submit_gate(q, &g, 1, 0, NULL);
    fq_job *h[5];
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        h[i] = submit_square(q, (uint64_t)(100 + i), NULL);
        ids[i] = fqt_submit_square(q, (uint64_t)i);
    }
    fq_result r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fqt_take_wait(q, &r, 20000), 1);
        /* Only fq_submit()'s jobs come out, in order when ordered. */
        int k = -1;
        for (int m = 0; m < 5; m++)
            if (ids[m] == r.id)
                k = m;
        assert_true(k >= 0);
        if (ordered)
            assert_int_equal(k, i);
        assert_int_equal(fqt_u64(&r), fqt_square((uint64_t)k));
    }
    FQT_EQ(fq_take(q, &r), 0);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.submitted, 11);
    assert_int_equal(st.taken, 5);
    /* fq_wait() waits for the handle jobs too. */
    FQT_EQ(fq_wait(q, 50), FQ_ETIMEDOUT);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_wait(q, 20000));
    FQT_EQ(fq_take(q, &r), 0);
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.finished, 11);
    assert_int_equal(st.taken, 5);
    for (int i = 0; i < 5; i++) {
        FQT_EQ(fq_job_done(h[i]), 1);
        FQT_OK(fq_job_result(h[i], &r));
        assert_int_equal(fqt_u64(&r), fqt_square((uint64_t)(100 + i)));
        fq_job_free(h[i]);
    }
    FQT_OK(fq_job_result(blocked, &r));
    assert_int_equal(fqt_u64(&r), 1);
    fq_job_free(blocked);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

static void test_not_taken_unordered(void **state)
{
    (void)state;
    mix(0);
}

static void test_not_taken_ordered(void **state)
{
    (void)state;
    mix(1);
}

typedef struct stream_st {
    int next, n, consumed;
} stream_st;

static int produce(fq_queue q, void *u)
{
    stream_st *s = u;
    if (s->next >= s->n)
        return 0;
    uint64_t x = (uint64_t)s->next++;
    return fq_submit(q, fqt_job_square, &x, sizeof x, NULL, NULL) < 0 ? -1 : 1;
}

static int consume(fq_queue q, const fq_result *r, void *u)
{
    (void)q;
    stream_st *s = u;
    if (r->status != 0)
        return 7;
    s->consumed++;
    return 0;
}

/* A stream neither consumes handle jobs nor waits for them. */
static void test_stream_ignores_handles(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, 0);
    fq_job *blocked = submit_gate(q, &g, 1, 0, NULL);
    fqt_gate_started(q, &g);
    /* Look-ahead 1: every round consumes the one outcome and must go on
     * producing, although a job (the handle's) is still running. */
    stream_st s = {0, 200, 0};
    FQT_OK(fq_stream(q, produce, consume, &s, 1));
    assert_int_equal(s.consumed, 200);
    stream_st s2 = {0, 300, 0};
    FQT_OK(fq_stream(q, produce, consume, &s2, 16));
    assert_int_equal(s2.consumed, 300);
    FQT_EQ(fq_job_done(blocked), 0);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(blocked, 20000));
    fq_job_free(blocked);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* fq_poll() returns when a handle job ends, its callback run. */
static void test_poll_runs_callbacks(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    cb_rec rec = {0};
    fq_job *j = submit_square(q, 3, &rec);
    int64_t end = fqp_now_ms() + 20000;
    while (atomic_load(&rec.calls) == 0 && fqp_now_ms() < end)
        assert_true(fq_poll(q, 10000) >= 0);
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(rec.value, fqt_square(3));
    FQT_EQ(fq_poll(q, 0), 0);
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
}

/* ---- Cancelling -------------------------------------------------------- */

/* Writes a byte to the pipe whose write end is the argument: proves that
 * the job ran. */
static int job_mark(fq_ctx *ctx, const void *arg, size_t len)
{
    int fd;
    (void)ctx;
    (void)len;
    memcpy(&fd, arg, sizeof fd);
    return fqt_write_all(fd, "m", 1) == 0 ? 0 : 5;
}

/* mode 0: the job waits in the parent; 1: it was given to the busy worker
 * but not written yet; 2: it was written to the worker, which has not
 * started it. */
static void cancel_queued(int mode)
{
    int inflight = mode == 0 ? 1 : 8;
    fqt_gate g;
    fqt_gate_new(&g);
    int mark[2];
    fqt_pipe(mark);
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.inflight = inflight;
    fq_queue q = fqt_queue_opts(&o);
    /* No drive between these: the worker cannot look stalled yet, so
     * modes 1 and 2 give it all three (the first write sends only the
     * gate job: the others follow in the next drive). */
    fqt_submit_gate(q, &g, 1, 0);
    cb_rec rec = {0};
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_count;
    jo.callback_arg = &rec;
    fq_job *j = NULL, *after = NULL;
    FQT_OK(fq_job_submit(q, job_mark, &mark[1], sizeof mark[1], &jo, &j));
    after = submit_square(q, 4, NULL);
    if (mode != 1)
        fqt_gate_started(q, &g); /* drives: writes what was given */
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    if (mode == 0)
        assert_int_equal(st.pending, 2); /* still in the parent */
    else
        assert_int_equal(st.pending, 0); /* sent, behind the gate */

    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_job_cancel(j));
    assert_true(fqp_now_ms() - t0 < 1000); /* no worker stopped */
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(rec.status, FQ_ECANCELED);
    assert_int_equal(job_status(j), FQ_ECANCELED);
    FQT_EQ(fq_job_done(j), 1);
    /* Twice: it already has its outcome. */
    FQT_EQ(fq_job_cancel(j), 1);
    assert_int_equal(job_status(j), FQ_ECANCELED);

    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(after, 20000));
    fq_result r;
    FQT_OK(fq_job_result(after, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(4));
    assert_int_equal(fqt_take_wait(q, &r, 20000), 1);
    assert_int_equal(fqt_u64(&r), 1);
    FQT_OK(fq_wait(q, 20000));
    FQT_OK(fq_finish(q));
    /* The cancelled job never ran. */
    char c;
    struct pollfd p = {mark[0], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 0);
    (void)c;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 0);
    assert_int_equal(atomic_load(&rec.calls), 1);
    fq_job_free(j);
    fq_job_free(after);
    FQT_OK(fq_queue_free(q));
    fqt_close(&mark[0]);
    fqt_close(&mark[1]);
    fqt_gate_free(&g);
}

static void test_cancel_pending(void **state)
{
    (void)state;
    cancel_queued(0);
}

static void test_cancel_sent_unwritten(void **state)
{
    (void)state;
    cancel_queued(1);
}

static void test_cancel_sent_not_started(void **state)
{
    (void)state;
    cancel_queued(2);
}

static void cancel_running(int ignore_term, int grace_ms)
{
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.inflight = 8;
    o.grace_ms = grace_ms;
    fq_queue q = fqt_queue_opts(&o);
    cb_rec rec = {0};
    fq_job *j = submit_gate(q, &g, 1, ignore_term, &rec);
    /* Jobs behind it, sent to the same worker, must not suffer. */
    uint64_t behind = fqt_submit_square(q, 6);
    fq_job *hbehind = submit_square(q, 8, NULL);
    pid_t pid = fqt_gate_started(q, &g);
    unsigned long long start = fqt_proc_start(pid);

    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_job_cancel(j));
    int64_t took = fqp_now_ms() - t0;
    if (ignore_term)
        assert_true(took >= grace_ms - 5);
    assert_true(took < 10000);
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(rec.status, FQ_ECANCELED);
    assert_int_equal(job_status(j), FQ_ECANCELED);
    FQT_EQ(fq_job_cancel(j), 1);
    /* Its worker is gone and replaced. */
    assert_true(fqt_wait_gone(pid, start, 5000));
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 20000), 1);
    assert_int_equal(r.id, behind);
    assert_int_equal(fqt_u64(&r), fqt_square(6));
    FQT_OK(fq_job_wait(hbehind, 20000));
    FQT_OK(fq_job_result(hbehind, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(8));
    pid_t now;
    assert_int_equal(fq_worker_pids(q, &now, 1), 1);
    assert_int_not_equal(now, pid);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 1);
    FQT_OK(fq_queue_free(q));
    assert_int_equal(atomic_load(&rec.calls), 1);
    fq_job_free(j);
    fq_job_free(hbehind);
    fqt_gate_free(&g);
    fqt_assert_no_children();
}

static void test_cancel_running(void **state)
{
    (void)state;
    cancel_running(0, 0);
}

static void test_cancel_running_ignores_term(void **state)
{
    (void)state;
    cancel_running(1, 200);
}

/* A thread job is cancelled cooperatively: it sees fq_ctx_cancelled(). */
static _Atomic int coop_started, coop_saw_cancel;

static int job_coop(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    atomic_fetch_add(&coop_started, 1);
    int64_t end = fqp_now_ms() + 30000;
    while (!fq_ctx_cancelled(ctx) && fqp_now_ms() < end) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (fq_ctx_cancelled(ctx))
        atomic_fetch_add(&coop_saw_cancel, 1);
    uint64_t v = 1;
    return fq_reply(ctx, &v, sizeof v) == 0 ? 0 : 100;
}

static void test_cancel_running_thread(void **state)
{
    (void)state;
    atomic_store(&coop_started, 0);
    atomic_store(&coop_saw_cancel, 0);
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.kind = FQ_WORKER_THREAD;
    fq_queue q = fqt_queue_opts(&o);
    cb_rec rec = {0};
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_count;
    jo.callback_arg = &rec;
    fq_job *j = NULL;
    FQT_OK(fq_job_submit(q, job_coop, NULL, 0, &jo, &j));
    fq_job *behind = submit_square(q, 2, NULL);
    int64_t end = fqp_now_ms() + 20000;
    while (atomic_load(&coop_started) == 0 && fqp_now_ms() < end)
        (void)fq_job_done(j);
    assert_int_equal(atomic_load(&coop_started), 1);
    FQT_OK(fq_job_cancel(j));
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(job_status(j), FQ_ECANCELED);
    FQT_EQ(fq_job_cancel(j), 1);
    /* The job is told, and returns on its own; its reply is dropped. */
    end = fqp_now_ms() + 20000;
    while (atomic_load(&coop_saw_cancel) == 0 && fqp_now_ms() < end) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&coop_saw_cancel), 1);
    FQT_OK(fq_job_wait(behind, 20000));
    fq_result r;
    FQT_OK(fq_job_result(behind, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(2));
    assert_int_equal(job_status(j), FQ_ECANCELED);
    fq_job_free(j);
    fq_job_free(behind);
    FQT_OK(fq_queue_free(q));
    assert_int_equal(atomic_load(&rec.calls), 1);
}

/* A process job that ignores SIGTERM but polls fq_ctx_cancelled(): the
 * CANCEL frame of the graceful step lets it return long before the grace
 * (5 s) is over, and it ends FQ_ECANCELED all the same (its reply is
 * dropped). */
static int job_coop_process(fq_ctx *ctx, const void *arg, size_t len)
{
    int fd;
    (void)len;
    memcpy(&fd, arg, sizeof fd);
    signal(SIGTERM, SIG_IGN);
    pid_t p = getpid();
    if (fqt_write_all(fd, &p, sizeof p) != 0)
        return 3;
    int64_t end = fqp_now_ms() + 30000;
    while (!fq_ctx_cancelled(ctx) && fqp_now_ms() < end) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    uint64_t v = fq_ctx_cancelled(ctx) ? 1 : 2;
    return fq_reply(ctx, &v, sizeof v) == 0 ? 0 : 100;
}

static void test_cancel_running_cooperative_process(void **state)
{
    (void)state;
    int started[2];
    fqt_pipe(started);
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.grace_ms = 5000;
    fq_queue q = fqt_queue_opts(&o);
    cb_rec rec = {0};
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_count;
    jo.callback_arg = &rec;
    fq_job *j = NULL;
    FQT_OK(fq_job_submit(q, job_coop_process, &started[1], sizeof started[1],
                         &jo, &j));
    pid_t pid = 0;
    assert_int_equal(fqt_read_driving(q, started[0], &pid, sizeof pid, 20000),
                     0);
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_job_cancel(j));
    assert_true(fqp_now_ms() - t0 < 4000);
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(job_status(j), FQ_ECANCELED);
    /* The worker, whose SIGTERM the job ignored, is replaced at once: the
     * next job does not wait for the grace. */
    fq_job *next = submit_square(q, 3, NULL);
    t0 = fqp_now_ms();
    FQT_OK(fq_job_wait(next, 20000));
    assert_true(fqp_now_ms() - t0 < 4000);
    fq_result r;
    FQT_OK(fq_job_result(next, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(3));
    fq_job_free(next);
    fq_job_free(j);
    FQT_OK(fq_queue_free(q));
    fqt_close(&started[0]);
    fqt_close(&started[1]);
    fqt_assert_no_children();
}

/* A kind without a shared page (the wire-only process kind of the tests):
 * no claim to revoke a written job with, so a job given to the worker is
 * cancelled by stopping the worker; the job it ran meanwhile is not
 * blamed, it runs again. */
static void test_cancel_page_less_kind(void **state)
{
    (void)state;
    FQT_OK(fq_func_register("job.gate", fqt_job_gate, NULL));
    FQT_OK(fq_func_register("job.square", fqt_job_square, NULL));
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.inflight = 8;
    o.kind = FQ__WORKER_PROCESS_WIRE;
    fq_queue q = fqt_queue_opts(&o);
    fq_job *gate = submit_gate(q, &g, 5, 0, NULL);
    cb_rec rec = {0};
    fq_job *queued = submit_square(q, 4, &rec);
    fqt_gate_started(q, &g);
    FQT_OK(fq_job_cancel(queued));
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(job_status(queued), FQ_ECANCELED);
    /* The gate job was running there: it is sent again (a second start),
     * and its gate opened for that run. */
    fqt_gate_started(q, &g);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(gate, 20000));
    fq_result r;
    FQT_OK(fq_job_result(gate, &r));
    assert_int_equal(fqt_u64(&r), 5);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 1);
    fq_job_free(gate);
    fq_job_free(queued);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* Freeing the queue ends unfinished handle jobs FQ_ECLOSED; the handles
 * stay usable. */
static void test_queue_freed(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.inflight = 1;
    fq_queue q = fqt_queue_opts(&o);
    cb_rec r1 = {0}, r2 = {0}, r3 = {0};
    fq_job *done = submit_square(q, 2, &r3);
    FQT_OK(fq_job_wait(done, 20000));
    fq_job *running = submit_gate(q, &g, 1, 0, &r1);
    fq_job *queued = submit_square(q, 5, &r2);
    fqt_gate_started(q, &g);
    FQT_OK(fq_queue_free(q));
    assert_int_equal(atomic_load(&r1.calls), 1);
    assert_int_equal(atomic_load(&r2.calls), 1);
    assert_int_equal(atomic_load(&r3.calls), 1);
    assert_int_equal(r1.status, FQ_ECLOSED);
    assert_int_equal(r2.status, FQ_ECLOSED);
    assert_int_equal(job_status(running), FQ_ECLOSED);
    assert_int_equal(job_status(queued), FQ_ECLOSED);
    FQT_EQ(fq_job_done(running), 1);
    FQT_OK(fq_job_wait(queued, -1));
    FQT_EQ(fq_job_cancel(running), 1);
    FQT_EQ(fq_job_cancel(queued), 1);
    FQT_EQ(fq_job_cancel(done), 1);
    fq_result r;
    FQT_OK(fq_job_result(done, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(2));
    fq_job_free(done);
    fq_job_free(running);
    fq_job_free(queued);
    fqt_gate_free(&g);
    fqt_assert_no_children();
}

/* fq_cancel() ends handle jobs FQ_ECANCELED, each callback once. */
static void test_queue_cancel(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.inflight = 1;
    fq_queue q = fqt_queue_opts(&o);
    cb_rec r1 = {0}, r2 = {0};
    fq_job *running = submit_gate(q, &g, 1, 0, &r1);
    fq_job *queued = submit_square(q, 5, &r2);
    fqt_gate_started(q, &g);
    FQT_OK(fq_cancel(q));
    assert_int_equal(atomic_load(&r1.calls), 1);
    assert_int_equal(atomic_load(&r2.calls), 1);
    assert_int_equal(job_status(running), FQ_ECANCELED);
    assert_int_equal(job_status(queued), FQ_ECANCELED);
    FQT_EQ(fq_job_cancel(running), 1);
    fq_job *late = NULL;
    FQT_EQ(fq_job_submit(q, fqt_job_square, "12345678", 8, NULL, &late),
           FQ_EFINISHED);
    assert_null(late);
    FQT_OK(fq_queue_free(q));
    assert_int_equal(atomic_load(&r1.calls), 1);
    assert_int_equal(atomic_load(&r2.calls), 1);
    fq_job_free(running);
    fq_job_free(queued);
    fqt_gate_free(&g);
}

/* ---- Freeing handles early, callbacks' context ------------------------- */

static void test_free_before_outcome(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    cb_rec rec[20];
    memset(rec, 0, sizeof rec);
    for (int i = 0; i < 20; i++) {
        fq_job *j = submit_square(q, (uint64_t)i, i % 2 ? &rec[i] : NULL);
        fq_job_free(j); /* runs on; the outcome is discarded */
    }
    FQT_OK(fq_wait(q, 20000));
    for (int i = 1; i < 20; i += 2) {
        assert_int_equal(atomic_load(&rec[i].calls), 1);
        assert_int_equal(rec[i].status, 0);
        assert_int_equal(rec[i].value, fqt_square((uint64_t)i));
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.finished, 20);
    FQT_OK(fq_queue_free(q));
}

typedef struct reentry {
    fq_queue q;
    fq_job *other;
    int wait_rc, poll_rc, take_rc, done_rc, submit_rc, qwait_rc;
    fq_job *chained;
    _Atomic int calls;
} reentry;

static void cb_reenter(fq_job *job, void *arg)
{
    reentry *e = arg;
    fq_result r;
    atomic_fetch_add(&e->calls, 1);
    e->wait_rc = fq_job_wait(e->other, 10);
    e->poll_rc = fq_poll(e->q, 0);
    e->take_rc = fq_take(e->q, &r);
    e->qwait_rc = fq_wait(e->q, 0);
    e->done_rc = fq_job_done(e->other);
    uint64_t x = 11;
    e->submit_rc =
        fq_job_submit(e->q, fqt_job_square, &x, sizeof x, NULL, &e->chained);
    fq_job_free(job); /* the caller gave its handle to the callback */
}

static void test_callback_context(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, 0);
    reentry e;
    memset(&e, 0, sizeof e);
    e.q = q;
    e.other = submit_gate(q, &g, 1, 0, NULL);
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_reenter;
    jo.callback_arg = &e;
    fq_job *j = NULL;
    uint64_t x = 1;
    FQT_OK(fq_job_submit(q, fqt_job_square, &x, sizeof x, &jo, &j));
    int64_t end = fqp_now_ms() + 20000;
    while (atomic_load(&e.calls) == 0 && fqp_now_ms() < end)
        assert_true(fq_poll(q, 1000) >= 0);
    assert_int_equal(atomic_load(&e.calls), 1);
    assert_int_equal(e.wait_rc, FQ_EBUSY);
    assert_int_equal(e.poll_rc, FQ_EBUSY);
    assert_int_equal(e.take_rc, FQ_EBUSY);
    assert_int_equal(e.qwait_rc, FQ_EBUSY);
    assert_int_equal(e.done_rc, 0); /* looks only */
    assert_int_equal(e.submit_rc, 0);
    assert_non_null(e.chained);
    FQT_OK(fq_job_wait(e.chained, 20000));
    fq_result r;
    FQT_OK(fq_job_result(e.chained, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(11));
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(e.other, 20000));
    fq_job_free(e.other);
    fq_job_free(e.chained);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* A callback that cancels another job: first result wins. The other one
 * never ends on its own (its gate stays closed), so whether it is still
 * queued or already running when the callback runs, it is cancelled. */
typedef struct firstwin {
    fq_job *loser;
    int cancel_rc;
    _Atomic int calls;
} firstwin;

static void cb_cancel_other(fq_job *job, void *arg)
{
    (void)job;
    firstwin *f = arg;
    atomic_fetch_add(&f->calls, 1);
    f->cancel_rc = fq_job_cancel(f->loser);
}

static void test_cancel_from_callback(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, 0);
    firstwin f;
    memset(&f, 0, sizeof f);
    cb_rec lrec = {0};
    f.loser = submit_gate(q, &g, 3, 0, &lrec);
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_cancel_other;
    jo.callback_arg = &f;
    fq_job *winner = NULL;
    uint64_t x = 2;
    FQT_OK(fq_job_submit(q, fqt_job_square, &x, sizeof x, &jo, &winner));
    FQT_OK(fq_job_wait(winner, 20000));
    assert_int_equal(atomic_load(&f.calls), 1);
    assert_int_equal(f.cancel_rc, 0);
    assert_int_equal(atomic_load(&lrec.calls), 1);
    assert_int_equal(job_status(f.loser), FQ_ECANCELED);
    fq_job_free(winner);
    fq_job_free(f.loser);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* ---- Many handles ------------------------------------------------------ */

static _Atomic long many_calls;
static _Atomic uint64_t many_sum;

static void cb_many(fq_job *job, void *arg)
{
    (void)arg;
    fq_result r;
    atomic_fetch_add(&many_calls, 1);
    if (fq_job_result(job, &r) == 0 && r.status == 0 && r.len == 8) {
        uint64_t v;
        memcpy(&v, r.data, 8);
        atomic_fetch_add(&many_sum, v);
    }
}

static void test_many_handles(void **state)
{
    (void)state;
    enum { N = 10000 };
    atomic_store(&many_calls, 0);
    atomic_store(&many_sum, 0);
    fq_queue q = fqt_queue(2, 0);
    fq_job **h = calloc(N, sizeof *h);
    assert_non_null(h);
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_many;
    uint64_t want = 0;
    for (int i = 0; i < N; i++) {
        uint64_t x = (uint64_t)i;
        want += fqt_square(x);
        FQT_OK(fq_job_submit(q, fqt_job_square, &x, sizeof x, &jo, &h[i]));
        if (i % 3 == 0) { /* a third are let go at once */
            fq_job_free(h[i]);
            h[i] = NULL;
        }
    }
    FQT_OK(fq_wait(q, 60000));
    assert_int_equal(atomic_load(&many_calls), N);
    assert_int_equal(atomic_load(&many_sum), want);
    for (int i = 0; i < N; i++) {
        if (!h[i])
            continue;
        fq_result r;
        FQT_OK(fq_job_result(h[i], &r));
        assert_int_equal(fqt_u64(&r), fqt_square((uint64_t)i));
        fq_job_free(h[i]);
    }
    /* And as many cancelled while queued. */
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q1;
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.inflight = 1;
    q1 = fqt_queue_opts(&o);
    fq_job *gate = submit_gate(q1, &g, 1, 0, NULL);
    fqt_gate_started(q1, &g);
    atomic_store(&many_calls, 0);
    for (int i = 0; i < N; i++) {
        uint64_t x = (uint64_t)i;
        FQT_OK(fq_job_submit(q1, fqt_job_square, &x, sizeof x, &jo, &h[i]));
    }
    int64_t t0 = fqp_now_ms();
    for (int i = 0; i < N; i++)
        FQT_OK(fq_job_cancel(h[i]));
    assert_true(fqp_now_ms() - t0 < 10000);
    assert_int_equal(atomic_load(&many_calls), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(job_status(h[i]), FQ_ECANCELED);
        fq_job_free(h[i]);
    }
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(gate, 20000));
    fq_job_free(gate);
    FQT_OK(fq_queue_free(q1));
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
    free(h);
}

/* ---- Threads: a queue freed from another thread ------------------------ */

typedef struct waiter {
    fq_job *job;
    int rc;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    w->rc = fq_job_wait(w->job, 30000);
    return NULL;
}

static void test_freed_while_waiting(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(1, 0);
    cb_rec rec = {0};
    fq_job *j = submit_gate(q, &g, 1, 0, &rec);
    fqt_gate_started(q, &g);
    /* The queue is handed to another thread, which waits on the job. */
    waiter w = {j, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
    /* fq_queue_free() is allowed from any thread meanwhile. Either order
     * gives the same outcome (a queue freed before the wait began ends the
     * job at once); the nap makes the cross-thread path the likely one. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    FQT_OK(fq_queue_free(q));
    pthread_join(t, NULL);
    /* 0, or FQ_ECLOSED when the destruction fell to this thread (the
     * last reference): by the join it is done either way. */
    if (w.rc != 0)
        assert_int_equal(w.rc, FQ_ECLOSED);
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(rec.status, FQ_ECLOSED);
    assert_int_equal(job_status(j), FQ_ECLOSED);
    fq_job_free(j);
    fqt_gate_free(&g);
    fqt_assert_no_children();
}

/* ---- Bad input --------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    fq_job *j = (fq_job *)0x1;
    uint64_t x = 1;
    FQT_EQ(fq_job_submit(q, NULL, &x, sizeof x, NULL, &j), FQ_EINVAL);
    assert_null(j);
    FQT_EQ(fq_job_submit(q, fqt_job_square, &x, sizeof x, NULL, NULL),
           FQ_EINVAL);
    FQT_EQ(fq_job_submit(q, fqt_job_square, NULL, 8, NULL, &j), FQ_EINVAL);
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = cb_count;
    FQT_EQ(fq_submit(q, fqt_job_square, &x, sizeof x, &jo, NULL), FQ_EINVAL);
    jo.callback = NULL;
    jo.flags = 0x80;
    FQT_EQ(fq_job_submit(q, fqt_job_square, &x, sizeof x, &jo, &j), FQ_EINVAL);
    /* A duplicate id of a live handle job. */
    jo.flags = FQ_JOB_ID;
    jo.id = 77;
    fq_job *a = NULL;
    FQT_OK(fq_job_submit(q, fqt_job_square, &x, sizeof x, &jo, &a));
    assert_int_equal(fq_job_id(a), 77);
    FQT_EQ(fq_submit(q, fqt_job_square, &x, sizeof x, &jo, NULL), FQ_EEXIST);
    FQT_EQ(fq_job_wait(NULL, 0), FQ_EINVAL);
    FQT_EQ(fq_job_wait(a, -2), FQ_EINVAL);
    FQT_EQ(fq_job_done(NULL), FQ_EINVAL);
    FQT_EQ(fq_job_cancel(NULL), FQ_EINVAL);
    fq_result r;
    FQT_EQ(fq_job_result(NULL, &r), FQ_EINVAL);
    FQT_EQ(fq_job_result(a, NULL), FQ_EINVAL);
    assert_int_equal(fq_job_id(NULL), 0);
    fq_job_free(NULL);
    FQT_OK(fq_job_wait(a, 20000));
    fq_job_free(a);
    fq_queue bad = {0};
    FQT_EQ(fq_job_submit(bad, fqt_job_square, &x, sizeof x, NULL, &j),
           FQ_EINVAL);
    FQT_OK(fq_queue_free(q));
    FQT_EQ(fq_job_submit(q, fqt_job_square, &x, sizeof x, NULL, &j),
           FQ_ECLOSED);
    assert_null(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_result_and_callback),
        FQT_TEST(test_error_outcomes),
        FQT_TEST(test_wait_timeout_and_poll),
        FQT_TEST(test_wait_woken),
        FQT_TEST(test_not_taken_unordered),
        FQT_TEST(test_not_taken_ordered),
        FQT_TEST(test_stream_ignores_handles),
        FQT_TEST(test_poll_runs_callbacks),
        FQT_TEST(test_cancel_pending),
        FQT_TEST(test_cancel_sent_unwritten),
        FQT_TEST(test_cancel_sent_not_started),
        FQT_TEST(test_cancel_running),
        FQT_TEST(test_cancel_running_ignores_term),
        FQT_TEST(test_cancel_running_thread),
        FQT_TEST(test_cancel_running_cooperative_process),
        FQT_TEST(test_cancel_page_less_kind),
        FQT_TEST(test_queue_freed),
        FQT_TEST(test_queue_cancel),
        FQT_TEST(test_free_before_outcome),
        FQT_TEST(test_callback_context),
        FQT_TEST(test_cancel_from_callback),
        FQT_TEST(test_many_handles),
        FQT_TEST(test_freed_while_waiting),
        FQT_TEST(test_bad_input),
    };
    return FQT_RUN(tests);
}
