/*
 * A plugin for fq-server (tests): registers "test.square" (the argument, a
 * uint64_t x, gives x * x + 1) and "test.pid" (the worker's pid) from
 * fq_plugin_init(), and "test.ctor" from a constructor.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "forkqueue.h"
#include "remote_jobs.h"

static int ctor_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return fq_reply(ctx, "ctor", 4);
}

__attribute__((constructor)) static void at_load(void)
{
    fq_func_register("test.ctor", ctor_job, NULL);
}

__attribute__((visibility("default"))) int fq_plugin_init(void)
{
    return register_remote_jobs();
}
