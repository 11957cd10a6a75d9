/* Meshes: several meshes on one control plane, each with an mTLS mode, a
 * SPIFFE trust domain and the default intention action. "default" always
 * exists (created by schema migration 2) and cannot be deleted; a mesh that
 * still has service instances or config entries cannot be deleted either.
 * Topics: "meshes" and "mesh:<name>". */
#ifndef WEFT_MESH_H
#define WEFT_MESH_H

#include <jansson.h>
#include <stdint.h>

#include "store.h"

#define MESH_DEFAULT "default"
#define MESH_NAME_MAX 63
#define MESH_TRUST_DOMAIN_MAX 253
#define MESH_META_PAIRS_MAX 64

/* A decoded PUT /v1/meshes/:name. Fields not given keep their stored value
 * on an update and take the defaults on a create (strict, deny, trust
 * domain "<name>.<the default mesh's trust domain>"). */
struct mesh_put {
	json_t *doc;                 /* owns the strings below */
	char name[MESH_NAME_MAX + 1];
	const char *mtls_mode, *trust_domain, *default_action;  /* NULL: not given */
	json_t *meta;                                           /* NULL: not given */
	int cas_set;
	uint64_t cas;
	int dev;                     /* the server runs with --dev (for the reply) */
};

/* 1 when name is a valid mesh name: 1-63 lowercase letters, digits and '-',
 * starting and ending with a letter or digit (a DNS label). */
int mesh_name_valid(const char *name);
/* Takes a reference to doc. name: from the path; a "Name" in the body must
 * equal it. */
int mesh_decode_put(json_t *doc, const char *name, struct mesh_put *out, char **err);
void mesh_put_free(void *p);   /* frees a calloc'ed struct mesh_put */

/* w->arg: struct mesh_put. Result: the mesh as stored, or `false` when the
 * CAS index did not match. */
int mesh_apply_put(struct db *db, uint64_t index, struct store_write *w,
		   struct store_changes *ch);
/* w->arg: the name (char *). WEFT_ENOENT, WEFT_EINVAL for "default",
 * WEFT_ECONFLICT naming what is still in the mesh. */
int mesh_apply_delete(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch);

/* 1 if the mesh exists, 0 if not, -1 on a storage error. */
int mesh_exists(struct db *db, const char *name);
/* {"Name", "MTLSMode", "TrustDomain", "DefaultIntentionAction",
 *  "DefaultIntentionActionSet", "Meta", "CreateIndex", "ModifyIndex"} or
 * NULL. A mesh whose default action was never chosen shows (and uses) the
 * server's: deny, or allow when dev is set (--dev). */
json_t *mesh_get(struct db *db, const char *name, int dev);
json_t *mesh_list(struct db *db, int dev);
/* The mesh's default intention action: 1 allow, 0 deny, WEFT_ENOENT if no
 * such mesh, another negative code on a storage error. */
int mesh_default_allows(struct db *db, const char *name, int dev);

#endif
