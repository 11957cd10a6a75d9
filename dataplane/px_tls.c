/* px_tls: mTLS contexts, SPIFFE identity checks and reload (px_tls.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "px_tls.h"

#define ID_MAX 512
#define SESSION_TIMEOUT_S 300  /* tickets are re-verified after this */
#define VCACHE_SLOTS 64         /* peer chains remembered as verified, per context */
#define VCACHE_TTL_S 600        /* a remembered chain is verified afresh after this */
#define SESSION_CACHE_MAX 128   /* server: sessions kept for TLS 1.3 resumption (~10 KB each) */

struct px_tls {
	enum px_tls_role role;
	char *cert, *key, *bundle, *td_opt;
	long long stamp;            /* the files' mtimes and sizes when built (reload's thread) */
	/* lock guards what a reload swaps, read by every worker thread: held
	 * only to copy or take a reference, never during a handshake */
	pthread_mutex_t lock;
	SSL_CTX *ctx;               /* for new handshakes */
	SSL_SESSION *session;       /* client: the last ticket from ctx */
	char self_id[ID_MAX];
	char td[256];
	long long not_after;        /* our leaf's, seconds since the epoch */
};

/* What one SSL checked, hung on it with ex_data. */
struct peer {
	char id[ID_MAX];            /* accepted SPIFFE ID */
	char presented[ID_MAX];     /* what the peer showed, accepted or not */
	char expect[ID_MAX];        /* client: the ID required */
	char td[256];
	const char *reason;         /* set by the verify callback on refusal */
	char detail[200];
};

static int peer_idx = -1;
static int vcache_idx = -1;

/* The peer chains a context verified lately (X509_verify_cert: chain
 * building and one signature check per certificate), by the SHA-256 of
 * their DER: a caller that connects again presents the same bytes, and
 * only the time and its identity need checking again. Its handshake still
 * proves that it holds the leaf's key (CertificateVerify). Per context, so
 * a reload (new trust bundle) starts empty. */
struct vcache_entry {
	unsigned char key[32];
	time_t not_before, not_after;   /* the latest notBefore, earliest notAfter of the chain */
	time_t expires;                 /* remembered until then */
};

struct vcache {
	pthread_mutex_t lock;
	EVP_MD *sha256;
	unsigned next;                  /* the slot the next chain takes (round robin) */
	unsigned long hits;
	struct vcache_entry e[VCACHE_SLOTS];
};

static void vcache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct vcache *vc = ptr;

	if (vc == NULL)
		return;
	EVP_MD_free(vc->sha256);
	pthread_mutex_destroy(&vc->lock);
	free(vc);
}

static void peer_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

/* *err = "tls: <what> <file>: <detail or OpenSSL's last error>" */
static int set_err(char **err, const char *what, const char *file, const char *detail)
{
	char buf[640], ossl[256] = "";
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, ossl, sizeof(ossl));
	ERR_clear_error();
	snprintf(buf, sizeof(buf), "tls: %s %s: %s", what, file, detail ? detail : ossl);
	if (err)
		*err = strdup(buf);
	return WEFT_EINVAL;
}

int px_tls_cert_spiffe_id(X509 *x, char *out, size_t size, const char **why)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int found = 0, rc = -1;

	*why = "no spiffe:// URI SAN";
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const unsigned char *u;
		int len;

		if (g->type != GEN_URI)
			continue;
		u = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len < 9 || strncasecmp((const char *)u, "spiffe://", 9) != 0)
			continue;
		if (++found > 1) {
			*why = "several spiffe:// URI SANs";
			goto out;
		}
		if ((size_t)len >= size || memchr(u, '\0', (size_t)len) != NULL) {
			*why = "spiffe:// URI SAN too long or malformed";
			goto out;
		}
		memcpy(out, u, (size_t)len);
		out[len] = '\0';
	}
	if (found == 1) {
		*why = NULL;
		rc = 0;
	}
