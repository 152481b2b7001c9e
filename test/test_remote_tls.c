/*
 * Remote workers over TLS: a self-signed certificate made at test time (the
 * openssl command, in a temporary directory); jobs over TLS on loopback,
 * large payloads through the relays; a client without TLS against a TLS
 * server and a TLS client against a plain server (clear errors within the
 * deadline, the server goes on serving); a client that does not trust the
 * certificate, or expects another name (FQ_EAUTH); a silent TLS client and
 * one that stops after the TLS handshake, dropped at the deadline; bad
 * certificate options. No descriptor of the client's is left behind.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fq_remote_test.h"

static char tmpdir[] = "/tmp/fq-tls-XXXXXX";
static char cert[256], key[256];

static fqrt_server tls_server(int hs_ms)
{
    fq_server_options o = {0};
    o.tls_cert = cert;
    o.tls_key = key;
    o.handshake_timeout_ms = hs_ms;
    fqrt_server s = fqrt_start(&o);
    assert_true(s.port > 0);
    return s;
}

static void ropts(fq_remote_options *o, int tls, char *err, size_t n)
{
    fqrt_client_opts(o, err, n);
    o->tls = tls;
    o->tls_ca_file = tls ? cert : NULL;
}

/* A queue of remote workers only (its local worker steps aside). */
static fq_queue remote_queue(void)
{
    fq_options o = {0};
    o.workers = 1;
    return fqt_queue_opts(&o);
}

/* Runs n squares and one echo of `big` bytes on q; all must come back. */
static void run_jobs(fq_queue q, int n, size_t big)
{
    for (uint64_t i = 0; i < (uint64_t)n; i++)
        fqt_submit_square(q, i);
    unsigned char *buf = malloc(big);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    uint64_t big_id = 0;
    if (big)
        FQT_OK(fq_submit(q, fqt_job_echo, buf, big, NULL, &big_id));
    FQT_OK(fq_wait(q, 60000));
    fq_result r;
    int seen = 0, echoed = 0;
    while (fq_take(q, &r) == 1) {
        if (big && r.id == big_id) {
            assert_int_equal(r.status, 0);
            assert_int_equal(r.len, big);
            assert_memory_equal(r.data, buf, big);
            echoed = 1;
            continue;
        }
        assert_int_equal(fqt_u64(&r), fqt_square(r.id));
        seen++;
    }
    assert_int_equal(seen, n);
    assert_int_equal(echoed, big ? 1 : 0);
    free(buf);
}

static void test_jobs_over_tls(void **state)
{
    (void)state;
    fqrt_server s = tls_server(0);
    char err[512];
    fq_remote_options ro;
    int fds0 = fqrt_count_fds(getpid());
    ropts(&ro, 1, err, sizeof(err));
    ro.flags = FQ_REMOTE_REPLACE_LOCAL;
    fq_queue q = remote_queue();
    if (fq_queue_add_remote(q, fqrt_addr(&s), &ro) != 0)
        fail_msg("add_remote: %s", err);
    ro.flags = 0;
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    /* The name may be given too (the certificate names localhost). */
    ro.tls_server_name = "localhost";
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    assert_int_equal(fqrt_workers(&s), 3);
    run_jobs(q, 3000, 3 * 1024 * 1024 + 17);
    fqt_queue_free(q);
    /* Relays joined, sockets closed; the server's workers end. */
    assert_int_equal(fqrt_count_fds(getpid()), fds0);
    fqrt_assert_workers_end(&s);
    assert_int_equal(fqrt_stop(&s), 0);
}

static void test_plain_client_tls_server(void **state)
{
    (void)state;
    const int k = fqp_time_scale();
    fqrt_server s = tls_server(400 * k);
    char err[512];
    fq_remote_options ro;
    ropts(&ro, 0, err, sizeof(err));
    fq_queue q = remote_queue();
    int64_t t0 = fqp_now_ms();
    int rc = fq_queue_add_remote(q, fqrt_addr(&s), &ro);
    int64_t dt = fqp_now_ms() - t0;
    assert_true(rc == FQ_ECLOSED || rc == FQ_ETIMEDOUT);
    assert_non_null(strstr(err, "TLS"));
    /* The server's deadline, not the client's. */
    assert_true(dt < 3000 * k);
    /* The server goes on serving TLS clients. */
    ropts(&ro, 1, err, sizeof(err));
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    run_jobs(q, 100, 0);
    fqrt_finish(q, &s);
}

