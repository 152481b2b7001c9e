/*
 * Process and clock helpers shared by every C test program, the cmocka
 * suites (fq_test.h) and the reliability scenarios (reliability/rel_util.h)
 * alike. Nothing here depends on cmocka or asserts: it is safe in forked
 * children and in plain programs.
 */
#ifndef FQ_PROC_H
#define FQ_PROC_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How much slower than the plain build this run may be: the environment
 * variable FQT_TIME_SCALE (the valgrind copies of the tests set it), 1 by
 * default. Deadlines that a test asserts are multiplied by it, so a
 * deliberately short deadline stays meaningful and does not fail because
 * the whole program runs ten times slower. */
static inline int fqp_time_scale(void)
{
    const char *s = getenv("FQT_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return k > 0 ? k : 1;
}

static inline int64_t fqp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds, resuming after signals. For pacing a job or the
 * interval of a polling loop; never a way to wait for something that can
 * be awaited. */
static inline void fqp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Reaps pid, resuming after signals; returns its wait status, or -1. */
static inline int fqp_reap(pid_t pid)
{
    int st;
    pid_t r;
    do
        r = waitpid(pid, &st, 0);
    while (r < 0 && errno == EINTR);
    return r == pid ? st : -1;
}

/* Zeroed memory shared with every process forked after this call (the
 * workers of a queue made later, the fork server and its workers): map it
 * first. Counters of job runs live there. NULL on failure. */
static inline void *fqp_shared_new(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static inline void fqp_shared_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

/* Fields 3 (state), 4 (ppid) and 22 (starttime) of /proc/<pid>/stat; any
 * output pointer may be NULL. Returns 0, or -1 when the process does not
 * exist. */
static inline int fqp_proc_stat(pid_t pid, char *state, pid_t *ppid,
                                unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    /* comm may hold spaces and parentheses: parse after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    char st = 0;
    int pp = 0;
    unsigned long long t = 0;
    if (sscanf(p + 2,
               "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
               "%*d %*d %*d %*d %llu",
               &st, &pp, &t) != 3)
        return -1;
    if (state)
        *state = st;
    if (ppid)
        *ppid = pp;
    if (start)
        *start = t;
    return 0;
}

/*
 * Children of `parent`, by a full /proc scan (so it reaps nothing). Stores
 * up to max pids in out (may be NULL), returns how many there are, or -1;
 * *zombies (if not NULL) gets how many are in state Z.
 */
static inline int fqp_children(pid_t parent, pid_t *out, int max, int *zombies)
{
    DIR *d = opendir("/proc");
    int n = 0, z = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        char st;
        pid_t pp;
        if (*end || pid <= 0)
            continue;
        if (fqp_proc_stat((pid_t)pid, &st, &pp, NULL) != 0 || pp != parent)
            continue;
        if (out && n < max)
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

#endif
