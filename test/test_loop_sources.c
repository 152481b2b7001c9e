/*
 * Kinds of sources of the loop object beyond plain queues and channels:
 * fq_wakeup() on a queue in a loop, exchanges, job handles, and the seam
 * through which job handles ride on their queue (fq__loop_queue_hold()).
 */
#include "loop_test.h"

#include "loop/source.h" /* the seam for sources riding on a queue */
#include "queue/queue.h"

static void test_queue_wakeup_reaches_loop(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    FQT_OK(fq_loop_add_queue(l, q, NULL));
    FQT_OK(fq_wakeup(q));
    fq_loop_event e = expect_one(l, FQ_LOOP_QUEUE, q.id);
    assert_int_equal(e.flags, FQ_LOOP_WOKEN);
    assert_int_equal(e.count, 0);
    expect_none(l);
    FQT_OK(fq_loop_free(l));
    FQT_OK(fq_queue_free(q));
}

/* ---- the seam for job handles ---------------------------------------------
 */

static uint64_t finished(fq_queue q)
{
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    return st.finished;
}

/* A source riding on a queue (as a job handle will) holds it: the loop
 * drives the queue (its outcome is read in) without reporting it, unless
 * the caller added the queue too; the last unhold takes it out; a held
 * queue that is freed leaves without an event. */
static void test_queue_held_by_riders(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    FQT_OK(fq__loop_queue_hold(l, q));
    FQT_OK(fq__loop_queue_hold(l, q)); /* two riders, one source */
    fqt_submit_square(q, 4);
    fq_loop_event ev[4];
    int64_t t0 = fqp_now_ms();
    while (finished(q) == 0) {
        FQT_EQ(fq_loop_wait(l, ev, 4, 50), 0); /* driven, not reported */
        assert_true(fqp_now_ms() - t0 < LONG_MS);
    }
    int tag;
    FQT_OK(fq_loop_add_queue(l, q, &tag)); /* now the caller's too */
    FQT_EQ(fq_loop_add_queue(l, q, &tag), FQ_EINVAL);
    fq_loop_event e = expect_one(l, FQ_LOOP_QUEUE, q.id);
    assert_ptr_equal(e.udata, &tag);
    FQT_OK(fq_loop_remove_queue(l, q)); /* held still: hidden again */
    FQT_EQ(fq_loop_remove_queue(l, q), FQ_EINVAL);
    expect_none(l);
    fq__loop_queue_unhold(l, q);
    FQT_EQ(fq_loop_remove_queue(l, q), FQ_EINVAL);
    fq__loop_queue_unhold(l, q); /* the last: the queue leaves */
    fq__loop_queue_unhold(l, q); /* no-op */
    /* Gone from the loop: added again, it is a fresh, visible source. */
    FQT_OK(fq_loop_add_queue(l, q, NULL));
    FQT_OK(fq_loop_remove_queue(l, q));
    fq_result r;
    FQT_EQ(fq_take(q, &r), 1);
    assert_int_equal(fqt_u64(&r), fqt_square(4));

    /* Held, then freed: it leaves without an event, and is destroyed. */
    pid_t pid;
    FQT_EQ(fq_worker_pids(q, &pid, 1), 1);
    FQT_OK(fq__loop_queue_hold(l, q));
    FQT_OK(fq_queue_free(q));
    FQT_EQ(fq_loop_wait(l, ev, 4, LONG_MS), 0);
    assert_true(fqt_wait_gone(pid, 0, 100));
    fq__loop_queue_unhold(l, q); /* left already: no-op */
    FQT_EQ(fq__loop_queue_hold(l, q), FQ_ECLOSED);
    FQT_OK(fq_loop_free(l));
    fqt_assert_no_children();
}

/* ---- exchanges ---------------------------------------------------------- */

static int send_one_main(fq_channel ch, void *arg)
{
    int v = (int)(intptr_t)arg;
    return fq_channel_send(ch, &v, sizeof v) == 0 ? 0 : 1;
}

static int close_then_wait_main(fq_channel ch, void *arg)
{
    char c;
    fq_channel_close(ch);
    return fqt_read_all(*(int *)arg, &c, 1) == 0 ? 0 : 1;
}

