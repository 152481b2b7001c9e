/* fq_bench's harness: see harness.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* ---- small helpers ------------------------------------------------------ */

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Returns 1 when len bytes were read, 0 on EOF before any byte, -1 on error
 * or EOF in the middle of a message. */
int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            return got == 0 ? 0 : -1;
        got += (size_t)n;
    }
    return 1;
}

void baseline_child(int fd, uint64_t (*answer)(uint64_t))
{
    uint64_t m;
    for (;;) {
        int rc = read_full(fd, &m, sizeof m);
        if (rc == 0)
            _exit(0);
        if (rc < 0)
            _exit(3);
        m = answer(m);
        if (write_full(fd, &m, sizeof m) < 0)
            _exit(4);
    }
}

void reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            die("waitpid(%d): %s", (int)pid, strerror(errno));
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("baseline child %d ended badly (status 0x%x)", (int)pid, st);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median(const double *v, int n)
{
    double *s = malloc(sizeof(double) * (size_t)n);
    if (!s)
        die("out of memory");
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

/* Median and maximum of the values >= 0 (the others mean "not measured");
 * NAN when there is none. */
double median_known(const double *v, int n)
{
    double k[n > 0 ? n : 1];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0)
            k[m++] = v[i];
    return m ? median(k, m) : NAN;
}

double max_known(const double *v, int n)
{
    double r = NAN;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0 && !(v[i] <= r))
            r = v[i];
    return r;
}

double vmin(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

double vmax(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "re");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* ---- CPU placement ------------------------------------------------------ */

static cpu_set_t orig_mask;
static int cpu_a = -1, cpu_b = -1; /* the first two CPUs we may use */

static void pin(pid_t pid, int cpu)
{
    cpu_set_t m;
    CPU_ZERO(&m);
    CPU_SET(cpu, &m);
    if (sched_setaffinity(pid, sizeof m, &m) < 0)
        die("sched_setaffinity(%d, cpu %d): %s", (int)pid, cpu,
            strerror(errno));
}

/* Called before forking: children inherit the parent's mask, which is the
 * only way to place forkqueue workers before they run anything. */
void place_parent(enum placement pl)
{
    if (pl == PL_UNPINNED)
        unplace();
    else
        pin(0, cpu_a);
}

/* Called on each child after the fork. */
void place_child(pid_t pid, enum placement pl)
{
    if (pl == PL_CROSS)
        pin(pid, cpu_b);
}

void unplace(void)
{
    if (sched_setaffinity(0, sizeof orig_mask, &orig_mask) < 0)
        die("sched_setaffinity: %s", strerror(errno));
}

int placement_init(void)
{
    if (sched_getaffinity(0, sizeof orig_mask, &orig_mask) < 0)
        die("sched_getaffinity: %s", strerror(errno));
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &orig_mask))
            continue;
        if (cpu_a < 0)
            cpu_a = c;
        else if (cpu_b < 0)
            cpu_b = c;
    }
    return (cpu_a >= 0) + (cpu_b >= 0);
}

/* Field `want` (numbered as in proc(5)) of /proc/PID/stat, or -1. */
static long long stat_field(pid_t pid, int want)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces; fields resume after its ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    int field = 2;
    for (p++; *p && field < want; p++)
        if (*p == ' ')
            field++;
    return *p ? atoll(p) : -1;
}

/* The CPU a process last ran on. */
static int last_cpu(pid_t pid)
{
    return (int)stat_field(pid, 39);
}

void meter_read(meter *m, const pid_t *kids, int n)
{
    static double tick;
    if (!tick)
        tick = 1.0 / (double)sysconf(_SC_CLK_TCK);
    unsigned long long v[8] = {0};
    m->busy = m->total = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
            /* user nice system idle iowait irq softirq steal: time stolen
             * by the hypervisor is as lost to us as time used by others. */
            m->total = (double)(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] +
                                v[7]) *
                       tick;
            m->busy = m->total - (double)(v[3] + v[4]) * tick;
        }
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    m->own = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    for (int i = 0; i < n; i++) {
        long long u = stat_field(kids[i], 14), st = stat_field(kids[i], 15);
        if (u >= 0 && st >= 0)
            m->own += (double)(u + st) * tick;
    }
}

/* Share of all CPUs that other processes used between a and b. */
double meter_other(const meter *a, const meter *b)
{
    double total = b->total - a->total;
    if (total <= 0)
        return -1;
    double other = (b->busy - a->busy) - (b->own - a->own);
    return other > 0 ? other / total : 0;
}

/* How often the scheduler moved a process between CPUs, or -1. */
long migrations(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof path, "/proc/%d/sched", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "se.nr_migrations", 16) == 0) {
            char *c = strchr(line, ':');
            if (c)
                v = atol(c + 1);
            break;
        }
    }
    fclose(f);
    return v;
}

void observe(observed *o, const pid_t *kids, int n, long parent_migr0)
{
    int len = snprintf(o->text, sizeof o->text, "parent@%d", sched_getcpu());
    long mig = 0;
    for (int i = 0; i < n && len < (int)sizeof o->text; i++) {
        len += snprintf(o->text + len, sizeof o->text - (size_t)len, "%s%d",
                        i ? "," : " children@", last_cpu(kids[i]));
        long m = migrations(kids[i]);
        mig += m > 0 ? m : 0;
    }
    long pm = migrations(getpid());
    if (len < (int)sizeof o->text)
        snprintf(o->text + len, sizeof o->text - (size_t)len, " migrations=%ld",
                 mig + (pm > parent_migr0 ? pm - parent_migr0 : 0));
}
