/*
 * Public channels (chan_public.c) and the exchange (exchange.c): the parts
 * the rest of the core and the exchange need.
 */
#ifndef FQ_CHAN_PUBLIC_H
#define FQ_CHAN_PUBLIC_H

#include <sys/types.h>

#include "channel.h"
#include "forkqueue.h"

/* worker.c: the hygiene of every forked child, run first in the child with
 * every signal blocked: dispositions reset, parent_end and every inherited
 * descriptor of queues and channels closed, own process group, PDEATHSIG,
 * and _exit() if the parent is already gone. */
void fq__child_hygiene(int parent_end, pid_t parent);

/* In a freshly forked child (one thread, no lock needed): closes the
 * descriptors of every channel and orphan inherited from the parent and
 * forgets them, so that inherited handles answer FQ_ECLOSED. */
void fq__chan_forget_inherited(void);

/* For the exchange: the channel's descriptor, or -1 when closed; whether
 * recv would return at once; the child's pid and whether it was reaped. */
typedef struct fq__chan_info {
    int fd;    /* -1 once closed */
    int pidfd; /* -1: none (or reaped) */
    int ready; /* fq_channel_ready() */
    int ended; /* nothing more to receive: end of stream with nothing
                  buffered, a sticky error, or closed */
    pid_t pid;
    int reaped;
} fq__chan_info;

int fq__chan_info_get(fq_channel ch, fq__chan_info *info);

/* Reads what the descriptor has (once, without waiting) into the channel's
 * buffer, so that fq_channel_ready() and `ended` see it. */
int fq__chan_fill(fq_channel ch);

/* Reaps the children of freed channels that have ended (never blocks). */
void fq__chan_reap_orphans(void);

#endif
