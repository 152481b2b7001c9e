/*
 * Process trees: every process a job starts ends no later than its worker.
 *
 * The job starts three processes that would run for a minute: one that
 * stays in the worker's process group, one that moves to a session of its
 * own (setsid), and one daemonized by a double fork (its parent exits, so
 * it is orphaned). Then the worker ends by each path: fq_finish(),
 * retirement, re-fork, a time limit, fq_queue_free(), fq_cancel(), a crash,
 * and the death
 * of the parent (SIGKILL, SIGTERM). The test checks that the processes are
 * gone within a few seconds (zombies waiting for init count as gone).
 *
 * One path cannot hold everything, and the test checks what it promises
 * (see docs/reliability.md): when the worker itself dies abruptly (a crash),
 * the processes still in its group are killed by the parent, but those
 * that left the group were adopted by the worker and are orphaned with it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

enum { K_GROUP, K_SESSION, K_DAEMON, K_WORKER, NKIDS };
static _Atomic pid_t *kids;

static void linger(void)
{
    for (int i = 0; i < 600; i++)
        fqp_sleep_ms(100);
    _exit(0);
}

/* arg: 0 return, 1 hang, 2 crash (SIGSEGV). */
static int tree_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)len;
    int mode = *(const int *)arg;
    pid_t p;

    kids[K_WORKER] = getpid();
    if ((p = fork()) == 0)
        linger();
    kids[K_GROUP] = p;
    if ((p = fork()) == 0) {
        setsid();
        linger();
    }
    kids[K_SESSION] = p;
    int pfd[2];
    if (pipe(pfd) != 0)
        return fq_fail(ctx, 1, "pipe");
    if ((p = fork()) == 0) {
        setsid();
        pid_t d = fork();
        if (d == 0) {
            close(pfd[0]);
            close(pfd[1]);
            linger();
        }
        (void)!write(pfd[1], &d, sizeof d);
        _exit(0);
    }
    pid_t d = -1;
    (void)!read(pfd[0], &d, sizeof d);
    close(pfd[0]);
    close(pfd[1]);
    waitpid(p, NULL, 0);
    kids[K_DAEMON] = d;
    if (mode == 1)
        for (;;)
            pause();
    if (mode == 2)
        raise(SIGSEGV);
    return 0;
}

static int alive(pid_t p)
{
    char st;
    if (p <= 0)
        return 0;
    return fqp_proc_stat(p, &st, NULL, NULL) == 0 && st != 'Z' && st != 'X';
}

/* Waits (driving q if given) until the processes in `which` are gone. */
static int all_gone(fq_queue q, unsigned which, int ms)
{
    int64_t end = fqp_now_ms() + ms;
    for (;;) {
        int n = 0;
        for (int i = 0; i < NKIDS; i++)
            if ((which & (1u << i)) && alive(kids[i]))
                n++;
        if (n == 0)
            return 1;
        if (fqp_now_ms() > end) {
            for (int i = 0; i < NKIDS; i++)
                if ((which & (1u << i)) && alive(kids[i]))
                    print_message("process %d (kind %d) still alive\n",
                                  (int)kids[i], i);
            return 0;
        }
        if (q.id)
            fq_poll(q, 10);
        else
            fqp_sleep_ms(10);
    }
}

static void cleanup(void)
{
    for (int i = 0; i < NKIDS; i++) {
        if (alive(kids[i]))
            kill(kids[i], SIGKILL);
        kids[i] = 0;
    }
}

static fq_queue start(const fq_options *o, int mode, int timeout_ms,
                      uint64_t *id)
{
    fq_queue q = {0};
    fq_job_options jo = {0};
    jo.timeout_ms = timeout_ms;
    memset((void *)kids, 0, sizeof(*kids) * NKIDS);
    assert_int_equal(fq_queue_new(&q, o), 0);
    assert_int_equal(fq_submit(q, tree_job, &mode, sizeof mode, &jo, id), 0);
    /* Wait until the job has started all three. */
    int64_t end = fqp_now_ms() + 10000;
    while (!kids[K_DAEMON] && fqp_now_ms() < end)
        fq_poll(q, 5);
    assert_true(kids[K_DAEMON] > 0);
    return q;
}

#define ALL ((1u << K_GROUP) | (1u << K_SESSION) | (1u << K_DAEMON))

static void expect_outcome(fq_queue q, int status)
{
    fq_result r;
    assert_int_equal(fq_wait(q, 10000), 0);
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(r.status, status);
}

