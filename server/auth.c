/* Authentication (signed tokens, revocation) and authorisation (the
 * permission matrix of each token kind). */
#include "auth.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "token.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A revoked accessor, kept until the token would have expired anyway. */
struct revoked {
	char accessor[37];
	int64_t expires_ms;   /* 0: never */
};

/* Verified secrets, so that a token's Ed25519 signature is checked once and
 * not on every request (it would cost more than most requests). A slot
 * holds a keyed BLAKE2b digest of the secret, never the secret; expiry and
 * revocation are still checked on every hit. */
#define AUTH_CACHE_SLOTS 4096

struct verified {
	unsigned char digest[crypto_generichash_BYTES];
	struct identity id;
	int used;
};

struct auth {
	struct token_key *key;
	struct store *store;
	pthread_mutex_t cache_lock;
	unsigned char cache_key[crypto_generichash_KEYBYTES];
	struct verified cache[AUTH_CACHE_SLOTS];
	/* Revoked accessors, sorted for bsearch. Readers (every request) take
	 * the lock shared; a revocation takes it exclusively. */
	pthread_rwlock_t lock;
	struct revoked *revoked;
	size_t nrevoked, caprevoked;
};

static const char *const perm_names[] = {
	"read", "node:write", "service:write", "key:read", "key:write", "session:write",
	"policy:read", "policy:write", "acl:read", "acl:write", "operator:read",
};

const char *auth_perm_name(enum auth_perm p)
{
	if ((unsigned)p >= sizeof(perm_names) / sizeof(perm_names[0]))
		return "unknown";
	return perm_names[p];
}

/* ---- the permission matrix (docs/security.md) ---- */

static int scope_is(const struct identity *id, const char *resource)
{
	return resource != NULL && id->scope[0] != '\0' && strcmp(resource, id->scope) == 0;
}

int auth_allows(const struct identity *id, enum auth_perm p, const char *resource)
{
	if (id == NULL)
		return 0;
	switch (id->kind) {
	case TOKEN_ADMIN:
		return 1;
	case TOKEN_OPERATOR:
		/* Reads everything; writes policy, KV, sessions, catalog; not tokens. */
		return p != AUTH_ACL_WRITE;
	case TOKEN_AGENT:
		switch (p) {
		case AUTH_READ:
		case AUTH_KV_READ:
			return 1;
		case AUTH_NODE_WRITE:
		case AUTH_SESSION_WRITE:
			return scope_is(id, resource);
		case AUTH_SERVICE_WRITE:
			/* Any service, but only where node:write also holds. */
			return 1;
		default:
			return 0;
		}
	case TOKEN_SERVICE:
		switch (p) {
		case AUTH_READ:
			return 1;
		case AUTH_SERVICE_WRITE:
			return scope_is(id, resource);
		default:
			return 0;
		}
	case TOKEN_READ_ONLY:
		return p == AUTH_READ || p == AUTH_KV_READ || p == AUTH_POLICY_READ ||
		       p == AUTH_OPERATOR_READ;
	}
	return 0;
}

/* ---- the revocation cache ---- */

static int revoked_cmp(const void *a, const void *b)
{
	return strcmp(((const struct revoked *)a)->accessor, ((const struct revoked *)b)->accessor);
}

/* Called with the lock held exclusively. */
static int revoked_insert(struct auth *a, const char *accessor, int64_t expires_ms)
{
	size_t lo = 0, hi = a->nrevoked;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(a->revoked[mid].accessor, accessor);
		if (c == 0)
			return WEFT_OK;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (a->nrevoked == a->caprevoked) {
		size_t cap = a->caprevoked ? a->caprevoked * 2 : 64;
		struct revoked *p = realloc(a->revoked, cap * sizeof(*p));
		if (p == NULL)
			return WEFT_ENOMEM;
		a->revoked = p;
		a->caprevoked = cap;
	}
	memmove(&a->revoked[lo + 1], &a->revoked[lo], (a->nrevoked - lo) * sizeof(*a->revoked));
	snprintf(a->revoked[lo].accessor, sizeof(a->revoked[lo].accessor), "%s", accessor);
	a->revoked[lo].expires_ms = expires_ms;
	a->nrevoked++;
	return WEFT_OK;
}

