/* Pickling helpers shared by the faces (both sides of the fork). */
#include "../fqpy.h"

PyObject *fqpy_dumps(fqpy_state *st, PyObject *obj)
{
    return PyObject_CallFunctionObjArgs(st->dumps, obj, st->protocol, NULL);
}

PyObject *fqpy_loads_mem(fqpy_state *st, const void *data, size_t len)
{
    PyObject *mv =
        PyMemoryView_FromMemory((char *)data, (Py_ssize_t)len, PyBUF_READ);
    if (mv == NULL)
        return NULL;
    PyObject *o = PyObject_CallOneArg(st->loads, mv);
    Py_DECREF(mv);
    return o;
}

PyObject *fqpy_shippable_exc(fqpy_state *st, PyObject *exc)
{
    PyObject *b = fqpy_dumps(st, exc);
    PyObject *back = b ? PyObject_CallOneArg(st->loads, b) : NULL;
    Py_XDECREF(b);
    if (back) {
        Py_DECREF(back);
        return exc;
    }
    PyErr_Clear();
    PyObject *r = PyObject_Repr(exc);
    if (r == NULL) {
        PyErr_Clear();
        r = PyUnicode_FromString(Py_TYPE(exc)->tp_name);
    }
    PyObject *sub = r ? PyObject_CallOneArg(PyExc_RuntimeError, r) : NULL;
    Py_XDECREF(r);
    if (sub == NULL) {
        PyErr_Clear();
        return exc; /* keep it; the reply fallback will deal with it */
    }
    Py_DECREF(exc);
    return sub;
}
