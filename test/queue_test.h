/* Helpers shared by the queue tests (test_queue_*.c). */
#ifndef FQ_QUEUE_TEST_H
#define FQ_QUEUE_TEST_H

#include "fq_test.h"

#include <pthread.h>
#include <sys/time.h>

#define MAXJ 4096

/* Takes `n` outcomes (waiting up to 30 s in all) into out[]. */
static inline void take_n(fq_queue q, fq_result *out, int n)
{
    for (int i = 0; i < n; i++) {
        fq_result r;
        int rc = fqt_take_wait(q, &r, 30000);
        if (rc != 1)
            print_error("outcome %d of %d: take returned %d\n", i, n, rc);
        assert_int_equal(rc, 1);
        out[i] = r;
        out[i].data = NULL; /* only valid until the next take */
        if (r.status == 0 && r.len == sizeof(uint64_t)) {
            static uint64_t vals[MAXJ];
            memcpy(&vals[i % MAXJ], r.data, sizeof(uint64_t));
            out[i].data = &vals[i % MAXJ];
        }
    }
}

/* Argument: {sleep microseconds, value}; result: value. */
static inline int job_sleep_value(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t a[2];
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(a, arg, sizeof a);
    if (a[0]) {
        struct timespec ts = {(time_t)(a[0] / 1000000),
                              (long)(a[0] % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return fq_reply(ctx, &a[1], sizeof a[1]) == 0 ? 0 : 100;
}

/* Takes the next outcome (waiting up to 30 s): a success of exactly len
 * bytes, copied to out. */
static inline void take_ok(fq_queue q, void *out, size_t len)
{
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, len);
    memcpy(out, r.data, len);
}

#endif
