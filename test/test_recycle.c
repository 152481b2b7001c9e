/*
 * Worker recycling: retirement after max_jobs_per_worker jobs and when a
 * worker's resident memory passes max_rss. Every job gets exactly one
 * outcome and runs exactly once (runs are counted in shared memory), jobs
 * queued behind the job that grew the worker move to its replacement, and
 * fq_stats counts the retirements.
 */
#include <sys/resource.h>

#include "fq_test.h"

#define NJOBS 400

typedef struct shared {
    _Atomic unsigned runs[NJOBS];
    _Atomic int pid[NJOBS];
} shared;

static shared *sh; /* mapped before the queue, so workers share it */

static void sh_new(void)
{
    sh = fqt_shared_new(sizeof *sh);
}

static void sh_free(void)
{
    fqt_shared_free(sh, sizeof *sh);
    sh = NULL;
}

typedef struct job_arg {
    uint32_t idx;
    uint32_t grow_mib; /* allocate and keep this much (a leak) */
    uint32_t sleep_us;
} job_arg;

static void *leaked; /* per worker: what the growing job keeps */

static int job_count(fq_ctx *ctx, const void *arg, size_t len)
{
    job_arg a;
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument");
    memcpy(&a, arg, sizeof a);
    atomic_fetch_add(&sh->runs[a.idx], 1);
    atomic_store(&sh->pid[a.idx], (int)getpid());
    if (a.grow_mib) {
        size_t n = (size_t)a.grow_mib << 20;
        char *p = malloc(n);
        if (!p)
            return fq_fail(ctx, 98, "no memory");
        memset(p, 1, n);
        *(void **)p = leaked;
        leaked = p;
    }
    if (a.sleep_us) {
        struct timespec ts = {0, (long)a.sleep_us * 1000};
        nanosleep(&ts, NULL);
    }
    return fq_reply(ctx, &a.idx, sizeof a.idx) == 0 ? 0 : 100;
}

/* Result: the worker's peak resident size in bytes. */
static int job_peak(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t b = (uint64_t)ru.ru_maxrss * 1024;
    return fq_reply(ctx, &b, sizeof b) == 0 ? 0 : 100;
}

static uint64_t worker_peak(void)
{
    fq_queue q = fqt_queue(1, 0);
    fq_result r;
    FQT_OK(fq_submit(q, job_peak, NULL, 0, NULL, NULL));
    assert_int_equal(fqt_take_wait(q, &r, 20000), 1);
    uint64_t b = fqt_u64(&r);
    FQT_OK(fq_queue_free(q));
    return b;
}

static void submit(fq_queue q, uint32_t idx, uint32_t grow, uint32_t sleep_us)
{
    job_arg a = {idx, grow, sleep_us};
    fq_job_options jo = {.id = idx, .flags = FQ_JOB_ID};
    FQT_OK(fq_submit(q, job_count, &a, sizeof a, &jo, NULL));
}

/* Takes n outcomes: each id once, each a success, each run exactly once. */
static void take_all_once(fq_queue q, int n)
{
    unsigned char seen[NJOBS] = {0};
    for (int i = 0; i < n; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
        if (r.status != 0)
            print_error("job %" PRIu64 ": %s %s\n", r.id, fq_err_name(r.status),
                        (const char *)r.data);
        assert_int_equal(r.status, 0);
        assert_true(r.id < (uint64_t)n);
        assert_int_equal(seen[r.id], 0);
        seen[r.id] = 1;
    }
    FQT_OK(fq_wait(q, 0));
    fqt_assert_ran_once(sh->runs, n);
}

/* max_jobs_per_worker: a worker runs exactly that many, then is replaced;
 * the retirements are counted. */
static void test_max_jobs_counted(void **state)
{
    (void)state;
    sh_new();
    fq_options o = {0};
    o.workers = 1;
    o.max_jobs_per_worker = 10;
    fq_queue q = fqt_queue_opts(&o);
    for (uint32_t i = 0; i < 35; i++)
        submit(q, i, 0, 0);
    take_all_once(q, 35);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.recycled, 3); /* after jobs 10, 20 and 30 */
    assert_int_equal(st.respawns, 3);
    /* 10 jobs per worker pid */
    for (int k = 0; k < 3; k++)
        for (int i = 1; i < 10; i++)
            assert_int_equal(atomic_load(&sh->pid[10 * k + i]),
                             atomic_load(&sh->pid[10 * k]));
    FQT_OK(fq_queue_free(q));
    sh_free();
}

/* A job that grows its worker past max_rss retires it: the jobs queued
 * behind it (not started) move to the replacement and run once. */
