/* The generic poll loop (src/loop/loop.h), driven by a table of operations
 * of the test's own: it knows nothing of queues, so any owner can use it. */
#include "fq_test.h"

#include "loop/loop.h"

struct owner {
    int closing;
    int maintains, satisfied_after; /* satisfied once maintains >= this */
    int64_t due;                    /* what maintain() returns */
    int fd;                         /* a source, or -1 */
    int events, seen_fd;
    struct pollfd set[4];
};

static int op_closing(void *o)
{
    return ((struct owner *)o)->closing;
}

static int64_t op_maintain(void *o)
{
    struct owner *w = o;
    w->maintains++;
    return w->due;
}

static int op_satisfied(void *o)
{
    struct owner *w = o;
    return w->satisfied_after > 0 && w->maintains >= w->satisfied_after;
}

static int op_sources(void *o, int extra, struct pollfd **pfd)
{
    struct owner *w = o;
    assert_true(extra >= 1 && extra <= 3);
    *pfd = w->set;
    if (w->fd < 0)
        return 0;
    w->set[0] = (struct pollfd){w->fd, POLLIN, 0};
    return 1;
}

static void op_events(void *o, struct pollfd *pfd, int nfd, int n)
{
    struct owner *w = o;
    assert_int_equal(nfd, 1);
    assert_true(n >= 1);
    if (pfd[0].revents & POLLIN) {
        char c;
        assert_int_equal(read(w->fd, &c, 1), 1);
        w->seen_fd++;
        w->satisfied_after = w->maintains + 1;
    }
    w->events++;
}

static const fq__loop_ops ops = {op_closing, op_maintain, op_satisfied,
                                 op_sources, op_events};

static struct owner fresh(void)
{
    struct owner w;
    memset(&w, 0, sizeof(w));
    w.due = INT64_MAX;
    w.fd = -1;
    return w;
}

static void test_nothing_to_wait_for_is_ebusy(void **state)
{
    (void)state;
    struct owner w = fresh();
    assert_int_equal(fq__loop_run(&ops, &w, -1, -1, 0), FQ_EBUSY);
}

static void test_timeout_and_one_pass_at_least(void **state)
{
    (void)state;
    struct owner w = fresh();
    int64_t t0 = fq__now_ns();
    assert_int_equal(fq__loop_run(&ops, &w, 50, -1, 0), FQ_ETIMEDOUT);
    assert_true(fq__now_ns() - t0 >= 50 * 1000000LL);
    assert_true(w.maintains >= 2);
    /* Zero: one pass that does not wait, then the time is up. */
    w = fresh();
    assert_int_equal(fq__loop_run(&ops, &w, 0, -1, 0), FQ_ETIMEDOUT);
    assert_int_equal(w.maintains, 2);
}

static void test_satisfied_after_a_pass(void **state)
{
    (void)state;
    struct owner w = fresh();
    w.satisfied_after = 1; /* already holds: still one pass, no wait */
    assert_int_equal(fq__loop_run(&ops, &w, -1, -1, 0), 0);
    assert_int_equal(w.maintains, 2);
}

static void test_deadline_of_the_owner_ends_the_wait(void **state)
{
    (void)state;
    struct owner w = fresh();
    w.due = fq__now_ns() + 20 * 1000000LL;
    w.satisfied_after = 2; /* the pass after the deadline */
    assert_int_equal(fq__loop_run(&ops, &w, 10000, -1, 0), 0);
    assert_true(fq__now_ns() >= w.due);
}

static void test_events_reported_for_a_ready_source(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct owner w = fresh();
    w.fd = p[0];
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(fq__loop_run(&ops, &w, 10000, -1, 0), 0);
    assert_int_equal(w.seen_fd, 1);
    assert_int_equal(w.events, 1);
    close(p[0]);
    close(p[1]);
}

static void test_wake_fd_returns_one_and_is_left_unread(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct owner w = fresh();
    assert_int_equal(write(p[1], "w", 1), 1);
    assert_int_equal(fq__loop_run(&ops, &w, 10000, p[0], 0), 1);
    assert_int_equal(w.events, 0);
    struct pollfd q = {p[0], POLLIN, 0};
    assert_int_equal(poll(&q, 1, 0), 1); /* the caller drains it */
    close(p[0]);
    close(p[1]);
}

static void test_closing_owner_is_eclosed(void **state)
{
    (void)state;
    struct owner w = fresh();
    w.closing = 1;
    assert_int_equal(fq__loop_run(&ops, &w, -1, -1, 0), FQ_ECLOSED);
    assert_int_equal(w.maintains, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_to_wait_for_is_ebusy),
        cmocka_unit_test(test_timeout_and_one_pass_at_least),
        cmocka_unit_test(test_satisfied_after_a_pass),
        cmocka_unit_test(test_deadline_of_the_owner_ends_the_wait),
        cmocka_unit_test(test_events_reported_for_a_ready_source),
        cmocka_unit_test(test_wake_fd_returns_one_and_is_left_unread),
        cmocka_unit_test(test_closing_owner_is_eclosed),
    };
    return FQT_RUN(tests);
}
