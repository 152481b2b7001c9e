/* Jobs that kill their worker: exactly those jobs fail, the rest go on. */
#include "fq_test.h"

#include <sys/mman.h>

enum crash_kind { NONE, SEGV, ABORT, EXIT7, SELFKILL, FPE_RAISE, BUS_RAISE };

static int job_maybe_crash(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t a[2]; /* kind, value */
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(a, arg, sizeof a);
    switch (a[0]) {
    case SEGV: {
        /* A real fault, on a page that is mapped but not accessible (a
         * NULL store would be caught by UBSan before it faults). */
        void *page =
            mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return fq_fail(ctx, 98, "mmap failed");
        *(volatile int *)page = 1;
        break;
    }
    case ABORT:
        abort();
    case EXIT7:
        _exit(7);
    case SELFKILL:
        kill(getpid(), SIGKILL);
        break;
    case FPE_RAISE:
        raise(SIGFPE);
        break;
    case BUS_RAISE:
        raise(SIGBUS);
        break;
    }
    uint64_t v = fqt_square(a[1]);
    return fq_reply(ctx, &v, sizeof v) == 0 ? 0 : 100;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGKILL:
        return "SIGKILL";
    case SIGFPE:
        return "SIGFPE";
    case SIGBUS:
        return "SIGBUS";
    }
    return "?";
}

static int kind_signal(int kind)
{
    switch (kind) {
    case SEGV:
        return SIGSEGV;
    case ABORT:
        return SIGABRT;
    case SELFKILL:
        return SIGKILL;
    case FPE_RAISE:
        return SIGFPE;
    case BUS_RAISE:
        return SIGBUS;
    }
    return 0;
}

static void check_crash(const fq_result *r, int kind)
{
    if (r->status != FQ_ECRASHED)
        print_error("job %" PRIu64 " (kind %d): status %s\n", r->id, kind,
                    fq_err_name(r->status));
    assert_int_equal(r->status, FQ_ECRASHED);
    fqt_assert_msg(r);
    int sig = kind_signal(kind);
    if (sig) {
        if (r->signo != sig)
            print_error("job %" PRIu64 ": signo %d (%s), want %d: %s\n", r->id,
                        r->signo, strsignal(r->signo), sig,
                        (const char *)r->data);
        assert_int_equal(r->signo, sig);
        if (!strstr(r->data, sig_name(sig)))
            print_error("message lacks %s: %s\n", sig_name(sig),
                        (const char *)r->data);
        assert_non_null(strstr(r->data, sig_name(sig)));
    } else {
        assert_int_equal(r->signo, 0);
        assert_int_equal(r->exit_status, 7);
        assert_true(r->len > 0);
        assert_non_null(strstr(r->data, "7"));
    }
}

/* Many normal jobs with crashing ones among them; then the queue is used
 * again. */
static void crash_mix(int ordered, int inflight)
{
    enum { N = 600 };
    static int kind_of[N + 200];
    fq_options o = {.workers = 2, .ordered = ordered, .inflight = inflight};
    fq_queue q = fqt_queue_opts(&o);
    const int kinds[] = {SEGV, ABORT, EXIT7, SELFKILL, FPE_RAISE, BUS_RAISE};
    int ncrash = 0;
    for (uint64_t i = 0; i < N; i++) {
        int k = NONE;
        if (i % 37 == 5)
            k = kinds[(i / 37) % 6];
        /* two crashes back to back, on both workers */
        if (i == 300 || i == 301)
            k = SEGV;
        kind_of[i] = k;
        ncrash += k != NONE;
        uint64_t a[2] = {(uint64_t)k, k == SEGV ? 0 : i};
        FQT_OK(fq_submit(q, job_maybe_crash, a, sizeof a, NULL, NULL));
    }
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    for (uint64_t n = 0; n < N; n++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(r.id < N);
        if (ordered)
            assert_true(r.id == n);
        assert_int_equal(seen[r.id], 0);
        seen[r.id] = 1;
        if (kind_of[r.id] != NONE)
            check_crash(&r, kind_of[r.id]);
        else
            assert_true(fqt_u64(&r) == fqt_square(r.id));
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.crashed == (uint64_t)ncrash);
    assert_true(st.respawns >= (uint64_t)ncrash);
    assert_true(st.finished == N && st.taken == N);

    /* Still usable. */
    for (uint64_t i = 0; i < 100; i++)
        assert_true(fqt_submit_square(q, i + 1000) == N + i);
    for (int i = 0; i < 100; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(fqt_u64(&r) == fqt_square(r.id - N + 1000));
    }
    FQT_OK(fq_finish(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));
}

static void test_crash_unordered(void **state)
{
    (void)state;
    crash_mix(0, 0);
}

static void test_crash_ordered(void **state)
{
    (void)state;
    crash_mix(1, 0);
}

