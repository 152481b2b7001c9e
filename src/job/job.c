/*
 * Job records and job handles (futures): see job.h. The calls that need the
 * queue (wait, poll, cancel) go through the handle's operations; the rest
 * touches the handle only.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job/job.h"

#define FQ__EXPORT __attribute__((visibility("default")))

void fq__job_drop_result(fq__job *j)
{
    if (j->res && j->res != (void *)j->inline_res.bytes)
        free(j->res);
    j->res = NULL;
}

void fq__job_free(fq__job *j)
{
    fq__job_drop_result(j);
    if (!j->embedded)
        free(j);
}

/* Where a handle's room starts: past the handle, maximally aligned. */
#define ROOM_OFF                                                               \
    ((sizeof(fq_job) + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) *    \
     _Alignof(max_align_t))

/*
 * Handles with room for a small job's record are kept for reuse, per
 * thread: a program that keeps thousands of jobs in flight allocates and
 * frees them in bursts, which malloc's own small caches do not absorb. A
 * handle goes to the cache of the thread that frees it; what a thread
 * holds is freed when it exits. Off under AddressSanitizer, which must
 * see a handle used after fq_job_free().
 */
#define SMALL_ROOM (sizeof(fq__job) + FQ__JOB_SMALL_ARG)
#define CACHE_MAX 512u
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define CACHE_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define CACHE_ON 0
#endif
#endif
#ifndef CACHE_ON
#define CACHE_ON 1
#endif

typedef struct hcache {
    fq_job *head;
    unsigned n;
} hcache;

static _Thread_local hcache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;

static void cache_drain(void *arg)
{
    hcache *c = arg;
    while (c->head) {
        fq_job *h = c->head;
        c->head = h->notify_next;
        free(h);
    }
    c->n = 0;
}

static void cache_setup(void)
{
    cache_key_ok = pthread_key_create(&cache_key, cache_drain) == 0;
}

static fq_job *cache_get(void)
{
    fq_job *h = cache.head;
    if (h) {
        cache.head = h->notify_next;
        cache.n--;
    }
    return h;
}

/* Keeps h (whose record is freed) if this thread's cache has room and
 * will be drained at the thread's exit. */
static int cache_put(fq_job *h)
{
    if (!CACHE_ON || h->room != SMALL_ROOM || cache.n >= CACHE_MAX)
        return 0;
    if (cache.n == 0) {
        pthread_once(&cache_once, cache_setup);
        if (!cache_key_ok || pthread_setspecific(cache_key, &cache) != 0)
            return 0;
    }
    h->notify_next = cache.head;
    cache.head = h;
    cache.n++;
    return 1;
}

fq_job *fq__future_new(const fq__future_ops *ops, uint32_t qid,
                       const fq_job_options *jopts, size_t room)
{
    if (room > SIZE_MAX - ROOM_OFF)
        return NULL;
    fq_job *h = NULL;
    if (room && room <= SMALL_ROOM) {
        room = SMALL_ROOM;
        h = cache_get();
    }
    if (!h && !(h = malloc(room ? ROOM_OFF + room : sizeof(*h))))
        return NULL;
    h->room = room;
    atomic_init(&h->refs, 2);
    atomic_init(&h->done, 0);
    h->ops = ops;
    h->qid = qid;
    h->id = 0;
    h->job = NULL;
    h->cb = jopts ? jopts->callback : NULL;
    h->cb_arg = jopts ? jopts->callback_arg : NULL;
    h->notify_next = NULL;
    return h;
}

void *fq__future_room(fq_job *h)
{
    return h->room ? (char *)h + ROOM_OFF : NULL;
}

static void release(fq_job *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (h->job)
        fq__job_free(h->job);
    if (!cache_put(h))
        free(h);
}

void fq__future_abandon(fq_job *h)
{
    h->job = NULL;
    atomic_store(&h->refs, 1);
    release(h);
}

void fq__future_complete(fq_job *h, fq_job **head, fq_job **tail)
{
    atomic_store_explicit(&h->done, 1, memory_order_release);
    h->notify_next = NULL;
    if (*tail)
        (*tail)->notify_next = h;
    else
        *head = h;
    *tail = h;
}

void fq__future_notify(fq_job *list)
{
    while (list) {
        fq_job *h = list;
        list = h->notify_next;
        h->notify_next = NULL;
        if (h->cb)
            h->cb(h, h->cb_arg);
        release(h);
    }
}

static int is_done(const fq_job *h)
{
    return atomic_load_explicit(&h->done, memory_order_acquire);
}

FQ__EXPORT int fq_job_wait(fq_job *h, int timeout_ms)
{
    if (!h || timeout_ms < -1)
        return FQ_EINVAL;
    if (is_done(h))
        return 0;
    int rc = h->ops->wait(h, timeout_ms);
    /* The queue may have been destroyed on the way out (FQ_ECLOSED): that
     * gave the job its outcome. */
    return is_done(h) ? 0 : rc ? rc : FQ_ETIMEDOUT;
}

FQ__EXPORT int fq_job_done(fq_job *h)
{
    if (!h)
        return FQ_EINVAL;
    if (is_done(h))
        return 1;
    int rc = h->ops->poll(h);
    if (is_done(h))
        return 1;
    return rc == FQ_EBUSY ? 0 : rc < 0 ? rc : 0;
}

FQ__EXPORT int fq_job_cancel(fq_job *h)
{
    if (!h)
        return FQ_EINVAL;
    if (is_done(h))
        return 1;
    return h->ops->cancel(h);
}

FQ__EXPORT int fq_job_result(const fq_job *h, fq_result *r)
{
    if (!h || !r)
        return FQ_EINVAL;
    if (!is_done(h))
        return FQ_EBUSY;
    const fq__job *j = h->job;
    r->id = j->id;
    r->status = j->status;
    r->code = j->code;
    r->signo = j->signo;
    r->exit_status = j->exit_status;
    r->data = j->res;
    r->len = j->res_len;
    return 0;
}

FQ__EXPORT uint64_t fq_job_id(const fq_job *h)
{
    return h ? h->id : 0;
}

FQ__EXPORT void fq_job_free(fq_job *h)
{
    if (h)
        release(h);
}