static void test_finish(void **state)
{
    (void)state;
    fq_options o = {.workers = 1};
    fq_queue q = start(&o, 0, 0, NULL);
    expect_outcome(q, 0);
    assert_int_equal(fq_finish(q), 0);
    assert_true(all_gone((fq_queue){0}, ALL, 3000));
    assert_int_equal(fq_queue_free(q), 0);
    cleanup();
}

static void test_retirement(void **state)
{
    (void)state;
    fq_options o = {.workers = 1, .max_jobs_per_worker = 1};
    fq_queue q = start(&o, 0, 0, NULL);
    expect_outcome(q, 0);
    assert_true(all_gone(q, ALL | (1u << K_WORKER), 3000));
    assert_int_equal(fq_queue_free(q), 0);
    cleanup();
}

static void test_refork(void **state)
{
    (void)state;
    fq_options o = {.workers = 1};
    fq_queue q = start(&o, 0, 0, NULL);
    expect_outcome(q, 0);
    assert_int_equal(fq_refork(q), 0);
    assert_true(all_gone(q, ALL | (1u << K_WORKER), 3000));
    assert_int_equal(fq_queue_free(q), 0);
    cleanup();
}

static void test_time_limit(void **state)
{
    (void)state;
    fq_options o = {.workers = 1};
    fq_queue q = start(&o, 1, 300, NULL);
    expect_outcome(q, FQ_ETIMEDOUT);
    assert_true(all_gone((fq_queue){0}, ALL, 3000));
    assert_int_equal(fq_queue_free(q), 0);
    cleanup();
}

static void test_queue_free(void **state)
{
    (void)state;
    fq_options o = {.workers = 1};
    fq_queue q = start(&o, 1, 0, NULL);
    assert_int_equal(fq_queue_free(q), 0);
    assert_true(all_gone((fq_queue){0}, ALL, 3000));
    cleanup();
}

/* fq_cancel(): SIGTERM first (a grace period for the job's processes to
 * end on their own), then everything left is killed. */
static void test_cancel(void **state)
{
    (void)state;
    fq_options o = {.workers = 1, .grace_ms = 300};
    uint64_t id;
    fq_queue q = start(&o, 1, 0, &id);
    assert_int_equal(fq_cancel(q), 0);
    assert_true(all_gone((fq_queue){0}, ALL | (1u << K_WORKER), 3000));
    fq_result r;
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(r.status, FQ_ECANCELED);
    assert_int_equal(fq_queue_free(q), 0);
    cleanup();
}

/* The documented limit: a crash ends the worker at once; what stayed in
 * its process group is killed, what left it is not. */
static void test_crash(void **state)
{
    (void)state;
    fq_options o = {.workers = 1};
    fq_queue q = start(&o, 2, 0, NULL);
    expect_outcome(q, FQ_ECRASHED);
    assert_true(all_gone((fq_queue){0}, 1u << K_GROUP, 3000));
    assert_int_equal(fq_queue_free(q), 0);
    cleanup();
}

/* The host owns the queue and is killed while the job runs. */
static void parent_dies(int sig)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    memset((void *)kids, 0, sizeof(*kids) * NKIDS);
    pid_t host = fork();
    assert_true(host >= 0);
    if (host == 0) {
        close(ready[0]);
        fq_options o = {.workers = 1};
        fq_queue q = {0};
        int mode = 1;
        if (fq_queue_new(&q, &o) ||
            fq_submit(q, tree_job, &mode, sizeof mode, NULL, NULL))
            _exit(2);
        int64_t end = fqp_now_ms() + 10000;
        while (!kids[K_DAEMON] && fqp_now_ms() < end)
            fq_poll(q, 5);
        (void)!write(ready[1], "x", 1);
        for (;;)
            fq_poll(q, 1000);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_true(kids[K_DAEMON] > 0);
    kill(host, sig);
    int st;
    assert_int_equal(waitpid(host, &st, 0), host);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == sig);
    assert_true(all_gone((fq_queue){0}, ALL | (1u << K_WORKER), 3000));
    cleanup();
}

static void test_parent_sigkill(void **state)
{
    (void)state;
    parent_dies(SIGKILL);
}

static void test_parent_sigterm(void **state)
{
    (void)state;
    parent_dies(SIGTERM);
}

int main(void)
{
    kids = fqp_shared_new(sizeof(*kids) * NKIDS);
    if (!kids)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finish),
        cmocka_unit_test(test_retirement),
        cmocka_unit_test(test_refork),
        cmocka_unit_test(test_time_limit),
        cmocka_unit_test(test_queue_free),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_crash),
        cmocka_unit_test(test_parent_sigkill),
        cmocka_unit_test(test_parent_sigterm),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cleanup();
    return rc;
}
