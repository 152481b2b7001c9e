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
 *   latency_jobs,         the round trip and the unordered throughput
 *   throughput_jobs       through job handles (fq_job_submit).
 *
 * Every figure is the median of --reps repetitions; baseline and forkqueue
 * runs alternate inside each repetition (and swap order every other one) so
 * that noise on this shared machine hits both sides alike.
 *
 * Waking a process on the other CPU of this VM costs far more than waking one
 * on the same CPU, so the latency figures are taken under several CPU
 * placements, and every figure reports where its processes actually ran.
 *
 * This file holds the options and the order of the runs. The shared
 * machinery (harness.h: harness.c, jobs.c, report.c) serves the other C
 * benchmarks too; figures.h declares the figure groups, one file each:
 * latency.c, throughput.c, handles.c, cpu.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "figures.h"

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
static int opt_json, opt_reps;
static bench_opts opt;

/* Which series each run fills, in the order they are reported. */
enum {
    LAT_SAME,
    LAT_CROSS,
    LAT_UNPINNED,
    TP_UNORDERED,
    TP_ORDERED,
    CPU_SPEEDUP,
    TP_THREADS,
    LAT_JOBS,
    TP_JOBS,
    N_SERIES
};

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

/* ---- one repetition of each figure group, the two sides alternating ---- */

typedef void (*latency_fn)(enum placement pl, long iters, run_info *out);

static void run_latency(series *s, int rep, int flip, enum placement pl,
                        latency_fn run_fq)
{
    if (!s->enabled)
        return;
    run_info a = {0}, b = {0};
    if (!flip)
        run_pingpong(pl, s->count, &b);
    run_fq(pl, s->count, &a);
    if (flip)
        run_pingpong(pl, s->count, &b);
    series_record(s, rep, &a, &b);
}

/* The throughputs share their farm run. */
static void run_throughput(series *S, int rep, int flip)
{
    static const int which[4] = {TP_UNORDERED, TP_ORDERED, TP_THREADS, TP_JOBS};
    int any = 0;
    for (int k = 0; k < 4; k++)
        any |= S[which[k]].enabled;
    if (!any)
        return;
    run_info farm = {0}, fq[4] = {{0}};
    if (!flip)
        run_farm(opt.tp_jobs, opt.window, &farm);
    if (S[TP_UNORDERED].enabled)
        run_fq_throughput_kind(FQ_WORKER_PROCESS, 0, &opt, &fq[0]);
    if (S[TP_ORDERED].enabled)
        run_fq_throughput_kind(FQ_WORKER_PROCESS, 1, &opt, &fq[1]);
    if (S[TP_THREADS].enabled)
        run_fq_throughput_kind(FQ_WORKER_THREAD, 0, &opt, &fq[2]);
    if (S[TP_JOBS].enabled)
        run_fq_throughput_jobs(&opt, &fq[3]);
    if (flip)
        run_farm(opt.tp_jobs, opt.window, &farm);
    for (int k = 0; k < 4; k++)
        series_record(&S[which[k]], rep, &fq[k], &farm);
}

static void run_cpu(series *s, int rep, int flip)
{
    if (!s->enabled)
        return;
    run_info a = {0}, b = {0}, c = {0};
    if (!flip)
        run_sequential(opt.cpu_jobs, &b);
    run_fq_cpu(&opt, &a);
    run_forked_loops(opt.cpu_jobs, &c);
    if (flip)
        run_sequential(opt.cpu_jobs, &b);
    if (a.checksum != b.checksum)
        die("cpu: forkqueue checksum differs from the sequential loop");
    series_record(s, rep, &a, &b);
    s->job_us[rep] = b.job_us;
    s->cap[rep] = c.value;
}

/* The options that take a number, each with its value in --quick mode
 * (0: the same) and whether it was given. */
typedef struct num_opt {
    const char *name;
    long value, quick;
    int given;
} num_opt;

enum {
    O_REPS,
    O_LAT_ITERS,
    O_JOBS,
    O_CPU_JOBS,
    O_WINDOW,
    O_INFLIGHT,
    O_LOOKAHEAD,
    N_NUM_OPTS
};

