/* Helpers shared by the job handle tests (test_job_*.c): a callback that
 * counts its calls and records the outcome, submitting a square or a gated
 * job with it, the status of a handle's outcome. */
#ifndef FQ_JOB_TEST_H
#define FQ_JOB_TEST_H

#include <pthread.h>
#include <stdatomic.h>

#include "fq_test.h"

#include "worker/kind.h" /* FQ__WORKER_PROCESS_WIRE: a kind without page */

/* Counts the calls for each handle it is given, and remembers the status
 * the outcome had when the callback ran. */
typedef struct cb_rec {
    _Atomic int calls;
    int status;
    uint64_t value;
    pthread_t thread;
} cb_rec;

static inline void cb_count(fq_job *job, void *arg)
{
    cb_rec *r = arg;
    fq_result res;
    atomic_fetch_add(&r->calls, 1);
    r->thread = pthread_self();
    if (fq_job_result(job, &res) == 0) {
        r->status = res.status;
        if (res.status == 0 && res.len == sizeof(uint64_t))
            memcpy(&r->value, res.data, sizeof r->value);
    } else {
        r->status = 1; /* no outcome in the callback: a bug */
    }
}

/* Submits fn(arg) through a handle, with cb_count on rec as its callback
 * when rec is not NULL. */
static inline fq_job *submit_with(fq_queue q, fq_job_fn fn, const void *arg,
                                  size_t len, cb_rec *rec)
{
    fq_job_options o;
    memset(&o, 0, sizeof o);
    o.callback = rec ? cb_count : NULL;
    o.callback_arg = rec;
    fq_job *j = NULL;
    FQT_OK(fq_job_submit(q, fn, arg, len, &o, &j));
    assert_non_null(j);
    return j;
}

static inline fq_job *submit_square(fq_queue q, uint64_t x, cb_rec *rec)
{
    return submit_with(q, fqt_job_square, &x, sizeof x, rec);
}

static inline fq_job *submit_gate(fq_queue q, const fqt_gate *g, uint64_t v,
                                  int ignore_term, cb_rec *rec)
{
    fqt_gate_arg a = fqt_gate_arg_of(g, v);
    a.ignore_term = ignore_term;
    return submit_with(q, fqt_job_gate, &a, sizeof a, rec);
}

static inline int job_status(const fq_job *j)
{
    fq_result r;
    FQT_OK(fq_job_result(j, &r));
    fqt_assert_msg(&r);
    return r.status;
}

/* A queue of one worker of the given kind (0: processes), with at most
 * `inflight` jobs in flight (0: the default) and a grace period of
 * grace_ms. */
static inline fq_queue one_worker(int kind, int inflight, int grace_ms)
{
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.kind = kind;
    o.inflight = inflight;
    o.grace_ms = grace_ms;
    return fqt_queue_opts(&o);
}

#endif
