/*
 * _forkqueue.ResultRing: messages from a forked child to its parent through
 * memory both share, for results that must outlive the child without a
 * system call each (the workers face's process kind: every result a
 * persistent worker finishes reaches the parent even if the worker is
 * killed right after, and its parent reads them in groups).
 *
 * Made by the parent before the fork (the mapping is MAP_SHARED, so both
 * processes see the same bytes). One writer (the child's put) and one
 * reader (the parent's take), each on its own side of the header:
 *
 *   wcount  entries published by the writer (release); an entry whose
 *           writer died before publishing it does not exist
 *   rbytes  bytes the reader is done with (release): room for the writer
 *   waiting the reader is about to block on another descriptor: the next
 *           put clears it and tells its caller to wake the reader up (a
 *           message on that descriptor); seq_cst on both sides, so either
 *           the reader sees the entry or the writer sees the flag
 *
 * An entry is an 8-byte header (the payload's length) and the payload,
 * padded to 8 bytes. Two lengths are reserved: WRAP (the rest of the ring
 * up to its end is unused: the entry is at offset 0) and MARKER (an entry
 * with no payload standing for a message the writer sent another way, in
 * its place in the order: take stops there until skip_marker).
 *
 * The reader checks every length against the ring before using it: the
 * child runs user code and could scribble on the ring; the parent then
 * raises ConnectionError instead of reading out of bounds.
 */
#include "fqpy.h"

#include <marshal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#define RING_WRAP UINT32_MAX
#define RING_MARKER (UINT32_MAX - 1)
#define RING_HDR 8u
/* What an entry's payload is (the header's second 4 bytes). */
enum {
    KIND_BYTES = 0,   /* put(): bytes, handed to take()'s loads */
    KIND_INT = 1,     /* put_obj() of an int: 8 bytes, native order */
    KIND_MARSHAL = 2, /* put_obj() of a float, str, bytes, None or bool
                         (exact types, which marshal keeps as they are) */
};
#define RING_MIN (4u * 1024)
#define RING_MAX (256u * 1024 * 1024)

typedef struct ring_shared {
    _Atomic uint64_t wcount; /* writer: entries published */
    unsigned char pad0[56];
    _Atomic uint64_t rbytes; /* reader: bytes consumed */
    unsigned char pad1[56];
    _Atomic uint32_t waiting; /* reader: wake me with a message */
    unsigned char pad2[60];
} ring_shared;

typedef struct ring_obj {
    PyObject_HEAD ring_shared *sh;
    unsigned char *data;
    size_t cap;     /* a power of two */
    size_t maplen;  /* header and data */
    fqpy_state *st; /* the module's pickle.dumps and protocol (put_obj) */
    /* Writer's own copy (only the writer changes them). */
    uint64_t wbytes;
    uint64_t wn;
    uint64_t wwoke; /* wn when the reader was last woken (see dirty) */
    /* Reader's own copy. */
    uint64_t rcount;
    uint64_t rpos;
} ring_obj;

static size_t entry_size(size_t len)
{
    return RING_HDR + ((len + 7) & ~(size_t)7);
}

/* ---- writer -------------------------------------------------------------- */

/* Reserves room for an entry of len payload bytes; returns its offset, or
 * -1 when the ring has no room now. Writes a WRAP header when the entry
 * does not fit before the end. */
static Py_ssize_t reserve(ring_obj *r, size_t len)
{
    size_t esz = entry_size(len);
    uint64_t used =
        r->wbytes - atomic_load_explicit(&r->sh->rbytes, memory_order_acquire);
    size_t off = (size_t)(r->wbytes & (r->cap - 1));
    size_t toend = r->cap - off;
    size_t need = esz <= toend ? esz : toend + esz;
    if (used + need > r->cap)
        return -1;
    if (esz > toend) {
        uint32_t w = RING_WRAP;
        memcpy(r->data + off, &w, sizeof(w));
        r->wbytes += toend;
        off = 0;
    }
    return (Py_ssize_t)off;
}

/* Publishes the entry just written; 1 if the reader asked to be woken. */
static int publish(ring_obj *r, size_t len)
{
    r->wbytes += entry_size(len);
    r->wn++;
    atomic_store_explicit(&r->sh->wcount, r->wn, memory_order_seq_cst);
    if (atomic_load_explicit(&r->sh->waiting, memory_order_seq_cst) &&
        atomic_exchange_explicit(&r->sh->waiting, 0, memory_order_seq_cst)) {
        r->wwoke = r->wn;
        return 1;
    }
    return 0;
}

