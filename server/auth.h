/* Authentication and authorisation of API requests.
 *
 * Tokens are Ed25519-signed (lib/token.h); a token has a kind that grants a
 * fixed set of permissions, scoped to a node or service for agent and service
 * tokens. Revoked tokens are refused until they would have expired. */
#ifndef WEFT_AUTH_H
#define WEFT_AUTH_H

#include <jansson.h>
#include <stdint.h>

#include "store.h"
#include "token.h"   /* enum token_kind, token_kind_name, token_kind_parse */

struct store;
struct auth;

enum auth_perm {
	AUTH_READ,          /* catalog, health, agent views, status */
	AUTH_NODE_WRITE,    /* register or change node <resource> */
	AUTH_SERVICE_WRITE, /* register or deregister service <resource> */
	AUTH_KV_READ,       /* key <resource> */
	AUTH_KV_WRITE,      /* key <resource> */
	AUTH_SESSION_WRITE, /* sessions on node <resource> */
	AUTH_POLICY_READ,   /* intentions, config entries, meshes */
	AUTH_POLICY_WRITE,
	AUTH_ACL_READ,      /* tokens */
	AUTH_ACL_WRITE,
	AUTH_OPERATOR_READ, /* metrics, members, agent self */
};

struct identity {
	char accessor[40];
	enum token_kind kind;
	char scope[256];      /* the node (agent) or service (service) it is bound to */
	int64_t expires_ms;   /* 0: never */
};

const char *auth_perm_name(enum auth_perm p);

/* Loads the signing key from dir (creating it and a bootstrap admin token at
 * dir/admin.token, mode 0600, on first start). */
int auth_open(struct auth **out, const char *dir, struct store *store, char **err);
void auth_close(struct auth *a);

/* Verifies a token secret; on failure *err says why (bad signature, expired,
 * revoked) without repeating the secret. */
int auth_identify(struct auth *a, const char *secret, struct identity *id, char **err);
/* 1 when the identity holds the permission on the resource (the matrix is
 * in docs/security.md). A NULL resource means "any": scoped kinds never hold
 * a scoped permission on it. service:write for an agent token is granted
 * whatever the service name: the node:write on its own node, which every
 * registration also needs, is what binds it. */
int auth_allows(const struct identity *id, enum auth_perm p, const char *resource);

/* ---- tokens in the store (table acl_tokens; secrets are never stored) ---- */

#define AUTH_DESCRIPTION_MAX 4096

/* A token to create: fill claims (accessor, kind, scope, expiry), then
 * auth_mint signs it; auth_apply_create records it and replies with the
 * token JSON, SecretID included. */
struct auth_create {
	struct auth *auth;
	struct token_claims claims;
	char *description;
	const char *datacenter;
	char *secret;        /* set by auth_mint; wiped by auth_create_free */
};
int auth_mint(struct auth *a, struct auth_create *c, char **err);
void auth_create_free(struct auth_create *c);
/* Decodes and validates PUT /v1/acl/token's body (in api_acl.c). */
int auth_decode_create(json_t *doc, const char *dc, struct auth_create *c, char **err);

struct auth_revoke {
	struct auth *auth;
	char accessor[37];
	const char *datacenter;
};

/* store_write apply functions (w->arg is the struct above). Create fails
 * with WEFT_EEXIST for an accessor in use; revoke with WEFT_ENOENT for an
 * unknown or already revoked accessor. Revoke updates the in-memory
 * revocation cache at once, so the next auth_identify refuses the token. */
int auth_apply_create(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch);
int auth_apply_revoke(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch);

/* Reads for the API (Consul's token fields plus Kind, ServiceName,
 * NodeName); revoked tokens are gone. NULL when there is no such token. */
json_t *auth_token_json(struct db *db, const char *accessor, const char *datacenter);
json_t *auth_token_list(struct db *db, const char *datacenter);

#endif
