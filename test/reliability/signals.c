/*
 * Signals and the host program: what forkqueue guarantees when the parent is
 * signalled while it waits, when the host reaps children itself or ignores
 * SIGCHLD, and when a terminal's Ctrl-C or a SIGTERM reaches the host.
 *
 * Signals are sent by a helper process in a loop until the test tells it to
 * stop, so no test depends on hitting a particular moment: the waits below
 * are long enough that many signals land inside them.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

static volatile sig_atomic_t caught;
static volatile sig_atomic_t reaped_by_host;

static void count_signal(int sig)
{
    (void)sig;
    caught++;
}

/* A host that reaps every child it can, as many programs do. */
static void reap_all(int sig)
{
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        reaped_by_host++;
    errno = saved;
}

static void set_handler(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: every wait sees EINTR */
    assert_int_equal(sigaction(sig, &sa, NULL), 0);
}

/* ---- Jobs -------------------------------------------------------------- */

static int sleep_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int ms;
    if (len != sizeof ms)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(&ms, arg, sizeof ms);
    fqp_sleep_ms(ms);
    return fq_reply(ctx, &ms, sizeof ms);
}

enum { J_OK, J_KILL, J_EXIT };

/* arg: {kind, value}. J_OK replies value * 3. */
static int mixed_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int a[2];
    if (len != sizeof a)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(a, arg, sizeof a);
    if (a[0] == J_KILL)
        raise(SIGKILL);
    if (a[0] == J_EXIT)
        _exit(3);
    int v = a[1] * 3;
    return fq_reply(ctx, &v, sizeof v);
}

/* ---- The signaller ----------------------------------------------------- */

struct signaller {
    pid_t pid;
    int stop_fd;
};

/* Sends sig to `target` (a pid, or -pgid) every `every_ms` until stopped. */
static struct signaller start_signaller(pid_t target, int sig, int every_ms)
{
    int p[2];
    struct signaller s;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    s.pid = fork();
    assert_true(s.pid >= 0);
    if (s.pid == 0) {
        close(p[1]);
        for (int i = 0; i < 100000; i++) {
            struct pollfd pf = {p[0], POLLIN, 0};
            if (poll(&pf, 1, every_ms) != 0)
                _exit(0);
            if (kill(target, sig) != 0)
                _exit(1);
        }
        _exit(2);
    }
    close(p[0]);
    s.stop_fd = p[1];
    return s;
}

static void stop_signaller(struct signaller *s)
{
    assert_int_equal(write(s->stop_fd, "x", 1), 1);
    close(s->stop_fd);
    int st = rel_wait_deadline(s->pid, 10000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- Helpers ----------------------------------------------------------- */

static fq_queue new_queue(int workers, int return_on_eintr)
{
    fq_options o = {0};
    o.workers = workers;
    o.return_on_eintr = return_on_eintr;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    return q;
}

static void submit_sleepers(fq_queue q, int n, int ms)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(fq_submit(q, sleep_job, &ms, sizeof ms, NULL, NULL),
                         0);
}

static int take_all_ok(fq_queue q, int ms)
{
    fq_result r;
    int n = 0;
    while (fq_take(q, &r) == 1) {
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, sizeof ms);
        assert_memory_equal(r.data, &ms, sizeof ms);
        n++;
    }
    return n;
}

static void assert_no_children(void)
{
    int z = 0;
    assert_int_equal(fqp_children(getpid(), NULL, 0, &z), 0);
}

/* ---- Tests ------------------------------------------------------------- */

/* Default: a caught signal does not end a wait. */
static void test_sigint_while_waiting_resumes(void **state)
{
    (void)state;
    caught = 0;
    set_handler(SIGINT, count_signal);
    fq_queue q = new_queue(2, 0);
    submit_sleepers(q, 4, 300);
    struct signaller s = start_signaller(getpid(), SIGINT, 10);
    int rc = fq_wait(q, 20000);
    int got = caught;
    stop_signaller(&s);
    assert_int_equal(rc, 0);
    assert_true(got > 5);
    assert_int_equal(take_all_ok(q, 300), 4);
    assert_int_equal(fq_queue_free(q), 0);
    signal(SIGINT, SIG_DFL);
    assert_no_children();
}

/* return_on_eintr: the wait returns FQ_EINTR at once; nothing is lost and
 * the queue continues when the host waits again. */
