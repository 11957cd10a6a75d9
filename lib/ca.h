/* The mesh certificate authority: roots, intermediates, leaf signing from
 * CSRs, cross-signing for root rotation, trust bundles (docs/ca.md).
 *
 * A struct ca is a CA certificate with its private key (EC P-256/P-384 or
 * RSA >= 2048) and the chain handed out with every leaf it signs: nothing
 * for a root, the intermediate itself (and what lies between it and its
 * root) for an intermediate, plus any cross-signed certificate added with
 * ca_chain_append during a rotation.
 *
 * The private key never leaves this module in clear: ca_key_seal gives it
 * sealed (lib/sealed.h) for storage, ca_load/ca_load_sealed take it back.
 * Error messages never quote a key.
 *
 * Leaf signing takes ONLY the public key of a CSR, after checking the CSR's
 * signature and key type; the subject, SANs and extensions it asks for are
 * ignored. The caller computes the SPIFFE ID (ca_spiffe_service_uri).
 *
 * Thread safety: a struct ca may sign from several threads at once once
 * built; ca_chain_append must not run concurrently with signing. */
#ifndef WEFT_CA_H
#define WEFT_CA_H

#include <stddef.h>
#include <stdint.h>

#include "sealed.h"

#define CA_CSR_MAX (16u * 1024u)          /* longest CSR PEM accepted */
#define CA_PEM_MAX (256u * 1024u)         /* longest certificate / chain / key PEM */
#define CA_ROOT_TTL_DEFAULT (10 * 365 * 86400LL)
#define CA_INTERMEDIATE_TTL_DEFAULT (365 * 86400LL)
#define CA_LEAF_TTL_DEFAULT (24 * 3600LL)
#define CA_BACKDATE 60                    /* leaves are valid from a minute ago */
#define CA_ROOT_PATHLEN 2                 /* root -> cross-signed -> intermediate -> leaf */
#define CA_ID_LEN 59                      /* "aa:bb:...": 20 bytes in colon hex */
#define CA_NAME_MAX 63                    /* mesh, zone, service: DNS label size */
#define CA_TRUST_DOMAIN_MAX 253

struct ca;

/* A new root: EC P-256 key, self-signed, valid from now - CA_BACKDATE for
 * ttl_s seconds (0: CA_ROOT_TTL_DEFAULT), subject CN common_name (NULL:
 * "Weft CA <16 hex digits>"), CA:TRUE pathlen CA_ROOT_PATHLEN, key usage
 * keyCertSign/cRLSign/digitalSignature, SKID/AKID, URI SAN
 * spiffe://<trust_domain>. */
int ca_root_create(struct ca **out, const char *trust_domain, const char *common_name,
		   int64_t ttl_s, char **err);

/* A CA from PEM: its certificate, its private key (unencrypted PKCS#8, or
 * traditional EC/RSA) and, for an intermediate, the chain above it up to
 * (not including) the root; chain_pem may be NULL. Checks: the certificate
 * is a CA (basicConstraints CA:TRUE), may sign certificates (key usage),
 * is valid at now_s (0: the current time), the key is EC P-256/P-384 or
 * RSA >= 2048 and matches it; a spiffe:// URI SAN, if present, names
 * trust_domain. A self-signed certificate is a root (ca_is_root). This is
 * how an operator's own ("provided") root is loaded. */
int ca_load(struct ca **out, const char *trust_domain, const char *cert_pem,
	    const char *key_pem, const char *chain_pem, int64_t now_s, char **err);
/* The same with the key sealed by ca_key_seal. */
int ca_load_sealed(struct ca **out, const char *trust_domain, const char *cert_pem,
		   const char *sealed_key, const char *chain_pem, const struct sealed_key *sk,
		   int64_t now_s, char **err);
void ca_free(struct ca *ca);

/* The private key, sealed under sk, to store beside ca_cert_pem. */
int ca_key_seal(const struct ca *ca, const struct sealed_key *sk, char **sealed_out, char **err);

/* Borrowed strings, valid until ca_free. */
const char *ca_cert_pem(const struct ca *ca);
const char *ca_chain_pem(const struct ca *ca);   /* "" when empty */
const char *ca_trust_domain(const struct ca *ca);
/* Consul's root ID: SHA-1 of the certificate's DER in lowercase colon hex. */
const char *ca_id(const struct ca *ca);
/* The subject key identifier in colon hex (Consul's SigningKeyID). */
const char *ca_signing_key_id(const struct ca *ca);
int ca_is_root(const struct ca *ca);
int64_t ca_not_before(const struct ca *ca);   /* seconds since the epoch */
int64_t ca_not_after(const struct ca *ca);

/* Adds a certificate to the chain given with every leaf: the cross-signed
 * certificate of this root during a rotation. It must carry this CA's
 * subject and public key. */
int ca_chain_append(struct ca *ca, const char *cert_pem, char **err);

/* ---- intermediates ---- */

/* A key waiting for its certificate: make one, send ca_pending_csr to the
 * parent (ca_sign_intermediate, perhaps on another server), then
 * ca_pending_complete with the answer. */
struct ca_pending;
int ca_pending_create(struct ca_pending **out, const char *trust_domain,
		      const char *common_name, char **err);
