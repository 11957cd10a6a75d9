#include "tlsfiles.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <time.h>

/* Refuses to prompt for a passphrase: the server runs unattended. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static void time_text(const ASN1_TIME *t, char *out, size_t len)
{
	BIO *mem = BIO_new(BIO_s_mem());
	int n = 0;

	out[0] = '\0';
	if (mem == NULL)
		return;
	if (ASN1_TIME_print(mem, t) == 1)
		n = BIO_read(mem, out, (int)len - 1);
	out[n > 0 ? n : 0] = '\0';
	BIO_free(mem);
}

static void warn_validity(const X509 *leaf, const char *cert_path)
{
	const ASN1_TIME *not_after = X509_get0_notAfter(leaf);
	time_t soon = time(NULL) + 14 * 24 * 3600;
	char until[64];

	time_text(not_after, until, sizeof(until));
	if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
		log_warnx("tls", "certificate is not valid yet file=%s", cert_path);
	if (X509_cmp_current_time(not_after) < 0)
		log_warnx("tls", "certificate has EXPIRED: clients will refuse it file=%s not_after=\"%s\"",
			  cert_path, until);
	else if (X509_cmp_time(not_after, &soon) < 0)
		log_warnx("tls", "certificate expires within 14 days file=%s not_after=\"%s\"",
			  cert_path, until);
	else
		log_info("tls", "certificate file=%s not_after=\"%s\"", cert_path, until);
}

int tlsfiles_check(const char *cert_path, const char *key_path, char **err)
{
	BIO *bio = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	int rc = WEFT_OK;

	bio = BIO_new_file(cert_path, "r");
	if (bio == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "tls-cert: cannot open %s: %s", cert_path,
			       strerror(errno));
		goto out;
	}
	leaf = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	bio = NULL;
	if (leaf == NULL) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "tls-cert: %s holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
			       cert_path);
		goto out;
	}
	bio = BIO_new_file(key_path, "r");
	if (bio == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "tls-key: cannot open %s: %s", key_path,
			       strerror(errno));
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (key == NULL) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "tls-key: %s holds no unencrypted PEM private key (an encrypted key "
			       "needs a passphrase, which the server cannot ask for)", key_path);
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "tls-key: %s does not match the first certificate in %s", key_path,
			       cert_path);
		goto out;
	}
	warn_validity(leaf, cert_path);
out:
	ERR_clear_error();
	BIO_free(bio);
	EVP_PKEY_free(key);
	X509_free(leaf);
	return rc;
}
