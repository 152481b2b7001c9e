/*
 * Smaller holes of the core, one test each: a reply with an absurd length,
 * a forged "init failed" header announcing a huge message, timeouts below
 * -1, a stream whose consumer cancels the queue.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

static fq_queue new_queue(int workers)
{
    fq_options o = {0};
    o.workers = workers;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    return q;
}

static int channel_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    int found = -1;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        struct stat st;
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != dirfd(d) && fstat(fd, &st) == 0 &&
            S_ISSOCK(st.st_mode))
            found = fd;
    }
    closedir(d);
    return found;
}

/* Runs one job and returns its outcome status (and the first int of its
 * data in *val, if any). */
static int run_one(fq_queue q, fq_job_fn fn, const void *arg, size_t len,
                   int *val, int wait_ms)
{
    fq_result r;
    assert_int_equal(fq_submit(q, fn, arg, len, NULL, NULL), 0);
    int rc = fq_wait(q, wait_ms);
    if (rc != 0)
        return rc;
    assert_int_equal(fq_take(q, &r), 1);
    if (val && r.status == 0 && r.len >= sizeof(int))
        memcpy(val, r.data, sizeof(int));
    return r.status;
}

static int absurd_reply_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    char small[8] = "tiny";
    int rc = fq_reply(ctx, small, (size_t)1 << 50);
    return fq_reply(ctx, &rc, sizeof rc);
}

static void test_reply_absurd_length(void **state)
{
    (void)state;
    fq_queue q = new_queue(1);
    int rc = 0;
    assert_int_equal(run_one(q, absurd_reply_job, NULL, 0, &rc, 20000), 0);
    assert_int_equal(rc, FQ_ETOOBIG);
    assert_int_equal(fq_queue_free(q), 0);
}

/* A well-formed "init failed" header announcing 1 GiB, then nothing. */
static int forged_big_init_fail_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    unsigned char h[32] = {0x71, 0x66, 2 /* wire version */, 3};
    uint64_t n = (uint64_t)1 << 30;
    for (int i = 0; i < 8; i++)
        h[24 + i] = (unsigned char)(n >> (8 * i));
    int fd = channel_fd();
    if (fd < 0 || write(fd, h, sizeof h) != (ssize_t)sizeof h)
        return fq_fail(ctx, 1, "no channel");
    for (;;)
        pause();
}

static void test_forged_huge_init_fail(void **state)
{
    (void)state;
    fq_queue q = new_queue(1);
    int64_t t0 = fqp_now_ms();
    assert_int_equal(run_one(q, forged_big_init_fail_job, NULL, 0, NULL, 5000),
                     FQ_EPROTO);
    assert_true(fqp_now_ms() - t0 < 5000);
    int v = 0, x = 3;
    assert_int_equal(run_one(q, absurd_reply_job, &x, sizeof x, &v, 20000), 0);
    assert_int_equal(fq_queue_free(q), 0);
}

static void test_negative_timeouts(void **state)
{
    (void)state;
    fq_queue q = new_queue(1);
    assert_int_equal(fq_wait(q, -2), FQ_EINVAL);
    assert_int_equal(fq_poll(q, -5), FQ_EINVAL);
    assert_int_equal(fq_wait(q, -1), 0); /* forever: nothing to wait for */
    assert_int_equal(fq_poll(q, 0), 0);
    assert_int_equal(fq_queue_free(q), 0);
}

static int echo_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

static int produce(fq_queue q, void *udata)
{
    int *n = udata;
    if (*n >= 50)
        return 0;
    (*n)++;
    int rc = fq_submit(q, echo_job, n, sizeof *n, NULL, NULL);
    return rc < 0 ? rc : 1;
}

static int consume_and_cancel(fq_queue q, const fq_result *r, void *udata)
{
    (void)r;
    (void)udata;
    int rc = fq_cancel(q);
    return rc == 0 ? 0 : 100 - rc;
}

static void test_stream_consumer_cancels(void **state)
{
    (void)state;
    fq_queue q = new_queue(2);
    int n = 0;
    assert_int_equal(fq_stream(q, produce, consume_and_cancel, &n, 8),
                     FQ_ECANCELED);
    assert_int_equal(fq_queue_free(q), 0);
}

/* A job that sleeps exactly as long as its time limit, then an instant one
 * without a limit, many times over on one worker: the time limit may fire
 * as the first job ends, but the job after it must never be reported as
 * crashed for it. */
static int sleep_ms_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    if (ms > 0) {
        /* Spin rather than sleep: ends as close to the limit as can be. */
        int64_t end = fqp_now_ms() + ms;
        while (fqp_now_ms() < end)
            ;
    }
    return fq_reply(ctx, &ms, sizeof ms);
}