static void test_sigterm_while_waiting_returns_eintr(void **state)
{
    (void)state;
    caught = 0;
    set_handler(SIGTERM, count_signal);
    fq_queue q = new_queue(2, 1);
    submit_sleepers(q, 4, 1500);
    struct signaller s = start_signaller(getpid(), SIGTERM, 10);
    int64_t t0 = fqp_now_ms();
    int rc = fq_wait(q, 20000);
    int64_t waited = fqp_now_ms() - t0;
    int rc_poll = fq_poll(q, 20000);
    stop_signaller(&s);
    assert_int_equal(rc, FQ_EINTR);
    assert_int_equal(rc_poll, FQ_EINTR);
    assert_true(waited < 1000);
    /* Signals stopped: the same jobs finish normally. */
    assert_int_equal(fq_wait(q, 20000), 0);
    assert_int_equal(take_all_ok(q, 1500), 4);
    assert_int_equal(fq_queue_free(q), 0);
    signal(SIGTERM, SIG_DFL);
    assert_no_children();
}

/* Ctrl-C in a terminal signals the foreground process group. Workers have
 * their own group, so only the host sees it and decides. */
static int ctrl_c_host(void)
{
    caught = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_signal;
    sigaction(SIGINT, &sa, NULL);
    fq_options o = {0};
    o.workers = 2;
    fq_queue q = {0};
    if (fq_queue_new(&q, &o) != 0)
        return 10;
    int ms = 400;
    for (int i = 0; i < 4; i++)
        if (fq_submit(q, sleep_job, &ms, sizeof ms, NULL, NULL) != 0)
            return 11;
    /* Tell the test we are waiting, so the group signals land in fq_wait. */
    if (write(3, "w", 1) != 1)
        return 12;
    if (fq_wait(q, 20000) != 0)
        return 13;
    fq_result r;
    int ok = 0;
    while (fq_take(q, &r) == 1)
        ok += r.status == 0;
    fq_queue_free(q);
    if (ok != 4)
        return 14;
    return caught > 0 ? 0 : 15;
}

