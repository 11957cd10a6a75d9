/* The mesh certificate authority (see ca.h and docs/ca.md). */
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "err.h"
#include "util.h"

#define CROSS_TTL_DEFAULT (7 * 86400LL)
#define SERIAL_BYTES 16
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define BUNDLE_MAX 16
#define CN_MAX 64

struct ca {
	X509 *cert;
	EVP_PKEY *key;
	char *cert_pem;
	char *chain_pem;
	char *skid;
	char trust_domain[CA_TRUST_DOMAIN_MAX + 1];
	char id[CA_ID_LEN + 1];
	int is_root;
	int64_t not_before, not_after;
	/* Extensions every leaf of this CA carries, built once. */
	X509_EXTENSION *leaf_bc, *leaf_ku, *leaf_eku, *leaf_akid;
};

struct ca_pending {
	EVP_PKEY *key;
	char *csr_pem;
	char trust_domain[CA_TRUST_DOMAIN_MAX + 1];
};

/* ---- helpers ---- */

/* Never prompt for a passphrase: an encrypted key is simply refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int64_t now_or(int64_t now_s)
{
	return now_s > 0 ? now_s : (int64_t)time(NULL);
}

static void colon_hex(const unsigned char *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		*out++ = hex[b[i] >> 4];
		*out++ = hex[b[i] & 15];
		if (i + 1 < n)
			*out++ = ':';
	}
	*out = '\0';
}

static char *pem_of_cert(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *bm = NULL;
	char *s = NULL;

	if (bio != NULL && PEM_write_bio_X509(bio, x) == 1 && BIO_get_mem_ptr(bio, &bm) == 1 &&
	    (s = malloc(bm->length + 1)) != NULL) {
		memcpy(s, bm->data, bm->length);
		s[bm->length] = '\0';
	}
	BIO_free(bio);
	return s;
}

static int64_t asn1_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

static void rfc3339(int64_t s, char *out, size_t size)
{
	time_t t = (time_t)s;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Appends a to *s (allocated). */
static int str_append(char **s, const char *a)
{
	size_t n = *s ? strlen(*s) : 0, m = strlen(a);
	char *t = realloc(*s, n + m + 1);

	if (t == NULL)
		return -1;
	memcpy(t + n, a, m + 1);
	*s = t;
	return 0;
}

/* Parses every certificate of a PEM text into a new stack; an empty text
 * gives an empty stack. what names the input in messages. */
static int certs_parse(const char *pem, const char *what, STACK_OF(X509) **out, char **err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio = NULL;
	size_t len = pem ? strlen(pem) : 0;
	int rc = WEFT_OK;

	*out = NULL;
	if (sk == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	if (len > CA_PEM_MAX) {
		rc = weft_errf(err, WEFT_EINVAL, "%s: %zu bytes is too long (at most %u)", what, len,
			       CA_PEM_MAX);
		goto out;
	}
	if (len == 0)
		goto out;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto out;
	}
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);

		if (x == NULL) {
			unsigned long e = ERR_peek_last_error();

			if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE && sk_X509_num(sk) > 0)
				break;
			rc = weft_errf(err, WEFT_EINVAL, "%s: %s PEM certificate", what,
				       sk_X509_num(sk) > 0 ? "a damaged" : "not a");
			goto out;
		}
		if (sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
			goto out;
		}
	}
out:
	BIO_free(bio);
	ERR_clear_error();
	if (rc != WEFT_OK)
		sk_X509_pop_free(sk, X509_free);
	else
		*out = sk;
	return rc;
}

static int cert_parse_one(const char *pem, const char *what, X509 **out, char **err)
{
	STACK_OF(X509) *sk = NULL;
	int rc = certs_parse(pem, what, &sk, err);

	*out = NULL;
	if (rc != WEFT_OK)
		return rc;
	if (sk_X509_num(sk) != 1) {
		rc = weft_errf(err, WEFT_EINVAL, "%s: expected one PEM certificate, found %d", what,
			       sk_X509_num(sk));
		sk_X509_pop_free(sk, X509_free);
		return rc;
	}
	*out = sk_X509_shift(sk);
	sk_X509_free(sk);
	return WEFT_OK;
}

/* Accepts EC P-256/P-384 and RSA 2048..8192 bits. */
static int key_check(EVP_PKEY *pk, const char *what, char **err)
{
	char group[64];
	size_t glen = 0;
	int nid;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1)
			return weft_errf(err, WEFT_EINVAL, "%s: EC key without a named curve; use "
					 "P-256 or P-384", what);
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1)
			return weft_errf(err, WEFT_EINVAL, "%s: EC curve %s is not accepted; use P-256 "
					 "or P-384", what, group);
		return WEFT_OK;
	case EVP_PKEY_RSA: {
		int bits = EVP_PKEY_get_bits(pk);

		if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
			return weft_errf(err, WEFT_EINVAL, "%s: RSA key of %d bits is not accepted; "
					 "use %d to %d bits (or EC P-256)", what, bits, RSA_MIN_BITS,
					 RSA_MAX_BITS);
		return WEFT_OK;
	}
	default:
		return weft_errf(err, WEFT_EINVAL, "%s: %s keys are not accepted; use EC P-256, "
				 "P-384 or RSA >= %d bits", what,
				 OBJ_nid2sn(EVP_PKEY_get_base_id(pk)), RSA_MIN_BITS);
	}
}

static const EVP_MD *digest_for(EVP_PKEY *key)
{
	return EVP_PKEY_get_bits(key) == 384 && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC ?
	       EVP_sha384() : EVP_sha256();
}

static int trust_domain_valid(const char *td)
{
	size_t n = 0;

	if (td == NULL || *td == '\0')
		return 0;
	for (const char *p = td; *p; p++, n++) {
		if (n >= CA_TRUST_DOMAIN_MAX)
			return 0;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '-' || *p == '_'))
			return 0;
	}
	return 1;
}

static int cn_valid(const char *cn)
{
	size_t n = cn ? strlen(cn) : 0;

	if (n == 0 || n > CN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)cn[i] < 0x20 || (unsigned char)cn[i] > 0x7e)
			return 0;
	return 1;
}

static int random_serial(X509 *x, char *text_out)
{
	unsigned char b[SERIAL_BYTES];
	BIGNUM *bn;
	int ok;

	randombytes_buf(b, sizeof(b));
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);   /* positive, full length */
	if (text_out != NULL)
		colon_hex(b, sizeof(b), text_out);
	if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL)
		return -1;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int set_validity(X509 *x, int64_t nb, int64_t na)
{
	return ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) != NULL &&
	       ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) != NULL ? 0 : -1;
}

