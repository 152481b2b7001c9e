/*
 * fq_bench: measures the forkqueue core against baselines written here.
 *
 *   latency_roundtrip     one tiny job at a time on 1 worker, versus a raw
 *                         socketpair ping-pong with one child.
 *   throughput_unordered  1M tiny jobs (x + 1) on 2 workers, versus a
 *   throughput_ordered    pipelined socketpair farm of 2 children that sends
 *                         one message per job (no batching).
 *   throughput_threads    the unordered throughput with worker threads
 *                         (FQ_WORKER_THREAD), versus the same farm.
 *   cpu_speedup           ~100 us CPU-bound jobs on 2 workers, versus the
 *                         same function called in a sequential loop.
 *
 * Every figure is the median of --reps repetitions; baseline and forkqueue
 * runs alternate inside each repetition (and swap order every other one) so
 * that noise on this shared machine hits both sides alike.
 *
 * Waking a process on the other CPU of this VM costs far more than waking one
 * on the same CPU, so the latency figures are taken under several CPU
 * placements, and every figure reports where its processes actually ran.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkqueue.h"

/* ---- small helpers ------------------------------------------------------ */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fq_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_full(int fd, const void *buf, size_t len)
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
static int read_full(int fd, void *buf, size_t len)
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

static void reap(pid_t pid)
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

static double median(const double *v, int n)
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
static double median_known(const double *v, int n)
{
    double k[n > 0 ? n : 1];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0)
            k[m++] = v[i];
    return m ? median(k, m) : NAN;
}

static double max_known(const double *v, int n)
{
    double r = NAN;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0 && !(v[i] <= r))
            r = v[i];
    return r;
}

