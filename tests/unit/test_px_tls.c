/* px_tls: handshakes between a real server and client context in memory
 * (a BIO pair), with certificates made by lib/ca: the verified-chain
 * cache still checks each peer's identity and validity, forgets what it
 * knew when the trust bundle is reloaded, and clients resume TLS 1.3
 * sessions with the server's (stateful) ticket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <sodium.h>

#include "ca.h"
#include "err.h"
#include "px_tls.h"
#include "util.h"

#define TD "weft-test.example"
#define ID_API "spiffe://" TD "/ns/default/dc/dc1/svc/api"
#define ID_WEB "spiffe://" TD "/ns/default/dc/dc1/svc/web"
#define ID_DB "spiffe://" TD "/ns/default/dc/dc1/svc/db"

static char dir[] = "/tmp/weft-test-px-tls.XXXXXX";

static const char *path(const char *name)
{
	static char p[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static void put(const char *name, const char *text)
{
	assert_int_equal(file_write_all(path(name), text, strlen(text), 0600), 0);
}

static void copy(const char *from, const char *to)
{
	size_t n;
	char *pem = file_read_all(path(from), 1 << 20, &n);

	assert_non_null(pem);
	put(to, pem);
	free(pem);
}

/* NAME.pem and NAME.key: a leaf for service from ca, valid ttl_s seconds. */
static void leaf(const struct ca *ca, const char *name, const char *service, int64_t ttl_s)
{
	char *key = NULL, *csr = NULL, *uri = NULL, *err = NULL, file[64];
	struct ca_leaf l;

	assert_int_equal(ca_csr_create("ec-p256", service, NULL, &key, &csr, &err), WEFT_OK);
	assert_int_equal(ca_spiffe_service_uri(TD, "default", "dc1", service, &uri, &err), WEFT_OK);
	assert_int_equal(ca_sign_leaf(ca, csr, strlen(csr), service, uri, ttl_s, 0, &l, &err),
			 WEFT_OK);
	snprintf(file, sizeof(file), "%s.pem", name);
	put(file, l.cert_pem);
	snprintf(file, sizeof(file), "%s.key", name);
	put(file, key);
	ca_leaf_clear(&l);
	ca_secret_free(key);
	free(csr);
	free(uri);
}

static int setup(void **state)
{
	struct ca *old = NULL, *new = NULL;
	char *err = NULL;

	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return -1;
	if (ca_root_create(&old, TD, "Weft CA old", 0, &err) != WEFT_OK ||
	    ca_root_create(&new, TD, "Weft CA new", 0, &err) != WEFT_OK)
		return -1;
	put("old-root.pem", ca_cert_pem(old));
	put("new-root.pem", ca_cert_pem(new));
	leaf(old, "api", "api", 0);
	leaf(old, "web", "web", 0);
	leaf(old, "short", "web", 2);     /* expires in 2 s */
	ca_free(old);
	ca_free(new);
	return 0;
}

