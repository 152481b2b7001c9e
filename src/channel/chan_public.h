/*
 * Public channels (chan_public.c) and the exchange (exchange.c): the parts
 * the rest of the core and the exchange need.
 */
#ifndef FQ_CHAN_PUBLIC_H
#define FQ_CHAN_PUBLIC_H

#include <stdint.h>
#include <sys/types.h>

#include "transport/channel.h"
#include "forkqueue.h"

/* channel/child.c: the hygiene of every forked child, run first in the child
 * with every signal blocked: dispositions reset, parent_end and every inherited
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

/* ---- shared by chan_public.c and chan_msg.c ------------------------------ */

enum {
    FQ__CH_EOF = 1 << 0,     /* the peer's end is closed */
    FQ__CH_DRAINED = 1 << 1, /* the last read emptied the socket: poll first */
};

typedef struct fq__chan {
    uint32_t id;
    pid_t owner; /* the process holding this end */
    pid_t pid;   /* the child (parent's end), 0 (child's end) */
    int fd;      /* -1 once closed */
    int pidfd;   /* -1: none */
    /* Separate fields for what the sending side, the receiving side and a
     * wait touch, so that they may run in different threads. */
    unsigned flags; /* receiving side */
    int wshut;      /* a send was interrupted midway: no more sends */
    int reaped;     /* the child was reaped (wstatus is valid) */
    int err;        /* sticky receive error */
    int wstatus;
    int eintr;
    uint64_t max_msg;
    fq__rbuf rb;
    unsigned char *big; /* a large message being read, or NULL */
    size_t big_have, big_len;
    /* Parent's end: where the child's fq_channel_log() records go. */
    fq_log_fn log;
    void *log_arg;
} fq__chan;

/* The channel of a handle owned by this process: 0, FQ_EINVAL, FQ_ECLOSED. */
int fq__chan_get(fq_channel h, fq__chan **cp);

/* Deadlines in CLOCK_MONOTONIC ns (-1: none) and what is left of one in
 * ms for poll() (-1: none, 0: passed). */
int64_t fq__deadline_of(int timeout_ms);
int fq__remaining_ms(int64_t deadline);

/* Waits for events on fd until the deadline. Returns 0 when ready,
 * FQ_ETIMEDOUT, FQ_EINTR (with eintr) or FQ_ESYS. */
int fq__wait_fd(int fd, short events, int64_t deadline, int eintr);

/* child.c: fq__child_hygiene() keeping one worker descriptor, a new
 * worker's own end of its channel. */
void fq__child_hygiene_keep(int parent_end, int keep, pid_t parent);

#endif