/* Parses the command line into opt, opt_reps, opt_json and opt_only;
 * returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv)
{
    num_opt num[N_NUM_OPTS] = {
        [O_REPS] = {"--reps", 5, 1, 0},
        [O_LAT_ITERS] = {"--lat-iters", 10000, 200, 0},
        [O_JOBS] = {"--jobs", 1000000, 20000, 0},
        [O_CPU_JOBS] = {"--cpu-jobs", 8000, 100, 0},
        [O_WINDOW] = {"--window", 128, 0, 0},
        [O_INFLIGHT] = {"--inflight", 0, 0, 0},
        [O_LOOKAHEAD] = {"--lookahead", 0, 0, 0},
    };
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            opt_json = 1;
            continue;
        }
        if (strcmp(a, "--quick") == 0) {
            quick = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (v && strcmp(a, "--only") == 0) {
            opt_only = v;
            i++;
            continue;
        }
        int k = 0;
        while (k < N_NUM_OPTS && !(v && strcmp(a, num[k].name) == 0))
            k++;
        if (k == N_NUM_OPTS) {
            usage(stderr);
            return 2;
        }
        num[k].value = parse_long(v, a);
        num[k].given = 1;
        i++;
    }
    for (int k = 0; quick && k < N_NUM_OPTS; k++)
        if (num[k].quick && !num[k].given)
            num[k].value = num[k].quick;
    opt_reps = (int)num[O_REPS].value;
    opt.lat_iters = num[O_LAT_ITERS].value;
    opt.tp_jobs = num[O_JOBS].value;
    opt.cpu_jobs = num[O_CPU_JOBS].value;
    opt.window = (int)num[O_WINDOW].value;
    opt.inflight = (int)num[O_INFLIGHT].value;
    opt.lookahead = (size_t)num[O_LOOKAHEAD].value;
    return -1;
}

int main(int argc, char **argv)
{
    int status = parse_args(argc, argv);
    if (status >= 0)
        return status;
    int reps = opt_reps;
    int ncpus = placement_init();

    /* Latency under each placement, then the two throughputs (which share
     * their farm run), then the CPU-bound speed-up. */
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
        [LAT_SAME] =
            SERIES("latency_roundtrip", "same-cpu", "us", "socketpair_pingpong",
                   "lower", 1.5, opt.lat_iters, 1),
        [LAT_CROSS] =
            SERIES("latency_roundtrip", "cross-cpu", "us",
                   "socketpair_pingpong", "lower", 1.5, opt.lat_iters, 1),
        [LAT_UNPINNED] =
            SERIES("latency_roundtrip", "unpinned", "us", "socketpair_pingpong",
                   "lower", 1.5, opt.lat_iters, 1),
        [TP_UNORDERED] =
            SERIES("throughput_unordered", "unpinned", "jobs/s",
                   "socketpair_farm", "higher", 5.0, opt.tp_jobs, 2),
        [TP_ORDERED] = SERIES("throughput_ordered", "unpinned", "jobs/s",
                              "socketpair_farm", "higher", 5.0, opt.tp_jobs, 2),
        [CPU_SPEEDUP] =
            SERIES("cpu_speedup", "unpinned", "jobs/s", "sequential_loop",
                   "higher", 1.8, opt.cpu_jobs, 2),
        /* The thread kind (FQ_WORKER_THREAD): 2 worker threads, same jobs,
         * same farm as the process kind's throughput. No target yet (0):
         * results are not batched for threads. */
        [TP_THREADS] = SERIES("throughput_threads", "unpinned", "jobs/s",
                              "socketpair_farm", "higher", 0, opt.tp_jobs, 2),
        /* Jobs submitted through handles (fq_job_submit, futures): the
         * same round trip and the same tiny jobs, against the same
         * baselines and targets as fq_submit's figures. */
        [LAT_JOBS] =
            SERIES("latency_jobs", "unpinned", "us", "socketpair_pingpong",
                   "lower", 1.5, opt.lat_iters, 1),
        [TP_JOBS] = SERIES("throughput_jobs", "unpinned", "jobs/s",
                           "socketpair_farm", "higher", 5.0, opt.tp_jobs, 2),
    };
#undef SERIES
    for (int i = 0; i < N_SERIES; i++) {
        S[i].enabled = selected(S[i].name);
        series_init(&S[i], reps);
    }
    if (ncpus < 2)
        S[LAT_CROSS].enabled = 0; /* cross-cpu needs two CPUs */

    if (S[CPU_SPEEDUP].enabled) {
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
        run_latency(&S[LAT_SAME], rep, flip, PL_SAME, run_fq_latency);
        run_latency(&S[LAT_CROSS], rep, flip, PL_CROSS, run_fq_latency);
        run_latency(&S[LAT_UNPINNED], rep, flip, PL_UNPINNED, run_fq_latency);
        run_latency(&S[LAT_JOBS], rep, flip, PL_UNPINNED, run_fq_latency_jobs);
        run_throughput(S, rep, flip);
        run_cpu(&S[CPU_SPEEDUP], rep, flip);
    }

    for (int i = 0; i < N_SERIES; i++) {
        if (S[i].enabled)
            report(&S[i], reps, opt_json);
        series_free(&S[i]);
    }
    return 0;
}
