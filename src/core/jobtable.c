/* Live job ids: see jobtable.h. */
#include "core/jobtable.h"

#include <stdlib.h>

#include "forkqueue.h"

static size_t slot_of(uint64_t id, size_t cap)
{
    /* Fibonacci hashing spreads the sequential automatic ids. */
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (cap - 1);
}

void fq__jobtable_init(fq__jobtable *t)
{
    t->keys = NULL;
    t->used = NULL;
    t->cap = 0;
    t->count = 0;
}

void fq__jobtable_free(fq__jobtable *t)
{
    free(t->keys);
    free(t->used);
    fq__jobtable_init(t);
}

int fq__jobtable_has(const fq__jobtable *t, uint64_t id)
{
    if (t->cap == 0)
        return 0;
    for (size_t i = slot_of(id, t->cap);; i = (i + 1) & (t->cap - 1)) {
        if (!t->used[i])
            return 0;
        if (t->keys[i] == id)
            return 1;
    }
}

static int grow(fq__jobtable *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 64;
    uint64_t *keys = malloc(ncap * sizeof(*keys));
    unsigned char *used = calloc(ncap, 1);

    if (!keys || !used) {
        free(keys);
        free(used);
        return FQ_ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->used[i])
            continue;
        size_t j = slot_of(t->keys[i], ncap);
        while (used[j])
            j = (j + 1) & (ncap - 1);
        used[j] = 1;
        keys[j] = t->keys[i];
    }
    free(t->keys);
    free(t->used);
    t->keys = keys;
    t->used = used;
    t->cap = ncap;
    return 0;
}

int fq__jobtable_add(fq__jobtable *t, uint64_t id)
{
    if ((t->count + 1) * 4 > t->cap * 3) { /* keep the load under 3/4 */
        int rc = grow(t);
        if (rc)
            return rc;
    }
    size_t i = slot_of(id, t->cap);
    while (t->used[i]) {
        if (t->keys[i] == id)
            return FQ_EEXIST;
        i = (i + 1) & (t->cap - 1);
    }
    t->used[i] = 1;
    t->keys[i] = id;
    t->count++;
    return 0;
}

void fq__jobtable_del(fq__jobtable *t, uint64_t id)
{
    if (t->cap == 0)
        return;
    size_t mask = t->cap - 1;
    size_t i = slot_of(id, t->cap);
    while (t->used[i] && t->keys[i] != id)
        i = (i + 1) & mask;
    if (!t->used[i])
        return;
    /* Backward-shift: pull later members of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (hole + 1) & mask; t->used[j]; j = (j + 1) & mask) {
        size_t home = slot_of(t->keys[j], t->cap);
        /* Move j into the hole unless its home lies cyclically in
         * (hole, j]. */
        int stays =
            hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            t->keys[hole] = t->keys[j];
            t->used[hole] = 1;
            t->used[j] = 0;
            hole = j;
        }
    }
    t->used[hole] = 0;
    t->count--;
}
