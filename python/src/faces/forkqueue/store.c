/*
 * The buffer of result slots taken from the core but not yet yielded.
 *
 * The core already orders outcomes; this buffer only keeps them between the
 * moment they are taken (by poll(), wait() or an iterator) and the moment
 * they are yielded, plus placeholders for the items of a crashed batch that
 * are re-run one by one (so that they keep their place in ordered mode).
 */
#include "../../fqpy.h"

static int store_grow(fqpy_store *s)
{
    size_t ncap = s->cap ? s->cap * 2 : 64;
    fqpy_entry *nb = PyMem_Calloc(ncap, sizeof(*nb));
    if (nb == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < s->count; i++)
        nb[i] = s->buf[(s->head + i) & (s->cap - 1)];
    PyMem_Free(s->buf);
    s->buf = nb;
    s->cap = ncap;
    s->head = 0;
    return 0;
}

int fqpy_store_push(fqpy_store *s, PyObject *id, long long num, PyObject *value,
                    int state, uint64_t *seq)
{
    if (s->count == s->cap && store_grow(s) < 0)
        return -1;
    fqpy_entry *e = &s->buf[(s->head + s->count) & (s->cap - 1)];
    Py_XINCREF(id);
    e->id = id;
    e->num = num;
    Py_XINCREF(value);
    e->value = value;
    e->state = state;
    e->pos = 0;
    e->stamp = s->clock ? (*s->clock)++ : 0;
    s->items += fqpy_entry_items(e);
    if (state == FQPY_ERROR)
        s->nerrors++;
    if (seq)
        *seq = s->seq0 + s->count;
    s->count++;
    return 0;
}

PyObject *fqpy_entry_id(const fqpy_entry *e, Py_ssize_t i)
{
    if (e->state != FQPY_BATCH)
        return e->id ? Py_NewRef(e->id) : PyLong_FromLongLong(e->num);
    return e->id ? Py_NewRef(PyList_GET_ITEM(e->id, i))
                 : PyLong_FromLongLong(e->num + i);
}

Py_ssize_t fqpy_entry_items(const fqpy_entry *e)
{
    return e->state == FQPY_BATCH ? PyList_GET_SIZE(e->value) - e->pos : 1;
}

fqpy_entry *fqpy_store_at(fqpy_store *s, uint64_t seq)
{
    if (seq < s->seq0 || seq - s->seq0 >= s->count)
        return NULL;
    return &s->buf[(s->head + (size_t)(seq - s->seq0)) & (s->cap - 1)];
}

void fqpy_store_pop(fqpy_store *s, fqpy_entry *out)
{
    fqpy_entry *e = &s->buf[s->head];
    *out = *e;
    if (e->state == FQPY_ERROR)
        s->nerrors--;
    s->items -= fqpy_entry_items(e);
    e->id = e->value = NULL;
    s->head = (s->head + 1) & (s->cap - 1);
    s->count--;
    s->seq0++;
}

void fqpy_store_clear(fqpy_store *s)
{
    /* Detach first: a decref may run arbitrary code that looks at us. */
    fqpy_entry *buf = s->buf;
    size_t cap = s->cap, head = s->head, count = s->count;
    s->buf = NULL;
    s->cap = s->head = s->count = s->nerrors = s->items = 0;
    s->seq0 += count;
    for (size_t i = 0; i < count; i++) {
        fqpy_entry *e = &buf[(head + i) & (cap - 1)];
        Py_XDECREF(e->id);
        Py_XDECREF(e->value);
    }
    PyMem_Free(buf);
}

int fqpy_store_traverse(fqpy_store *s, visitproc visit, void *arg)
{
    for (size_t i = 0; i < s->count; i++) {
        fqpy_entry *e = &s->buf[(s->head + i) & (s->cap - 1)];
        Py_VISIT(e->id);
        Py_VISIT(e->value);
    }
    return 0;
}
