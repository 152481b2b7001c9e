/* One thread at a time per queue, and no re-entry from hooks/callbacks. */
#include "../fqpy.h"

#include <pthread.h>

/* Bumped in the child of every fork (pthread_atfork): a queue opened in
 * another generation belongs to a parent. Cheaper than getpid() per call,
 * which is a system call. */
unsigned long fqpy_fork_generation;

static void bump_generation(void)
{
    fqpy_fork_generation++;
}

void fqpy_core_global_init(void)
{
    static int done;
    if (!done) {
        done = 1;
        pthread_atfork(NULL, NULL, bump_generation);
    }
}

int fqpy_core_enter(fqpy_core *c, int allow_finished)
{
    if (!c->opened && !c->finished) {
        PyErr_Format(PyExc_RuntimeError, "%s.__init__() has not been called",
                     c->name);
        return -1;
    }
    if (c->opened && c->fork_gen != fqpy_fork_generation) {
        PyErr_Format(PyExc_RuntimeError,
                     "this %s belongs to another process (a forked child "
                     "cannot use its parent's queue)",
                     c->name);
        return -1;
    }
    if (c->closing) {
        PyErr_Format(PyExc_RuntimeError,
                     "this %s was closed at interpreter exit", c->name);
        return -1;
    }
    if (c->finished && !allow_finished) {
        PyErr_Format(PyExc_RuntimeError,
                     "this %s is finished (finish() was called, the with "
                     "block ended or a wait was interrupted); create a new "
                     "one",
                     c->name);
        return -1;
    }
    unsigned long me = PyThread_get_thread_ident();
    if (c->busy && c->busy_thread != me) {
        PyErr_Format(PyExc_RuntimeError, "this %s is in use by another thread",
                     c->name);
        return -1;
    }
    if (c->locked) {
        PyErr_Format(PyExc_RuntimeError,
                     "this %s cannot be used from code it is running itself "
                     "(a result's __setstate__, a fork hook or a stream "
                     "flushed before a fork): re-entry is not allowed",
                     c->name);
        return -1;
    }
    if (c->busy++ == 0)
        c->busy_thread = me;
    return 0;
}

void fqpy_core_leave(fqpy_core *c)
{
    c->busy--;
}