static int set_cn(X509_NAME *name, const char *cn)
{
	return X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
					  (const unsigned char *)cn, -1, -1, 0) == 1 ? 0 : -1;
}

/* Adds the extension of that NID, written in OpenSSL's configuration syntax. */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (e == NULL)
		return -1;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok == 1 ? 0 : -1;
}

/* A subjectAltName holding one URI, built directly (no string parsing). */
static X509_EXTENSION *uri_san_ext(const char *uri)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	X509_EXTENSION *e = NULL;

	if (gens == NULL || gen == NULL || s == NULL ||
	    ASN1_STRING_set(s, uri, (int)strlen(uri)) != 1)
		goto out;
	GENERAL_NAME_set0_value(gen, GEN_URI, s);
	s = NULL;
	if (sk_GENERAL_NAME_push(gens, gen) <= 0)
		goto out;
	gen = NULL;
	e = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
out:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return e;
}

static int add_uri_san(X509 *x, const char *uri)
{
	X509_EXTENSION *e = uri_san_ext(uri);
	int ok = e != NULL && X509_add_ext(x, e, -1) == 1;

	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* The spiffe:// URI SANs of a certificate: how many, and the first. */
static int cert_spiffe_uri(X509 *x, char *out, size_t size)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int count = 0;

	out[0] = '\0';
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_IA5STRING *s;
		int n;

		if (g->type != GEN_URI)
			continue;
		s = g->d.uniformResourceIdentifier;
		n = ASN1_STRING_length(s);
		if (n < 9 || memcmp(ASN1_STRING_get0_data(s), "spiffe://", 9) != 0)
			continue;
		if (count++ == 0)
			snprintf(out, size, "%.*s", n, (const char *)ASN1_STRING_get0_data(s));
	}
	GENERAL_NAMES_free(gens);
	return count;
}

static char *skid_text(X509 *x)
{
	const ASN1_OCTET_STRING *s = X509_get0_subject_key_id(x);
	char *t;

	if (s == NULL)
		return strdup("");
	if ((t = malloc((size_t)ASN1_STRING_length(s) * 3 + 1)) != NULL)
		colon_hex(ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s), t);
	return t;
}

static int cert_id(X509 *x, char out[CA_ID_LEN + 1])
{
	unsigned char md[20];
	unsigned int n = 0;

	if (X509_digest(x, EVP_sha1(), md, &n) != 1 || n != sizeof(md))
		return -1;
	colon_hex(md, sizeof(md), out);
	return 0;
}

/* ---- CSRs ----
 *
 * An untrusted CSR is read here without OpenSSL's X509_REQ decoder, which
 * decodes the public key through the provider decoders (slow in 3.0, and
 * contended between threads). The DER is walked by hand, every part is
 * checked, the signature is verified over the exact bytes it covers, and
 * what is kept is the SubjectPublicKeyInfo: algorithm and key bits. */

struct csr {
	EVP_PKEY *pk;
	X509_ALGOR *alg;          /* of the public key */
	ASN1_BIT_STRING *bits;    /* the public key */
};

static void csr_free(struct csr *c)
{
	EVP_PKEY_free(c->pk);
	X509_ALGOR_free(c->alg);
	ASN1_BIT_STRING_free(c->bits);
	memset(c, 0, sizeof(*c));
}

/* One DER element at *p (before end): its tag and content; *p moves past
 * it. Refuses indefinite lengths and elements longer than what is left. */
static int der_next(const unsigned char **p, const unsigned char *end, int want_tag,
		    int want_class, const unsigned char **tlv, long *tlv_len,
		    const unsigned char **content, long *content_len)
{
	const unsigned char *q = *p;
	long len = 0;
	int tag = 0, cls = 0, r;

	if (*p >= end)
		return -1;
	r = ASN1_get_object(&q, &len, &tag, &cls, end - *p);
	if ((r & 0x80) || (r & 0x01) || tag != want_tag || cls != want_class || len > end - q)
		return -1;
	if (tlv != NULL)
		*tlv = *p;
	if (tlv_len != NULL)
		*tlv_len = (q - *p) + len;
	if (content != NULL)
		*content = q;
	if (content_len != NULL)
		*content_len = len;
	*p = q + len;
	return 0;
}

/* The public key of the CSR as an EVP_PKEY; EC keys are built from their
 * curve and point directly, others go through d2i_PUBKEY. */
static int csr_key(struct csr *c, const unsigned char *spki, long spki_len, char **err)
{
	const ASN1_OBJECT *aobj = NULL;
	const void *pval = NULL;
	int ptype = 0, nid;

	X509_ALGOR_get0(&aobj, &ptype, &pval, c->alg);
	nid = OBJ_obj2nid(aobj);
	if (nid == NID_X9_62_id_ecPublicKey) {
		EVP_PKEY_CTX *pc;
		OSSL_PARAM params[3];
		int curve = ptype == V_ASN1_OBJECT ? OBJ_obj2nid(pval) : NID_undef;
		const char *name = curve != NID_undef ? OBJ_nid2sn(curve) : "with explicit parameters";
		int ok;

		if (curve != NID_X9_62_prime256v1 && curve != NID_secp384r1)
			return weft_errf(err, WEFT_EINVAL, "CSR: EC curve %s is not accepted; use P-256 "
					 "or P-384", name);
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
							     (char *)name, 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
							      (void *)ASN1_STRING_get0_data(c->bits),
							      (size_t)ASN1_STRING_length(c->bits));
		params[2] = OSSL_PARAM_construct_end();
		pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		ok = pc != NULL && EVP_PKEY_fromdata_init(pc) == 1 &&
		     EVP_PKEY_fromdata(pc, &c->pk, EVP_PKEY_PUBLIC_KEY, params) == 1;
		EVP_PKEY_CTX_free(pc);
		if (!ok)
			return weft_errf(err, WEFT_EINVAL, "CSR: its EC public key is not a point of "
					 "the curve %s", name);
	} else if (nid == NID_rsaEncryption) {
		if ((c->pk = d2i_PUBKEY(NULL, &spki, spki_len)) == NULL)
			return weft_errf(err, WEFT_EINVAL, "CSR: its RSA public key cannot be decoded");
	} else {
		return weft_errf(err, WEFT_EINVAL, "CSR: %s keys are not accepted; use EC P-256, "
				 "P-384 or RSA >= %d bits",
				 nid == NID_undef ? "unknown" : OBJ_nid2sn(nid), RSA_MIN_BITS);
	}
	return key_check(c->pk, "CSR", err);
}

