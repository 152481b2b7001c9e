/*
 * The module `forkqueue._forkqueue`: state, types and exceptions, set up with
 * multi-phase initialisation. All types are heap types and no PyObject lives
 * in a static variable, so the module can be loaded more than once.
 */
#include "fqpy.h"
#include "loop.h"

#include <unistd.h>

static struct PyModuleDef fqpy_module;

#if PY_VERSION_HEX < 0x030B0000
/* PyType_GetModuleByDef() is new in 3.11: the same walk along the MRO. */
static PyObject *PyType_GetModuleByDef(PyTypeObject *tp, PyModuleDef *def)
{
    PyObject *mro = tp->tp_mro;
    for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!PyType_HasFeature(t, Py_TPFLAGS_HEAPTYPE))
            continue;
        PyObject *m = PyType_GetModule(t);
        if (m == NULL) {
            PyErr_Clear();
            continue;
        }
        if (PyModule_GetDef(m) == def)
            return m;
    }
    PyErr_Format(PyExc_TypeError, "%s is not a forkqueue type", tp->tp_name);
    return NULL;
}
#endif

fqpy_state *fqpy_state_of_type(PyTypeObject *tp)
{
    PyObject *m = PyType_GetModuleByDef(tp, &fqpy_module);
    return m ? PyModule_GetState(m) : NULL;
}

/* Called by forkqueue/__init__.py at interpreter exit: stops the workers of
 * every queue still open, so that none outlives the program. */
static PyObject *shutdown_all(PyObject *module, PyObject *noargs)
{
    (void)noargs;
    fqpy_core_shutdown_all(PyModule_GetState(module));
    Py_RETURN_NONE;
}

static PyObject *cpu_count(PyObject *module, PyObject *noargs)
{
    (void)module;
    (void)noargs;
    return PyLong_FromLong(fqpy_cpu_count());
}

static PyObject *core_version(PyObject *module, PyObject *noargs)
{
    (void)module;
    (void)noargs;
    return PyUnicode_FromString(fq_version());
}

static PyMethodDef fqpy_methods[] = {
    {"_shutdown_all", shutdown_all, METH_NOARGS,
     "Stop the workers of every open queue (used at interpreter exit)."},
    {"cpu_count", cpu_count, METH_NOARGS,
     "CPUs this process may run on (the default of numforks=None)."},
    {"core_version", core_version, METH_NOARGS,
     "Version of the C library forkqueue linked into the extension."},
    {NULL, NULL, 0, NULL}};

static int fqpy_exec(PyObject *m)
{
    fqpy_state *st = PyModule_GetState(m);
    PyObject *pickle = NULL, *tbmod = NULL;

    pickle = PyImport_ImportModule("_pickle");
    if (pickle == NULL) {
        PyErr_Clear();
        pickle = PyImport_ImportModule("pickle");
    }
    if (pickle == NULL)
        goto fail;
    st->dumps = PyObject_GetAttrString(pickle, "dumps");
    st->loads = PyObject_GetAttrString(pickle, "loads");
    Py_CLEAR(pickle);
    if (!st->dumps || !st->loads)
        goto fail;
    pickle = PyImport_ImportModule("pickle");
    if (pickle == NULL)
        goto fail;
    st->protocol = PyObject_GetAttrString(pickle, "HIGHEST_PROTOCOL");
    Py_CLEAR(pickle);
    if (st->protocol == NULL)
        goto fail;
    tbmod = PyImport_ImportModule("traceback");
    if (tbmod == NULL)
        goto fail;
    st->format_exception = PyObject_GetAttrString(tbmod, "format_exception");
    Py_CLEAR(tbmod);
    if (st->format_exception == NULL)
        goto fail;
    st->empty_str = PyUnicode_FromString("");
    if (st->empty_str == NULL)
        goto fail;

    pickle = PyImport_ImportModule("pickle");
    if (pickle == NULL)
        goto fail;
    st->pickling_error = PyObject_GetAttrString(pickle, "PicklingError");
    Py_CLEAR(pickle);
    if (st->pickling_error == NULL)
        goto fail;

    fqpy_core_global_init();

    /* One line per face. */
    if (fqpy_forkqueue_register(m, st) < 0)
        goto fail;

    if (PyModule_AddStringConstant(m, "CORE_VERSION", fq_version()) < 0)
        goto fail;
    if (fqpy_channel_add(m) < 0) /* channel.c */
        goto fail;
    if (fqpy_loop_add(m) < 0) /* loop.c */
        goto fail;
    if (fqpy_ring_add(m) < 0) /* ring.c */
        goto fail;
    return 0;

fail:
    Py_XDECREF(pickle);
    Py_XDECREF(tbmod);
    return -1;
}

static int fqpy_traverse(PyObject *m, visitproc visit, void *arg)
{
    fqpy_state *st = PyModule_GetState(m);
    if (st == NULL)
        return 0;
    Py_VISIT(st->queue_type);
    Py_VISIT(st->iter_type);
    Py_VISIT(st->job_type);
    Py_VISIT(st->pickling_error);
    Py_VISIT(st->exc_subtypes);
    Py_VISIT(st->call_type);
    Py_VISIT(st->exc_type);
    Py_VISIT(st->dumps);
    Py_VISIT(st->loads);
    Py_VISIT(st->protocol);
    Py_VISIT(st->format_exception);
    Py_VISIT(st->empty_str);
    return 0;
}

static int fqpy_clear(PyObject *m)
{
    fqpy_state *st = PyModule_GetState(m);
    if (st == NULL)
        return 0;
    Py_CLEAR(st->queue_type);
    Py_CLEAR(st->iter_type);
    Py_CLEAR(st->job_type);
    Py_CLEAR(st->pickling_error);
    Py_CLEAR(st->exc_subtypes);
    Py_CLEAR(st->call_type);
    Py_CLEAR(st->exc_type);
    Py_CLEAR(st->dumps);
    Py_CLEAR(st->loads);
    Py_CLEAR(st->protocol);
    Py_CLEAR(st->format_exception);
    Py_CLEAR(st->empty_str);
    return 0;
}

static void fqpy_free(void *m)
{
    fqpy_clear((PyObject *)m);
}

static PyModuleDef_Slot fqpy_slots[] = {
    {Py_mod_exec, fqpy_exec},
/* The fork hooks use the PyGILState API, which knows one interpreter. */
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL}};

static struct PyModuleDef fqpy_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "forkqueue._forkqueue",
    .m_doc = "C implementation of forkqueue: run Python callables in forked "
             "worker processes.",
    .m_size = sizeof(fqpy_state),
    .m_methods = fqpy_methods,
    .m_slots = fqpy_slots,
    .m_traverse = fqpy_traverse,
    .m_clear = fqpy_clear,
    .m_free = fqpy_free,
};

PyMODINIT_FUNC PyInit__forkqueue(void)
{
    return PyModuleDef_Init(&fqpy_module);
}
