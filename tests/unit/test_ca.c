/* lib/ca and lib/sealed: roots, leaves from CSRs, intermediates, rotation,
 * trust bundles, keys sealed at rest. Chains are checked with OpenSSL's own
 * verifier (X509_verify_cert), as a TLS peer would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "err.h"
#include "sealed.h"

#define TD "11111111-2222-3333-4444-555555555555.consul"
#define URI_WEB "spiffe://" TD "/ns/default/dc/dc1/svc/web"

static struct ca *root;
static char *csr_p256, *key_p256;

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	if (ca_root_create(&root, TD, NULL, 0, NULL) != WEFT_OK)
		return -1;
	return ca_csr_create("ec-p256", "web", NULL, &key_p256, &csr_p256, NULL);
}

static int teardown(void **state)
{
	(void)state;
	ca_free(root);
	free(csr_p256);
	ca_secret_free(key_p256);
	return 0;
}

/* ---- helpers ---- */

static X509 *pem_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(x);
	return x;
}

static STACK_OF(X509) *pem_certs(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

/* X509_V_OK when leaf verifies up to one of the trusted roots, with chain as
 * the untrusted intermediates, for the purpose of a TLS client and server. */
static int verify(const char *leaf_pem, const char *chain_pem, const char *trusted1,
		  const char *trusted2)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *leaf = pem_cert(leaf_pem), *t1 = pem_cert(trusted1), *t2 = NULL;
	STACK_OF(X509) *chain = pem_certs(chain_pem ? chain_pem : "");
	int rc;

	X509_STORE_add_cert(store, t1);
	if (trusted2 != NULL) {
		t2 = pem_cert(trusted2);
		X509_STORE_add_cert(store, t2);
	}
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
	if (rc == X509_V_OK) {
		/* the same chain as a client certificate */
		X509_STORE_CTX_cleanup(ctx);
		X509_STORE_CTX_init(ctx, store, leaf, chain);
		X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
		rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	X509_free(t1);
	X509_free(t2);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	return rc;
}

/* The SANs of a certificate as "URI:x,DNS:y". */
static void sans(X509 *x, char *out, size_t size)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

	out[0] = '\0';
	for (int i = 0; g != NULL && i < sk_GENERAL_NAME_num(g); i++) {
		GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
		int type;
		ASN1_STRING *s = GENERAL_NAME_get0_value(n, &type);

		snprintf(out + strlen(out), size - strlen(out), "%s%s:%.*s", i ? "," : "",
			 type == GEN_URI ? "URI" : type == GEN_DNS ? "DNS" : "OTHER",
			 type == GEN_URI || type == GEN_DNS ? ASN1_STRING_length(s) : 0,
			 type == GEN_URI || type == GEN_DNS ? (const char *)ASN1_STRING_get0_data(s) : "");
	}
	GENERAL_NAMES_free(g);
}

static void cn_of(X509 *x, char *out, size_t size)
{
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)size);
}

static void sign_ok(const struct ca *ca, const char *csr, struct ca_leaf *leaf)
{
	char *err = NULL;
	int rc = ca_sign_leaf(ca, csr, strlen(csr), "web", URI_WEB, 0, 0, leaf, &err);

	if (rc != WEFT_OK)
		fail_msg("sign: %s", err);
}

static void sign_refused(const char *csr, size_t len, const char *expect)
{
	struct ca_leaf leaf;
	char *err = NULL;

	assert_int_equal(ca_sign_leaf(root, csr, len, "web", URI_WEB, 0, 0, &leaf, &err),
			 WEFT_EINVAL);
	assert_non_null(err);
	if (strstr(err, expect) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, expect);
	assert_null(leaf.cert_pem);
	free(err);
}

/* A self-signed certificate made with OpenSSL directly: a "provided" root. */
static char *selfsigned(EVP_PKEY *key, int is_ca, long from, long to)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	BIO *b = BIO_new(BIO_s_mem());
	char *pem;
	long n;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"Operator Root", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_time_adj_ex(X509_getm_notBefore(x), 0, from, NULL);
	X509_time_adj_ex(X509_getm_notAfter(x), 0, to, NULL);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &pem);
	pem = strndup(pem, (size_t)n);
	BIO_free(b);
	X509_free(x);
	return pem;
}

static char *key_pem(EVP_PKEY *key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &p);
	p = strndup(p, (size_t)n);
	BIO_free(b);
	return p;
}

/* ---- roots ---- */

