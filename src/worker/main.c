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
    /* One clock reading per job: taken when a job's function returns, it
     * is that job's run time (last_run_us) and, when the next job's frame
     * is already here (clock_fresh), that job's start. */
    int64_t clock_ns;
    int clock_fresh;
    uint32_t last_run_us; /* FQ__RUN_UNKNOWN before the first job ends */
    int flush_each;       /* what fq__wstat.flush_each says */
    fq__wstat *st;
    size_t out_len;    /* bytes of st->out in use */
    uint64_t tx;       /* bytes written to the channel so far */
    unsigned fork_gen; /* fq__fork_gen in this worker */
    /* Thread kind: each frame is sent at once (nothing is buffered in out[],
     * which the parent would otherwise read while this thread writes it),
     * failures end the loop instead of the process, and the parent may
     * abandon the worker: *cancel is then set. */
    const fq__thread_io *tio;
    int dead;        /* thread kind: the loop ends with status dead - 1 */
    sigset_t mask;   /* each job starts with it (the mask after init) */
    unsigned kflags; /* FQ__KIND_* of this worker */
    /* Cooperative cancel (CANCEL frames): the running job's flag; wseqs of
     * jobs not started yet that were cancelled; while a job runs, what
     * fq_ctx_cancelled() read from the channel (appended to the receive
     * buffer after the job, which holds the job's argument meanwhile) and
     * where the frames in it begin. */
    int cancelled;
    int64_t cancel_check_ns;
    int scanning; /* the bytes behind the running job were fed to scan */
    int side_eof;
    struct {
        uint64_t wseq, id;
    } ahead[FQ__CANCEL_AHEAD];
    unsigned nahead;
    fq__rbuf *rb;
    size_t job_end; /* offset in rb->buf just past the running job's frame */
    fq__rbuf side;
    fq__wscan scan;
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

/* Tests: the version this worker's HELLO claims (0: FQ__WIRE_VERSION), and
 * how often fq_ctx_cancelled() has looked at the channel in this process. */