static int teardown(void **state)
{
	const char *names[] = {"old-root.pem", "new-root.pem", "api.pem", "api.key", "web.pem",
			       "web.key", "short.pem", "short.key", "bundle.pem"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(path(names[i]));
	rmdir(dir);
	return 0;
}

static struct px_tls *ctx(enum px_tls_role role, const char *name, const char *bundle)
{
	char cert[64], key[64], *err = NULL;
	struct px_tls *t = NULL;
	struct px_tls_files f;
	const char *c, *k;

	snprintf(cert, sizeof(cert), "%s.pem", name);
	snprintf(key, sizeof(key), "%s.key", name);
	c = path(cert);
	k = path(key);
	f = (struct px_tls_files){.cert = c, .key = k, .bundle = path(bundle)};
	if (px_tls_new(&t, role, &f, &err) != WEFT_OK)
		fail_msg("px_tls_new %s: %s", name, err ? err : "?");
	return t;
}

struct hs {
	SSL *c, *s;
	int ok;                 /* both sides finished */
	int reused;
};

/* A client SSL of cli (expecting expect) against a server SSL of srv,
 * through a BIO pair; the client then reads what the server sent after the
 * handshake (its ticket) when read_ticket. */
static struct hs handshake(struct px_tls *cli, const char *expect, struct px_tls *srv,
			   int read_ticket)
{
	struct hs h = {px_tls_ssl_new(cli, expect, "api"), px_tls_ssl_new(srv, NULL, NULL), 0, 0};
	BIO *bc = NULL, *bs = NULL;
	int cdone = 0, sdone = 0, cfail = 0, sfail = 0;

	assert_non_null(h.c);
	assert_non_null(h.s);
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(h.c, bc, bc);
	SSL_set_bio(h.s, bs, bs);
	SSL_set_connect_state(h.c);
	SSL_set_accept_state(h.s);
	for (int i = 0; i < 50 && !(cdone && sdone) && !cfail && !sfail; i++) {
		int r;

		if (!cdone) {
			r = SSL_do_handshake(h.c);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(h.c, r) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(h.c, r) != SSL_ERROR_WANT_WRITE)
				cfail = 1;
		}
		if (!sdone) {
			r = SSL_do_handshake(h.s);
			if (r == 1)
				sdone = 1;
			else if (SSL_get_error(h.s, r) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(h.s, r) != SSL_ERROR_WANT_WRITE)
				sfail = 1;
		}
	}
	if (cdone && sdone && !cfail && !sfail) {
		/* the server's verdict on the client's certificate comes after
		 * the client's side finished: exchange once more */
		char b;

		(void)SSL_read(h.s, &b, 1);
		h.ok = SSL_get_verify_result(h.s) == X509_V_OK &&
		       SSL_get_verify_result(h.c) == X509_V_OK &&
		       px_tls_peer_id(h.c) != NULL && px_tls_peer_id(h.s) != NULL;
		if (read_ticket)
			(void)SSL_read(h.c, &b, 1);
		h.reused = SSL_session_reused(h.c);
	}
	ERR_clear_error();
	return h;
}

static void hs_free(struct hs *h)
{
	/* close_notify, as the proxy sends: OpenSSL drops the session of a
	 * connection freed without it */
	if (h->ok) {
		SSL_shutdown(h->c);
		SSL_shutdown(h->s);
		ERR_clear_error();
	}
	SSL_free(h->c);
	SSL_free(h->s);
}

static const char *client_refusal(struct hs *h)
{
	const char *reason, *presented;
	char detail[256];

	px_tls_failure(h->c, 0, &reason, detail, sizeof(detail), &presented);
	return reason;
}

static const char *server_refusal(struct hs *h)
{
	const char *reason, *presented;
	char detail[256];

	px_tls_failure(h->s, 0, &reason, detail, sizeof(detail), &presented);
	return reason;
}

/* A chain taken from the cache is still checked against the identity each
 * connection expects. */
static void test_cached_chain_identity_checked(void **state)
{
	struct px_tls *srv = ctx(PX_TLS_SERVER, "api", "old-root.pem");
	struct px_tls *cli = ctx(PX_TLS_CLIENT, "web", "old-root.pem");
	struct hs h;

	/* no tickets read: every handshake is a full one */
	h = handshake(cli, ID_API, srv, 0);
	assert_true(h.ok);
	assert_string_equal(px_tls_peer_id(h.c), ID_API);
	assert_string_equal(px_tls_peer_id(h.s), ID_WEB);
	hs_free(&h);
	assert_int_equal(px_tls_verify_cache_hits(cli), 0);
	assert_int_equal(px_tls_verify_cache_hits(srv), 0);

	h = handshake(cli, ID_API, srv, 0);
	assert_true(h.ok);
	assert_false(h.reused);
	assert_string_equal(px_tls_peer_id(h.s), ID_WEB);
	hs_free(&h);
	assert_int_equal(px_tls_verify_cache_hits(cli), 1);
	assert_int_equal(px_tls_verify_cache_hits(srv), 1);

	/* the same server chain, where db was expected: refused */
	h = handshake(cli, ID_DB, srv, 0);
	assert_false(h.ok);
	assert_string_equal(client_refusal(&h), "wrong-spiffe-id");
	hs_free(&h);
	assert_int_equal(px_tls_verify_cache_hits(cli), 2);
	px_tls_free(cli);
	px_tls_free(srv);
}

/* A reload of the trust bundle forgets the chains verified under the old
 * one: a caller whose root left the bundle is refused at once. */