static int csr_parse(const char *pem, size_t len, struct csr *out, char **err)
{
	static const char bad[] = "CSR: malformed certificate request (%s)";
	struct csr c = { 0 };
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long der_len = 0, olen, ilen, info_len, alen, spki_len, slen, tlen;
	const unsigned char *p, *oc, *ic, *info, *spki, *sc, *t, *r;
	const unsigned char *oend, *iend;
	X509_ALGOR *sigalg = NULL;
	ASN1_BIT_STRING *sig = NULL;
	ASN1_INTEGER *version = NULL;
	X509_NAME *subject = NULL;
	EVP_MD_CTX *mctx = NULL;
	const ASN1_OBJECT *sigoid = NULL;
	int rc, md_nid = NID_undef, pk_nid = NID_undef;

	memset(out, 0, sizeof(*out));
	if (pem == NULL || len == 0)
		return weft_errf(err, WEFT_EINVAL, "CSR: missing");
	if (len > CA_CSR_MAX)
		return weft_errf(err, WEFT_EINVAL, "CSR: %zu bytes is too long (at most %u)", len,
				 CA_CSR_MAX);
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	if (PEM_read_bio(bio, &name, &header, &der, &der_len) != 1 ||
	    (strcmp(name, PEM_STRING_X509_REQ) != 0 && strcmp(name, PEM_STRING_X509_REQ_OLD) != 0)) {
		rc = weft_errf(err, WEFT_EINVAL, memmem(pem, len, "-----BEGIN CERTIFICATE REQUEST"
							 "-----", 35) != NULL ?
			       "CSR: the PEM certificate request cannot be decoded" :
			       "CSR: not a PEM certificate request (\"-----BEGIN CERTIFICATE "
			       "REQUEST-----\")");
		goto out;
	}
	if (header != NULL && header[0] != '\0') {
		rc = weft_errf(err, WEFT_EINVAL, "CSR: PEM headers are not accepted");
		goto out;
	}
	/* CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, signature } */
	p = der;
	if (der_next(&p, der + der_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL, &oc, &olen) ||
	    p != der + der_len) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "not one DER sequence");
		goto out;
	}
	p = oc;
	oend = oc + olen;
	if (der_next(&p, oend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &info, &info_len, &ic, &ilen)) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "no request info");
		goto out;
	}
	if (der_next(&p, oend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &t, &tlen, NULL, NULL) ||
	    (sigalg = d2i_X509_ALGOR(NULL, &t, tlen)) == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "bad signature algorithm");
		goto out;
	}
	if (der_next(&p, oend, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, &t, &tlen, NULL, NULL) ||
	    (sig = d2i_ASN1_BIT_STRING(NULL, &t, tlen)) == NULL || p != oend) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "bad signature");
		goto out;
	}
	/* CertificationRequestInfo ::= SEQUENCE { version 0, subject, spki, [0] attributes } */
	r = ic;
	iend = ic + ilen;
	if (der_next(&r, iend, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, &t, &tlen, NULL, NULL) ||
	    (version = d2i_ASN1_INTEGER(NULL, &t, tlen)) == NULL || ASN1_INTEGER_get(version) != 0) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "version is not 1");
		goto out;
	}
	if (der_next(&r, iend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &t, &tlen, NULL, NULL) ||
	    (subject = d2i_X509_NAME(NULL, &t, tlen)) == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "bad subject");
		goto out;
	}
	if (der_next(&r, iend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &spki, &spki_len, &sc, &slen)) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "no public key");
		goto out;
	}
	if (r < iend && (der_next(&r, iend, 0, V_ASN1_CONTEXT_SPECIFIC, NULL, NULL, NULL, NULL) ||
			 r != iend)) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "bad attributes");
		goto out;
	}
	/* SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey } */
	p = sc;
	if (der_next(&p, sc + slen, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &t, &alen, NULL, NULL) ||
	    (c.alg = d2i_X509_ALGOR(NULL, &t, alen)) == NULL ||
	    der_next(&p, sc + slen, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, &t, &tlen, NULL, NULL) ||
	    (c.bits = d2i_ASN1_BIT_STRING(NULL, &t, tlen)) == NULL || p != sc + slen ||
	    ASN1_STRING_length(c.bits) <= 0) {
		rc = weft_errf(err, WEFT_EINVAL, bad, "bad public key info");
		goto out;
	}
	/* The key type is checked before the signature: no costly check of a
	 * signature under a key that would be refused anyway. */
	if ((rc = csr_key(&c, spki, spki_len, err)) != WEFT_OK)
		goto out;
	X509_ALGOR_get0(&sigoid, NULL, NULL, sigalg);
	if (OBJ_find_sigid_algs(OBJ_obj2nid(sigoid), &md_nid, &pk_nid) != 1 ||
	    (md_nid != NID_sha256 && md_nid != NID_sha384 && md_nid != NID_sha512) ||
	    pk_nid != EVP_PKEY_get_base_id(c.pk)) {
		rc = weft_errf(err, WEFT_EINVAL, "CSR: its signature algorithm is not accepted (use "
			       "ECDSA or RSA PKCS#1 v1.5 with SHA-256, SHA-384 or SHA-512)");
		goto out;
	}
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(mctx, NULL, OBJ_nid2sn(md_nid), NULL, NULL, c.pk, NULL) != 1 ||
	    EVP_DigestVerify(mctx, ASN1_STRING_get0_data(sig), (size_t)ASN1_STRING_length(sig),
			     info, (size_t)info_len) != 1) {
		rc = weft_errf(err, WEFT_EINVAL, "CSR: its signature does not verify with its "
			       "public key");
		goto out;
	}
	*out = c;
	memset(&c, 0, sizeof(c));
	rc = WEFT_OK;
out:
	csr_free(&c);
	EVP_MD_CTX_free(mctx);
	X509_ALGOR_free(sigalg);
	ASN1_BIT_STRING_free(sig);
	ASN1_INTEGER_free(version);
	X509_NAME_free(subject);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

/* ---- building a struct ca ---- */

void ca_free(struct ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->cert_pem);
	free(ca->chain_pem);
	free(ca->skid);
	X509_EXTENSION_free(ca->leaf_bc);
	X509_EXTENSION_free(ca->leaf_ku);
	X509_EXTENSION_free(ca->leaf_eku);
	X509_EXTENSION_free(ca->leaf_akid);
	free(ca);
}

