/*
 * What the fork server and worker recycling cost, each against the plain
 * queue in the same run (medians of --reps runs):
 *
 *   respawn    fq_refork() of 2 workers until a job answers from each new
 *              worker: forked by the caller, or by the fork server
 *   throughput tiny jobs per second through 2 workers: direct forks, fork
 *              server, and max_rss set (a limit never reached), so the
 *              memory check is on the path of every job
 *
 * Usage: fq_spawn_bench [--reps N] [--jobs N] [--respawns N] [--quick]
 *                       [--json]
 *
 * Timing, medians, the meter of other processes' CPU use and the report
 * (--json: one object a figure, as fq_bench's) are fq_bench's harness
 * (harness.h). Inside each repetition the plain queue and the other side
 * take turns going first.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static int job_nop(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    return 0;
}

static fq_options options(int fork_server, uint64_t max_rss)
{
    fq_options o = {0};
    o.workers = 2;
    o.fork_server = fork_server;
    o.max_rss = max_rss;
    return o;
}

static void drain(fq_queue q, int n)
{
    fq_result r;
    for (int i = 0; i < n;) {
        int rc = fq_take(q, &r);
        fq_check(rc, "fq_take");
        if (rc == 0) {
            fq_check(fq_poll(q, -1), "fq_poll");
            continue;
        }
        if (r.status)
            die("job: %s", fq_strerror(r.status));
        i++;
    }
}

/* Microseconds per fq_refork() of both workers until each new one
 * answered. The workers change all along: other processes' share of the
 * machine is not measured here. */
static void respawn(int fork_server, int n, run_info *out)
{
    fq_options o = options(fork_server, 0);
    fq_queue q = {0};
    long pm0 = migrations(getpid());
    fq_check(fq_queue_new(&q, &o), "fq_queue_new");
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        fq_check(fq_refork(q), "fq_refork");
        for (int k = 0; k < 2; k++)
            fq_check(fq_submit(q, job_nop, NULL, 0, NULL, NULL), "fq_submit");
        drain(q, 2);
    }
    out->value = (now_s() - t0) / n * 1e6;
    out->cross = -1;
    out->other = -1;
    pid_t pids[2];
    int nw = fq_worker_pids(q, pids, 2);
    observe(&out->where, pids, nw < 0 ? 0 : nw < 2 ? nw : 2, pm0);
    fq_check(fq_queue_free(q), "fq_queue_free");
}

/* Tiny jobs per second, 4096 in flight at most. */
static void throughput(int fork_server, uint64_t max_rss, int jobs,
                       run_info *out)
{
    fq_options o = options(fork_server, max_rss);
    fq_run run;
    fq_run_open(&run, &o);
    fq_queue q = run.q;
    fq_run_start(&run);
    int sent = 0, got = 0;
    fq_result r;
    while (got < jobs) {
        while (sent < jobs && sent - got < 4096) {
            fq_check(fq_submit(q, job_nop, NULL, 0, NULL, NULL), "fq_submit");
            sent++;
        }
        int rc = fq_take(q, &r);
        fq_check(rc, "fq_take");
        if (rc == 1) {
            got++;
            continue;
        }
        fq_check(fq_poll(q, -1), "fq_poll");
    }
    out->value = jobs / fq_run_stop(&run, out, "throughput");
}

enum { RESPAWN, TP_FORK_SERVER, TP_MAX_RSS, N_SERIES };

static long parse_count(const char *s, const char *opt)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1)
        die("%s wants a positive integer, not '%s'", opt, s);
    return v;
}

int main(int argc, char **argv)
{
    long reps = 5, jobs = 1000000, respawns = 200;
    int json = 0, quick = 0, given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = !v                         ? NULL
                    : !strcmp(a, "--reps")     ? &reps
                    : !strcmp(a, "--jobs")     ? &jobs
                    : !strcmp(a, "--respawns") ? &respawns
                                               : NULL;
        if (dst) {
            *dst = parse_count(v, a);
            given |= dst == &reps ? 1 : dst == &jobs ? 2 : 4;
            i++;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
        } else {
            fprintf(stderr,
                    "usage: %s [--reps N] [--jobs N] [--respawns N] "
                    "[--quick] [--json]\n",
                    argv[0]);
            return 2;
        }
    }
    if (quick) { /* the values of the smoke test, unless given */
        reps = given & 1 ? reps : 1;
        jobs = given & 2 ? jobs : 20000;
        respawns = given & 4 ? respawns : 5;
    }
    if (reps > 99)
        die("--reps: at most 99");
    fq_check(fq_forkserver_start(), "fq_forkserver_start");

    /* fq is the fork server (or max_rss set), the baseline the plain
     * queue of the same repetition. */
    series S[N_SERIES] = {
        [RESPAWN] = {.name = "respawn_fork_server",
                     .unit = "us",
                     .baseline = "respawn_direct",
                     .better = "lower",
                     .count = respawns},
        [TP_FORK_SERVER] = {.name = "throughput_fork_server",
                            .unit = "jobs/s",
                            .baseline = "throughput_direct",
                            .better = "higher",
                            .count = jobs},
        [TP_MAX_RSS] = {.name = "throughput_max_rss",
                        .unit = "jobs/s",
                        .baseline = "throughput_direct",
                        .better = "higher",
                        .count = jobs},
    };
    for (int k = 0; k < N_SERIES; k++) {
        S[k].placement = "unpinned";
        S[k].workers = 2;
        S[k].enabled = 1;
        series_init(&S[k], (int)reps);
    }
    for (int i = 0; i < reps; i++) {
        int flip = i % 2; /* which side goes first */
        run_info d = {0}, s = {0}, td = {0}, ts = {0}, tr = {0};
        if (!flip)
            respawn(0, (int)respawns, &d);
        respawn(1, (int)respawns, &s);
        if (flip)
            respawn(0, (int)respawns, &d);
        if (!flip)
            throughput(0, 0, (int)jobs, &td);
        throughput(1, 0, (int)jobs, &ts);
        throughput(0, UINT64_C(1) << 40, (int)jobs, &tr);
        if (flip)
            throughput(0, 0, (int)jobs, &td);
        series_record(&S[RESPAWN], i, &s, &d);
        series_record(&S[TP_FORK_SERVER], i, &ts, &td);
        series_record(&S[TP_MAX_RSS], i, &tr, &td);
    }
    if (json) {
        for (int k = 0; k < N_SERIES; k++)
            report(&S[k], (int)reps, 1);
    } else {
        int n = (int)reps;
        double md = median(S[RESPAWN].base, n), ms = median(S[RESPAWN].fq, n);
        double mtd = median(S[TP_FORK_SERVER].base, n),
               mts = median(S[TP_FORK_SERVER].fq, n),
               mtr = median(S[TP_MAX_RSS].fq, n);
        char when[32];
        time_t now = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
        printf("fq_spawn_bench: forkqueue %s, %ld online CPUs, %d reps, %s\n",
               fq_version(), sysconf(_SC_NPROCESSORS_ONLN), n, when);
        printf("respawn (2 workers, refork to first answers): direct %.0f us, "
               "fork server %.0f us, ratio %.2f\n",
               md, ms, ms / md);
        printf("throughput (2 workers, tiny jobs): direct %.3g jobs/s, fork "
               "server %.3g (ratio %.2f), max_rss set %.3g (ratio %.2f)\n",
               mtd, mts, mts / mtd, mtr, mtr / mtd);
    }
    for (int k = 0; k < N_SERIES; k++)
        series_free(&S[k]);
    fq_forkserver_stop();
    return 0;
}
