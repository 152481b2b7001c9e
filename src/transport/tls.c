/*
 * TLS contexts, sessions over our own socket BIO, and the client's
 * handshake (see tls.h). The relay is in tls_relay.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/internal.h"
#include "transport/tls.h"

/* ---- A socket BIO that never raises SIGPIPE ----------------------------- */

/* BIO data: the descriptor; BIO_get_shutdown() records end of stream. */
static int bio_write(BIO *b, const char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t r;
    BIO_clear_retry_flags(b);
    do
        r = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)r;
}

static int bio_read(BIO *b, char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t r;
    BIO_clear_retry_flags(b);
    do
        r = recv(fd, buf, (size_t)len, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    if (r == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) ? 1 : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    (void)b; /* the descriptor is the caller's */
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_setup(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                     BIO_TYPE_DESCRIPTOR,
                                 "forkqueue socket");
    if (!m)
        return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    bio_method = m;
}

/* Freed at exit so that leak checkers see nothing left. */
__attribute__((destructor)) static void bio_teardown(void)
{
    if (bio_method)
        BIO_meth_free(bio_method);
    bio_method = NULL;
}

SSL *fq__tls_new(SSL_CTX *ctx, int fd)
{
    pthread_once(&bio_once, bio_setup);
    if (!bio_method)
        return NULL;
    SSL *ssl = SSL_new(ctx);
    BIO *b = ssl ? BIO_new(bio_method) : NULL;
    if (!b) {
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_data(b, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, b, b);
    return ssl;
}

void fq__tls_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, n);
    else
        snprintf(buf, n, "%s", errno ? strerror(errno) : "connection closed");
    ERR_clear_error();
}

/* ---- Contexts ----------------------------------------------------------- */

static SSL_CTX *new_ctx(const SSL_METHOD *m)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

SSL_CTX *fq__tls_server_ctx(const char *cert, const char *key, char *err,
                            size_t errn)
{
    char why[256];
    SSL_CTX *ctx = new_ctx(TLS_server_method());
    if (!ctx) {
        snprintf(err, errn, "cannot create a TLS context");
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        fq__tls_reason(why, sizeof(why));
        snprintf(err, errn, "cannot load the TLS certificate %s: %s", cert,
                 why);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key ? key : cert,
                                           SSL_FILETYPE_PEM) != 1) {
        fq__tls_reason(why, sizeof(why));
        snprintf(err, errn, "cannot load the TLS key %s: %s", key ? key : cert,
                 why);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errn, "the TLS key %s does not match the certificate %s",
                 key ? key : cert, cert);
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *fq__tls_client_ctx(const char *ca_file, int insecure, char *err,
                            size_t errn)
{
    char why[256];
    SSL_CTX *ctx = new_ctx(TLS_client_method());
    if (!ctx) {
        snprintf(err, errn, "cannot create a TLS context");
        return NULL;
    }
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        fq__tls_reason(why, sizeof(why));
        snprintf(err, errn, "cannot load the TLS CA file %s: %s",
                 ca_file ? ca_file : "(system default)", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- The client's handshake --------------------------------------------- */

int fq__tls_connect(SSL_CTX *ctx, int fd, const char *name, int64_t deadline_ns,
                    SSL **out, char *err, size_t errn)
{
    char why[256];
    unsigned char ip[16];
    int is_ip =
        inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

    *out = NULL;
    ERR_clear_error();
    SSL *ssl = fq__tls_new(ctx, fd);
    if (!ssl) {
        snprintf(err, errn, "out of memory");
        return FQ_ENOMEM;
    }
    if (SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE) {
        int ok = is_ip
                     ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                     : SSL_set1_host(ssl, name);
        if (ok != 1) {
            SSL_free(ssl);
            snprintf(err, errn, "cannot check the TLS server name %s", name);
            return FQ_EINVAL;
        }
    }
    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, name);
    SSL_set_connect_state(ssl);
    for (;;) {
        errno = 0;
        int r = SSL_do_handshake(ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(ssl, r);
        short ev = e == SSL_ERROR_WANT_READ    ? POLLIN
                   : e == SSL_ERROR_WANT_WRITE ? POLLOUT
                                               : 0;
        int rc = 0;
        if (ev) {
            int64_t left = deadline_ns - fq__now_ns();
            struct pollfd p = {fd, ev, 0};
            int n =
                left > 0 ? poll(&p, 1, (int)((left + 999999) / 1000000)) : 0;
            if (n > 0 || (n < 0 && errno == EINTR))
                continue;
            if (n == 0) {
                snprintf(err, errn,
                         "TLS handshake timed out (is the server using TLS?)");
                rc = FQ_ETIMEDOUT;
            } else {
                snprintf(err, errn, "TLS handshake: %s", strerror(errno));
                rc = FQ_ESYS;
            }
        } else if (SSL_get_verify_result(ssl) != X509_V_OK) {
            long v = SSL_get_verify_result(ssl);
            ERR_clear_error();
            snprintf(err, errn,
                     "TLS: the server's certificate is not trusted: %s "
                     "(give the CA that signed it in tls_ca_file)",
                     X509_verify_cert_error_string(v));
            rc = FQ_EAUTH;
        } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            snprintf(err, errn,
                     "connection closed during the TLS handshake (is the "
                     "server using TLS?)");
            rc = FQ_ECLOSED;
        } else {
            fq__tls_reason(why, sizeof(why));
            snprintf(err, errn,
                     "TLS handshake failed: %s (is the server using TLS?)",
                     why);
            rc = FQ_EPROTO;
        }
        SSL_free(ssl);
        return rc;
    }
    *out = ssl;
    return 0;
}
