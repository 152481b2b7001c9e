/*
 * Private to channel.c and exchange.c: the Channel object and the helpers
 * the exchange shares with it.
 */
#ifndef FQPY_CHANNEL_H
#define FQPY_CHANNEL_H

#include "fqpy.h"

#include <sys/types.h>

#define FQPY_SLICE_MS 50

typedef struct fqpy_channel {
    PyObject_HEAD fq_channel ch;
    pid_t pid;   /* the child's pid on the parent's end, 0 in the child */
    pid_t owner; /* the process this end belongs to */
    unsigned long fork_gen; /* fqpy_fork_generation there: checked per
                               call instead of getpid(), a syscall */
    int closed;
    int reaped;
    int returncode;
    int busy;
    PyObject *weakreflist;
} fqpy_channel;

/* The module's Channel type (new reference). */
PyObject *fqpy_channel_type_of(PyObject *module);
/* Raises the Python error for a core error code; returns NULL. self may be
 * NULL. */
PyObject *fqpy_channel_error(fqpy_channel *self, int rc, const char *what);
/* fqpy_parse_timeout() is in core/wait.c. */
/* The next slice of a wait until deadline (-1: none), in ms; 0 once past. */
int fqpy_slice_ms(double deadline);
/* Records a waitpid() status (-1: collected elsewhere) as the returncode. */
void fqpy_channel_reaped(fqpy_channel *self, int st);

/* exchange.c: adds the Exchange type. */
int fqpy_exchange_add(PyObject *m);

#endif