static void test_root(void **state)
{
	X509 *x = pem_cert(ca_cert_pem(root));
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	char s[512], id[CA_ID_LEN + 1];
	unsigned char md[20];
	unsigned int mdn;
	int64_t now = time(NULL);

	(void)state;
	assert_true(ca_is_root(root));
	assert_string_equal(ca_trust_domain(root), TD);
	assert_string_equal(ca_chain_pem(root), "");
	/* CA:TRUE, pathlen 2, may sign certificates and CRLs */
	assert_non_null(bc);
	assert_true(bc->ca);
	assert_int_equal(ASN1_INTEGER_get(bc->pathlen), CA_ROOT_PATHLEN);
	BASIC_CONSTRAINTS_free(bc);
	assert_true(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
	assert_true(X509_get_key_usage(x) & KU_CRL_SIGN);
	/* the trust domain as its only SAN, as Consul's root */
	sans(x, s, sizeof(s));
	assert_string_equal(s, "URI:spiffe://" TD);
	/* EC P-256, ten years */
	assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(x)), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(x)), 256);
	assert_true(ca_not_after(root) - now > 10 * 365 * 86400LL - 120);
	assert_true(ca_not_after(root) - now <= 10 * 365 * 86400LL);
	/* SKID = AKID; the ID is the SHA-1 of the DER in colon hex */
	assert_non_null(X509_get0_subject_key_id(x));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(x),
					       X509_get0_authority_key_id(x)), 0);
	assert_true(strlen(ca_signing_key_id(root)) == 59);
	X509_digest(x, EVP_sha1(), md, &mdn);
	for (unsigned i = 0; i < mdn; i++)
		snprintf(id + 3 * i, 4, i + 1 < mdn ? "%02x:" : "%02x", md[i]);
	assert_string_equal(ca_id(root), id);
	cn_of(x, s, sizeof(s));
	assert_true(strncmp(s, "Weft CA ", 8) == 0);
	X509_free(x);

	/* the ID of the PEM is the same */
	assert_int_equal(ca_cert_id(ca_cert_pem(root), id, NULL), WEFT_OK);
	assert_string_equal(id, ca_id(root));
}

static void test_root_bad_input(void **state)
{
	struct ca *ca = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(ca_root_create(&ca, "Bad Domain", NULL, 0, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "TrustDomain"));
	free(err);
	assert_int_equal(ca_root_create(&ca, "", NULL, 0, NULL), WEFT_EINVAL);
	assert_null(ca);
}

/* ---- leaves ---- */

static void test_sign_leaf(void **state)
{
	struct ca_leaf leaf;
	X509 *x;
	char s[512];
	int64_t now = time(NULL);
	EXTENDED_KEY_USAGE *eku;

	(void)state;
	sign_ok(root, csr_p256, &leaf);
	assert_string_equal(leaf.service_uri, URI_WEB);
	assert_string_equal(leaf.chain_pem, "");
	assert_int_equal(verify(leaf.cert_pem, leaf.chain_pem, ca_cert_pem(root), NULL), X509_V_OK);

	x = pem_cert(leaf.cert_pem);
	sans(x, s, sizeof(s));
	assert_string_equal(s, "URI:" URI_WEB);
	cn_of(x, s, sizeof(s));
	assert_string_equal(s, "web");
	/* validity: a minute back, 24 hours ahead */
	assert_true(leaf.not_before <= now - 60 && leaf.not_before >= now - 62);
	assert_true(leaf.not_after >= now + 86400 - 2 && leaf.not_after <= now + 86400);
	assert_int_equal(strlen(leaf.valid_after), 20);
	assert_true(leaf.valid_after[19] == 'Z' && leaf.valid_before[10] == 'T');
	/* the leaf's key is the CSR's */
	{
		BIO *b = BIO_new_mem_buf(key_p256, -1);
		EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

		assert_int_equal(X509_check_private_key(x, k), 1);
		EVP_PKEY_free(k);
		BIO_free(b);
	}
	/* not a CA; signatures and key exchange; server and client auth */
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
	assert_true(X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT);
	assert_false(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
	eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 2);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_server_auth);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 1)), NID_client_auth);
	EXTENDED_KEY_USAGE_free(eku);
	{
		X509 *r = pem_cert(ca_cert_pem(root));

		assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
						       X509_get0_subject_key_id(r)), 0);
		X509_free(r);
	}
	assert_true(strlen(leaf.serial) == 47);
	X509_free(x);

	/* a second leaf has another serial */
	{
		struct ca_leaf l2;

		sign_ok(root, csr_p256, &l2);
		assert_string_not_equal(l2.serial, leaf.serial);
		ca_leaf_clear(&l2);
	}
	ca_leaf_clear(&leaf);
}

