/*
 * The shared core of the Python faces: what every face built on a core
 * queue needs, independent of the face's API.
 *
 *   core.c      opening and closing a core queue, the list of live queues
 *               and the atexit clean-up, the CPU count
 *   hooks.c     fork hooks (GIL, PyOS_*Fork*, flushing stdio, gc.freeze)
 *   errors.c    core error codes -> Python exceptions, traceback text
 *   guard.c     one thread at a time, and no re-entry from hooks/callbacks
 *   registry.c  the callable registry (callables sent by key, not pickled)
 *   pickle.c    dumps/loads helpers
 *   wait.c      waiting with the GIL released, Ctrl-C
 *
 * A face embeds an fqpy_core in its object and calls these functions.
 */
#ifndef FQPY_CORE_H
#define FQPY_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <sys/types.h>

#include "forkqueue.h"

struct fqpy_state;

/* Callables that jobs may use: list[key]. A worker forked after an entry was
 * set knows it; known[key] says every live worker does. Slots nobody uses
 * are freed at a refork once the registry is large, so a program making a
 * new lambda per job does not grow it without bound. */
typedef struct fqpy_registry {
    PyObject *list;      /* callable, or None for a free slot */
    PyObject *keycache;  /* dict: callable (or its address) -> key */
    PyObject *ckeys;     /* list: the keycache key of each slot, or None */
    PyObject *last_func; /* borrowed: list holds it */
    Py_ssize_t last_key;
    Py_ssize_t cap;
    Py_ssize_t *users;    /* per key: jobs, calls and pins using it */
    unsigned char *known; /* per key */
    double *item_ns;      /* per key: measured worker time per item */
    int64_t *batch_seen;  /* per key: largest batch that came back */
    Py_ssize_t nunknown;  /* slots in use not known by every worker */
    Py_ssize_t nlive;     /* slots in use */
    Py_ssize_t *freelist; /* free slots */
    Py_ssize_t nfree;
    int shared; /* the workers are threads: every callable is known at once */
} fqpy_registry;

/* A registry slot pinned for the queue's life (env callables). */
#define FQPY_PINNED ((Py_ssize_t)1 << 40)

typedef struct fqpy_core {
    struct fqpy_state *st;
    const char *name; /* the face's type name, for messages */
    fq_queue q;
    int opened;   /* fq_queue_new succeeded, fq_queue_free not yet called */
    int finished; /* finished, cancelled or interrupted: no more use */
    int busy;     /* methods running (possibly with the GIL released) */
    unsigned long busy_thread;
    int locked;  /* inside a core call or a borrowed result: no re-entry */
    int in_core; /* a core call with the GIL released is running */
    int closing; /* interpreter exit: the queue is being closed */
    pid_t owner_pid;
    unsigned long fork_gen;    /* fqpy_fork_generation when opened */
    PyGILState_STATE gilstate; /* from the prepare hook to the parent hook */
    fqpy_registry reg;
    struct fqpy_core *live_next, **live_prev;
} fqpy_core;

/* core.c */
int fqpy_core_init(fqpy_core *c, struct fqpy_state *st, const char *name);
/* Starts the workers: sets the fork hooks in *o and links the queue into the
 * live list. Returns 0, or -1 with an exception. */
int fqpy_core_open(fqpy_core *c, fq_options *o);
/* cancel: stop running jobs (fq_cancel) before freeing. Releases the GIL. */
void fqpy_core_close(fqpy_core *c, int cancel);
/* Only for dealloc / tp_clear: no GIL release, no reference left. */
void fqpy_core_clear(fqpy_core *c);
int fqpy_core_traverse(fqpy_core *c, visitproc visit, void *arg);
int fqpy_cpu_count(void);
double fqpy_now(void);
/* The atexit clean-up of every open queue of the module. */
void fqpy_core_shutdown_all(struct fqpy_state *st);

/* hooks.c */
void fqpy_hook_prepare(void *arg);
void fqpy_hook_parent(void *arg);
void fqpy_hook_child(void *arg);
void fqpy_flush_std_streams(void);

/* errors.c */
PyObject *fqpy_core_error(fqpy_core *c, int rc, const char *what);
/* Formats the current exception as traceback text; clears it. New ref, or
 * NULL (with the error cleared) if even that fails. */
PyObject *fqpy_format_current_exc(struct fqpy_state *st, PyObject **exc_out);

/* guard.c: every method that touches the core goes through enter/leave. A
 * queue is used by one thread at a time. Re-entry from the same thread is
 * allowed from user code the face calls on purpose (an input generator),
 * never while the core is inside a call or a result buffer is borrowed
 * (unpickling runs __setstate__, fork hooks flush user streams). */
int fqpy_core_enter(fqpy_core *c, int allow_finished);
extern unsigned long fqpy_fork_generation;
/* Once per process, at module load. */
void fqpy_core_global_init(void);
void fqpy_core_leave(fqpy_core *c);
#define FQPY_LOCK(c) ((c)->locked++)
#define FQPY_UNLOCK(c) ((c)->locked--)

/* registry.c */
int fqpy_reg_init(fqpy_registry *r);
void fqpy_reg_clear(fqpy_registry *r);
/* The key of func, registering it if new (then not known by the workers
 * until the next refork). Does not count a use. */
Py_ssize_t fqpy_reg_key(fqpy_registry *r, PyObject *func);
void fqpy_reg_use(fqpy_registry *r, Py_ssize_t key, Py_ssize_t delta);
static inline int fqpy_reg_known(const fqpy_registry *r, Py_ssize_t key)
{
    return r->known[key];
}
/* After a refork: every slot is known; idle slots are freed when many. */
void fqpy_reg_reforked(fqpy_registry *r);
/* Inside a worker: the callable of key, borrowed, or NULL + exception. */
PyObject *fqpy_reg_get(fqpy_registry *r, Py_ssize_t key);

/* pickle.c */
PyObject *fqpy_dumps(struct fqpy_state *st, PyObject *obj);
PyObject *fqpy_loads_mem(struct fqpy_state *st, const void *data, size_t len);
/* exc if it survives pickling both ways, else a RuntimeError with its repr
 * (steals exc, returns a new reference). */
PyObject *fqpy_shippable_exc(struct fqpy_state *st, PyObject *exc);

/* wait.c: a timeout argument: None (or NULL) -> -1 (no limit), else seconds
 * >= 0 (negative clamps to 0; NaN is a ValueError). Shared by every face. */
int fqpy_parse_timeout(PyObject *o, double *out);
/* wait.c: fq_poll() with the GIL released, in slices, checking signals.
 * Returns fq_poll's count (0 on timeout or EINTR) or -1 with an exception
 * (KeyboardInterrupt included: the face decides what to stop). */
int fqpy_core_poll(fqpy_core *c, int ms);
/* A core call that may block, made with the GIL released. */
int fqpy_core_finish(fqpy_core *c);

#endif
