/*
 * The worker side: the loop a forked worker runs, and the job context API
 * (fq_reply(), fq_fail(), ...) used inside jobs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <stdio_ext.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "channel/chan_public.h"
#include "worker/worker.h"

#define FQ__EXPORT __attribute__((visibility("default")))

/* Results are flushed to the parent when FQ__FLUSH_BYTES are buffered,
 * or when the worker runs out of input (so a lone job is answered at once);
 * while it runs further jobs, the parent takes buffered results that are
 * FQ__FLUSH_AGE_NS old straight from the shared out[] (queue/events.c). Batches
 * amortise system calls and, as much, wake-ups of the parent, which on a
 * machine with no idle CPU preempt a worker each time. Results of
 * FQ__DIRECT_BYTES or more are written straight from the job's buffer. */

/* ---- Child side -------------------------------------------------------- */

struct fq_ctx {
    uint64_t id;
    void *udata;
    int replied;
    int fd;
    uint64_t wseq;
    int64_t start_ns;
    fq__wstat *st;
    size_t out_len;    /* bytes of st->out in use */
    uint64_t tx;       /* bytes written to the channel so far */
    unsigned fork_gen; /* fq__fork_gen in this worker */
    /* Thread kind: each frame is sent at once (nothing is buffered in out[],
     * which the parent would otherwise read while this thread writes it),
     * failures end the loop instead of the process, and the parent may
     * abandon the worker: *cancel is then set. */
    const fq__thread_io *tio;
    int dead; /* thread kind: the loop ends with status dead - 1 */
};

/* Ends the worker: the process kind exits; the thread kind records the
 * status and lets the loop return. */
static void worker_fail(fq_ctx *c, int status)
{
    if (!c->tio)
        fq__worker_exit(status);
    if (!c->dead)
        c->dead = status + 1;
}

/* A job forked and the copy is running worker code: it must never act as
 * the worker (write results, read jobs), or the parent would take it for
 * the worker and blame the wrong jobs. */
static int forked_copy(const fq_ctx *c)
{
    return c->fork_gen !=
           atomic_load_explicit(&fq__fork_gen, memory_order_relaxed);
}

static _Thread_local char init_msg[1024];

FQ__EXPORT int fq_init_fail(const char *msg)
{
    snprintf(init_msg, sizeof(init_msg), "%s", msg ? msg : "");
    return -1;
}

static void flush_out(fq_ctx *c)
{
    if (c->out_len == 0)
        return;
    struct iovec iov = {c->st->out, c->out_len};
    if (fq__send_all(c->fd, &iov, 1) < 0)
        worker_fail(c, FQ__EXIT_IO);
    c->tx += c->out_len;
    atomic_store_explicit(&c->st->tx, c->tx, memory_order_relaxed);
    c->out_len = 0;
    atomic_store_explicit(&c->st->committed, 0, memory_order_relaxed);
    /* out[] is rewritten from the start from now on: a copy the parent
     * is making must be seen as torn. */
    atomic_fetch_add_explicit(&c->st->gen, 1, memory_order_acq_rel);
}

/* Queues (or, when large, writes at once) one frame to the parent. A queued
 * frame is committed to the shared buffer before the job after it starts,
 * so the parent can recover it if this process dies. */
static void emit(fq_ctx *c, const fq__frame *f, const void *data)
{
    unsigned char hdr[FQ__WIRE_HDR];

    fq__frame_encode(f, hdr);
    if (c->dead)
        return;
    if (c->tio && atomic_load(c->tio->cancel)) {
        worker_fail(c, FQ__EXIT_OK); /* abandoned: the reply is discarded */
        return;
    }
    if (f->len >= FQ__DIRECT_BYTES || c->tio) {
        struct iovec iov[2] = {{hdr, sizeof(hdr)},
                               {(void *)data, (size_t)f->len}};
        flush_out(c);
        if (fq__send_all(c->fd, iov, f->len ? 2 : 1) < 0) {
            worker_fail(c, FQ__EXIT_IO);
            return;
        }
        c->tx += FQ__WIRE_HDR + (size_t)f->len;
        atomic_store_explicit(&c->st->tx, c->tx, memory_order_relaxed);
        return;
    }
    if (c->out_len + FQ__WIRE_HDR + f->len > FQ__OUT_CAP)
        flush_out(c);
    memcpy(c->st->out + c->out_len, hdr, FQ__WIRE_HDR);
    if (f->len)
        memcpy(c->st->out + c->out_len + FQ__WIRE_HDR, data, (size_t)f->len);
    c->out_len += FQ__WIRE_HDR + (size_t)f->len;
    atomic_store_explicit(&c->st->committed, c->out_len, memory_order_release);
}

