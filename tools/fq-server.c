/*
 * fq-server: a worker server for C programs (remote workers added with
 * fq_queue_add_remote()), on the public API only. The job functions come
 * from plugins: shared libraries loaded with --load that register them
 * with fq_func_register(), in a constructor or in an exported function
 *
 *     int fq_plugin_init(void);    (non-zero: the plugin failed)
 *
 * Usage: fq-server [--addr A] [--port P] [-v|-vv] [--handshake-timeout S]
 *                  [--max-pending N] [--tls-cert FILE [--tls-key FILE]]
 *                  [--load LIB.so]...
 *
 * Prints "Listening on HOST:PORT" once it accepts connections; stops on
 * SIGINT or SIGTERM, ending its workers. The key: $FORKQUEUE_AUTHKEY, else
 * the per-user key file (see docs/remote.md). Exit status 1 and a reason
 * when it cannot start, 2 for bad usage.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forkqueue.h"

static fq_server *server;

static void on_signal(int sig)
{
    (void)sig;
    fq_server_stop(server); /* async-signal-safe */
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fq-server [--addr A] [--port P] [-v|-vv] "
               "[--handshake-timeout S]\n"
               "                 [--max-pending N] [--tls-cert FILE "
               "[--tls-key FILE]]\n"
               "                 [--load LIB.so]...\n"
               "Serves forkqueue C remote workers (fq_queue_add_remote()).\n"
               "  --addr, -a A             address to listen on (default: "
               "127.0.0.1, loopback only)\n"
               "  --port, -p P             port (default: 60006; 0 picks a "
               "free one)\n"
               "  --verbose, -v            connections and workers; -vv: "
               "more\n"
               "  --handshake-timeout S    seconds a connection has to "
               "authenticate and send\n"
               "                           its request (default: 5)\n"
               "  --max-pending N          connections authenticating at once "
               "(default: 512)\n"
               "  --tls-cert FILE          speak TLS with this certificate "
               "chain (PEM)\n"
               "  --tls-key FILE           its private key (PEM; default: "
               "in the --tls-cert file)\n"
               "  --load, -l LIB.so        load a plugin that registers job "
               "functions\n"
               "                           (fq_func_register()); repeatable\n"
               "The key: $FORKQUEUE_AUTHKEY, else the per-user key file.\n");
}

/* The value of option argv[*i] ("--opt V" or "--opt=V"), or NULL. */
static const char *value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) == 0 && a[n] == '=')
        return a + n + 1;
    if (strcmp(a, name) == 0 && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int load_plugin(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        fprintf(stderr, "fq-server: cannot load %s: %s\n", path, dlerror());
        return -1;
    }
    int (*init)(void) = (int (*)(void))dlsym(h, "fq_plugin_init");
    if (init && init() != 0) {
        fprintf(stderr, "fq-server: %s: fq_plugin_init() failed\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    fq_server_options o = {0};
    char err[512] = "";
    const char *addr = "127.0.0.1";
    double hs = 5.0;

    o.port = 60006;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        char *end;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o.verbose++;
        } else if (strcmp(a, "-vv") == 0) {
            o.verbose += 2;
        } else if ((v = value(argc, argv, &i, "--addr")) ||
                   (v = value(argc, argv, &i, "-a"))) {
            addr = v;
        } else if ((v = value(argc, argv, &i, "--port")) ||
                   (v = value(argc, argv, &i, "-p"))) {
            long p = strtol(v, &end, 10);
            if (*v == '\0' || *end || p < 0 || p > 65535) {
                fprintf(stderr, "fq-server: bad port: %s\n", v);
                return 2;
            }
            o.port = (int)p;
        } else if ((v = value(argc, argv, &i, "--handshake-timeout"))) {
            hs = strtod(v, &end);
            if (*v == '\0' || *end || !(hs > 0) || hs > 86400) {
                fprintf(stderr, "fq-server: bad handshake timeout: %s\n", v);
                return 2;
            }
        } else if ((v = value(argc, argv, &i, "--max-pending"))) {
            long n = strtol(v, &end, 10);
            if (*v == '\0' || *end || n < 1 || n > 1000000) {
                fprintf(stderr, "fq-server: bad --max-pending: %s\n", v);
                return 2;
            }
            o.max_pending = (int)n;
        } else if ((v = value(argc, argv, &i, "--tls-cert"))) {
            o.tls_cert = v;
        } else if ((v = value(argc, argv, &i, "--tls-key"))) {
            o.tls_key = v;
        } else if ((v = value(argc, argv, &i, "--load")) ||
                   (v = value(argc, argv, &i, "-l"))) {
            if (load_plugin(v) < 0)
                return 1;
        } else {
            fprintf(stderr, "fq-server: unknown argument: %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    o.addr = addr;
    o.handshake_timeout_ms = (int)(hs * 1000 + 0.5);
    if (o.handshake_timeout_ms < 1)
        o.handshake_timeout_ms = 1;
    o.errbuf = err;
    o.errbuf_size = sizeof(err);
    int rc = fq_server_new(&server, &o);
    if (rc < 0) {
        fprintf(stderr, "fq-server: cannot start: %s\n",
                err[0] ? err : fq_strerror(rc));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("Listening on %s:%d\n", addr, fq_server_port(server));
    fflush(stdout);
    rc = fq_server_run(server);
    fq_server_free(server);
    if (rc < 0) {
        fprintf(stderr, "fq-server: %s\n", fq_strerror(rc));
        return 1;
    }
    return 0;
}
