/* Authentication and authorisation of API requests.
 *
 * Tokens are Ed25519-signed (lib/token.h); a token has a kind that grants a
 * fixed set of permissions, scoped to a node or service for agent and service
 * tokens. Revoked tokens are refused until they would have expired. */
#ifndef WEFT_AUTH_H
#define WEFT_AUTH_H

#include <stdint.h>

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

enum token_kind {
	TOKEN_ADMIN,
	TOKEN_OPERATOR,
	TOKEN_AGENT,
	TOKEN_SERVICE,
	TOKEN_READ_ONLY,
};

struct identity {
	char accessor[40];
	enum token_kind kind;
	char scope[256];      /* the node (agent) or service (service) it is bound to */
	int64_t expires_ms;   /* 0: never */
};

const char *auth_perm_name(enum auth_perm p);
const char *token_kind_name(enum token_kind k);
int token_kind_parse(const char *name, enum token_kind *out);

/* Loads the signing key from dir (creating it and a bootstrap admin token at
 * dir/admin.token, mode 0600, on first start). */
int auth_open(struct auth **out, const char *dir, struct store *store, char **err);
void auth_close(struct auth *a);

/* Verifies a token secret; on failure *err says why (bad signature, expired,
 * revoked) without repeating the secret. */
int auth_identify(struct auth *a, const char *secret, struct identity *id, char **err);
/* 1 when the identity holds the permission on the resource. */
int auth_allows(const struct identity *id, enum auth_perm p, const char *resource);

#endif
