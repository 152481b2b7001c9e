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
    j->state = FQ__JOB_DONE;
    q->st.finished++;
    if (j->status == FQ_ECRASHED)
        q->st.crashed++;
    else if (j->status == FQ_ETIMEDOUT)
        q->st.timedout++;
    if (j->fut) {
        /* A handle's job: the outcome is the handle's from now on. */
        fq__jobtable_del(&q->table, j->id);
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

fq__job *fq__fifo_pop(fq__worker *w)
{
    fq__job *j = w->head;
    w->head = j->next;
    if (!w->head)
        w->tail = NULL;
    j->next = NULL;
    w->inflight--;
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

    if (!j || j == w->unsent || f->wseq != j->wseq) {
        free(owned);
        return FQ_EPROTO; /* not the result of the job we expect */
    }
    fq__fifo_pop(w);
    int64_t run = (int64_t)f->run_us * 1000;
    q->avg_run_ns = q->avg_run_ns < 0 ? run : (q->avg_run_ns * 7 + run) / 8;
    w->avg_run_ns = w->avg_run_ns < 0 ? run : (w->avg_run_ns * 7 + run) / 8;
    q->fork_failures = 0;

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

int fq__handle_frame(fq__queue *q, fq__worker *w, const fq__frame *f,
                     const unsigned char *payload)
{
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