/* An exchange in a loop: reported while fq_exchange_ready(..., 0) has
 * something; the loop starts its waiting work (limit 1) as children end.
 * fq_exchange_free() takes it out of the loop. */
static void test_exchange_in_loop(void **state)
{
    (void)state;
    enum { WORK = 4 };
    fq_exchange *ex;
    fq_exchange_options o;
    memset(&o, 0, sizeof o);
    o.limit = 1;
    FQT_OK(fq_exchange_new(&ex, &o));
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    int tag;
    FQT_OK(fq_loop_add_exchange(l, ex, &tag));
    FQT_EQ(fq_loop_add_exchange(l, ex, &tag), FQ_EINVAL);
    expect_none(l); /* nothing watched yet */
    for (int i = 0; i < WORK; i++)
        FQT_EQ(fq_exchange_start(ex, send_one_main, (void *)(intptr_t)i, NULL),
               i == 0 ? 0 : 1);
    int msgs[WORK] = {0}, ended = 0;
    while (ended < WORK) {
        fq_loop_event ev[4];
        int n = wait_some(l, ev, 4, LONG_MS);
        assert_int_equal(n, 1);
        assert_int_equal(ev[0].type, FQ_LOOP_EXCHANGE);
        assert_ptr_equal(ev[0].udata, &tag);
        assert_true(fq_exchange_active(ex) <= 1);
        fq_exchange_event xe[8];
        int k = fq_exchange_ready(ex, xe, 8, 0);
        assert_true(k > 0); /* the report promised something */
        for (int j = 0; j < k; j++) {
            assert_int_equal(xe[j].error, 0);
            int i = (int)(intptr_t)xe[j].udata;
            if (xe[j].ended) {
                assert_true(WIFEXITED(xe[j].status));
                assert_int_equal(WEXITSTATUS(xe[j].status), 0);
                assert_int_equal(msgs[i], 1);
                FQT_OK(fq_channel_free(xe[j].ch));
                ended++;
                continue;
            }
            fq_msg m;
            FQT_EQ(fq_channel_recv(xe[j].ch, &m, 0), 1);
            assert_int_equal(m.len, sizeof(int));
            assert_memory_equal(m.data, &i, sizeof i);
            fq_msg_free(&m);
            msgs[i]++;
        }
    }
    assert_int_equal(fq_exchange_waiting(ex), 0);
    expect_none(l);
    FQT_EQ(fq_exchange_free(ex), 0);
    FQT_EQ(fq_loop_remove_exchange(l, ex), FQ_EINVAL); /* left with free */
    expect_none(l);
    FQT_OK(fq_loop_free(l));

    /* A child that ends its stream but lives on is reported only once it
     * ended (its pidfd is watched), not before. */
    int gate[2];
    fqt_pipe(gate);
    FQT_OK(fq_exchange_new(&ex, NULL));
    FQT_OK(fq_loop_new(&l, NULL));
    FQT_OK(fq_loop_add_exchange(l, ex, NULL));
    fq_channel ch;
    FQT_OK(fq_exchange_start(ex, close_then_wait_main, &gate[0], &ch));
    fq_loop_event ev[4];
    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_loop_wait(l, ev, 4, 200), 0);
    assert_true(fqp_now_ms() - t0 >= 195);
    assert_int_equal(fqt_write_all(gate[1], "x", 1), 0);
    assert_int_equal(wait_some(l, ev, 4, LONG_MS), 1);
    assert_int_equal(ev[0].type, FQ_LOOP_EXCHANGE);
    fq_exchange_event one[2];
    FQT_EQ(fq_exchange_ready(ex, one, 2, 0), 1);
    assert_int_equal(one[0].ended, 1);
    assert_true(one[0].ch.id == ch.id);
    FQT_OK(fq_channel_free(ch));
    FQT_OK(fq_loop_free(l));
    FQT_EQ(fq_exchange_free(ex), 0);
    fqt_close(&gate[0]);
    fqt_close(&gate[1]);

    /* Freeing the loop first leaves the exchange usable. */
    FQT_OK(fq_exchange_new(&ex, NULL));
    FQT_OK(fq_loop_new(&l, NULL));
    FQT_OK(fq_loop_add_exchange(l, ex, NULL));
    FQT_OK(fq_loop_free(l));
    fq_exchange_event xe[2];
    FQT_EQ(fq_exchange_ready(ex, xe, 2, 0), 0);
    FQT_EQ(fq_exchange_free(ex), 0);
    fqt_assert_no_children();
}

