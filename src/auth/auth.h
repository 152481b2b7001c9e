/*
 * Authentication of connections to worker servers, byte for byte the
 * exchange of python/forkqueue/_auth.py, so that C and Python clients and
 * servers interoperate:
 *
 *   server -> client   "FQW1" + S                              (36 bytes)
 *   client -> server   C + HMAC(key, "fq-client" + S + C)      (64 bytes)
 *   server -> client   "OK" + HMAC(key, "fq-server" + C + S)   (34 bytes)
 *                      or "NO", and the connection is closed
 *
 * S and C are 32 fresh random bytes (RAND_bytes), the MAC is HMAC-SHA256
 * (libcrypto), MACs are compared in constant time (CRYPTO_memcmp). Both
 * challenges are fresh, so a recorded exchange cannot be replayed; the key
 * never travels. The messages have fixed sizes: nothing is parsed.
 *
 * After the exchange the client says what it wants (request.c): a C engine
 * client sends an engine request; a Python client sends a length-prefixed
 * pickle. Each server recognises the other's request and refuses it with a
 * clear message instead of misreading it.
 */
#ifndef FQ_AUTH_H
#define FQ_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define FQ__AUTH_MAGIC "FQW1"
#define FQ__AUTH_CHAL 32u
#define FQ__AUTH_MAC 32u
#define FQ__AUTH_HELLO_LEN (4u + FQ__AUTH_CHAL)
#define FQ__AUTH_ANSWER_LEN (FQ__AUTH_CHAL + FQ__AUTH_MAC)
#define FQ__AUTH_VERDICT_LEN (2u + FQ__AUTH_MAC)
#define FQ__AUTH_ENV "FORKQUEUE_AUTHKEY"
/* Longest key accepted (as the Python side, which reads 4 KiB of file). */
#define FQ__AUTH_KEY_MAX 4096u

/* A key: the bytes both sides share. */
typedef struct fq__key {
    unsigned char *data;
    size_t len;
} fq__key;

/* ---- keyfile.c ---------------------------------------------------------- */

/* The per-user key file: $XDG_CONFIG_HOME/forkqueue/authkey, else
 * ~/.config/forkqueue/authkey. Returns 0 or FQ_EINVAL (no home). */
int fq__auth_key_path(char *buf, size_t n);

/*
 * The key: data[0..len) when data is not NULL (len 0 is refused), else
 * $FORKQUEUE_AUTHKEY when set and not empty, else the key file, created
 * (32 random bytes in hex, mode 0600, its directory 0700) when missing. A
 * key file that is not a regular file, belongs to another user, or that its
 * group or others may read is refused. Returns 0 with *key filled (free it
 * with fq__key_free()), or FQ_EAUTH / FQ_ENOMEM with the reason in err.
 */
int fq__auth_key_get(const void *data, size_t len, fq__key *key, char *err,
                     size_t errn);
/* Wipes and frees the key's bytes. */
void fq__key_free(fq__key *key);

/* ---- handshake.c: the exchange, without I/O ------------------------------ */

/* The server's first message (hello) and its challenge. Returns 0 or
 * FQ_ESYS (no random bytes). */
int fq__auth_server_hello(unsigned char hello[FQ__AUTH_HELLO_LEN],
                          unsigned char challenge[FQ__AUTH_CHAL]);

/* Checks a client's answer of len bytes. Writes the verdict to send into
 * verdict and its length into *vlen; returns 1 when the client proved it
 * has the key, 0 when not (verdict "NO"). */
int fq__auth_server_check(const fq__key *key,
                          const unsigned char challenge[FQ__AUTH_CHAL],
                          const unsigned char *answer, size_t len,
                          unsigned char verdict[FQ__AUTH_VERDICT_LEN],
                          size_t *vlen);

/* The client's answer to a server's hello of len bytes, and the client's
 * own challenge c; s receives the server's. Returns 0, FQ_EPROTO (not a
 * forkqueue worker server), FQ_ESYS (no random bytes). */
