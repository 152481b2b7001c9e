/*
 * Shared memory blocks that cannot leak: an anonymous memory file
 * (memfd_create), mapped shared. Nothing is ever named in /dev/shm, so no
 * crash of any process can leave a segment behind: the kernel frees the
 * memory with the last descriptor and the last mapping, wherever they are.
 *
 * Another process of the same user attaches a block by its name,
 * "fq_<pid>_<fd>_<token>", through /proc/<pid>/fd/<fd> of the process that
 * created it (the token, also the memfd's own name, guards against a
 * descriptor number reused for something else). Forked children simply
 * keep the mapping. The Python package (forkqueue._memblock) uses the same
 * names, so C and Python share blocks both ways.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/random.h>
#endif

#include "forkqueue.h"

#define FQ__EXPORT __attribute__((visibility("default")))

struct fq_shm {
    void *data;
    size_t size;
    int fd; /* the creator's descriptor; -1 in an attached block */
    char name[64];
};

static void token_hex(char out[13])
{
    unsigned char b[6];
    size_t got = 0;
#if defined(__linux__)
    ssize_t n = getrandom(b, sizeof b, GRND_NONBLOCK);
    if (n > 0)
        got = (size_t)n;
#endif
    if (got < sizeof b) { /* no entropy yet: the clock and the pid */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                     ((uint64_t)getpid() << 40);
        for (size_t i = got; i < sizeof b; i++)
            b[i] = (unsigned char)(x >> (8 * i));
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

FQ__EXPORT int fq_shm_create(fq_shm **out, size_t size)
{
    if (!out)
        return FQ_EINVAL;
    *out = NULL;
    if (size == 0)
        return FQ_EINVAL;
#if defined(__linux__) && defined(MFD_CLOEXEC)
    fq_shm *b = calloc(1, sizeof *b);
    if (!b)
        return FQ_ENOMEM;
    char token[13], memname[20];
    token_hex(token);
    snprintf(memname, sizeof memname, "fq_%s", token);
    int fd = memfd_create(memname, MFD_CLOEXEC);
    if (fd < 0) {
        free(b);
        return FQ_ESYS;
    }
    int rc;
    do
        rc = ftruncate(fd, (off_t)size);
    while (rc < 0 && errno == EINTR);
    void *p = rc == 0
                  ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        free(b);
        return e == ENOMEM || e == EFBIG ? FQ_ENOMEM : FQ_ESYS;
    }
    b->data = p;
    b->size = size;
    b->fd = fd;
    snprintf(b->name, sizeof b->name, "fq_%ld_%d_%s", (long)getpid(), fd,
             token);
    *out = b;
    return 0;
#else
    (void)size;
    return FQ_ESYS;
#endif
}

FQ__EXPORT int fq_shm_attach(fq_shm **out, const char *name)
{
    if (!out)
        return FQ_EINVAL;
    *out = NULL;
    if (!name)
        return FQ_EINVAL;
    long pid;
    int fd, used = 0;
    char token[13];
    if (sscanf(name, "fq_%ld_%d_%12[0-9a-f]%n", &pid, &fd, token, &used) != 3 ||
        name[used] != '\0' || strlen(token) != 12 || pid <= 0 || fd < 0)
        return FQ_EINVAL;
    char path[64], link[64], want[64];
    snprintf(path, sizeof path, "/proc/%ld/fd/%d", pid, fd);
    snprintf(want, sizeof want, "/memfd:fq_%s (deleted)", token);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return FQ_ECLOSED; /* its holder is gone or let it go */
    link[n] = '\0';
    if (strcmp(link, want) != 0)
        return FQ_ECLOSED; /* the descriptor now holds something else */
    int mine;
    do
        mine = open(path, O_RDWR | O_CLOEXEC);
    while (mine < 0 && errno == EINTR);
    if (mine < 0)
        return errno == ENOENT ? FQ_ECLOSED : FQ_ESYS;
    struct stat st;
    if (fstat(mine, &st) < 0 || st.st_size <= 0) {
        close(mine);
        return FQ_ESYS;
    }
    fq_shm *b = calloc(1, sizeof *b);
    if (!b) {
        close(mine);
        return FQ_ENOMEM;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   mine, 0);
    close(mine); /* the mapping keeps the memory */
    if (p == MAP_FAILED) {
        free(b);
        return FQ_ESYS;
    }
    b->data = p;
    b->size = (size_t)st.st_size;
    b->fd = -1;
    snprintf(b->name, sizeof b->name, "%s", name);
    *out = b;
    return 0;
}

FQ__EXPORT void *fq_shm_data(const fq_shm *b)
{
    return b ? b->data : NULL;
}

FQ__EXPORT size_t fq_shm_size(const fq_shm *b)
{
    return b ? b->size : 0;
}

FQ__EXPORT const char *fq_shm_name(const fq_shm *b)
{
    return b ? b->name : NULL;
}

FQ__EXPORT void fq_shm_free(fq_shm *b)
{
    if (!b)
        return;
    munmap(b->data, b->size);
    if (b->fd >= 0)
        close(b->fd);
    free(b);
}