static void emit_result(fq_ctx *c, int status, int code, const void *data,
                        size_t len)
{
    fq__frame f = {0};
    f.type = FQ__FRAME_RESULT;
    f.status = status;
    f.code = code;
    int64_t us = (fq__now_ns() - c->start_ns) / 1000;
    f.run_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    f.wseq = c->wseq;
    f.len = len;
    c->replied = 1;
    emit(c, &f, data);
}

FQ__EXPORT int fq_reply(fq_ctx *ctx, const void *data, size_t len)
{
    if (!ctx || (!data && len))
        return FQ_EINVAL;
    if (len > FQ__WIRE_MAX_PAYLOAD)
        return FQ_ETOOBIG; /* as fq_submit(): never read past the buffer */
    if (forked_copy(ctx))
        return FQ_EFOREIGN;
    if (ctx->replied)
        return FQ_EBUSY;
    emit_result(ctx, 0, 0, data, len);
    return 0;
}

FQ__EXPORT int fq_fail(fq_ctx *ctx, int code, const char *msg)
{
    if (!ctx)
        return FQ_EINVAL;
    if (code == 0)
        code = -1;
    if (forked_copy(ctx))
        return FQ_EFOREIGN;
    if (ctx->replied)
        return FQ_EBUSY;
    emit_result(ctx, FQ_EJOB, code, msg ? msg : "", msg ? strlen(msg) : 0);
    return code;
}

FQ__EXPORT uint64_t fq_ctx_id(const fq_ctx *ctx)
{
    return ctx ? ctx->id : 0;
}

FQ__EXPORT void *fq_ctx_udata(const fq_ctx *ctx)
{
    return ctx ? ctx->udata : NULL;
}

FQ__EXPORT int fq_ctx_cancelled(const fq_ctx *ctx)
{
    return ctx && ctx->tio && atomic_load(ctx->tio->cancel) ? 1 : 0;
}

/* Runs one job frame. The argument is copied when its place in the buffer is
 * not aligned for any type, as the API promises. */
static void run_job(fq_ctx *c, fq__wstat *st, const fq__frame *f,
                    const unsigned char *payload)
{
    fq_job_fn fn = (fq_job_fn)(uintptr_t)f->fn;
    const void *arg = payload;
    void *copy = NULL;

    /* An abandoned thread starts nothing more. */
    if (c->tio && atomic_load(c->tio->cancel)) {
        worker_fail(c, FQ__EXIT_OK);
        return;
    }
    /* The parent may have taken this job back to give it to an idle
     * worker: exactly one of us wins the exchange. */
    if (atomic_exchange(&st->claim[c->wseq % FQ__RING],
                        FQ__CLAIM_STARTED(c->wseq)) ==
        FQ__CLAIM_REVOKED(c->wseq)) {
        c->wseq++;
        return;
    }
    if (((uintptr_t)payload % _Alignof(max_align_t)) != 0 && f->len > 0) {
        copy = malloc((size_t)f->len);
        if (!copy) {
            worker_fail(c, FQ__EXIT_NOMEM);
            return;
        }
        memcpy(copy, payload, (size_t)f->len);
        arg = copy;
    }
    c->id = f->id;
    c->replied = 0;
    c->start_ns = fq__now_ns();
    atomic_store_explicit(&st->start_ns, c->start_ns, memory_order_relaxed);
    atomic_store_explicit(&st->tx_start[c->wseq % FQ__RING], c->tx,
                          memory_order_relaxed);
    atomic_store_explicit(&st->started, c->wseq + 1, memory_order_release);
    int rc = fn(c, arg, (size_t)f->len);
    if (forked_copy(c))
        _exit(FQ__EXIT_OK); /* a copy made by the job (fork, daemon) */
    if (!c->replied) {
        if (rc == 0)
            emit_result(c, 0, 0, NULL, 0);
        else
            emit_result(c, FQ_EJOB, rc, "", 0);
    }
    atomic_store_explicit(&st->tx_end[c->wseq % FQ__RING], c->tx,
                          memory_order_relaxed);
    atomic_store_explicit(&st->done, c->wseq + 1, memory_order_release);
    c->wseq++;
    free(copy);
}

