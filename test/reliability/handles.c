/*
 * Handles across threads and re-entry. A handle lookup holds a reference
 * to the queue for the length of the call: a queue freed by one thread
 * while another waits on it ends that wait with FQ_ECLOSED, and the memory
 * is released by whichever call lets go last. A queue's own hooks and
 * callbacks that call back into it get FQ_EBUSY.
 *
 * Built plainly, under ASan (the sanitizer build) and under TSan. The
 * queues are created before any thread starts, so no worker is forked while
 * another thread allocates (see docs/reliability.md, Threads).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

static int sleep_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int ms;
    if (len != sizeof ms)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(&ms, arg, sizeof ms);
    fqp_sleep_ms(ms);
    return fq_reply(ctx, &ms, sizeof ms);
}

struct waiter {
    fq_queue q;
    int use_poll;
    _Atomic int entered;
    _Atomic pid_t tid; /* the waiting thread */
    _Atomic int rc;
    _Atomic int done;
    int64_t ms; /* how long the wait lasted */
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    int64_t t0 = fqp_now_ms();
    w->tid = gettid();
    w->entered = 1;
    w->rc = w->use_poll ? fq_poll(w->q, 20000) : fq_wait(w->q, 20000);
    w->ms = fqp_now_ms() - t0;
    w->done = 1;
    return NULL;
}

static void free_while_waiting(int use_poll)
{
    fq_options o = {0};
    o.workers = 2;
    struct waiter w;
    memset(&w, 0, sizeof w);
    int kids0 = fqp_children(getpid(), NULL, 0, NULL);
    assert_int_equal(fq_queue_new(&w.q, &o), 0);
    int ms = 15000;
    for (int i = 0; i < 2; i++)
        assert_int_equal(fq_submit(w.q, sleep_job, &ms, sizeof ms, NULL, NULL),
                         0);
    w.use_poll = use_poll;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
    while (!w.entered)
        fqp_sleep_ms(1);
    /* Whether the waiter is already inside its wait or about to enter it,
     * the outcome is the same: FQ_ECLOSED, at once. Aim at the harder case:
     * free once the waiting thread sleeps in the kernel (in its poll), or
     * after 2 s if the machine never shows it there. */
    char state = 'R';
    for (int64_t until = fqp_now_ms() + 2000;
         fqp_now_ms() < until &&
         !(fqp_proc_stat(w.tid, &state, NULL, NULL) == 0 && state == 'S');)
        fqp_sleep_ms(1);
    assert_int_equal(fq_queue_free(w.q), 0);
    int64_t end = fqp_now_ms() + 5000;
    while (!w.done && fqp_now_ms() < end)
        fqp_sleep_ms(5);
    assert_true(w.done);
    pthread_join(t, NULL);
    print_message("waiter returned %s after %lld ms\n", fq_err_name(w.rc),
                  (long long)w.ms);
    assert_int_equal(w.rc, FQ_ECLOSED);
    assert_true(w.ms < 5000);
    /* The queue is gone: its handle too, and every worker was reaped. */
    fq_stats st;
    assert_int_equal(fq_stats_get(w.q, &st), FQ_ECLOSED);
    assert_int_equal(fqp_children(getpid(), NULL, 0, NULL), kids0);
}

static void test_free_while_other_thread_waits(void **state)
{
    (void)state;
    free_while_waiting(0);
}

static void test_free_while_other_thread_polls(void **state)
{
    (void)state;
    free_while_waiting(1);
}

/* ---- Re-entry ------------------------------------------------------------ */

static fq_queue hook_q;
static int hook_rc[4], hook_calls;

static int echo_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

/* A prepare hook that calls back into the queue whose worker is being
 * forked: every such call must be refused. */
static void reentering_hook(void *arg)
{
    (void)arg;
    if (!hook_q.id || hook_calls++)
        return;
    int x = 1;
    fq_result r;
    hook_rc[0] = fq_submit(hook_q, echo_job, &x, sizeof x, NULL, NULL);
    hook_rc[1] = fq_take(hook_q, &r);
    hook_rc[2] = fq_wait(hook_q, 0);
    hook_rc[3] = fq_refork(hook_q);
}

static void test_reentry_from_fork_hook(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 1;
    o.hooks.prepare = reentering_hook;
    hook_calls = 0;
    hook_q.id = 0;
    assert_int_equal(fq_queue_new(&hook_q, &o), 0);
    assert_int_equal(fq_refork(hook_q), 0); /* forks: the hook runs */
    assert_int_equal(hook_calls, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(hook_rc[i], FQ_EBUSY);
    /* The queue is intact. */
    int x = 5;
    fq_result r;
    assert_int_equal(fq_submit(hook_q, echo_job, &x, sizeof x, NULL, NULL), 0);
    assert_int_equal(fq_wait(hook_q, 10000), 0);
    assert_int_equal(fq_take(hook_q, &r), 1);
    assert_int_equal(r.status, 0);
    fq_stats st;
    assert_int_equal(fq_stats_get(hook_q, &st), 0);
    assert_true(st.submitted == 1);
    assert_int_equal(fq_queue_free(hook_q), 0);
    hook_q.id = 0;
}

struct stream_state {
    int produced, consumed;
    int take_rc, wait_rc, stream_rc, poll_rc;
};

static int produce_one(fq_queue q, void *udata)
{
    struct stream_state *s = udata;
    if (s->produced == 10)
        return 0;
    int x = s->produced++;
    int rc = fq_submit(q, echo_job, &x, sizeof x, NULL, NULL);
    return rc < 0 ? rc : 1;
}

static int consume_reentering(fq_queue q, const fq_result *r, void *udata)
{
    struct stream_state *s = udata;
    fq_result other;
    if (r->status != 0)
        return 99;
    if (s->consumed++ == 0) {
        s->take_rc = fq_take(q, &other);
        s->poll_rc = fq_poll(q, 0);
        s->wait_rc = fq_wait(q, 0);
        s->stream_rc = fq_stream(q, produce_one, consume_reentering, s, 0);
    }
    return 0;
}

static void test_reentry_from_stream_callbacks(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 2;
    fq_queue q = {0};
    struct stream_state s;
    memset(&s, 0, sizeof s);
    assert_int_equal(fq_queue_new(&q, &o), 0);
    /* fq_submit() from the producer is the documented use; the rest of the
     * API is refused inside the callbacks. */
    assert_int_equal(fq_stream(q, produce_one, consume_reentering, &s, 4), 0);
    assert_int_equal(s.produced, 10);
    assert_int_equal(s.consumed, 10);
    assert_int_equal(s.take_rc, FQ_EBUSY);
    assert_int_equal(s.poll_rc, FQ_EBUSY);
    assert_int_equal(s.wait_rc, FQ_EBUSY);
    assert_int_equal(s.stream_rc, FQ_EBUSY);
    assert_int_equal(fq_queue_free(q), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reentry_from_fork_hook),
        cmocka_unit_test(test_reentry_from_stream_callbacks),
        cmocka_unit_test(test_free_while_other_thread_waits),
        cmocka_unit_test(test_free_while_other_thread_polls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