/* Takes cert and key (on success and failure), checks them and builds the
 * CA. chain: what comes above cert (an intermediate) or its cross-signed
 * certificates (a root). */
static int ca_build(struct ca **out, const char *trust_domain, X509 *cert, EVP_PKEY *key,
		    const char *chain_pem, int64_t now_s, char **err)
{
	struct ca *ca = NULL;
	STACK_OF(X509) *chain = NULL;
	char uri[CA_TRUST_DOMAIN_MAX + 16];
	X509V3_CTX ctx;
	int rc, nuri;
	uint32_t ku;

	*out = NULL;
	now_s = now_or(now_s);
	if (!trust_domain_valid(trust_domain)) {
		rc = weft_errf(err, WEFT_EINVAL, "TrustDomain: \"%s\" is not a valid trust domain "
			       "(lowercase letters, digits, '.', '-', '_')",
			       trust_domain ? trust_domain : "");
		goto fail;
	}
	if ((ca = calloc(1, sizeof(*ca))) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto fail;
	}
	ca->cert = cert;
	ca->key = key;
	cert = NULL;
	key = NULL;
	snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", trust_domain);
	if (X509_check_ca(ca->cert) != 1) {
		rc = weft_errf(err, WEFT_EINVAL, "RootCert: not a CA certificate (basicConstraints "
			       "CA:TRUE is missing)");
		goto fail;
	}
	ku = X509_get_key_usage(ca->cert);
	if (!(ku & KU_KEY_CERT_SIGN)) {
		rc = weft_errf(err, WEFT_EINVAL, "RootCert: its key usage does not allow signing "
			       "certificates (keyCertSign)");
		goto fail;
	}
	if ((rc = key_check(ca->key, "PrivateKey", err)) != WEFT_OK)
		goto fail;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		rc = weft_errf(err, WEFT_EINVAL, "PrivateKey: does not match the certificate's "
			       "public key");
		goto fail;
	}
	ca->not_before = asn1_epoch(X509_get0_notBefore(ca->cert));
	ca->not_after = asn1_epoch(X509_get0_notAfter(ca->cert));
	if (ca->not_after <= now_s) {
		rc = weft_errf(err, WEFT_EINVAL, "RootCert: expired");
		goto fail;
	}
	if (ca->not_before > now_s + CA_BACKDATE) {
		rc = weft_errf(err, WEFT_EINVAL, "RootCert: not valid yet");
		goto fail;
	}
	nuri = cert_spiffe_uri(ca->cert, uri, sizeof(uri));
	if (nuri > 1 || (nuri == 1 && (strncmp(uri + 9, trust_domain, strlen(trust_domain)) != 0 ||
				       (uri[9 + strlen(trust_domain)] != '\0' &&
					uri[9 + strlen(trust_domain)] != '/')))) {
		rc = weft_errf(err, WEFT_EINVAL, "RootCert: its SPIFFE URI %s is not of the trust "
			       "domain %s", uri, trust_domain);
		goto fail;
	}
	ca->is_root = X509_check_issued(ca->cert, ca->cert) == X509_V_OK &&
		      X509_verify(ca->cert, X509_get0_pubkey(ca->cert)) == 1;
	if (cert_id(ca->cert, ca->id) != 0 || (ca->cert_pem = pem_of_cert(ca->cert)) == NULL ||
	    (ca->skid = skid_text(ca->cert)) == NULL ||
	    (ca->chain_pem = strdup(ca->is_root ? "" : ca->cert_pem)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto fail;
	}
	if ((rc = certs_parse(chain_pem, "ChainPEM", &chain, err)) != WEFT_OK)
		goto fail;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		char *p;

		if (ca->is_root) {
			if ((p = pem_of_cert(c)) == NULL) {
				rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
				goto fail;
			}
			rc = ca_chain_append(ca, p, err);
			free(p);
			if (rc != WEFT_OK)
				goto fail;
			continue;
		}
		if (i == 0 && X509_verify(ca->cert, X509_get0_pubkey(c)) != 1) {
			rc = weft_errf(err, WEFT_EINVAL, "ChainPEM: its first certificate did not "
				       "sign this CA's certificate");
			goto fail;
		}
		if ((p = pem_of_cert(c)) == NULL || str_append(&ca->chain_pem, p) != 0) {
			free(p);
			rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
			goto fail;
		}
		free(p);
	}
	X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, NULL, 0);
	ca->leaf_bc = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE");
	ca->leaf_ku = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
					  "critical,digitalSignature,keyEncipherment");
	ca->leaf_eku = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
	ca->leaf_akid = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
					    "keyid:always");
	if (!ca->leaf_bc || !ca->leaf_ku || !ca->leaf_eku || !ca->leaf_akid) {
		rc = weft_errf(err, WEFT_EINVAL, "RootCert: cannot derive the leaf extensions (has "
			       "it a subject key identifier?)");
		goto fail;
	}
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	*out = ca;
	return WEFT_OK;
fail:
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	EVP_PKEY_free(key);
	ca_free(ca);
	ERR_clear_error();
	return rc;
}

int ca_root_create(struct ca **out, const char *trust_domain, const char *common_name,
		   int64_t ttl_s, char **err)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509V3_CTX ctx;
	char serial[SERIAL_BYTES * 3], cn[CN_MAX + 1], uri[CA_TRUST_DOMAIN_MAX + 16];
	int64_t now = now_or(0);
	int rc;

	*out = NULL;
	if (!trust_domain_valid(trust_domain))
		return weft_errf(err, WEFT_EINVAL, "TrustDomain: \"%s\" is not a valid trust domain "
				 "(lowercase letters, digits, '.', '-', '_')",
				 trust_domain ? trust_domain : "");
	if (common_name != NULL && !cn_valid(common_name))
		return weft_errf(err, WEFT_EINVAL, "CommonName: 1 to %d printable ASCII characters",
				 CN_MAX);
	if (ttl_s < 0)
		return weft_errf(err, WEFT_EINVAL, "RootCertTTL: must not be negative");
	if (ttl_s == 0)
		ttl_s = CA_ROOT_TTL_DEFAULT;
	if ((key = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL) {
		rc = weft_errf(err, WEFT_EIO, "ca: cannot generate a P-256 key");
		goto out;
	}
	if (random_serial(x, serial) != 0)
		goto fail;
	if (common_name == NULL) {
		/* Distinct names keep old and new roots apart during a rotation. */
		char h[17];

		for (int i = 0; i < 8; i++)
			snprintf(h + 2 * i, 3, "%c%c", serial[3 * i], serial[3 * i + 1]);
		snprintf(cn, sizeof(cn), "Weft CA %s", h);
	} else {
		snprintf(cn, sizeof(cn), "%s", common_name);
	}
	snprintf(uri, sizeof(uri), "spiffe://%s", trust_domain);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    set_cn(X509_get_subject_name(x), cn) != 0 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    set_validity(x, now - CA_BACKDATE, now + ttl_s) != 0 || X509_set_pubkey(x, key) != 1 ||
	    X509V3_set_issuer_pkey(&ctx, key) != 1 ||
	    add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:2") != 0 ||
	    add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") != 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") != 0 ||
	    add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") != 0 ||
	    add_uri_san(x, uri) != 0 || X509_sign(x, key, EVP_sha256()) <= 0)
		goto fail;
	rc = ca_build(out, trust_domain, x, key, NULL, now, err);
	x = NULL;
	key = NULL;
	goto out;
