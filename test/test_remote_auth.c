/*
 * Authentication of worker-server connections: the exchange against known
 * bytes (those of python/forkqueue/_auth.py), where the key comes from,
 * and a server under bad clients: wrong key, no key, replayed handshake,
 * garbage before and after the handshake, a silent client dropped after the
 * deadline while another is served, 1000 connections opened and dropped.
 */
#include <pthread.h>

#include "fq_remote_test.h"

#include "auth/auth.h"
#include "core/internal.h"
#include "transport/transport.h"

static fq__key key_of(const char *s)
{
    fq__key k;
    char err[256];
    FQT_OK(fq__auth_key_get(s, strlen(s), &k, err, sizeof(err)));
    return k;
}

static int64_t in_ms(int ms)
{
    return fq__now_ns() + (int64_t)ms * 1000000;
}

/* ---- The exchange ------------------------------------------------------- */

static void hex(const char *h, unsigned char *out)
{
    for (size_t i = 0; h[2 * i]; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
}

/* The MACs Python's hmac computes for these inputs (see the test's
 * comment in docs/remote.md): the C side must give the same bytes. */
static void test_known_answer(void **state)
{
    (void)state;
    fq__key k = key_of("interop-key");
    unsigned char s[32], c[32], answer[64], verdict[34], want[32];
    size_t vlen;
    for (int i = 0; i < 32; i++) {
        s[i] = (unsigned char)i;
        c[i] = (unsigned char)(100 + i);
    }
    memcpy(answer, c, 32);
    hex("235a58b9a4b5fe8f2a5c8e6519a1656f1162c121538f865a5dfb7b6879d3117a",
        answer + 32);
    assert_int_equal(
        fq__auth_server_check(&k, s, answer, sizeof(answer), verdict, &vlen),
        1);
    assert_int_equal(vlen, 34);
    assert_memory_equal(verdict, "OK", 2);
    hex("7d5dfc3f8f096d48a7fba6763a47d30cb77a43d92812536efbd2f5d9d4d158dd",
        want);
    assert_memory_equal(verdict + 2, want, 32);
    char err[256];
    FQT_OK(fq__auth_client_check(&k, verdict, vlen, c, s, err, sizeof(err)));
    /* One bit off anywhere in the MAC: refused. */
    for (int bit = 0; bit < 256; bit += 37) {
        answer[32 + bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(fq__auth_server_check(&k, s, answer, sizeof(answer),
                                               verdict, &vlen),
                         0);
        assert_int_equal(vlen, 2);
        assert_memory_equal(verdict, "NO", 2);
        answer[32 + bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    /* Short answers are refused, never read past. */
    assert_int_equal(fq__auth_server_check(&k, s, answer, 63, verdict, &vlen),
                     0);
    fq__key_free(&k);
}

static void test_roundtrip_and_wrong_key(void **state)
{
    (void)state;
    fq__key k = key_of("k1"), bad = key_of("k2");
    unsigned char hello[36], chal[32], answer[64], c[32], s[32], verdict[34];
    size_t vlen;
    char err[256];

    FQT_OK(fq__auth_server_hello(hello, chal));
    assert_memory_equal(hello, "FQW1", 4);
    FQT_OK(fq__auth_client_answer(&k, hello, 36, answer, c, s));
    assert_int_equal(
        fq__auth_server_check(&k, chal, answer, 64, verdict, &vlen), 1);
    FQT_OK(fq__auth_client_check(&k, verdict, vlen, c, s, err, sizeof(err)));
    /* The client does not trust a server that does not know the key. */
    FQT_EQ(fq__auth_client_check(&bad, verdict, vlen, c, s, err, sizeof(err)),
           FQ_EAUTH);
    assert_non_null(strstr(err, "does not know the key"));
    /* Nor does the server a client with another key. */
    FQT_OK(fq__auth_client_answer(&bad, hello, 36, answer, c, s));
    assert_int_equal(
        fq__auth_server_check(&k, chal, answer, 64, verdict, &vlen), 0);
    FQT_EQ(fq__auth_client_check(&bad, verdict, vlen, c, s, err, sizeof(err)),
           FQ_EAUTH);
    assert_non_null(strstr(err, "rejected our key"));
    /* Not a worker server at all. */
    FQT_EQ(fq__auth_client_answer(&k, (const unsigned char *)"HTTP/1.1 200 OK",
                                  15, answer, c, s),
           FQ_EPROTO);
    fq__key_free(&k);
    fq__key_free(&bad);
}

/* ---- Where the key comes from ------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/fq-auth-XXXXXX");
    assert_int_equal(fqt_tmpdir_new(tmpdir), 0);
}

static void remove_tmpdir(void)
{
    assert_int_equal(fqt_tmpdir_remove(tmpdir), 0);
}

static void test_key_sources(void **state)
{
    (void)state;
    fq__key k;
    char err[512], path[256];
    struct stat st;

    make_tmpdir();
    setenv("XDG_CONFIG_HOME", tmpdir, 1);
    unsetenv("FORKQUEUE_AUTHKEY");
    /* The argument first; empty is refused. */
    FQT_EQ(fq__auth_key_get("", 0, &k, err, sizeof(err)), FQ_EAUTH);
    assert_string_equal(err, "empty authkey");
    /* No file yet: made, mode 0600 in a 0700 directory, 64 hex digits. */
    FQT_OK(fq__auth_key_get(NULL, 0, &k, err, sizeof(err)));
    assert_int_equal(k.len, 64);
    FQT_OK(fq__auth_key_path(path, sizeof(path)));
    snprintf(err, sizeof(err), "%s/forkqueue/authkey", tmpdir);
    assert_string_equal(path, err);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(err, sizeof(err), "%s/forkqueue", tmpdir);
    assert_int_equal(stat(err, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Read again: the same key. */
    fq__key k2;
    FQT_OK(fq__auth_key_get(NULL, 0, &k2, err, sizeof(err)));
    assert_int_equal(k2.len, k.len);
    assert_memory_equal(k2.data, k.data, k.len);
    fq__key_free(&k2);
    /* The environment wins over the file. */
    setenv("FORKQUEUE_AUTHKEY", "from-env", 1);
    FQT_OK(fq__auth_key_get(NULL, 0, &k2, err, sizeof(err)));
    assert_int_equal(k2.len, 8);
    assert_memory_equal(k2.data, "from-env", 8);
    fq__key_free(&k2);
    unsetenv("FORKQUEUE_AUTHKEY");
    /* A file others can read is refused, with the fix in the message. */
    assert_int_equal(chmod(path, 0644), 0);
    FQT_EQ(fq__auth_key_get(NULL, 0, &k2, err, sizeof(err)), FQ_EAUTH);
    assert_non_null(strstr(err, "chmod 600"));
    fq_server *s = NULL;
    fq_server_options o = {0};
    o.errbuf = err;
    o.errbuf_size = sizeof(err);
    err[0] = '\0';
    FQT_EQ(fq_server_new(&s, &o), FQ_EAUTH);
    assert_null(s);
    assert_non_null(strstr(err, "can be read by others"));
    /* Whitespace around the key is not part of it (Python strips it). */
    assert_int_equal(chmod(path, 0600), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("  spaced-key \n", f);
    fclose(f);
    FQT_OK(fq__auth_key_get(NULL, 0, &k2, err, sizeof(err)));
    assert_int_equal(k2.len, 10);
    assert_memory_equal(k2.data, "spaced-key", 10);
    fq__key_free(&k2);
    fq__key_free(&k);
    remove_tmpdir();
    unsetenv("XDG_CONFIG_HOME");
}

/* No key and none can be made: the server refuses to start. */
static void test_no_key(void **state)
{
    (void)state;
    char err[512] = "";
    fq_server *s = NULL;
    fq_server_options o = {0};
    o.errbuf = err;
    o.errbuf_size = sizeof(err);
    unsetenv("FORKQUEUE_AUTHKEY");
    setenv("XDG_CONFIG_HOME", "/dev/null/no-such-dir", 1);
    FQT_EQ(fq_server_new(&s, &o), FQ_EAUTH);
    assert_null(s);
    assert_non_null(strstr(err, "no key"));
    assert_non_null(strstr(err, "FORKQUEUE_AUTHKEY"));
    /* Empty key argument: refused too. */
    o.key = "";
    o.key_len = 0;
    FQT_EQ(fq_server_new(&s, &o), FQ_EINVAL);
    unsetenv("XDG_CONFIG_HOME");
}

/* ---- A server under good and bad clients -------------------------------- */

/* A client handshake on a fresh connection; returns its code. */
static int client(int port, const char *key, int request, char *err,
                  size_t errn)
{
    char host[] = "127.0.0.1";
    int fd;
    int rc = fq__tcp_connect(host, port, 2000, &fd, err, errn);
    if (rc)
        return rc;
    fq__key k = key_of(key);
    rc = fq__auth_client(fd, &k, in_ms(3000), err, errn);
    if (rc == 0 && request)
        rc = fq__request_worker(fd, in_ms(3000), err, errn);
    fq__key_free(&k);
    close(fd);
    return rc;
}

static void test_wrong_key(void **state)
{
    (void)state;
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    assert_true(s.port > 0);
    int64_t t0 = fqp_now_ms();
    FQT_EQ(client(s.port, "not-the-key", 0, err, sizeof(err)), FQ_EAUTH);
    assert_true(fqp_now_ms() - t0 < 2000 * fqp_time_scale());
    assert_non_null(strstr(err, "rejected our key"));
    FQT_OK(client(s.port, FQRT_KEY, 1, err, sizeof(err)));
    assert_int_equal(fqrt_stop(&s), 0);
}

static void test_replayed_handshake(void **state)
{
    (void)state;
    fqrt_server s = fqrt_start(NULL);
    fq__key k = key_of(FQRT_KEY);
    unsigned char hello[36], answer[64], c[32], sc[32], verdict[34];

    int fd = fqrt_connect(s.port);
    assert_int_equal(fqrt_read(fd, hello, 36, 3000), 36);
    FQT_OK(fq__auth_client_answer(&k, hello, 36, answer, c, sc));
    assert_int_equal(fqt_write_all(fd, answer, 64), 0);
    assert_int_equal(fqrt_read(fd, verdict, 34, 3000), 34);
    assert_memory_equal(verdict, "OK", 2);
    close(fd);
    /* The same answer on a new connection: the challenge differs. */
    fd = fqrt_connect(s.port);
    unsigned char hello2[36];
    assert_int_equal(fqrt_read(fd, hello2, 36, 3000), 36);
    assert_memory_not_equal(hello + 4, hello2 + 4, 32);
    assert_int_equal(fqt_write_all(fd, answer, 64), 0);
    assert_int_equal(fqrt_read(fd, verdict, 34, 3000), 2);
    assert_memory_equal(verdict, "NO", 2);
    assert_true(fqrt_closed_within(fd, 3000));
    close(fd);
    fq__key_free(&k);
    assert_int_equal(fqrt_stop(&s), 0);
}

/* Authenticates fd by hand (the server then waits for the request). */
static void authenticate(int fd)
{
    fq__key k = key_of(FQRT_KEY);
    char err[256];
    FQT_OK(fq__auth_client(fd, &k, in_ms(3000), err, sizeof(err)));
    fq__key_free(&k);
}

static void test_garbage(void **state)
{
    (void)state;
    fqrt_server s = fqrt_start(NULL);
    char junk[4096];
    char err[512];
    unsigned char v[64];
    fqt_fill(junk, sizeof(junk), 7);

    /* Before the handshake: a wrong answer of the right size, then a
     * flood. */
    int fd = fqrt_connect(s.port);
    assert_int_equal(fqt_write_all(fd, junk, 64), 0);
    size_t n = fqrt_read(fd, v, 64, 3000);
    assert_true(n >= 38); /* hello + "NO" */
    assert_memory_equal(v + 36, "NO", 2);
    assert_true(fqrt_closed_within(fd, 3000));
    close(fd);
    fd = fqrt_connect(s.port);
    fqt_write_all(fd, junk, sizeof(junk)); /* may fail: closed meanwhile */
    assert_true(fqrt_closed_within(fd, 3000));
    close(fd);
    /* After the handshake: an HTTP request, a Python request (refused with
     * a message on the server's stderr), a request of another version
     * (refused with a message to the client). */
    const char *http = "GET / HTTP/1.0\r\n\r\n";
    fd = fqrt_connect(s.port);
    authenticate(fd);
    assert_int_equal(fqt_write_all(fd, http, strlen(http)), 0);
    assert_true(fqrt_closed_within(fd, 3000));
    close(fd);
    const unsigned char py[] = {0, 0, 0, 9, 0x80, 5, 0x95, 0, 0, 0, 0};
    fd = fqrt_connect(s.port);
    authenticate(fd);
    assert_int_equal(fqt_write_all(fd, py, sizeof(py)), 0);
    assert_true(fqrt_closed_within(fd, 3000));
    close(fd);
    unsigned char req[16];
    fq__request_encode(req);
    req[4] = 9; /* version 9 */
    fd = fqrt_connect(s.port);
    authenticate(fd);
    assert_int_equal(fqt_write_all(fd, req, sizeof(req)), 0);
    unsigned char hdr[8];
    assert_int_equal(fqrt_read(fd, hdr, 8, 3000), 8);
    int len = fq__reply_decode(hdr);
    assert_true(len > 0);
    char msg[1100] = "";
    assert_int_equal(fqrt_read(fd, msg, (size_t)len, 3000), (size_t)len);
    assert_non_null(strstr(msg, "unsupported"));
    close(fd);
    /* And the server still serves. */
    FQT_OK(client(s.port, FQRT_KEY, 1, err, sizeof(err)));
    assert_int_equal(fqrt_stop(&s), 0);
}

static void test_silent_client(void **state)
{
    (void)state;
    const int k = fqp_time_scale();
    fq_server_options o = {0};
    o.handshake_timeout_ms = 400 * k;
    fqrt_server s = fqrt_start(&o);
    char err[512];

    int64_t t0 = fqp_now_ms();
    int silent = fqrt_connect(s.port);
    int half = fqrt_connect(s.port); /* authenticates, sends no request */
    authenticate(half);
    /* Others are served meanwhile, at once. */
    for (int i = 0; i < 3; i++)
        FQT_OK(client(s.port, FQRT_KEY, 1, err, sizeof(err)));
    assert_true(fqp_now_ms() - t0 < 400 * k);
    assert_true(fqrt_closed_within(silent, 5000 * k));
    int64_t dt = fqp_now_ms() - t0;
    assert_true(dt >= 350 * k);
    assert_true(fqrt_closed_within(half, 5000 * k));
    close(silent);
    close(half);
    assert_int_equal(fqrt_stop(&s), 0);
}

static void test_many_connections(void **state)
{
    (void)state;
    fq_server_options o = {0};
    o.handshake_timeout_ms = 2000;
    fqrt_server s = fqrt_start(&o);
    char err[512];
    char junk[100];
    fqt_fill(junk, sizeof(junk), 3);

    int base = fqrt_count_fds(s.pid);
    assert_true(base > 0);
    enum { BATCH = 100 };
    int fds[BATCH];
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < BATCH; i++)
            fds[i] = fqrt_connect(s.port);
        for (int i = 0; i < BATCH; i++) {
            if (i % 3 == 1)
                send(fds[i], junk, (size_t)(i % 50) + 1, MSG_NOSIGNAL);
            if (i % 3 == 2) { /* a reset instead of a close */
                struct linger l = {1, 0};
                setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            }
            close(fds[i]);
        }
    }
    /* Every connection's descriptor goes again, without waiting for the
     * handshake deadline, and the server serves. */
    FQT_WAIT_UNTIL(fqrt_count_fds(s.pid) == base, 10000);
    if (fqrt_count_fds(s.pid) != base) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int)s.pid);
        system(cmd);
    }
    assert_int_equal(fqrt_count_fds(s.pid), base);
    FQT_OK(client(s.port, FQRT_KEY, 1, err, sizeof(err)));
    assert_int_equal(kill(s.pid, 0), 0);
    assert_int_equal(fqrt_stop(&s), 0);
}

static void *run_thread(void *arg)
{
    return (void *)(intptr_t)fq_server_run(arg);
}

/* fq_server_stop() from another thread; run() after stop returns at once;
 * a second run() while one runs is refused. */
static void test_stop_from_thread(void **state)
{
    (void)state;
    fq_server *s;
    fq_server_options o = {0};
    o.key = "k";
    o.key_len = 1;
    FQT_OK(fq_server_new(&s, &o));
    assert_true(fq_server_port(s) > 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_thread, s), 0);
    /* Connected and greeted: the loop runs. */
    int fd = fqrt_connect(fq_server_port(s));
    unsigned char hello[36];
    assert_int_equal(fqrt_read(fd, hello, 36, 3000), 36);
    FQT_EQ(fq_server_run(s), FQ_EBUSY);
    FQT_OK(fq_server_stop(s));
    void *rv;
    assert_int_equal(pthread_join(t, &rv), 0);
    assert_int_equal((int)(intptr_t)rv, 0);
    assert_true(fqrt_closed_within(fd, 3000));
    close(fd);
    FQT_OK(fq_server_run(s));
    fq_server_free(s);
    fq_server_free(NULL);
    FQT_EQ(fq_server_new(NULL, &o), FQ_EINVAL);
    FQT_EQ(fq_server_port(NULL), FQ_EINVAL);
    FQT_EQ(fq_server_stop(NULL), FQ_EINVAL);
    FQT_EQ(fq_server_run(NULL), FQ_EINVAL);
}

