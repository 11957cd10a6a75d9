#include "mesh.h"
#include "err.h"
#include "jsonx.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mesh_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > MESH_NAME_MAX || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return 0;
	}
	return 1;
}

/* A DNS name: dot-separated labels of lowercase letters, digits and '-'
 * (SPIFFE trust domains are lowercase). */
static int trust_domain_valid(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > MESH_TRUST_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-'))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return s[n - 1] != '-';
}

int mesh_decode_put(json_t *doc, const char *name, struct mesh_put *out, char **err)
{
	const char *body_name = NULL;
	size_t pairs;

	memset(out, 0, sizeof(*out));
	out->doc = json_incref(doc);
	if (!mesh_name_valid(name))
		return weft_errf(err, WEFT_EINVAL,
				 "Name: \"%s\" is not a valid mesh name (1-%d lowercase letters, digits"
				 " and '-', not at either end)", name, MESH_NAME_MAX);
	snprintf(out->name, sizeof(out->name), "%s", name);
	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
	if (jx_str(doc, NULL, "Name", &body_name, MESH_NAME_MAX + 1, err) != WEFT_OK ||
	    jx_str(doc, NULL, "MTLSMode", &out->mtls_mode, 32, err) != WEFT_OK ||
	    jx_str(doc, NULL, "TrustDomain", &out->trust_domain, MESH_TRUST_DOMAIN_MAX + 1, err) != WEFT_OK ||
	    jx_str(doc, NULL, "DefaultIntentionAction", &out->default_action, 32, err) != WEFT_OK ||
	    jx_str_map(doc, NULL, "Meta", &out->meta, 512, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (body_name && body_name[0] && strcmp(body_name, name) != 0)
		return weft_errf(err, WEFT_EINVAL, "Name: \"%s\" differs from the name in the path \"%s\"",
				 body_name, name);
	if (out->mtls_mode && strcmp(out->mtls_mode, "strict") && strcmp(out->mtls_mode, "permissive"))
		return weft_errf(err, WEFT_EINVAL, "MTLSMode: \"%s\" is not one of strict, permissive",
				 out->mtls_mode);
	if (out->trust_domain && !trust_domain_valid(out->trust_domain))
		return weft_errf(err, WEFT_EINVAL,
				 "TrustDomain: \"%s\" is not a DNS name (lowercase labels of letters, "
				 "digits and '-', at most %d bytes)", out->trust_domain,
				 MESH_TRUST_DOMAIN_MAX);
	if (out->default_action && strcmp(out->default_action, "allow") &&
	    strcmp(out->default_action, "deny"))
		return weft_errf(err, WEFT_EINVAL,
				 "DefaultIntentionAction: \"%s\" is not one of allow, deny",
				 out->default_action);
	if (out->meta && (pairs = json_object_size(out->meta)) > MESH_META_PAIRS_MAX)
		return weft_errf(err, WEFT_EINVAL, "Meta: %zu pairs, at most %d", pairs,
				 MESH_META_PAIRS_MAX);
	if (out->meta) {
		const char *k;
		json_t *v;
		json_object_foreach(out->meta, k, v) {
			if (k[0] == '\0' || strlen(k) > 128)
				return weft_errf(err, WEFT_EINVAL, "Meta: key \"%.32s\" must be 1-128 bytes", k);
		}
	}
	return WEFT_OK;
}

void mesh_put_free(void *p)
{
	struct mesh_put *m = p;

	if (m == NULL)
		return;
	json_decref(m->doc);
	free(m);
}

static const char *effective_action(const char *stored, int set, int dev)
{
	if (set)
		return stored;
	return dev ? "allow" : "deny";
}

static json_t *row_json(struct db_stmt *st, int dev)
{
	int set = (int)db_col_int(st, 7);

	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:I, s:I}",
			 "Name", db_col_text(st, 0),
			 "MTLSMode", db_col_text(st, 1),
			 "TrustDomain", db_col_text(st, 2),
			 "DefaultIntentionAction", effective_action(db_col_text(st, 3), set, dev),
			 "DefaultIntentionActionSet", set,
			 "Meta", jx_load_or(db_col_text(st, 4), JSON_OBJECT),
			 "CreateIndex", (json_int_t)db_col_int(st, 5),
			 "ModifyIndex", (json_int_t)db_col_int(st, 6));
}