fail:
	rc = weft_errf(err, WEFT_EIO, "ca: cannot build the root certificate");
out:
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int ca_load(struct ca **out, const char *trust_domain, const char *cert_pem,
	    const char *key_pem, const char *chain_pem, int64_t now_s, char **err)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	size_t klen = key_pem ? strlen(key_pem) : 0;
	int rc;

	*out = NULL;
	if ((rc = cert_parse_one(cert_pem, "RootCert", &cert, err)) != WEFT_OK)
		return rc;
	if (klen == 0 || klen > CA_PEM_MAX) {
		rc = weft_errf(err, WEFT_EINVAL, "PrivateKey: %s", klen ? "too long" : "missing");
		goto out;
	}
	if ((bio = BIO_new_mem_buf(key_pem, (int)klen)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto out;
	}
	/* The message never quotes the key. */
	if ((key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "PrivateKey: not an unencrypted PEM private key");
		goto out;
	}
	rc = ca_build(out, trust_domain, cert, key, chain_pem, now_s, err);
	cert = NULL;
	key = NULL;
out:
	BIO_free(bio);
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int ca_load_sealed(struct ca **out, const char *trust_domain, const char *cert_pem,
		   const char *sealed_key, const char *chain_pem, const struct sealed_key *sk,
		   int64_t now_s, char **err)
{
	unsigned char *plain = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (sealed_key == NULL)
		return weft_errf(err, WEFT_EINVAL, "PrivateKey: missing");
	rc = sealed_open(sk, sealed_key, strlen(sealed_key), &plain, &len, err);
	if (rc != WEFT_OK)
		return rc;
	rc = ca_load(out, trust_domain, cert_pem, (const char *)plain, chain_pem, now_s, err);
	sealed_plain_free(plain, len);
	return rc;
}

int ca_key_seal(const struct ca *ca, const struct sealed_key *sk, char **sealed_out, char **err)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	BUF_MEM *bm = NULL;
	int rc;

	*sealed_out = NULL;
	if (bio == NULL || PEM_write_bio_PrivateKey(bio, ca->key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    BIO_get_mem_ptr(bio, &bm) != 1) {
		rc = weft_errf(err, WEFT_EIO, "ca: cannot encode the private key");
		goto out;
	}
	rc = sealed_seal(sk, bm->data, bm->length, sealed_out, err);
out:
	BIO_free(bio);   /* secure memory: wiped */
	ERR_clear_error();
	return rc;
}

const char *ca_cert_pem(const struct ca *ca) { return ca->cert_pem; }
const char *ca_chain_pem(const struct ca *ca) { return ca->chain_pem; }
const char *ca_trust_domain(const struct ca *ca) { return ca->trust_domain; }
const char *ca_id(const struct ca *ca) { return ca->id; }
const char *ca_signing_key_id(const struct ca *ca) { return ca->skid; }
int ca_is_root(const struct ca *ca) { return ca->is_root; }
int64_t ca_not_before(const struct ca *ca) { return ca->not_before; }
int64_t ca_not_after(const struct ca *ca) { return ca->not_after; }

int ca_chain_append(struct ca *ca, const char *cert_pem, char **err)
{
	X509 *x = NULL;
	char *p = NULL;
	int rc;

	if ((rc = cert_parse_one(cert_pem, "ChainPEM", &x, err)) != WEFT_OK)
		return rc;
	if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(ca->cert)) != 0 ||
	    EVP_PKEY_eq(X509_get0_pubkey(x), ca->key) != 1) {
		rc = weft_errf(err, WEFT_EINVAL, "ChainPEM: not a certificate of this CA (its "
			       "subject or public key differs)");
		goto out;
	}
	if ((p = pem_of_cert(x)) == NULL || str_append(&ca->chain_pem, p) != 0) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto out;
	}
	rc = WEFT_OK;
out:
	free(p);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

/* ---- intermediates ---- */

static int csr_build(EVP_PKEY *key, const char *cn, const char *san, char **csr_out)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *e = NULL;
	BIO *bio = NULL;
	BUF_MEM *bm = NULL;
	int rc = -1;

	if (req == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1)
		goto out;
	if (cn != NULL && set_cn(X509_REQ_get_subject_name(req), cn) != 0)
		goto out;
	if (san != NULL) {
		X509V3_CTX ctx;

		X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
		    (e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san)) == NULL ||
		    sk_X509_EXTENSION_push(exts, e) <= 0)
			goto out;
		e = NULL;
		if (X509_REQ_add_extensions(req, exts) != 1)
			goto out;
	}
	if (X509_REQ_sign(req, key, digest_for(key)) <= 0 || (bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509_REQ(bio, req) != 1 || BIO_get_mem_ptr(bio, &bm) != 1 ||
	    (*csr_out = malloc(bm->length + 1)) == NULL)
		goto out;
	memcpy(*csr_out, bm->data, bm->length);
	(*csr_out)[bm->length] = '\0';
	rc = 0;
out:
	X509_EXTENSION_free(e);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	BIO_free(bio);
	X509_REQ_free(req);
	return rc;
}