static void test_leaf_ttl(void **state)
{
	struct ca_leaf leaf;

	(void)state;
	assert_int_equal(ca_sign_leaf(root, csr_p256, strlen(csr_p256), "web", URI_WEB, 3600,
				      1800000000, &leaf, NULL), WEFT_OK);
	assert_int_equal(leaf.not_before, 1800000000 - 60);
	assert_int_equal(leaf.not_after, 1800000000 + 3600);
	assert_string_equal(leaf.valid_after, "2027-01-15T07:59:00Z");
	assert_string_equal(leaf.valid_before, "2027-01-15T09:00:00Z");
	ca_leaf_clear(&leaf);
	/* never beyond the CA */
	assert_int_equal(ca_sign_leaf(root, csr_p256, strlen(csr_p256), "web", URI_WEB,
				      20 * 365 * 86400LL, 0, &leaf, NULL), WEFT_OK);
	assert_int_equal(leaf.not_after, ca_not_after(root));
	ca_leaf_clear(&leaf);
}

static void test_leaf_ignores_csr_names(void **state)
{
	struct ca_leaf leaf;
	char *key, *csr, s[512];
	X509 *x;

	(void)state;
	/* the CSR asks for the admin service and a DNS name: neither is granted */
	assert_int_equal(ca_csr_create("ec-p256", "admin",
				       "URI:spiffe://" TD "/ns/default/dc/dc1/svc/admin,"
				       "DNS:evil.example.com,URI:spiffe://other.td/x",
				       &key, &csr, NULL), WEFT_OK);
	sign_ok(root, csr, &leaf);
	x = pem_cert(leaf.cert_pem);
	sans(x, s, sizeof(s));
	assert_string_equal(s, "URI:" URI_WEB);
	cn_of(x, s, sizeof(s));
	assert_string_equal(s, "web");
	X509_free(x);
	ca_leaf_clear(&leaf);
	free(csr);
	ca_secret_free(key);
}

static void test_leaf_key_types(void **state)
{
	static const char *ok[] = { "ec-p384", "rsa-2048" };
	struct ca_leaf leaf;
	char *key, *csr;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(ca_csr_create(ok[i], NULL, NULL, &key, &csr, NULL), WEFT_OK);
		sign_ok(root, csr, &leaf);
		assert_int_equal(verify(leaf.cert_pem, NULL, ca_cert_pem(root), NULL), X509_V_OK);
		ca_leaf_clear(&leaf);
		free(csr);
		ca_secret_free(key);
	}
	assert_int_equal(ca_csr_create("rsa-1024", NULL, NULL, &key, &csr, NULL), WEFT_OK);
	sign_refused(csr, strlen(csr), "CSR: RSA key of 1024 bits is not accepted");
	free(csr);
	ca_secret_free(key);
	assert_int_equal(ca_csr_create("ec-p521", NULL, NULL, &key, &csr, NULL), WEFT_OK);
	sign_refused(csr, strlen(csr), "CSR: EC curve secp521r1 is not accepted");
	free(csr);
	ca_secret_free(key);
	/* Ed25519 */
	{
		EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		X509_REQ *r = X509_REQ_new();
		BIO *b = BIO_new(BIO_s_mem());
		char *p;
		long n;

		X509_REQ_set_pubkey(r, k);
		assert_true(X509_REQ_sign(r, k, NULL) > 0);
		PEM_write_bio_X509_REQ(b, r);
		n = BIO_get_mem_data(b, &p);
		sign_refused(p, (size_t)n, "CSR: ED25519 keys are not accepted");
		BIO_free(b);
		X509_REQ_free(r);
		EVP_PKEY_free(k);
	}
}

