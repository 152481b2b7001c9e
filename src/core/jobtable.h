/*
 * The set of live job ids of a queue (submitted, outcome not yet taken), for
 * duplicate detection. Open addressing with linear probing and backward-shift
 * deletion, so there are no tombstones and lookups stay short while a stream
 * of jobs comes and goes.
 */
#ifndef FQ_JOBTABLE_H
#define FQ_JOBTABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct fq__jobtable {
    uint64_t *keys;
    unsigned char *used;
    size_t cap; /* power of two, or 0 */
    size_t count;
} fq__jobtable;

void fq__jobtable_init(fq__jobtable *t);
void fq__jobtable_free(fq__jobtable *t);
int fq__jobtable_has(const fq__jobtable *t, uint64_t id);
/* Returns 0, FQ_EEXIST or FQ_ENOMEM. */
int fq__jobtable_add(fq__jobtable *t, uint64_t id);
void fq__jobtable_del(fq__jobtable *t, uint64_t id);

#endif
