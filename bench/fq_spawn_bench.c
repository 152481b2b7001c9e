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
 * Usage: fq_spawn_bench [--reps N] [--jobs N] [--respawns N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "forkqueue.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int job_nop(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    return 0;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "fq_spawn_bench: %s: %s\n", what, fq_strerror(rc));
    exit(1);
}

static fq_queue make(int fork_server, uint64_t max_rss)
{
    fq_options o = {0};
    o.workers = 2;
    o.fork_server = fork_server;
    o.max_rss = max_rss;
    fq_queue q = {0};
    int rc = fq_queue_new(&q, &o);
    if (rc)
        die("fq_queue_new", rc);
    return q;
}

static void drain(fq_queue q, int n)
{
    fq_result r;
    for (int i = 0; i < n;) {
        int rc = fq_take(q, &r);
        if (rc < 0)
            die("fq_take", rc);
        if (rc == 0) {
            rc = fq_poll(q, -1);
            if (rc < 0)
                die("fq_poll", rc);
            continue;
        }
        if (r.status)
            die("job", r.status);
        i++;
    }
}

/* Seconds per fq_refork() of both workers until each new one answered. */
static double respawn(int fork_server, int n)
{
    fq_queue q = make(fork_server, 0);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        int rc = fq_refork(q);
        if (rc)
            die("fq_refork", rc);
        for (int k = 0; k < 2; k++)
            fq_submit(q, job_nop, NULL, 0, NULL, NULL);
        drain(q, 2);
    }
    double t = (now_s() - t0) / n;
    fq_queue_free(q);
    return t;
}

static double throughput(int fork_server, uint64_t max_rss, int jobs)
{
    fq_queue q = make(fork_server, max_rss);
    double t0 = now_s();
    int sent = 0, got = 0;
    fq_result r;
    while (got < jobs) {
        while (sent < jobs && sent - got < 4096) {
            int rc = fq_submit(q, job_nop, NULL, 0, NULL, NULL);
            if (rc)
                die("fq_submit", rc);
            sent++;
        }
        int rc = fq_take(q, &r);
        if (rc < 0)
            die("fq_take", rc);
        if (rc == 1) {
            got++;
            continue;
        }
        if ((rc = fq_poll(q, -1)) < 0)
            die("fq_poll", rc);
    }
    double t = now_s() - t0;
    fq_queue_free(q);
    return jobs / t;
}

int main(int argc, char **argv)
{
    int reps = 5, jobs = 1000000, respawns = 200;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--jobs"))
            jobs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--respawns"))
            respawns = atoi(argv[i + 1]);
    }
    if (reps < 1 || reps > 99 || jobs < 1 || respawns < 1) {
        fprintf(stderr, "usage: %s [--reps N] [--jobs N] [--respawns N]\n",
                argv[0]);
        return 2;
    }
    int rc = fq_forkserver_start();
    if (rc)
        die("fq_forkserver_start", rc);
    double d[99], s[99], td[99], ts[99], tr[99];
    for (int i = 0; i < reps; i++) {
        d[i] = respawn(0, respawns);
        s[i] = respawn(1, respawns);
        td[i] = throughput(0, 0, jobs);
        ts[i] = throughput(1, 0, jobs);
        tr[i] = throughput(0, UINT64_C(1) << 40, jobs);
    }
    double md = median(d, reps), ms = median(s, reps);
    double mtd = median(td, reps), mts = median(ts, reps),
           mtr = median(tr, reps);
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("fq_spawn_bench: forkqueue %s, %ld online CPUs, %d reps, %s\n",
           fq_version(), sysconf(_SC_NPROCESSORS_ONLN), reps, when);
    printf("respawn (2 workers, refork to first answers): direct %.0f us, "
           "fork server %.0f us, ratio %.2f\n",
           md * 1e6, ms * 1e6, ms / md);
    printf("throughput (2 workers, tiny jobs): direct %.3g jobs/s, fork "
           "server %.3g (ratio %.2f), max_rss set %.3g (ratio %.2f)\n",
           mtd, mts, mts / mtd, mtr, mtr / mtd);
    fq_forkserver_stop();
    return 0;
}