static void test_bad_csrs(void **state)
{
	char *bad, *p;
	size_t n = strlen(csr_p256);

	(void)state;
	sign_refused("", 0, "CSR: missing");
	sign_refused("hello", 5, "CSR: not a PEM certificate request");
	sign_refused(ca_cert_pem(root), strlen(ca_cert_pem(root)),
		     "CSR: not a PEM certificate request");
	sign_refused("-----BEGIN CERTIFICATE REQUEST-----\nAAAA////\n"
		     "-----END CERTIFICATE REQUEST-----\n", 78, "CSR: malformed certificate request");
	sign_refused("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n"
		     "-----END CERTIFICATE REQUEST-----\n", 74, "CSR: the PEM certificate request "
		     "cannot be decoded");
	/* truncated */
	sign_refused(csr_p256, n / 2, "CSR:");
	/* a signature that does not verify: change a byte near the end of the
	 * base64 (inside the signature) */
	bad = strdup(csr_p256);
	p = strstr(bad, "-----END");
	p -= 6;
	*p = *p == 'A' ? 'B' : 'A';
	sign_refused(bad, n, "CSR:");
	free(bad);
	/* too big */
	bad = calloc(1, CA_CSR_MAX + 2);
	memset(bad, 'A', CA_CSR_MAX + 1);
	sign_refused(bad, CA_CSR_MAX + 1, "CSR: 16385 bytes is too long");
	free(bad);
}

/* A CSR made by OpenSSL's X509_REQ API with key k, digest md, version v;
 * extra DER bytes appended after it when trailing. PEM, allocated. */
static char *make_csr(EVP_PKEY *k, const EVP_MD *md, long v, int trailing)
{
	X509_REQ *r = X509_REQ_new();
	unsigned char *der = NULL, *d2;
	int n;
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long pl;

	X509_REQ_set_pubkey(r, k);
	X509_REQ_set_version(r, v);
	assert_true(X509_REQ_sign(r, k, md) > 0);
	n = i2d_X509_REQ(r, &der);
	d2 = malloc((size_t)n + 2);
	memcpy(d2, der, (size_t)n);
	d2[n] = 0x05;   /* NULL */
	d2[n + 1] = 0x00;
	PEM_write_bio(b, "CERTIFICATE REQUEST", "", d2, n + (trailing ? 2 : 0));
	pl = BIO_get_mem_data(b, &p);
	p = strndup(p, (size_t)pl);
	BIO_free(b);
	free(d2);
	OPENSSL_free(der);
	X509_REQ_free(r);
	return p;
}

static void test_csr_structure(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct ca_leaf leaf;
	char *p, *q;

	(void)state;
	p = make_csr(k, EVP_sha256(), X509_REQ_VERSION_1, 0);
	sign_ok(root, p, &leaf);
	ca_leaf_clear(&leaf);
	/* the old PEM label is accepted too */
	q = calloc(1, strlen(p) + 16);
	strcpy(q, "-----BEGIN NEW CERTIFICATE REQUEST-----");
	strcat(q, strchr(p, '\n'));
	strcpy(strstr(q, "-----END"), "-----END NEW CERTIFICATE REQUEST-----\n");
	sign_ok(root, q, &leaf);
	ca_leaf_clear(&leaf);
	free(q);
	free(p);
	/* bytes after the request */
	p = make_csr(k, EVP_sha256(), X509_REQ_VERSION_1, 1);
	sign_refused(p, strlen(p), "CSR: malformed certificate request (not one DER sequence)");
	free(p);
	/* SHA-1 */
	p = make_csr(k, EVP_sha1(), X509_REQ_VERSION_1, 0);
	sign_refused(p, strlen(p), "CSR: its signature algorithm is not accepted");
	free(p);
	/* version 2 (value 1) does not exist */
	p = make_csr(k, EVP_sha256(), 1, 0);
	sign_refused(p, strlen(p), "CSR: malformed certificate request (version is not 1)");
	free(p);
	/* PEM headers (an encrypted PEM, say) */
	sign_refused("-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n"
		     "DEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n"
		     "-----END CERTIFICATE REQUEST-----\n", 154, "CSR: PEM headers are not accepted");
	EVP_PKEY_free(k);
}

