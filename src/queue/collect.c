/*
 * Outcomes: a job's result or error is recorded and published to the
 * ready list (completion order) or the submission list (ordered).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"

/* ---- Outcomes ---------------------------------------------------------- */

/* Stores len bytes (plus a NUL) as the job's outcome payload. */
static int set_payload(fq__job *j, const void *data, size_t len)
{
    if (len < FQ__INLINE_RESULT) {
        j->res = j->inline_res.bytes;
    } else {
        j->res = malloc(len + 1);
        if (!j->res)
            return FQ_ENOMEM;
    }
    if (len)
        memcpy(j->res, data, len);
    ((char *)j->res)[len] = '\0';
    j->res_len = len;
    return 0;
}

static void publish(fq__queue *q, fq__job *j)
{
    if (j->cancel) {
        if (j->cancel == FQ__CANCEL_GHOST) {
            /* The worker's answer for a job cancelled before it started
             * (or its worker's end): the job had its outcome then. */
            fq__job_free(j);
            return;
        }
        if (j->status != FQ_ECANCELED) {
            /* fq_job_cancel() found it running: whatever it did since (its
             * reply after the CANCEL frame, a crash from the SIGTERM), it
             * ends cancelled. */
            fq__job_drop_result(j);
            j->status = FQ_ECANCELED;
            j->code = j->signo = 0;
            j->exit_status = -1;
            set_payload(j, "job cancelled", strlen("job cancelled"));
        }
    }
    j->state = FQ__JOB_DONE;
    q->st.finished++;
    if (j->status == FQ_ECRASHED)
        q->st.crashed++;
    else if (j->status == FQ_ETIMEDOUT)
        q->st.timedout++;
    if (j->fut) {
        /* A handle's job: the outcome is the handle's from now on. */
        q->nhandle_live--;
        fq__ids_forget(q, j->id);
        fq__future_complete(j->fut, &q->notify_head, &q->notify_tail);
        return;
    }
    if (q->opts.ordered) {
        while (q->ord_scan && q->ord_scan->state == FQ__JOB_DONE) {
            q->nready++;
            q->ord_scan = q->ord_scan->onext;
        }
    } else {
        j->onext = NULL;
        if (q->ord_tail)
            q->ord_tail->onext = j;
        else
            q->ord_head = j;
        q->ord_tail = j;
        q->nready++;
    }
}

void fq__job_finish(fq__queue *q, fq__job *j, int status, int code,
                    const char *msg)
{
    j->status = status;
    j->code = code;
    if (!msg)
        msg = fq_strerror(status);
    if (set_payload(j, msg, strlen(msg)) < 0) {
        /* Out of memory for the message: keep the outcome, drop text. */
        j->res = j->inline_res.bytes;
        j->inline_res.bytes[0] = '\0';
        j->res_len = 0;
    }
    publish(q, j);
}

/* ---- Results from workers ---------------------------------------------- */

fq__job *fq__fifo_pop(fq__queue *q, fq__worker *w)
{
    fq__job *j = w->head;
    w->head = j->next;
    if (!w->head)
        w->tail = NULL;
    j->next = NULL;
    w->inflight--;
    q->dispatch_full = 0;
    if (j->timeout_ms > 0)
        w->ntimed--;
    if (j->suspect)
        w->flags &= ~FQ__W_SOLO;
    return j;
}

int fq__deliver(fq__queue *q, fq__worker *w, const fq__frame *f, void *owned,
                const unsigned char *copy, int override)
{
    fq__job *j = w->head;
    char msg[128];

    if (!j || j == w->unsent || f->wseq != j->wseq ||
        (f->status == FQ_ECANCELED && !j->cancel)) {
        free(owned);
        return FQ_EPROTO; /* not the result of the job we expect */
    }
    fq__fifo_pop(q, w);
    if (w->ops->flags & FQ__KIND_NO_PAGE) /* the parent keeps the page */
        atomic_store_explicit(&w->stat->done, f->wseq + 1,
                              memory_order_release);
    if (f->run_us != FQ__RUN_UNKNOWN) {
        int64_t run = (int64_t)f->run_us * 1000;
        q->avg_run_ns = q->avg_run_ns < 0 ? run : (q->avg_run_ns * 7 + run) / 8;
        w->avg_run_ns = w->avg_run_ns < 0 ? run : (w->avg_run_ns * 7 + run) / 8;
    }
    q->fork_failures = 0;
    q->idle_init_deaths = 0;

    if (!override && f->status == 0 && q->opts.max_result_bytes &&
        f->len > q->opts.max_result_bytes)
        override = FQ_ETOOBIG;
    if (override == FQ_ETOOBIG) {
        free(owned);
        snprintf(msg, sizeof(msg),
                 "result of %llu bytes exceeds max_result_bytes (%llu)",
                 (unsigned long long)f->len,
                 (unsigned long long)q->opts.max_result_bytes);
        fq__job_finish(q, j, override, 0, msg);
    } else if (override) {
        free(owned);
        snprintf(msg, sizeof(msg),
                 "result of %llu bytes could not be allocated",
                 (unsigned long long)f->len);
        fq__job_finish(q, j, override, 0, msg);
    } else {
        j->status = f->status;
        j->code = f->code;
        if (owned) {
            ((char *)owned)[f->len] = '\0';
            j->res = owned;
            j->res_len = (size_t)f->len;
        } else if (set_payload(j, copy, (size_t)f->len) < 0) {
            j->status = FQ_ENOMEM;
            j->code = 0;
            j->res = j->inline_res.bytes;
            snprintf((char *)j->res, FQ__INLINE_RESULT, "result not allocated");
            j->res_len = strlen((char *)j->res);
        }
        publish(q, j);
    }
    if ((w->flags & FQ__W_RETIRING) && w->inflight == 0 &&
        !(w->flags & FQ__W_SHUT)) {
        shutdown(w->fd, SHUT_WR);
        w->flags |= FQ__W_SHUT;
    }
    return 0;
}

