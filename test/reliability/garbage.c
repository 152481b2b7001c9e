/*
 * Garbage on a worker channel, in both directions, from real processes.
 *
 * A job can reach its worker's end of the channel (the only socket the
 * worker has open) and write bytes that are not frames, close it, or forge
 * frames. The parent must blame that job with FQ_EPROTO (or FQ_ECRASHED when
 * the worker simply died), replace the worker and go on. Garbage written to
 * the parent's end reaches a worker, which must give up on its channel and
 * exit; the parent replaces it and no job is lost.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

static int channel_fd(void)
{
    int fds[4];
    return rel_list_sockets(fds, 4) == 1 ? fds[0] : -1;
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static const char junk[] = "this is not a forkqueue frame, not even close..";

/* arg: 0 hang after the garbage, 1 return normally afterwards. */
static int garbage_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int fd = channel_fd();
    if (fd < 0)
        return fq_fail(ctx, 99, "no channel socket found");
    write_all(fd, junk, sizeof junk);
    if (len == 1 && *(const char *)arg == 0)
        for (;;)
            pause();
    return 0;
}

static int close_channel_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int fd = channel_fd();
    if (fd < 0)
        return fq_fail(ctx, 99, "no channel socket found");
    close(fd);
    return 0;
}

/* A well-formed "init failed" frame (see src/wire.h), sent by a job long
 * after init succeeded. */
static int forged_init_fail_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    unsigned char f[32 + 6] = {0x71, 0x66, 2 /* wire version */, 3};
    f[24] = 6;
    memcpy(f + 32, "forged", 6);
    int fd = channel_fd();
    if (fd < 0)
        return fq_fail(ctx, 99, "no channel socket found");
    write_all(fd, f, sizeof f);
    for (;;)
        pause();
}

static int echo_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

static fq_queue new_queue(int workers)
{
    fq_options o = {0};
    o.workers = workers;
    fq_queue q = {0};
    assert_int_equal(fq_queue_new(&q, &o), 0);
    return q;
}

/* The outcome of one job, copied out of the queue (fq_result.data is only
 * valid until the next fq_take()). */
struct outcome {
    int status, code, signo;
    size_t len;
    char data[256];
};

/* Submits one job, waits for it, returns its outcome and checks that it is
 * the only one. */
static struct outcome run_one(fq_queue q, fq_job_fn fn, const void *arg,
                              size_t len)
{
    uint64_t id;
    fq_result r;
    struct outcome o;
    memset(&o, 0, sizeof o);
    assert_int_equal(fq_submit(q, fn, arg, len, NULL, &id), 0);
    assert_int_equal(fq_wait(q, 20000), 0);
    assert_int_equal(fq_take(q, &r), 1);
    assert_true(r.id == id);
    o.status = r.status;
    o.code = r.code;
    o.signo = r.signo;
    o.len = r.len;
    if (r.status != 0) {
        /* Errors carry a NUL-terminated description. */
        assert_non_null(r.data);
        assert_int_equal(((const char *)r.data)[r.len], 0);
        assert_int_equal(strlen(r.data), r.len);
    }
    memcpy(o.data, r.data, r.len < sizeof o.data - 1 ? r.len : 0);
    fq_result extra;
    assert_int_equal(fq_take(q, &extra), 0);
    return o;
}

static void assert_queue_works(fq_queue q, int n)
{
    for (int i = 0; i < n; i++) {
        struct outcome r = run_one(q, echo_job, &i, sizeof i);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, sizeof i);
        assert_memory_equal(r.data, &i, sizeof i);
    }
}

static void test_garbage_from_running_job(void **state)
{
    (void)state;
    fq_queue q = new_queue(1);
    char mode = 0;
    struct outcome r = run_one(q, garbage_job, &mode, 1);
    print_message("garbage then hang: %s: %s\n", fq_err_name(r.status), r.data);
    assert_int_equal(r.status, FQ_EPROTO);
    assert_true(r.len > 0);
    assert_queue_works(q, 5);
    assert_int_equal(fq_queue_free(q), 0);
}