static void test_unsigned_csr(void **state)
{
	/* a CSR whose signature was made by another key */
	EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	X509_REQ *r = X509_REQ_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	(void)state;
	X509_REQ_set_pubkey(r, k2);
	assert_true(X509_REQ_sign(r, k1, EVP_sha256()) > 0);
	X509_REQ_set_pubkey(r, k2);
	PEM_write_bio_X509_REQ(b, r);
	n = BIO_get_mem_data(b, &p);
	sign_refused(p, (size_t)n, "CSR: its signature does not verify with its public key");
	BIO_free(b);
	X509_REQ_free(r);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

static void test_leaf_bad_names(void **state)
{
	struct ca_leaf leaf;
	char *err = NULL, *uri = NULL;

	(void)state;
	assert_int_equal(ca_sign_leaf(root, csr_p256, strlen(csr_p256), "web",
				      "spiffe://other.consul/ns/default/dc/dc1/svc/web", 0, 0, &leaf,
				      &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "ServiceURI"));
	free(err);
	err = NULL;
	assert_int_equal(ca_sign_leaf(root, csr_p256, strlen(csr_p256), "web/x", URI_WEB, 0, 0,
				      &leaf, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Service:"));
	free(err);
	err = NULL;

	assert_int_equal(ca_spiffe_service_uri(TD, "default", "dc1", "web", &uri, NULL), WEFT_OK);
	assert_string_equal(uri, URI_WEB);
	free(uri);
	assert_int_equal(ca_spiffe_service_uri(TD, "default", "dc1", "a/b", &uri, &err),
			 WEFT_EINVAL);
	assert_non_null(strstr(err, "Service: \"a/b\""));
	free(err);
	err = NULL;
	assert_int_equal(ca_spiffe_service_uri(TD, "", "dc1", "web", &uri, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Mesh:"));
	free(err);
	err = NULL;
	assert_int_equal(ca_spiffe_service_uri(TD, "m", "dc 1", "web", &uri, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Zone:"));
	free(err);
}

/* ---- intermediates ---- */

static void test_intermediate(void **state)
{
	struct ca_pending *p = NULL;
	struct ca *inter = NULL, *inter2 = NULL;
	struct ca_leaf leaf;
	char *cert = NULL, *err = NULL, s[256];
	STACK_OF(X509) *chain;
	X509 *x;
	BASIC_CONSTRAINTS *bc;

	(void)state;
	assert_int_equal(ca_pending_create(&p, TD, "Weft zone dc2", NULL), WEFT_OK);
	assert_int_equal(ca_sign_intermediate(root, ca_pending_csr(p), strlen(ca_pending_csr(p)),
					      "Weft zone dc2", 0, &cert, NULL), WEFT_OK);
	x = pem_cert(cert);
	bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	assert_true(bc->ca);
	assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
	BASIC_CONSTRAINTS_free(bc);
	sans(x, s, sizeof(s));
	assert_string_equal(s, "URI:spiffe://" TD);
	X509_free(x);

	assert_int_equal(ca_pending_complete(p, cert, NULL, &inter, &err), WEFT_OK);
	assert_false(ca_is_root(inter));
	sign_ok(inter, csr_p256, &leaf);
	/* the chain is the intermediate */
	chain = pem_certs(leaf.chain_pem);
	assert_int_equal(sk_X509_num(chain), 1);
	sk_X509_pop_free(chain, X509_free);
	assert_int_equal(verify(leaf.cert_pem, leaf.chain_pem, ca_cert_pem(root), NULL), X509_V_OK);
	/* without the chain, the root alone cannot verify it */
	assert_int_not_equal(verify(leaf.cert_pem, NULL, ca_cert_pem(root), NULL), X509_V_OK);
	ca_leaf_clear(&leaf);

	/* a certificate for another key does not complete the pending CA */
	{
		struct ca_pending *q = NULL;

		assert_int_equal(ca_pending_create(&q, TD, "other", NULL), WEFT_OK);
		assert_int_equal(ca_pending_complete(q, cert, NULL, &inter2, &err), WEFT_EINVAL);
		assert_non_null(strstr(err, "another key"));
		free(err);
		err = NULL;
		ca_pending_free(q);
	}
	/* a leaf certificate is no CA */
	{
		struct ca_leaf l;

		sign_ok(root, csr_p256, &l);
		assert_int_equal(ca_load(&inter2, TD, l.cert_pem, key_p256, NULL, 0, &err),
				 WEFT_EINVAL);
		assert_non_null(strstr(err, "not a CA certificate"));
		assert_null(strstr(err, "PRIVATE"));
		free(err);
		ca_leaf_clear(&l);
	}
	free(cert);
	ca_free(inter);
	ca_pending_free(p);
}

/* ---- rotation ---- */

static void test_rotation(void **state)
{
	struct ca *old = NULL, *new = NULL;
	struct ca_leaf old_leaf, new_leaf;
	char *cross = NULL, *err = NULL;
	X509 *x, *nr;

	(void)state;
	assert_int_equal(ca_root_create(&old, TD, NULL, 0, NULL), WEFT_OK);
	assert_int_equal(ca_root_create(&new, TD, NULL, 0, NULL), WEFT_OK);
	assert_int_equal(ca_cross_sign(old, new, 0, &cross, &err), WEFT_OK);

	/* the cross-signed certificate: the new root's subject and key, issued by
	 * the old root, a week long */
	x = pem_cert(cross);
	nr = pem_cert(ca_cert_pem(new));
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(nr)), 0);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), X509_get0_pubkey(nr)), 1);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(x),
					       X509_get0_subject_key_id(nr)), 0);
	assert_int_equal(X509_check_ca(x), 1);
	X509_free(nr);
	X509_free(x);

	/* before the cross-signed certificate is in its chain, new leaves do
	 * not verify for holders of the old root */
	sign_ok(new, csr_p256, &new_leaf);
	assert_int_not_equal(verify(new_leaf.cert_pem, new_leaf.chain_pem, ca_cert_pem(old), NULL),
			     X509_V_OK);
	ca_leaf_clear(&new_leaf);

	assert_int_equal(ca_chain_append(new, cross, &err), WEFT_OK);
	sign_ok(new, csr_p256, &new_leaf);
	assert_string_equal(new_leaf.chain_pem, cross);
	sign_ok(old, csr_p256, &old_leaf);
	/* the new leaf verifies with the old root only, the new root only, both */
	assert_int_equal(verify(new_leaf.cert_pem, new_leaf.chain_pem, ca_cert_pem(old), NULL),
			 X509_V_OK);
	assert_int_equal(verify(new_leaf.cert_pem, new_leaf.chain_pem, ca_cert_pem(new), NULL),
			 X509_V_OK);
	assert_int_equal(verify(new_leaf.cert_pem, new_leaf.chain_pem, ca_cert_pem(old),
				ca_cert_pem(new)), X509_V_OK);
	/* the old leaf with the bundle of both roots */
	assert_int_equal(verify(old_leaf.cert_pem, NULL, ca_cert_pem(old), ca_cert_pem(new)),
			 X509_V_OK);
	/* another root's leaf is foreign to both */
	{
		struct ca_leaf l;

		sign_ok(root, csr_p256, &l);
		assert_int_not_equal(verify(l.cert_pem, NULL, ca_cert_pem(old), ca_cert_pem(new)),
				     X509_V_OK);
		ca_leaf_clear(&l);
	}
	/* only certificates of this CA enter its chain */
	assert_int_equal(ca_chain_append(old, cross, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "not a certificate of this CA"));
	free(err);
	err = NULL;
	/* a root loaded back with its cross-signed certificate keeps the chain */
	{
		struct sealed_key *sk = NULL;
		char dir[] = "/tmp/test_ca.XXXXXX", path[64], *sealed = NULL;
		struct ca *again = NULL;

		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof(path), "%s/ca.key", dir);
		assert_int_equal(sealed_key_create(&sk, path, NULL), WEFT_OK);
		assert_int_equal(ca_key_seal(new, sk, &sealed, NULL), WEFT_OK);
		assert_int_equal(ca_load_sealed(&again, TD, ca_cert_pem(new), sealed, cross, sk, 0,
						&err), WEFT_OK);
		assert_string_equal(ca_chain_pem(again), cross);
		ca_free(again);
		free(sealed);
		sealed_key_free(sk);
		unlink(path);
		rmdir(dir);
	}
	ca_leaf_clear(&old_leaf);
	ca_leaf_clear(&new_leaf);
	free(cross);
	ca_free(old);
	ca_free(new);
}

