/*
 * Helpers shared by the loop object's tests (test_loop_object.c,
 * test_loop_sources.c): jobs and channel children that wait for the test,
 * waits on a loop that check what it reports (whether a thread is blocked:
 * fqt_thread_sleeping() in fq_test.h).
 */
#ifndef FQ_LOOP_TEST_H
#define FQ_LOOP_TEST_H

#include "fq_test.h"

/* Long enough that returning before it can only be the event under test. */
#define LONG_MS 20000

/* A job that replies `value` once a byte arrives on `rd` (a pipe made
 * before the queue, so its workers have it). */
typedef struct byte_arg {
    int rd;
    uint64_t value;
} byte_arg;

static inline int job_after_byte(fq_ctx *ctx, const void *arg, size_t len)
{
    byte_arg a;
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(&a, arg, sizeof a);
    char c;
    if (fqt_read_all(a.rd, &c, 1) != 0)
        return fq_fail(ctx, 97, "pipe closed");
    return fq_reply(ctx, &a.value, sizeof a.value) == 0 ? 0 : 100;
}

static inline void submit_after_byte(fq_queue q, int rd, uint64_t value)
{
    byte_arg a;
    memset(&a, 0, sizeof a); /* no uninitialised padding sent */
    a.rd = rd;
    a.value = value;
    FQT_OK(fq_submit(q, job_after_byte, &a, sizeof a, NULL, NULL));
}

/* A channel child that echoes every message until "end" or the end of the
 * stream. */
static inline int echo_main(fq_channel ch, void *arg)
{
    (void)arg;
    for (;;) {
        fq_msg m;
        if (fq_channel_recv(ch, &m, -1) <= 0)
            return 0;
        int end = m.len == 3 && memcmp(m.data, "end", 3) == 0;
        if (!end && fq_channel_send(ch, m.data, m.len) != 0)
            end = 1;
        fq_msg_free(&m);
        if (end)
            return 0;
    }
}

/* Waits until the loop reports something (or ms pass); returns how many. */
static inline int wait_some(fq_loop *l, fq_loop_event *ev, int max, int ms)
{
    int64_t end = fqp_now_ms() + ms;
    for (;;) {
        int64_t left = end - fqp_now_ms();
        int n = fq_loop_wait(l, ev, max, left > 0 ? (int)left : 0);
        assert_true(n >= 0);
        if (n > 0 || left <= 0)
            return n;
    }
}

/* Waits for exactly one event and checks its source. */
static inline fq_loop_event expect_one(fq_loop *l, int type, uint64_t id)
{
    fq_loop_event ev[8];
    int n = wait_some(l, ev, 8, LONG_MS);
    if (n != 1 || ev[0].type != type || ev[0].id != id)
        print_error("got %d events, first type %d id %" PRIu64
                    ", want type %d id %" PRIu64 "\n",
                    n, n > 0 ? ev[0].type : 0, n > 0 ? ev[0].id : 0, type, id);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, type);
    assert_true(ev[0].id == id);
    return ev[0];
}

/* Nothing to report now. */
static inline void expect_none(fq_loop *l)
{
    fq_loop_event ev[8];
    FQT_EQ(fq_loop_wait(l, ev, 8, 0), 0);
}

#endif
