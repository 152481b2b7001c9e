/*
 * The queue's side of the poll loop (loop/loop.h): its sources are the
 * channels and pidfds of its workers; on their events it sends queued jobs,
 * reads and decodes results, notices deaths; between waits it enforces time
 * limits and starts replacement workers. fq__drive() runs the loop with
 * these operations.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fault.h"
#include "loop/loop.h"
#include "queue/queue.h"

#ifdef FQ_FAULT_INJECTION
void (*fq__fault_hook)(int point, long arg);
#endif

/* Payloads at least this big are read straight into their own buffer. */
#define DIRECT_READ (1u << 20)
#define READ_CHUNK (256u * 1024)
#define MAX_IOV 256
/* Jobs of up to STAGE_SMALL bytes (header included) are sent from a
 * buffer of STAGE_BYTES on the stack (fq__flush_worker()). */
#define STAGE_BYTES 16384
#define STAGE_SMALL 512
/* How long a worker that closed its channel may take to exit. */
#define EOF_GRACE_NS INT64_C(1000000000)
/* Without a pidfd, how often a busy worker is asked whether it exited: a
 * process its job started may hold the channel open, so no end of file
 * would tell. */
#define REAP_CHECK_NS INT64_C(250000000)

/* ---- Sending ----------------------------------------------------------- */

/* Sends queued control frames; they go out only between two jobs' frames.
 * Returns 1 when all are sent, 0 if the socket is full, -1 on error. */
static int flush_ctl(fq__worker *w)
{
    while (w->ctl_off < w->ctl_len) {
        struct iovec iov = {w->ctl + w->ctl_off, w->ctl_len - w->ctl_off};
        ssize_t r = fq__send_iov(w->fd, &iov, 1);
        if (r == FQ_ETIMEDOUT)
            return 0;
        if (r < 0) {
            w->flags |= FQ__W_SHUT;
            return -1;
        }
        w->ctl_off += (size_t)r;
    }
    w->ctl_len = w->ctl_off = 0;
    return 1;
}

int fq__worker_send_cancel(fq__worker *w, uint64_t job_id)
{
    fq__job *j = w->head;
    while (j && (j->id != job_id || j->cancel == FQ__CANCEL_GHOST))
        j = j->next;
    if (!j)
        return FQ_EINVAL;
    if (w->flags & (FQ__W_SHUT | FQ__W_EOF))
        return FQ_ECLOSED;
    if (w->ctl_cap - w->ctl_len < FQ__WIRE_HDR) {
        size_t ncap = w->ctl_cap ? w->ctl_cap * 2 : 4 * FQ__WIRE_HDR;
        unsigned char *n = realloc(w->ctl, ncap);
        if (!n)
            return FQ_ENOMEM;
        w->ctl = n;
        w->ctl_cap = ncap;
    }
    fq__frame f = {0};
    f.type = FQ__FRAME_CANCEL;
    f.id = j->id;
    f.wseq = j->wseq;
    fq__frame_encode(&f, w->ctl + w->ctl_len);
    w->ctl_len += FQ__WIRE_HDR;
    fq__flush_worker(w);
    return 0;
}

