/*
 * A job's signal mask does not reach the next job on the same worker: each
 * job starts with the mask its worker had once its init function returned
 * (the mask of the thread that forked it, for a process; every signal
 * blocked, for a thread), whatever the job before it blocked or unblocked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <sys/syscall.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

/* What a job saw: its worker (pid and thread id) and its mask on entry. */
typedef struct seen {
    pid_t pid;
    pid_t tid;
    sigset_t mask;
} seen;

enum { OP_LOOK, OP_BLOCK, OP_UNBLOCK_ALL, OP_UNBLOCK_USR1 };

static int mask_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int op = 0;
    if (len == sizeof op)
        memcpy(&op, arg, sizeof op);
    seen s;
    memset(&s, 0, sizeof s);
    s.pid = getpid();
    s.tid = (pid_t)syscall(SYS_gettid);
    pthread_sigmask(SIG_SETMASK, NULL, &s.mask);
    sigset_t set;
    sigemptyset(&set);
    switch (op) {
    case OP_BLOCK:
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        break;
    case OP_UNBLOCK_ALL:
        pthread_sigmask(SIG_SETMASK, &set, NULL);
        break;
    case OP_UNBLOCK_USR1:
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        break;
    default:
        break;
    }
    return fq_reply(ctx, &s, sizeof s);
}

static int same_mask(const sigset_t *a, const sigset_t *b)
{
    /* Between 31 and SIGRTMIN are the C library's own signals. */
    for (int sig = 1; sig < 32; sig++)
        if (sigismember(a, sig) != sigismember(b, sig))
            return 0;
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
        if (sigismember(a, sig) != sigismember(b, sig))
            return 0;
    return 1;
}

/* Runs `ops` in order on a one-worker queue; fills what each job saw. */
static void run_ops(const fq_options *o, const int *ops, int n, seen *out)
{
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, o), 0);
    uint64_t ids[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        assert_int_equal(
            fq_submit(q, mask_job, &ops[i], sizeof ops[i], NULL, &ids[i]), 0);
    assert_int_equal(fq_wait(q, 30000), 0);
    fq_result r;
    int got = 0;
    while (fq_take(q, &r) == 1) {
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, sizeof(seen));
        for (int i = 0; i < n; i++)
            if (r.id == ids[i])
                memcpy(&out[i], r.data, sizeof(seen));
        got++;
    }
    assert_int_equal(got, n);
    assert_int_equal(fq_queue_free(q), 0);
    for (int i = 1; i < n; i++) { /* one worker ran them all */
        assert_int_equal(out[i].pid, out[0].pid);
        assert_int_equal(out[i].tid, out[0].tid);
    }
}

/* A process worker: SIGTERM and SIGUSR1 blocked by one job, every signal
 * unblocked by the next; each job still starts with the forking thread's
 * mask (here: SIGUSR2 blocked). */
static void test_process_job_mask_does_not_carry_over(void **state)
{
    (void)state;
    sigset_t usr2, old;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, &old);
    sigset_t want;
    pthread_sigmask(SIG_SETMASK, NULL, &want);

    fq_options o = {0};
    o.workers = 1;
    int ops[] = {OP_BLOCK, OP_LOOK,  OP_UNBLOCK_ALL,
                 OP_LOOK,  OP_BLOCK, OP_BLOCK};
    int n = (int)(sizeof ops / sizeof ops[0]);
    seen s[6];
    run_ops(&o, ops, n, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int i = 0; i < n; i++) {
        if (!same_mask(&s[i].mask, &want))
            print_message("job %d of worker %d started with SIGTERM %s, "
                          "SIGUSR1 %s, SIGUSR2 %s\n",
                          i, (int)s[i].pid,
                          sigismember(&s[i].mask, SIGTERM) ? "blocked" : "open",
                          sigismember(&s[i].mask, SIGUSR1) ? "blocked" : "open",
                          sigismember(&s[i].mask, SIGUSR2) ? "blocked"
                                                           : "open");
        assert_true(same_mask(&s[i].mask, &want));
    }
}

/* The mask a worker has when init returns is every job's starting mask. */
static int init_blocks_usr1(void *udata)
{
    (void)udata;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void test_mask_set_by_init_is_the_baseline(void **state)
{
    (void)state;
    sigset_t want;
    pthread_sigmask(SIG_SETMASK, NULL, &want);
    sigaddset(&want, SIGUSR1);

    fq_options o = {0};
    o.workers = 1;
    o.init = init_blocks_usr1;
    int ops[] = {OP_LOOK, OP_UNBLOCK_ALL, OP_LOOK, OP_BLOCK, OP_LOOK};
    seen s[5];
    run_ops(&o, ops, 5, s);
    for (int i = 0; i < 5; i++)
        assert_true(same_mask(&s[i].mask, &want));
}

/* A thread worker blocks every signal (the host's handlers run in its own
 * threads); a job that unblocks some must not leave its thread open to
 * process-directed signals for the jobs after it. */
static void test_thread_job_mask_does_not_carry_over(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 1;
    o.kind = FQ_WORKER_THREAD;
    int ops[] = {OP_LOOK, OP_UNBLOCK_USR1, OP_LOOK, OP_UNBLOCK_ALL,
                 OP_LOOK, OP_BLOCK,        OP_LOOK};
    int n = (int)(sizeof ops / sizeof ops[0]);
    seen s[7];
    run_ops(&o, ops, n, s);
    /* The first job shows the thread's mask: every signal the kernel lets
     * a thread block. */
    assert_true(sigismember(&s[0].mask, SIGTERM));
    assert_true(sigismember(&s[0].mask, SIGUSR1));
    assert_true(sigismember(&s[0].mask, SIGINT));
    for (int i = 1; i < n; i++)
        assert_true(same_mask(&s[i].mask, &s[0].mask));
    assert_int_equal(s[0].pid, getpid());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_process_job_mask_does_not_carry_over),
        cmocka_unit_test(test_mask_set_by_init_is_the_baseline),
        cmocka_unit_test(test_thread_job_mask_does_not_carry_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