int fq__auth_client_answer(const fq__key *key, const unsigned char *hello,
                           size_t len,
                           unsigned char answer[FQ__AUTH_ANSWER_LEN],
                           unsigned char c[FQ__AUTH_CHAL],
                           unsigned char s[FQ__AUTH_CHAL]);

/* Checks the server's verdict of len bytes: 0 when the server accepted us
 * and proved it has the key, else FQ_EAUTH with the reason in err. */
int fq__auth_client_check(const fq__key *key, const unsigned char *verdict,
                          size_t len, const unsigned char c[FQ__AUTH_CHAL],
                          const unsigned char s[FQ__AUTH_CHAL], char *err,
                          size_t errn);

/* ---- handshake.c: the client's side over a descriptor -------------------- */

/*
 * Runs the client's side of the exchange on a connected non-blocking
 * socket, all by deadline_ns. Returns 0 when both sides are authenticated,
 * or FQ_EAUTH (wrong key), FQ_EPROTO (not a worker server), FQ_ETIMEDOUT,
 * FQ_ECLOSED, FQ_ESYS, with the reason in err.
 */
int fq__auth_client(int fd, const fq__key *key, int64_t deadline_ns, char *err,
                    size_t errn);

/* ---- request.c: what an authenticated client asks for -------------------- */

/*
 * A C engine request, 16 bytes: "FQC1", then little-endian u32 protocol
 * version, u32 kind (1: a worker running the engine's worker loop), u32
 * flags (0). A Python request is a big-endian u32 length then a pickle
 * (first byte 0x80): "FQC1" read as such a length is 1.2 GB, which the
 * Python server refuses (its limit is 256 MiB) without reading further.
 *
 * The C server answers "FQOK" + u32 0, or "FQER" + u32 n + n bytes of
 * message (at most FQ__REQ_MSG_MAX), and closes.
 */
#define FQ__REQ_MAGIC "FQC1"
#define FQ__REQ_LEN 16u
#define FQ__REQ_VERSION 1u
#define FQ__REQ_WORKER 1u
#define FQ__REQ_MSG_MAX 1024u
#define FQ__REPLY_HDR 8u

enum fq__req_class {
    FQ__REQ_MORE = 0,    /* too few bytes to tell */
    FQ__REQ_ENGINE = 1,  /* a valid C engine request */
    FQ__REQ_PYTHON = 2,  /* a Python forkqueue.workers request */
    FQ__REQ_BADVER = 3,  /* an engine request of another version or kind */
    FQ__REQ_GARBAGE = 4, /* neither */
};

/* Writes a worker request into out. */
void fq__request_encode(unsigned char out[FQ__REQ_LEN]);

/* Classifies the first len bytes a client sent after the exchange. */
int fq__request_classify(const unsigned char *buf, size_t len);

/* Writes the C server's answer into out (FQ__REPLY_HDR + strlen(msg), msg
 * cut at FQ__REQ_MSG_MAX and at cap): an acceptance when msg is NULL.
 * Returns its length, 0 (nothing written) if cap cannot hold a header. */
size_t fq__reply_encode(unsigned char *out, size_t cap, const char *msg);

/* Decodes the answer's header: returns 0 (accepted), the length n > 0 of
 * the refusal's message that follows, or FQ_EPROTO when these are not the
 * bytes of a C worker server. */
int fq__reply_decode(const unsigned char hdr[FQ__REPLY_HDR]);

/*
 * A C engine client's whole request on an authenticated connection: sends
 * it and reads the answer by deadline_ns. Returns 0 (accepted), FQ_EPROTO
 * (refused by the server, or a server of another kind: err says which),
 * FQ_ETIMEDOUT, FQ_ECLOSED, FQ_ESYS.
 */
int fq__request_worker(int fd, int64_t deadline_ns, char *err, size_t errn);

#endif