static void test_reload_forgets_verified_chains(void **state)
{
	struct px_tls *srv, *cli = ctx(PX_TLS_CLIENT, "web", "old-root.pem");
	char *err = NULL;
	struct hs h;

	copy("old-root.pem", "bundle.pem");
	srv = ctx(PX_TLS_SERVER, "api", "bundle.pem");
	for (int i = 0; i < 2; i++) {
		h = handshake(cli, ID_API, srv, 0);
		assert_true(h.ok);
		hs_free(&h);
	}
	assert_int_equal(px_tls_verify_cache_hits(srv), 1);

	copy("new-root.pem", "bundle.pem");   /* the old root left the bundle */
	if (px_tls_reload(srv, &err) != WEFT_OK)
		fail_msg("reload: %s", err);
	h = handshake(cli, ID_API, srv, 0);
	assert_false(h.ok);
	assert_string_equal(server_refusal(&h), "foreign-ca");
	hs_free(&h);
	assert_int_equal(px_tls_verify_cache_hits(srv), 0);
	px_tls_free(cli);
	px_tls_free(srv);
}

/* A cached chain whose certificate has expired since is refused. */
static void test_cached_chain_expires(void **state)
{
	struct px_tls *srv = ctx(PX_TLS_SERVER, "api", "old-root.pem");
	struct px_tls *cli = ctx(PX_TLS_CLIENT, "short", "old-root.pem");
	struct hs h;

	for (int i = 0; i < 2; i++) {
		h = handshake(cli, ID_API, srv, 0);
		assert_true(h.ok);
		hs_free(&h);
	}
	assert_int_equal(px_tls_verify_cache_hits(srv), 1);
	sleep(3);
	h = handshake(cli, ID_API, srv, 0);
	assert_false(h.ok);
	assert_string_equal(server_refusal(&h), "expired");
	hs_free(&h);
	px_tls_free(cli);
	px_tls_free(srv);
}

/* The client keeps the server's ticket and resumes with it; each
 * resumption gets a new ticket, and the identities are known on both
 * sides of a resumed connection. A reloaded server starts afresh. */
static void test_server_resumes(void **state)
{
	struct px_tls *srv = ctx(PX_TLS_SERVER, "api", "old-root.pem");
	struct px_tls *cli = ctx(PX_TLS_CLIENT, "web", "old-root.pem");
	char *err = NULL;
	struct hs h;

	h = handshake(cli, ID_API, srv, 1);
	assert_true(h.ok);
	assert_false(h.reused);
	hs_free(&h);
	for (int i = 0; i < 3; i++) {
		h = handshake(cli, ID_API, srv, 1);
		assert_true(h.ok);
		assert_true(h.reused);
		assert_string_equal(px_tls_peer_id(h.c), ID_API);
		assert_string_equal(px_tls_peer_id(h.s), ID_WEB);
		hs_free(&h);
	}
	/* a resumed session is still checked against the identity expected */
	h = handshake(cli, ID_DB, srv, 0);
	assert_true(h.reused);
	assert_null(px_tls_peer_id(h.c));
	hs_free(&h);

	if (px_tls_reload(srv, &err) != WEFT_OK)
		fail_msg("reload: %s", err);
	h = handshake(cli, ID_API, srv, 1);
	assert_true(h.ok);
	assert_false(h.reused);
	hs_free(&h);
	px_tls_free(cli);
	px_tls_free(srv);
}

/* The sessions a server keeps for resumption are bounded: a flood of new
 * callers costs at most 128 of them. */
static void test_server_session_cache_bounded(void **state)
{
	struct px_tls *srv = ctx(PX_TLS_SERVER, "api", "old-root.pem");
	struct px_tls *cli = ctx(PX_TLS_CLIENT, "web", "old-root.pem");
	long kept = 0;
	struct hs h;

	for (int i = 0; i < 140; i++) {
		h = handshake(cli, ID_API, srv, 0);
		assert_true(h.ok);
		assert_false(h.reused);
		kept = SSL_CTX_sess_number(SSL_get_SSL_CTX(h.s));
		hs_free(&h);
	}
	assert_in_range(kept, 120, 128);
	px_tls_free(cli);
	px_tls_free(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cached_chain_identity_checked),
		cmocka_unit_test(test_reload_forgets_verified_chains),
		cmocka_unit_test(test_cached_chain_expires),
		cmocka_unit_test(test_server_resumes),
		cmocka_unit_test(test_server_session_cache_bounded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
