/*
 * The callable registry. A job names its callable by a key into the list;
 * the worker finds it in its inherited copy, so the callable itself (a
 * lambda, a closure) is never pickled. A callable registered after the
 * workers were forked is unknown to them until the next refork.
 *
 * Hashable callables are found by equality (a bound method made afresh by
 * each attribute access equals the previous one); others by identity.
 */
#include "../fqpy.h"

/* Idle slots are freed at a refork once this many are in use. */
#define REG_SOFT_MAX 256

int fqpy_reg_init(fqpy_registry *r)
{
    r->list = PyList_New(0);
    r->keycache = PyDict_New();
    r->ckeys = PyList_New(0);
    if (!r->list || !r->keycache || !r->ckeys)
        return -1;
    return 0;
}

void fqpy_reg_clear(fqpy_registry *r)
{
    r->last_func = NULL;
    Py_CLEAR(r->list);
    Py_CLEAR(r->keycache);
    Py_CLEAR(r->ckeys);
    PyMem_Free(r->users);
    PyMem_Free(r->known);
    PyMem_Free(r->item_ns);
    PyMem_Free(r->batch_seen);
    PyMem_Free(r->freelist);
    r->users = NULL;
    r->known = NULL;
    r->item_ns = NULL;
    r->batch_seen = NULL;
    r->freelist = NULL;
    r->cap = r->nfree = r->nlive = r->nunknown = 0;
}

#define GROW(field, ncap)                                                      \
    do {                                                                       \
        void *p_ = PyMem_Realloc(r->field, (ncap) * sizeof(*r->field));        \
        if (p_ == NULL) {                                                      \
            PyErr_NoMemory();                                                  \
            return -1;                                                         \
        }                                                                      \
        r->field = p_;                                                         \
    } while (0)

static int grow(fqpy_registry *r, Py_ssize_t need)
{
    if (need <= r->cap)
        return 0;
    Py_ssize_t ncap = r->cap ? r->cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    GROW(users, ncap);
    GROW(known, ncap);
    GROW(item_ns, ncap);
    GROW(batch_seen, ncap);
    GROW(freelist, ncap);
    r->cap = ncap;
    return 0;
}

static void reset_slot(fqpy_registry *r, Py_ssize_t k)
{
    r->users[k] = 0;
    r->known[k] = 0;
    r->item_ns[k] = 0;
    r->batch_seen[k] = 0;
}

Py_ssize_t fqpy_reg_key(fqpy_registry *r, PyObject *func)
{
    if (func == r->last_func)
        return r->last_key;
    PyObject *ck;
    if (PyObject_Hash(func) == -1) {
        PyErr_Clear();
        ck = PyLong_FromVoidPtr(func);
        if (ck == NULL)
            return -1;
    } else {
        ck = Py_NewRef(func);
    }
    Py_ssize_t key;
    PyObject *k = PyDict_GetItemWithError(r->keycache, ck);
    if (k) {
        key = PyLong_AsSsize_t(k);
    } else if (PyErr_Occurred()) {
        Py_DECREF(ck);
        return -1;
    } else {
        /* Threads need no refork to learn a callable: idle slots are freed
         * here instead, once many (a job holds its callable). */
        if (r->shared && r->nlive > REG_SOFT_MAX)
            fqpy_reg_reforked(r);
        Py_ssize_t n = PyList_GET_SIZE(r->list);
        if (grow(r, n + 1) < 0) {
            Py_DECREF(ck);
            return -1;
        }
        if (r->nfree > 0) {
            key = r->freelist[--r->nfree];
            PyList_SetItem(r->list, key, Py_NewRef(func));
            PyList_SetItem(r->ckeys, key, Py_NewRef(ck));
        } else {
            key = n;
            if (PyList_Append(r->list, func) < 0 ||
                PyList_Append(r->ckeys, ck) < 0) {
                Py_DECREF(ck);
                return -1;
            }
        }
        reset_slot(r, key);
        r->nlive++;
        if (r->shared)
            r->known[key] = 1; /* threads see the registry itself */
        else
            r->nunknown++;
        k = PyLong_FromSsize_t(key);
        if (k == NULL || PyDict_SetItem(r->keycache, ck, k) < 0) {
            Py_XDECREF(k);
            Py_DECREF(ck);
            return -1;
        }
        Py_DECREF(k);
        /* list[key] may differ from func (equal, not identical). */
        func = PyList_GET_ITEM(r->list, key);
    }
    Py_DECREF(ck);
    r->last_func = func;
    r->last_key = key;
    return key;
}

void fqpy_reg_use(fqpy_registry *r, Py_ssize_t key, Py_ssize_t delta)
{
    if (key >= 0 && key < r->cap)
        r->users[key] += delta;
}

void fqpy_reg_reforked(fqpy_registry *r)
{
    Py_ssize_t n = r->list ? PyList_GET_SIZE(r->list) : 0;
    int prune = r->nlive > REG_SOFT_MAX;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (PyList_GET_ITEM(r->list, k) == Py_None)
            continue;
        r->known[k] = 1;
        if (!prune || r->users[k] != 0)
            continue;
        /* Nobody uses it: free the slot (and the callable). Workers keep
         * their copy, harmless: a new callable put here is unknown to them
         * until the next refork. */
        PyObject *ck = PyList_GET_ITEM(r->ckeys, k);
        if (PyDict_DelItem(r->keycache, ck) < 0)
            PyErr_Clear();
        if (PyList_GET_ITEM(r->list, k) == r->last_func)
            r->last_func = NULL;
        PyList_SetItem(r->list, k, Py_NewRef(Py_None));
        PyList_SetItem(r->ckeys, k, Py_NewRef(Py_None));
        reset_slot(r, k);
        r->freelist[r->nfree++] = k;
        r->nlive--;
    }
    r->nunknown = 0;
}

PyObject *fqpy_reg_get(fqpy_registry *r, Py_ssize_t key)
{
    if (key < 0 || key >= PyList_GET_SIZE(r->list) ||
        PyList_GET_ITEM(r->list, key) == Py_None) {
        PyErr_Format(PyExc_RuntimeError,
                     "forkqueue: this worker does not know callable #%zd", key);
        return NULL;
    }
    return PyList_GET_ITEM(r->list, key);
}
