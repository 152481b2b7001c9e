/*
 * The jobs that the interoperability tests' C client (remote_client.c) and
 * fq-server's test plugin (plugin_square.c) both know, under the names the
 * two register them with: "test.square" (the argument, a uint64_t x, gives
 * x * x + 1) and "test.pid" (the pid of the worker that ran it).
 */
#ifndef FQ_REMOTE_JOBS_H
#define FQ_REMOTE_JOBS_H

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "forkqueue.h"

static int square(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t x;
    if (len != sizeof(x))
        return fq_fail(ctx, 2, "want a uint64_t");
    memcpy(&x, arg, sizeof(x));
    x = x * x + 1;
    return fq_reply(ctx, &x, sizeof(x));
}

static int pid(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    pid_t p = getpid();
    return fq_reply(ctx, &p, sizeof(p));
}

/* Registers both; 0, or the first error. */
static int register_remote_jobs(void)
{
    int rc = fq_func_register("test.square", square, NULL);
    return rc ? rc : fq_func_register("test.pid", pid, NULL);
}

#endif
