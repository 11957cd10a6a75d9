/* Writes a set of certificates made by lib/ca into a directory, for
 * tests/integration/test_ca_openssl.py to check with the openssl command
 * (verify, x509, s_server/s_client) and for test_proxy_mtls.py.
 * Trust domain: weft-test.example.
 *
 *   old-root.pem new-root.pem        roots before and after a rotation
 *   cross.pem                        new root cross-signed by the old one
 *   server.pem/.key, server-chain.pem  service "api", from the new root
 *                                    (chain: the cross-signed certificate)
 *   client.pem/.key                  service "web", from the old root
 *   inter-leaf.pem/.key, inter-chain.pem  service "db", from an intermediate
 *                                    of the old root
 *   evil.pem/.key                    service "web"; its CSR asked for the
 *                                    admin SPIFFE ID and a DNS name
 *   foreign-root.pem, foreign.pem/.key  another CA altogether
 *   api-old.pem/.key                 service "api", from the old root
 *   expired.pem/.key                 service "web", from the old root,
 *                                    expired an hour and fifty minutes ago
 * Keys are written with mode 0600. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "err.h"
#include "util.h"

#define TD "weft-test.example"

static const char *dir;

static void die(const char *what, char *err)
{
	fprintf(stderr, "ca-tool: %s: %s\n", what, err ? err : "failed");
	exit(1);
}

static void put(const char *name, const char *text, unsigned mode)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (file_write_all(path, text, strlen(text), mode) != 0)
		die(path, "cannot write");
}

/* A key and CSR made locally, signed by ca for service: writes NAME.pem,
 * NAME.key and NAME-chain.pem. */
static void leaf_at(const struct ca *ca, const char *name, const char *service, const char *san,
		    int64_t now_s, int64_t ttl_s)
{
	char *key = NULL, *csr = NULL, *uri = NULL, *err = NULL, file[256];
	struct ca_leaf l;

	if (ca_csr_create("ec-p256", service, san, &key, &csr, &err) != WEFT_OK)
		die("csr", err);
	if (ca_spiffe_service_uri(ca_trust_domain(ca), "default", "dc1", service, &uri, &err) != WEFT_OK)
		die("uri", err);
	if (ca_sign_leaf(ca, csr, strlen(csr), service, uri, ttl_s, now_s, &l, &err) != WEFT_OK)
		die("sign", err);
	snprintf(file, sizeof(file), "%s.pem", name);
	put(file, l.cert_pem, 0644);
	snprintf(file, sizeof(file), "%s-chain.pem", name);
	put(file, l.chain_pem, 0644);
	snprintf(file, sizeof(file), "%s.key", name);
	put(file, key, 0600);
	ca_leaf_clear(&l);
	ca_secret_free(key);
	free(csr);
	free(uri);
}

static void leaf(const struct ca *ca, const char *name, const char *service, const char *san)
{
	leaf_at(ca, name, service, san, 0, 0);
}

int main(int argc, char **argv)
{
	struct ca *old = NULL, *new = NULL, *inter = NULL, *foreign = NULL;
	struct ca_pending *p = NULL;
	char *cross = NULL, *icert = NULL, *err = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: ca-tool DIR\n");
		return 2;
	}
	dir = argv[1];
	if (sodium_init() < 0)
		die("sodium", NULL);
	if (ca_root_create(&old, TD, "Weft CA old", 0, &err) != WEFT_OK ||
	    ca_root_create(&new, TD, "Weft CA new", 0, &err) != WEFT_OK ||
	    ca_root_create(&foreign, "foreign.example", "Foreign CA", 0, &err) != WEFT_OK)
		die("root", err);
	if (ca_cross_sign(old, new, 0, &cross, &err) != WEFT_OK ||
	    ca_chain_append(new, cross, &err) != WEFT_OK)
		die("cross-sign", err);
	if (ca_pending_create(&p, TD, "Weft intermediate dc1", &err) != WEFT_OK ||
	    ca_sign_intermediate(old, ca_pending_csr(p), strlen(ca_pending_csr(p)),
				 "Weft intermediate dc1", 0, &icert, &err) != WEFT_OK ||
	    ca_pending_complete(p, icert, NULL, &inter, &err) != WEFT_OK)
		die("intermediate", err);

	put("old-root.pem", ca_cert_pem(old), 0644);
	put("new-root.pem", ca_cert_pem(new), 0644);
	put("foreign-root.pem", ca_cert_pem(foreign), 0644);
	put("cross.pem", cross, 0644);
	leaf(new, "server", "api", NULL);
	leaf(old, "client", "web", NULL);
	leaf(inter, "inter-leaf", "db", NULL);
	leaf(old, "evil", "web", "URI:spiffe://" TD "/ns/default/dc/dc1/svc/admin,DNS:evil.example");
	leaf(foreign, "foreign", "web", NULL);
	leaf(old, "api-old", "api", NULL);
	leaf_at(old, "expired", "web", NULL, (int64_t)time(NULL) - 7200, 600);
	printf("old %s\nnew %s\n", ca_id(old), ca_id(new));

	free(cross);
	free(icert);
	ca_pending_free(p);
	ca_free(old);
	ca_free(new);
	ca_free(inter);
	ca_free(foreign);
	return 0;
}