/* Writes one entry of len bytes from p; put()'s codes. */
static int write_entry(ring_obj *r, uint32_t kind, const void *p, size_t len)
{
    if (entry_size(len) > r->cap / 4)
        return -2;
    Py_ssize_t off = reserve(r, len);
    if (off < 0)
        return -1;
    uint32_t hdr[2] = {(uint32_t)len, kind};
    memcpy(r->data + off, hdr, sizeof(hdr));
    memcpy(r->data + off + RING_HDR, p, len);
    return publish(r, len);
}

static PyObject *ring_put(ring_obj *r, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = write_entry(r, KIND_BYTES, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromLong(rc);
}

static PyObject *pickled(ring_obj *r, PyObject *value)
{
    PyObject *args[2] = {value, r->st->protocol};
    PyObject *b = PyObject_Vectorcall(r->st->dumps, args, 2, NULL);
    if (b != NULL && !PyBytes_Check(b)) {
        Py_DECREF(b);
        PyErr_SetString(
            PyExc_TypeError,
            "ResultRing.put_obj: pickle.dumps did not return bytes");
        return NULL;
    }
    return b;
}

/* Whether marshal keeps value as it is: exact types only (a subclass
 * would come back as its base). */
static int marshal_keeps(PyObject *v)
{
    return v == Py_None || PyBool_Check(v) || PyFloat_CheckExact(v) ||
           PyLong_CheckExact(v) || PyUnicode_CheckExact(v) ||
           PyBytes_CheckExact(v);
}

/* The value, as put() of pickle.dumps(value, HIGHEST_PROTOCOL) would have
 * it read back, without a pickle for the common plain values: an int that
 * fits in 64 bits as such, the other values marshal keeps marshalled. None
 * when put answered 0; otherwise (code, pickled bytes), for the caller to
 * finish. */
static PyObject *ring_put_obj(ring_obj *r, PyObject *value)
{
    int rc;
    PyObject *b = NULL;
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (x == -1 && PyErr_Occurred())
            return NULL;
        if (!overflow) {
            int64_t v = x;
            rc = write_entry(r, KIND_INT, &v, sizeof(v));
            goto done;
        }
    }
    if (marshal_keeps(value)) {
        b = PyMarshal_WriteObjectToString(value, Py_MARSHAL_VERSION);
        if (b == NULL)
            return NULL;
        rc = write_entry(r, KIND_MARSHAL, PyBytes_AS_STRING(b),
                         (size_t)PyBytes_GET_SIZE(b));
        Py_CLEAR(b);
        goto done;
    }
    b = pickled(r, value);
    if (b == NULL)
        return NULL;
    rc = write_entry(r, KIND_BYTES, PyBytes_AS_STRING(b),
                     (size_t)PyBytes_GET_SIZE(b));
done:
    if (rc == 0) {
        Py_XDECREF(b);
        Py_RETURN_NONE;
    }
    if (b == NULL && (b = pickled(r, value)) == NULL)
        return NULL;
    return Py_BuildValue("(iN)", rc, b);
}

static PyObject *ring_put_marker(ring_obj *r, PyObject *noargs)
{
    (void)noargs;
    Py_ssize_t off = reserve(r, 0);
    if (off < 0)
        return PyLong_FromLong(-1);
    uint32_t m[2] = {RING_MARKER, KIND_BYTES};
    memcpy(r->data + off, m, sizeof(m));
    return PyLong_FromLong(publish(r, 0));
}

static PyObject *ring_dirty(ring_obj *r, PyObject *noargs)
{
    (void)noargs;
    int d = r->wn != r->wwoke;
    r->wwoke = r->wn;
    return PyBool_FromLong(d);
}

/* ---- reader -------------------------------------------------------------- */

static PyObject *corrupt(void)
{
    PyErr_SetString(PyExc_ConnectionError,
                    "ResultRing: the worker's ring holds an entry that "
                    "does not fit in it (its memory was overwritten)");
    return NULL;
}

/* The next entry's header at the reader's position, past a WRAP; its
 * length in *len. 0: none published; 1: one; -1: corrupt (raised). */
static int next_entry(ring_obj *r, uint64_t avail, size_t *off, uint32_t *len)
{
    if (r->rcount >= avail)
        return 0;
    for (int hop = 0; hop < 2; hop++) {
        size_t o = (size_t)(r->rpos & (r->cap - 1));
        uint32_t l;
        memcpy(&l, r->data + o, sizeof(l));
        if (l == RING_WRAP) {
            if (hop || o == 0) {
                corrupt();
                return -1;
            }
            r->rpos += r->cap - o;
            continue;
        }
        if (l != RING_MARKER && entry_size(l) > r->cap - o) {
            corrupt();
            return -1;
        }
        *off = o;
        *len = l;
        return 1;
    }
    corrupt();
    return -1;
}

