/*
 * Fuzzes the parent end to end: a job writes the fuzz input straight into its
 * worker's channel (bypassing fq_reply) and exits, so the parent's read loop,
 * frame decoder, result buffering and worker replacement all see arbitrary
 * bytes from a real process. The parent runs under ASan+UBSan, in this
 * process; the worker is a fork of it.
 *
 * Checked: the parent never crashes or reads out of bounds; the job gets
 * exactly one outcome, and a plausible one (a result if the bytes happened to
 * form one, else a protocol error or a crash report); the queue keeps working
 * (a normal job afterwards returns its result).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forkqueue.h"

/* The worker's end of its channel: the only socket the worker has open. */
static int channel_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
            found = fd;
            break;
        }
    }
    closedir(d);
    return found;
}

static int garbage_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    int fd = channel_fd();
    const char *p = arg;
    while (fd >= 0 && len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
    /* Ends the worker so that garbage which happens to look like the start
     * of a frame does not leave the parent waiting for the rest forever. */
    _exit(0);
}

static int echo_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

static fq_queue q;

/* Forged LOG frames reach the callback: each record is well formed. */
static void on_log(void *arg, const fq_log_record *rec)
{
    (void)arg;
    if (!rec->msg || rec->len > FQ_LOG_MAX || strlen(rec->msg) != rec->len ||
        rec->level < 0 || rec->level > FQ_LOG_LEVEL_MAX)
        abort();
}

static void open_queue(void)
{
    fq_options o = {0};
    o.workers = 1;
    o.grace_ms = -1;
    o.log = on_log;
    if (fq_queue_new(&q, &o) != 0)
        abort();
}

/* Submits one job and returns its single outcome status. */
static int run_one(fq_job_fn fn, const void *arg, size_t len, fq_result *r,
                   const void *expect, size_t elen)
{
    uint64_t id;
    int rc = fq_submit(q, fn, arg, len, NULL, &id);
    if (rc != 0)
        return rc;
    if (fq_wait(q, 30000) != 0)
        abort(); /* a hang: the parent lost track of the worker */
    if (fq_take(q, r) != 1 || r->id != id)
        abort();
    /* Errors carry a NUL-terminated description. */
    if (r->status != 0 && (r->data == NULL || ((const char *)r->data)[r->len]))
        abort();
    /* Checked before the next take, which frees r->data. */
    if (expect && (r->status != 0 || r->len != elen ||
                   memcmp(r->data, expect, elen) != 0))
        abort();
    fq_result extra;
    if (fq_take(q, &extra) != 0)
        abort(); /* a second outcome for the same job */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fq_result r;

    if (q.id == 0)
        open_queue();
    int rc = run_one(garbage_job, data, size, &r, NULL, 0);
    if (rc == FQ_EINIT || rc == FQ_EFINISHED) {
        /* An earlier input forged an "init failed" frame, which stops the
         * queue by design: start a new one. */
        fq_queue_free(q);
        open_queue();
        return 0;
    }
    if (rc != 0)
        abort();
    switch (r.status) {
    case 0:
    case FQ_EJOB:
    case FQ_EPROTO:
    case FQ_ECRASHED:
    case FQ_EINIT:
    case FQ_ETOOBIG:
    case FQ_ENOMEM:
    case FQ_ENOFUNC:
        break;
    default:
        abort();
    }
    if (r.status == FQ_EINIT) {
        fq_queue_free(q);
        open_queue();
        return 0;
    }

    /* The queue still works. */
    static const char probe[] = "still alive";
    if (run_one(echo_job, probe, sizeof probe, &r, probe, sizeof probe) != 0)
        abort();
    return 0;
}
