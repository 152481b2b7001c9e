/*
 * TLS for worker servers and remote workers (OpenSSL libssl): contexts,
 * the client's handshake, and a relay that carries the plain bytes of a
 * connection between a TLS session and a plain stream descriptor, so that
 * the engine's loop and worker loop, which read and write a plain
 * descriptor, know nothing of TLS (tls.c, tls_relay.c).
 *
 * Sessions read and write their TCP socket through a BIO of our own that
 * sends with MSG_NOSIGNAL (a dead peer is an error, never SIGPIPE) and
 * retries EINTR; descriptors stay non-blocking and are never closed by
 * OpenSSL.
 */
#ifndef FQ_TLS_H
#define FQ_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* A server context with the certificate chain (PEM) and its private key
 * (PEM; NULL: in the certificate's file). NULL with the reason in err. */
SSL_CTX *fq__tls_server_ctx(const char *cert, const char *key, char *err,
                            size_t errn);

/* A client context: TLS 1.2 or later, the server verified against ca_file
 * (PEM; NULL: the system's trust store) unless insecure. NULL with the
 * reason in err. */
SSL_CTX *fq__tls_client_ctx(const char *ca_file, int insecure, char *err,
                            size_t errn);

/* A session on the non-blocking socket fd through our BIO (fd stays the
 * caller's). NULL when out of memory. */
SSL *fq__tls_new(SSL_CTX *ctx, int fd);

/*
 * The client's handshake on the non-blocking socket fd by deadline_ns,
 * checking that the certificate names `name` (a host name or an IP
 * address) unless the context is insecure. Returns 0 with *out set, or
 * FQ_EAUTH (certificate not trusted, or for another name), FQ_EPROTO (not
 * a TLS server, or no common protocol), FQ_ETIMEDOUT, FQ_ECLOSED,
 * FQ_ENOMEM, with the reason in err.
 */
int fq__tls_connect(SSL_CTX *ctx, int fd, const char *name, int64_t deadline_ns,
                    SSL **out, char *err, size_t errn);

/* The reason of the last failure of OpenSSL in this thread (and clears the
 * error queue). */
void fq__tls_reason(char *buf, size_t n);

/*
 * Relays between the session ssl on the non-blocking TCP socket tcp and
 * the plain stream socket plain (made non-blocking here) until both
 * directions ended: what plain sends goes out encrypted, what arrives is
 * written to plain; end of stream on one side ends that direction on the
 * other (close_notify then the TCP write side; SHUT_WR of plain); a side
 * that fails ends it all. With FQ__RELAY_DROP_ON_CLOSE, plain closing
 * outright ends it at once, even with bytes still to send (a client whose
 * worker was freed); without, what plain wrote before it closed is sent
 * first (a server's worker that ended). If xfd >= 0, xcb(xarg) is called
 * whenever xfd is readable. Closes nothing, frees nothing.
 */
#define FQ__RELAY_DROP_ON_CLOSE 0x1u
void fq__tls_relay_run(SSL *ssl, int tcp, int plain, unsigned flags, int xfd,
                       void (*xcb)(void *), void *xarg);

/*
 * A relay in a thread of its own (every signal blocked in it), taking over
 * ssl and tcp, which it frees and closes when it ends. *plain receives the
 * caller's end of the plain socketpair (close-on-exec, non-blocking, in
 * the registry of worker descriptors so that forked workers do not keep
 * it); closing or shutting it down ends the relay. Returns 0, FQ_ENOMEM or
 * FQ_ESYS (ssl and tcp are freed and closed then too).
 */
typedef struct fq__tls_relay fq__tls_relay;
int fq__tls_relay_start(SSL *ssl, int tcp, int *plain, fq__tls_relay **r);
/* Waits for the relay to end (close the plain end first) and frees it. */
void fq__tls_relay_join(fq__tls_relay *r);

#endif