static void test_tls_client_plain_server(void **state)
{
    (void)state;
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    ropts(&ro, 1, err, sizeof(err));
    fq_queue q = remote_queue();
    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EPROTO);
    assert_true(fqp_now_ms() - t0 < 3000);
    assert_non_null(strstr(err, "TLS handshake failed"));
    /* Without TLS it works. */
    ropts(&ro, 0, err, sizeof(err));
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    run_jobs(q, 100, 0);
    fqrt_finish(q, &s);
}

static void test_untrusted_certificate(void **state)
{
    (void)state;
    fqrt_server s = tls_server(0);
    char err[512];
    fq_remote_options ro;
    fq_queue q = remote_queue();
    int fds0 = fqrt_count_fds(getpid());
    /* The system's trust store does not know our self-signed certificate. */
    ropts(&ro, 1, err, sizeof(err));
    ro.tls_ca_file = NULL;
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EAUTH);
    assert_non_null(strstr(err, "not trusted"));
    /* Trusted, but for another name. */
    ropts(&ro, 1, err, sizeof(err));
    ro.tls_server_name = "other.example";
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EAUTH);
    assert_non_null(strstr(err, "not trusted"));
    /* A CA file that is not one. */
    ropts(&ro, 1, err, sizeof(err));
    ro.tls_ca_file = "/nonexistent/ca.pem";
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EINVAL);
    assert_non_null(strstr(err, "CA file"));
    assert_int_equal(fqrt_count_fds(getpid()), fds0);
    /* tls_insecure (unsafe) accepts it. */
    ropts(&ro, 0, err, sizeof(err));
    ro.tls_insecure = 1;
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    run_jobs(q, 50, 0);
    fqrt_finish(q, &s);
}

/* A client that completes the TLS handshake, then says nothing. */
static SSL *tls_handshake(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    return ssl;
}

static void test_silent_tls_clients(void **state)
{
    (void)state;
    /* Long enough for TLS handshakes under valgrind on a busy machine. */
    fqrt_server s = tls_server(3000);
    char err[512];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

    int64_t t0 = fqp_now_ms();
    int silent = fqrt_connect(s.port);    /* not even a ClientHello */
    int after_tls = fqrt_connect(s.port); /* TLS, then nothing */
    SSL *ssl = tls_handshake(ctx, after_tls);
    /* Others are served meanwhile, at once. */
    fq_remote_options ro;
    ropts(&ro, 1, err, sizeof(err));
    fq_queue q = remote_queue();
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    run_jobs(q, 10, 0);
    int64_t served = fqp_now_ms() - t0;
    int closed = fqrt_closed_within(silent, 10000);
    int64_t dropped = fqp_now_ms() - t0;
    /* The challenge came inside TLS; then the connection was dropped. */
    unsigned char hello[36];
    int n1 = SSL_read(ssl, hello, sizeof(hello));
    int n2 = SSL_read(ssl, hello + 4, sizeof(hello) - 4);
    ERR_clear_error();
    SSL_free(ssl); /* before any assertion: nothing leaks if one fails */
    SSL_CTX_free(ctx);
    assert_true(served < 3000);
    assert_true(closed);
    assert_true(dropped >= 2950);
    assert_int_equal(n1, (int)sizeof(hello));
    assert_memory_equal(hello, "FQW1", 4);
    assert_true(n2 <= 0);
    close(silent);
    close(after_tls);
    fqrt_finish(q, &s);
}

/* Time limits end TLS remote workers (the client's relay passes the end
 * on; the server ends the worker), and a server killed in the middle of a
 * job ends it with FQ_ECRASHED. */
