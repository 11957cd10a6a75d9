/* The mesh CAs of the server: per mesh, the roots (certificate, sealed
 * private key, active flag, removal time) and the CA configuration, in the
 * store (tables ca_roots and ca_config, schema migration 4); leaf signing
 * from CSRs; root rotation with cross-signing; the periodic removal of
 * rotated-out roots. docs/ca.md describes the design.
 *
 * A mesh's CA is made lazily: the default mesh's at start, any other on the
 * first CA request that names it (roots, configuration, sign). Private keys
 * are sealed (lib/sealed.h) under DATA_DIR/ca-seal.key (0600) before they
 * reach the store, and never leave this module in clear.
 *
 * Topics: "ca:<mesh>" (roots and configuration). */
#ifndef WEFT_CASTORE_H
#define WEFT_CASTORE_H

#include <jansson.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

#define CASTORE_KEY_FILE "ca-seal.key"
#define CASTORE_PRUNE_MS 500            /* how often rotated-out roots are looked at */
#define CASTORE_LEAF_TTL_MIN_MS 1000LL   /* Consul's minimum is 1h; Weft allows short TTLs */
#define CASTORE_LEAF_TTL_MAX_MS (365LL * 86400 * 1000)
#define CASTORE_MESHES_MAX 1024          /* meshes with their own metrics and cached signing CA */

struct castore;

/* Opens (or creates) the sealing key in data_dir, makes the default mesh's
 * CA if it has none, and starts the thread that removes rotated-out roots. */
int castore_open(struct castore **out, struct store *store, const char *data_dir,
		 const char *zone, char **err);
/* Stops the thread and frees everything; NULL is fine. */
void castore_close(struct castore *cs);

/* Makes the mesh's CA if it has none. WEFT_ENOENT when there is no such mesh. */
int castore_ensure(struct castore *cs, const char *mesh, char **err);

/* {"ActiveRootID", "TrustDomain", "Roots": [...]} in Consul's form, and the
 * largest modify index in *index; NULL when the mesh has no CA (yet). */
json_t *castore_roots_json(struct db *db, const char *mesh, uint64_t *index);
/* Every root and intermediate certificate, concatenated (Consul's ?pem=true). */
char *castore_roots_pem(struct db *db, const char *mesh);
/* {"Provider", "Config": {...}, "ForceWithoutCrossSigning", "CreateIndex",
 * "ModifyIndex"}: never a private key. NULL when the mesh has no CA. */
json_t *castore_config_json(struct db *db, const char *mesh);

/* PUT /v1/connect/ca/configuration: decoded, then prepared (the new root
 * made and cross-signed outside the writer), then applied. */
struct castore_put;
int castore_put_decode(json_t *doc, const char *mesh, struct castore_put **out, char **err);
/* Reads the current state and, when the change needs it (another provider,
 * another provided root, "RotateRoot": true), makes the new root. */
int castore_put_prepare(struct castore *cs, struct castore_put *p, char **err);
void castore_put_free(void *p);
/* w->arg: a prepared struct castore_put. WEFT_ECONFLICT if the active root
 * changed since castore_put_prepare. */
int castore_apply_put(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch);

/* Signs a leaf for service in mesh from an untrusted CSR: the SPIFFE ID is
 * computed here (trust domain of the active root, mesh, zone, service).
 * Result: {"SerialNumber", "CertPEM", "ChainPEM", "Service", "ServiceURI",
 * "ValidAfter", "ValidBefore", "CreateIndex", "ModifyIndex"}. WEFT_EINVAL
 * names "CSR" or "Service"; WEFT_ENOENT for an unknown mesh. */
int castore_sign(struct castore *cs, const char *mesh, const char *service, const char *csr,
		 size_t csr_len, json_t **out, char **err);

/* Removes the rotated-out roots whose time has come (the thread calls it;
 * exposed for tests). Returns how many went. */
int castore_prune(struct castore *cs, int64_t now_ms);

/* Prometheus text: weft_ca_leaves_signed_total{mesh}, weft_ca_sign_errors_total,
 * weft_ca_root_expiry_seconds{mesh}, weft_ca_intermediate_expiry_seconds{mesh}. */
void castore_metrics(struct castore *cs, struct buf *out);

#endif
