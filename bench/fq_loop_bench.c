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
 * Figures: round trips (one job at a time, 1 worker, pinned to one CPU
 * when possible) and throughput (4096 jobs in flight, 2 workers). Medians
 * of --reps runs, each way's ratio to fq_poll.
 *
 *   fq_loop_bench [--quick] [--reps N]
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forkqueue.h"

enum { WAY_POLL, WAY_LOOP, WAY_OUTSIDE, NWAYS };
static const char *way_name[NWAYS] = {"fq_poll", "fq_loop_wait", "outside"};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int echo(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

struct rig {
    fq_queue q;
    fq_loop *loop;
    int fd;
};

static int rig_new(struct rig *r, int workers, int way)
{
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = workers;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (fq_queue_new(&r->q, &o) != 0 || fq_loop_new(&r->loop, NULL) != 0 ||
        fq_loop_add_queue(r->loop, r->q, NULL) != 0)
        return -1;
    if (way == WAY_OUTSIDE && (r->fd = fq_loop_fd(r->loop)) < 0)
        return -1;
    return 0;
}

static void rig_free(struct rig *r)
{
    fq_loop_free(r->loop);
    fq_queue_free(r->q);
}

/* One wait the chosen way. */
static int wait_once(struct rig *r, int way)
{
    fq_loop_event ev[4];
    if (way == WAY_POLL)
        return fq_poll(r->q, -1);
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
static double roundtrip(int way, int n)
{
    struct rig r;
    if (rig_new(&r, 1, way) != 0)
        exit(1);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        uint64_t x = (uint64_t)i;
        fq_result res;
        if (fq_submit(r.q, echo, &x, sizeof x, NULL, NULL) != 0)
            exit(1);
        while (fq_take(r.q, &res) == 0)
            if (wait_once(&r, way) < 0)
                exit(1);
    }
    double us = (now_s() - t0) / n * 1e6;
    rig_free(&r);
    return us;
}

/* Jobs per second. */
static double throughput(int way, int n)
{
    struct rig r;
    if (rig_new(&r, 2, way) != 0)
        exit(1);
    int sent = 0, got = 0;
    double t0 = now_s();
    while (got < n) {
        while (sent < n && sent - got < 4096) {
            uint64_t x = (uint64_t)sent++;
            if (fq_submit(r.q, echo, &x, sizeof x, NULL, NULL) != 0)
                exit(1);
        }
        if (wait_once(&r, way) < 0)
            exit(1);
        fq_result res;
        while (fq_take(r.q, &res) == 1)
            got++;
    }
    double rate = n / (now_s() - t0);
    rig_free(&r);
    return rate;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int reps = 5, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: fq_loop_bench [--quick] [--reps N]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 99)
        reps = 5;
    if (quick)
        reps = 1;
    int nlat = quick ? 500 : 20000, njobs = quick ? 5000 : 300000;
    double loadavg[1] = {0};
    if (getloadavg(loadavg, 1) < 0)
        loadavg[0] = -1;
    printf("fq_loop_bench: forkqueue %s, %d reps, load %.2f\n", fq_version(),
           reps, loadavg[0]);

    /* Round trips on one CPU: parent and worker take turns, as in
     * fq_bench's same-cpu latency (ignored where pinning fails). */
    cpu_set_t one, all;
    sched_getaffinity(0, sizeof all, &all);
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            CPU_SET(c, &one);
            break;
        }
    int pinned = sched_setaffinity(0, sizeof one, &one) == 0;
    double lat[NWAYS][100], thr[NWAYS][100], mlat[NWAYS], mthr[NWAYS];
    for (int r = 0; r < reps; r++) /* interleaved, so load shifts hit all */
        for (int w = 0; w < NWAYS; w++)
            lat[w][r] = roundtrip(w, nlat);
    sched_setaffinity(0, sizeof all, &all);
    for (int r = 0; r < reps; r++)
        for (int w = 0; w < NWAYS; w++)
            thr[w][r] = throughput(w, njobs);
    for (int w = 0; w < NWAYS; w++) {
        mlat[w] = median(lat[w], reps);
        mthr[w] = median(thr[w], reps);
    }
    for (int w = 0; w < NWAYS; w++)
        printf("roundtrip%s  %-13s %8.3g us     ratio to fq_poll %.2f\n",
               pinned ? "(1 cpu)" : "", way_name[w], mlat[w],
               mlat[w] / mlat[WAY_POLL]);
    for (int w = 0; w < NWAYS; w++)
        printf("throughput         %-13s %8.3g jobs/s ratio to fq_poll %.2f\n",
               way_name[w], mthr[w], mthr[w] / mthr[WAY_POLL]);
    return 0;
}