out:
	GENERAL_NAMES_free(names);
	return rc;
}

/* "spiffe://TD/..." names trust domain td. */
static bool in_domain(const char *id, const char *td)
{
	size_t n = strlen(td);

	return strncmp(id, "spiffe://", 9) == 0 && strncmp(id + 9, td, n) == 0 &&
	       (id[9 + n] == '/' || id[9 + n] == '\0');
}

/* Checks an end-entity certificate's identity; 0 or -1 with p->reason. */
static int check_identity(struct peer *p, X509 *x)
{
	const char *why;

	if (px_tls_cert_spiffe_id(x, p->presented, sizeof(p->presented), &why) != 0) {
		p->reason = "bad-spiffe-id";
		snprintf(p->detail, sizeof(p->detail), "%s", why);
		return -1;
	}
	if (!in_domain(p->presented, p->td)) {
		p->reason = "foreign-trust-domain";
		snprintf(p->detail, sizeof(p->detail), "trust domain is not %.150s", p->td);
		return -1;
	}
	if (p->expect[0] != '\0' && strcmp(p->presented, p->expect) != 0) {
		p->reason = "wrong-spiffe-id";
		snprintf(p->detail, sizeof(p->detail), "expected %.150s", p->expect);
		return -1;
	}
	memcpy(p->id, p->presented, sizeof(p->id));
	return 0;
}

static const char *verify_reason(int e)
{
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "not-yet-valid";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return "foreign-ca";
	default:
		return "untrusted";
	}
}

static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct peer *p = ssl ? SSL_get_ex_data(ssl, peer_idx) : NULL;
	const char *why;

	if (p == NULL)
		return 0;
	if (!ok) {
		if (p->reason == NULL) {
			int e = X509_STORE_CTX_get_error(xs);
			X509 *leaf = X509_STORE_CTX_get0_cert(xs);

			p->reason = verify_reason(e);
			snprintf(p->detail, sizeof(p->detail), "%s (depth %d)",
				 X509_verify_cert_error_string(e), X509_STORE_CTX_get_error_depth(xs));
			if (leaf != NULL)
				(void)px_tls_cert_spiffe_id(leaf, p->presented, sizeof(p->presented), &why);
		}
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xs) != 0)
		return 1;
	if (check_identity(p, X509_STORE_CTX_get_current_cert(xs)) != 0) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

/* The key of a presented chain: SHA-256 over each certificate's DER
 * (kept by OpenSSL as it was received) with its length. 0 or -1. */
static int chain_key(struct vcache *vc, X509 *leaf, STACK_OF(X509) *untrusted, unsigned char *key)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int n = untrusted ? sk_X509_num(untrusted) : 0, rc = -1;

	if (md == NULL || EVP_DigestInit_ex(md, vc->sha256, NULL) != 1)
		goto out;
	for (int i = -1; i < n; i++) {
		X509 *x = i < 0 ? leaf : sk_X509_value(untrusted, i);
		unsigned char *der = NULL, len[4];
		int dlen = i2d_X509(x, &der);

		if (dlen <= 0)
			goto out;
		len[0] = (unsigned char)(dlen >> 24);
		len[1] = (unsigned char)(dlen >> 16);
		len[2] = (unsigned char)(dlen >> 8);
		len[3] = (unsigned char)dlen;
		if (EVP_DigestUpdate(md, len, 4) != 1 || EVP_DigestUpdate(md, der, (size_t)dlen) != 1) {
			OPENSSL_free(der);
			goto out;
		}
		OPENSSL_free(der);
	}
	rc = EVP_DigestFinal_ex(md, key, NULL) == 1 ? 0 : -1;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

/* A certificate's validity as time_t; -1 if it cannot be read. */
static int cert_times(X509 *x, time_t *nb, time_t *na)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) != 1)
		return -1;
	*nb = timegm(&tm);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return -1;
	*na = timegm(&tm);
	return 0;
}