static void test_garbage_then_return(void **state)
{
    (void)state;
    fq_queue q = new_queue(1);
    char mode = 1;
    struct outcome r = run_one(q, garbage_job, &mode, 1);
    print_message("garbage then return: %s: %s\n", fq_err_name(r.status),
                  r.data);
    /* The job may have finished before the parent read its garbage: then
     * its own (empty) result is already in the worker's shared output
     * buffer and the parent recovers it when it kills the worker. Otherwise
     * the job is blamed. Either way the channel is dropped (below: the
     * queue goes on with a new worker). */
    assert_true(r.status == 0 || r.status == FQ_EPROTO ||
                r.status == FQ_ECRASHED);
    if (r.status == 0)
        assert_int_equal(r.len, 0);
    assert_queue_works(q, 5);
    assert_int_equal(fq_queue_free(q), 0);
}

static void test_job_closes_channel(void **state)
{
    (void)state;
    fq_queue q = new_queue(2);
    struct outcome r = run_one(q, close_channel_job, NULL, 0);
    print_message("job closed its channel: %s: %s\n", fq_err_name(r.status),
                  r.data);
    /* The job itself succeeded; its (empty) result was already in the
     * worker's shared output buffer, which the parent recovers when the
     * worker exits for want of a channel. A crash report is acceptable
     * too; "no channel socket found" (FQ_EJOB) is not. */
    assert_true(r.status == 0 || r.status == FQ_ECRASHED ||
                r.status == FQ_EPROTO);
    if (r.status == 0)
        assert_int_equal(r.len, 0);
    assert_queue_works(q, 5);
    assert_int_equal(fq_queue_free(q), 0);
}

static void test_forged_init_fail_frame(void **state)
{
    (void)state;
    fq_queue q = new_queue(2);
    struct outcome r = run_one(q, forged_init_fail_job, NULL, 0);
    print_message("forged init-failed frame: %s: %s\n", fq_err_name(r.status),
                  r.data);
    /* No init function was given and the worker is long past it: the frame
     * is garbage from one worker and must not stop the whole queue. */
    assert_int_equal(r.status, FQ_EPROTO);
    assert_queue_works(q, 5);
    assert_int_equal(fq_queue_free(q), 0);
}

static void test_garbage_to_workers(void **state)
{
    (void)state;
    int before[64], after[64];
    int kids0 = fqp_children(getpid(), NULL, 0, NULL);
    int nb = rel_list_sockets(before, 64);
    fq_queue q = new_queue(2);
    int na = rel_list_sockets(after, 64);
    assert_true(nb >= 0 && na == nb + 2);

    pid_t old[2];
    assert_int_equal(fq_worker_pids(q, old, 2), 2);
    /* The queue is idle, so nothing of ours is interleaved with the junk. */
    for (int i = 0; i < na; i++) {
        int known = 0;
        for (int k = 0; k < nb; k++)
            known |= before[k] == after[i];
        if (!known)
            write_all(after[i], junk, sizeof junk);
    }
    /* Both workers must give up on their channel and exit. An idle queue is
     * not driven, so they stay unreaped (zombies) until the next call. */
    int64_t end = fqp_now_ms() + 10000;
    int exited = 0;
    while (exited < 2 && fqp_now_ms() < end) {
        exited = 0;
        for (int i = 0; i < 2; i++) {
            char st;
            pid_t pp;
            if (fqp_proc_stat(old[i], &st, &pp, NULL) != 0 || st == 'Z')
                exited++;
        }
        if (exited < 2)
            fqp_sleep_ms(5);
    }
    assert_int_equal(exited, 2);
    assert_queue_works(q, 10);
    fq_stats st;
    assert_int_equal(fq_stats_get(q, &st), 0);
    assert_true(st.respawns >= 2);
    pid_t now[8];
    int n = fq_worker_pids(q, now, 8);
    for (int i = 0; i < n && i < 8; i++)
        assert_true(now[i] != old[0] && now[i] != old[1]);
    assert_int_equal(fq_queue_free(q), 0);
    int z;
    assert_int_equal(fqp_children(getpid(), NULL, 0, &z), kids0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_from_running_job),
        cmocka_unit_test(test_garbage_then_return),
        cmocka_unit_test(test_job_closes_channel),
        cmocka_unit_test(test_forged_init_fail_frame),
        cmocka_unit_test(test_garbage_to_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
