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
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline int64_t rel_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void rel_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
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

/* Reads state and parent pid of a process from /proc/<pid>/stat. */
static inline int rel_proc_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may contain anything, including ") ": the fields
     * that follow start after its last ')'. */
    char *p = strrchr(buf, ')');
    int pp;
    char st;
    if (!p || sscanf(p + 1, " %c %d", &st, &pp) != 2)
        return -1;
    *state = st;
    *ppid = pp;
    return 0;
}

/*
 * Children of `parent` (any thread of it), by a full /proc scan. Stores up
 * to max pids, returns how many there are; *zombies (if not NULL) gets how
 * many are in state Z (exited, not reaped).
 */
static inline int rel_children(pid_t parent, pid_t *out, int max, int *zombies)
{
    DIR *d = opendir("/proc");
    int n = 0, z = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        char st;
        pid_t pp;
        if (*end || pid <= 0)
            continue;
        if (rel_proc_stat((pid_t)pid, &st, &pp) != 0 || pp != parent)
            continue;
        if (n < max && out)
            out[n] = (pid_t)pid;
        n++;
        if (st == 'Z')
            z++;
    }
    closedir(d);
    if (zombies)
        *zombies = z;
    return n;
}

/* Waits for pid with a deadline; on timeout kills it. Returns the wait
 * status, or -1 on timeout (after SIGKILL and reaping). */
static inline int rel_wait_deadline(pid_t pid, int timeout_ms)
{
    int64_t end = rel_now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -2;
        if (rel_now_ms() > end) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        rel_sleep_ms(5);
    }
}

#endif