static int revoked_load(struct auth *a, char **err)
{
	struct db *db = store_read_begin(a->store);
	struct db_stmt *st;
	int rc = WEFT_OK, step;

	if (db == NULL)
		return weft_errf(err, WEFT_EIO, "auth: cannot open a read connection");
	st = db_prep(db, "SELECT accessor, expires_at FROM acl_tokens WHERE revoked_at > 0"
			 " AND (expires_at = 0 OR expires_at > ?)");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "auth: reading revoked tokens: %s", db_errmsg(db));
		goto out;
	}
	db_bind_int(st, 1, now_wall_ms());
	pthread_rwlock_wrlock(&a->lock);
	while ((step = db_step(st)) == DB_ROW && rc == WEFT_OK) {
		const char *acc = db_col_text(st, 0);
		if (acc && uuid_valid(acc))
			rc = revoked_insert(a, acc, db_col_int(st, 1));
	}
	pthread_rwlock_unlock(&a->lock);
	db_done(st);
	if (rc != WEFT_OK)
		weft_errf(err, rc, "auth: out of memory loading revoked tokens");
	else if (step < 0)
		rc = weft_errf(err, WEFT_EIO, "auth: reading revoked tokens: %s", db_errmsg(db));
out:
	store_read_end(db);
	return rc;
}

static int is_revoked(struct auth *a, const char *accessor)
{
	struct revoked key;
	int found;

	snprintf(key.accessor, sizeof(key.accessor), "%.36s", accessor);
	pthread_rwlock_rdlock(&a->lock);
	found = a->nrevoked &&
		bsearch(&key, a->revoked, a->nrevoked, sizeof(*a->revoked), revoked_cmp) != NULL;
	pthread_rwlock_unlock(&a->lock);
	return found;
}

/* ---- identification ---- */

int auth_identify(struct auth *a, const char *secret, struct identity *id, char **err)
{
	struct token_claims c;
	int rc;

	unsigned char digest[crypto_generichash_BYTES];
	struct verified *slot;
	int64_t now = now_wall_ms();
	int hit = 0;

	memset(id, 0, sizeof(*id));
	if (a == NULL || secret == NULL)
		return weft_errf(err, WEFT_EAUTH, "no token");
	crypto_generichash(digest, sizeof(digest), (const unsigned char *)secret, strlen(secret),
			   a->cache_key, sizeof(a->cache_key));
	slot = &a->cache[(digest[0] | (unsigned)digest[1] << 8) % AUTH_CACHE_SLOTS];
	pthread_mutex_lock(&a->cache_lock);
	if (slot->used && sodium_memcmp(slot->digest, digest, sizeof(digest)) == 0 &&
	    (slot->id.expires_ms == 0 || now < slot->id.expires_ms)) {
		*id = slot->id;
		hit = 1;
	}
	pthread_mutex_unlock(&a->cache_lock);
	if (!hit) {
		/* Expired tokens miss too, so that the error comes from the verifier. */
		rc = token_verify(a->key, secret, strlen(secret), now, &c, err);
		if (rc != WEFT_OK)
			return rc;
		snprintf(id->accessor, sizeof(id->accessor), "%s", c.accessor);
		id->kind = c.kind;
		snprintf(id->scope, sizeof(id->scope), "%s", c.scope);
		id->expires_ms = c.expires_ms;
		pthread_mutex_lock(&a->cache_lock);
		memcpy(slot->digest, digest, sizeof(digest));
		slot->id = *id;
		slot->used = 1;
		pthread_mutex_unlock(&a->cache_lock);
	}
	if (is_revoked(a, id->accessor)) {
		weft_errf(err, WEFT_EAUTH, "token %s has been revoked", id->accessor);
		memset(id, 0, sizeof(*id));
		return WEFT_EAUTH;
	}
	return WEFT_OK;
}

/* ---- tokens in the store ---- */

int auth_mint(struct auth *a, struct auth_create *c, char **err)
{
	c->auth = a;
	token_secret_free(c->secret);
	c->secret = NULL;
	return token_sign(a->key, &c->claims, &c->secret, err);
}

void auth_create_free(struct auth_create *c)
{
	if (c == NULL)
		return;
	token_secret_free(c->secret);
	free(c->description);
	free(c);
}

