/* What an authenticated client asks for (auth.h): the C engine request, and
 * telling it apart from a Python one. Reads bytes from the network, so it is
 * fuzzed (fuzz/fuzz_auth_handshake.c). */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "core/internal.h"
#include "transport/transport.h"

/* The Python server's largest request; a smaller big-endian length followed
 * by a pickle's first byte is a Python request. */
#define PY_MAX_REQUEST (256u << 20)

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

void fq__request_encode(unsigned char out[FQ__REQ_LEN])
{
    memcpy(out, FQ__REQ_MAGIC, 4);
    put32(out + 4, FQ__REQ_VERSION);
    put32(out + 8, FQ__REQ_WORKER);
    put32(out + 12, 0);
}

int fq__request_classify(const unsigned char *buf, size_t len)
{
    if (len == 0)
        return FQ__REQ_MORE;
    if (len < 4) /* a prefix of the magic, or of a length <= 256 MiB */
        return memcmp(buf, FQ__REQ_MAGIC, len) == 0 ||
                       buf[0] <= (PY_MAX_REQUEST >> 24)
                   ? FQ__REQ_MORE
                   : FQ__REQ_GARBAGE;
    if (memcmp(buf, FQ__REQ_MAGIC, 4) == 0) {
        if (len < FQ__REQ_LEN)
            return FQ__REQ_MORE;
        if (get32(buf + 4) != FQ__REQ_VERSION ||
            get32(buf + 8) != FQ__REQ_WORKER)
            return FQ__REQ_BADVER;
        return get32(buf + 12) == 0 ? FQ__REQ_ENGINE : FQ__REQ_BADVER;
    }
    uint32_t n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                 (uint32_t)buf[2] << 8 | buf[3];
    if (n == 0 || n > PY_MAX_REQUEST)
        return FQ__REQ_GARBAGE;
    if (len < 5)
        return FQ__REQ_MORE;
    return buf[4] == 0x80 ? FQ__REQ_PYTHON : FQ__REQ_GARBAGE;
}

size_t fq__reply_encode(unsigned char *out, size_t cap, const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    if (cap < FQ__REPLY_HDR)
        return 0; /* (cap - FQ__REPLY_HDR below would wrap) */
    if (n > FQ__REQ_MSG_MAX)
        n = FQ__REQ_MSG_MAX;
    if (n > cap - FQ__REPLY_HDR)
        n = cap - FQ__REPLY_HDR;
    memcpy(out, msg ? "FQER" : "FQOK", 4);
    put32(out + 4, (uint32_t)n);
    if (n)
        memcpy(out + FQ__REPLY_HDR, msg, n);
    return FQ__REPLY_HDR + n;
}

int fq__reply_decode(const unsigned char hdr[FQ__REPLY_HDR])
{
    uint32_t n = get32(hdr + 4);
    if (memcmp(hdr, "FQOK", 4) == 0)
        return n == 0 ? 0 : FQ_EPROTO;
    if (memcmp(hdr, "FQER", 4) == 0)
        return n > 0 && n <= FQ__REQ_MSG_MAX ? (int)n : FQ_EPROTO;
    return FQ_EPROTO;
}

int fq__request_worker(int fd, int64_t deadline_ns, char *err, size_t errn)
{
    unsigned char req[FQ__REQ_LEN], hdr[FQ__REPLY_HDR];
    char msg[FQ__REQ_MSG_MAX + 1];

    fq__request_encode(req);
    int rc = fq__fd_write_all(fd, req, sizeof(req), deadline_ns);
    if (rc == 0)
        rc = fq__fd_read_exact(fd, hdr, sizeof(hdr), deadline_ns);
    if (rc == FQ_ECLOSED) {
        snprintf(err, errn,
                 "the server closed the connection at our request: it does "
                 "not serve C engine workers (a Python worker server, "
                 "python3 -m forkqueue.server? run fq-server)");
        return FQ_EPROTO;
    }
    if (rc == FQ_ETIMEDOUT) {
        snprintf(err, errn, "the server did not answer our request in time");
        return rc;
    }
    if (rc) {
        snprintf(err, errn, "system error while sending our request");
        return rc;
    }
    int n = fq__reply_decode(hdr);
    if (n < 0) {
        snprintf(err, errn,
                 "the server answered our request with bytes that are not a "
                 "forkqueue C worker server's");
        return FQ_EPROTO;
    }
    if (n == 0)
        return 0;
    rc = fq__fd_read_exact(fd, msg, (size_t)n, deadline_ns);
    msg[rc ? 0 : n] = '\0';
    for (int i = 0; msg[i]; i++)
        if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e)
            msg[i] = '?';
    snprintf(err, errn, "the server refused the request: %s", msg);
    return FQ_EPROTO;
}