static void consume(ring_obj *r, size_t len)
{
    r->rpos += entry_size(len);
    r->rcount++;
    atomic_store_explicit(&r->sh->rbytes, r->rpos, memory_order_release);
}

/* The value of the entry at off (consumed, even on error). */
static PyObject *entry_value(ring_obj *r, size_t off, uint32_t len,
                             PyObject *loads)
{
    uint32_t kind;
    memcpy(&kind, r->data + off + 4, sizeof(kind));
    const char *p = (const char *)r->data + off + RING_HDR;
    PyObject *v;
    if (kind == KIND_INT && len == sizeof(int64_t)) {
        int64_t x;
        memcpy(&x, p, sizeof(x));
        consume(r, len);
        return PyLong_FromLongLong(x);
    }
    if (kind == KIND_MARSHAL) {
        v = PyMarshal_ReadObjectFromString(p, (Py_ssize_t)len);
        consume(r, len);
        return v;
    }
    if (kind != KIND_BYTES) {
        consume(r, len);
        return corrupt();
    }
    v = PyBytes_FromStringAndSize(p, (Py_ssize_t)len);
    consume(r, len); /* copied: the writer may reuse it */
    if (v == NULL || loads == Py_None)
        return v;
    PyObject *o = PyObject_CallOneArg(loads, v);
    Py_DECREF(v);
    return o;
}

static PyObject *ring_take(ring_obj *r, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"append", "loads", "final", NULL};
    PyObject *append, *loads = Py_None;
    int final = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Op:take", kwlist, &append,
                                     &loads, &final))
        return NULL;
    uint64_t avail = atomic_load_explicit(&r->sh->wcount, memory_order_acquire);
    long n = 0;
    for (;;) {
        size_t off;
        uint32_t len;
        int rc = next_entry(r, avail, &off, &len);
        if (rc < 0)
            return NULL;
        if (rc == 0)
            break;
        if (len == RING_MARKER) {
            if (!final)
                break;
            consume(r, 0); /* its message never came: the writer died */
            continue;
        }
        PyObject *v = entry_value(r, off, len, loads);
        if (v == NULL)
            return NULL;
        PyObject *ok = PyObject_CallOneArg(append, v);
        Py_DECREF(v);
        if (ok == NULL)
            return NULL;
        Py_DECREF(ok);
        n++;
    }
    return PyLong_FromLong(n);
}

static PyObject *ring_skip_marker(ring_obj *r, PyObject *noargs)
{
    (void)noargs;
    uint64_t avail = atomic_load_explicit(&r->sh->wcount, memory_order_acquire);
    size_t off;
    uint32_t len;
    int rc = next_entry(r, avail, &off, &len);
    if (rc < 0)
        return NULL;
    if (rc == 0 || len != RING_MARKER) {
        PyErr_SetString(PyExc_ConnectionError,
                        "ResultRing: a message the worker sent aside has no "
                        "marker at the head of its ring");
        return NULL;
    }
    consume(r, 0);
    Py_RETURN_NONE;
}

/* Whether take() would return something now: an entry published and not
 * taken that is not a marker (a marker waits for its message). */
static PyObject *takeable(ring_obj *r, uint64_t avail)
{
    size_t off;
    uint32_t len;
    int rc = next_entry(r, avail, &off, &len);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc == 1 && len != RING_MARKER);
}

static PyObject *ring_unread(ring_obj *r, PyObject *noargs)
{
    (void)noargs;
    return takeable(r,
                    atomic_load_explicit(&r->sh->wcount, memory_order_acquire));
}

static PyObject *ring_arm(ring_obj *r, PyObject *noargs)
{
    (void)noargs;
    atomic_store_explicit(&r->sh->waiting, 1, memory_order_seq_cst);
    return takeable(r,
                    atomic_load_explicit(&r->sh->wcount, memory_order_seq_cst));
}

static PyObject *ring_disarm(ring_obj *r, PyObject *noargs)
{
    (void)noargs;
    atomic_store_explicit(&r->sh->waiting, 0, memory_order_relaxed);
    Py_RETURN_NONE;
}

/* ---- the type ------------------------------------------------------------ */

