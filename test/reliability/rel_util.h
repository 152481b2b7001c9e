/*
 * Small helpers shared by the reliability tests: process and descriptor
 * accounting through /proc (Linux), clocks and a deterministic PRNG.
 * Header-only so that each test stays one translation unit.
 */
#ifndef FQ_REL_UTIL_H
#define FQ_REL_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../fq_proc.h"

/* Lists the sockets open in this process (up to max); -1 on error. */
static inline int rel_list_sockets(int *out, int max)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        struct stat st;
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && n < max)
            out[n++] = fd;
    }
    closedir(d);
    return n;
}

/* splitmix64: the expected result of job i, and a seedable PRNG. */
static inline uint64_t rel_mix(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static inline uint64_t rel_rand(uint64_t *state)
{
    *state += 1;
    return rel_mix(*state);
}

/* Number of open descriptors of this process. */
static inline int rel_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* Waits for pid with a deadline; on timeout kills it. Returns the wait
 * status, or -1 on timeout (after SIGKILL and reaping). */
static inline int rel_wait_deadline(pid_t pid, int timeout_ms)
{
    int64_t end = fqp_now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -2;
        if (fqp_now_ms() > end) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        fqp_sleep_ms(5);
    }
}

#endif
