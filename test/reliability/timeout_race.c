/*
 * A job ending just as its time limit fires: the parent has decided to kill
 * the worker for job A's limit, and before the SIGKILL lands, A returns and
 * the worker starts job B. B must not be reported as crashed (nor timed
 * out): it is run again. The window is microseconds wide, so this test is
 * built against a copy of the library compiled with FQ_FAULT_INJECTION,
 * whose hook (core/fault.h) stops the parent between its decision and the
 * signal until B has started.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "core/fault.h"
#include "forkqueue.h"
#include "rel_util.h"

/* Shared with the workers. */
typedef struct race {
    atomic_int go;        /* the parent decided: A may return */
    atomic_int b_started; /* B's first run has begun */
    atomic_int a_runs;
    atomic_int b_runs;
} race;

static race *sh;
static int hook_calls;

/* Waits (polling every 100 us) until *flag is set, at most ms. */
static int await_flag(atomic_int *flag, int ms)
{
    int64_t end = fqp_now_ms() + ms;
    while (!atomic_load(flag)) {
        if (fqp_now_ms() > end)
            return 0;
        struct timespec ts = {0, 100000}; /* 100 us: the race is short */
        nanosleep(&ts, NULL);
    }
    return 1;
}

/* A: runs past its limit until the parent has decided to kill it, then
 * returns at once, as if it had ended as the limit fired. */
static int job_a(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    atomic_fetch_add(&sh->a_runs, 1);
    if (!await_flag(&sh->go, 10000))
        return fq_fail(ctx, 1, "the time limit never fired");
    int v = 'A';
    return fq_reply(ctx, &v, sizeof v);
}

/* B: its first run is the one the kill meant for A lands in (it waits,
 * bounded, to be killed); a second run answers at once. */
static int job_b(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    if (atomic_fetch_add(&sh->b_runs, 1) == 0) {
        atomic_store(&sh->b_started, 1);
        atomic_int never = 0;
        await_flag(&never, 10000);
        return fq_fail(ctx, 2, "the worker was not killed");
    }
    int v = 'B';
    return fq_reply(ctx, &v, sizeof v);
}

static void hook(int point, long pid)
{
    (void)pid;
    if (point != FQ__FAULT_TIMEOUT_KILL)
        return;
    hook_calls++;
    atomic_store(&sh->go, 1);
    /* B runs from now on: the SIGKILL about to be sent lands in it. */
    await_flag(&sh->b_started, 10000);
}

static void test_job_ending_as_its_limit_fires(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 1;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    fq__fault_hook = hook;
    int rounds = 5;
    for (int i = 0; i < rounds; i++) {
        memset(sh, 0, sizeof *sh);
        hook_calls = 0;
        fq_job_options jo = {0};
        jo.timeout_ms = 50;
        uint64_t a, b;
        assert_int_equal(fq_submit(q, job_a, NULL, 0, &jo, &a), 0);
        assert_int_equal(fq_submit(q, job_b, NULL, 0, NULL, &b), 0);
        assert_int_equal(fq_wait(q, 30000), 0);
        fq_result r;
        int sa = 1, sb = 1, vb = 0, n = 0;
        while (fq_take(q, &r) == 1) {
            n++;
            if (r.id == a) {
                sa = r.status;
            } else if (r.id == b) {
                sb = r.status;
                if (r.status == 0 && r.len == sizeof vb)
                    memcpy(&vb, r.data, sizeof vb);
            }
            if (r.status != 0)
                print_message("round %d: job %s: %s: %.*s\n", i,
                              r.id == a ? "A" : "B", fq_err_name(r.status),
                              (int)r.len, (const char *)r.data);
        }
        print_message("round %d: kill decisions %d; A ran %d time(s), %s; B "
                      "ran %d time(s), %s\n",
                      i, hook_calls, atomic_load(&sh->a_runs), fq_err_name(sa),
                      atomic_load(&sh->b_runs), fq_err_name(sb));
        assert_int_equal(n, 2);
        assert_int_equal(hook_calls, 1);
        /* A ended before the kill: its own result (recovered from the dead
         * worker's buffer) or, had that been lost, its time-out. */
        assert_true(sa == 0 || sa == FQ_ETIMEDOUT);
        assert_int_equal(atomic_load(&sh->a_runs), 1);
        /* B was killed for A's limit: it ran again and succeeded. */
        assert_int_equal(sb, 0);
        assert_int_equal(vb, 'B');
        assert_int_equal(atomic_load(&sh->b_runs), 2);
    }
    fq__fault_hook = NULL;
    assert_int_equal(fq_queue_free(q), 0);
}

int main(void)
{
    sh = fqp_shared_new(sizeof *sh);
    if (!sh)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_ending_as_its_limit_fires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