json_t *mesh_get(struct db *db, const char *name, int dev)
{
	struct db_stmt *st = db_prep(db, "SELECT name, mtls_mode, trust_domain, default_action, meta,"
				     " create_index, modify_index, default_action_set FROM meshes WHERE name = ?");
	json_t *out = NULL;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, name);
	if (db_step(st) == DB_ROW)
		out = row_json(st, dev);
	db_done(st);
	return out;
}

json_t *mesh_list(struct db *db, int dev)
{
	struct db_stmt *st = db_prep(db, "SELECT name, mtls_mode, trust_domain, default_action, meta,"
				     " create_index, modify_index, default_action_set FROM meshes ORDER BY name");
	json_t *out;

	if (st == NULL)
		return NULL;
	out = json_array();
	while (db_step(st) == DB_ROW)
		json_array_append_new(out, row_json(st, dev));
	db_done(st);
	return out;
}

int mesh_exists(struct db *db, const char *name)
{
	struct db_stmt *st = db_prep(db, "SELECT 1 FROM meshes WHERE name = ?");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, name);
	rc = db_step(st);
	db_done(st);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

int mesh_default_allows(struct db *db, const char *name, int dev)
{
	struct db_stmt *st = db_prep(db, "SELECT default_action, default_action_set FROM meshes"
				     " WHERE name = ?");
	int rc;

	if (st == NULL)
		return WEFT_EIO;
	db_bind_text(st, 1, name);
	rc = db_step(st);
	if (rc == DB_ROW) {
		const char *a = effective_action(db_col_text(st, 0), (int)db_col_int(st, 1), dev);
		rc = a && strcmp(a, "allow") == 0;
	} else {
		rc = rc == DB_DONE ? WEFT_ENOENT : WEFT_EIO;
	}
	db_done(st);
	return rc;
}

int mesh_apply_put(struct db *db, uint64_t index, struct store_write *w,
		   struct store_changes *ch)
{
	struct mesh_put *m = w->arg;
	json_t *cur = mesh_get(db, m->name, 0), *def = NULL;
	const char *mtls, *td, *action;
	int action_set;
	char *meta = NULL, *td_alloc = NULL;
	struct db_stmt *st;
	int rc;

	if (m->cas_set) {
		uint64_t mi = cur ? (uint64_t)json_integer_value(json_object_get(cur, "ModifyIndex")) : 0;
		if ((cur == NULL && m->cas != 0) || (cur != NULL && mi != m->cas)) {
			w->result = json_false();
			rc = WEFT_OK;
			goto out;
		}
	}
	mtls = m->mtls_mode ? m->mtls_mode
	       : cur ? json_string_value(json_object_get(cur, "MTLSMode")) : "strict";
	/* Unchosen stays unchosen (the server's default applies) until a PUT
	 * names an action. */
	action_set = m->default_action != NULL ||
		     (cur && json_is_true(json_object_get(cur, "DefaultIntentionActionSet")));
	action = m->default_action ? m->default_action
		 : cur ? json_string_value(json_object_get(cur, "DefaultIntentionAction")) : "deny";
	td = m->trust_domain;
	if (td == NULL && cur)
		td = json_string_value(json_object_get(cur, "TrustDomain"));
	if (td == NULL) {
		def = mesh_get(db, MESH_DEFAULT, 0);
		const char *base = def ? json_string_value(json_object_get(def, "TrustDomain")) : "weft";
		if (asprintf(&td_alloc, "%s.%s", m->name, base) < 0) {
			td_alloc = NULL;
			rc = weft_errf(&w->err, WEFT_ENOMEM, "mesh: out of memory");
			goto out;
		}
		if (strlen(td_alloc) > MESH_TRUST_DOMAIN_MAX) {
			rc = weft_errf(&w->err, WEFT_EINVAL,
				       "TrustDomain: the default \"%s\" is too long; give one", td_alloc);
			goto out;
		}
		td = td_alloc;
	}
	meta = jx_dump(m->meta ? m->meta : cur ? json_object_get(cur, "Meta") : NULL);
	st = db_prep(db, "INSERT INTO meshes (name, mtls_mode, trust_domain, default_action, meta,"
			 " create_index, modify_index, default_action_set) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
			 " ON CONFLICT (name) DO UPDATE SET mtls_mode = excluded.mtls_mode,"
			 " trust_domain = excluded.trust_domain, default_action = excluded.default_action,"
			 " meta = excluded.meta, modify_index = excluded.modify_index,"
			 " default_action_set = excluded.default_action_set");
	if (st == NULL) {
		rc = weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, m->name);
	db_bind_text(st, 2, mtls);
	db_bind_text(st, 3, td);
	db_bind_text(st, 4, action);
	db_bind_text(st, 5, meta ? meta : "{}");
	db_bind_int(st, 6, (int64_t)index);
	db_bind_int(st, 7, (int64_t)index);
	db_bind_int(st, 8, action_set);
	rc = db_step(st) == DB_DONE ? WEFT_OK
				    : weft_errf(&w->err, WEFT_EIO, "store: cannot write mesh %s: %s",
						m->name, db_errmsg(db));
	db_done(st);
	if (rc != WEFT_OK)
		goto out;
	changes_add(ch, "meshes");
	changes_add(ch, "mesh:%s", m->name);
	w->result = mesh_get(db, m->name, m->dev);
out:
	json_decref(cur);
	json_decref(def);
	free(meta);
	free(td_alloc);
	return rc;
}

