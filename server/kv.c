#include "kv.h"
#include "err.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct kv_write *kv_write_new(enum kv_op op, const char *key, const void *value,
			      size_t value_len)
{
	struct kv_write *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return NULL;
	k->op = op;
	k->key = strdup(key);
	if (value_len > 0) {
		k->value = malloc(value_len);
		if (k->value)
			memcpy(k->value, value, value_len);
		k->value_len = value_len;
	}
	if (k->key == NULL || (value_len > 0 && k->value == NULL)) {
		kv_write_free(k);
		return NULL;
	}
	return k;
}

void kv_write_free(struct kv_write *k)
{
	if (k == NULL)
		return;
	free(k->key);
	free(k->value);
	free(k->session);
	free(k);
}

int kv_check_key(const char *key, char **err)
{
	size_t n = strlen(key);
	json_t *probe;

	if (n == 0)
		return weft_errf(err, WEFT_EINVAL, "key: Missing key name");
	if (n > KV_KEY_MAX)
		return weft_errf(err, WEFT_EINVAL, "key: %zu bytes is over the limit of %d bytes", n,
				 KV_KEY_MAX);
	/* Keys travel as JSON strings: they must be UTF-8. */
	probe = json_string(key);
	if (probe == NULL)
		return weft_errf(err, WEFT_EINVAL, "key: is not valid UTF-8");
	json_decref(probe);
	return WEFT_OK;
}

/* ---- writes ---- */

struct kv_row {
	int found;
	char *session;          /* NULL when not locked */
	int64_t lock_index, create_index, modify_index;
};

static int row_load(struct db *db, const char *key, struct kv_row *row, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT session, lock_index, create_index, modify_index"
					 " FROM kv WHERE key = ?");

	memset(row, 0, sizeof(*row));
	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, key);
	if (db_step(st) == DB_ROW) {
		const char *s = db_col_text(st, 0);
		row->found = 1;
		row->session = s && s[0] ? strdup(s) : NULL;
		row->lock_index = db_col_int(st, 1);
		row->create_index = db_col_int(st, 2);
		row->modify_index = db_col_int(st, 3);
	}
	db_done(st);
	return WEFT_OK;
}

static void touch(struct store_changes *ch, const char *key)
{
	changes_add_prefixes(ch, "kv:", key);
	changes_add(ch, "kvx:%s", key);
}

/* touch() for a key under prefix whose own "kv:" prefixes up to and
 * including prefix are already published: a tree delete names each once. */
static void touch_below(struct store_changes *ch, const char *key, size_t plen)
{
	size_t len = strlen(key);

	for (size_t i = plen + 1; i <= len; i++)
		changes_add(ch, "kv:%.*s", (int)i, key);
	changes_add(ch, "kvx:%s", key);
}

static int row_put(struct db *db, uint64_t index, const struct kv_write *k, const char *session,
		   int64_t lock_index, int64_t create_index, struct store_changes *ch, char **err)
{
	struct db_stmt *st = db_prep(db, "INSERT INTO kv (key, value, flags, session, lock_index,"
					 " create_index, modify_index) VALUES (?, ?, ?, ?, ?, ?, ?)"
					 " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
					 " flags = excluded.flags, session = excluded.session,"
					 " lock_index = excluded.lock_index,"
					 " create_index = excluded.create_index,"
					 " modify_index = excluded.modify_index");
	int rc = WEFT_OK;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, k->key);
	if (k->value_len > 0)
		db_bind_blob(st, 2, k->value, k->value_len);
	else
		db_bind_text(st, 2, NULL);
	db_bind_int(st, 3, k->flags);
	db_bind_text(st, 4, session);
	db_bind_int(st, 5, lock_index);
	db_bind_int(st, 6, create_index);
	db_bind_int(st, 7, (int64_t)index);
	if (db_step(st) != DB_DONE)
		rc = weft_errf(err, WEFT_EIO, "store: cannot write key \"%s\": %s", k->key,
			       db_errmsg(db));
	db_done(st);
	if (rc == WEFT_OK)
		touch(ch, k->key);
	return rc;
}

