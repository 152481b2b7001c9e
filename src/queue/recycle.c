/*
 * Recycling by memory, the parent's side (the worker's is
 * worker/recycle.c): a worker over fq_options.max_rss raises a flag in its
 * status page; here it is retired. It gets no new job, the jobs it has not
 * started are taken back through their claim words (dispatch.c), exactly as
 * for an idle worker, so each runs once, here or elsewhere; and when its
 * last started job is answered, its channel is shut, it exits, and the
 * loop forks its replacement.
 */
#include "queue/queue.h"

void fq__recycle_scan(fq__queue *q)
{
    if (!q->opts.max_rss)
        return;
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        if ((w->flags & (FQ__W_RETIRING | FQ__W_SHUT | FQ__W_EOF |
                         FQ__W_KILLED | FQ__W_PROTO)) ||
            !w->stat ||
            !atomic_load_explicit(&w->stat->over_rss, memory_order_acquire))
            continue;
        w->flags |= FQ__W_RETIRING;
        q->st.recycled++;
        fq__revoke_all_unstarted(q, w);
    }
}
