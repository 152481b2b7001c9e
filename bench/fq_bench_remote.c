/*
 * fq_bench_remote: CPU-bound jobs of about 100 us on 2 remote workers (a
 * worker server on loopback, forked by the benchmark, reached over TCP with
 * authentication) against 2 local process workers and the sequential loop,
 * in the same run, on the same inputs. Prints the median of each over the
 * repetitions and the ratios; the target is remote within 2x of
 * local (remote / local throughput >= 0.5).
 *
 * With --tls, also 2 remote workers over TLS (a second server with a
 * self-signed certificate made by the openssl command in a temporary
 * directory): what the relays cost.
 *
 * Usage: fq_bench_remote [--jobs N] [--reps R] [--quick] [--tls]
 *
 * The CPU-bound job, its calibration, timing and medians are fq_bench's
 * (harness.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define KEY "bench-key"

/* On failure of an fq_ call. */
static void fail(const char *what, int rc)
{
    fprintf(stderr, "fq_bench_remote: %s: %s\n", what, fq_strerror(rc));
    exit(1);
}

static uint64_t want_sum;
static char tls_dir[] = "/tmp/fq-bench-tls-XXXXXX";
static char tls_cert[128], tls_key[128];

static double run_sequential(long n)
{
    uint64_t sum = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        sum += burn((uint64_t)i, cpu_iters);
    double t = now_s() - t0;
    want_sum = sum;
    return (double)n / t;
}

/* jobs/s of n jobs on a queue of 2 local workers, or of 2 remote workers
 * in their places (port > 0). */
static double run_queue(long n, int port, int tls)
{
    fq_queue q;
    fq_options o = {0};
    o.workers = 2;
    int rc = fq_queue_new(&q, &o);
    if (rc)
        fail("fq_queue_new", rc);
    if (port > 0) {
        char addr[64], err[512] = "";
        fq_remote_options ro = {0};
        ro.key = KEY;
        ro.key_len = strlen(KEY);
        ro.flags = FQ_REMOTE_REPLACE_LOCAL;
        ro.errbuf = err;
        ro.errbuf_size = sizeof(err);
        ro.tls = tls;
        ro.tls_ca_file = tls ? tls_cert : NULL;
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        for (int i = 0; i < 2; i++)
            if ((rc = fq_queue_add_remote(q, addr, &ro)) != 0) {
                fprintf(stderr, "%s\n", err);
                fail("fq_queue_add_remote", rc);
            }
        /* Let the local workers retire before the clock starts. */
        pid_t p;
        for (int i = 0; i < 1000 && fq_worker_pids(q, &p, 1) > 0; i++)
            fq_poll(q, 5);
    }
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        cpu_arg a = {(uint64_t)i, cpu_iters};
        if ((rc = fq_submit(q, job_cpu, &a, sizeof(a), NULL, NULL)) != 0)
            fail("fq_submit", rc);
    }
    if ((rc = fq_wait(q, -1)) != 0)
        fail("fq_wait", rc);
    double t = now_s() - t0;
    uint64_t sum = 0;
    fq_result r;
    while (fq_take(q, &r) == 1) {
        if (r.status != 0) {
            fprintf(stderr, "job failed: %s\n", (const char *)r.data);
            exit(1);
        }
        uint64_t v;
        memcpy(&v, r.data, sizeof(v));
        sum += v;
    }
    if (sum != want_sum) {
        fprintf(stderr, "fq_bench_remote: wrong results\n");
        exit(1);
    }
    fq_queue_free(q);
    return (double)n / t;
}

static fq_server *srv;

static void on_term(int sig)
{
    (void)sig;
    fq_server_stop(srv);
}

