/* The challenge-response exchange (auth.h), with libcrypto's HMAC-SHA256,
 * RAND_bytes and CRYPTO_memcmp: no cryptography of our own. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "core/internal.h"
#include "transport/transport.h"

/* HMAC-SHA256(key, label + a + b). Returns 0 or FQ_ESYS. */
static int mac(const fq__key *key, const char *label, const unsigned char *a,
               const unsigned char *b, unsigned char out[FQ__AUTH_MAC])
{
    unsigned char msg[16 + 2 * FQ__AUTH_CHAL];
    size_t ll = strlen(label);
    unsigned int outlen = 0;

    memcpy(msg, label, ll);
    memcpy(msg + ll, a, FQ__AUTH_CHAL);
    memcpy(msg + ll + FQ__AUTH_CHAL, b, FQ__AUTH_CHAL);
    if (!HMAC(EVP_sha256(), key->data, (int)key->len, msg,
              ll + 2 * FQ__AUTH_CHAL, out, &outlen) ||
        outlen != FQ__AUTH_MAC)
        return FQ_ESYS;
    return 0;
}

int fq__auth_server_hello(unsigned char hello[FQ__AUTH_HELLO_LEN],
                          unsigned char challenge[FQ__AUTH_CHAL])
{
    if (RAND_bytes(challenge, FQ__AUTH_CHAL) != 1)
        return FQ_ESYS;
    memcpy(hello, FQ__AUTH_MAGIC, 4);
    memcpy(hello + 4, challenge, FQ__AUTH_CHAL);
    return 0;
}

int fq__auth_server_check(const fq__key *key,
                          const unsigned char challenge[FQ__AUTH_CHAL],
                          const unsigned char *answer, size_t len,
                          unsigned char verdict[FQ__AUTH_VERDICT_LEN],
                          size_t *vlen)
{
    unsigned char want[FQ__AUTH_MAC];

    memcpy(verdict, "NO", 2);
    *vlen = 2;
    if (len != FQ__AUTH_ANSWER_LEN ||
        mac(key, "fq-client", challenge, answer, want) < 0 ||
        CRYPTO_memcmp(want, answer + FQ__AUTH_CHAL, FQ__AUTH_MAC) != 0)
        return 0;
    if (mac(key, "fq-server", answer, challenge, verdict + 2) < 0)
        return 0;
    memcpy(verdict, "OK", 2);
    *vlen = FQ__AUTH_VERDICT_LEN;
    return 1;
}

int fq__auth_client_answer(const fq__key *key, const unsigned char *hello,
                           size_t len,
                           unsigned char answer[FQ__AUTH_ANSWER_LEN],
                           unsigned char c[FQ__AUTH_CHAL],
                           unsigned char s[FQ__AUTH_CHAL])
{
    if (len != FQ__AUTH_HELLO_LEN || memcmp(hello, FQ__AUTH_MAGIC, 4) != 0)
        return FQ_EPROTO;
    memcpy(s, hello + 4, FQ__AUTH_CHAL);
    if (RAND_bytes(c, FQ__AUTH_CHAL) != 1)
        return FQ_ESYS;
    memcpy(answer, c, FQ__AUTH_CHAL);
    return mac(key, "fq-client", s, c, answer + FQ__AUTH_CHAL);
}

int fq__auth_client_check(const fq__key *key, const unsigned char *verdict,
                          size_t len, const unsigned char c[FQ__AUTH_CHAL],
                          const unsigned char s[FQ__AUTH_CHAL], char *err,
                          size_t errn)
{
    unsigned char want[FQ__AUTH_MAC];

    if (len != FQ__AUTH_VERDICT_LEN || memcmp(verdict, "OK", 2) != 0) {
        snprintf(err, errn,
                 "authentication failed: the server rejected our key (is the "
                 "same key set on both sides? the key argument, $%s or the "
                 "key file)",
                 FQ__AUTH_ENV);
        return FQ_EAUTH;
    }
    if (mac(key, "fq-server", c, s, want) < 0 ||
        CRYPTO_memcmp(want, verdict + 2, FQ__AUTH_MAC) != 0) {
        snprintf(err, errn,
                 "authentication failed: the server does not know the key");
        return FQ_EAUTH;
    }
    return 0;
}

static int io_error(int rc, const char *what, char *err, size_t errn)
{
    if (rc == FQ_ETIMEDOUT)
        snprintf(err, errn, "authentication timed out while %s", what);
    else if (rc == FQ_ECLOSED)
        snprintf(err, errn, "connection closed while %s", what);
    else
        snprintf(err, errn, "system error while %s", what);
    return rc;
}

int fq__auth_client(int fd, const fq__key *key, int64_t deadline_ns, char *err,
                    size_t errn)
{
    unsigned char hello[FQ__AUTH_HELLO_LEN], answer[FQ__AUTH_ANSWER_LEN];
    unsigned char verdict[FQ__AUTH_VERDICT_LEN], c[FQ__AUTH_CHAL],
        s[FQ__AUTH_CHAL];

    int rc = fq__fd_read_exact(fd, hello, sizeof(hello), deadline_ns);
    if (rc)
        return io_error(rc, "waiting for the server's challenge", err, errn);
    rc = fq__auth_client_answer(key, hello, sizeof(hello), answer, c, s);
    if (rc == FQ_EPROTO) {
        snprintf(err, errn,
                 "authentication failed: the peer is not a forkqueue worker "
                 "server");
        return rc;
    }
    if (rc)
        return io_error(rc, "answering the challenge", err, errn);
    rc = fq__fd_write_all(fd, answer, sizeof(answer), deadline_ns);
    if (rc)
        return io_error(rc, "answering the challenge", err, errn);
    /* "NO" is all a refusing server sends before it closes. */
    rc = fq__fd_read_exact(fd, verdict, 2, deadline_ns);
    if (rc == 0 && memcmp(verdict, "OK", 2) == 0)
        rc = fq__fd_read_exact(fd, verdict + 2, FQ__AUTH_MAC, deadline_ns);
    else if (rc == 0)
        return fq__auth_client_check(key, verdict, 2, c, s, err, errn);
    if (rc == FQ_ECLOSED)
        return fq__auth_client_check(key, verdict, 0, c, s, err, errn);
    if (rc)
        return io_error(rc, "waiting for the server's verdict", err, errn);
    return fq__auth_client_check(key, verdict, sizeof(verdict), c, s, err,
                                 errn);
}
