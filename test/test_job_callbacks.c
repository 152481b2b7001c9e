/* Job handles freed early, what a completion callback may call (exactly
 * once on every path), many handles, and a queue freed while another
 * thread waits on its handles. */
#include "job_test.h"

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
    q1 = one_worker(0, 1, 0);
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
    _Atomic pid_t tid; /* the thread's, once it runs */
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->tid, fqt_tid());
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
    waiter w = {j, 99, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
    /* fq_queue_free() is allowed from any thread meanwhile. Either order
     * gives the same outcome (a queue freed before the wait began ends the
     * job at once); waiting until that thread blocks (in the wait, as a
     * rule) makes the cross-thread path the one taken. */
    FQT_WAIT_UNTIL(atomic_load(&w.tid) != 0, 20000);
    assert_true(atomic_load(&w.tid) != 0);
    fqt_await_sleeping(atomic_load(&w.tid));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_free_before_outcome),  FQT_TEST(test_callback_context),
        FQT_TEST(test_cancel_from_callback), FQT_TEST(test_many_handles),
        FQT_TEST(test_freed_while_waiting),
    };
    return FQT_RUN(tests);
}
