/* libFuzzer target: leaf and intermediate signing from an untrusted CSR.
 *
 * Each input is handed to ca_sign_leaf as the CSR PEM (any bytes, no NUL
 * terminator), then to ca_sign_intermediate. Whatever is signed must carry
 * exactly the SPIFFE ID the caller chose as its only SAN and the service as
 * its CN; every refusal must say why. Seeds: tests/fuzz/corpus/csr/ (valid
 * CSRs of each accepted key type, refused key types, broken PEM). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "err.h"

#define TD "fuzz.example"
#define URI "spiffe://" TD "/ns/default/dc/dc1/svc/web"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ca *root;

static void init(void)
{
	if (sodium_init() < 0 || ca_root_create(&root, TD, "Fuzz CA", 0, NULL) != WEFT_OK)
		abort();
}

static void check_leaf(const struct ca_leaf *l)
{
	BIO *b = BIO_new_mem_buf(l->cert_pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	GENERAL_NAMES *g;
	const GENERAL_NAME *n;
	char cn[64];

	if (x == NULL || strcmp(l->service_uri, URI) != 0)
		abort();
	g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (g == NULL || sk_GENERAL_NAME_num(g) != 1)
		abort();
	n = sk_GENERAL_NAME_value(g, 0);
	if (n->type != GEN_URI || ASN1_STRING_length(n->d.uniformResourceIdentifier) !=
	    (int)strlen(URI) || memcmp(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier), URI,
				       strlen(URI)) != 0)
		abort();
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
				      sizeof(cn)) != 3 || strcmp(cn, "web") != 0)
		abort();
	if (X509_check_ca(x) != 0)
		abort();
	GENERAL_NAMES_free(g);
	X509_free(x);
	BIO_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_leaf leaf;
	char *err = NULL, *cert = NULL;

	if (root == NULL)
		init();
	if (ca_sign_leaf(root, (const char *)data, size, "web", URI, 0, 0, &leaf, &err) ==
	    WEFT_OK) {
		if (err != NULL)
			abort();
		check_leaf(&leaf);
		ca_leaf_clear(&leaf);
	} else if (err == NULL || strncmp(err, "CSR:", 4) != 0) {
		abort();   /* every refusal of a CSR says so */
	}
	free(err);
	err = NULL;
	if (ca_sign_intermediate(root, (const char *)data, size, "Fuzz intermediate", 0, &cert,
				 &err) == WEFT_OK) {
		if (cert == NULL || err != NULL)
			abort();
	} else if (err == NULL) {
		abort();
	}
	free(cert);
	free(err);
	ERR_clear_error();
	return 0;
}