static void test_crash_deep_pipeline(void **state)
{
    (void)state;
    crash_mix(0, 64);
}

static void test_crash_no_pipeline(void **state)
{
    (void)state;
    crash_mix(1, 1);
}

/* A worker killed from outside (as by the OOM killer) while it runs a
 * job: that job fails with SIGKILL, the others complete. */
static void test_killed_from_outside(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(2, 0);
    for (uint64_t i = 0; i < 50; i++)
        fqt_submit_square(q, i);
    uint64_t held = fqt_submit_gate(q, &g, 1, 0);
    for (uint64_t i = 0; i < 50; i++)
        fqt_submit_square(q, i + 51);
    pid_t p = fqt_gate_started(q, &g);
    assert_int_equal(kill(p, SIGKILL), 0);
    int got_crash = 0;
    for (int n = 0; n < 101; n++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        if (r.id == held) {
            check_crash(&r, SELFKILL);
            assert_non_null(strstr(r.data, "SIGKILL"));
            got_crash++;
        } else {
            assert_true(fqt_u64(&r) == fqt_square(r.id));
        }
    }
    assert_int_equal(got_crash, 1);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.crashed == 1);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* An idle worker that dies produces no outcome; it is replaced. */
static void test_idle_worker_dies(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    pid_t pids[2];
    assert_int_equal(fq_worker_pids(q, pids, 2), 2);
    unsigned long long start = fqt_proc_start(pids[0]);
    assert_int_equal(kill(pids[0], SIGKILL), 0);
    assert_true(fqt_wait_gone(pids[0], start, 5000));
    /* Driving the queue notices the death and forks a replacement, but
     * produces no outcome. */
    fq_result r;
    int64_t end = fqp_now_ms() + 5000;
    pid_t now[2] = {pids[0], pids[0]};
    while ((now[0] == pids[0] || now[1] == pids[0]) && fqp_now_ms() < end) {
        assert_int_equal(fq_poll(q, 10), 0);
        assert_int_equal(fq_take(q, &r), 0);
        struct timespec ts = {0, 2 * 1000 * 1000}; /* polling interval */
        nanosleep(&ts, NULL);
        if (fq_worker_pids(q, now, 2) != 2)
            now[0] = pids[0];
    }
    if (now[0] == pids[0] || now[1] == pids[0]) {
        char st = '?';
        (void)fqp_proc_stat(pids[0], &st, NULL, NULL);
        print_error("dead idle worker %d (state %c) still listed\n",
                    (int)pids[0], st);
    }
    assert_true(now[0] != pids[0] && now[1] != pids[0]);
    for (uint64_t i = 0; i < 40; i++)
        fqt_submit_square(q, i);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_true(fqt_u64(&r) == fqt_square(r.id));
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.crashed == 0);
    /* The dead worker was reaped and replaced. */
    int zombies = -1;
    (void)fqt_count_children(&zombies);
    assert_int_equal(zombies, 0);
    assert_int_equal(fq_worker_pids(q, pids, 2), 2);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

/* A run of crashing jobs does not wedge the queue. */
static void test_crash_streak(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 1);
    enum { N = 30 };
    for (uint64_t i = 0; i < N; i++) {
        uint64_t a[2] = {EXIT7, i};
        FQT_OK(fq_submit(q, job_maybe_crash, a, sizeof a, NULL, NULL));
    }
    fqt_submit_square(q, 3);
    for (int i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        check_crash(&r, EXIT7);
    }
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_true(fqt_u64(&r) == fqt_square(3));
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.crashed == N);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

/* The crashed worker is reaped by the time its outcome is known. */
static int job_pid_then_exit(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)len;
    int fd;
    memcpy(&fd, arg, sizeof fd);
    pid_t p = getpid();
    (void)fqt_write_all(fd, &p, sizeof p);
    _exit(7);
}

static void test_crashed_worker_reaped(void **state)
{
    (void)state;
    int pfd[2];
    fqt_pipe(pfd);
    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_submit(q, job_pid_then_exit, &pfd[1], sizeof pfd[1], NULL, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    check_crash(&r, EXIT7);
    pid_t dead;
    assert_int_equal(fqt_read_all(pfd[0], &dead, sizeof dead), 0);
    int st;
    assert_int_equal(waitpid(dead, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    FQT_OK(fq_queue_free(q));
    close(pfd[0]);
    close(pfd[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_crash_unordered),
        FQT_TEST(test_crash_ordered),
        FQT_TEST(test_crash_deep_pipeline),
        FQT_TEST(test_crash_no_pipeline),
        FQT_TEST(test_killed_from_outside),
        FQT_TEST(test_idle_worker_dies),
        FQT_TEST(test_crash_streak),
        FQT_TEST(test_crashed_worker_reaped),
    };
    return FQT_RUN(tests);
}
