/*
 * A call: the results of one process()/map() (or, id 0, of add()). Results
 * of a call never come out of another; closing it drops them on arrival
 * and makes the workers skip its items not yet started: a bit per call in
 * a page shared with the workers (MAP_SHARED, mapped before they fork),
 * checked by the worker before each item.
 */
#include "../../fqpy.h"

int fqpy_call_cancelled(const unsigned char *page, uint32_t id)
{
    if (page == NULL || id == 0)
        return 0;
    uint32_t b = id % FQPY_CANCEL_BITS;
    return (__atomic_load_n(&page[b / 8], __ATOMIC_RELAXED) >> (b % 8)) & 1;
}

static void set_bit(unsigned char *page, uint32_t id, int on)
{
    if (page == NULL || id == 0)
        return;
    uint32_t b = id % FQPY_CANCEL_BITS;
    unsigned char m = (unsigned char)(1u << (b % 8));
    if (on)
        __atomic_fetch_or(&page[b / 8], m, __ATOMIC_RELAXED);
    else
        __atomic_fetch_and(&page[b / 8], (unsigned char)~m, __ATOMIC_RELAXED);
}

fqpy_call *fqpy_call_new(fqpy_queue *q)
{
    fqpy_call *c = PyObject_GC_New(fqpy_call, q->st->call_type);
    if (c == NULL)
        return NULL;
    memset(&c->store, 0, sizeof(c->store));
    c->store.clock = &q->clock;
    c->q = q;
    c->closed = 0;
    c->jobs_out = 0;
    if (q->main == NULL) {
        c->id = 0;
    } else {
        /* Ids wrap within the page; 0 is add()'s. */
        uint32_t id = q->next_call_id++ % FQPY_CANCEL_BITS;
        if (id == 0)
            id = q->next_call_id++ % FQPY_CANCEL_BITS;
        c->id = id;
        set_bit(q->cancel_page, id, 0);
    }
    c->next = q->calls;
    if (q->calls)
        q->calls->prev = &c->next;
    q->calls = c;
    c->prev = &q->calls;
    PyObject_GC_Track(c);
    return c;
}

void fqpy_call_unlink(fqpy_call *c)
{
    if (c->prev) {
        *c->prev = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = NULL;
        c->next = NULL;
    }
    c->q = NULL;
}

void fqpy_call_close(fqpy_call *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    if (c->q)
        set_bit(c->q->cancel_page, c->id, 1);
    fqpy_store_clear(&c->store);
}

static int call_traverse(fqpy_call *c, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(c));
    return fqpy_store_traverse(&c->store, visit, arg);
}

static int call_clear(fqpy_call *c)
{
    fqpy_store_clear(&c->store);
    return 0;
}

static void call_dealloc(fqpy_call *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    fqpy_call_unlink(c);
    fqpy_store_clear(&c->store);
    PyMem_Free(c->store.buf);
    PyObject_GC_Del(c);
    Py_DECREF(tp);
}

static PyType_Slot call_slots[] = {{Py_tp_traverse, call_traverse},
                                   {Py_tp_clear, call_clear},
                                   {Py_tp_dealloc, call_dealloc},
                                   {0, NULL}};

PyType_Spec fqpy_call_spec = {
    .name = "forkqueue._Call",
    .basicsize = sizeof(fqpy_call),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = call_slots,
};
