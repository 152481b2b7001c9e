/*
 * The function table: names <-> stable ids <-> addresses, so that a JOB
 * frame can name its function in a process that did not fork from the
 * caller (a remote worker, a fork server started early).
 *
 * An id is the 64-bit FNV-1a hash of the name (0 is never an id): the same
 * in every process, whatever the addresses. Two names with one hash are
 * refused at registration (FQ_EEXIST), never confused.
 *
 * Two open-addressing tables (by id, by address) map to one entry array.
 * Lookups take no lock: an entry is complete before its slot is published
 * (release), a table that grows is copied and the new one published, and
 * old tables stay allocated (their total is below the size of the last
 * one), so a reader in another thread never sees freed memory. Writers
 * take a mutex that a forked child re-creates (pthread_atfork).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define FQ__EXPORT __attribute__((visibility("default")))

typedef struct func_entry {
    uint64_t id;
    fq_job_fn fn;
    char *name;
} func_entry;

/* cap slots, a power of two; a slot holds an entry pointer or NULL. */
typedef struct func_map {
    size_t cap;
    struct func_map *older; /* the table this one replaced, kept */
    _Atomic(func_entry *) slot[];
} func_map;

static pthread_mutex_t funcs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t funcs_once = PTHREAD_ONCE_INIT;
static _Atomic(func_map *) by_id, by_fn;
static size_t nfuncs;

static void funcs_child(void)
{
    pthread_mutex_init(&funcs_lock, NULL);
}

static void funcs_setup(void)
{
    pthread_atfork(NULL, NULL, funcs_child);
}

uint64_t fq__func_hash(const char *name)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= UINT64_C(0x100000001b3);
    }
    return h ? h : 1;
}

static size_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    return (size_t)k;
}

static uint64_t fn_key(fq_job_fn fn)
{
    return (uint64_t)(uintptr_t)fn;
}

static func_entry *find(const func_map *m, uint64_t key, int by_address)
{
    if (!m)
        return NULL;
    for (size_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        func_entry *e = atomic_load_explicit(&m->slot[i], memory_order_acquire);
        if (!e)
            return NULL;
        if ((by_address ? fn_key(e->fn) : e->id) == key)
            return e;
    }
}

static void put(func_map *m, func_entry *e, int by_address)
{
    uint64_t key = by_address ? fn_key(e->fn) : e->id;
    size_t i = mix(key) & (m->cap - 1);
    while (atomic_load_explicit(&m->slot[i], memory_order_relaxed))
        i = (i + 1) & (m->cap - 1);
    atomic_store_explicit(&m->slot[i], e, memory_order_release);
}

/* Makes room for one more entry in *mp (load factor at most 1/2). */
static int reserve(_Atomic(func_map *) *mp, int by_address)
{
    func_map *m = atomic_load_explicit(mp, memory_order_relaxed);
    if (m && (nfuncs + 1) * 2 <= m->cap)
        return 0;
    size_t cap = m ? m->cap * 2 : 64;
    func_map *n = calloc(1, sizeof(*n) + cap * sizeof(n->slot[0]));
    if (!n)
        return FQ_ENOMEM;
    n->cap = cap;
    n->older = m;
    for (size_t i = 0; m && i < m->cap; i++) {
        func_entry *e = atomic_load_explicit(&m->slot[i], memory_order_relaxed);
        if (e)
            put(n, e, by_address);
    }
    /* The old table stays (linked from the new one): a reader may still be
     * walking it. */
    atomic_store_explicit(mp, n, memory_order_release);
    return 0;
}

FQ__EXPORT int fq_func_register(const char *name, fq_job_fn fn, uint64_t *id)
{
    if (id)
        *id = 0;
    if (!name || !fn || !*name || strlen(name) > FQ_FUNC_NAME_MAX)
        return FQ_EINVAL;
    uint64_t h = fq__func_hash(name);
    pthread_once(&funcs_once, funcs_setup);
    pthread_mutex_lock(&funcs_lock);
    int rc = 0;
    func_entry *same_id = find(atomic_load(&by_id), h, 0);
    func_entry *same_fn = find(atomic_load(&by_fn), fn_key(fn), 1);
    if (same_id || same_fn) {
        /* Registering the same pair again (a module initialised twice, a
         * worker repeating its parent's registrations) is harmless. */
        if (same_id != same_fn || strcmp(same_id->name, name) != 0)
            rc = FQ_EEXIST;
        goto out;
    }
    func_entry *e = malloc(sizeof(*e));
    char *copy = strdup(name);
    if (!e || !copy || reserve(&by_id, 0) || reserve(&by_fn, 1)) {
        free(e);
        free(copy);
        rc = FQ_ENOMEM;
        goto out;
    }
    e->id = h;
    e->fn = fn;
    e->name = copy;
    put(atomic_load(&by_id), e, 0);
    put(atomic_load(&by_fn), e, 1);
    nfuncs++;
out:
    pthread_mutex_unlock(&funcs_lock);
    if (rc == 0 && id)
        *id = h;
    return rc;
}

FQ__EXPORT int fq_func_id(const char *name, uint64_t *id)
{
    if (!name || !id || !*name || strlen(name) > FQ_FUNC_NAME_MAX)
        return FQ_EINVAL;
    func_entry *e = find(atomic_load_explicit(&by_id, memory_order_acquire),
                         fq__func_hash(name), 0);
    if (!e || strcmp(e->name, name) != 0) {
        *id = 0;
        return FQ_ENOFUNC;
    }
    *id = e->id;
    return 0;
}

uint64_t fq__func_id_of(fq_job_fn fn)
{
    func_entry *e =
        find(atomic_load_explicit(&by_fn, memory_order_acquire), fn_key(fn), 1);
    return e ? e->id : 0;
}

fq_job_fn fq__func_by_id(uint64_t id)
{
    func_entry *e =
        find(atomic_load_explicit(&by_id, memory_order_acquire), id, 0);
    return e ? e->fn : NULL;
}

const char *fq__func_name(uint64_t id)
{
    func_entry *e =
        find(atomic_load_explicit(&by_id, memory_order_acquire), id, 0);
    return e ? e->name : NULL;
}