static void test_address_in_use(void **state)
{
    (void)state;
    fq_server *a, *b;
    char err[256] = "";
    fq_server_options o = {0};
    o.key = "k";
    o.key_len = 1;
    FQT_OK(fq_server_new(&a, &o));
    o.port = fq_server_port(a);
    o.errbuf = err;
    o.errbuf_size = sizeof(err);
    FQT_EQ(fq_server_new(&b, &o), FQ_ESYS);
    assert_non_null(strstr(err, "in use"));
    o.addr = "no-such-host.invalid";
    o.port = 0;
    FQT_EQ(fq_server_new(&b, &o), FQ_EINVAL);
    fq_server_free(a);
}

/* The server's answer is cut to the room it is given, never past it. */
static void test_reply_encode_bounds(void **state)
{
    (void)state;
    unsigned char out[FQ__REPLY_HDR + 16];
    memset(out, 0xAA, sizeof out);
    assert_int_equal(fq__reply_encode(out, FQ__REPLY_HDR - 1, "no room"), 0);
    assert_int_equal(fq__reply_encode(out, FQ__REPLY_HDR - 1, NULL), 0);
    assert_int_equal(out[0], 0xAA); /* nothing written */
    assert_int_equal(fq__reply_encode(out, FQ__REPLY_HDR + 3, "hello"),
                     FQ__REPLY_HDR + 3);
    assert_memory_equal(out, "FQER", 4);
    assert_memory_equal(out + FQ__REPLY_HDR, "hel", 3);
    assert_int_equal(out[FQ__REPLY_HDR + 3], 0xAA);
    assert_int_equal(fq__reply_encode(out, sizeof out, NULL), FQ__REPLY_HDR);
    assert_int_equal(fq__reply_decode(out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_known_answer),     FQT_TEST(test_roundtrip_and_wrong_key),
        FQT_TEST(test_key_sources),      FQT_TEST(test_no_key),
        FQT_TEST(test_wrong_key),        FQT_TEST(test_replayed_handshake),
        FQT_TEST(test_garbage),          FQT_TEST(test_silent_client),
        FQT_TEST(test_many_connections), FQT_TEST(test_stop_from_thread),
        FQT_TEST(test_address_in_use),   FQT_TEST(test_reply_encode_bounds),
    };
    return FQT_RUN(tests);
}
