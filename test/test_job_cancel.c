/* Cancelling job handles in every state: queued, sent but not started (to
 * a process or a thread), running in a process or a thread (cooperatively
 * or not), on a kind without a page, with the queue freed or cancelled. */
#include "job_test.h"

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
 * started it. kind: of the worker (0: a process). */
static void cancel_queued_kind(int mode, int kind)
{
    int inflight = mode == 0 ? 1 : 8;
    fqt_gate g;
    fqt_gate_new(&g);
    int mark[2];
    fqt_pipe(mark);
    fq_queue q = one_worker(kind, inflight, 0);
    /* No drive between these: the worker cannot look stalled yet, so
     * modes 1 and 2 give it all three (the first write sends only the
     * gate job: the others follow in the next drive). */
    fqt_submit_gate(q, &g, 1, 0);
    cb_rec rec = {0};
    fq_job *j = submit_with(q, job_mark, &mark[1], sizeof mark[1], &rec);
    fq_job *after = submit_square(q, 4, NULL);
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
    /* no worker stopped (FQT_TIME_SCALE: the valgrind copy is slower) */
    assert_true(fqp_now_ms() - t0 < 1000 * fqp_time_scale());
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

static void cancel_queued(int mode)
{
    cancel_queued_kind(mode, 0);
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
    fq_queue q = one_worker(0, 8, grace_ms);
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

/*
 * A running job cancelled while the job before it on the same worker has
 * finished, its result not read yet: the cancel looks at the running job's
 * claim twice (to take it back, then to take back what is behind it when
 * the worker is stopped). It runs once, never again on the replacement.
 */
static void test_cancel_running_behind_unread(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = one_worker(0, 8, 0);
    fq_job *a = submit_gate(q, &g, 3, 0, NULL);
    fq_job *b = submit_gate(q, &g, 1, 0, NULL);
    fqt_gate_started(q, &g); /* a runs */
    (void)fq_poll(q, 0);     /* b is written behind it */
    /* From here nothing drives the queue until the cancel: a ends, b
     * starts, and a's result waits in the channel. */
    fqt_gate_open(&g, 1);
    struct pollfd p = {g.started[0], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 20000), 1);
    pid_t pid;
    assert_int_equal(fqt_read_all(g.started[0], &pid, sizeof pid), 0);
    FQT_OK(fq_job_cancel(b));
    assert_int_equal(job_status(b), FQ_ECANCELED);
    FQT_OK(fq_job_wait(a, 20000));
    fq_result r;
    FQT_OK(fq_job_result(a, &r));
    assert_int_equal(fqt_u64(&r), 3);
    /* A job behind them runs on the replacement, after anything it was
     * given before. */
    fq_job *c = submit_square(q, 5, NULL);
    FQT_OK(fq_job_wait(c, 20000));
    FQT_OK(fq_job_result(c, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(5));
    FQT_OK(fq_finish(q));
    /* b started once. */
    assert_int_equal(poll(&p, 1, 0), 0);
    fq_job_free(a);
    fq_job_free(b);
    fq_job_free(c);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
    fqt_assert_no_children();
}

/* The thread kind shares its status page (the parent's memory): a job
 * written to a thread worker is revoked by its claim word, as for a
 * process; the thread is not abandoned. */
static void test_cancel_queued_thread(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++)
        cancel_queued_kind(mode, FQ_WORKER_THREAD);
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

/* A job that blocks every signal it can: the worker cannot end itself
 * (its clean-up signal waits, blocked), so after the grace the parent
 * kills it, without help, within a bounded time. */
static void test_cancel_running_blocks_signals(void **state)
{
    (void)state;
    cancel_running(2, 100);
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
    fq_queue q = one_worker(FQ_WORKER_THREAD, 0, 0);
    cb_rec rec = {0};
    fq_job *j = submit_with(q, job_coop, NULL, 0, &rec);
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
    FQT_WAIT_UNTIL(atomic_load(&coop_saw_cancel) != 0, 20000);
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
    fq_queue q = one_worker(0, 0, 5000);
    cb_rec rec = {0};
    fq_job *j =
        submit_with(q, job_coop_process, &started[1], sizeof started[1], &rec);
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
 * no claim to revoke a written job with, so a CANCEL frame asks the worker
 * to skip it: the job ends FQ_ECANCELED at once, and the worker, not
 * stopped, runs the job before it once and the jobs behind it
 * (test_job_cancel_sent has the remote kind and the races). */
static void test_cancel_page_less_kind(void **state)
{
    (void)state;
    FQT_OK(fq_func_register("job.gate", fqt_job_gate, NULL));
    FQT_OK(fq_func_register("job.square", fqt_job_square, NULL));
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = one_worker(FQ__WORKER_PROCESS_WIRE, 8, 0);
    fq_job *gate = submit_gate(q, &g, 5, 0, NULL);
    cb_rec rec = {0};
    fq_job *queued = submit_square(q, 4, &rec);
    fq_job *behind = submit_square(q, 5, NULL);
    pid_t pid = fqt_gate_started(q, &g);
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_job_cancel(queued));
    assert_true(fqp_now_ms() - t0 < 1000 * fqp_time_scale());
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(job_status(queued), FQ_ECANCELED);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(behind, 20000));
    fq_result r;
    FQT_OK(fq_job_result(behind, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(5));
    FQT_OK(fq_job_wait(gate, 20000));
    FQT_OK(fq_job_result(gate, &r));
    assert_int_equal(fqt_u64(&r), 5);
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(job_status(queued), FQ_ECANCELED);
    pid_t now = 0;
    assert_int_equal(fq_worker_pids(q, &now, 1), 1);
    assert_int_equal(now, pid);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 0);
    fq_job_free(gate);
    fq_job_free(queued);
    fq_job_free(behind);
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
    fq_queue q = one_worker(0, 1, 0);
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
    fq_queue q = one_worker(0, 1, 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_cancel_pending),
        FQT_TEST(test_cancel_sent_unwritten),
        FQT_TEST(test_cancel_sent_not_started),
        FQT_TEST(test_cancel_queued_thread),
        FQT_TEST(test_cancel_running),
        FQT_TEST(test_cancel_running_behind_unread),
        FQT_TEST(test_cancel_running_ignores_term),
        FQT_TEST(test_cancel_running_blocks_signals),
        FQT_TEST(test_cancel_running_thread),
        FQT_TEST(test_cancel_running_cooperative_process),
        FQT_TEST(test_cancel_page_less_kind),
        FQT_TEST(test_queue_freed),
        FQT_TEST(test_queue_cancel),
    };
    return FQT_RUN(tests);
}