/* SSL_CTX_set_cert_verify_callback: a chain verified lately (same bytes,
 * same context) is accepted if every certificate of it is still within its
 * validity; its identity is checked for this SSL as verify_cb does. Any
 * other chain goes through X509_verify_cert (and verify_cb), and is
 * remembered if accepted. */
static int cert_verify_cb(X509_STORE_CTX *xs, void *arg)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct vcache *vc = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), vcache_idx) : NULL;
	struct peer *p = ssl ? SSL_get_ex_data(ssl, peer_idx) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	STACK_OF(X509) *chain;
	struct vcache_entry ent;
	time_t now = time(NULL);
	bool keyed = false;
	int rc;

	memset(&ent, 0, sizeof(ent));
	if (vc != NULL && p != NULL && leaf != NULL &&
	    chain_key(vc, leaf, X509_STORE_CTX_get0_untrusted(xs), ent.key) == 0) {
		bool hit = false;

		keyed = true;
		pthread_mutex_lock(&vc->lock);
		for (size_t i = 0; i < VCACHE_SLOTS; i++) {
			const struct vcache_entry *e = &vc->e[i];

			if (e->expires > now && memcmp(e->key, ent.key, sizeof(ent.key)) == 0) {
				hit = now >= e->not_before && now <= e->not_after;
				vc->hits += hit;
				break;
			}
		}
		pthread_mutex_unlock(&vc->lock);
		if (hit) {
			if (check_identity(p, leaf) != 0) {
				X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
				return 0;
			}
			return 1;
		}
	}
	rc = X509_verify_cert(xs);
	if (rc != 1 || !keyed || p->id[0] == '\0')
		return rc;
	/* accepted: remember it, with the validity of every certificate of
	 * the verified chain (the root's too) */
	chain = X509_STORE_CTX_get0_chain(xs);
	ent.not_before = 0;
	ent.not_after = (time_t)1 << 62;
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		time_t nb, na;

		if (cert_times(sk_X509_value(chain, i), &nb, &na) != 0)
			return rc;
		if (nb > ent.not_before)
			ent.not_before = nb;
		if (na < ent.not_after)
			ent.not_after = na;
	}
	if (chain == NULL)
		return rc;
	ent.expires = now + VCACHE_TTL_S;
	pthread_mutex_lock(&vc->lock);
	vc->e[vc->next] = ent;
	vc->next = (vc->next + 1) % VCACHE_SLOTS;
	pthread_mutex_unlock(&vc->lock);
	return rc;
}

/* On the thread of the connection that got the ticket. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct px_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	SSL_SESSION *old = NULL;
	int kept = 0;

	if (t == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	pthread_mutex_lock(&t->lock);
	if (t->ctx == SSL_get_SSL_CTX(ssl)) {  /* not a ticket from before a reload */
		old = t->session;
		t->session = sess;
		kept = 1;
	}
	pthread_mutex_unlock(&t->lock);
	SSL_SESSION_free(old);
	return kept; /* 1: we keep the reference */
}