unsigned fq__test_hello_version;
unsigned long fq__test_cancel_reads;

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
static void emit(fq_ctx *c, const fq__frame *f, const void *data, int now)
{
    unsigned char hdr[FQ__WIRE_HDR];

    fq__frame_encode(f, hdr);
    if (c->dead)
        return;
    if (c->tio && atomic_load(c->tio->cancel)) {
        worker_fail(c, FQ__EXIT_OK); /* abandoned: the reply is discarded */
        return;
    }
    if (f->len >= FQ__DIRECT_BYTES || c->tio || now) {
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
    /* This job's run time when it has returned; from inside it, that of
     * the job before (the parent only averages them). */
    f.run_us = c->last_run_us;
    f.wseq = c->wseq;
    f.len = len;
    c->replied = 1;
    emit(c, &f, data, 0);
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

/* A CANCEL frame: for the running job, or one not started yet. */
static void on_cancel(void *arg, const fq__frame *f)
{
    fq_ctx *c = arg;
    if (f->type != FQ__FRAME_CANCEL)
        return;
    if (c->rb && f->wseq == c->wseq) {
        if (f->id == c->id)
            c->cancelled = 1;
        return;
    }
    if (f->wseq < c->wseq + (c->rb ? 1 : 0))
        return; /* a job already done */
    for (unsigned i = 0; i < c->nahead; i++)
        if (c->ahead[i].wseq == f->wseq && c->ahead[i].id == f->id)
            return;
    if (c->nahead == FQ__CANCEL_AHEAD) /* the oldest goes */
        memmove(c->ahead, c->ahead + 1, sizeof(c->ahead[0]) * --c->nahead);
    c->ahead[c->nahead].wseq = f->wseq;
    c->ahead[c->nahead++].id = f->id;
}

/* Whether the job about to start was cancelled before it started (a
 * cancel for the same wseq but another id was for a job the parent took
 * back before sending it). */
static int take_ahead(fq_ctx *c, uint64_t wseq, uint64_t id)
{
    int hit = 0;
    for (unsigned i = 0; i < c->nahead;) {
        if (c->ahead[i].wseq <= wseq) {
            hit |= c->ahead[i].wseq == wseq && c->ahead[i].id == id;
            c->ahead[i] = c->ahead[--c->nahead];
        } else {
            i++;
        }
    }
    return hit;
}

/* Reads what the parent sent while the job runs, without moving the
 * receive buffer, and looks for a CANCEL of the job among it. */
static void check_cancel(fq_ctx *c)
{
    fq__test_cancel_reads++;
    if (!c->scanning) {
        c->scanning = 1;
        fq__wscan_init(&c->scan);
        fq__wscan_feed(&c->scan, c->rb->buf + c->job_end,
                       c->rb->end - c->job_end, FQ__ACCEPT_TO_WORKER, on_cancel,
                       c);
        fq__wscan_feed(&c->scan, c->side.buf, c->side.end - c->side.start,
                       FQ__ACCEPT_TO_WORKER, on_cancel, c);
    }
    for (int round = 0; round < 16 && !c->side_eof && !c->scan.broken;
         round++) {
        if (fq__rbuf_reserve(&c->side, c->side.end - c->side.start + 4096))
            return;
        ssize_t n = recv(c->fd, c->side.buf + c->side.end,
                         c->side.cap - c->side.end, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->side_eof = n == 0; /* read again after the job */
            return;
        }
        fq__wscan_feed(&c->scan, c->side.buf + c->side.end, (size_t)n,
                       FQ__ACCEPT_TO_WORKER, on_cancel, c);
        c->side.end += (size_t)n;
    }
}

FQ__EXPORT int fq_ctx_cancelled(const fq_ctx *ctx)
{
    if (!ctx)
        return 0;
    if (ctx->tio && atomic_load(ctx->tio->cancel))
        return 1;
    /* The context belongs to the job; it is not const where it lives. */
    fq_ctx *c = (fq_ctx *)ctx;
    if (c->cancelled || !c->rb || forked_copy(c))
        return c->cancelled;
    /* The channel is looked at every FQ__CANCEL_CHECK_NS at most: the
     * common call costs a clock read (no system call). */
    int64_t now = fq__now_ns();
    if (now >= c->cancel_check_ns) {
        c->cancel_check_ns = now + FQ__CANCEL_CHECK_NS;
        check_cancel(c);
    }
    return c->cancelled;
}

FQ__EXPORT int fq_log(fq_ctx *ctx, int level, const char *msg)
{
    if (!ctx || !msg || level < 0 || level > FQ_LOG_LEVEL_MAX)
        return FQ_EINVAL;
    size_t len = strlen(msg);
    if (len > FQ_LOG_MAX)
        return FQ_ETOOBIG;
    if (forked_copy(ctx))
        return FQ_EFOREIGN;
    if (ctx->dead)
        return FQ_ECLOSED;
    fq__frame f = {0};
    f.type = FQ__FRAME_LOG;
    f.level = level;
    f.id = ctx->id;
    f.wseq = ctx->wseq;
    f.len = len;
    /* At once (after the results before it): a record is not worth
     * recovering from a dead worker, and must not wait behind a batch. */
    emit(ctx, &f, msg, 1);
    return ctx->dead ? FQ_ECLOSED : 0;
}

/* Whether the job about to start was cancelled: a CANCEL for it was seen
 * already, or, for a worker without a page (whose parent cannot revoke a
 * job it wrote), is among what the parent sent since: the channel is
 * looked at before every job (one read that does not block). Only a CANCEL
 * sent as the job starts finds it running; its worker is then stopped, and
 * for a remote worker that is the end of the connection, so the window is
 * kept as small as a read. */
static int cancelled_before_start(fq_ctx *c)
{
    if (!c->cancelled)
        check_cancel(c);
    return c->cancelled;
}

/* The job answered: the page says it is done, the next one comes. */
static void job_done(fq_ctx *c, fq__wstat *st)
{
    atomic_store_explicit(&st->tx_end[c->wseq % FQ__RING], c->tx,
                          memory_order_relaxed);
    atomic_store_explicit(&st->done, c->wseq + 1, memory_order_release);
    c->wseq++;
}

/* Answers the job without running it: it was cancelled before it started. */
static void skip_job(fq_ctx *c, fq__wstat *st)
{
    static const char msg[] = "job cancelled before it started";
    emit_result(c, FQ_ECANCELED, 0, msg, sizeof(msg) - 1);
    job_done(c, st);
}

/* Runs one job frame. The argument is copied when its place in the buffer is
 * not aligned for any type, as the API promises. */
static void run_job(fq_ctx *c, fq__wstat *st, const fq__frame *f,
                    const unsigned char *payload)
{
    /* A worker forked from the caller gets the address; any other, an id
     * registered with fq_func_register(). */
    fq_job_fn fn = (f->flags & FQ__JOB_BY_ID) ? fq__func_by_id(f->fn)
                   : (c->kflags & FQ__KIND_BY_ID)
                       ? NULL /* never an address from who did not fork us */
                       : (fq_job_fn)(uintptr_t)f->fn;
    const void *arg = payload;
    void *copy = NULL, *copy_to;
    union {
        max_align_t align;
        unsigned char bytes[256];
    } small;

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
        if (f->len <= sizeof(small.bytes)) {
            copy_to = small.bytes;
        } else if (!(copy = copy_to = malloc((size_t)f->len))) {
            worker_fail(c, FQ__EXIT_NOMEM);
            return;
        }
        memcpy(copy_to, payload, (size_t)f->len);
        arg = copy_to;
    }
    c->id = f->id;
    c->replied = 0;
    c->cancelled = c->nahead ? take_ahead(c, c->wseq, f->id) : 0;
    c->scanning = 0;
    c->start_ns = c->clock_fresh ? c->clock_ns : fq__now_ns();
    c->clock_fresh = 0;
    c->cancel_check_ns = c->start_ns;
    if ((c->kflags & FQ__KIND_NO_PAGE) || c->cancelled) {
        if (cancelled_before_start(c)) {
            skip_job(c, st);
            free(copy);
            return;
        }
    }
    atomic_store_explicit(&st->start_ns, c->start_ns, memory_order_relaxed);
    atomic_store_explicit(&st->tx_start[c->wseq % FQ__RING], c->tx,
                          memory_order_relaxed);
    atomic_store_explicit(&st->started, c->wseq + 1, memory_order_release);
    if (c->kflags & FQ__KIND_NO_PAGE) {
        /* The parent learns it from the frame, sent before the job can
         * crash, with the results before it. */
        fq__frame sf = {0};
        sf.type = FQ__FRAME_STARTED;
        sf.id = c->id;
        sf.wseq = c->wseq;
        emit(c, &sf, NULL, 0);
        flush_out(c);
    }
    int rc = 0;
    if (fn) {
        rc = fn(c, arg, (size_t)f->len);
    } else {
        char m[128];
        int n = snprintf(m, sizeof(m),
                         "function id 0x%016llx is not registered in worker "
                         "%ld",
                         (unsigned long long)f->fn, (long)getpid());
        emit_result(c, FQ_ENOFUNC, 0, m, (size_t)n);
    }
    if (forked_copy(c))
        _exit(FQ__EXIT_OK); /* a copy made by the job (fork, daemon) */
    /* A signal mask the job set must not reach the next job, nor the
     * worker's own code (a blocked SIGTERM or parent-death signal would
     * keep it alive). The mask cannot be read without a system call, so
     * setting it unconditionally costs no more than checking it. */
    pthread_sigmask(SIG_SETMASK, &c->mask, NULL);
    c->clock_ns = fq__now_ns();
    c->clock_fresh = 1;
    int64_t us = (c->clock_ns - c->start_ns) / 1000;
    c->last_run_us = us >= FQ__RUN_UNKNOWN ? FQ__RUN_UNKNOWN - 1
                                           : (uint32_t)(us > 0 ? us : 0);
    if (!c->replied) {
        if (rc == 0)
            emit_result(c, 0, 0, NULL, 0);
        else
            emit_result(c, FQ_EJOB, rc, "", 0);
    }
    job_done(c, st);
    free(copy);
}

/*
 * What happens to the results after a job, while more jobs are queued.
 * Results younger than a batch stay in out[]: the parent takes them from
 * there when they are FQ__FLUSH_AGE_NS old, whatever job runs next. After
 * a job that ran that long, they go at once, and the page says so
 * (flush_each): the parent then does not look, and wakes for results only.
 * Holding again starts with a flush, which wakes the parent to look at
 * out[] from then on: not before there is one to send.
 */
static void after_job(fq_ctx *c, fq__wstat *st, int recycle)
{
    int each = c->last_run_us != FQ__RUN_UNKNOWN &&
               c->last_run_us >= FQ__FLUSH_AGE_NS / 1000;
    if (!each && c->flush_each && c->out_len == 0)
        each = 1;
    int flip = each != c->flush_each;
    if (flip) {
        c->flush_each = each;
        atomic_store_explicit(&st->flush_each, each, memory_order_release);
    }
    if (recycle)
        c->clock_fresh = 0; /* the check below takes time */
    int over = recycle && fq__rss_after_job(st, c->start_ns);
    if (c->out_len >= FQ__FLUSH_BYTES || each || flip || over)
        flush_out(c);
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

/* Ends the loop: frees what it allocated and exits (process) or returns
 * (thread). */
static int loop_end(fq_ctx *c, fq__rbuf *rb, void *own_page, int status)
{
    fq__rbuf_free(rb);
    fq__rbuf_free(&c->side);
    free(own_page);
    if (!c->tio)
        fq__worker_exit(status);
    return status;
}

int fq__worker_loop(fq_init_fn init, void *udata, fq__wstat *st, int fd,
                    const fq__thread_io *tio)
{
    return fq__worker_loop_ex(init, udata, st, fd, tio, 0);
}

int fq__worker_loop_ex(fq_init_fn init, void *udata, fq__wstat *st, int fd,
                       const fq__thread_io *tio, unsigned kflags)
{
    fq_ctx c;
    fq__rbuf rb;
    void *own_page = NULL;

    memset(&c, 0, sizeof(c));
    fq__rbuf_init(&rb);
    fq__rbuf_init(&c.side);
    c.fd = fd;
    c.udata = udata;
    c.last_run_us = FQ__RUN_UNKNOWN;
    c.tio = tio;
    c.kflags = kflags;
    c.fork_gen = atomic_load_explicit(&fq__fork_gen, memory_order_relaxed);
    if (kflags & FQ__KIND_NO_PAGE) {
        /* Nothing is shared with the parent: the loop keeps its own page
         * (claims, output batch) and reports progress in frames. */
        if (!(st = own_page = calloc(1, FQ__WSTAT_SIZE)))
            return loop_end(&c, &rb, NULL, FQ__EXIT_NOMEM);
    }
    c.st = st;
    const int recycle = st->max_rss != 0; /* set before the worker started */
    if (!tio)
        guard_exit();

    /* The first frame, before init: who we are and what we speak. */
    fq__frame hello = {0};
    hello.type = FQ__FRAME_HELLO;
    hello.version = fq__test_hello_version;
    hello.flags = (kflags & FQ__KIND_NO_PAGE) ? 0 : FQ__HELLO_PAGE;
    hello.id = (uint64_t)getpid();
    emit(&c, &hello, NULL, 1);

    if (init && init(udata) != 0) {
        fq__frame f = {0};
        f.type = FQ__FRAME_INIT_FAIL;
        f.len = strlen(init_msg);
        emit(&c, &f, init_msg, 1);
        return loop_end(&c, &rb, own_page, FQ__EXIT_INIT);
    }
    /* The baseline every job starts from: the worker's mask once its init
     * function has run (the forking thread's mask, for a process; every
     * signal blocked, for a thread). */
    pthread_sigmask(SIG_SETMASK, NULL, &c.mask);
    atomic_store_explicit(&st->ready, 1, memory_order_release);

    int status = FQ__EXIT_OK;
    for (;;) {
        fq__frame f;
        const unsigned char *payload;
        if (c.dead) {
            status = c.dead - 1;
            break;
        }
        int rc = fq__rbuf_frame(&rb, FQ__ACCEPT_TO_WORKER, &f, &payload);
        if (rc < 0) {
            status = FQ__EXIT_PROTO;
            break;
        }
        if (rc == 1 && f.type == FQ__FRAME_CANCEL) {
            on_cancel(&c, &f);
            fq__rbuf_consume(&rb, FQ__WIRE_HDR);
            continue;
        }
        if (rc == 1) {
            c.rb = &rb;
            c.job_end = rb.start + FQ__WIRE_HDR + (size_t)f.len;
            run_job(&c, st, &f, payload);
            c.rb = NULL;
            fq__rbuf_consume(&rb, FQ__WIRE_HDR + (size_t)f.len);
            /* What fq_ctx_cancelled() read meanwhile comes next. */
            if (c.side.end > c.side.start) {
                if (fq__rbuf_append(&rb, c.side.buf + c.side.start,
                                    c.side.end - c.side.start) < 0) {
                    status = FQ__EXIT_NOMEM;
                    break;
                }
                fq__rbuf_consume(&c.side, c.side.end - c.side.start);
            }
            after_job(&c, st, recycle);
            continue;
        }
        /* Out of complete frames: send what we have, then block. */
        c.clock_fresh = 0;
        if (recycle)
            fq__rss_before_wait(st);
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
    return loop_end(&c, &rb, own_page, status);
}

void fq__worker_main(fq__wenv *q, fq__worker *w, int fd)
{
    fq__worker_loop_ex(q->opts.init, q->opts.udata, w->stat, fd, NULL,
                       q->kind->flags);
    fq__worker_exit(FQ__EXIT_OK); /* not reached */
}
