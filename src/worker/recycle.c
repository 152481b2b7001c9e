/*
 * Recycling by memory, the worker's side: a worker measures its own peak
 * resident size and, once it is over fq_options.max_rss, raises a flag in
 * its status page. The parent (queue/recycle.c) then retires it: it takes
 * back the jobs the worker has not started and forks a replacement.
 *
 * The measure is getrusage()'s ru_maxrss: one system call, no /proc read,
 * and a peak, so a job that allocates and frees between two measures is
 * still seen. It is taken at most once per FQ__RSS_CHECK_NS (tiny jobs
 * stream at millions a second: a system call each would cost more than the
 * jobs): after a job that started that long after the last measure (its
 * start time stands for the clock, so a job costs one comparison), and
 * before the worker blocks for more work, if a job ran since the last
 * measure and the time has come (one clock read per wait).
 */
#include <sys/resource.h>

#include "worker/worker.h"

#define FQ__RSS_CHECK_NS INT64_C(1000000)

static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0 || ru.ru_maxrss < 0)
        return 0;
#ifdef __APPLE__
    return (uint64_t)ru.ru_maxrss; /* bytes there */
#else
    return (uint64_t)ru.ru_maxrss * 1024; /* KiB on Linux and the BSDs */
#endif
}

/* The worker's own: when it may measure next, and whether a job ran since
 * the last measure. Process workers only (threads never measure), so
 * plain statics of the worker's process. */
static int64_t next_ns;
static int dirty;

static int measure(fq__wstat *st, int64_t now)
{
    dirty = 0;
    next_ns = now + FQ__RSS_CHECK_NS;
    if (peak_rss_bytes() <= st->max_rss)
        return 0;
    atomic_store_explicit(&st->over_rss, 1, memory_order_release);
    return 1;
}

int fq__rss_after_job(fq__wstat *st, int64_t job_start_ns)
{
    if (atomic_load_explicit(&st->over_rss, memory_order_relaxed))
        return 0;
    /* The job's start time, already read, stands for the clock. */
    if (job_start_ns < next_ns) {
        dirty = 1;
        return 0;
    }
    return measure(st, job_start_ns);
}

int fq__rss_before_wait(fq__wstat *st)
{
    if (!dirty || atomic_load_explicit(&st->over_rss, memory_order_relaxed))
        return 0;
    int64_t now = fq__now_ns();
    return now < next_ns ? 0 : measure(st, now);
}