static PyObject *ring_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"capacity", NULL};
    Py_ssize_t want = 1 << 20;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|n:ResultRing", kwlist, &want))
        return NULL;
    if (want < (Py_ssize_t)RING_MIN || want > (Py_ssize_t)RING_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "ResultRing: capacity must be between %u and %u bytes",
                     RING_MIN, RING_MAX);
        return NULL;
    }
    size_t cap = RING_MIN;
    while (cap < (size_t)want)
        cap <<= 1;
    size_t maplen = sizeof(ring_shared) + cap;
    void *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return PyErr_SetFromErrno(PyExc_OSError);
    ring_obj *r = (ring_obj *)tp->tp_alloc(tp, 0);
    if (r == NULL) {
        munmap(p, maplen);
        return NULL;
    }
    r->sh = p; /* zeroed by mmap */
    r->data = (unsigned char *)p + sizeof(ring_shared);
    r->cap = cap;
    r->maplen = maplen;
    r->st = fqpy_state_of_type(tp);
    if (r->st == NULL) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static void ring_dealloc(ring_obj *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    if (r->sh)
        munmap(r->sh, r->maplen);
    tp->tp_free((PyObject *)r);
    Py_DECREF(tp);
}

static PyObject *ring_get_capacity(ring_obj *r, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(r->cap);
}

static PyObject *ring_get_max_entry(ring_obj *r, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(r->cap / 4 - RING_HDR);
}

static PyMethodDef ring_methods[] = {
    {"put", (PyCFunction)ring_put, METH_O,
     "put(data) -> int\n--\n\nWriter: append one entry (bytes-like). 0: "
     "done; 1: done and the reader asked to be woken (arm); -1: no room now; "
     "-2: more than max_entry bytes (nothing written for either)."},
    {"put_obj", (PyCFunction)ring_put_obj, METH_O,
     "put_obj(value) -> None | tuple[int, bytes]\n--\n\nWriter: value, "
     "read back by take() as from put(pickle.dumps(value, "
     "pickle.HIGHEST_PROTOCOL)) (a plain int, float, str, bytes, None or "
     "bool goes without pickle). None when put answered 0; otherwise (put's "
     "answer, the pickled bytes)."},
    {"dirty", (PyCFunction)ring_dirty, METH_NOARGS,
     "dirty() -> bool\n--\n\nWriter: whether entries were put since the "
     "reader was last woken (by a put answering 1, or a wake-up the caller "
     "sends now that dirty() answered True)."},
    {"put_marker", (PyCFunction)ring_put_marker, METH_NOARGS,
     "put_marker() -> int\n--\n\nWriter: append a marker standing for a "
     "message sent another way; returns as put."},
    {"take", (PyCFunction)(void (*)(void))ring_take,
     METH_VARARGS | METH_KEYWORDS,
     "take(append, loads=None, final=False) -> int\n--\n\nReader: "
     "append(loads(entry)) (append(entry) without loads) for each entry "
     "published, in order, up to a marker (with final: past markers, "
     "dropped: the writer is gone). Returns how many."},
    {"skip_marker", (PyCFunction)ring_skip_marker, METH_NOARGS,
     "skip_marker() -> None\n--\n\nReader: consume the marker at the head "
     "(ConnectionError if there is none)."},
    {"unread", (PyCFunction)ring_unread, METH_NOARGS,
     "unread() -> bool\n--\n\nReader: whether take() would take something "
     "now (an entry not taken, not a marker)."},
    {"arm", (PyCFunction)ring_arm, METH_NOARGS,
     "arm() -> bool\n--\n\nReader: ask the writer's next put to answer 1 "
     "(wake me); returns unread() as seen after asking."},
    {"disarm", (PyCFunction)ring_disarm, METH_NOARGS,
     "disarm() -> None\n--\n\nReader: withdraw arm()."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef ring_getset[] = {
    {"capacity", (getter)ring_get_capacity, NULL, "Bytes of entries.", NULL},
    {"max_entry", (getter)ring_get_max_entry, NULL,
     "The largest payload put accepts.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot ring_slots[] = {
    {Py_tp_doc, "ResultRing(capacity=1048576)\n--\n\nA ring of messages in "
                "memory shared with the children forked after it was made: "
                "one writer, one reader (see python/src/ring.c)."},
    {Py_tp_new, ring_new},
    {Py_tp_dealloc, ring_dealloc},
    {Py_tp_methods, ring_methods},
    {Py_tp_getset, ring_getset},
    {0, NULL}};

static PyType_Spec ring_spec = {
    .name = "forkqueue._forkqueue.ResultRing",
    .basicsize = sizeof(ring_obj),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = ring_slots,
};

int fqpy_ring_add(PyObject *m)
{
    PyObject *tp = PyType_FromModuleAndSpec(m, &ring_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    return rc;
}