void fq__flush_worker(fq__worker *w)
{
    /* Control frames first, unless a job is half written: it goes out
     * whole first (alone), then them. */
    if (w->ctl_len && !(w->flags & (FQ__W_SHUT | FQ__W_EOF))) {
        if (w->unsent && w->unsent_off > 0 && w->ctl_off == 0) {
            struct iovec iov = {fq__job_frame(w->unsent, w->unsent_off),
                                FQ__WIRE_HDR + w->unsent->arg_len -
                                    w->unsent_off};
            ssize_t r = fq__send_iov(w->fd, &iov, 1);
            if (r == FQ_ETIMEDOUT)
                return;
            if (r < 0) {
                w->flags |= FQ__W_SHUT;
                return;
            }
            if ((size_t)r < iov.iov_len) {
                w->unsent_off += (size_t)r;
                return;
            }
            w->unsent = w->unsent->next;
            w->unsent_off = 0;
            w->nunsent--;
        }
        if (flush_ctl(w) <= 0)
            return;
    }
    while (w->unsent && !(w->flags & (FQ__W_SHUT | FQ__W_EOF))) {
        /* Small jobs are copied together into one buffer: the kernel's
         * cost per iovec is far above that of copying a few dozen bytes.
         * What a short write leaves is copied again next time. */
        struct iovec iov[MAX_IOV];
        unsigned char stage[STAGE_BYTES];
        size_t used = 0;
        int n = 0, in_stage = 0; /* iov[n - 1] ends the buffer */
        size_t off = w->unsent_off;
        for (fq__job *j = w->unsent; j; j = j->next) {
            const unsigned char *p = fq__job_frame(j, off);
            size_t len = FQ__WIRE_HDR + j->arg_len - off;
            int small = len <= STAGE_SMALL;
            off = 0;
            if (small && used + len <= sizeof(stage)) {
                if (!in_stage) {
                    if (n == MAX_IOV)
                        break;
                    iov[n++] = (struct iovec){stage + used, 0};
                    in_stage = 1;
                }
                memcpy(stage + used, p, len);
                used += len;
                iov[n - 1].iov_len += len;
            } else {
                if (n == MAX_IOV || small)
                    break; /* out of iovecs, or the buffer is full */
                iov[n++] = (struct iovec){(void *)p, len};
                in_stage = 0;
            }
        }
        ssize_t r = fq__send_iov(w->fd, iov, n);
        if (r == FQ_ETIMEDOUT)
            return; /* socket full: POLLOUT will bring us back */
        if (r < 0) {
            /* The worker is gone or going; its death requeues the jobs. */
            w->flags |= FQ__W_SHUT;
            return;
        }
        size_t left = (size_t)r;
        while (w->unsent) {
            size_t rem = FQ__WIRE_HDR + w->unsent->arg_len - w->unsent_off;
            if (left < rem) {
                w->unsent_off += left;
                break;
            }
            left -= rem;
            w->unsent = w->unsent->next;
            w->unsent_off = 0;
            w->nunsent--;
        }
    }
}

/* ---- Receiving --------------------------------------------------------- */

static void proto_error(fq__worker *w)
{
    w->flags |= FQ__W_PROTO | FQ__W_EOF;
    w->eof_deadline = fq__now_ns() + EOF_GRACE_NS;
    w->ops->signal(w, SIGKILL);
}

static void saw_eof(fq__worker *w)
{
    if (!(w->flags & FQ__W_EOF)) {
        w->flags |= FQ__W_EOF;
        w->eof_deadline = fq__now_ns() + EOF_GRACE_NS;
    }
}

/* Continues a payload that is being read into its own buffer (or dropped,
 * when it could not be kept). Returns 1 if progress, 0 if no data, -1 at
 * EOF or error. */
static int read_direct(fq__queue *q, fq__worker *w)
{
    uint64_t want = w->direct_len - w->direct_have;
    ssize_t n;

    if (w->direct_buf) {
        n = read(w->fd, w->direct_buf + w->direct_have, (size_t)want);
    } else {
        if (fq__rbuf_reserve(&w->rb, READ_CHUNK) < 0)
            return -1;
        n = read(w->fd, w->rb.buf, want < w->rb.cap ? (size_t)want : w->rb.cap);
    }
    if (n < 0) {
        if (errno == EINTR)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;
    }
    if (n == 0)
        return -1;
    w->direct_have += (uint64_t)n;
    if (w->direct_have == w->direct_len) {
        void *buf = w->direct_buf;
        w->direct_buf = NULL;
        if (fq__deliver(q, w, &w->direct_frame, buf, NULL, w->direct_status) <
            0)
            proto_error(w);
        else
            w->rx += FQ__WIRE_HDR + w->direct_len;
    }
    return 1;
}

/* Starts a direct read of a large payload whose header is buffered. */
static void start_direct(fq__queue *q, fq__worker *w, const fq__frame *f)
{
    size_t have = w->rb.end - w->rb.start - FQ__WIRE_HDR;

    w->direct_frame = *f;
    w->direct_len = f->len;
    w->direct_have = have;
    w->direct_status = 0;
    if (f->status == 0 && q->opts.max_result_bytes &&
        f->len > q->opts.max_result_bytes) {
        w->direct_status = FQ_ETOOBIG;
        w->direct_buf = NULL;
    } else if (f->len >= SIZE_MAX ||
               !(w->direct_buf = malloc((size_t)f->len + 1))) {
        w->direct_status = FQ_ENOMEM;
        w->direct_buf = NULL;
    }
    if (w->direct_buf)
        memcpy(w->direct_buf, w->rb.buf + w->rb.start + FQ__WIRE_HDR, have);
    fq__rbuf_consume(&w->rb, FQ__WIRE_HDR + have);
}

