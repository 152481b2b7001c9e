/*
 * A loop object driven from outside, as asyncio or libuv would: a plain
 * poll() on fq_loop_fd() for at most fq_loop_timeout() ms, then
 * fq_loop_process(). Nothing else moves the queues, so time limits and
 * results must reach the caller through that descriptor and timeout alone.
 */
#include "fq_test.h"

#include <signal.h>

#define LONG_MS 20000

struct drive {
    fq_loop *l;
    int fd;
    int polls, readable, timeouts;
};

/* One round of an outside loop: the timeout the loop asks for (-1 capped at
 * LONG_MS, which the tests never reach), poll() on its descriptor alone,
 * then fq_loop_process(). Returns the events. */
static int drive_once(struct drive *d, fq_loop_event *ev, int max)
{
    int ms = -2;
    FQT_OK(fq_loop_timeout(d->l, &ms));
    assert_true(ms >= -1);
    if (ms < 0 || ms > LONG_MS)
        ms = LONG_MS;
    struct pollfd p = {d->fd, POLLIN, 0};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    assert_true(r >= 0);
    d->polls++;
    if (r > 0)
        d->readable++;
    else
        d->timeouts++;
    int n = fq_loop_process(d->l, ev, max);
    assert_true(n >= 0);
    return n;
}

static void drive_new(struct drive *d)
{
    memset(d, 0, sizeof *d);
    FQT_OK(fq_loop_new(&d->l, NULL));
    d->fd = fq_loop_fd(d->l);
    assert_true(d->fd >= 0);
    assert_int_equal(fq_loop_fd(d->l), d->fd); /* one, for good */
    int fl = fcntl(d->fd, F_GETFD);
    assert_true(fl >= 0 && (fl & FD_CLOEXEC));
}

/* Sleeps far longer than any test waits. */
static int job_sleep(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    struct timespec ts = {60, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

static int job_crash(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    raise(SIGKILL);
    return 0;
}

static int echo_main(fq_channel ch, void *arg)
{
    (void)arg;
    fq_msg m;
    while (fq_channel_recv(ch, &m, -1) > 0) {
        int rc = fq_channel_send(ch, m.data, m.len);
        fq_msg_free(&m);
        if (rc)
            break;
    }
    return 0;
}

/* A job over its time limit is killed, and its outcome reported, though
 * only the outside loop runs: the timeout it asks for covers the limit. */
static void test_time_limit_enforced(void **state)
{
    (void)state;
    struct drive d;
    drive_new(&d);
    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_loop_add_queue(d.l, q, NULL));
    fq_job_options jo;
    memset(&jo, 0, sizeof jo);
    jo.timeout_ms = 300;
    uint64_t id;
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_submit(q, job_sleep, NULL, 0, &jo, &id));
    int ms = -2;
    FQT_OK(fq_loop_timeout(d.l, &ms));
    assert_true(ms >= 0 && ms <= 300); /* the limit is a deadline */
    fq_loop_event ev[4];
    int n = 0;
    while (n == 0) {
        n = drive_once(&d, ev, 4);
        assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
    }
    int64_t took = fqp_now_ms() - t0;
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, FQ_LOOP_QUEUE);
    fq_result r;
    FQT_EQ(fq_take(q, &r), 1);
    assert_true(r.id == id);
    FQT_EQ(r.status, FQ_ETIMEDOUT);
    assert_true(took >= 290);
    assert_true(took < 5000);
    FQT_OK(fq_loop_free(d.l));
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

/* Two queues (one ordered), a channel and a timer through one descriptor:
 * every outcome, message and the timer arrive; the outside poll never
 * waits out the long cap. Crashing jobs replace workers meanwhile (their
 * descriptor numbers are reused: the set must follow). */