/* ---- job handles ------------------------------------------------------------
 */

static fq_job *submit_job(fq_queue q, int rd, uint64_t value,
                          const fq_job_options *jo)
{
    byte_arg a;
    memset(&a, 0, sizeof a); /* no uninitialised padding sent */
    a.rd = rd;
    a.value = value;
    fq_job *h = NULL;
    FQT_OK(fq_job_submit(q, job_after_byte, &a, sizeof a, jo, &h));
    assert_non_null(h);
    return h;
}

static uint64_t job_value(fq_job *h)
{
    fq_result r;
    FQT_OK(fq_job_result(h, &r));
    return fqt_u64(&r);
}

/* Jobs of two queues, ending in an order the test chooses: each reported
 * once, when it has its outcome, then gone; their queues, not added, are
 * never reported; a handle freed by the caller before its end is still
 * reported (the loop holds it). */
static void test_jobs_out_of_order(void **state)
{
    (void)state;
    int p[3][2];
    for (int i = 0; i < 3; i++)
        fqt_pipe(p[i]);
    fq_queue q1 = fqt_queue(2, 0), q2 = fqt_queue(1, 0);
    fq_job *a = submit_job(q1, p[0][0], 10, NULL);
    fq_job *b = submit_job(q2, p[1][0], 20, NULL);
    fq_job *c = submit_job(q1, p[2][0], 30, NULL);
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    int tag[3];
    FQT_OK(fq_loop_add_job(l, a, &tag[0]));
    FQT_OK(fq_loop_add_job(l, b, &tag[1]));
    FQT_OK(fq_loop_add_job(l, c, &tag[2]));
    FQT_EQ(fq_loop_add_job(l, a, NULL), FQ_EINVAL);
    expect_none(l);
    uint64_t cid = fq_job_id(c);
    fq_job_free(c); /* the caller lets go; the loop still reports it */

    assert_int_equal(fqt_write_all(p[1][1], "x", 1), 0);
    fq_loop_event e = expect_one(l, FQ_LOOP_JOB, fq_job_id(b));
    assert_ptr_equal(e.udata, &tag[1]);
    assert_int_equal(job_value(b), 20);
    assert_int_equal(fqt_write_all(p[2][1], "x", 1), 0);
    e = expect_one(l, FQ_LOOP_JOB, cid);
    assert_ptr_equal(e.udata, &tag[2]);
    assert_int_equal(fqt_write_all(p[0][1], "x", 1), 0);
    e = expect_one(l, FQ_LOOP_JOB, fq_job_id(a));
    assert_int_equal(job_value(a), 10);
    expect_none(l);
    FQT_EQ(fq_loop_remove_job(l, a), FQ_EINVAL); /* left when reported */

    /* Done before it is added: reported at once, its queue not needed. */
    FQT_OK(fq_loop_add_job(l, a, NULL));
    expect_one(l, FQ_LOOP_JOB, fq_job_id(a));
    FQT_OK(fq_loop_free(l));
    fq_job_free(a);
    fq_job_free(b);
    FQT_OK(fq_queue_free(q1));
    FQT_OK(fq_queue_free(q2));
    for (int i = 0; i < 3; i++) {
        fqt_close(&p[i][0]);
        fqt_close(&p[i][1]);
    }
    fqt_assert_no_children();
}

struct cbstate {
    fq_loop *l;
    int calls, wait_rc, result_rc;
    uint64_t value;
};

static void on_job(fq_job *h, void *arg)
{
    struct cbstate *cs = arg;
    fq_loop_event ev[1];
    fq_result r;
    cs->calls++;
    cs->wait_rc = fq_loop_wait(cs->l, ev, 1, 0);
    cs->result_rc = fq_job_result(h, &r);
    if (cs->result_rc == 0 && r.status == 0)
        memcpy(&cs->value, r.data, sizeof cs->value);
}