/* Reads what a worker sent and handles every complete frame. With `all`,
 * reads until the channel is empty (the worker is dead, nothing more can
 * come); otherwise a bounded amount, so one chatty worker cannot starve the
 * others. */
static void read_worker(fq__queue *q, fq__worker *w, int all)
{
    for (int rounds = 0; all || rounds < 8; rounds++) {
        if (w->flags & FQ__W_EOF)
            return;
        if (w->direct_len) {
            int r = read_direct(q, w);
            if (r < 0) {
                saw_eof(w);
                return;
            }
            if (r == 0)
                return;
            if (w->direct_have == w->direct_len)
                w->direct_len = w->direct_have = 0;
            continue;
        }
        size_t room = w->rb.cap - w->rb.end;
        ssize_t n = fq__rbuf_read(&w->rb, w->fd, READ_CHUNK);
        if (n == FQ_ETIMEDOUT)
            return;
        if (n <= 0) {
            saw_eof(w);
            return;
        }
        /* A read that did not fill the buffer found the channel empty:
         * do not ask again only to hear EAGAIN (one system call less per
         * round trip), unless the worker is dead and must be drained. */
        int drained = !all && (size_t)n < room && room >= READ_CHUNK;
        for (;;) {
            fq__frame f;
            const unsigned char *payload;
            int rc =
                fq__rbuf_frame(&w->rb, FQ__ACCEPT_FROM_WORKER, &f, &payload);
            if (rc < 0) {
                proto_error(w);
                return;
            }
            if (rc == 0) {
                /* (The decoder refuses an INIT_FAIL or LOG announcing more
                 * than its bound: nothing of it is buffered.) */
                if (w->rb.end - w->rb.start >= FQ__WIRE_HDR &&
                    f.len >= DIRECT_READ && f.type == FQ__FRAME_RESULT) {
                    if (!w->head || w->head == w->unsent ||
                        !(w->flags & FQ__W_HELLO)) {
                        proto_error(w);
                        return;
                    }
                    start_direct(q, w, &f);
                }
                break;
            }
            if (fq__handle_frame(q, w, &f, payload) < 0) {
                proto_error(w);
                return;
            }
            fq__rbuf_consume(&w->rb, FQ__WIRE_HDR + (size_t)f.len);
            w->rx += FQ__WIRE_HDR + f.len;
        }
        if (drained && !w->direct_len)
            return;
    }
}

/*
 * Results held in a live worker's shared out[] while it runs further jobs:
 * taken from there, so that a result reaches the caller within about
 * FQ__FLUSH_AGE_NS of its job's end, however long the next job runs. The
 * copy is kept only if the worker did not empty out[] meanwhile (gen), and
 * only after the channel was read up to date: results the worker flushed
 * come first, and bytes a job wrote into the channel are seen before any of
 * its results are taken. The worker sends the same frames later; the
 * parent skips them (taken_upto).
 */
static void take_held(fq__queue *q, fq__worker *w)
{
    fq__wstat *st = w->stat;

    if (!w->head || w->head == w->unsent || (w->flags & FQ__W_EOF) ||
        !(w->flags & FQ__W_HELLO) ||
        atomic_load_explicit(&st->done, memory_order_acquire) <= w->head->wseq)
        return;
    read_worker(q, w, 0);
    if (!w->head || w->head == w->unsent || (w->flags & FQ__W_EOF) ||
        w->direct_len || w->rb.end != w->rb.start)
        return;
    uint64_t g = atomic_load_explicit(&st->gen, memory_order_acquire);
    uint64_t n = atomic_load_explicit(&st->committed, memory_order_acquire);
    if (n == 0 || n > FQ__OUT_CAP)
        return;
    if (!q->held_buf && !(q->held_buf = malloc(FQ__OUT_CAP)))
        return;
    memcpy(q->held_buf, st->out, (size_t)n);
    /* A read-modify-write (of nothing) orders the copy before the check. */
    if (atomic_fetch_add_explicit(&st->gen, 0, memory_order_acq_rel) != g)
        return;
    size_t off = 0;
    while (w->head && w->head != w->unsent && off < n) {
        fq__frame f;
        const unsigned char *p = q->held_buf + off;
        if (fq__frame_decode(p, (size_t)n - off, FQ__ACCEPT_FROM_WORKER, &f) <=
                0 ||
            f.type != FQ__FRAME_RESULT || f.len > n - off - FQ__WIRE_HDR ||
            f.wseq > w->head->wseq)
            return;
        if (f.wseq == w->head->wseq) {
            if (fq__deliver(q, w, &f, NULL, p + FQ__WIRE_HDR, 0) < 0)
                return;
            w->taken_upto = f.wseq + 1;
        }
        off += FQ__WIRE_HDR + (size_t)f.len;
    }
}