static void test_tls_timeout_and_server_killed(void **state)
{
    (void)state;
    fqt_gate g, g2; /* before the server: its workers inherit them */
    fqt_gate_new(&g);
    fqt_gate_new(&g2);
    fqrt_server s = tls_server(0);
    char err[512];
    fq_remote_options ro;
    ropts(&ro, 1, err, sizeof(err));
    fq_options qo = {0};
    qo.workers = 1;
    qo.inflight = 1;
    fq_queue q = fqt_queue_opts(&qo);
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    fqt_assert_gated_timeouts(q, &g, 3, 300);
    fqrt_assert_workers_end(&s);

    /* The server dies with a job running on it. */
    ro.flags = FQ_REMOTE_REPLACE_LOCAL;
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    uint64_t id = fqt_submit_gate(q, &g2, 7, 0);
    /* It runs in a worker whose parent is the relay, a child of the
     * server. */
    pid_t jp = fqt_gate_started(q, &g2), pp = 0, ppp = 0;
    fqp_proc_stat(jp, NULL, &pp, NULL);
    fqp_proc_stat(pp, NULL, &ppp, NULL);
    assert_int_equal(ppp, s.pid);
    fqrt_kill(&s);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 10000 * fqp_time_scale()), 1);
    assert_int_equal(r.id, id);
    assert_int_equal(r.status, FQ_ECRASHED);
    fqt_queue_free(q);
    fqt_gate_free(&g);
    fqt_gate_free(&g2);
}

static int init_fails(void *udata)
{
    (void)udata;
    return -1;
}

/* What a worker writes just before it ends (its init failed) still
 * reaches the client: the server's relay outlives the worker. */
static void test_tls_init_failure(void **state)
{
    (void)state;
    int outcome[2] = {1, 1};
    for (int tls = 0; tls < 2; tls++) {
        fq_server_options o = {0};
        o.init = init_fails;
        o.tls_cert = tls ? cert : NULL;
        o.tls_key = tls ? key : NULL;
        fqrt_server s = fqrt_start(&o);
        char err[512];
        fq_remote_options ro;
        ropts(&ro, tls, err, sizeof(err));
        ro.flags = FQ_REMOTE_REPLACE_LOCAL;
        fq_queue q = remote_queue();
        int rc = fq_queue_add_remote(q, fqrt_addr(&s), &ro);
        if (rc == 0) {
            fqt_submit_square(q, 3);
            fq_result r;
            assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
            /* Ran by the local worker that came back, or failed. */
            assert_true(r.status == 0 || r.status == FQ_EINIT);
            outcome[tls] = r.status;
        } else {
            assert_int_equal(rc, FQ_EINIT);
            outcome[tls] = rc;
        }
        fqrt_finish(q, &s);
    }
    /* The same as without TLS. */
    assert_int_equal(outcome[1], outcome[0]);
}

static void test_bad_tls_options(void **state)
{
    (void)state;
    char err[512] = "";
    fq_server *srv = NULL;
    fq_server_options o = {0};
    o.key = FQRT_KEY;
    o.key_len = strlen(FQRT_KEY);
    o.errbuf = err;
    o.errbuf_size = sizeof(err);
    o.tls_cert = "/nonexistent/cert.pem";
    FQT_EQ(fq_server_new(&srv, &o), FQ_EINVAL);
    assert_null(srv);
    assert_non_null(strstr(err, "certificate"));
    /* The key is not the certificate's. */
    o.tls_cert = cert;
    o.tls_key = cert;
    FQT_EQ(fq_server_new(&srv, &o), FQ_EINVAL);
    assert_non_null(strstr(err, "key"));
    o.tls_cert = NULL;
    o.tls_key = key;
    FQT_EQ(fq_server_new(&srv, &o), FQ_EINVAL);
    assert_non_null(strstr(err, "tls_key"));
}

int main(void)
{
    if (fq_func_register("test.square", fqt_job_square, NULL) ||
        fq_func_register("test.gate", fqt_job_gate, NULL) ||
        fq_func_register("test.echo", fqt_job_echo, NULL))
        return 1;
    if (fqrt_cert_new(tmpdir, cert, key, sizeof(cert)) < 0) {
        fprintf(stderr, "cannot make a certificate with openssl\n");
        fqt_tmpdir_remove(tmpdir);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_jobs_over_tls),
        FQT_TEST(test_plain_client_tls_server),
        FQT_TEST(test_tls_client_plain_server),
        FQT_TEST(test_untrusted_certificate),
        FQT_TEST(test_silent_tls_clients),
        FQT_TEST(test_tls_timeout_and_server_killed),
        FQT_TEST(test_tls_init_failure),
        FQT_TEST(test_bad_tls_options),
    };
    int rc = FQT_RUN(tests);
    fqt_tmpdir_remove(tmpdir);
    return rc;
}
