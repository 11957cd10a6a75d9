/* px_tls: the proxy's mTLS contexts and peer identity checks
 * (docs/proxy-mtls.md).
 *
 * A struct px_tls holds the current SSL_CTX built from a leaf (with its
 * chain), its key and a trust bundle (one or more roots). Every SSL made
 * by px_tls_ssl_new() requires the peer's certificate to chain to the
 * bundle and to carry exactly one spiffe:// URI SAN in the trust domain;
 * a client (outbound) SSL also requires that URI to be the expected one.
 * The checks run inside the handshake, so a refused peer never gets a
 * usable session.
 *
 * px_tls_reload() builds a new SSL_CTX from the same files and swaps it
 * in for new handshakes only: each SSL holds a reference to the context it
 * was made from, so open connections go on. A failed reload keeps the old
 * context. Outbound contexts keep the last TLS 1.3 session ticket and
 * offer it on the next handshake (resumption).
 *
 * Full handshakes are cheaper than OpenSSL's defaults make them: each
 * context remembers the last peer chains it verified (by the SHA-256 of
 * their bytes; a chain seen again is checked for validity times and
 * identity only), and a server context resumes TLS 1.3 sessions by
 * stateful tickets from a small cache (128 sessions) instead of stateless
 * ones, which cost a decode of the peer's certificate per handshake. Both
 * are per context: a reload starts them afresh.
 *
 * Threads: one struct px_tls serves every worker thread (px_worker.h).
 * px_tls_ssl_new(), px_tls_peer_id(), px_tls_failure(), px_tls_self_id()
 * and px_tls_trust_domain() may run on any thread at once, and so may
 * OpenSSL's session-ticket callback, while px_tls_reload() swaps the
 * context on another: a mutex guards the context pointer, the kept
 * session and the identity strings, held only to copy them or take a
 * reference (SSL_CTX_up_ref), never during a handshake. px_tls_reload()
 * and px_tls_changed() are for one thread (the main one), px_tls_new()
 * and px_tls_free() for when no other thread uses the object. */
#ifndef WEFT_PX_TLS_H
#define WEFT_PX_TLS_H

#include <openssl/ssl.h>

enum px_tls_role { PX_TLS_SERVER, PX_TLS_CLIENT };

struct px_tls_files {
	const char *cert;          /* PEM: the leaf, then its chain */
	const char *key;           /* PEM: its private key */
	const char *bundle;        /* PEM: the trusted roots */
	const char *trust_domain;  /* NULL: the trust domain of our own leaf */
};

struct px_tls;

/* Loads the files and builds the first context. */
int px_tls_new(struct px_tls **out, enum px_tls_role role, const struct px_tls_files *f,
	       char **err);
void px_tls_free(struct px_tls *t);

/* Rebuilds from the files; on error the previous context stays. */
int px_tls_reload(struct px_tls *t, char **err);

/* Whether the files changed (mtime, size, inode) since the last build,
 * successful or not: --reload-interval reloads only then. */
int px_tls_changed(const struct px_tls *t);

/* When our leaf in the current context expires (its notAfter, seconds
 * since the epoch): /stats exports it as
 * weft_proxy_certificate_expiry_seconds. Any thread. */
long long px_tls_not_after(const struct px_tls *t);

/* Our own SPIFFE ID (the leaf's URI SAN) in the current context, and the
 * trust domain: a copy owned by the calling thread, valid until its next
 * call of the same function. */
const char *px_tls_self_id(const struct px_tls *t);
const char *px_tls_trust_domain(const struct px_tls *t);

/* A new SSL from the current context. Client: expect_id is the SPIFFE ID
 * the server must present (required), sni the server name sent (may be
 * NULL). NULL when out of memory. */
SSL *px_tls_ssl_new(struct px_tls *t, const char *expect_id, const char *sni);

/* Peer chains accepted from the current context's cache of verified
 * chains (tests, stats). */
unsigned long px_tls_verify_cache_hits(struct px_tls *t);

/* After a successful handshake: the peer's SPIFFE ID (borrowed from ssl). */
const char *px_tls_peer_id(SSL *ssl);

/* After a failed one: a short reason ("foreign-ca", "expired",
 * "not-yet-valid", "no-client-cert", "wrong-spiffe-id", "bad-spiffe-id",
 * "not-tls", "handshake"), a detail, and the SPIFFE ID the peer presented
 * ("" if none). errcode is the OpenSSL error the event layer reported
 * (0 if none). */
void px_tls_failure(SSL *ssl, unsigned long errcode, const char **reason, char *detail,
		    size_t detail_size, const char **presented);

/* The SPIFFE ID of a certificate: exactly one spiffe:// URI SAN, copied
 * into out. -1 with *why when there is none, several, or it is too long. */
int px_tls_cert_spiffe_id(X509 *x, char *out, size_t size, const char **why);

#endif
