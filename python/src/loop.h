/*
 * loop.c: the private _Loop type (the core's fq_loop for outside event
 * loops such as asyncio).
 */
#ifndef FQPY_LOOP_H
#define FQPY_LOOP_H

#include "fqpy.h"

/* Adds the _Loop type and its constants to the module. */
int fqpy_loop_add(PyObject *m);

#endif
