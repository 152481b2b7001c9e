/*
 * The core without pidfds, as on kernels before 5.3, in sandboxes that
 * forbid pidfd_open, and on every system but Linux. A seccomp filter makes
 * pidfd_open fail with ENOSYS for this whole program, so every queue below
 * uses the fallback: end of file on the channel, and waitpid(WNOHANG) for a
 * busy worker whose channel stays open.
 *
 * The hard case: a job starts a process (which inherits the worker's end of
 * the channel) and then its worker dies. The channel never reaches end of
 * file while that process lives, yet the job must get its outcome within
 * about a second.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

static pid_t *kids; /* processes the jobs started, to clean up after */

static void deny_pidfd_open(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_open, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp");
        exit(1);
    }
}

/* Starts a process that outlives the job by 30 s, then ends the worker:
 * arg 0 by _exit(3), 1 by SIGKILL, 2 through daemon() (the worker exits
 * inside it and the copy lives on). */
static int orphan_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)len;
    int mode = *(const int *)arg;
    if (mode == 2) {
        pid_t w = getpid();
        if (daemon(1, 1) != 0)
            return fq_fail(ctx, 1, "daemon");
        if (getpid() != w) {
            kids[0] = getpid();
            fqp_sleep_ms(30000);
            _exit(0);
        }
        return 0;
    }
    pid_t p = fork();
    if (p < 0)
        return fq_fail(ctx, 1, "fork");
    if (p == 0) {
        fqp_sleep_ms(30000);
        _exit(0);
    }
    kids[1] = p;
    if (mode == 0)
        _exit(3);
    kill(getpid(), SIGKILL);
    return 0;
}

static int echo_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

static void cleanup_kids(void)
{
    for (int i = 0; i < 2; i++) {
        if (kids[i] > 0)
            kill(kids[i], SIGKILL);
        kids[i] = 0;
    }
}

static void run_mode(int mode)
{
    fq_options o = {0};
    o.workers = 1;
    fq_queue q = {0};
    fq_result r;
    uint64_t id;

    assert_int_equal(fq_queue_new(&q, &o), 0);
    assert_int_equal(fq_submit(q, orphan_job, &mode, sizeof mode, NULL, &id),
                     0);
    int after = 7;
    assert_int_equal(fq_submit(q, echo_job, &after, sizeof after, NULL, NULL),
                     0);
    int64_t t0 = fqp_now_ms();
    int rc = fq_wait(q, 10000);
    int64_t ms = fqp_now_ms() - t0;
    print_message("mode %d: fq_wait %s after %lld ms\n", mode, fq_err_name(rc),
                  (long long)ms);
    assert_int_equal(rc, 0);
    /* About a second: the fallback looks at busy workers 4 times a second.
     * Generous for a loaded machine, far below the orphan's 30 s. */
    assert_true(ms < 3000);
    int seen = 0;
    while (fq_take(q, &r) == 1) {
        seen++;
        if (r.id == id) {
            assert_int_equal(r.status, FQ_ECRASHED);
            if (mode == 0)
                assert_int_equal(r.exit_status, 3);
            if (mode == 1)
                assert_int_equal(r.signo, SIGKILL);
        } else {
            assert_int_equal(r.status, 0);
        }
    }
    assert_int_equal(seen, 2);
    assert_int_equal(fq_queue_free(q), 0);
    cleanup_kids();
}

static void test_pidfd_open_is_denied(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(syscall(__NR_pidfd_open, getpid(), 0), -1);
    assert_int_equal(errno, ENOSYS);
}

static void test_worker_exits_child_holds_channel(void **state)
{
    (void)state;
    run_mode(0);
}

static void test_worker_killed_child_holds_channel(void **state)
{
    (void)state;
    run_mode(1);
}

static void test_worker_daemonizes(void **state)
{
    (void)state;
    run_mode(2);
}

/* fq_finish() must not wait for processes the jobs left behind. */
static void test_finish_with_child_holding_channel(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 1;
    o.grace_ms = 10000;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    int mode = 2;
    assert_int_equal(fq_submit(q, orphan_job, &mode, sizeof mode, NULL, NULL),
                     0);
    int64_t t0 = fqp_now_ms();
    assert_int_equal(fq_finish(q), 0);
    assert_true(fqp_now_ms() - t0 < 3000);
    assert_int_equal(fq_queue_free(q), 0);
    cleanup_kids();
}

/* The same hard case with only an outside event loop driving the queue
 * (a poll() on fq_loop_fd() for fq_loop_timeout() ms, then
 * fq_loop_process()): the 250 ms waitpid() check is one of the deadlines
 * the loop hands out, so the death is noticed as soon. */
static void test_outside_loop_notices_death(void **state)
{
    (void)state;
    fq_options o = {0};
    o.workers = 1;
    fq_queue q = {0};
    fq_loop *l = NULL;
    assert_int_equal(fq_queue_new(&q, &o), 0);
    assert_int_equal(fq_loop_new(&l, NULL), 0);
    assert_int_equal(fq_loop_add_queue(l, q, NULL), 0);
    int fd = fq_loop_fd(l);
    assert_true(fd >= 0);
    int mode = 1;
    uint64_t id;
    assert_int_equal(fq_submit(q, orphan_job, &mode, sizeof mode, NULL, &id),
                     0);
    int after = 7;
    assert_int_equal(fq_submit(q, echo_job, &after, sizeof after, NULL, NULL),
                     0);
    int64_t t0 = fqp_now_ms();
    int seen = 0, timeouts = 0;
    while (seen < 2 && fqp_now_ms() - t0 < 10000) {
        int ms = -2;
        assert_int_equal(fq_loop_timeout(l, &ms), 0);
        /* A busy worker without pidfd is looked at 4 times a second. */
        assert_true(ms >= 0 && ms <= 250);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, ms) == 0)
            timeouts++;
        fq_loop_event ev[4];
        int n = fq_loop_process(l, ev, 4);
        assert_true(n >= 0);
        fq_result r;
        for (int k = 0; k < n; k++) {
            assert_int_equal(ev[k].type, FQ_LOOP_QUEUE);
            while (fq_take(q, &r) == 1) {
                seen++;
                if (r.id == id) {
                    assert_int_equal(r.status, FQ_ECRASHED);
                    assert_int_equal(r.signo, SIGKILL);
                } else {
                    assert_int_equal(r.status, 0);
                }
            }
        }
    }
    int64_t ms = fqp_now_ms() - t0;
    print_message("outside loop: 2 outcomes after %lld ms, %d timeouts\n",
                  (long long)ms, timeouts);
    assert_int_equal(seen, 2);
    assert_true(ms < 3000);
    assert_true(timeouts >= 1); /* the check ran on a deadline */
    assert_int_equal(fq_loop_free(l), 0);
    assert_int_equal(fq_queue_free(q), 0);
    cleanup_kids();
}

int main(void)
{
    kids = fqp_shared_new(2 * sizeof(*kids));
    if (!kids)
        return 1;
    deny_pidfd_open();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pidfd_open_is_denied),
        cmocka_unit_test(test_worker_exits_child_holds_channel),
        cmocka_unit_test(test_worker_killed_child_holds_channel),
        cmocka_unit_test(test_worker_daemonizes),
        cmocka_unit_test(test_finish_with_child_holding_channel),
        cmocka_unit_test(test_outside_loop_notices_death),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cleanup_kids();
    return rc;
}
