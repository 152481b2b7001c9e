/*
 * Helpers of the remote tests: a worker server in a child process on
 * loopback with a free port (the test starts and stops it), the client's
 * options and address for it, its worker processes, a self-signed
 * certificate for TLS, raw client connections, descriptor counts.
 */
#ifndef FQ_REMOTE_TEST_H
#define FQ_REMOTE_TEST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "fq_test.h"

#define FQRT_KEY "remote-test-key"

/* The deadlines of a connection's handshake, client side and (unless the
 * test sets its own) server side: long, so that a machine slowed down by
 * valgrind or other work never hits them where a test does not mean to. */
#define FQRT_DEADLINE_MS 20000

typedef struct fqrt_server {
    pid_t pid;
    int port;
} fqrt_server;

static fq_server *fqrt_child_server;

static void fqrt_on_term(int sig)
{
    (void)sig;
    fq_server_stop(fqrt_child_server); /* async-signal-safe */
}

/*
 * Forks a server with options o (key FQRT_KEY unless o->key is set, a
 * handshake deadline of FQRT_DEADLINE_MS unless o sets one), stops
 * on SIGTERM through fq_server_stop() from a signal handler. Returns the
 * server, port 0 and pid -errno when fq_server_new() failed (the child then
 * writes the error code instead of the port).
 */
static inline fqrt_server fqrt_start(const fq_server_options *o)
{
    fqrt_server s = {0, 0};
    int p[2];
    fqt_pipe(p);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fq_server_options opts = o ? *o : (fq_server_options){0};
        if (!opts.key) {
            opts.key = FQRT_KEY;
            opts.key_len = strlen(FQRT_KEY);
        }
        if (!opts.handshake_timeout_ms)
            opts.handshake_timeout_ms = FQRT_DEADLINE_MS;
        close(p[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves none */
        int rc = fq_server_new(&fqrt_child_server, &opts);
        int v = rc < 0 ? rc : fq_server_port(fqrt_child_server);
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = fqrt_on_term;
        sigaction(SIGTERM, &sa, NULL);
        if (fqt_write_all(p[1], &v, sizeof(v)) < 0 || rc < 0)
            _exit(3);
        close(p[1]);
        rc = fq_server_run(fqrt_child_server);
        fq_server_free(fqrt_child_server);
        _exit(rc == 0 ? 0 : 4);
    }
    close(p[1]);
    int v = 0;
    assert_int_equal(fqt_read_all(p[0], &v, sizeof(v)), 0);
    /* Until the child closed its end: it holds nothing of ours then. */
    char b;
    while (read(p[0], &b, 1) < 0 && errno == EINTR)
        ;
    close(p[0]);
    s.pid = pid;
    s.port = v;
    return s;
}

/* Stops the server (SIGTERM: its handler calls fq_server_stop()) and
 * returns its exit status (0 when fq_server_run() returned 0). */
static inline int fqrt_stop(fqrt_server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int st = fqt_wait_child(s->pid);
    s->pid = 0;
    return st;
}

/* "127.0.0.1:PORT" of the server (a static buffer: the next call reuses
 * it). */
static inline const char *fqrt_addr(const fqrt_server *s)
{
    static char buf[32];
    snprintf(buf, sizeof(buf), "127.0.0.1:%d", s->port);
    return buf;
}

/* Client options for fqrt_start()'s servers: key FQRT_KEY, a connect
 * deadline of FQRT_DEADLINE_MS, errors written to err; the rest zero. */
static inline void fqrt_client_opts(fq_remote_options *o, char *err, size_t n)
{
    memset(o, 0, sizeof(*o));
    o->key = FQRT_KEY;
    o->key_len = strlen(FQRT_KEY);
    o->connect_timeout_ms = FQRT_DEADLINE_MS;
    o->errbuf = err;
    o->errbuf_size = n;
}

/* The server's worker processes (its children; a TLS worker's relay
 * counts as one). */
static inline int fqrt_workers(const fqrt_server *s)
{
    return fqp_children(s->pid, NULL, 0, NULL);
}

/* Asserts that the server's workers end within 5 s (their connections
 * closed). */
static inline void fqrt_assert_workers_end(const fqrt_server *s)
{
    FQT_WAIT_UNTIL(fqrt_workers(s) == 0, 5000);
    assert_int_equal(fqrt_workers(s), 0);
}

/* Frees q (remote workers of s in it), then asserts that the server's
 * workers end and that the server stops cleanly. */
static inline void fqrt_finish(fq_queue q, fqrt_server *s)
{
    fqt_queue_free(q);
    fqrt_assert_workers_end(s);
    assert_int_equal(fqrt_stop(s), 0);
}

/* A self-signed certificate for localhost and 127.0.0.1 and its key, made
 * by the openssl command in a fresh directory: dir is a mkdtemp()
 * template, cert and key get the files' paths (n bytes each). 0 or -1. */
static inline int fqrt_cert_new(char *dir, char *cert, char *key, size_t n)
{
    char cmd[1024];
    if (fqt_tmpdir_new(dir) < 0)
        return -1;
    snprintf(cert, n, "%s/cert.pem", dir);
    snprintf(key, n, "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -days 2 -subj /CN=localhost -addext "
             "subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout %s -out %s "
             ">/dev/null 2>&1",
             key, cert);
    return system(cmd) == 0 ? 0 : -1;
}

/* Kills the server with SIGKILL (its workers are left to notice) and
 * reaps it. */
static inline void fqrt_kill(fqrt_server *s)
{
    assert_true(s->pid > 0);
    kill(s->pid, SIGKILL);
    assert_int_equal(fqt_wait_child(s->pid), 1000 + SIGKILL);
    s->pid = 0;
}

/* A blocking-by-poll connection to the server on loopback. */
static inline int fqrt_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Reads until n bytes or end of stream or timeout; returns bytes read. */
static inline size_t fqrt_read(int fd, void *buf, size_t n, int timeout_ms)
{
    size_t have = 0;
    int64_t end = fqp_now_ms() + timeout_ms;
    while (have < n) {
        int64_t left = end - fqp_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t r = read(fd, (char *)buf + have, n - have);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    return have;
}

/* 1 when the peer closed fd within timeout_ms (reading and dropping what
 * comes first). */
static inline int fqrt_closed_within(int fd, int timeout_ms)
{
    char b[256];
    int64_t end = fqp_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - fqp_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t r = read(fd, b, sizeof(b));
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
    }
}

/* Open descriptors of a process. */
static inline int fqrt_count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

#endif