static json_t *row_json(struct db_stmt *st, const char *dc)
{
	/* accessor, kind, description, service, node, create_time, expires_at,
	 * create_index, modify_index */
	const char *kind = db_col_text(st, 1), *svc = db_col_text(st, 3), *node = db_col_text(st, 4);
	char ts[40];
	json_t *o = json_object();

	json_object_set_new(o, "AccessorID", json_string(db_col_text(st, 0)));
	json_object_set_new(o, "Description", json_string(db_col_text(st, 2)));
	json_object_set_new(o, "Kind", json_string(kind));
	json_object_set_new(o, "ServiceName", json_string(svc ? svc : ""));
	json_object_set_new(o, "NodeName", json_string(node ? node : ""));
	/* Consul's shape of the same grant, for tools that read it. */
	json_object_set_new(o, "Policies", json_array());
	json_object_set_new(o, "ServiceIdentities",
			    svc && svc[0] ? json_pack("[{s:s}]", "ServiceName", svc) : json_array());
	json_object_set_new(o, "NodeIdentities",
			    node && node[0] ? json_pack("[{s:s, s:s}]", "NodeName", node,
							"Datacenter", dc)
					    : json_array());
	json_object_set_new(o, "Local", json_false());
	time_format_rfc3339(db_col_int(st, 5), ts, sizeof(ts));
	json_object_set_new(o, "CreateTime", json_string(ts));
	if (db_col_int(st, 6) > 0) {
		time_format_rfc3339(db_col_int(st, 6), ts, sizeof(ts));
		json_object_set_new(o, "ExpirationTime", json_string(ts));
	}
	json_object_set_new(o, "CreateIndex", json_integer(db_col_int(st, 7)));
	json_object_set_new(o, "ModifyIndex", json_integer(db_col_int(st, 8)));
	return o;
}

#define TOKEN_COLUMNS \
	"accessor, kind, description, service, node, create_time, expires_at, create_index," \
	" modify_index"

json_t *auth_token_json(struct db *db, const char *accessor, const char *datacenter)
{
	struct db_stmt *st = db_prep(db, "SELECT " TOKEN_COLUMNS " FROM acl_tokens"
				     " WHERE accessor = ? AND revoked_at = 0");
	json_t *o = NULL;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, accessor);
	if (db_step(st) == DB_ROW)
		o = row_json(st, datacenter);
	db_done(st);
	return o;
}

json_t *auth_token_list(struct db *db, const char *datacenter)
{
	struct db_stmt *st = db_prep(db, "SELECT " TOKEN_COLUMNS " FROM acl_tokens"
				     " WHERE revoked_at = 0 ORDER BY create_index, accessor");
	json_t *list = json_array();

	if (st == NULL)
		return list;
	while (db_step(st) == DB_ROW)
		json_array_append_new(list, row_json(st, datacenter));
	db_done(st);
	return list;
}

int auth_apply_create(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch)
{
	struct auth_create *c = w->arg;
	const struct token_claims *cl = &c->claims;
	struct db_stmt *st = db_prep(db, "SELECT 1 FROM acl_tokens WHERE accessor = ?");
	json_t *res;
	int rc;

	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, cl->accessor);
	rc = db_step(st);
	db_done(st);
	if (rc == DB_ROW)
		return weft_errf(&w->err, WEFT_EEXIST, "AccessorID: %s is already in use",
				 cl->accessor);
	st = db_prep(db, "INSERT INTO acl_tokens (accessor, kind, description, service, node,"
			 " create_time, expires_at, create_index, modify_index)"
			 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, cl->accessor);
	db_bind_text(st, 2, token_kind_name(cl->kind));
	db_bind_text(st, 3, c->description ? c->description : "");
	db_bind_text(st, 4, cl->kind == TOKEN_SERVICE ? cl->scope : "");
	db_bind_text(st, 5, cl->kind == TOKEN_AGENT ? cl->scope : "");
	db_bind_int(st, 6, cl->issued_ms);
	db_bind_int(st, 7, cl->expires_ms);
	db_bind_int(st, 8, (int64_t)index);
	db_bind_int(st, 9, (int64_t)index);
	rc = db_step(st);
	db_done(st);
	if (rc != DB_DONE)
		return weft_errf(&w->err, WEFT_EIO, "store: recording token %s: %s", cl->accessor,
				 db_errmsg(db));
	changes_add(ch, "acl:tokens");
	res = auth_token_json(db, cl->accessor, c->datacenter ? c->datacenter : "");
	if (res == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: reading token %s back", cl->accessor);
	/* The only time the secret leaves the server: Weft does not keep it. */
	if (c->secret)
		json_object_set_new(res, "SecretID", json_string(c->secret));
	w->result = res;
	return WEFT_OK;
}

