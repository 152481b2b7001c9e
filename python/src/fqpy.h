/*
 * Internal header of the forkqueue CPython extension (_forkqueue).
 *
 * Layout:
 *   module.c          module state, exceptions; registers each face's types
 *   core/             shared by every face: fork hooks, error conversion,
 *                     the re-entry guard, the callable registry, pickling,
 *                     waiting with the GIL released and Ctrl-C (core/core.h)
 *   faces/forkqueue/  the ForkQueue face (faces/forkqueue/fq.h)
 */
#ifndef FQPY_H
#define FQPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "core/core.h"
#include "forkqueue.h"

/* Per-module state: everything the module needs, no static PyObject. */
typedef struct fqpy_state {
    PyTypeObject *queue_type;
    PyTypeObject *iter_type;
    PyTypeObject *call_type;
    PyTypeObject *job_type;     /* forkqueue.Job (faces/forkqueue/job.c) */
    PyObject *exc_type;         /* ForkQueueException */
    PyObject *exc_subtypes;     /* dict: job exception type -> subclass */
    PyObject *dumps;            /* _pickle.dumps */
    PyObject *loads;            /* _pickle.loads */
    PyObject *protocol;         /* pickle.HIGHEST_PROTOCOL as an int object */
    PyObject *pickling_error;   /* pickle.PicklingError */
    PyObject *format_exception; /* traceback.format_exception */
    PyObject *empty_str;
    /* Core queues not yet closed, for the atexit clean-up (borrowed). */
    struct fqpy_core *live;
} fqpy_state;

/* module.c */
fqpy_state *fqpy_state_of_type(PyTypeObject *tp);

/* channel.c: adds Channel, fork_channel(), child_exit(), wait_channels(). */
int fqpy_channel_add(PyObject *m);

/* ring.c: adds ResultRing (memory shared with a forked child). */
int fqpy_ring_add(PyObject *m);

/* Each face registers its types and names on the module. */
int fqpy_forkqueue_register(PyObject *m, fqpy_state *st);

#include "faces/forkqueue/fq.h"

#endif
