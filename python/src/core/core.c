/*
 * Opening and closing a core queue for a Python face, and the clean-up of
 * every queue still open at interpreter exit.
 */
#include "../fqpy.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>

double fqpy_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The CPUs this process may run on (its affinity mask), as
 * os.sched_getaffinity() counts them; the online CPUs elsewhere. */
int fqpy_cpu_count(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int fqpy_core_init(fqpy_core *c, fqpy_state *st, const char *name)
{
    c->st = st;
    c->name = name;
    return fqpy_reg_init(&c->reg);
}

static void unlink_live(fqpy_core *c)
{
    if (c->live_prev) {
        *c->live_prev = c->live_next;
        if (c->live_next)
            c->live_next->live_prev = c->live_prev;
        c->live_prev = NULL;
        c->live_next = NULL;
    }
}

int fqpy_core_open(fqpy_core *c, fq_options *o)
{
    o->return_on_eintr = 1;
    o->hooks.prepare = fqpy_hook_prepare;
    o->hooks.parent = fqpy_hook_parent;
    o->hooks.child = fqpy_hook_child;
    o->hook_arg = c;
    FQPY_LOCK(c);
    int rc = fq_queue_new(&c->q, o);
    FQPY_UNLOCK(c);
    if (rc < 0) {
        fqpy_core_error(c, rc, "starting the workers");
        return -1;
    }
    c->opened = 1;
    c->owner_pid = getpid();
    c->fork_gen = fqpy_fork_generation;
    fqpy_reg_reforked(&c->reg);
    fqpy_state *st = c->st;
    c->live_next = st->live;
    if (st->live)
        st->live->live_prev = &c->live_next;
    st->live = c;
    c->live_prev = &st->live;
    return 0;
}

void fqpy_core_close(fqpy_core *c, int cancel)
{
    c->finished = 1;
    unlink_live(c);
    if (!c->opened)
        return;
    fq_queue q = c->q;
    c->opened = 0;
    c->in_core++;
    FQPY_LOCK(c);
    Py_BEGIN_ALLOW_THREADS
    if (cancel)
        fq_cancel(q);
    fq_queue_free(q);
    Py_END_ALLOW_THREADS
    FQPY_UNLOCK(c);
    c->in_core--;
}

void fqpy_core_clear(fqpy_core *c)
{
    unlink_live(c);
    if (c->opened) {
        c->opened = 0;
        c->finished = 1;
        /* Returns FQ_EFOREIGN without touching anything in a forked child
         * that inherited the queue. */
        fq_queue_free(c->q);
    }
    fqpy_reg_clear(&c->reg);
}

int fqpy_core_traverse(fqpy_core *c, visitproc visit, void *arg)
{
    Py_VISIT(c->reg.list);
    Py_VISIT(c->reg.keycache);
    Py_VISIT(c->reg.ckeys);
    return 0;
}

/* At interpreter exit. A queue another (daemon) thread is waiting on with
 * the GIL released must not be freed under it: the queue is marked closing,
 * so that thread raises at its next look (within one poll slice) instead of
 * entering the core again, and is freed once no thread is inside it. */
void fqpy_core_shutdown_all(fqpy_state *st)
{
    while (st->live) {
        fqpy_core *c = st->live;
        unlink_live(c);
        if (!c->opened || c->owner_pid != getpid())
            continue;
        c->closing = 1;
        c->finished = 1;
        for (int i = 0; c->in_core && i < 10000; i++) {
            struct timespec ts = {0, 1000000};
            Py_BEGIN_ALLOW_THREADS
            nanosleep(&ts, NULL);
            Py_END_ALLOW_THREADS
        }
        if (c->in_core || !c->opened)
            continue; /* never free under a thread (the kernel reaps) */
        fq_queue q = c->q;
        c->opened = 0;
        c->in_core++;
        Py_BEGIN_ALLOW_THREADS
        fq_queue_free(q);
        Py_END_ALLOW_THREADS
        c->in_core--;
    }
}