/* Deletes key; publishes its topics unless ch is NULL. */
static int row_delete(struct db *db, const char *key, struct store_changes *ch, char **err)
{
	struct db_stmt *st = db_prep(db, "DELETE FROM kv WHERE key = ?");
	int rc = WEFT_OK;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, key);
	if (db_step(st) != DB_DONE)
		rc = weft_errf(err, WEFT_EIO, "store: cannot delete key \"%s\": %s", key, db_errmsg(db));
	db_done(st);
	if (rc == WEFT_OK && ch)
		touch(ch, key);
	return rc;
}

static int session_exists(struct db *db, const char *id)
{
	struct db_stmt *st = db_prep(db, "SELECT 1 FROM sessions WHERE id = ?");
	int found;

	if (st == NULL)
		return 0;
	db_bind_text(st, 1, id);
	found = db_step(st) == DB_ROW;
	db_done(st);
	return found;
}

static int in_lock_delay(struct db *db, const char *key, int64_t now_ms)
{
	struct db_stmt *st = db_prep(db, "SELECT until_ms FROM kv_lock_delay WHERE key = ?");
	int delayed = 0;

	if (st == NULL)
		return 0;
	db_bind_text(st, 1, key);
	if (db_step(st) == DB_ROW)
		delayed = db_col_int(st, 0) > now_ms;
	db_done(st);
	return delayed;
}

/* Consul's KVSLock: a new acquisition bumps LockIndex; re-acquiring a lock
 * the session already holds keeps it; another holder or a lock-delay
 * window refuses it. */