int auth_apply_revoke(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch)
{
	struct auth_revoke *rv = w->arg;
	struct db_stmt *st = db_prep(db, "SELECT expires_at FROM acl_tokens"
				     " WHERE accessor = ? AND revoked_at = 0");
	int64_t expires = 0;
	int rc;

	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, rv->accessor);
	rc = db_step(st);
	if (rc == DB_ROW)
		expires = db_col_int(st, 0);
	db_done(st);
	if (rc != DB_ROW)
		return weft_errf(&w->err, WEFT_ENOENT, "Cannot find token %s to delete", rv->accessor);
	st = db_prep(db, "UPDATE acl_tokens SET revoked_at = ?, modify_index = ? WHERE accessor = ?");
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_int(st, 1, now_wall_ms());
	db_bind_int(st, 2, (int64_t)index);
	db_bind_text(st, 3, rv->accessor);
	rc = db_step(st);
	db_done(st);
	if (rc != DB_DONE)
		return weft_errf(&w->err, WEFT_EIO, "store: revoking token %s: %s", rv->accessor,
				 db_errmsg(db));
	/* Refuse the token from now on. Should the commit then fail, the token
	 * stays refused until a restart reloads the table: the safe side. */
	if (rv->auth) {
		pthread_rwlock_wrlock(&rv->auth->lock);
		rc = revoked_insert(rv->auth, rv->accessor, expires);
		pthread_rwlock_unlock(&rv->auth->lock);
		if (rc != WEFT_OK)
			return weft_errf(&w->err, rc, "auth: out of memory revoking %s", rv->accessor);
	}
	changes_add(ch, "acl:tokens");
	log_info("auth", "token revoked accessor=%s", rv->accessor);
	return WEFT_OK;
}

/* ---- opening ---- */

/* First start: a key, and an admin token recorded in the store and written
 * to dir/admin.token. The key file is written last, so that a start that
 * fails half-way starts over cleanly. */
static int bootstrap(struct auth *a, const char *dir, const char *keypath, char **err)
{
	struct auth_create *c = calloc(1, sizeof(*c));
	struct store_write w = { .apply = auth_apply_create };
	char path[PATH_MAX], *line = NULL;
	int rc;

	if (c == NULL)
		return weft_errf(err, WEFT_ENOMEM, "auth: out of memory");
	if ((rc = token_key_generate(&a->key, err)) != WEFT_OK)
		goto out;
	uuid_generate(c->claims.accessor);
	c->claims.kind = TOKEN_ADMIN;
	c->claims.issued_ms = now_wall_ms();
	c->description = strdup("Bootstrap admin token (created on first start)");
	c->datacenter = "";
	if ((rc = auth_mint(a, c, err)) != WEFT_OK)
		goto out;
	w.arg = c;
	rc = store_write_sync(a->store, &w);
	json_decref(w.result);
	if (rc != WEFT_OK) {
		weft_errf(err, rc, "auth: recording the bootstrap token: %s", w.err ? w.err : "?");
		free(w.err);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/admin.token", dir);
	if (asprintf(&line, "%s\n", c->secret) < 0) {
		line = NULL;
		rc = weft_errf(err, WEFT_ENOMEM, "auth: out of memory");
		goto out;
	}
	if (file_write_all(path, line, strlen(line), 0600) != 0) {
		rc = weft_errf(err, WEFT_EIO, "auth: cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	if ((rc = token_key_save(a->key, keypath, err)) != WEFT_OK)
		goto out;
	log_warnx("auth", "first start: created the signing key %s and a bootstrap admin token "
		  "accessor=%s in %s (mode 0600); keep it safe, it can do everything",
		  keypath, c->claims.accessor, path);
out:
	token_secret_free(line);
	auth_create_free(c);
	return rc;
}

int auth_open(struct auth **out, const char *dir, struct store *store, char **err)
{
	struct auth *a = calloc(1, sizeof(*a));
	char keypath[PATH_MAX];
	int rc;

	*out = NULL;
	if (a == NULL)
		return weft_errf(err, WEFT_ENOMEM, "auth: out of memory");
	a->store = store;
	pthread_rwlock_init(&a->lock, NULL);
	pthread_mutex_init(&a->cache_lock, NULL);
	crypto_generichash_keygen(a->cache_key);
	if (snprintf(keypath, sizeof(keypath), "%s/signing.key", dir) >= (int)sizeof(keypath)) {
		rc = weft_errf(err, WEFT_EINVAL, "auth: data dir path too long");
		goto fail;
	}
	if (access(keypath, F_OK) == 0)
		rc = token_key_load(&a->key, keypath, err);
	else if (errno == ENOENT)
		rc = bootstrap(a, dir, keypath, err);
	else
		rc = weft_errf(err, WEFT_EIO, "auth: cannot reach %s: %s", keypath, strerror(errno));
	if (rc != WEFT_OK)
		goto fail;
	if ((rc = revoked_load(a, err)) != WEFT_OK)
		goto fail;
	log_info("auth", "tokens on key=%s revoked=%zu", keypath, a->nrevoked);
	*out = a;
	return WEFT_OK;
fail:
	auth_close(a);
	return rc;
}

void auth_close(struct auth *a)
{
	if (a == NULL)
		return;
	token_key_free(a->key);
	pthread_rwlock_destroy(&a->lock);
	pthread_mutex_destroy(&a->cache_lock);
	sodium_memzero(a->cache, sizeof(a->cache));
	free(a->revoked);
	free(a);
}
