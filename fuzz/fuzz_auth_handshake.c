/*
 * Fuzzes the code that reads a worker-server connection's bytes before and
 * right after authentication (src/auth/): the client's reading of a
 * server's hello, the server's check of a client's answer, the client's
 * check of a verdict, the classification of the request that follows, and
 * the client's reading of the server's answer to it.
 *
 * Besides "no crash, no read past the input", it checks their contracts:
 * an answer the server accepts yields a verdict the client accepts (so
 * acceptance is never a parsing accident), a refusal is always the bare
 * "NO", a hello is accepted exactly when it is "FQW1" and 32 bytes, a
 * request's class never changes once decided as more bytes arrive, and the
 * reply decoder accepts only the two shapes the server writes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "forkqueue.h"

static unsigned char key_bytes[] = "fuzz-key";
static const fq__key key = {key_bytes, sizeof(key_bytes) - 1};

static void check_hello(const uint8_t *data, size_t size)
{
    unsigned char answer[FQ__AUTH_ANSWER_LEN], c[32], s[32], verdict[34];
    size_t vlen;
    char err[256];
    int rc = fq__auth_client_answer(&key, data, size, answer, c, s);
    int valid = size == FQ__AUTH_HELLO_LEN && memcmp(data, "FQW1", 4) == 0;
    if ((rc == 0) != valid || (rc != 0 && rc != FQ_EPROTO))
        abort();
    if (rc)
        return;
    /* The honest server of that hello accepts the answer, and proves it. */
    if (fq__auth_server_check(&key, s, answer, sizeof(answer), verdict,
                              &vlen) != 1 ||
        vlen != FQ__AUTH_VERDICT_LEN ||
        fq__auth_client_check(&key, verdict, vlen, c, s, err, sizeof(err)) != 0)
        abort();
}

static void check_answer(const uint8_t *data, size_t size)
{
    unsigned char challenge[32], verdict[34];
    size_t vlen = 99;
    char err[256];
    memset(challenge, 0x5a, sizeof(challenge));
    int ok = fq__auth_server_check(&key, challenge, data, size, verdict, &vlen);
    if (ok == 0) {
        if (vlen != 2 || memcmp(verdict, "NO", 2) != 0)
            abort();
        return;
    }
    if (ok != 1 || size != FQ__AUTH_ANSWER_LEN || vlen != 34)
        abort();
    if (fq__auth_client_check(&key, verdict, vlen, data, challenge, err,
                              sizeof(err)) != 0)
        abort();
}

static void check_verdict(const uint8_t *data, size_t size)
{
    unsigned char c[32], s[32];
    char err[256];
    memset(c, 1, sizeof(c));
    memset(s, 2, sizeof(s));
    int rc = fq__auth_client_check(&key, data, size, c, s, err, sizeof(err));
    if (rc != 0 && rc != FQ_EAUTH)
        abort();
    if (rc == 0 && (size != FQ__AUTH_VERDICT_LEN || memcmp(data, "OK", 2)))
        abort();
}

static void check_request(const uint8_t *data, size_t size)
{
    int decided = FQ__REQ_MORE;
    for (size_t n = 0; n <= size && n <= 64; n++) {
        int k = fq__request_classify(data, n);
        if (k < FQ__REQ_MORE || k > FQ__REQ_GARBAGE)
            abort();
        if (decided != FQ__REQ_MORE && k != decided)
            abort(); /* a decision never changes */
        if (k == FQ__REQ_ENGINE &&
            (n < FQ__REQ_LEN || memcmp(data, FQ__REQ_MAGIC, 4) != 0))
            abort();
        if (k == FQ__REQ_PYTHON && (n < 5 || data[4] != 0x80))
            abort();
        decided = k;
    }
    unsigned char req[FQ__REQ_LEN];
    fq__request_encode(req);
    if (fq__request_classify(req, sizeof(req)) != FQ__REQ_ENGINE)
        abort();
}

static void check_reply(const uint8_t *data, size_t size)
{
    if (size < FQ__REPLY_HDR)
        return;
    int n = fq__reply_decode(data);
    if (n == 0 && memcmp(data, "FQOK\0\0\0\0", 8) != 0)
        abort();
    if (n > 0 && (memcmp(data, "FQER", 4) != 0 || n > (int)FQ__REQ_MSG_MAX))
        abort();
    if (n < 0 && n != FQ_EPROTO)
        abort();
    /* What the server would write for that message reads back the same. */
    if (n > 0 && size >= FQ__REPLY_HDR + (size_t)n &&
        !memchr(data + FQ__REPLY_HDR, 0, (size_t)n)) {
        unsigned char out[FQ__REPLY_HDR + FQ__REQ_MSG_MAX];
        char msg[FQ__REQ_MSG_MAX + 1];
        memcpy(msg, data + FQ__REPLY_HDR, (size_t)n);
        msg[n] = '\0';
        size_t len = fq__reply_encode(out, sizeof(out), msg);
        if (len != FQ__REPLY_HDR + (size_t)n || memcmp(out, data, len) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_hello(data, size);
    check_answer(data, size);
    check_verdict(data, size);
    check_request(data, size);
    check_reply(data, size);
    return 0;
}
