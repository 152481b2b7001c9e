/*
 * Recycling by memory, the worker's side: a worker measures its own peak
 * resident size and, once it is over fq_options.max_rss, raises a flag in
 * its status page. The parent (queue/recycle.c) then retires it: it takes
 * back the jobs the worker has not started and forks a replacement.
 *
 * The measure is getrusage()'s ru_maxrss: one system call, no /proc read,
 * and a peak, so a job that allocates and frees between two measures is
 * still seen. It is taken after a job at most once per FQ__RSS_CHECK_NS
 * (tiny jobs stream at millions a second: a system call each would cost
 * more than the jobs), and before the worker blocks for more work if a job
 * ran since the last measure (a lone job is judged at once; a blocking
 * read costs more than the measure anyway).
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

int fq__rss_check(fq__wstat *st, int before_wait)
{
    if (!st->max_rss ||
        atomic_load_explicit(&st->over_rss, memory_order_relaxed))
        return 0;
    if (before_wait) {
        if (!st->rss_dirty)
            return 0;
    } else {
        st->rss_dirty = 1;
        if (fq__now_ns() < st->rss_next_ns)
            return 0;
    }
    st->rss_dirty = 0;
    st->rss_next_ns = fq__now_ns() + FQ__RSS_CHECK_NS;
    if (peak_rss_bytes() <= st->max_rss)
        return 0;
    atomic_store_explicit(&st->over_rss, 1, memory_order_release);
    return 1;
}
