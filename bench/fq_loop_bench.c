/*
 * fq_loop_bench: what waiting through a loop object costs, against the
 * queue's own fq_poll() in the same run. One queue; the same tiny jobs;
 * results taken with fq_take() after each wait, three ways:
 *
 *   fq_poll        fq_poll(q, -1)
 *   fq_loop_wait   fq_loop_wait(loop, ..., -1), the queue added to the loop
 *   outside        fq_loop_timeout(), poll() on fq_loop_fd(), then
 *                  fq_loop_process(): an outside event loop's round
 *
 * Figures: round trips (one job at a time, 1 worker, pinned to one CPU)
 * and throughput (4096 jobs in flight, 2 workers). Medians of --reps runs,
 * each way's ratio to fq_poll.
 *
 *   fq_loop_bench [--quick] [--reps N] [--json]
 *
 * Timing, medians, CPU placement, the meter of other processes' CPU use and
 * the report (--json: one object a figure, fq_loop_wait and outside each
 * against fq_poll, as fq_bench's) are fq_bench's harness (harness.h).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

enum { WAY_POLL, WAY_LOOP, WAY_OUTSIDE, NWAYS };
static const char *way_name[NWAYS] = {"fq_poll", "fq_loop_wait", "outside"};

static int echo(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

/* A queue under measurement (its workers metered), in a loop. */
struct rig {
    fq_run run;
    fq_loop *loop;
    int fd;
};

static void rig_new(struct rig *r, int workers, int way)
{
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = workers;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    fq_run_open(&r->run, &o);
    fq_check(fq_loop_new(&r->loop, NULL), "fq_loop_new");
    fq_check(fq_loop_add_queue(r->loop, r->run.q, NULL), "fq_loop_add_queue");
    if (way == WAY_OUTSIDE && (r->fd = fq_loop_fd(r->loop)) < 0)
        fq_check(r->fd, "fq_loop_fd");
    fq_run_start(&r->run);
}

/* Seconds since rig_new(); frees the loop and the queue. */
static double rig_free(struct rig *r, run_info *out, const char *what)
{
    double t = now_s() - r->run.t0;
    fq_check(fq_loop_free(r->loop), "fq_loop_free");
    fq_run_stop(&r->run, out, what);
    return t;
}

/* One wait the chosen way. */
static int wait_once(struct rig *r, int way)
{
    fq_loop_event ev[4];
    if (way == WAY_POLL)
        return fq_poll(r->run.q, -1);
    if (way == WAY_LOOP)
        return fq_loop_wait(r->loop, ev, 4, -1);
    int ms;
    if (fq_loop_timeout(r->loop, &ms) != 0)
        return -1;
    struct pollfd p = {r->fd, POLLIN, 0};
    if (poll(&p, 1, ms) < 0)
        return -1;
    return fq_loop_process(r->loop, ev, 4);
}

/* Microseconds per round trip. */
static void roundtrip(int way, int n, run_info *out)
{
    struct rig r;
    rig_new(&r, 1, way);
    for (int i = 0; i < n; i++) {
        uint64_t x = (uint64_t)i;
        fq_result res;
        fq_check(fq_submit(r.run.q, echo, &x, sizeof x, NULL, NULL),
                 "fq_submit");
        while (fq_take(r.run.q, &res) == 0)
            if (wait_once(&r, way) < 0)
                die("roundtrip: %s failed", way_name[way]);
    }
    out->value = rig_free(&r, out, "roundtrip") / n * 1e6;
}

/* Jobs per second. */
static void throughput(int way, int n, run_info *out)
{
    struct rig r;
    rig_new(&r, 2, way);
    int sent = 0, got = 0;
    while (got < n) {
        while (sent < n && sent - got < 4096) {
            uint64_t x = (uint64_t)sent++;
            fq_check(fq_submit(r.run.q, echo, &x, sizeof x, NULL, NULL),
                     "fq_submit");
        }
        if (wait_once(&r, way) < 0)
            die("throughput: %s failed", way_name[way]);
        fq_result res;
        while (fq_take(r.run.q, &res) == 1)
            got++;
    }
    out->value = n / rig_free(&r, out, "throughput");
}

