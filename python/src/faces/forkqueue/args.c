/* Checking and converting the arguments of the ForkQueue methods, with
 * errors that say what is expected. */
#include "../../fqpy.h"

#include <limits.h>
#include <math.h>

/* A time limit in seconds (None: none) as ms for the core: -1 for none. */
int fqpy_parse_limit(PyObject *o, const char *what, int *ms)
{
    if (o == Py_None) {
        *ms = -1;
        return 0;
    }
    if (PyBool_Check(o) || !PyNumber_Check(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a number of seconds or None, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    double t = PyFloat_AsDouble(o);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (!(t > 0) || isinf(t)) {
        if (isinf(t) && t > 0) {
            *ms = -1;
            return 0;
        }
        PyErr_Format(PyExc_ValueError,
                     "%s must be a positive number of seconds, not %R", what,
                     o);
        return -1;
    }
    double m = ceil(t * 1000);
    *ms = m > INT_MAX ? INT_MAX : (int)m;
    return 0;
}

PyObject *fqpy_normalize_kwargs(PyObject *argsv)
{
    if (argsv == NULL || argsv == Py_None)
        return NULL;
    if (PyDict_CheckExact(argsv))
        return Py_NewRef(argsv);
    PyObject *d = PyObject_CallOneArg((PyObject *)&PyDict_Type, argsv);
    if (d == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "argsv must be a mapping of keyword arguments, not %.100s",
                     Py_TYPE(argsv)->tp_name);
    }
    return d;
}

int fqpy_check_callable(PyObject *func, const char *method)
{
    if (PyCallable_Check(func))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s(): func must be callable, not %.100s",
                 method, Py_TYPE(func)->tp_name);
    return -1;
}

/* The arguments of add(): a tuple, or any other iterable (as func(*args)
 * takes), else a TypeError saying what is expected. */
PyObject *fqpy_add_args(PyObject *fargs)
{
    if (PyTuple_Check(fargs))
        return Py_NewRef(fargs);
    if (!PyUnicode_Check(fargs) && !PyBytes_Check(fargs)) {
        PyObject *t = PySequence_Tuple(fargs);
        if (t || !PyErr_ExceptionMatches(PyExc_TypeError))
            return t;
        PyErr_Clear();
    }
    PyErr_Format(PyExc_TypeError,
                 "add(): args must be a tuple of positional arguments, not "
                 "%.100s (%.200R); for a single argument write (%.200R,)",
                 Py_TYPE(fargs)->tp_name, fargs, fargs);
    return NULL;
}

/* The number of items of an input that has a length (else -1). */
Py_ssize_t fqpy_input_len(PyObject *o)
{
    if (!PySequence_Check(o) && !PyMapping_Check(o) && !PyAnySet_Check(o))
        return -1;
    Py_ssize_t n = PyObject_Size(o);
    if (n < 0)
        PyErr_Clear();
    return n;
}