static void test_job_ending_at_its_time_limit(void **state)
{
    (void)state;
    fq_queue q = new_queue(1);
    int pairs = 100, limited = 0, after_bad = 0, timedout = 0;
    for (int i = 0; i < pairs; i++) {
        fq_job_options jo = {0};
        jo.timeout_ms = 5;
        int ms = 5, zero = 0;
        uint64_t a, b;
        assert_int_equal(fq_submit(q, sleep_ms_job, &ms, sizeof ms, &jo, &a),
                         0);
        assert_int_equal(
            fq_submit(q, sleep_ms_job, &zero, sizeof zero, NULL, &b), 0);
        assert_int_equal(fq_wait(q, 20000), 0);
        fq_result r;
        while (fq_take(q, &r) == 1) {
            if (r.id == a) {
                limited++;
                timedout += r.status == FQ_ETIMEDOUT;
                assert_true(r.status == 0 || r.status == FQ_ETIMEDOUT);
            } else if (r.status != 0) {
                after_bad++;
                print_message("job after a limited one: %s: %.*s\n",
                              fq_err_name(r.status), (int)r.len,
                              (const char *)r.data);
            }
        }
    }
    print_message("%d of %d limited jobs timed out; %d jobs after them "
                  "failed\n",
                  timedout, limited, after_bad);
    assert_int_equal(limited, pairs);
    assert_int_equal(after_bad, 0);
    assert_int_equal(fq_queue_free(q), 0);
}

/* A job that calls exit(): the parent's atexit handlers must not run in
 * the worker, nor may the worker flush the parent's stdio buffers again. */
static _Atomic int *atexit_runs;
static pid_t main_pid;

static void parent_atexit(void)
{
    if (getpid() != main_pid && atexit_runs)
        (*atexit_runs)++;
}

static int exit_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    exit(7);
}

static void test_job_calls_exit(void **state)
{
    (void)state;
    char path[] = "/tmp/fq_holes_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    setvbuf(f, NULL, _IOFBF, 4096);
    fputs("P", f); /* buffered in the parent when the worker is forked */
    fq_queue q = new_queue(1);
    assert_int_equal(fq_submit(q, exit_job, NULL, 0, NULL, NULL), 0);
    assert_int_equal(fq_wait(q, 20000), 0);
    fq_result r;
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(r.status, FQ_ECRASHED);
    assert_int_equal(r.exit_status, 7);
    assert_int_equal(fq_queue_free(q), 0);
    fclose(f);
    char buf[16] = {0};
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    fclose(in);
    unlink(path);
    print_message("file written by the parent only: \"%s\"; parent atexit "
                  "handlers run in workers: %d\n",
                  buf, *atexit_runs);
    assert_int_equal(n, 1);
    assert_int_equal(*atexit_runs, 0);
}

/* An init that always crashes, on a queue with no work: while no job waits,
 * the workers that die in init are replaced after a doubling delay (10 ms to
 * ~1.3 s), or when a job arrives, so the forks stay few however long the
 * queue is driven. Before, each death was replaced at once: about 300 forks
 * a second, for as long as the program polled. */
static int init_always_aborts(void *udata)
{
    (void)udata;
    abort();
}

static void test_idle_init_crashes_back_off(void **state)
{
    (void)state;
    fq_options o = {.workers = 2, .init = init_always_aborts};
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    int64_t end = fqp_now_ms() + 1000;
    while (fqp_now_ms() < end)
        assert_true(fq_poll(q, 20) >= 0);
    fq_stats st;
    assert_int_equal(fq_stats_get(q, &st), 0);
    /* 2 workers per round, rounds 10, 20, 40, ... 640 ms apart. */
    print_message("respawns in 1 s with no job: %llu\n",
                  (unsigned long long)st.respawns);
    assert_true(st.respawns <= 24);
    /* A job still gets its outcome: the init crash, named. */
    assert_int_equal(fq_submit(q, echo_job, "x", 1, NULL, NULL), 0);
    assert_int_equal(fq_wait(q, 30000), 0);
    fq_result r;
    assert_int_equal(fq_take(q, &r), 1);
    assert_int_equal(r.status, FQ_ECRASHED);
    assert_non_null(strstr(r.data, "init function"));
    assert_int_equal(fq_queue_free(q), 0);
}

int main(void)
{
    main_pid = getpid();
    atexit_runs = fqp_shared_new(sizeof(*atexit_runs));
    if (!atexit_runs)
        return 1;
    atexit(parent_atexit);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_absurd_length),
        cmocka_unit_test(test_forged_huge_init_fail),
        cmocka_unit_test(test_negative_timeouts),
        cmocka_unit_test(test_stream_consumer_cancels),
        cmocka_unit_test(test_job_ending_at_its_time_limit),
        cmocka_unit_test(test_job_calls_exit),
        cmocka_unit_test(test_idle_init_crashes_back_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