static int apply_lock(struct db *db, uint64_t index, const struct kv_write *k,
		      const struct kv_row *row, int *ok, struct store_changes *ch, char **err)
{
	int64_t lock_index = 1, create_index = (int64_t)index;

	if (k->session == NULL || k->session[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "acquire: a session ID is required");
	if (!session_exists(db, k->session))
		return weft_errf(err, WEFT_EINVAL, "acquire: invalid session \"%s\" (no such session)",
				 k->session);
	if (in_lock_delay(db, k->key, k->now_ms)) {
		*ok = 0;
		return WEFT_OK;
	}
	if (row->found) {
		if (row->session && strcmp(row->session, k->session) == 0) {
			lock_index = row->lock_index;
		} else if (row->session) {
			*ok = 0;
			return WEFT_OK;
		} else {
			lock_index = row->lock_index + 1;
		}
		create_index = row->create_index;
	}
	return row_put(db, index, k, k->session, lock_index, create_index, ch, err);
}

static int apply_unlock(struct db *db, uint64_t index, const struct kv_write *k,
			const struct kv_row *row, int *ok, struct store_changes *ch, char **err)
{
	if (k->session == NULL || k->session[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "release: a session ID is required");
	if (!row->found || row->session == NULL || strcmp(row->session, k->session) != 0) {
		*ok = 0;
		return WEFT_OK;
	}
	return row_put(db, index, k, NULL, row->lock_index, row->create_index, ch, err);
}

static int delete_tree(struct db *db, const char *prefix, struct store_changes *ch, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT key FROM kv WHERE key >= ? ORDER BY key");
	size_t plen = strlen(prefix), n = 0, cap = 0, i;
	char **keys = NULL;
	int rc = WEFT_OK;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, prefix);
	while (db_step(st) == DB_ROW) {
		const char *key = db_col_text(st, 0);
		if (strncmp(key, prefix, plen) != 0)
			break;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **p = realloc(keys, nc * sizeof(*p));
			if (p == NULL) {
				rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
				break;
			}
			keys = p;
			cap = nc;
		}
		if ((keys[n] = strdup(key)) == NULL) {
			rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	db_done(st);
	if (rc == WEFT_OK && n > 0)
		changes_add_prefixes(ch, "kv:", prefix);
	for (i = 0; rc == WEFT_OK && i < n; i++) {
		rc = row_delete(db, keys[i], NULL, err);
		if (rc == WEFT_OK)
			touch_below(ch, keys[i], plen);
	}
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return rc;
}

int kv_apply(struct db *db, uint64_t index, struct store_write *w, struct store_changes *ch)
{
	const struct kv_write *k = w->arg;
	struct kv_row row;
	int rc, ok = 1;

	if (k->op == KV_DELETE_TREE) {
		rc = delete_tree(db, k->key, ch, &w->err);
		goto out;
	}
	rc = row_load(db, k->key, &row, &w->err);
	if (rc != WEFT_OK)
		goto out;
	switch (k->op) {
	case KV_CAS:
		if ((k->cas == 0 && row.found) ||
		    (k->cas != 0 && (!row.found || (uint64_t)row.modify_index != k->cas))) {
			ok = 0;
			break;
		}
		/* fall through */
	case KV_SET:
		/* A plain write keeps the lock and its LockIndex. */
		rc = row_put(db, index, k, row.session, row.lock_index,
			     row.found ? row.create_index : (int64_t)index, ch, &w->err);
		break;
	case KV_LOCK:
		rc = apply_lock(db, index, k, &row, &ok, ch, &w->err);
		break;
	case KV_UNLOCK:
		rc = apply_unlock(db, index, k, &row, &ok, ch, &w->err);
		break;
	case KV_DELETE:
		if (row.found)
			rc = row_delete(db, k->key, ch, &w->err);
		break;
	case KV_DELETE_CAS:
		/* As Consul: deleting an absent key succeeds. */
		if (row.found && (uint64_t)row.modify_index != k->cas)
			ok = 0;
		else if (row.found)
			rc = row_delete(db, k->key, ch, &w->err);
		break;
	case KV_DELETE_TREE:
		break;
	}
	free(row.session);
out:
	if (rc == WEFT_OK)
		w->result = json_boolean(ok);
	return rc;
}

int kv_session_invalidated(struct db *db, uint64_t index, const char *session, int delete_keys,
			   int64_t lock_delay_ms, int64_t now_ms, struct store_changes *ch,
			   char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT key FROM kv WHERE session = ? ORDER BY key");
	size_t n = 0, cap = 0, i;
	char **keys = NULL;
	int rc = WEFT_OK;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, session);
	while (db_step(st) == DB_ROW) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			char **p = realloc(keys, nc * sizeof(*p));
			if (p == NULL)
				break;
			keys = p;
			cap = nc;
		}
		if ((keys[n] = strdup(db_col_text(st, 0))) == NULL)
			break;
		n++;
	}
	db_done(st);
	if (lock_delay_ms > KV_MAX_LOCK_DELAY_MS)
		lock_delay_ms = KV_MAX_LOCK_DELAY_MS;
	/* Expired windows are of no further use. */
	st = db_prep(db, "DELETE FROM kv_lock_delay WHERE until_ms <= ?");
	if (st) {
		db_bind_int(st, 1, now_ms);
		db_step(st);
		db_done(st);
	}
	for (i = 0; rc == WEFT_OK && i < n; i++) {
		if (delete_keys) {
			rc = row_delete(db, keys[i], ch, err);
		} else {
			st = db_prep(db, "UPDATE kv SET session = NULL, modify_index = ? WHERE key = ?");
			if (st == NULL) {
				rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
				break;
			}
			db_bind_int(st, 1, (int64_t)index);
			db_bind_text(st, 2, keys[i]);
			if (db_step(st) != DB_DONE)
				rc = weft_errf(err, WEFT_EIO, "store: cannot release key \"%s\": %s",
					       keys[i], db_errmsg(db));
			db_done(st);
			if (rc == WEFT_OK)
				touch(ch, keys[i]);
		}
		if (rc == WEFT_OK && lock_delay_ms > 0) {
			st = db_prep(db, "INSERT INTO kv_lock_delay (key, until_ms) VALUES (?, ?)"
					 " ON CONFLICT (key) DO UPDATE SET until_ms = excluded.until_ms");
			if (st == NULL) {
				rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
				break;
			}
			db_bind_text(st, 1, keys[i]);
			db_bind_int(st, 2, now_ms + lock_delay_ms);
			if (db_step(st) != DB_DONE)
				rc = weft_errf(err, WEFT_EIO, "store: cannot record the lock-delay of \"%s\": %s",
					       keys[i], db_errmsg(db));
			db_done(st);
		}
	}
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return rc;
}