/* A worker server on a free loopback port, in a child; returns its pid. */
static pid_t start_server(int *port, int tls)
{
    int p[2];
    if (pipe(p) < 0)
        exit(1);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fq_server_options o = {0};
        o.key = KEY;
        o.key_len = strlen(KEY);
        o.tls_cert = tls ? tls_cert : NULL;
        o.tls_key = tls ? tls_key : NULL;
        int rc = fq_server_new(&srv, &o);
        int v = rc ? rc : fq_server_port(srv);
        signal(SIGTERM, on_term);
        if (write(p[1], &v, sizeof(v)) != sizeof(v) || rc)
            _exit(1);
        close(p[1]);
        fq_server_run(srv);
        fq_server_free(srv);
        _exit(0);
    }
    close(p[1]);
    if (pid < 0 || read(p[0], port, sizeof(*port)) != sizeof(*port) ||
        *port <= 0) {
        fprintf(stderr, "fq_bench_remote: the server did not start\n");
        exit(1);
    }
    close(p[0]);
    return pid;
}

int main(int argc, char **argv)
{
    long n = 4000;
    int reps = 5, tls = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            n = 200;
            reps = 1;
        } else if (strcmp(argv[i], "--tls") == 0) {
            tls = 1;
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            n = atol(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: fq_bench_remote [--jobs N] [--reps R] "
                            "[--quick] [--tls]\n");
            return 2;
        }
    }
    if (n < 1 || reps < 1 || reps > 100)
        return 2;
    int rc = fq_func_register("bench.cpu", job_cpu, NULL);
    if (rc)
        fail("fq_func_register", rc);
    calibrate(100.0);
    int port, tport = 0;
    pid_t server = start_server(&port, 0), tserver = -1;
    if (tls) {
        char cmd[512];
        if (!mkdtemp(tls_dir))
            return 1;
        snprintf(tls_cert, sizeof(tls_cert), "%s/cert.pem", tls_dir);
        snprintf(tls_key, sizeof(tls_key), "%s/key.pem", tls_dir);
        snprintf(cmd, sizeof(cmd),
                 "openssl req -x509 -newkey ec -pkeyopt "
                 "ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost "
                 "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
                 ">/dev/null 2>&1",
                 tls_key, tls_cert);
        if (system(cmd) != 0) {
            fprintf(stderr, "fq_bench_remote: openssl req failed\n");
            return 1;
        }
        tserver = start_server(&tport, 1);
    }
    double seq[100], local[100], remote[100], remote_tls[100];
    for (int r = 0; r < reps; r++) {
        seq[r] = run_sequential(n);
        /* Alternate which goes first. */
        if (r % 2) {
            remote[r] = run_queue(n, port, 0);
            local[r] = run_queue(n, 0, 0);
        } else {
            local[r] = run_queue(n, 0, 0);
            remote[r] = run_queue(n, port, 0);
        }
        if (tls)
            remote_tls[r] = run_queue(n, tport, 1);
    }
    int st;
    for (int i = 0; i < 2; i++) {
        pid_t pid = i ? tserver : server;
        if (pid <= 0)
            continue;
        kill(pid, SIGTERM);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (tls) {
        unlink(tls_cert);
        unlink(tls_key);
        rmdir(tls_dir);
    }
    double s = median(seq, reps), l = median(local, reps),
           m = median(remote, reps);
    time_t t = time(NULL);
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&t));
    printf("fq_bench_remote: forkqueue %s, %s, %ld jobs of ~100 us, %d "
           "reps (medians)\n",
           fq_version(), when, n, reps);
    printf("  sequential loop      %10.0f jobs/s\n", s);
    printf("  2 local workers      %10.0f jobs/s  %.2fx sequential\n", l,
           l / s);
    printf("  2 remote workers     %10.0f jobs/s  %.2fx sequential, %.2f of "
           "local (target >= 0.5: %s)\n",
           m, m / s, m / l, m / l >= 0.5 ? "met" : "missed");
    if (tls) {
        double m2 = median(remote_tls, reps);
        printf("  2 remote workers TLS %10.0f jobs/s  %.2fx sequential, %.2f "
               "of local, %.2f of plain remote\n",
               m2, m2 / s, m2 / l, m2 / m);
    }
    return 0;
}