const char *ca_pending_csr(const struct ca_pending *p);
/* Builds the CA from the signed certificate (which must hold the pending
 * key) and the parent's chain (NULL or "" when the parent is a root). */
int ca_pending_complete(struct ca_pending *p, const char *cert_pem, const char *parent_chain_pem,
			struct ca **out, char **err);
void ca_pending_free(struct ca_pending *p);

/* Signs an intermediate CA from a CSR: its public key only, subject CN
 * common_name, CA:TRUE pathlen:0, URI SAN spiffe://<parent's trust domain>,
 * valid from now - CA_BACKDATE for ttl_s (0: CA_INTERMEDIATE_TTL_DEFAULT),
 * and never after the parent. */
int ca_sign_intermediate(const struct ca *parent, const char *csr_pem, size_t csr_len,
			 const char *common_name, int64_t ttl_s, char **cert_pem_out, char **err);

/* ---- rotation ---- */

/* The cross-signed certificate of new_root: its subject, public key and
 * extensions, issued by old_root and signed with old_root's key, valid
 * from now - CA_BACKDATE for ttl_s (0: 7 days), never after old_root.
 * Holders of only the old root accept leaves of the new one when it is in
 * the chain (ca_chain_append on new_root). */
int ca_cross_sign(const struct ca *old_root, const struct ca *new_root, int64_t ttl_s,
		  char **cert_pem_out, char **err);

/* ---- leaves ---- */

/* "spiffe://<trust_domain>/ns/<mesh>/dc/<zone>/svc/<service>", allocated;
 * each name must be a DNS-style label (letters, digits, '-', '_', '.'), the
 * trust domain a DNS name. WEFT_EINVAL names the bad part. */
int ca_spiffe_service_uri(const char *trust_domain, const char *mesh, const char *zone,
			  const char *service, char **uri_out, char **err);

struct ca_leaf {
	char *cert_pem;          /* CertPEM */
	char *chain_pem;         /* ChainPEM: the CA's chain ("" for a root without cross-sign) */
	char *service_uri;       /* ServiceURI: the only URI SAN */
	char *serial;            /* colon hex, as Consul's SerialNumber */
	char valid_after[32];    /* ValidAfter, RFC 3339 */
	char valid_before[32];   /* ValidBefore, RFC 3339 */
	int64_t not_before;      /* seconds since the epoch */
	int64_t not_after;
};

/* Signs a leaf for service from an untrusted CSR (at most CA_CSR_MAX bytes
 * of PEM): checks the CSR's signature and its key (EC P-256/P-384, RSA
 * 2048..8192), then issues a certificate with subject CN=service, the URI
 * SAN spiffe_uri (and no other SAN), a random serial, valid from now_s -
 * CA_BACKDATE to now_s + ttl_s (now_s 0: the current time; ttl_s 0:
 * CA_LEAF_TTL_DEFAULT; never after the CA), key usage digitalSignature and
 * keyEncipherment, EKU serverAuth and clientAuth, SKID and AKID.
 * WEFT_EINVAL with "CSR: ..." when the CSR is refused. */
int ca_sign_leaf(const struct ca *ca, const char *csr_pem, size_t csr_len, const char *service,
		 const char *spiffe_uri, int64_t ttl_s, int64_t now_s, struct ca_leaf *out,
		 char **err);
void ca_leaf_clear(struct ca_leaf *leaf);

/* ---- trust bundle ---- */

/* The roots a mesh trusts: the active one and, during a rotation, the
 * previous one(s). */
struct ca_bundle;
struct ca_bundle *ca_bundle_new(void);
void ca_bundle_free(struct ca_bundle *b);
/* Adds a root certificate (must be a self-signed CA); active makes it the
 * active root (and the others inactive). WEFT_EEXIST if it is there. */
int ca_bundle_add(struct ca_bundle *b, const char *root_pem, int active, char **err);
/* Removes the root of that ID; WEFT_ENOENT when absent, WEFT_ECONFLICT for
 * the active root. */
int ca_bundle_remove(struct ca_bundle *b, const char *id, char **err);
size_t ca_bundle_count(const struct ca_bundle *b);
/* The i-th root (in insertion order): borrowed strings. */
int ca_bundle_get(const struct ca_bundle *b, size_t i, const char **id, const char **pem,
		  int *active, int64_t *not_after);
const char *ca_bundle_active_id(const struct ca_bundle *b);   /* NULL when none */
/* Every root's PEM, concatenated: a CAfile. Allocated. */
char *ca_bundle_pem(const struct ca_bundle *b);

/* The ID of any certificate PEM (Consul's fingerprint form), into out. */
int ca_cert_id(const char *cert_pem, char out[CA_ID_LEN + 1], char **err);

/* ---- client side ---- */

/* A new key and a CSR for it (what `weftctl ca sign` and tests make
 * locally). key_type: "ec-p256", "ec-p384", "rsa-2048", "rsa-3072",
 * "rsa-4096" (and "rsa-1024", "ec-p521" for tests of refusals). cn and
 * uri_san may be NULL. *key_pem_out is the new private key: the caller
 * writes it to a 0600 file and frees it with ca_secret_free. */
int ca_csr_create(const char *key_type, const char *cn, const char *uri_san,
		  char **key_pem_out, char **csr_pem_out, char **err);
/* Wipes and frees a string that held a private key. */
void ca_secret_free(char *s);

#endif