int ca_pending_create(struct ca_pending **out, const char *trust_domain,
		      const char *common_name, char **err)
{
	struct ca_pending *p = NULL;
	char uri[CA_TRUST_DOMAIN_MAX + 16];
	int rc;

	*out = NULL;
	if (!trust_domain_valid(trust_domain))
		return weft_errf(err, WEFT_EINVAL, "TrustDomain: \"%s\" is not a valid trust domain",
				 trust_domain ? trust_domain : "");
	if (!cn_valid(common_name))
		return weft_errf(err, WEFT_EINVAL, "CommonName: 1 to %d printable ASCII characters",
				 CN_MAX);
	snprintf(uri, sizeof(uri), "URI:spiffe://%s", trust_domain);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	snprintf(p->trust_domain, sizeof(p->trust_domain), "%s", trust_domain);
	if ((p->key = EVP_EC_gen("P-256")) == NULL ||
	    csr_build(p->key, common_name, uri, &p->csr_pem) != 0) {
		rc = weft_errf(err, WEFT_EIO, "ca: cannot make the intermediate's key and CSR");
		ca_pending_free(p);
		ERR_clear_error();
		return rc;
	}
	*out = p;
	return WEFT_OK;
}

const char *ca_pending_csr(const struct ca_pending *p) { return p->csr_pem; }

void ca_pending_free(struct ca_pending *p)
{
	if (p == NULL)
		return;
	EVP_PKEY_free(p->key);
	free(p->csr_pem);
	free(p);
}

int ca_pending_complete(struct ca_pending *p, const char *cert_pem, const char *parent_chain_pem,
			struct ca **out, char **err)
{
	X509 *x = NULL;
	int rc;

	*out = NULL;
	if ((rc = cert_parse_one(cert_pem, "IntermediateCert", &x, err)) != WEFT_OK)
		return rc;
	if (EVP_PKEY_eq(X509_get0_pubkey(x), p->key) != 1) {
		X509_free(x);
		ERR_clear_error();
		return weft_errf(err, WEFT_EINVAL, "IntermediateCert: issued for another key than "
				 "the pending one");
	}
	if (!EVP_PKEY_up_ref(p->key)) {
		X509_free(x);
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	}
	return ca_build(out, p->trust_domain, x, p->key, parent_chain_pem, 0, err);
}

/* Copies a SubjectPublicKeyInfo as it is (algorithm, parameters, key
 * bits) without decoding the key again: X509_set_pubkey re-encodes and
 * re-decodes it, which costs more than the signature in OpenSSL 3.0. Only
 * the parameter forms of the accepted keys occur: a curve OID or none. */
static int spki_copy(X509_PUBKEY *dst, const struct csr *c)
{
	const ASN1_OBJECT *alg = NULL;
	ASN1_OBJECT *aobj = NULL;
	const void *pval = NULL;
	void *pcopy = NULL;
	unsigned char *enc = NULL;
	int blen = ASN1_STRING_length(c->bits), ptype = V_ASN1_UNDEF;

	X509_ALGOR_get0(&alg, &ptype, &pval, c->alg);
	if (ptype != V_ASN1_OBJECT && ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
		return -1;
	if (ptype == V_ASN1_OBJECT && (pcopy = OBJ_dup(pval)) == NULL)
		return -1;
	if ((aobj = OBJ_dup(alg)) == NULL ||
	    (enc = OPENSSL_memdup(ASN1_STRING_get0_data(c->bits), (size_t)blen)) == NULL ||
	    X509_PUBKEY_set0_param(dst, aobj, ptype, pcopy, enc, blen) != 1) {
		ASN1_OBJECT_free(aobj);
		ASN1_OBJECT_free(pcopy);
		OPENSSL_free(enc);
		return -1;
	}
	return 0;
}

/* The part shared by every certificate this CA issues: serial, names,
 * validity, public key (from spki, or else pub). */
static int issue_common(const struct ca *ca, X509 *x, const char *cn, EVP_PKEY *pub,
			const struct csr *spki, int64_t nb, int64_t na, char *serial_text)
{
	if (X509_set_version(x, X509_VERSION_3) != 1 || random_serial(x, serial_text) != 0 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    (cn != NULL && set_cn(X509_get_subject_name(x), cn) != 0) ||
	    set_validity(x, nb, na) != 0)
		return -1;
	if (spki != NULL)
		return spki_copy(X509_get_X509_PUBKEY(x), spki);
	return X509_set_pubkey(x, pub) == 1 ? 0 : -1;
}

int ca_sign_intermediate(const struct ca *parent, const char *csr_pem, size_t csr_len,
			 const char *common_name, int64_t ttl_s, char **cert_pem_out, char **err)
{
	struct csr req = { 0 };
	X509 *x = NULL;
	X509V3_CTX ctx;
	char uri[CA_TRUST_DOMAIN_MAX + 16];
	int64_t now = now_or(0), na;
	int rc;

	*cert_pem_out = NULL;
	if (!cn_valid(common_name))
		return weft_errf(err, WEFT_EINVAL, "CommonName: 1 to %d printable ASCII characters",
				 CN_MAX);
	if (ttl_s < 0)
		return weft_errf(err, WEFT_EINVAL, "IntermediateCertTTL: must not be negative");
	if (ttl_s == 0)
		ttl_s = CA_INTERMEDIATE_TTL_DEFAULT;
	if (now - CA_BACKDATE >= parent->not_after)
		return weft_errf(err, WEFT_EINVAL, "ca: the signing CA %s has expired", parent->id);
	na = now + ttl_s < parent->not_after ? now + ttl_s : parent->not_after;
	if ((rc = csr_parse(csr_pem, csr_len, &req, err)) != WEFT_OK)
		return rc;
	snprintf(uri, sizeof(uri), "spiffe://%s", parent->trust_domain);
	if ((x = X509_new()) == NULL ||
	    issue_common(parent, x, common_name, NULL, &req,
			 now - CA_BACKDATE, na, NULL) != 0)
		goto fail;
	X509V3_set_ctx(&ctx, parent->cert, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
	    add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") != 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") != 0 ||
	    X509_add_ext(x, parent->leaf_akid, -1) != 1 || add_uri_san(x, uri) != 0 ||
	    X509_sign(x, parent->key, digest_for(parent->key)) <= 0 ||
	    (*cert_pem_out = pem_of_cert(x)) == NULL)
		goto fail;
	rc = WEFT_OK;
	goto out;
fail:
	rc = weft_errf(err, WEFT_EIO, "ca: cannot build the intermediate certificate");
out:
	X509_free(x);
	csr_free(&req);
	ERR_clear_error();
	return rc;
}

/* ---- rotation ---- */

