/*
 * Wake-up pairs (loop/wakeup.c): an eventfd, or a pipe, that makes a poll
 * return; a queue's pair is published for fq_wakeup().
 */
#ifndef FQ_LOOP_WAKE_H
#define FQ_LOOP_WAKE_H

#include "core/internal.h"

/* loop/wakeup.c: wake-up pairs (an eventfd, rd == wr, or a pipe), on the
 * core's descriptor list; signal is async-signal-safe and keeps errno. */
int fq__wake_pair_open(int *rd, int *wr);
void fq__wake_pair_close(int rd, int wr);
void fq__wake_pair_drain(int rd, int wr);
int fq__wake_pair_signal(int wr, int is_eventfd);
/* A queue's pair, for fq_wakeup(). */
int fq__wake_open(fq__queue *q);
/* After fq__handle_add(): makes the queue reachable by fq_wakeup(). */
void fq__wake_publish(fq__queue *q);
/* fq_wakeup() no longer finds the queue (FQ_ECLOSED); idempotent. */
void fq__wake_unpublish(fq__queue *q);
/* Unpublishes, then closes the descriptors. */
void fq__wake_close(fq__queue *q);
void fq__wake_drain(fq__queue *q);
int fq__wake_signal(fq__queue *q);

#endif