/* Takes every result of a dead worker: what it flushed to the channel, then
 * what it had produced but not yet flushed. */
static void collect_output(fq__queue *q, fq__worker *w)
{
    read_worker(q, w, 1);
    /* A frame cut short in the channel is whole in the shared buffer. */
    fq__rbuf_consume(&w->rb, w->rb.end - w->rb.start);
    free(w->direct_buf);
    w->direct_buf = NULL;
    w->direct_len = w->direct_have = 0;
    if (w->flags & FQ__W_PROTO)
        fq__blame_proto(q, w);
    fq__recover_output(q, w);
}

/* The worker has exited (its pidfd fired): take its results, reap it,
 * settle its jobs. */
static void reap_worker(fq__queue *q, fq__worker *w)
{
    int st = 0, have;

    collect_output(q, w);
    have = w->ops->reap(w, &st);
    fq__worker_gone(q, w, st, have);
}

/* Without pidfd: collect a worker that closed its channel, if it exited. */
static int try_reap(fq__queue *q, fq__worker *w)
{
    int st = 0;
    int e = w->ops->exited(w);
    if (e == 0)
        return 0;
    int have = e == 1 ? w->ops->reap(w, &st) : 0;
    collect_output(q, w);
    fq__worker_gone(q, w, st, have);
    return 1;
}

/* ---- Housekeeping ------------------------------------------------------ */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Kills the worker of a job past its time limit; returns the next time a
 * limit could expire for this worker. Only the FIFO up to the job started
 * last is walked (finished jobs not collected yet come before it), not the
 * jobs queued behind it: those have not started, so none of them can
 * expire before now + tmin_ms, the smallest limit sent to this worker (a
 * FIFO of hundreds of tiny jobs was walked on every pass). */
static int64_t check_timeouts(fq__worker *w, int64_t now)
{
    int64_t next = now + (int64_t)w->tmin_ms * 1000000;
    uint64_t started =
        atomic_load_explicit(&w->stat->started, memory_order_acquire);
    uint64_t done = atomic_load_explicit(&w->stat->done, memory_order_acquire);
    int64_t start_ns =
        atomic_load_explicit(&w->stat->start_ns, memory_order_relaxed);

    for (fq__job *j = w->head; j; j = j->next) {
        if (j->wseq + 1 < started)
            continue; /* finished */
        if (j->wseq + 1 == started && done < started && j->timeout_ms > 0) {
            int64_t limit = (int64_t)j->timeout_ms * 1000000;
            if (now - start_ns >= limit) {
                w->timedout_wseq = started;
                /* The job may end, and the next one start, from the
                 * loads above to the signal's arrival (death.c). */
                FQ__FAULT(FQ__FAULT_TIMEOUT_KILL, w->pid);
                w->ops->signal(w, SIGKILL);
                return INT64_MAX;
            }
            next = min64(next, start_ns + limit);
        }
        break; /* the rest have not started */
    }
    return next;
}

/* Jobs queued behind a job that has run for FQ__STALL_NS move to idle
 * workers. Returns when to look again. */
static int64_t rebalance(fq__queue *q, int64_t now)
{
    int idle = 0;
    int64_t next = INT64_MAX;

    if (q->pend_head)
        return next;
    for (int i = 0; i < q->nw; i++)
        idle += q->w[i]->inflight == 0 &&
                !(q->w[i]->flags & (FQ__W_RETIRING | FQ__W_SHUT | FQ__W_EOF |
                                    FQ__W_KILLED | FQ__W_PROTO));
    if (!idle)
        return next;
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        /* A retiring worker keeps its jobs: it runs exactly
         * max_jobs_per_worker of them (its replacement is the idle one). */
        if (!w->head || !w->head->next || (w->flags & FQ__W_RETIRING))
            continue;
        int64_t since = fq__head_stalled_since(w);
        if (since < 0)
            continue;
        if (now - since < FQ__STALL_NS)
            next = min64(next, since + FQ__STALL_NS);
        else if (fq__revoke_unstarted(q, w) > 0)
            fq__dispatch(q);
    }
    return next;
}