static void set_broken(fq__queue *q, const char *msg)
{
    if (q->broken)
        return;
    q->broken = 1;
    free(q->broken_msg);
    q->broken_msg = strdup(msg && *msg ? msg : "init function failed");
}

/* A worker's first frame: its protocol version, pid and kind. */
static int on_hello(fq__queue *q, fq__worker *w, const fq__frame *f)
{
    char m[200];
    if (f->version != FQ__WIRE_VERSION) {
        snprintf(m, sizeof(m),
                 "worker %llu speaks wire protocol version %u, this library "
                 "speaks version %u (a worker of another forkqueue build?)",
                 (unsigned long long)f->id, f->version, FQ__WIRE_VERSION);
        set_broken(q, m);
        return FQ_EPROTO;
    }
    /* Its page, or STARTED frames: what its kind says, or the parent
     * would track its progress from nothing. */
    int page = !(w->ops->flags & FQ__KIND_NO_PAGE);
    if (!!(f->flags & FQ__HELLO_PAGE) != page)
        return FQ_EPROTO;
    w->peer_pid = (pid_t)f->id;
    w->flags |= FQ__W_HELLO;
    return 0;
}

typedef struct result_seek {
    uint64_t wseq;
    int found;
} result_seek;

static void seek_result(void *arg, const fq__frame *f)
{
    result_seek *r = arg;
    if (f->type == FQ__FRAME_RESULT && f->wseq == r->wseq)
        r->found = 1;
}

/* Whether the RESULT of job wseq is among the bytes read from w after the
 * STARTED frame being handled (at the start of w->rb): the job ended. */
static int result_follows(const fq__worker *w, uint64_t wseq)
{
    size_t from = w->rb.start + FQ__WIRE_HDR;
    if (w->rb.end < from)
        return 0;
    result_seek r = {wseq, 0};
    fq__wscan s;
    fq__wscan_init(&s);
    fq__wscan_feed(&s, w->rb.buf + from, w->rb.end - from,
                   FQ__ACCEPT_FROM_WORKER, seek_result, &r);
    return r.found;
}

/* A job started in a worker without a shared page: the parent's copy of the
 * page says so, as the worker would have. It must be the oldest job the
 * worker has (the results before it came first) and was sent whole. */
static int on_started(fq__queue *q, fq__worker *w, const fq__frame *f)
{
    fq__wstat *st = w->stat;
    if (!(w->ops->flags & FQ__KIND_NO_PAGE) || !w->head ||
        w->head == w->unsent || f->wseq != w->head->wseq ||
        f->id != w->head->id ||
        atomic_load_explicit(&st->started, memory_order_relaxed) > f->wseq)
        return FQ_EPROTO;
    atomic_store_explicit(&st->start_ns, fq__now_ns(), memory_order_relaxed);
    atomic_store_explicit(&st->started, f->wseq + 1, memory_order_release);
    atomic_store_explicit(&st->ready, 1, memory_order_relaxed);
    /* Cancelled before it started, it started all the same (the CANCEL
     * came too late): its worker is stopped as for a running job, unless
     * the job's answer came with the frame (it ended already). */
    if (w->head->cancel == FQ__CANCEL_GHOST && !result_follows(w, f->wseq))
        fq__cancel_stop(q, w, w->head);
    return 0;
}

/* A record from a job, for the queue's log callback. */
static int on_log(fq__queue *q, fq__worker *w, const fq__frame *f,
                  const unsigned char *payload)
{
    /* Only for a job this worker was given. */
    if (f->wseq >= w->next_wseq)
        return FQ_EPROTO;
    if (!q->opts.log)
        return 0;
    char text[FQ_LOG_MAX + 1];
    size_t n = (size_t)f->len; /* <= FQ_LOG_MAX: the decoder checked */
    memcpy(text, payload, n);
    text[n] = '\0';
    fq_log_record rec;
    rec.level = f->level;
    rec.job_id = f->id;
    rec.pid = w->peer_pid;
    rec.msg = text;
    rec.len = strlen(text); /* up to an embedded NUL, if any */
    q->opts.log(q->opts.log_arg, &rec);
    return 0;
}

int fq__handle_frame(fq__queue *q, fq__worker *w, const fq__frame *f,
                     const unsigned char *payload)
{
    if (!(w->flags & FQ__W_HELLO))
        return f->type == FQ__FRAME_HELLO ? on_hello(q, w, f) : FQ_EPROTO;
    switch (f->type) {
    case FQ__FRAME_HELLO:
        return FQ_EPROTO; /* one only */
    case FQ__FRAME_STARTED:
        return on_started(q, w, f);
    case FQ__FRAME_LOG:
        return on_log(q, w, f, payload);
    default:
        break;
    }
    /* A result the parent already took from the worker's out[]. */
    if (f->type == FQ__FRAME_RESULT && f->wseq < w->taken_upto &&
        (!w->head || f->wseq < w->head->wseq))
        return 0;
    if (f->type == FQ__FRAME_INIT_FAIL) {
        char buf[1024];
        if (f->len > FQ__INIT_MSG_MAX)
            return FQ_EPROTO;
        /* Only a worker still in its init may say that init failed. */
        if (atomic_load(&w->stat->ready))
            return FQ_EPROTO;
        size_t n = f->len < sizeof(buf) - 1 ? (size_t)f->len : sizeof(buf) - 1;
        memcpy(buf, payload, n);
        buf[n] = '\0';
        set_broken(q, buf);
        return 0;
    }
    return fq__deliver(q, w, f, NULL, payload, 0);
}