static void test_bundle(void **state)
{
	struct ca_bundle *b = ca_bundle_new();
	struct ca *r2 = NULL;
	const char *id, *pem;
	char *err = NULL, *all;
	int active;
	int64_t na;

	(void)state;
	assert_int_equal(ca_root_create(&r2, TD, NULL, 0, NULL), WEFT_OK);
	assert_int_equal(ca_bundle_add(b, ca_cert_pem(root), 1, NULL), WEFT_OK);
	assert_string_equal(ca_bundle_active_id(b), ca_id(root));
	assert_int_equal(ca_bundle_add(b, ca_cert_pem(root), 0, &err), WEFT_EEXIST);
	free(err);
	err = NULL;
	assert_int_equal(ca_bundle_add(b, ca_cert_pem(r2), 1, NULL), WEFT_OK);
	assert_int_equal(ca_bundle_count(b), 2);
	assert_string_equal(ca_bundle_active_id(b), ca_id(r2));
	assert_int_equal(ca_bundle_get(b, 0, &id, &pem, &active, &na), WEFT_OK);
	assert_string_equal(id, ca_id(root));
	assert_string_equal(pem, ca_cert_pem(root));
	assert_false(active);
	assert_int_equal(na, ca_not_after(root));
	all = ca_bundle_pem(b);
	assert_non_null(strstr(all, ca_cert_pem(root)));
	assert_non_null(strstr(all, ca_cert_pem(r2)));
	free(all);
	/* a leaf is no root */
	{
		struct ca_leaf l;

		sign_ok(root, csr_p256, &l);
		assert_int_equal(ca_bundle_add(b, l.cert_pem, 0, &err), WEFT_EINVAL);
		free(err);
		err = NULL;
		ca_leaf_clear(&l);
	}
	assert_int_equal(ca_bundle_remove(b, ca_id(r2), &err), WEFT_ECONFLICT);
	free(err);
	err = NULL;
	assert_int_equal(ca_bundle_remove(b, ca_id(root), NULL), WEFT_OK);
	assert_int_equal(ca_bundle_remove(b, ca_id(root), &err), WEFT_ENOENT);
	free(err);
	assert_int_equal(ca_bundle_count(b), 1);
	ca_bundle_free(b);
	ca_free(r2);
}