int ca_cross_sign(const struct ca *old_root, const struct ca *new_root, int64_t ttl_s,
		  char **cert_pem_out, char **err)
{
	X509 *x = NULL;
	int64_t now = now_or(0), na;
	int rc;

	*cert_pem_out = NULL;
	if (!old_root->is_root || !new_root->is_root)
		return weft_errf(err, WEFT_EINVAL, "ca: cross-signing takes two roots");
	if (ttl_s < 0)
		return weft_errf(err, WEFT_EINVAL, "ca: the cross-signed TTL must not be negative");
	if (ttl_s == 0)
		ttl_s = CROSS_TTL_DEFAULT;
	if (now - CA_BACKDATE >= old_root->not_after)
		return weft_errf(err, WEFT_EINVAL, "ca: the old root %s has expired", old_root->id);
	na = now + ttl_s < old_root->not_after ? now + ttl_s : old_root->not_after;
	if ((x = X509_new()) == NULL ||
	    issue_common(old_root, x, NULL, new_root->key, NULL, now - CA_BACKDATE, na, NULL) != 0 ||
	    X509_set_subject_name(x, X509_get_subject_name(new_root->cert)) != 1)
		goto fail;
	/* The new root's extensions, but the old root as the authority. */
	for (int i = 0; i < X509_get_ext_count(new_root->cert); i++) {
		X509_EXTENSION *e = X509_get_ext(new_root->cert, i);

		if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_authority_key_identifier)
			continue;
		if (X509_add_ext(x, e, -1) != 1)
			goto fail;
	}
	if (X509_add_ext(x, old_root->leaf_akid, -1) != 1 ||
	    X509_sign(x, old_root->key, digest_for(old_root->key)) <= 0 ||
	    (*cert_pem_out = pem_of_cert(x)) == NULL)
		goto fail;
	rc = WEFT_OK;
	goto out;
fail:
	rc = weft_errf(err, WEFT_EIO, "ca: cannot build the cross-signed certificate");
out:
	X509_free(x);
	ERR_clear_error();
	return rc;
}

/* ---- leaves ---- */

int ca_spiffe_service_uri(const char *trust_domain, const char *mesh, const char *zone,
			  const char *service, char **uri_out, char **err)
{
	size_t n;

	*uri_out = NULL;
	if (!trust_domain_valid(trust_domain))
		return weft_errf(err, WEFT_EINVAL, "TrustDomain: \"%s\" is not a valid trust domain",
				 trust_domain ? trust_domain : "");
	if (!name_valid(mesh, CA_NAME_MAX + 1))
		return weft_errf(err, WEFT_EINVAL, "Mesh: \"%s\" is not a valid name",
				 mesh ? mesh : "");
	if (!name_valid(zone, CA_NAME_MAX + 1))
		return weft_errf(err, WEFT_EINVAL, "Zone: \"%s\" is not a valid name",
				 zone ? zone : "");
	if (!name_valid(service, CA_NAME_MAX + 1))
		return weft_errf(err, WEFT_EINVAL, "Service: \"%s\" is not a valid name",
				 service ? service : "");
	n = strlen(trust_domain) + strlen(mesh) + strlen(zone) + strlen(service) + 32;
	if ((*uri_out = malloc(n)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	snprintf(*uri_out, n, "spiffe://%s/ns/%s/dc/%s/svc/%s", trust_domain, mesh, zone, service);
	return WEFT_OK;
}

void ca_leaf_clear(struct ca_leaf *leaf)
{
	if (leaf == NULL)
		return;
	free(leaf->cert_pem);
	free(leaf->chain_pem);
	free(leaf->service_uri);
	free(leaf->serial);
	memset(leaf, 0, sizeof(*leaf));
}

int ca_sign_leaf(const struct ca *ca, const char *csr_pem, size_t csr_len, const char *service,
		 const char *spiffe_uri, int64_t ttl_s, int64_t now_s, struct ca_leaf *out,
		 char **err)
{
	struct csr req = { 0 };
	X509 *x = NULL;
	X509V3_CTX ctx;
	char serial[SERIAL_BYTES * 3];
	size_t tdl = strlen(ca->trust_domain);
	int64_t nb, na;
	int rc;

	memset(out, 0, sizeof(*out));
	now_s = now_or(now_s);
	if (!name_valid(service, CA_NAME_MAX + 1))
		return weft_errf(err, WEFT_EINVAL, "Service: \"%s\" is not a valid name",
				 service ? service : "");
	if (spiffe_uri == NULL || strlen(spiffe_uri) > 1024 ||
	    strncmp(spiffe_uri, "spiffe://", 9) != 0 ||
	    strncmp(spiffe_uri + 9, ca->trust_domain, tdl) != 0 || spiffe_uri[9 + tdl] != '/')
		return weft_errf(err, WEFT_EINVAL, "ServiceURI: \"%s\" is not a SPIFFE ID of the "
				 "trust domain %s", spiffe_uri ? spiffe_uri : "", ca->trust_domain);
	if (ttl_s < 0)
		return weft_errf(err, WEFT_EINVAL, "LeafCertTTL: must not be negative");
	if (ttl_s == 0)
		ttl_s = CA_LEAF_TTL_DEFAULT;
	nb = now_s - CA_BACKDATE;
	if (nb >= ca->not_after)
		return weft_errf(err, WEFT_EINVAL, "ca: the signing CA %s has expired", ca->id);
	na = now_s + ttl_s < ca->not_after ? now_s + ttl_s : ca->not_after;
	if ((rc = csr_parse(csr_pem, csr_len, &req, err)) != WEFT_OK)
		return rc;
	/* Only the CSR's public key is used from here on. */
	if ((x = X509_new()) == NULL ||
	    issue_common(ca, x, service, NULL, &req, nb, na, serial) != 0)
		goto fail;
	X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
	if (X509_add_ext(x, ca->leaf_bc, -1) != 1 || X509_add_ext(x, ca->leaf_ku, -1) != 1 ||
	    X509_add_ext(x, ca->leaf_eku, -1) != 1 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") != 0 ||
	    X509_add_ext(x, ca->leaf_akid, -1) != 1 || add_uri_san(x, spiffe_uri) != 0 ||
	    X509_sign(x, ca->key, digest_for(ca->key)) <= 0)
		goto fail;
	if ((out->cert_pem = pem_of_cert(x)) == NULL ||
	    (out->chain_pem = strdup(ca->chain_pem)) == NULL ||
	    (out->service_uri = strdup(spiffe_uri)) == NULL ||
	    (out->serial = strdup(serial)) == NULL) {
		ca_leaf_clear(out);
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto out;
	}
	out->not_before = nb;
	out->not_after = na;
	rfc3339(nb, out->valid_after, sizeof(out->valid_after));
	rfc3339(na, out->valid_before, sizeof(out->valid_before));
	rc = WEFT_OK;
	goto out;
fail:
	rc = weft_errf(err, WEFT_EIO, "ca: cannot build the leaf certificate");
out:
	X509_free(x);
	csr_free(&req);
	ERR_clear_error();
	return rc;
}

/* ---- trust bundle ---- */

struct bundle_root {
	char id[CA_ID_LEN + 1];
	char *pem;
	int active;
	int64_t not_after;
};

struct ca_bundle {
	struct bundle_root roots[BUNDLE_MAX];
	size_t n;
};

struct ca_bundle *ca_bundle_new(void)
{
	return calloc(1, sizeof(struct ca_bundle));
}

void ca_bundle_free(struct ca_bundle *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->roots[i].pem);
	free(b);
}

int ca_bundle_add(struct ca_bundle *b, const char *root_pem, int active, char **err)
{
	struct bundle_root r = { .active = active != 0 };
	X509 *x = NULL;
	int rc;

	if ((rc = cert_parse_one(root_pem, "RootCert", &x, err)) != WEFT_OK)
		return rc;
	if (X509_check_ca(x) != 1 || X509_check_issued(x, x) != X509_V_OK ||
	    X509_verify(x, X509_get0_pubkey(x)) != 1) {
		rc = weft_errf(err, WEFT_EINVAL, "RootCert: not a self-signed CA certificate");
		goto out;
	}
	if (cert_id(x, r.id) != 0) {
		rc = weft_errf(err, WEFT_EIO, "ca: cannot hash the root");
		goto out;
	}
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->roots[i].id, r.id) == 0) {
			rc = weft_errf(err, WEFT_EEXIST, "RootCert: root %s is already trusted", r.id);
			goto out;
		}
	if (b->n == BUNDLE_MAX) {
		rc = weft_errf(err, WEFT_ETOOBIG, "ca: a trust bundle holds at most %d roots",
			       BUNDLE_MAX);
		goto out;
	}
	r.not_after = asn1_epoch(X509_get0_notAfter(x));
	if ((r.pem = pem_of_cert(x)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto out;
	}
	if (r.active)
		for (size_t i = 0; i < b->n; i++)
			b->roots[i].active = 0;
	b->roots[b->n++] = r;
	rc = WEFT_OK;
out:
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int ca_bundle_remove(struct ca_bundle *b, const char *id, char **err)
{
	for (size_t i = 0; i < b->n; i++) {
		if (strcmp(b->roots[i].id, id) != 0)
			continue;
		if (b->roots[i].active)
			return weft_errf(err, WEFT_ECONFLICT, "ca: root %s is the active root", id);
		free(b->roots[i].pem);
		memmove(&b->roots[i], &b->roots[i + 1], (b->n - i - 1) * sizeof(b->roots[0]));
		b->n--;
		return WEFT_OK;
	}
	return weft_errf(err, WEFT_ENOENT, "ca: no root %s in the trust bundle", id);
}

size_t ca_bundle_count(const struct ca_bundle *b) { return b->n; }

int ca_bundle_get(const struct ca_bundle *b, size_t i, const char **id, const char **pem,
		  int *active, int64_t *not_after)
{
	if (i >= b->n)
		return WEFT_ENOENT;
	if (id)
		*id = b->roots[i].id;
	if (pem)
		*pem = b->roots[i].pem;
	if (active)
		*active = b->roots[i].active;
	if (not_after)
		*not_after = b->roots[i].not_after;
	return WEFT_OK;
}

const char *ca_bundle_active_id(const struct ca_bundle *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->roots[i].active)
			return b->roots[i].id;
	return NULL;
}