static void test_ctrl_c_reaches_only_the_host(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t host = fork();
    assert_true(host >= 0);
    if (host == 0) {
        setpgid(0, 0);
        close(p[0]);
        if (dup2(p[1], 3) != 3)
            _exit(20);
        _exit(ctrl_c_host());
    }
    close(p[1]);
    setpgid(host, host); /* also here: no race with the child's own call */
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    struct signaller s = start_signaller(-host, SIGINT, 20);
    int st = rel_wait_deadline(host, 20000);
    stop_signaller(&s);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        print_error("host status %d\n", st);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A host killed by SIGTERM (default action) takes its workers with it. */
static void test_sigterm_kills_host_and_workers(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t host = fork();
    assert_true(host >= 0);
    if (host == 0) {
        close(p[0]);
        fq_options o = {0};
        o.workers = 3;
        fq_queue q = {0};
        if (fq_queue_new(&q, &o) != 0)
            _exit(10);
        int ms = 30000;
        for (int i = 0; i < 3; i++)
            fq_submit(q, sleep_job, &ms, sizeof ms, NULL, NULL);
        fq_poll(q, 0); /* sends the jobs */
        pid_t pids[3];
        if (fq_worker_pids(q, pids, 3) != 3)
            _exit(11);
        if (write(p[1], pids, sizeof pids) != (ssize_t)sizeof pids)
            _exit(12);
        fq_wait(q, -1);
        _exit(13);
    }
    close(p[1]);
    pid_t pids[3];
    assert_int_equal(read(p[0], pids, sizeof pids), (ssize_t)sizeof pids);
    close(p[0]);
    assert_int_equal(kill(host, SIGTERM), 0);
    int st = rel_wait_deadline(host, 10000);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    /* The workers were the host's children, now orphans: they must die. A
     * container's init may leave them as zombies, which is dead enough. */
    int64_t end = fqp_now_ms() + 10000;
    int alive = 3;
    while (alive > 0 && fqp_now_ms() < end) {
        alive = 0;
        for (int i = 0; i < 3; i++) {
            char c;
            pid_t pp;
            if (fqp_proc_stat(pids[i], &c, &pp, NULL) == 0 && c != 'Z')
                alive++;
        }
        if (alive)
            fqp_sleep_ms(10);
    }
    assert_int_equal(alive, 0);
}

/* Runs a mix of good, killed and exiting jobs and checks every outcome; the
 * exit status of crashed workers may be unknown (-1) when the host reaped
 * them first. */
static void run_mixed(fq_queue q, int n)
{
    for (int i = 0; i < n; i++) {
        int a[2] = {i % 10 == 3 ? J_KILL : i % 10 == 7 ? J_EXIT : J_OK, i};
        fq_job_options jo = {0};
        jo.id = (uint64_t)i;
        jo.flags = FQ_JOB_ID;
        assert_int_equal(fq_submit(q, mixed_job, a, sizeof a, &jo, NULL), 0);
    }
    assert_int_equal(fq_wait(q, 30000), 0);
    fq_result r;
    int seen = 0, stolen = 0;
    unsigned char got[1000] = {0};
    assert_true(n <= 1000);
    while (fq_take(q, &r) == 1) {
        int i = (int)r.id;
        assert_true(i >= 0 && i < n && !got[i]);
        got[i] = 1;
        seen++;
        if (i % 10 == 3) {
            assert_int_equal(r.status, FQ_ECRASHED);
            if (r.signo == 0) {
                assert_int_equal(r.exit_status, -1);
                stolen++;
            } else {
                assert_int_equal(r.signo, SIGKILL);
            }
        } else if (i % 10 == 7) {
            assert_int_equal(r.status, FQ_ECRASHED);
            assert_int_equal(r.signo, 0);
            assert_true(r.exit_status == 3 || r.exit_status == -1);
            stolen += r.exit_status == -1;
        } else {
            int v;
            assert_int_equal(r.status, 0);
            assert_int_equal(r.len, sizeof v);
            memcpy(&v, r.data, sizeof v);
            assert_int_equal(v, i * 3);
        }
    }
    assert_int_equal(seen, n);
    print_message("    %d crash reports without exit status\n", stolen);
}

static void test_host_reaps_all_children(void **state)
{
    (void)state;
    reaped_by_host = 0;
    set_handler(SIGCHLD, reap_all);
    fq_queue q = new_queue(2, 0);
    run_mixed(q, 60);
    run_mixed(q, 60); /* and again: the queue still works */
    assert_int_equal(fq_queue_free(q), 0);
    signal(SIGCHLD, SIG_DFL);
    print_message("    host handler reaped %d workers\n", (int)reaped_by_host);
    assert_no_children();
}

static void test_host_ignores_sigchld(void **state)
{
    (void)state;
    signal(SIGCHLD, SIG_IGN);
    fq_queue q = new_queue(2, 0);
    run_mixed(q, 60);
    run_mixed(q, 60);
    assert_int_equal(fq_queue_free(q), 0);
    signal(SIGCHLD, SIG_DFL);
    assert_no_children();
}

/* The library waits for its own workers only: the host's other children
 * and their exit statuses stay the host's. */
static void test_host_children_untouched(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t mine = fork();
    assert_true(mine >= 0);
    if (mine == 0) {
        char c;
        close(p[1]);
        /* Exits once the queue is busy (the test writes a byte: not the
         * end of the pipe, which the workers forked meanwhile also hold
         * until they end). */
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(42);
    }
    close(p[0]);
    fq_queue q = new_queue(2, 0);
    submit_sleepers(q, 4, 200);
    fq_poll(q, 0);
    /* Now our own child exits while the queue runs. */
    assert_int_equal(write(p[1], "x", 1), 1);
    close(p[1]);
    assert_int_equal(fq_wait(q, 20000), 0);
    assert_int_equal(take_all_ok(q, 200), 4);
    run_mixed(q, 40); /* crashes make the core reap and respawn */
    int st;
    pid_t r;
    while ((r = waitpid(mine, &st, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(r, mine);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    assert_int_equal(fq_queue_free(q), 0);
    assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigint_while_waiting_resumes),
        cmocka_unit_test(test_sigterm_while_waiting_returns_eintr),
        cmocka_unit_test(test_ctrl_c_reaches_only_the_host),
        cmocka_unit_test(test_sigterm_kills_host_and_workers),
        cmocka_unit_test(test_host_reaps_all_children),
        cmocka_unit_test(test_host_ignores_sigchld),
        cmocka_unit_test(test_host_children_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