static long long files_stamp(const struct px_tls *t)
{
	const char *files[] = {t->cert, t->key, t->bundle};
	unsigned long long sum = 0;   /* unsigned: wrapping is the point */
	struct stat st;

	for (size_t i = 0; i < 3; i++)
		if (stat(files[i], &st) == 0)
			sum = sum * 31 + (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
			      (unsigned long long)st.st_mtim.tv_nsec + (unsigned long long)st.st_size +
			      (unsigned long long)st.st_ino;
	return (long long)(sum >> 1);
}

/* A certificate's notAfter in seconds since the epoch (0 if unreadable). */
static long long not_after_s(X509 *x)
{
	const ASN1_TIME *na = X509_get0_notAfter(x);
	struct tm tm;

	if (na == NULL || ASN1_TIME_to_tm(na, &tm) != 1)
		return 0;
	return (long long)timegm(&tm);
}

static int build(struct px_tls *t, SSL_CTX **out, char *self_id, char *td, long long *not_after,
		 char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(t->role == PX_TLS_SERVER ? TLS_server_method() : TLS_client_method());
	STACK_OF(X509_OBJECT) *objs;
	struct vcache *vc;
	const char *why;
	X509 *leaf;
	int rc = WEFT_EINVAL;

	ERR_clear_error();
	t->stamp = files_stamp(t);
	if (ctx == NULL) {
		rc = set_err(err, "SSL_CTX_new", "", NULL);
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* an idle connection keeps no 16 KiB read/write buffers; a write
	 * OpenSSL could not finish may be retried from where the bytes are
	 * now (px_proxy writes first, libevent retries) */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* a sidecar never needs a TLS 1.2 renegotiation mid-connection */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	/* a peer that closes without close_notify ends the stream (EOF, as
	 * OpenSSL 1.1 had it), rather than an error that loses the bytes
	 * read with it */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
		rc = set_err(err, "--cert", t->cert, NULL);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
		rc = set_err(err, "--key", t->key, NULL);
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		rc = set_err(err, "--key", t->key, "does not match the certificate");
		goto out;
	}
	if (SSL_CTX_load_verify_file(ctx, t->bundle) != 1) {
		rc = set_err(err, "--trust-bundle", t->bundle, NULL);
		goto out;
	}
	objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	if (objs == NULL || sk_X509_OBJECT_num(objs) == 0) {
		rc = set_err(err, "--trust-bundle", t->bundle, "no certificate");
		goto out;
	}
	leaf = SSL_CTX_get0_certificate(ctx);
	if (leaf == NULL || px_tls_cert_spiffe_id(leaf, self_id, ID_MAX, &why) != 0) {
		rc = set_err(err, "--cert", t->cert, leaf ? why : "no certificate");
		goto out;
	}
	*not_after = not_after_s(leaf);
	if (t->td_opt != NULL) {
		snprintf(td, 256, "%s", t->td_opt);
	} else {
		const char *s = self_id + 9, *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);

		if (n == 0 || n >= 256) {
			rc = set_err(err, "--cert", t->cert, "no trust domain in its SPIFFE ID");
			goto out;
		}
		memcpy(td, s, n);
		td[n] = '\0';
	}
	if (!in_domain(self_id, td)) {
		rc = set_err(err, "--cert", t->cert, "its SPIFFE ID is outside the trust domain");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			   (t->role == PX_TLS_SERVER ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), verify_cb);
	vc = calloc(1, sizeof(*vc));
	if (vc == NULL || (vc->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		if (vc != NULL)
			free(vc);
		rc = set_err(err, "--trust-bundle", t->bundle, "out of memory (verified-chain cache)");
		goto out;
	}
	pthread_mutex_init(&vc->lock, NULL);
	if (SSL_CTX_set_ex_data(ctx, vcache_idx, vc) != 1) {
		vcache_free(NULL, vc, NULL, 0, 0, NULL);
		rc = set_err(err, "--trust-bundle", t->bundle, "out of memory (verified-chain cache)");
		goto out;
	}
	SSL_CTX_set_cert_verify_callback(ctx, cert_verify_cb, NULL);
	SSL_CTX_set_app_data(ctx, t);
	SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT_S);
	if (t->role == PX_TLS_SERVER) {
		SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"weft-proxy", 10);
		/* resumption by stateful tickets (TLS 1.3: the ticket names a
		 * session kept here, used once): a stateless ticket costs OpenSSL
		 * an encoding of the session, a decoding of it (the peer's
		 * certificate parsed again, its key through the provider
		 * decoders) and a second encoding, on every full handshake. The
		 * cache is small (our clients keep only their last ticket), so
		 * the sweep every 255 handshakes stays short; one ticket per
		 * handshake. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_MAX);
		SSL_CTX_set_num_tickets(ctx, 1);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	}
	*out = ctx;
	ctx = NULL;
	rc = WEFT_OK;
out:
	SSL_CTX_free(ctx);
	return rc;
}

int px_tls_new(struct px_tls **out, enum px_tls_role role, const struct px_tls_files *f, char **err)
{
	struct px_tls *t = NULL;
	int rc = WEFT_ENOMEM;

	*out = NULL;
	if (peer_idx < 0)
		peer_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, peer_free);
	if (vcache_idx < 0)
		vcache_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, vcache_free);
	if (f->cert == NULL || f->key == NULL || f->bundle == NULL) {
		if (err)
			*err = strdup("tls: --cert, --key and --trust-bundle are all required");
		return WEFT_EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (t != NULL)
		pthread_mutex_init(&t->lock, NULL);
	if (t == NULL || peer_idx < 0 || vcache_idx < 0)
		goto out;
	t->role = role;
	t->cert = strdup(f->cert);
	t->key = strdup(f->key);
	t->bundle = strdup(f->bundle);
	t->td_opt = f->trust_domain ? strdup(f->trust_domain) : NULL;
	if (t->cert == NULL || t->key == NULL || t->bundle == NULL ||
	    (f->trust_domain != NULL && t->td_opt == NULL))
		goto out;
	rc = build(t, &t->ctx, t->self_id, t->td, &t->not_after, err);
	if (rc != WEFT_OK)
		goto out;
	*out = t;
	t = NULL;
out:
	px_tls_free(t);
	return rc;
}

void px_tls_free(struct px_tls *t)
{
	if (t == NULL)
		return;
	SSL_SESSION_free(t->session);
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->lock);
	free(t->cert);
	free(t->key);
	free(t->bundle);
	free(t->td_opt);
	free(t);
}

int px_tls_reload(struct px_tls *t, char **err)
{
	char self_id[ID_MAX], td[256];
	long long not_after = 0;
	SSL_CTX *ctx = NULL;
	int rc = build(t, &ctx, self_id, td, &not_after, err);

	SSL_SESSION *old_session;
	SSL_CTX *old;

	if (rc != WEFT_OK)
		return rc;
	pthread_mutex_lock(&t->lock);
	old = t->ctx;
	t->ctx = ctx;
	old_session = t->session;
	t->session = NULL;
	memcpy(t->self_id, self_id, sizeof(self_id));
	memcpy(t->td, td, sizeof(td));
	t->not_after = not_after;
	pthread_mutex_unlock(&t->lock);
	/* open connections (and an SSL being made now) hold their own
	 * reference to the old context */
	SSL_CTX_free(old);
	SSL_SESSION_free(old_session);
	return WEFT_OK;
}

