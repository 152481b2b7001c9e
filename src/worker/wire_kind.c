/*
 * The process-wire kind: a forked process that uses nothing but the wire
 * protocol, as a worker that did not fork from the caller must (a remote
 * worker, one forked by a helper started early). Its jobs name functions by
 * registered id (fq_func_register()), it shares no status page (the parent
 * keeps its copy of the page from STARTED and RESULT frames, and cannot
 * take back jobs it has written) and it announces itself with a HELLO
 * without the PAGE flag.
 *
 * It is the process kind in every other respect (fork, signals, reaping),
 * and is selected with the internal fq_options.kind FQ__WORKER_PROCESS_WIRE:
 * the tests run the frame-only paths with it, locally.
 */
#include <pthread.h>

#include "worker/worker.h"

static fq__worker_ops wire_ops;
static pthread_once_t wire_once = PTHREAD_ONCE_INIT;

static void wire_setup(void)
{
    wire_ops = fq__process_ops;
    wire_ops.name = "process-wire";
    wire_ops.flags = FQ__KIND_BY_ID | FQ__KIND_NO_PAGE;
}

const fq__worker_ops *fq__process_wire_kind(void)
{
    pthread_once(&wire_once, wire_setup);
    return &wire_ops;
}