#ifdef __GLIBC__
/* Registered last, so it runs first when a job calls exit(): it ends the
 * worker before the parent's atexit handlers run and before stdio flushes
 * the buffers the worker inherited (they are the parent's to write). The
 * job's own output on stdout and stderr is written: what was inherited
 * there was dropped when the worker started. */
static pid_t exit_guard_pid;

static void on_job_exit(int status, void *arg)
{
    (void)arg;
    if (getpid() == exit_guard_pid)
        fq__kill_descendants(); /* the worker itself: its jobs' processes too */
    fflush(stdout);
    fflush(stderr);
    _exit(status & 0xff);
}

static void guard_exit(void)
{
    exit_guard_pid = getpid();
    __fpurge(stdout);
    __fpurge(stderr);
    on_exit(on_job_exit, NULL);
}
#else
static void guard_exit(void)
{
}
#endif

int fq__worker_loop(fq_init_fn init, void *udata, fq__wstat *st, int fd,
                    const fq__thread_io *tio)
{
    fq_ctx c;
    fq__rbuf rb;

    memset(&c, 0, sizeof(c));
    c.fd = fd;
    c.st = st;
    c.udata = udata;
    c.tio = tio;
    c.fork_gen = atomic_load_explicit(&fq__fork_gen, memory_order_relaxed);
    fq__rbuf_init(&rb);
    if (!tio)
        guard_exit();

    if (init && init(udata) != 0) {
        fq__frame f = {0};
        f.type = FQ__FRAME_INIT_FAIL;
        f.len = strlen(init_msg);
        emit(&c, &f, init_msg);
        flush_out(&c);
        fq__rbuf_free(&rb);
        if (!tio)
            fq__worker_exit(FQ__EXIT_INIT);
        return FQ__EXIT_INIT;
    }
    atomic_store_explicit(&st->ready, 1, memory_order_release);

    int status = FQ__EXIT_OK;
    for (;;) {
        fq__frame f;
        const unsigned char *payload;
        if (c.dead) {
            status = c.dead - 1;
            break;
        }
        int rc = fq__rbuf_frame(&rb, FQ__ACCEPT_JOB, &f, &payload);
        if (rc < 0) {
            status = FQ__EXIT_PROTO;
            break;
        }
        if (rc == 1) {
            run_job(&c, st, &f, payload);
            fq__rbuf_consume(&rb, FQ__WIRE_HDR + (size_t)f.len);
            /* Results younger than a batch stay here while jobs are
             * queued: the parent takes them from out[] when they are
             * FQ__FLUSH_AGE_NS old, whatever job runs next. */
            if (c.out_len >= FQ__FLUSH_BYTES ||
                (st->max_rss && fq__rss_check(st, 0)))
                flush_out(&c);
            continue;
        }
        /* Out of complete frames: send what we have, then block. */
        if (st->max_rss)
            fq__rss_check(st, 1);
        flush_out(&c);
        if (c.dead)
            continue;
        size_t want = 64 * 1024;
        if (rb.end - rb.start >= FQ__WIRE_HDR) {
            /* A header is here (rc == 0 decoded it): room for all of it. */
            want = FQ__WIRE_HDR + (size_t)f.len - (rb.end - rb.start);
            if (fq__rbuf_reserve(&rb, FQ__WIRE_HDR + (size_t)f.len) < 0) {
                status = FQ__EXIT_NOMEM;
                break;
            }
        }
        ssize_t n = fq__rbuf_read(&rb, fd, want < 4096 ? 4096 : want);
        if (n == 0)
            break; /* parent closed: finished, or gone */
        if (n < 0) {
            status = FQ__EXIT_IO;
            break;
        }
    }
    fq__rbuf_free(&rb);
    if (!tio)
        fq__worker_exit(status);
    return status;
}

void fq__worker_main(fq__queue *q, fq__worker *w, int fd)
{
    fq__worker_loop(q->opts.init, q->opts.udata, w->stat, fd, NULL);
    fq__worker_exit(FQ__EXIT_OK); /* not reached */
}