/* ---- reads ---- */

#define KV_COLS "key, value, flags, session, lock_index, create_index, modify_index"

/* Consul's DirEntry; Value is base64, null when there is none. */
static json_t *entry_from_row(struct db_stmt *st)
{
	json_t *e = json_object();
	size_t len = 0;
	const void *val = db_col_blob(st, 1, &len);
	const char *session = db_col_text(st, 3);
	char *b64 = NULL;

	if (e == NULL)
		return NULL;
	json_object_set_new(e, "LockIndex", json_integer(db_col_int(st, 4)));
	json_object_set_new(e, "Key", json_string(db_col_text(st, 0)));
	json_object_set_new(e, "Flags", json_integer(db_col_int(st, 2)));
	if (val && len > 0 && (b64 = base64_encode(val, len)) != NULL)
		json_object_set_new(e, "Value", json_string(b64));
	else
		json_object_set_new(e, "Value", json_null());
	free(b64);
	if (session && session[0])
		json_object_set_new(e, "Session", json_string(session));
	json_object_set_new(e, "CreateIndex", json_integer(db_col_int(st, 5)));
	json_object_set_new(e, "ModifyIndex", json_integer(db_col_int(st, 6)));
	return e;
}

json_t *kv_get(struct db *db, const char *key)
{
	struct db_stmt *st = db_prep(db, "SELECT " KV_COLS " FROM kv WHERE key = ?");
	json_t *out = json_array();

	if (st == NULL)
		return out;
	db_bind_text(st, 1, key);
	if (db_step(st) == DB_ROW)
		json_array_append_new(out, entry_from_row(st));
	db_done(st);
	return out;
}

json_t *kv_list(struct db *db, const char *prefix)
{
	struct db_stmt *st = db_prep(db, "SELECT " KV_COLS " FROM kv WHERE key >= ? ORDER BY key");
	size_t plen = strlen(prefix);
	json_t *out = json_array();

	if (st == NULL)
		return out;
	db_bind_text(st, 1, prefix);
	while (db_step(st) == DB_ROW) {
		if (strncmp(db_col_text(st, 0), prefix, plen) != 0)
			break;
		json_array_append_new(out, entry_from_row(st));
	}
	db_done(st);
	return out;
}

json_t *kv_keys(struct db *db, const char *prefix, const char *sep)
{
	struct db_stmt *st = db_prep(db, "SELECT key FROM kv WHERE key >= ? ORDER BY key");
	size_t plen = strlen(prefix), slen = sep ? strlen(sep) : 0;
	json_t *out = json_array();
	char *prev = NULL;

	if (st == NULL)
		return out;
	db_bind_text(st, 1, prefix);
	while (db_step(st) == DB_ROW) {
		const char *key = db_col_text(st, 0), *hit;
		size_t n;

		if (strncmp(key, prefix, plen) != 0)
			break;
		/* With a separator, keys below the next one roll up into
		 * their common "directory", as Consul's KVSListKeys. */
		hit = slen ? strstr(key + plen, sep) : NULL;
		n = hit ? (size_t)(hit - key) + slen : strlen(key);
		if (prev && strlen(prev) == n && strncmp(prev, key, n) == 0)
			continue;
		free(prev);
		prev = strndup(key, n);
		json_array_append_new(out, json_stringn(key, n));
	}
	db_done(st);
	free(prev);
	return out;
}

int kv_get_raw(struct db *db, const char *key, char **out, size_t *len)
{
	struct db_stmt *st = db_prep(db, "SELECT value FROM kv WHERE key = ?");
	int found = 0;

	*out = NULL;
	*len = 0;
	if (st == NULL)
		return 0;
	db_bind_text(st, 1, key);
	if (db_step(st) == DB_ROW) {
		size_t n = 0;
		const void *v = db_col_blob(st, 0, &n);
		*out = malloc(n + 1);
		if (*out) {
			if (n)
				memcpy(*out, v, n);
			(*out)[n] = '\0';
			*len = n;
			found = 1;
		}
	}
	db_done(st);
	return found;
}