/* A job's callback runs once, from the loop's wait (no other call drives
 * the queue), outside the loop's iteration; a job over its time limit is
 * stopped by the loop's deadlines; removing a job before its end means no
 * event; a queue freed with jobs in the loop gives them FQ_ECLOSED. */
static void test_job_callbacks_limits_removal(void **state)
{
    (void)state;
    int p[2][2];
    fqt_pipe(p[0]);
    fqt_pipe(p[1]);
    fq_queue q = fqt_queue(2, 0);
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    struct cbstate cs = {l, 0, -100, -100, 0};
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.callback = on_job;
    jo.callback_arg = &cs;
    fq_job *h = submit_job(q, p[0][0], 7, &jo);
    FQT_OK(fq_loop_add_job(l, h, NULL));
    assert_int_equal(fqt_write_all(p[0][1], "x", 1), 0);
    expect_one(l, FQ_LOOP_JOB, fq_job_id(h));
    assert_int_equal(cs.calls, 1);
    FQT_EQ(cs.wait_rc, FQ_EBUSY);
    FQT_OK(cs.result_rc);
    assert_int_equal(cs.value, 7);
    expect_none(l);
    assert_int_equal(cs.calls, 1);
    fq_job_free(h);

    /* A time limit, with nothing but the loop driving the queue. */
    memset(&jo, 0, sizeof jo);
    jo.timeout_ms = 200;
    h = submit_job(q, p[1][0], 8, &jo); /* its byte never comes */
    FQT_OK(fq_loop_add_job(l, h, NULL));
    int64_t t0 = fqp_now_ms();
    expect_one(l, FQ_LOOP_JOB, fq_job_id(h));
    assert_true(fqp_now_ms() - t0 >= 190);
    fq_result r;
    FQT_OK(fq_job_result(h, &r));
    FQT_EQ(r.status, FQ_ETIMEDOUT);
    fq_job_free(h);

    /* Removed before its end: no event. */
    h = submit_job(q, p[1][0], 9, NULL);
    FQT_OK(fq_loop_add_job(l, h, NULL));
    FQT_OK(fq_loop_remove_job(l, h));
    FQT_EQ(fq_loop_remove_job(l, h), FQ_EINVAL);
    assert_int_equal(fqt_write_all(p[1][1], "x", 1), 0);
    FQT_OK(fq_job_wait(h, LONG_MS));
    expect_none(l);
    assert_int_equal(job_value(h), 9);
    fq_job_free(h);

    /* The queue freed with a job in the loop: the job ends FQ_ECLOSED and
     * is reported; the queue, held for it only, leaves quietly. */
    h = submit_job(q, p[1][0], 10, NULL); /* never gets its byte */
    FQT_OK(fq_loop_add_job(l, h, NULL));
    pid_t pids[2];
    FQT_EQ(fq_worker_pids(q, pids, 2), 2);
    FQT_OK(fq_queue_free(q));
    int got = 0;
    for (int round = 0; round < 3 && !got; round++) {
        fq_loop_event ev[4];
        int n = fq_loop_wait(l, ev, 4, LONG_MS);
        assert_true(n >= 0 && n <= 1);
        if (n == 1) {
            assert_int_equal(ev[0].type, FQ_LOOP_JOB);
            got = 1;
        }
    }
    assert_true(got);
    FQT_OK(fq_job_result(h, &r));
    FQT_EQ(r.status, FQ_ECLOSED);
    for (int i = 0; i < 2; i++)
        assert_true(fqt_wait_gone(pids[i], 0, 100));
    fq_job_free(h);
    FQT_EQ(fq_loop_add_job(NULL, h, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_add_job(l, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_remove_job(l, NULL), FQ_EINVAL);
    FQT_OK(fq_loop_free(l));
    for (int i = 0; i < 2; i++) {
        fqt_close(&p[i][0]);
        fqt_close(&p[i][1]);
    }
    fqt_assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_queue_wakeup_reaches_loop),
        FQT_TEST(test_queue_held_by_riders),
        FQT_TEST(test_exchange_in_loop),
        FQT_TEST(test_jobs_out_of_order),
        FQT_TEST(test_job_callbacks_limits_removal),
    };
    return FQT_RUN(tests);
}