static void test_drive_many(void **state)
{
    (void)state;
    enum { JOBS = 600, CRASH_EVERY = 150, MSGS = 50 };
    struct drive d;
    drive_new(&d);
    fq_queue q[2] = {fqt_queue(2, 0), fqt_queue(1, 1)};
    fq_channel ch;
    FQT_OK(fq_channel_start(&ch, echo_main, NULL, NULL));
    for (int i = 0; i < 2; i++)
        FQT_OK(fq_loop_add_queue(d.l, q[i], &q[i]));
    FQT_OK(fq_loop_add_channel(d.l, ch, &ch));
    uint64_t tid;
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_loop_timer(d.l, 100, NULL, NULL, &tid));

    int submitted = 0, outcomes = 0, crashes = 0, msgs_out = 0, msgs_in = 0;
    int timer_seen = 0;
    uint64_t sum = 0, want = 0;
    while (outcomes < JOBS || msgs_in < MSGS || !timer_seen) {
        /* Feed a little at a time, as an application would. */
        for (int k = 0; k < 20 && submitted < JOBS; k++, submitted++) {
            fq_queue h = q[submitted % 2];
            if (submitted % CRASH_EVERY == CRASH_EVERY - 1) {
                FQT_OK(fq_submit(h, job_crash, NULL, 0, NULL, NULL));
            } else {
                fqt_submit_square(h, (uint64_t)submitted);
                want += fqt_square((uint64_t)submitted);
            }
        }
        if (msgs_out < MSGS && msgs_out == msgs_in) {
            FQT_OK(fq_channel_send(ch, &msgs_out, sizeof msgs_out));
            msgs_out++;
        }
        fq_loop_event ev[8];
        int n = drive_once(&d, ev, 8);
        for (int k = 0; k < n; k++) {
            if (ev[k].type == FQ_LOOP_TIMER) {
                assert_true(ev[k].id == tid);
                assert_true(fqp_now_ms() - t0 >= 100);
                timer_seen = 1;
            } else if (ev[k].type == FQ_LOOP_CHANNEL) {
                assert_int_equal(ev[k].flags, 0);
                fq_msg m;
                while (fq_channel_recv(ch, &m, 0) == 1) {
                    int v;
                    assert_int_equal(m.len, sizeof v);
                    memcpy(&v, m.data, sizeof v);
                    assert_int_equal(v, msgs_in);
                    msgs_in++;
                    fq_msg_free(&m);
                }
            } else {
                assert_int_equal(ev[k].type, FQ_LOOP_QUEUE);
                fq_queue h = *(fq_queue *)ev[k].udata;
                fq_result r;
                while (fq_take(h, &r) == 1) {
                    if (r.status == FQ_ECRASHED)
                        crashes++;
                    else
                        sum += fqt_u64(&r);
                    outcomes++;
                }
            }
        }
        assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
    }
    assert_int_equal(outcomes, JOBS);
    assert_int_equal(crashes, JOBS / CRASH_EVERY);
    assert_true(sum == want);
    assert_int_equal(d.timeouts >= 1, 1); /* the timer's, at least */
    assert_true(d.readable > 0);

    /* Idle now: nothing due, and the descriptor goes quiet (a worker may
     * still send the copy of a result already taken from its shared page:
     * processed, it reports nothing), never readable for good. */
    int quiet = 0;
    for (int round = 0; round < 20 && !quiet; round++) {
        int ms = -2;
        FQT_OK(fq_loop_timeout(d.l, &ms));
        assert_int_equal(ms, -1);
        struct pollfd p = {d.fd, POLLIN, 0};
        quiet = poll(&p, 1, 100) == 0;
        fq_loop_event ev[8];
        FQT_EQ(fq_loop_process(d.l, ev, 8), 0);
    }
    assert_true(quiet);

    FQT_OK(fq_loop_free(d.l));
    FQT_OK(fq_channel_close(ch));
    FQT_OK(fq_channel_wait(ch, NULL, LONG_MS));
    FQT_OK(fq_channel_free(ch));
    for (int i = 0; i < 2; i++)
        FQT_OK(fq_queue_free(q[i]));
    fqt_assert_no_children();
}

