/*
 * Private to the queue layer: what its files (queue.c, dispatch.c,
 * collect.c, death.c) share beyond core/internal.h.
 */
#ifndef FQ_QUEUE_H
#define FQ_QUEUE_H

#include "core/internal.h"

/* Jobs a worker can have in flight at most. */
#define FQ__MAX_INFLIGHT FQ__RING

/* collect.c */
void fq__job_free(fq__job *j);
/* dispatch.c */
int fq__active_workers(const fq__queue *q);
int fq__add_worker(fq__queue *q);

#endif