int px_tls_changed(const struct px_tls *t)
{
	return files_stamp(t) != t->stamp;
}

long long px_tls_not_after(const struct px_tls *t)
{
	struct px_tls *m = (struct px_tls *)t;   /* the lock only */
	long long v;

	pthread_mutex_lock(&m->lock);
	v = t->not_after;
	pthread_mutex_unlock(&m->lock);
	return v;
}

/* Copies of the identity strings, per thread: a reload on another thread
 * may rewrite the originals at any time. */
static _Thread_local char tl_self_id[ID_MAX], tl_td[256];

const char *px_tls_self_id(const struct px_tls *t)
{
	struct px_tls *m = (struct px_tls *)t;   /* the lock only */

	pthread_mutex_lock(&m->lock);
	memcpy(tl_self_id, t->self_id, sizeof(tl_self_id));
	pthread_mutex_unlock(&m->lock);
	return tl_self_id;
}

const char *px_tls_trust_domain(const struct px_tls *t)
{
	struct px_tls *m = (struct px_tls *)t;

	pthread_mutex_lock(&m->lock);
	memcpy(tl_td, t->td, sizeof(tl_td));
	pthread_mutex_unlock(&m->lock);
	return tl_td;
}

SSL *px_tls_ssl_new(struct px_tls *t, const char *expect_id, const char *sni)
{
	SSL_SESSION *sess;
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	struct peer *p = calloc(1, sizeof(*p));

	/* the current context and ticket, referenced: a reload may swap them
	 * as soon as the lock is released */
	pthread_mutex_lock(&t->lock);
	ctx = t->ctx;
	SSL_CTX_up_ref(ctx);
	sess = t->session;
	if (sess != NULL)
		SSL_SESSION_up_ref(sess);
	if (p != NULL)
		snprintf(p->td, sizeof(p->td), "%s", t->td);
	pthread_mutex_unlock(&t->lock);
	ssl = SSL_new(ctx);
	if (ssl == NULL || p == NULL || SSL_set_ex_data(ssl, peer_idx, p) != 1)
		goto fail;
	if (t->role == PX_TLS_CLIENT) {
		if (expect_id == NULL || strlen(expect_id) >= sizeof(p->expect))
			goto fail_set;
		strcpy(p->expect, expect_id);
		if (sni != NULL && SSL_set_tlsext_host_name(ssl, sni) != 1)
			goto fail_set;
		if (sess != NULL)
			SSL_set_session(ssl, sess);
	}
	goto out;
fail:
	free(p);
fail_set:
	SSL_free(ssl); /* frees p once attached */
	ssl = NULL;
out:
	SSL_SESSION_free(sess);
	SSL_CTX_free(ctx);      /* ssl holds its own reference */
	return ssl;
}

