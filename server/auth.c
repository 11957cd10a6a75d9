/* Interim: tokens land with the ACL module; until then only --dev runs. */
#include "auth.h"
#include "err.h"

#include <string.h>

static const char *const perm_names[] = {
	"read", "node:write", "service:write", "key:read", "key:write", "session:write",
	"policy:read", "policy:write", "acl:read", "acl:write", "operator:read",
};
static const char *const kind_names[] = { "admin", "operator", "agent", "service", "read-only" };

const char *auth_perm_name(enum auth_perm p)
{
	return perm_names[p];
}

const char *token_kind_name(enum token_kind k)
{
	return kind_names[k];
}

int token_kind_parse(const char *name, enum token_kind *out)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
		if (strcmp(name, kind_names[i]) == 0) {
			*out = (enum token_kind)i;
			return 0;
		}
	}
	return -1;
}

int auth_open(struct auth **out, const char *dir, struct store *store, char **err)
{
	(void)dir;
	(void)store;
	*out = NULL;
	return weft_errf(err, WEFT_EINVAL, "auth: tokens are not available yet; start with --dev");
}

void auth_close(struct auth *a)
{
	(void)a;
}

int auth_identify(struct auth *a, const char *secret, struct identity *id, char **err)
{
	(void)a;
	(void)secret;
	(void)id;
	return weft_errf(err, WEFT_EAUTH, "tokens are not available yet");
}

int auth_allows(const struct identity *id, enum auth_perm p, const char *resource)
{
	(void)id;
	(void)p;
	(void)resource;
	return 0;
}
