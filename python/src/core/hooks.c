/*
 * Fork hooks. Workers are forked from fq_queue_new() and fq_refork() (GIL
 * held) and, to replace a dead worker, from inside fq_poll() (GIL
 * released): take the GIL in every case, and tell the interpreter a fork is
 * coming. The core's re-entry guard is held around every such call, so user
 * code run here (a stream's flush) cannot call back into the queue.
 */
#include "../fqpy.h"

void fqpy_flush_std_streams(void)
{
    static const char *names[] = {"stdout", "stderr"};
    for (int i = 0; i < 2; i++) {
        PyObject *f = PySys_GetObject(names[i]); /* borrowed */
        if (f && f != Py_None) {
            PyObject *r = PyObject_CallMethod(f, "flush", NULL);
            Py_XDECREF(r);
        }
    }
    PyErr_Clear();
}

void fqpy_hook_prepare(void *arg)
{
    fqpy_core *c = arg;
    c->gilstate = PyGILState_Ensure();
    /* A worker must not inherit unflushed output, or it would print it
     * again when it flushes its own. */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    fqpy_flush_std_streams();
    PyErr_Restore(t, v, tb);
    PyOS_BeforeFork();
}

void fqpy_hook_parent(void *arg)
{
    fqpy_core *c = arg;
    PyOS_AfterFork_Parent();
    PyGILState_Release(c->gilstate);
}

void fqpy_hook_child(void *arg)
{
    (void)arg;
    /* The worker keeps the GIL until it exits. */
    PyOS_AfterFork_Child();
    /* Inherited objects are never garbage here: keep the collector from
     * walking them, which would also copy every page they live on. */
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *r = gc ? PyObject_CallMethod(gc, "freeze", NULL) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(gc);
    PyErr_Clear();
}