/* Everything that does not wait: returns the next time something is due. */
int64_t fq__queue_maintain(fq__queue *q)
{
    int64_t now = fq__now_ns(), next = INT64_MAX;

    /* Without pidfds: collect workers whose channel closed and that have
     * exited, and look at busy (or stopping) workers now and then. First,
     * so that their jobs are requeued and the workers replaced before
     * dispatch below. */
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        if (w->ops->exit_fd(w) >= 0)
            continue;
        if (w->flags & (FQ__W_EOF | FQ__W_KILLED)) {
            if (try_reap(q, w))
                i--;
        } else if (w->inflight || (w->flags & FQ__W_SHUT)) {
            if (now < w->reap_check_at) {
                next = min64(next, w->reap_check_at);
            } else if (try_reap(q, w)) {
                i--;
            } else {
                w->reap_check_at = now + REAP_CHECK_NS;
                next = min64(next, w->reap_check_at);
            }
        }
    }
    if (q->broken) {
        fq__fail_pending(q, FQ_EINIT, q->broken_msg);
        for (int i = 0; i < q->nw; i++)
            if (!(q->w[i]->flags & FQ__W_KILLED))
                q->w[i]->ops->signal(q->w[i], SIGKILL);
    }
    fq__recycle_scan(q);
    fq__refill_workers(q);
    if (q->npending && q->respawn_at > now)
        next = q->respawn_at;
    q->now_ns = now;
    fq__dispatch(q);
    next = min64(next, rebalance(q, now));
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        if (w->unsent || w->ctl_len)
            fq__flush_worker(w);
        if ((w->flags & FQ__W_RETIRING) && w->inflight == 0 &&
            !(w->flags & FQ__W_SHUT)) {
            shutdown(w->fd, SHUT_WR);
            w->flags |= FQ__W_SHUT;
        }
        if (w->flags & FQ__W_KILLED) {
            if (w->hard_kill_at && now >= w->hard_kill_at)
                w->ops->kill_all(w);
            else if (w->hard_kill_at)
                next = min64(next, w->hard_kill_at);
            continue;
        }
        /* Until tcheck_at, no job of w can be over its limit: the one
         * running was not, and one starting later has at least tmin_ms. */
        if (w->ntimed && now >= w->tcheck_at) {
            int64_t t = check_timeouts(w, now);
            w->tcheck_at = t == INT64_MAX ? 0 : t; /* killed: look again */
            next = min64(next, t);
        } else if (w->ntimed) {
            next = min64(next, w->tcheck_at);
        } else {
            w->tmin_ms = 0;
            w->tcheck_at = 0;
        }
        /* A second job sent behind the head: results may be held back,
         * unless the worker sends them after every job. */
        if (w->head && w->head != w->unsent && w->head->next &&
            w->head->next != w->unsent &&
            !atomic_load_explicit(&w->stat->flush_each, memory_order_acquire)) {
            if (now >= w->take_at) {
                take_held(q, w);
                w->take_at = now + FQ__FLUSH_AGE_NS;
            }
            next = min64(next, w->take_at);
        }
        if (w->kill_at) {
            if (now >= w->kill_at)
                w->ops->signal(w, SIGKILL);
            else
                next = min64(next, w->kill_at);
        }
        if ((w->flags & FQ__W_EOF) && !(w->flags & FQ__W_KILLED)) {
            if (now >= w->eof_deadline)
                w->ops->signal(w, SIGKILL);
            else
                next = min64(next, w->eof_deadline);
        }
        /* A kill sent in this pass (above, or for a time limit) asks the
         * worker to end itself; if it cannot (a job that blocks signals),
         * the loop must be awake at hard_kill_at to end it. */
        if ((w->flags & FQ__W_KILLED) && w->hard_kill_at)
            next = min64(next, w->hard_kill_at);
    }
    /* Without pidfds, exits are noticed by polling every millisecond. */
    for (int i = 0; i < q->nw; i++)
        if (q->w[i]->ops->exit_fd(q->w[i]) < 0 &&
            (q->w[i]->flags & (FQ__W_EOF | FQ__W_KILLED)))
            next = min64(next, now + 1000000);
    return next;
}

/* ---- The operations the loop calls ------------------------------------ */