/* ---- provided roots ---- */

static void test_provided_root(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256"), *weak = EVP_RSA_gen(1024);
	char *cert = selfsigned(k, 1, -60, 86400 * 365), *kp = key_pem(k), *err = NULL, *c;
	struct ca *ca = NULL;
	struct ca_leaf leaf;

	(void)state;
	assert_int_equal(ca_load(&ca, TD, cert, kp, NULL, 0, &err), WEFT_OK);
	assert_true(ca_is_root(ca));
	sign_ok(ca, csr_p256, &leaf);
	assert_int_equal(verify(leaf.cert_pem, leaf.chain_pem, cert, NULL), X509_V_OK);
	ca_leaf_clear(&leaf);
	ca_free(ca);

	/* the wrong key: refused, and the message does not quote it */
	{
		char *kp2 = key_pem(k2);

		assert_int_equal(ca_load(&ca, TD, cert, kp2, NULL, 0, &err), WEFT_EINVAL);
		assert_non_null(strstr(err, "PrivateKey: does not match"));
		assert_null(strstr(err, "PRIVATE"));
		free(err);
		err = NULL;
		free(kp2);
	}
	assert_int_equal(ca_load(&ca, TD, cert, "garbage", NULL, 0, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "PrivateKey: not an unencrypted PEM private key"));
	free(err);
	err = NULL;
	assert_int_equal(ca_load(&ca, TD, "garbage", kp, NULL, 0, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "RootCert: not a PEM certificate"));
	free(err);
	err = NULL;
	free(cert);

	/* not a CA */
	cert = selfsigned(k, 0, -60, 86400);
	assert_int_equal(ca_load(&ca, TD, cert, kp, NULL, 0, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "RootCert: not a CA certificate"));
	free(err);
	err = NULL;
	free(cert);
	/* expired */
	cert = selfsigned(k, 1, -86400 * 2, -86400);
	assert_int_equal(ca_load(&ca, TD, cert, kp, NULL, 0, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "RootCert: expired"));
	free(err);
	err = NULL;
	free(cert);
	free(kp);
	/* RSA-1024 */
	cert = selfsigned(weak, 1, -60, 86400);
	kp = key_pem(weak);
	assert_int_equal(ca_load(&ca, TD, cert, kp, NULL, 0, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "PrivateKey: RSA key of 1024 bits"));
	free(err);
	err = NULL;
	free(cert);
	free(kp);
	/* another trust domain in its SAN */
	c = strdup(ca_cert_pem(root));
	assert_int_equal(ca_load(&ca, "other.consul", c, "x", NULL, 0, &err), WEFT_EINVAL);
	free(err);
	free(c);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(weak);
}

/* ---- sealing ---- */

