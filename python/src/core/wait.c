/* Waiting on the core with the GIL released; Ctrl-C stays prompt. */
#include "../fqpy.h"

#include <math.h>

int fqpy_parse_timeout(PyObject *o, double *out)
{
    if (o == NULL || o == Py_None) {
        *out = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(o);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(t)) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    *out = t < 0 ? 0 : t;
    return 0;
}

int fqpy_core_poll(fqpy_core *c, int ms)
{
    if (c->closing || !c->opened) {
        PyErr_Format(PyExc_RuntimeError,
                     c->closing ? "this %s was closed at interpreter exit"
                                : "this %s is finished; create a new one",
                     c->name);
        return -1;
    }
    int rc;
    fq_queue q = c->q;
    c->in_core++;
    FQPY_LOCK(c);
    Py_BEGIN_ALLOW_THREADS
    rc = fq_poll(q, ms);
    Py_END_ALLOW_THREADS
    FQPY_UNLOCK(c);
    c->in_core--;
    /* Also after a plain timeout: the signal may have been caught by another
     * thread, which does not interrupt our poll(). */
    if (PyErr_CheckSignals() < 0)
        return -1;
    if (c->closing) {
        PyErr_Format(PyExc_RuntimeError,
                     "this %s was closed at interpreter exit", c->name);
        return -1;
    }
    if (rc < 0 && rc != FQ_EINTR) {
        fqpy_core_error(c, rc, "waiting for results");
        return -1;
    }
    return rc < 0 ? 0 : rc;
}

int fqpy_core_finish(fqpy_core *c)
{
    int rc;
    fq_queue q = c->q;
    c->in_core++;
    FQPY_LOCK(c);
    Py_BEGIN_ALLOW_THREADS
    rc = fq_finish(q);
    Py_END_ALLOW_THREADS
    FQPY_UNLOCK(c);
    c->in_core--;
    return rc;
}