struct slot {
    fq__worker *w;
    int fd_idx, pid_idx;
};

struct drive {
    fq__queue *q;
    fq__cond_fn cond;
};

static int op_closing(void *owner)
{
    fq__queue *q = ((struct drive *)owner)->q;
    /* Freed by another thread (or a callback): our caller's reference
     * keeps the memory; the last release destroys the queue. */
    return atomic_load_explicit(&q->hd.closing, memory_order_relaxed);
}

static int64_t op_maintain(void *owner)
{
    return fq__queue_maintain(((struct drive *)owner)->q);
}

static int op_satisfied(void *owner)
{
    struct drive *d = owner;
    return d->cond(d->q);
}

/* The poll set: per worker its channel (unless closed) and its pidfd. The
 * slots, at the start of the same block, remember which entries belong to
 * which worker, since events may free a worker. */
int fq__queue_sources(fq__queue *q, int extra, struct pollfd **pfdp)
{
    size_t need = (size_t)q->nw * sizeof(struct slot) +
                  (2 * (size_t)q->nw + (size_t)extra) * sizeof(struct pollfd);
    if (need > q->pfd_cap) {
        void *m = realloc(q->pfd_mem, need);
        if (!m)
            return FQ_ENOMEM;
        q->pfd_mem = m;
        q->pfd_cap = need;
    }
    struct slot *slots = q->pfd_mem;
    struct pollfd *pfd = (struct pollfd *)(slots + q->nw);
    int nfd = 0;
    for (int i = 0; i < q->nw; i++) {
        fq__worker *w = q->w[i];
        slots[i].w = w;
        slots[i].fd_idx = slots[i].pid_idx = -1;
        if (!(w->flags & FQ__W_EOF)) {
            pfd[nfd].fd = w->fd;
            pfd[nfd].events = POLLIN;
            if ((w->unsent || w->ctl_len) && !(w->flags & FQ__W_SHUT))
                pfd[nfd].events |= POLLOUT;
            pfd[nfd].revents = 0;
            slots[i].fd_idx = nfd++;
        }
        int xfd = w->ops->exit_fd(w);
        if (xfd >= 0) {
            pfd[nfd].fd = xfd;
            pfd[nfd].events = POLLIN;
            pfd[nfd].revents = 0;
            slots[i].pid_idx = nfd++;
        }
    }
    q->poll_nslot = q->nw;
    *pfdp = pfd;
    return nfd;
}

void fq__queue_events(fq__queue *q, struct pollfd *pfd, int n)
{
    struct slot *slots = q->pfd_mem;
    for (int i = 0; i < q->poll_nslot && n > 0; i++) {
        fq__worker *w = slots[i].w;
        short fre = slots[i].fd_idx >= 0 ? pfd[slots[i].fd_idx].revents : 0;
        short pre = slots[i].pid_idx >= 0 ? pfd[slots[i].pid_idx].revents : 0;
        if (fre & (POLLIN | POLLHUP | POLLERR))
            read_worker(q, w, 0);
        if ((fre & POLLOUT) && (w->unsent || w->ctl_len))
            fq__flush_worker(w);
        if (pre)
            reap_worker(q, w); /* frees w */
    }
}

static int op_sources(void *owner, int extra, struct pollfd **pfdp)
{
    return fq__queue_sources(((struct drive *)owner)->q, extra, pfdp);
}

static void op_events(void *owner, struct pollfd *pfd, int nfd, int n)
{
    (void)nfd;
    fq__queue_events(((struct drive *)owner)->q, pfd, n);
}

static const fq__loop_ops queue_ops = {
    op_closing, op_maintain, op_satisfied, op_sources, op_events,
};

int fq__drive(fq__queue *q, int timeout_ms, fq__cond_fn cond, int flags)
{
    /* fq_wakeup() ends only a wait that could block: a wake-up is left
     * pending through non-blocking passes, for the wait that follows. */
    int wakeable = (flags & FQ__DRIVE_WAKEABLE) && timeout_ms != 0;
    int lflags = q->opts.return_on_eintr && !(flags & FQ__DRIVE_UNINTERRUPTIBLE)
                     ? FQ__LOOP_EINTR
                     : 0;
    struct drive d = {q, cond};
    int rc = fq__loop_run(&queue_ops, &d, timeout_ms,
                          wakeable ? q->hd.wake_rd : -1, lflags);
    if (rc == 1)
        fq__wake_drain(q);
    return rc;
}
