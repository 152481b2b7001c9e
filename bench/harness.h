/*
 * The harness of fq_bench: errors, timing, full reads and writes, medians,
 * CPU placement, the meter of other processes' CPU use, the series of
 * figures and their report. Each figure group (latency.c, throughput.c,
 * handles.c, cpu.c) measures one side and its baseline with these; main
 * (fq_bench.c) parses the options and runs the groups rep after rep.
 */
#ifndef FQ_BENCH_HARNESS_H
#define FQ_BENCH_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "forkqueue.h"

/* ---- small helpers (harness.c) ----------------------------------------- */

/* Prints "PROGRAM: message" on stderr and exits with 1. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
double now_s(void);
int write_full(int fd, const void *buf, size_t len);
/* 1 when len bytes were read, 0 on EOF before any byte, -1 on error or EOF
 * in the middle of a message. */
int read_full(int fd, void *buf, size_t len);
/* The loop of a baseline child: reads each 8-byte message from fd and
 * writes back answer(message), one system call each; exits with 0 at EOF
 * before a message, 3 on a read error, 4 on a write error. */
__attribute__((noreturn)) void baseline_child(int fd,
                                              uint64_t (*answer)(uint64_t));
/* Reaps a baseline child, which must have exited with 0. */
void reap(pid_t pid);
double median(const double *v, int n);
/* Median and maximum of the values >= 0 (the others mean "not
 * measured"); NAN when there is none. */
double median_known(const double *v, int n);
double max_known(const double *v, int n);
double vmin(const double *v, int n);
double vmax(const double *v, int n);
double load1(void);

/* ---- CPU placement ------------------------------------------------------ */

enum placement { PL_UNPINNED, PL_SAME, PL_CROSS };

/* Reads the CPUs this process may use; returns how many of the first two
 * there are (cross-CPU placement needs two). */
int placement_init(void);
/* Called before forking: children inherit the parent's mask, which is the
 * only way to place forkqueue workers before they run anything. */
void place_parent(enum placement pl);
/* Called on each child after the fork. */
void place_child(pid_t pid, enum placement pl);
void unplace(void);

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

void meter_read(meter *m, const pid_t *kids, int n);
/* Share of all CPUs that other processes used between a and b. */
double meter_other(const meter *a, const meter *b);
/* How often the scheduler moved a process between CPUs, or -1. */
long migrations(pid_t pid);

/* Observed placement of one run: where the parent and each child last ran
 * and how many times the children migrated. */
typedef struct observed {
    char text[96];
} observed;

void observe(observed *o, const pid_t *kids, int n, long parent_migr0);

/* ---- one run of each side ---------------------------------------------- */

typedef struct run_info {
    double value;
    double cross; /* fraction of round trips that crossed CPUs; -1: n/a */
    double job_us;
    double other; /* share of the machine used by other processes */
    uint64_t checksum;
    observed where;
} run_info;

/* ---- series, reporting (report.c) -------------------------------------- */

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

void series_init(series *s, int reps);
void series_free(series *s);
/* Records repetition rep: the forkqueue run and the baseline run. */
void series_record(series *s, int rep, const run_info *fq,
                   const run_info *base);
void report(const series *s, int reps, int json);

/* ---- the options and the figure groups --------------------------------- */

typedef struct bench_opts {
    long lat_iters, tp_jobs, cpu_jobs;
    int window;       /* of the socketpair farm */
    size_t lookahead; /* fq_stream's; 0: the library's default */
    int inflight;     /* fq_options.inflight; 0: adaptive */
} bench_opts;

/* The jobs (jobs.c). */
typedef struct cpu_arg {
    uint64_t seed;
    uint64_t iters;
} cpu_arg;

void fq_check(int rc, const char *what);
void fq_check_result(const fq_result *r);
uint64_t result_u64(const fq_result *r);
uint64_t burn(uint64_t seed, uint64_t iters);
int job_inc(fq_ctx *ctx, const void *arg, size_t len);
int job_where(fq_ctx *ctx, const void *arg, size_t len);
int job_cpu(fq_ctx *ctx, const void *arg, size_t len);

/* A forkqueue queue under measurement: opened with its workers' pids read,
 * metered from fq_run_start to fq_run_stop, which checks that the workers
 * are the same, observes them and frees the queue. */
typedef struct fq_run {
    fq_queue q;
    pid_t pids[8];
    int nw;
    long pm0;
    meter m0;
    double t0;
} fq_run;

void fq_run_open(fq_run *r, const fq_options *o);
void fq_run_start(fq_run *r);
/* Returns the seconds since fq_run_start. */
double fq_run_stop(fq_run *r, run_info *out, const char *what);

/* A stream of tiny jobs through fq_stream() (throughput.c, cpu.c): job i
 * is job_inc(i), or with iters job_cpu({i, iters}); an ordered stream
 * checks that job i comes back i-th. fq_run_stream runs it on a new queue
 * and returns the seconds it took. */
typedef struct stream_state {
    uint64_t next, n, sum, taken;
    uint64_t iters; /* 0: job_inc */
    int ordered;
} stream_state;

double fq_run_stream(const fq_options *o, stream_state *s, size_t lookahead,
                     run_info *out, const char *what);

/* The calibrated CPU-bound job (jobs.c): job_cpu({seed, cpu_iters}) takes
 * about target_us once calibrate(target_us) has run. */
extern uint64_t cpu_iters;
void calibrate(double target_us);

#endif