static double vmin(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double vmax(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static double load1(void)
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

enum placement { PL_UNPINNED, PL_SAME, PL_CROSS };

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
static void place_parent(enum placement pl)
{
    if (pl == PL_UNPINNED) {
        if (sched_setaffinity(0, sizeof orig_mask, &orig_mask) < 0)
            die("sched_setaffinity: %s", strerror(errno));
    } else {
        pin(0, cpu_a);
    }
}

/* Called on each child after the fork. */
static void place_child(pid_t pid, enum placement pl)
{
    if (pl == PL_CROSS)
        pin(pid, cpu_b);
}

static void unplace(void)
{
    if (sched_setaffinity(0, sizeof orig_mask, &orig_mask) < 0)
        die("sched_setaffinity: %s", strerror(errno));
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

/*
 * How much of the machine other processes used during a run. The kernel
 * shares the CPUs fairly between sessions (autogroups) before it shares
 * them between processes, so while another session is busy a second worker
 * buys little: a figure taken then says more about the neighbours than about
 * forkqueue, and this share shows which figures are affected.
 */
typedef struct meter {
    double busy, total; /* whole machine, seconds of CPU */
    double own;         /* this process and the given children */
} meter;

static void meter_read(meter *m, const pid_t *kids, int n)
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
static double meter_other(const meter *a, const meter *b)
{
    double total = b->total - a->total;
    if (total <= 0)
        return -1;
    double other = (b->busy - a->busy) - (b->own - a->own);
    return other > 0 ? other / total : 0;
}

/* How often the scheduler moved a process between CPUs, or -1. */
static long migrations(pid_t pid)
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

/* Observed placement of one run: where the parent and each child last ran
 * and how many times the children migrated. */
typedef struct observed {
    char text[96];
} observed;

static void observe(observed *o, const pid_t *kids, int n, long parent_migr0)
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

/* ---- the work ----------------------------------------------------------- */

/* A dependent xorshift chain: no vectorising or shortcut is possible, so
 * its run time is proportional to iters. */
__attribute__((noinline)) static uint64_t burn(uint64_t seed, uint64_t iters)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15u | 1;
    for (uint64_t i = 0; i < iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

typedef struct cpu_arg {
    uint64_t seed;
    uint64_t iters;
} cpu_arg;

static int job_cpu(fq_ctx *ctx, const void *arg, size_t len)
{
    cpu_arg a;
    if (len != sizeof a)
        return fq_fail(ctx, 1, "bad argument length");
    memcpy(&a, arg, sizeof a);
    uint64_t r = burn(a.seed, a.iters);
    return fq_reply(ctx, &r, sizeof r) < 0 ? 2 : 0;
}

/* The tiny job: x + 1. */
static int job_inc(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t x;
    if (len != sizeof x)
        return fq_fail(ctx, 1, "bad argument length");
    memcpy(&x, arg, sizeof x);
    x++;
    return fq_reply(ctx, &x, sizeof x) < 0 ? 2 : 0;
}

/* The latency job answers with the CPU it ran on, so that each round trip
 * can be classified as same-CPU or cross-CPU. */
static int job_where(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t c = (uint64_t)sched_getcpu();
    return fq_reply(ctx, &c, sizeof c) < 0 ? 2 : 0;
}

static void fq_check(int rc, const char *what)
{
    if (rc < 0)
        die("%s: %s (%s)", what, fq_strerror(rc), fq_err_name(rc));
}

static void fq_check_result(const fq_result *r)
{
    if (r->status != 0)
        die("job %" PRIu64 " failed: %s: %.*s", r->id, fq_err_name(r->status),
            (int)r->len, (const char *)r->data);
    if (r->len != sizeof(uint64_t))
        die("job %" PRIu64 ": result of %zu bytes", r->id, r->len);
}

static uint64_t result_u64(const fq_result *r)
{
    uint64_t v;
    memcpy(&v, r->data, sizeof v);
    return v;
}

/* ---- one run of each side ---------------------------------------------- */

typedef struct run_info {
    double value;
    double cross; /* fraction of round trips that crossed CPUs; -1: n/a */
    double job_us;
    double other; /* share of the machine used by other processes */
    uint64_t checksum;
    observed where;
} run_info;

#define WARMUP 200

/* Baseline of the latency: the child echoes each 8-byte message, answering
 * with the CPU it ran on. */
static void pingpong_child(int fd)
{
    uint64_t m;
    for (;;) {
        int rc = read_full(fd, &m, sizeof m);
        if (rc == 0)
            _exit(0);
        if (rc < 0)
            _exit(3);
        m = (uint64_t)sched_getcpu();
        if (write_full(fd, &m, sizeof m) < 0)
            _exit(4);
    }
}

static void run_pingpong(enum placement pl, long iters, run_info *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair: %s", strerror(errno));
    place_parent(pl);
    long pm0 = migrations(getpid());
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(sv[0]);
        pingpong_child(sv[1]);
    }
    close(sv[1]);
    place_child(pid, pl);

    long cross = 0;
    double t0 = 0;
    meter m0, m1;
    for (long i = -WARMUP; i < iters; i++) {
        if (i == 0) {
            meter_read(&m0, &pid, 1);
            t0 = now_s();
        }
        uint64_t m = (uint64_t)i;
        if (write_full(sv[0], &m, sizeof m) < 0 ||
            read_full(sv[0], &m, sizeof m) != 1)
            die("ping-pong: %s", strerror(errno));
        if (i >= 0 && (int)m != sched_getcpu())
            cross++;
    }
    double t = now_s() - t0;
    meter_read(&m1, &pid, 1);
    out->other = meter_other(&m0, &m1);
    observe(&out->where, &pid, 1, pm0);
    close(sv[0]);
    reap(pid);
    unplace();
    out->value = t / (double)iters * 1e6;
    out->cross = (double)cross / (double)iters;
}

static void run_fq_latency(enum placement pl, long iters, run_info *out)
{
    fq_queue q = {0};
    fq_options o = {0};
    o.workers = 1;
    place_parent(pl);
    long pm0 = migrations(getpid());
    fflush(NULL);
    fq_check(fq_queue_new(&q, &o), "fq_queue_new");
    pid_t pids[4];
    int nw = fq_worker_pids(q, pids, 4);
    if (nw != 1)
        die("expected 1 worker, got %d", nw);
    place_child(pids[0], pl);

    long cross = 0;
    double t0 = 0;
    meter m0, m1;
    for (long i = -WARMUP; i < iters; i++) {
        if (i == 0) {
            meter_read(&m0, pids, nw);
            t0 = now_s();
        }
        fq_result r;
        fq_check(fq_submit(q, job_where, &i, sizeof i, NULL, NULL),
                 "fq_submit");
        /* Waiting first spares a read that would find nothing yet. */
        int rc;
        do
            fq_check(fq_poll(q, -1), "fq_poll");
        while ((rc = fq_take(q, &r)) == 0);
        fq_check(rc, "fq_take");
        fq_check_result(&r);
        if (i >= 0 && (int)result_u64(&r) != sched_getcpu())
            cross++;
    }
    double t = now_s() - t0;
    meter_read(&m1, pids, nw);
    out->other = meter_other(&m0, &m1);
    observe(&out->where, pids, nw, pm0);
    fq_check(fq_queue_free(q), "fq_queue_free");
    unplace();
    out->value = t / (double)iters * 1e6;
    out->cross = (double)cross / (double)iters;
}

/* The same round trip through a job handle (fq_job_submit, fq_job_wait,
 * fq_job_result, fq_job_free): what a future adds to fq_submit/fq_take. */
static void run_fq_latency_jobs(enum placement pl, long iters, run_info *out)
{
    fq_queue q = {0};
    fq_options o = {0};
    o.workers = 1;
    place_parent(pl);
    long pm0 = migrations(getpid());
    fflush(NULL);
    fq_check(fq_queue_new(&q, &o), "fq_queue_new");
    pid_t pids[4];
    int nw = fq_worker_pids(q, pids, 4);
    if (nw != 1)
        die("expected 1 worker, got %d", nw);
    place_child(pids[0], pl);

    long cross = 0;
    double t0 = 0;
    meter m0, m1;
    for (long i = -WARMUP; i < iters; i++) {
        if (i == 0) {
            meter_read(&m0, pids, nw);
            t0 = now_s();
        }
        fq_job *j;
        fq_result r;
        fq_check(fq_job_submit(q, job_where, &i, sizeof i, NULL, &j),
                 "fq_job_submit");
        fq_check(fq_job_wait(j, -1), "fq_job_wait");
        fq_check(fq_job_result(j, &r), "fq_job_result");
        fq_check_result(&r);
        if (i >= 0 && (int)result_u64(&r) != sched_getcpu())
            cross++;
        fq_job_free(j);
    }
    double t = now_s() - t0;
    meter_read(&m1, pids, nw);
    out->other = meter_other(&m0, &m1);
    observe(&out->where, pids, nw, pm0);
    fq_check(fq_queue_free(q), "fq_queue_free");
    unplace();
    out->value = t / (double)iters * 1e6;
    out->cross = (double)cross / (double)iters;
}

/* Baseline of the throughput: each child reads one job, computes it and
 * writes one reply, one system call per message. */
static void farm_child(int fd)
{
    uint64_t x;
    for (;;) {
        int rc = read_full(fd, &x, sizeof x);
        if (rc == 0)
            _exit(0);
        if (rc < 0)
            _exit(3);
        x++;
        if (write_full(fd, &x, sizeof x) < 0)
            _exit(4);
    }
}

#define FARM_KIDS 2

typedef struct farm {
    uint64_t n, next, done, sum;
    uint64_t out[FARM_KIDS]; /* jobs sent to each child, reply not read */
    int window;
} farm;

/* Sends jobs to child k, one write each, until its window is full or its
 * socket is: a blocking write could deadlock with a child blocked on
 * writing replies the parent has not read yet. */
static void farm_fill(farm *f, int k, int fd)
{
    while (f->out[k] < (uint64_t)f->window && f->next < f->n) {
        ssize_t n =
            send(fd, &f->next, sizeof f->next, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            die("farm write: %s", strerror(errno));
        if (n < (ssize_t)sizeof f->next &&
            write_full(fd, (char *)&f->next + n, sizeof f->next - (size_t)n) <
                0)
            die("farm write: %s", strerror(errno));
        f->next++;
        f->out[k]++;
    }
}

static void run_farm(long njobs, int window, run_info *out)
{
    int fds[FARM_KIDS];
    pid_t pids[FARM_KIDS];
    long pm0 = migrations(getpid());
    fflush(NULL);
    for (int k = 0; k < FARM_KIDS; k++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            die("socketpair: %s", strerror(errno));
        pids[k] = fork();
        if (pids[k] < 0)
            die("fork: %s", strerror(errno));
        if (pids[k] == 0) {
            for (int j = 0; j < k; j++)
                close(fds[j]);
            close(sv[0]);
            farm_child(sv[1]);
        }
        close(sv[1]);
        fds[k] = sv[0];
    }

    meter m0, m1;
    meter_read(&m0, pids, FARM_KIDS);
    double t0 = now_s();
    farm f = {.n = (uint64_t)njobs, .window = window};
    for (int k = 0; k < FARM_KIDS; k++)
        farm_fill(&f, k, fds[k]);
    struct pollfd pf[FARM_KIDS];
    while (f.done < f.n) {
        for (int k = 0; k < FARM_KIDS; k++) {
            short ev = POLLIN;
            if (f.out[k] < (uint64_t)window && f.next < f.n)
                ev |= POLLOUT;
            pf[k] = (struct pollfd){.fd = fds[k], .events = ev};
        }
        if (poll(pf, FARM_KIDS, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        for (int k = 0; k < FARM_KIDS; k++) {
            if (pf[k].revents & (POLLERR | POLLHUP | POLLNVAL))
                die("farm: child %d hung up", k);
            if (!(pf[k].revents & POLLIN)) {
                if (pf[k].revents & POLLOUT)
                    farm_fill(&f, k, fds[k]);
                continue;
            }
            /* Drain what is there, one reply per read, sending the next
             * job as soon as a reply frees a slot of the window. */
            for (;;) {
                uint64_t y;
                ssize_t n = recv(fds[k], &y, sizeof y, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (n <= 0)
                    die("farm read: %s", n ? strerror(errno) : "EOF");
                if (n < (ssize_t)sizeof y &&
                    read_full(fds[k], (char *)&y + n, sizeof y - (size_t)n) !=
                        1)
                    die("farm read: short");
                f.sum += y;
                f.done++;
                f.out[k]--;
                farm_fill(&f, k, fds[k]);
            }
        }
    }
    uint64_t sum = f.sum;
    double t = now_s() - t0;
    meter_read(&m1, pids, FARM_KIDS);
    out->other = meter_other(&m0, &m1);
    uint64_t n = (uint64_t)njobs;
    if (sum != n * (n + 1) / 2)
        die("farm: wrong sum %" PRIu64, sum);
    observe(&out->where, pids, FARM_KIDS, pm0);
    for (int k = 0; k < FARM_KIDS; k++)
        close(fds[k]);
    for (int k = 0; k < FARM_KIDS; k++)
        reap(pids[k]);
    out->value = (double)njobs / t;
    out->cross = -1;
}

typedef struct tp_state {
    uint64_t next, n, sum, taken;
    int ordered;
} tp_state;

static int tp_produce(fq_queue q, void *udata)
{
    tp_state *s = udata;
    if (s->next >= s->n)
        return 0;
    uint64_t x = s->next++;
    int rc = fq_submit(q, job_inc, &x, sizeof x, NULL, NULL);
    return rc < 0 ? rc : 1;
}

static int tp_consume(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    tp_state *s = udata;
    fq_check_result(r);
    uint64_t v = result_u64(r);
    /* Automatic ids start at 0 and follow submission order, so an ordered
     * queue must hand back job i as the i-th outcome. */
    if (s->ordered && (r->id != s->taken || v != s->taken + 1))
        die("ordered: outcome %" PRIu64 " has id %" PRIu64 " value %" PRIu64,
            s->taken, r->id, v);
    s->sum += v;
    s->taken++;
    return 0;
}

static size_t opt_lookahead; /* 0: the library's default */
static int opt_inflight;     /* fq_options.inflight; 0: adaptive */

static void run_fq_throughput_kind(int kind, int ordered, long njobs,
                                   run_info *out)
{
    fq_queue q = {0};
    fq_options o = {0};
    o.kind = kind;
    o.workers = 2;
    o.ordered = ordered;
    o.inflight = opt_inflight;
    long pm0 = migrations(getpid());
    fflush(NULL);
    fq_check(fq_queue_new(&q, &o), "fq_queue_new");
    tp_state s = {.n = (uint64_t)njobs, .ordered = ordered};
    pid_t pids[8];
    int nw = fq_worker_pids(q, pids, 8);
    nw = nw < 8 ? nw : 8;
    meter m0, m1;
    meter_read(&m0, pids, nw);
    double t0 = now_s();
    fq_check(fq_stream(q, tp_produce, tp_consume, &s, opt_lookahead),
             "fq_stream");
    double t = now_s() - t0;
    meter_read(&m1, pids, nw);
    out->other = meter_other(&m0, &m1);
    uint64_t n = (uint64_t)njobs;
    if (s.taken != n || s.sum != n * (n + 1) / 2)
        die("fq throughput: %" PRIu64 " outcomes, sum %" PRIu64, s.taken,
            s.sum);
    /* A replaced worker would have escaped the meter. */
    if (fq_worker_pids(q, pids, 8) != nw)
        die("fq throughput: the workers changed");
    observe(&out->where, pids, nw, pm0);
    fq_check(fq_queue_free(q), "fq_queue_free");
    out->value = (double)njobs / t;
    out->cross = -1;
}

static void run_fq_throughput(int ordered, long njobs, run_info *out)
{
    run_fq_throughput_kind(FQ_WORKER_PROCESS, ordered, njobs, out);
}

/* Throughput through job handles: the same tiny jobs and window as
 * fq_stream()'s default, each submitted with a completion callback and its
 * handle released at once (fire and forget); fq_poll() drives the queue
 * and runs the callbacks. */
typedef struct tpj_state {
    uint64_t done, sum;
} tpj_state;

static void tpj_done(fq_job *j, void *arg)
{
    tpj_state *s = arg;
    fq_result r;
    fq_check(fq_job_result(j, &r), "fq_job_result");
    fq_check_result(&r);
    s->sum += result_u64(&r);
    s->done++;
}

static void run_fq_throughput_jobs(long njobs, run_info *out)
{
    fq_queue q = {0};
    fq_options o = {0};
    o.workers = 2;
    o.inflight = opt_inflight;
    long pm0 = migrations(getpid());
    fflush(NULL);
    fq_check(fq_queue_new(&q, &o), "fq_queue_new");
    tpj_state s = {0, 0};
    fq_job_options jo = {0};
    jo.callback = tpj_done;
    jo.callback_arg = &s;
    size_t window = opt_lookahead;
    if (window == 0) { /* fq_stream()'s default for 2 workers */
        size_t depth = opt_inflight > 0 ? (size_t)opt_inflight : 256;
        window = 4 * 2 * depth;
    }
    pid_t pids[8];
    int nw = fq_worker_pids(q, pids, 8);
    nw = nw < 8 ? nw : 8;
    meter m0, m1;
    meter_read(&m0, pids, nw);
    double t0 = now_s();
    uint64_t n = (uint64_t)njobs, next = 0;
    while (s.done < n) {
        while (next < n && next - s.done < window) {
            fq_job *j;
            uint64_t x = next++;
            fq_check(fq_job_submit(q, job_inc, &x, sizeof x, &jo, &j),
                     "fq_job_submit");
            fq_job_free(j);
        }
        fq_check(fq_poll(q, -1), "fq_poll");
    }
    double t = now_s() - t0;
    meter_read(&m1, pids, nw);
    out->other = meter_other(&m0, &m1);
    if (s.done != n || s.sum != n * (n + 1) / 2)
        die("fq throughput (handles): %" PRIu64 " outcomes, sum %" PRIu64,
            s.done, s.sum);
    if (fq_worker_pids(q, pids, 8) != nw)
        die("fq throughput (handles): the workers changed");
    observe(&out->where, pids, nw, pm0);
    fq_check(fq_queue_free(q), "fq_queue_free");
    out->value = (double)njobs / t;
    out->cross = -1;
}

static uint64_t cpu_iters; /* calibrated: about 100 us of burn() */

static void calibrate(double target_us)
{
    uint64_t probe = 200000;
    double best = 1e9;
    burn(1, probe); /* fault in, warm up the clock */
    for (int i = 0; i < 5; i++) {
        double t0 = now_s();
        volatile uint64_t r = burn((uint64_t)i, probe);
        (void)r;
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    double ns_per_iter = best * 1e9 / (double)probe;
    cpu_iters = (uint64_t)(target_us * 1e3 / ns_per_iter);
    if (cpu_iters < 1)
        cpu_iters = 1;
}

static void run_sequential(long njobs, run_info *out)
{
    uint64_t sum = 0;
    long pm0 = migrations(getpid());
    meter m0, m1;
    meter_read(&m0, NULL, 0);
    double t0 = now_s();
    for (long i = 0; i < njobs; i++)
        sum += burn((uint64_t)i, cpu_iters);
    double t = now_s() - t0;
    meter_read(&m1, NULL, 0);
    out->other = meter_other(&m0, &m1);
    out->checksum = sum;
    observe(&out->where, NULL, 0, pm0);
    out->value = (double)njobs / t;
    out->job_us = t / (double)njobs * 1e6;
    out->cross = -1;
}

/*
 * The machine's own ceiling: two forked processes share the loop between
 * them without any communication. No pool can beat it, and on a shared
 * machine it shows how much parallelism was there to be had.
 */
static void run_forked_loops(long njobs, run_info *out)
{
    pid_t pids[2];
    meter m0, m1;
    fflush(NULL);
    meter_read(&m0, NULL, 0);
    double t0 = now_s();
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        if (pids[k] < 0)
            die("fork: %s", strerror(errno));
        if (pids[k] == 0) {
            volatile uint64_t sink = 0;
            for (long i = k; i < njobs; i += 2)
                sink += burn((uint64_t)i, cpu_iters);
            (void)sink;
            _exit(0);
        }
    }
    /* Wait without reaping: the children's CPU time is read from /proc
     * before they go. */
    while (waitid(P_PID, (id_t)pids[0], NULL, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR)
        ;
    while (waitid(P_PID, (id_t)pids[1], NULL, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR)
        ;
    double t = now_s() - t0;
    meter_read(&m1, pids, 2);
    out->other = meter_other(&m0, &m1);
    for (int k = 0; k < 2; k++)
        reap(pids[k]);
    out->value = (double)njobs / t;
    out->cross = -1;
}

typedef struct cpu_state {
    uint64_t next, n, sum, taken;
} cpu_state;

static int cpu_produce(fq_queue q, void *udata)
{
    cpu_state *s = udata;
    if (s->next >= s->n)
        return 0;
    cpu_arg a = {.seed = s->next++, .iters = cpu_iters};
    int rc = fq_submit(q, job_cpu, &a, sizeof a, NULL, NULL);
    return rc < 0 ? rc : 1;
}

static int cpu_consume(fq_queue q, const fq_result *r, void *udata)
{
    (void)q;
    cpu_state *s = udata;
    fq_check_result(r);
    s->sum += result_u64(r);
    s->taken++;
    return 0;
}

static void run_fq_cpu(long njobs, run_info *out)
{
    fq_queue q = {0};
    fq_options o = {0};
    o.workers = 2;
    o.inflight = opt_inflight;
    long pm0 = migrations(getpid());
    fflush(NULL);
    fq_check(fq_queue_new(&q, &o), "fq_queue_new");
    cpu_state s = {.n = (uint64_t)njobs};
    pid_t pids[8];
    int nw = fq_worker_pids(q, pids, 8);
    nw = nw < 8 ? nw : 8;
    meter m0, m1;
    meter_read(&m0, pids, nw);
    double t0 = now_s();
    fq_check(fq_stream(q, cpu_produce, cpu_consume, &s, 0), "fq_stream");
    double t = now_s() - t0;
    meter_read(&m1, pids, nw);
    out->other = meter_other(&m0, &m1);
    if (s.taken != s.n)
        die("fq cpu: %" PRIu64 " outcomes of %" PRIu64, s.taken, s.n);
    if (fq_worker_pids(q, pids, 8) != nw)
        die("fq cpu: the workers changed");
    observe(&out->where, pids, nw, pm0);
    fq_check(fq_queue_free(q), "fq_queue_free");
    out->value = (double)njobs / t;
    out->cross = -1;
    out->checksum = s.sum;
}

/* ---- series, reporting -------------------------------------------------- */

typedef struct series {
    const char *name;
    const char *placement;
    const char *unit;
    const char *baseline;
    const char *better; /* "lower" or "higher" */
    double target;      /* on baseline_ratio */
    long count;
    int workers;
    int enabled;
    double *fq, *base, *fq_cross, *base_cross, *job_us;
    double *fq_other, *base_other;
    double *cap; /* cpu_speedup: the forked loops; 0 elsewhere */
    observed fq_where, base_where; /* of the median-ish (last) run */
} series;

static int opt_json, opt_reps = 5;

static void series_init(series *s, int reps)
{
    s->fq = calloc((size_t)reps, sizeof(double));
    s->base = calloc((size_t)reps, sizeof(double));
    s->fq_cross = calloc((size_t)reps, sizeof(double));
    s->base_cross = calloc((size_t)reps, sizeof(double));
    s->job_us = calloc((size_t)reps, sizeof(double));
    s->fq_other = calloc((size_t)reps, sizeof(double));
    s->base_other = calloc((size_t)reps, sizeof(double));
    s->cap = calloc((size_t)reps, sizeof(double));
    if (!s->cap || !s->fq || !s->base || !s->fq_cross || !s->base_cross ||
        !s->job_us || !s->fq_other || !s->base_other)
        die("out of memory");
}

static void series_free(series *s)
{
    free(s->fq);
    free(s->base);
    free(s->fq_cross);
    free(s->base_cross);
    free(s->job_us);
    free(s->fq_other);
    free(s->base_other);
    free(s->cap);
}

static void json_num(const char *key, double v)
{
    if (isfinite(v))
        printf(",\"%s\":%.6g", key, v);
    else
        printf(",\"%s\":null", key);
}

static int target_met(const series *s, double ratio)
{
    return strcmp(s->better, "lower") == 0 ? ratio <= s->target
                                           : ratio >= s->target;
}

static void report(const series *s, int reps)
{
    double fm = median(s->fq, reps), bm = median(s->base, reps);
    double ratio = fm / bm;
    int met = target_met(s, ratio);
    double fc = s->fq_cross[0] >= 0 ? median(s->fq_cross, reps) : -1;
    double bc = s->base_cross[0] >= 0 ? median(s->base_cross, reps) : -1;
    double ju = s->job_us[0] > 0 ? median(s->job_us, reps) : -1;
    if (opt_json) {
        printf("{\"name\":\"%s\"", s->name);
        json_num("value", fm);
        printf(",\"unit\":\"%s\"", s->unit);
        json_num("baseline_ratio", ratio);
        printf(",\"placement\":\"%s\"", s->placement);
        json_num("min", vmin(s->fq, reps));
        json_num("max", vmax(s->fq, reps));
        printf(",\"baseline\":\"%s\"", s->baseline);
        json_num("baseline_value", bm);
        json_num("baseline_min", vmin(s->base, reps));
        json_num("baseline_max", vmax(s->base, reps));
        printf(",\"better\":\"%s\"", s->better);
        if (s->target > 0) {
            json_num("target", s->target);
            printf(",\"target_met\":%s", met ? "true" : "false");
        } else {
            printf(",\"target\":null,\"target_met\":null");
        }
        printf(",\"reps\":%d,\"count\":%ld,\"workers\":%d", reps, s->count,
               s->workers);
        if (fc >= 0)
            json_num("cross_cpu_fraction", fc);
        if (bc >= 0)
            json_num("baseline_cross_cpu_fraction", bc);
        if (ju > 0)
            json_num("job_us", ju);
        if (s->cap[0] > 0) {
            double cm = median(s->cap, reps);
            json_num("capacity_value", cm);
            json_num("capacity_ratio", cm / bm);
        }
        json_num("other_cpu", median_known(s->fq_other, reps));
        json_num("other_cpu_max", max_known(s->fq_other, reps));
        json_num("baseline_other_cpu", median_known(s->base_other, reps));
        json_num("baseline_other_cpu_max", max_known(s->base_other, reps));
        printf(",\"cpus\":\"%s\",\"baseline_cpus\":\"%s\"", s->fq_where.text,
               s->base_where.text);
        json_num("load1", load1());
        printf("}\n");
    } else {
        printf("%-21s %-9s %10.4g %-6s [%.4g..%.4g]  %-20s %10.4g "
               "[%.4g..%.4g]  ratio %.3g",
               s->name, s->placement, fm, s->unit, vmin(s->fq, reps),
               vmax(s->fq, reps), s->baseline, bm, vmin(s->base, reps),
               vmax(s->base, reps), ratio);
        if (s->target > 0)
            printf(" (target %s %.3g: %s)\n",
                   strcmp(s->better, "lower") == 0 ? "<=" : ">=", s->target,
                   met ? "met" : "MISSED");
        else
            printf(" (no target: a figure to follow)\n");
        if (fc >= 0)
            printf("    cross-CPU round trips: forkqueue %.0f%%, baseline "
                   "%.0f%%\n",
                   fc * 100, bc * 100);
        if (ju > 0)
            printf("    measured job time: %.1f us\n", ju);
        if (s->cap[0] > 0)
            printf("    two forked loops without communication: %.4g jobs/s, "
                   "%.3gx the sequential loop (the machine's ceiling)\n",
                   median(s->cap, reps), median(s->cap, reps) / bm);
        printf("    CPU used by other processes: forkqueue runs %.0f%% "
               "(max %.0f%%), baseline runs %.0f%% (max %.0f%%)\n",
               median_known(s->fq_other, reps) * 100,
               max_known(s->fq_other, reps) * 100,
               median_known(s->base_other, reps) * 100,
               max_known(s->base_other, reps) * 100);
        printf("    forkqueue ran at: %s\n    baseline ran at:  %s\n",
               s->fq_where.text, s->base_where.text);
    }
    fflush(stdout);
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: fq_bench [--json] [--quick] [--reps N] [--only NAME[,NAME]]\n"
        "                [--lat-iters N] [--jobs N] [--cpu-jobs N]\n"
        "                [--window N] [--lookahead N] [--inflight N]\n"
        "benchmarks: latency_roundtrip throughput_unordered "
        "throughput_ordered cpu_speedup\n");
}

static const char *opt_only;

static int selected(const char *name)
{
    if (!opt_only)
        return 1;
    size_t n = strlen(name);
    for (const char *p = opt_only; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

static long parse_long(const char *s, const char *opt)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0)
        die("%s wants a positive integer, not '%s'", opt, s);
    return v;
}

int main(int argc, char **argv)
{
    int quick = 0, reps_given = 0;
    long lat_iters = 10000, tp_jobs = 1000000, cpu_jobs = 8000;
    int window = 128;
    int lat_given = 0, jobs_given = 0, cpu_given = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            opt_json = 1;
        } else if (strcmp(a, "--quick") == 0) {
            quick = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (v && strcmp(a, "--reps") == 0) {
            opt_reps = (int)parse_long(v, a);
            reps_given = 1;
            i++;
        } else if (v && strcmp(a, "--only") == 0) {
            opt_only = v;
            i++;
        } else if (v && strcmp(a, "--lat-iters") == 0) {
            lat_iters = parse_long(v, a);
            lat_given = 1;
            i++;
        } else if (v && strcmp(a, "--jobs") == 0) {
            tp_jobs = parse_long(v, a);
            jobs_given = 1;
            i++;
        } else if (v && strcmp(a, "--cpu-jobs") == 0) {
            cpu_jobs = parse_long(v, a);
            cpu_given = 1;
            i++;
        } else if (v && strcmp(a, "--window") == 0) {
            window = (int)parse_long(v, a);
            i++;
        } else if (v && strcmp(a, "--inflight") == 0) {
            opt_inflight = (int)parse_long(v, a);
            i++;
        } else if (v && strcmp(a, "--lookahead") == 0) {
            opt_lookahead = (size_t)parse_long(v, a);
            i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (quick) {
        if (!reps_given)
            opt_reps = 1;
        if (!lat_given)
            lat_iters = 200;
        if (!jobs_given)
            tp_jobs = 20000;
        if (!cpu_given)
            cpu_jobs = 100;
    }
    int reps = opt_reps;

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

    /* Latency under each placement, then the two throughputs (which share
     * their farm run), then the CPU-bound speed-up. */
    enum { N_SERIES = 9 };
#define SERIES(n, p, u, b, bt, t, c, w)                                        \
    {.name = n,                                                                \
     .placement = p,                                                           \
     .unit = u,                                                                \
     .baseline = b,                                                            \
     .better = bt,                                                             \
     .target = t,                                                              \
     .count = c,                                                               \
     .workers = w}
    series S[N_SERIES] = {
        SERIES("latency_roundtrip", "same-cpu", "us", "socketpair_pingpong",
               "lower", 1.5, lat_iters, 1),
        SERIES("latency_roundtrip", "cross-cpu", "us", "socketpair_pingpong",
               "lower", 1.5, lat_iters, 1),
        SERIES("latency_roundtrip", "unpinned", "us", "socketpair_pingpong",
               "lower", 1.5, lat_iters, 1),
        SERIES("throughput_unordered", "unpinned", "jobs/s", "socketpair_farm",
               "higher", 5.0, tp_jobs, 2),
        SERIES("throughput_ordered", "unpinned", "jobs/s", "socketpair_farm",
               "higher", 5.0, tp_jobs, 2),
        SERIES("cpu_speedup", "unpinned", "jobs/s", "sequential_loop", "higher",
               1.8, cpu_jobs, 2),
        /* The thread kind (FQ_WORKER_THREAD): 2 worker threads, same jobs,
         * same farm as the process kind's throughput. No target yet (0):
         * results are not batched for threads. */
        SERIES("throughput_threads", "unpinned", "jobs/s", "socketpair_farm",
               "higher", 0, tp_jobs, 2),
        /* Jobs submitted through handles (fq_job_submit, futures): the
         * same round trip and the same tiny jobs, against the same
         * baselines and targets as fq_submit's figures. */
        SERIES("latency_jobs", "unpinned", "us", "socketpair_pingpong", "lower",
               1.5, lat_iters, 1),
        SERIES("throughput_jobs", "unpinned", "jobs/s", "socketpair_farm",
               "higher", 5.0, tp_jobs, 2),
    };
#undef SERIES
    const enum placement lat_pl[3] = {PL_SAME, PL_CROSS, PL_UNPINNED};
    for (int i = 0; i < N_SERIES; i++) {
        S[i].enabled = selected(S[i].name);
        series_init(&S[i], reps);
    }
    if (cpu_b < 0)
        S[1].enabled = 0; /* cross-cpu needs two CPUs */

    if (S[5].enabled) {
        calibrate(100.0);
        if (!opt_json)
            printf("calibrated: %" PRIu64 " iterations per CPU-bound job\n",
                   cpu_iters);
    }
    if (!opt_json) {
        time_t t = time(NULL);
        char when[64];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&t));
        printf("fq_bench: forkqueue %s, %ld online CPUs, %d reps, %s, "
               "load %.2f\n",
               fq_version(), sysconf(_SC_NPROCESSORS_ONLN), reps, when,
               load1());
        fflush(stdout);
    }

    for (int rep = 0; rep < reps; rep++) {
        int flip = rep % 2; /* swap which side goes first */
        run_info a, b, c;
        for (int i = 0; i < 3; i++) {
            series *s = &S[i];
            if (!s->enabled)
                continue;
            memset(&a, 0, sizeof a);
            memset(&b, 0, sizeof b);
            if (!flip)
                run_pingpong(lat_pl[i], s->count, &b);
            run_fq_latency(lat_pl[i], s->count, &a);
            if (flip)
                run_pingpong(lat_pl[i], s->count, &b);
            s->fq[rep] = a.value;
            s->fq_cross[rep] = a.cross;
            s->fq_other[rep] = a.other;
            s->base_other[rep] = b.other;
            s->base[rep] = b.value;
            s->base_cross[rep] = b.cross;
            s->fq_where = a.where;
            s->base_where = b.where;
        }
        if (S[7].enabled) {
            memset(&a, 0, sizeof a);
            memset(&b, 0, sizeof b);
            if (!flip)
                run_pingpong(PL_UNPINNED, S[7].count, &b);
            run_fq_latency_jobs(PL_UNPINNED, S[7].count, &a);
            if (flip)
                run_pingpong(PL_UNPINNED, S[7].count, &b);
            S[7].fq[rep] = a.value;
            S[7].fq_cross[rep] = a.cross;
            S[7].fq_other[rep] = a.other;
            S[7].base_other[rep] = b.other;
            S[7].base[rep] = b.value;
            S[7].base_cross[rep] = b.cross;
            S[7].fq_where = a.where;
            S[7].base_where = b.where;
        }
        if (S[3].enabled || S[4].enabled || S[6].enabled || S[8].enabled) {
            memset(&a, 0, sizeof a);
            memset(&b, 0, sizeof b);
            memset(&c, 0, sizeof c);
            if (!flip)
                run_farm(tp_jobs, window, &c);
            if (S[3].enabled)
                run_fq_throughput(0, tp_jobs, &a);
            if (S[4].enabled)
                run_fq_throughput(1, tp_jobs, &b);
            run_info t;
            memset(&t, 0, sizeof t);
            if (S[6].enabled)
                run_fq_throughput_kind(FQ_WORKER_THREAD, 0, tp_jobs, &t);
            run_info hj;
            memset(&hj, 0, sizeof hj);
            if (S[8].enabled)
                run_fq_throughput_jobs(tp_jobs, &hj);
            if (flip)
                run_farm(tp_jobs, window, &c);
            S[6].fq[rep] = t.value;
            S[6].fq_other[rep] = t.other;
            S[6].fq_where = t.where;
            S[6].base[rep] = c.value;
            S[6].fq_cross[rep] = S[6].base_cross[rep] = -1;
            S[6].base_where = c.where;
            S[6].base_other[rep] = c.other;
            S[8].fq[rep] = hj.value;
            S[8].fq_other[rep] = hj.other;
            S[8].fq_where = hj.where;
            S[8].base[rep] = c.value;
            S[8].fq_cross[rep] = S[8].base_cross[rep] = -1;
            S[8].base_where = c.where;
            S[8].base_other[rep] = c.other;
            S[3].fq[rep] = a.value;
            S[4].fq[rep] = b.value;
            S[3].fq_other[rep] = a.other;
            S[4].fq_other[rep] = b.other;
            S[3].fq_where = a.where;
            S[4].fq_where = b.where;
            for (int i = 3; i <= 4; i++) {
                S[i].base[rep] = c.value;
                S[i].fq_cross[rep] = S[i].base_cross[rep] = -1;
                S[i].base_where = c.where;
                S[i].base_other[rep] = c.other;
            }
        }
        if (S[5].enabled) {
            memset(&a, 0, sizeof a);
            memset(&b, 0, sizeof b);
            if (!flip)
                run_sequential(cpu_jobs, &b);
            run_fq_cpu(cpu_jobs, &a);
            run_forked_loops(cpu_jobs, &c);
            if (flip)
                run_sequential(cpu_jobs, &b);
            if (a.checksum != b.checksum)
                die("cpu: forkqueue checksum differs from the sequential "
                    "loop");
            S[5].fq[rep] = a.value;
            S[5].base[rep] = b.value;
            S[5].job_us[rep] = b.job_us;
            S[5].cap[rep] = c.value;
            S[5].fq_cross[rep] = S[5].base_cross[rep] = -1;
            S[5].fq_other[rep] = a.other;
            S[5].base_other[rep] = b.other;
            S[5].fq_where = a.where;
            S[5].base_where = b.where;
        }
    }

    for (int i = 0; i < N_SERIES; i++) {
        if (S[i].enabled)
            report(&S[i], reps);
        series_free(&S[i]);
    }
    return 0;
}