static void test_sealed(void **state)
{
	char dir[] = "/tmp/test_ca.XXXXXX", path[64], other[64], *sealed = NULL, *err = NULL;
	struct sealed_key *sk = NULL, *sk2 = NULL, *sk3 = NULL;
	unsigned char *plain = NULL;
	size_t len = 0;
	struct stat st;
	struct ca *back = NULL;
	struct ca_leaf leaf;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	snprintf(other, sizeof(other), "%s/other.key", dir);
	assert_int_equal(sealed_key_create(&sk, path, NULL), WEFT_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* never replaced */
	assert_int_equal(sealed_key_create(&sk2, path, &err), WEFT_EEXIST);
	free(err);
	err = NULL;
	/* round trip */
	assert_int_equal(sealed_seal(sk, "secret", 6, &sealed, NULL), WEFT_OK);
	assert_null(strstr(sealed, "secret"));
	assert_int_equal(sealed_key_load(&sk2, path, NULL), WEFT_OK);
	assert_int_equal(sealed_open(sk2, sealed, strlen(sealed), &plain, &len, NULL), WEFT_OK);
	assert_int_equal(len, 6);
	assert_string_equal((char *)plain, "secret");
	sealed_plain_free(plain, len);
	/* tampering: every byte of the box matters */
	for (size_t i = strlen(SEALED_PREFIX); sealed[i] != '\0' && sealed[i] != '='; i += 3) {
		char c = sealed[i];
		int rc;

		sealed[i] = c == 'A' ? 'B' : 'A';
		rc = sealed_open(sk, sealed, strlen(sealed), &plain, &len, NULL);
		assert_true(rc == WEFT_EAUTH || rc == WEFT_EINVAL);
		assert_null(plain);
		sealed[i] = c;
	}
	free(sealed);
	sealed = NULL;
	/* another key cannot open it */
	assert_int_equal(sealed_key_open_or_create(&sk3, other, NULL), WEFT_OK);
	assert_int_equal(ca_key_seal(root, sk, &sealed, NULL), WEFT_OK);
	assert_null(strstr(sealed, "PRIVATE"));
	assert_int_equal(ca_load_sealed(&back, TD, ca_cert_pem(root), sealed, NULL, sk3, 0, &err),
			 WEFT_EAUTH);
	assert_non_null(strstr(err, "altered or sealed under another key"));
	free(err);
	err = NULL;
	/* the right key gives the CA back, which signs for the same root */
	assert_int_equal(ca_load_sealed(&back, TD, ca_cert_pem(root), sealed, NULL, sk2, 0, &err),
			 WEFT_OK);
	assert_string_equal(ca_id(back), ca_id(root));
	sign_ok(back, csr_p256, &leaf);
	assert_int_equal(verify(leaf.cert_pem, NULL, ca_cert_pem(root), NULL), X509_V_OK);
	ca_leaf_clear(&leaf);
	ca_free(back);
	free(sealed);
	sealed_key_free(sk2);
	sk2 = NULL;

	/* a key file readable by the group is refused */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(sealed_key_load(&sk2, path, &err), WEFT_EPERM);
	assert_non_null(strstr(err, "mode 0640"));
	free(err);
	err = NULL;
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(sealed_key_open_or_create(&sk2, path, &err), WEFT_EPERM);
	free(err);
	err = NULL;
	/* not a key file */
	assert_int_equal(chmod(path, 0600), 0);
	{
		FILE *f = fopen(path, "w");

		fputs("hello\n", f);
		fclose(f);
	}
	assert_int_equal(sealed_key_load(&sk2, path, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "not a Weft sealing key"));
	free(err);
	err = NULL;
	assert_int_equal(sealed_key_load(&sk2, "/nonexistent/x", &err), WEFT_ENOENT);
	free(err);
	/* garbage sealed text */
	assert_int_equal(sealed_open(sk, "weftseal1.!!!", 13, &plain, &len, NULL), WEFT_EINVAL);
	assert_int_equal(sealed_open(sk, "nope", 4, &plain, &len, NULL), WEFT_EINVAL);

	sealed_key_free(sk);
	sealed_key_free(sk3);
	unlink(path);
	unlink(other);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root),
		cmocka_unit_test(test_root_bad_input),
		cmocka_unit_test(test_sign_leaf),
		cmocka_unit_test(test_leaf_ttl),
		cmocka_unit_test(test_leaf_ignores_csr_names),
		cmocka_unit_test(test_leaf_key_types),
		cmocka_unit_test(test_bad_csrs),
		cmocka_unit_test(test_unsigned_csr),
		cmocka_unit_test(test_csr_structure),
		cmocka_unit_test(test_leaf_bad_names),
		cmocka_unit_test(test_intermediate),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_bundle),
		cmocka_unit_test(test_provided_root),
		cmocka_unit_test(test_sealed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