/* A wake-up makes the descriptor readable; processing it clears it. A
 * ready outcome left untaken keeps the timeout at 0. */
static void test_fd_wakeup_and_pending(void **state)
{
    (void)state;
    struct drive d;
    drive_new(&d);
    struct pollfd p = {d.fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 0);
    FQT_OK(fq_loop_wakeup(d.l));
    assert_int_equal(poll(&p, 1, LONG_MS), 1);
    fq_loop_event ev[4];
    FQT_EQ(fq_loop_process(d.l, ev, 4), 1);
    assert_int_equal(ev[0].type, FQ_LOOP_WAKEUP);
    int ms = -2;
    FQT_OK(fq_loop_timeout(d.l, &ms));
    assert_int_equal(ms, -1);
    assert_int_equal(poll(&p, 1, 0), 0);

    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_loop_add_queue(d.l, q, NULL));
    fqt_submit_square(q, 3);
    int n = 0;
    while (n == 0)
        n = drive_once(&d, ev, 4);
    assert_int_equal(ev[0].type, FQ_LOOP_QUEUE);
    /* Not taken: still ready, so the loop asks not to wait. */
    FQT_OK(fq_loop_timeout(d.l, &ms));
    assert_int_equal(ms, 0);
    fq_result r;
    FQT_EQ(fq_take(q, &r), 1);
    FQT_OK(fq_loop_timeout(d.l, &ms));
    assert_int_equal(ms, -1);
    FQT_OK(fq_loop_free(d.l));
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

/* Sleeps until cancelled (a thread worker cannot be killed) or 60 s. */
static int job_sleep_cooperative(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    for (int i = 0; i < 6000 && !fq_ctx_cancelled(ctx); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* The other worker kinds through the outside loop: workers forked by the
 * fork server (their deaths relayed by the helper) and thread workers.
 * Results and a time limit arrive through the descriptor and timeout. */
static void test_worker_kinds(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        struct drive d;
        drive_new(&d);
        fq_options o;
        memset(&o, 0, sizeof o);
        o.workers = 2;
        if (kind == 0)
            o.fork_server = 1;
        else
            o.kind = FQ_WORKER_THREAD;
        fq_queue q = fqt_queue_opts(&o);
        FQT_OK(fq_loop_add_queue(d.l, q, NULL));
        fq_job_options jo;
        memset(&jo, 0, sizeof jo);
        jo.timeout_ms = 200;
        uint64_t slow;
        FQT_OK(fq_submit(q, job_sleep_cooperative, NULL, 0, &jo, &slow));
        enum { N = 300 };
        uint64_t want = 0, sum = 0;
        for (uint64_t i = 0; i < N; i++) {
            fqt_submit_square(q, i);
            want += fqt_square(i);
        }
        int64_t t0 = fqp_now_ms();
        int got = 0, timedout = 0;
        while (got < N + 1) {
            fq_loop_event ev[4];
            int n = drive_once(&d, ev, 4);
            for (int k = 0; k < n; k++) {
                assert_int_equal(ev[k].type, FQ_LOOP_QUEUE);
                fq_result r;
                while (fq_take(q, &r) == 1) {
                    got++;
                    if (r.id == slow) {
                        FQT_EQ(r.status, FQ_ETIMEDOUT);
                        timedout = 1;
                    } else {
                        sum += fqt_u64(&r);
                    }
                }
            }
            assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
        }
        assert_true(timedout);
        assert_true(sum == want);
        FQT_OK(fq_loop_free(d.l));
        FQT_OK(fq_queue_free(q));
    }
    FQT_OK(fq_forkserver_stop());
    fqt_assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_time_limit_enforced),
        FQT_TEST(test_drive_many),
        FQT_TEST(test_fd_wakeup_and_pending),
        FQT_TEST(test_worker_kinds),
    };
    return FQT_RUN(tests);
}