static void test_rss_moves_queued_jobs(void **state)
{
    (void)state;
    uint64_t base = worker_peak();
    sh_new();
    fq_options o = {0};
    o.workers = 1;
    o.inflight = 16;
    o.max_rss = base + (48u << 20);
    fq_queue q = fqt_queue_opts(&o);
    pid_t first[1];
    assert_int_equal(fq_worker_pids(q, first, 1), 1);
    submit(q, 0, 96, 0);
    for (uint32_t i = 1; i < 16; i++)
        submit(q, i, 0, 3000); /* 3 ms each: queued behind job 0 */
    take_all_once(q, 16);
    assert_int_equal(atomic_load(&sh->pid[0]), first[0]);
    /* The old worker may have started the job after job 0 before the
     * parent retired it; the last ones ran in its replacement. */
    assert_int_not_equal(atomic_load(&sh->pid[15]), first[0]);
    int moved = 0;
    for (int i = 1; i < 16; i++)
        moved += atomic_load(&sh->pid[i]) != first[0];
    assert_true(moved >= 12);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.recycled, 1);
    assert_true(st.respawns >= 1);
    assert_int_equal(st.finished, 16);
    /* The retired worker is reaped (driving the queue), its replacement
     * stays. */
    pid_t now[2];
    int64_t end = fqp_now_ms() + 20000;
    while (fq_worker_pids(q, now, 2) != 1 && fqp_now_ms() < end)
        assert_true(fq_poll(q, 10) >= 0);
    assert_int_equal(fq_worker_pids(q, now, 2), 1);
    assert_int_not_equal(now[0], first[0]);
    FQT_OK(fq_queue_free(q));
    sh_free();
}

/* Several workers, some jobs growing memory among many small ones, ordered
 * and unordered: one outcome and one run per job; retirements counted. */
static void run_mixed(int ordered)
{
    uint64_t base = worker_peak();
    sh_new();
    fq_options o = {0};
    o.workers = 2;
    o.ordered = ordered;
    o.max_rss = base + (32u << 20);
    fq_queue q = fqt_queue_opts(&o);
    int grown = 0;
    for (uint32_t i = 0; i < NJOBS; i++) {
        int grow = i % 80 == 7;
        grown += grow;
        submit(q, i, grow ? 40 : 0, i % 10 == 0 ? 500 : 0);
    }
    if (ordered) {
        for (uint64_t i = 0; i < NJOBS; i++) {
            fq_result r;
            assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
            assert_int_equal(r.id, i);
            assert_int_equal(r.status, 0);
        }
        fqt_assert_ran_once(sh->runs, NJOBS);
    } else {
        take_all_once(q, NJOBS);
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    /* A worker may run a second growing job before it is retired. */
    assert_true(st.recycled >= 1 && st.recycled <= (uint64_t)grown);
    assert_true(st.respawns >= st.recycled);
    assert_int_equal(st.finished, NJOBS);
    FQT_OK(fq_queue_free(q));
    sh_free();
}

static void test_rss_mixed_unordered(void **state)
{
    (void)state;
    run_mixed(0);
}

static void test_rss_mixed_ordered(void **state)
{
    (void)state;
    run_mixed(1);
}

/* A limit every worker is over after its first job: each worker runs one
 * job (or the few it started before the parent noticed) and is replaced;
 * still one outcome and one run per job. */
static void test_rss_storm(void **state)
{
    (void)state;
    sh_new();
    fq_options o = {0};
    o.workers = 2;
    o.max_rss = 1;
    fq_queue q = fqt_queue_opts(&o);
    for (uint32_t i = 0; i < 60; i++)
        submit(q, i, 0, 0);
    take_all_once(q, 60);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.recycled >= 2);
    FQT_OK(fq_queue_free(q));
    sh_free();
}

/* The thread kind ignores max_rss (a thread's memory is the process's). */
static void test_rss_ignored_by_threads(void **state)
{
    (void)state;
    sh_new();
    fq_options o = {0};
    o.workers = 2;
    o.kind = FQ_WORKER_THREAD;
    o.max_rss = 1;
    fq_queue q = fqt_queue_opts(&o);
    for (uint32_t i = 0; i < 50; i++)
        submit(q, i, 0, 0);
    take_all_once(q, 50);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.recycled, 0);
    assert_int_equal(st.respawns, 0);
    FQT_OK(fq_queue_free(q));
    sh_free();
}

static void test_no_children_left(void **state)
{
    (void)state;
    fqt_assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_max_jobs_counted),
        FQT_TEST(test_rss_moves_queued_jobs),
        FQT_TEST(test_rss_mixed_unordered),
        FQT_TEST(test_rss_mixed_ordered),
        FQT_TEST(test_rss_storm),
        FQT_TEST(test_rss_ignored_by_threads),
        FQT_TEST(test_no_children_left),
    };
    return FQT_RUN(tests);
}
