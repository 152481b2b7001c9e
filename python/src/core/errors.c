/* Core error codes as Python exceptions, and traceback text. */
#include "../fqpy.h"

PyObject *fqpy_core_error(fqpy_core *c, int rc, const char *what)
{
    switch (rc) {
    case FQ_ENOMEM:
        return PyErr_NoMemory();
    case FQ_EFINISHED:
    case FQ_ECLOSED:
        PyErr_Format(PyExc_RuntimeError,
                     "this %s is finished; create a new one", c->name);
        return NULL;
    case FQ_EFOREIGN:
        PyErr_Format(PyExc_RuntimeError,
                     "this %s belongs to another process (a forked child "
                     "cannot use its parent's queue)",
                     c->name);
        return NULL;
    case FQ_EINIT:
        PyErr_SetString(c->st->exc_type,
                        "initfunc failed in a worker; the queue is stopped");
        return NULL;
    case FQ_EFORK:
    case FQ_ESYS:
        PyErr_Format(PyExc_OSError, "forkqueue: %s: %s", what, fq_strerror(rc));
        return NULL;
    default:
        PyErr_Format(PyExc_RuntimeError, "forkqueue: %s: %s (%s)", what,
                     fq_strerror(rc), fq_err_name(rc));
        return NULL;
    }
}

PyObject *fqpy_format_current_exc(fqpy_state *st, PyObject **exc_out)
{
    PyObject *t, *v, *tb, *lines, *text = NULL;
    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL) {
        t = Py_NewRef(PyExc_RuntimeError);
        v = PyUnicode_FromString("unknown error");
    }
    PyErr_NormalizeException(&t, &v, &tb);
    if (v == NULL) {
        PyErr_Clear();
        v = PyObject_CallNoArgs(PyExc_RuntimeError);
        if (v == NULL)
            PyErr_Clear();
    }
    if (tb && v)
        PyException_SetTraceback(v, tb);
    lines = PyObject_CallFunctionObjArgs(
        st->format_exception, t, v ? v : Py_None, tb ? tb : Py_None, NULL);
    if (lines) {
        text = PyUnicode_Join(st->empty_str, lines);
        Py_DECREF(lines);
    }
    if (text == NULL) {
        PyErr_Clear();
        text = PyUnicode_FromFormat("%s: <traceback could not be formatted>\n",
                                    ((PyTypeObject *)t)->tp_name);
        if (text == NULL)
            PyErr_Clear();
    }
    Py_XDECREF(t);
    Py_XDECREF(tb);
    if (exc_out)
        *exc_out = v;
    else
        Py_XDECREF(v);
    return text;
}