unsigned long px_tls_verify_cache_hits(struct px_tls *t)
{
	struct vcache *vc;
	unsigned long n = 0;

	pthread_mutex_lock(&t->lock);
	vc = SSL_CTX_get_ex_data(t->ctx, vcache_idx);
	if (vc != NULL) {
		pthread_mutex_lock(&vc->lock);
		n = vc->hits;
		pthread_mutex_unlock(&vc->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

const char *px_tls_peer_id(SSL *ssl)
{
	struct peer *p = SSL_get_ex_data(ssl, peer_idx);
	X509 *x;

	if (p == NULL)
		return NULL;
	if (p->id[0] != '\0')
		return p->id;
	/* a resumed session: the verify callback did not run; check again */
	x = SSL_get0_peer_certificate(ssl);
	if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
		p->reason = x == NULL ? "no-client-cert" : "untrusted";
		return NULL;
	}
	return check_identity(p, x) == 0 ? p->id : NULL;
}

void px_tls_failure(SSL *ssl, unsigned long errcode, const char **reason, char *detail,
		    size_t detail_size, const char **presented)
{
	struct peer *p = ssl ? SSL_get_ex_data(ssl, peer_idx) : NULL;
	int r = ERR_GET_REASON(errcode);

	*presented = p ? p->presented : "";
	if (p != NULL && p->reason != NULL) {
		*reason = p->reason;
		snprintf(detail, detail_size, "%s", p->detail);
		return;
	}
	if (errcode == 0) {
		*reason = "handshake";
		snprintf(detail, detail_size, "connection closed during the handshake");
		return;
	}
	ERR_error_string_n(errcode, detail, detail_size);
	if (r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		*reason = "no-client-cert";
	else if (r == SSL_R_HTTP_REQUEST || r == SSL_R_WRONG_VERSION_NUMBER ||
		 r == SSL_R_UNSUPPORTED_PROTOCOL || r == SSL_R_PACKET_LENGTH_TOO_LONG)
		*reason = "not-tls";
	else if (r == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED || r == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
		 r == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE || r == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
		 r == SSL_R_TLSV1_ALERT_ACCESS_DENIED || r == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE)
		*reason = "refused-by-peer";
	else
		*reason = "handshake";
}