char *ca_bundle_pem(const struct ca_bundle *b)
{
	char *s = strdup("");

	for (size_t i = 0; s != NULL && i < b->n; i++)
		if (str_append(&s, b->roots[i].pem) != 0) {
			free(s);
			return NULL;
		}
	return s;
}

int ca_cert_id(const char *cert_pem, char out[CA_ID_LEN + 1], char **err)
{
	X509 *x = NULL;
	int rc;

	if ((rc = cert_parse_one(cert_pem, "Certificate", &x, err)) != WEFT_OK)
		return rc;
	rc = cert_id(x, out) == 0 ? WEFT_OK :
	     weft_errf(err, WEFT_EIO, "ca: cannot hash the certificate");
	X509_free(x);
	ERR_clear_error();
	return rc;
}

/* ---- client side ---- */

static EVP_PKEY *key_generate(const char *type)
{
	if (strcmp(type, "ec-p256") == 0)
		return EVP_EC_gen("P-256");
	if (strcmp(type, "ec-p384") == 0)
		return EVP_EC_gen("P-384");
	if (strcmp(type, "ec-p521") == 0)
		return EVP_EC_gen("P-521");
	if (strcmp(type, "rsa-1024") == 0)
		return EVP_RSA_gen(1024);
	if (strcmp(type, "rsa-2048") == 0)
		return EVP_RSA_gen(2048);
	if (strcmp(type, "rsa-3072") == 0)
		return EVP_RSA_gen(3072);
	if (strcmp(type, "rsa-4096") == 0)
		return EVP_RSA_gen(4096);
	return NULL;
}

int ca_csr_create(const char *key_type, const char *cn, const char *san, char **key_pem_out,
		  char **csr_pem_out, char **err)
{
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	BUF_MEM *bm = NULL;
	int rc;

	*key_pem_out = NULL;
	*csr_pem_out = NULL;
	if (key_type == NULL || (key = key_generate(key_type)) == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "KeyType: \"%s\" is not one of ec-p256, ec-p384, "
			       "rsa-2048, rsa-3072, rsa-4096", key_type ? key_type : "");
		goto out;
	}
	if (csr_build(key, cn, san, csr_pem_out) != 0) {
		rc = weft_errf(err, WEFT_EINVAL, "ca: cannot build the CSR (is the SAN \"%s\" in "
			       "OpenSSL's syntax, e.g. URI:spiffe://...?)", san ? san : "");
		goto out;
	}
	if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    BIO_get_mem_ptr(bio, &bm) != 1 || (*key_pem_out = malloc(bm->length + 1)) == NULL) {
		rc = weft_errf(err, WEFT_EIO, "ca: cannot encode the new private key");
		goto out;
	}
	memcpy(*key_pem_out, bm->data, bm->length);
	(*key_pem_out)[bm->length] = '\0';
	rc = WEFT_OK;
out:
	if (rc != WEFT_OK) {
		free(*csr_pem_out);
		*csr_pem_out = NULL;
	}
	BIO_free(bio);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

void ca_secret_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}