/* The figures: each way but fq_poll against fq_poll, round trips then
 * throughputs. */
enum { S_LAT_LOOP, S_LAT_OUTSIDE, S_TP_LOOP, S_TP_OUTSIDE, N_SERIES };

int main(int argc, char **argv)
{
    int reps = 5, quick = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: fq_loop_bench [--quick] [--reps N] [--json]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 99)
        reps = 5;
    if (quick)
        reps = 1;
    int nlat = quick ? 500 : 20000, njobs = quick ? 5000 : 300000;
    if (!json)
        printf("fq_loop_bench: forkqueue %s, %d reps, load %.2f\n",
               fq_version(), reps, load1());

    series S[N_SERIES] = {
        [S_LAT_LOOP] = {.name = "loop_roundtrip_fq_loop_wait",
                        .baseline = "roundtrip_fq_poll"},
        [S_LAT_OUTSIDE] = {.name = "loop_roundtrip_outside",
                           .baseline = "roundtrip_fq_poll"},
        [S_TP_LOOP] = {.name = "loop_throughput_fq_loop_wait",
                       .baseline = "throughput_fq_poll"},
        [S_TP_OUTSIDE] = {.name = "loop_throughput_outside",
                          .baseline = "throughput_fq_poll"},
    };
    for (int k = 0; k < N_SERIES; k++) {
        int lat = k < S_TP_LOOP;
        S[k].placement = lat ? "same-cpu" : "unpinned";
        S[k].unit = lat ? "us" : "jobs/s";
        S[k].better = lat ? "lower" : "higher";
        S[k].count = lat ? nlat : njobs;
        S[k].workers = lat ? 1 : 2;
        S[k].enabled = 1;
        series_init(&S[k], reps);
    }

    /* Round trips on one CPU: parent and worker take turns, as in
     * fq_bench's same-cpu latency. The ways are interleaved in each
     * repetition, so that load shifts hit all. */
    placement_init();
    place_parent(PL_SAME);
    for (int r = 0; r < reps; r++) {
        run_info w[NWAYS] = {{0}};
        for (int k = 0; k < NWAYS; k++)
            roundtrip(k, nlat, &w[k]);
        series_record(&S[S_LAT_LOOP], r, &w[WAY_LOOP], &w[WAY_POLL]);
        series_record(&S[S_LAT_OUTSIDE], r, &w[WAY_OUTSIDE], &w[WAY_POLL]);
    }
    unplace();
    for (int r = 0; r < reps; r++) {
        run_info w[NWAYS] = {{0}};
        for (int k = 0; k < NWAYS; k++)
            throughput(k, njobs, &w[k]);
        series_record(&S[S_TP_LOOP], r, &w[WAY_LOOP], &w[WAY_POLL]);
        series_record(&S[S_TP_OUTSIDE], r, &w[WAY_OUTSIDE], &w[WAY_POLL]);
    }

    if (json) {
        for (int k = 0; k < N_SERIES; k++)
            report(&S[k], reps, 1);
    } else {
        /* The way each figure group's baseline (fq_poll), then the other
         * two ways, as the table in docs/benchmarks.md reads them. */
        static const int lat_of[NWAYS] = {-1, S_LAT_LOOP, S_LAT_OUTSIDE};
        static const int tp_of[NWAYS] = {-1, S_TP_LOOP, S_TP_OUTSIDE};
        double mlat0 = median(S[S_LAT_LOOP].base, reps);
        double mthr0 = median(S[S_TP_LOOP].base, reps);
        for (int w = 0; w < NWAYS; w++) {
            double m = w ? median(S[lat_of[w]].fq, reps) : mlat0;
            printf("roundtrip(1 cpu)  %-13s %8.3g us     ratio to fq_poll "
                   "%.2f\n",
                   way_name[w], m, m / mlat0);
        }
        for (int w = 0; w < NWAYS; w++) {
            double m = w ? median(S[tp_of[w]].fq, reps) : mthr0;
            printf("throughput         %-13s %8.3g jobs/s ratio to fq_poll "
                   "%.2f\n",
                   way_name[w], m, m / mthr0);
        }
    }
    for (int k = 0; k < N_SERIES; k++)
        series_free(&S[k]);
    return 0;
}