/* Up to 5 distinct values of a one-column query, joined with ", ". */
static int collect(struct db *db, struct db_stmt *st, const char *name, char *out, size_t size,
		   int *n)
{
	size_t len = 0;
	int rc;

	(void)db;
	*n = 0;
	out[0] = '\0';
	db_bind_text(st, 1, name);
	while ((rc = db_step(st)) == DB_ROW) {
		const char *v = db_col_text(st, 0);
		if (*n < 5 && len < size)
			len += (size_t)snprintf(out + len, size - len, "%s%s", *n ? ", " : "", v ? v : "");
		(*n)++;
	}
	db_done(st);
	return rc == DB_DONE ? 0 : -1;
}

int mesh_apply_delete(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch)
{
	const char *name = w->arg;
	char svcs[512], entries[512];
	int nsvc = 0, nent = 0, rc;
	struct db_stmt *st;

	(void)index;
	if (strcmp(name, MESH_DEFAULT) == 0)
		return weft_errf(&w->err, WEFT_EINVAL, "name: the default mesh cannot be deleted");
	rc = mesh_exists(db, name);
	if (rc < 0)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	if (rc == 0)
		return weft_errf(&w->err, WEFT_ENOENT, "mesh \"%s\" does not exist", name);
	st = db_prep(db, "SELECT DISTINCT name FROM services WHERE mesh = ? ORDER BY name");
	if (st == NULL || collect(db, st, name, svcs, sizeof(svcs), &nsvc) < 0)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	st = db_prep(db, "SELECT kind || '/' || name FROM config_entries WHERE mesh = ?"
			 " ORDER BY kind, name");
	if (st == NULL || collect(db, st, name, entries, sizeof(entries), &nent) < 0)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	if (nsvc || nent)
		return weft_errf(&w->err, WEFT_ECONFLICT,
				 "mesh \"%s\" is in use:%s%s%s%s%s%s%s; remove them first", name,
				 nsvc ? " services " : "", nsvc ? svcs : "", nsvc > 5 ? ", ..." : "",
				 nsvc && nent ? ";" : "",
				 nent ? " config entries " : "", nent ? entries : "",
				 nent > 5 ? ", ..." : "");
	st = db_prep(db, "DELETE FROM meshes WHERE name = ?");
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, name);
	rc = db_step(st) == DB_DONE ? WEFT_OK
				    : weft_errf(&w->err, WEFT_EIO, "store: cannot delete mesh %s: %s",
						name, db_errmsg(db));
	db_done(st);
	/* Its CA goes with it (server/castore.h): a mesh made again later gets a
	 * new one. */
	st = rc == WEFT_OK ? db_prep(db, "DELETE FROM ca_roots WHERE mesh = ?") : NULL;
	if (st) {
		db_bind_text(st, 1, name);
		if (db_step(st) != DB_DONE)
			rc = weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		db_done(st);
	}
	st = rc == WEFT_OK ? db_prep(db, "DELETE FROM ca_config WHERE mesh = ?") : NULL;
	if (st) {
		db_bind_text(st, 1, name);
		if (db_step(st) != DB_DONE)
			rc = weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		db_done(st);
	}
	if (rc == WEFT_OK) {
		changes_add(ch, "meshes");
		changes_add(ch, "mesh:%s", name);
		changes_add(ch, "ca:%s", name);
	}
	return rc;
}
