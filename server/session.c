#include "session.h"
#include "duration.h"
#include "err.h"
#include "jsonx.h"
#include "kv.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERF_CHECK "serfHealth"
#define NAME_MAX_LEN 1024
#define CHECK_ID_MAX 256

/* ---- decoding ---- */

static int str_array_has(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		if (strcmp(json_string_value(v), s) == 0)
			return 1;
	return 0;
}

/* Go's time.Duration in JSON is nanoseconds; Consul also takes a duration
 * string, and reads numbers below 1000 (which users mean as seconds) as
 * seconds. */
static int decode_lock_delay(json_t *doc, long long *out_ms, char **err)
{
	json_t *v = jx_field(doc, "LockDelay");
	long long ms;
	double n;

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (json_is_string(v)) {
		if (duration_parse_ms(json_string_value(v), &ms) != 0)
			return weft_errf(err, WEFT_EINVAL,
					 "LockDelay: \"%s\" is not a duration (use 15s, 500ms)",
					 json_string_value(v));
	} else if (json_is_number(v)) {
		n = json_number_value(v);
		if (n < 0 || n > 9e18)
			return weft_errf(err, WEFT_EINVAL, "LockDelay: %g is out of range", n);
		ms = n < 1000 ? (long long)(n * 1000) : (long long)(n / 1e6);
	} else {
		return weft_errf(err, WEFT_EINVAL,
				 "LockDelay: must be a duration string or a number of nanoseconds");
	}
	if (ms < 0)
		return weft_errf(err, WEFT_EINVAL, "LockDelay: must not be negative");
	*out_ms = ms;
	return WEFT_OK;
}

static int decode_service_checks(json_t *doc, json_t *out, char **err)
{
	json_t *arr = NULL, *e;
	size_t i;
	char ctx[64];

	if (jx_array(doc, NULL, "ServiceChecks", &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (arr == NULL)
		return WEFT_OK;
	json_array_foreach(arr, i, e) {
		const char *id = NULL, *ns = "";
		snprintf(ctx, sizeof(ctx), "ServiceChecks[%zu]", i);
		if (!json_is_object(e))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an object with ID", ctx);
		if (jx_req_str(e, ctx, "ID", &id, CHECK_ID_MAX, err) != WEFT_OK ||
		    jx_str(e, ctx, "Namespace", &ns, CHECK_ID_MAX, err) != WEFT_OK)
			return WEFT_EINVAL;
		json_array_append_new(out, json_pack("{s:s, s:s}", "ID", id, "Namespace", ns));
	}
	return WEFT_OK;
}

int session_decode_create(json_t *doc, const char *default_node, struct session_create *c,
			  char **err)
{
	json_t *checks = NULL, *node_checks = NULL, *v;
	const char *ttl = NULL;
	size_t i;

	memset(c, 0, sizeof(*c));
	c->doc = doc ? json_incref(doc) : json_object();
	c->name = "";
	c->node = default_node;
	c->behavior = "release";
	c->lock_delay_ms = SESSION_DEFAULT_LOCK_DELAY_MS;
	c->node_checks = json_array();
	c->service_checks = json_array();
	uuid_generate(c->id);
	if (c->doc == NULL || c->node_checks == NULL || c->service_checks == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	if (!json_is_object(c->doc))
		return weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
	doc = c->doc;
	if (jx_str(doc, NULL, "Name", &c->name, NAME_MAX_LEN, err) != WEFT_OK ||
	    jx_str(doc, NULL, "Node", &c->node, 256, err) != WEFT_OK ||
	    jx_str(doc, NULL, "Behavior", &c->behavior, 16, err) != WEFT_OK ||
	    jx_str(doc, NULL, "TTL", &ttl, 32, err) != WEFT_OK ||
	    jx_str_array(doc, NULL, "Checks", &checks, CHECK_ID_MAX, err) != WEFT_OK ||
	    jx_str_array(doc, NULL, "NodeChecks", &node_checks, CHECK_ID_MAX, err) != WEFT_OK ||
	    decode_lock_delay(doc, &c->lock_delay_ms, err) != WEFT_OK ||
	    decode_service_checks(doc, c->service_checks, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (c->node == NULL || c->node[0] == '\0')
		c->node = default_node;
	if (c->behavior[0] == '\0')
		c->behavior = "release";
	if (strcmp(c->behavior, "release") != 0 && strcmp(c->behavior, "delete") != 0)
		return weft_errf(err, WEFT_EINVAL, "Behavior: \"%s\" is not one of release, delete",
				 c->behavior);
	if (ttl && ttl[0]) {
		if (duration_parse_ms(ttl, &c->ttl_ms) != 0)
			return weft_errf(err, WEFT_EINVAL, "TTL: \"%s\" is not a duration (use 10s, 1m)",
					 ttl);
		if (c->ttl_ms != 0 && (c->ttl_ms < SESSION_TTL_MIN_MS || c->ttl_ms > SESSION_TTL_MAX_MS))
			return weft_errf(err, WEFT_EINVAL, "TTL: \"%s\" must be between 10s and 24h0m0s",
					 ttl);
	}
	/* Consul defaults both Checks and NodeChecks to serfHealth and then
	 * reconciles them (fixupEmptySessionChecks): an empty Checks removes
	 * every node check, the default Checks defers to NodeChecks, an empty
	 * NodeChecks drops Checks; otherwise both count. */
	{
		int checks_default = checks == NULL, nc_default = node_checks == NULL;
		size_t nchecks = checks ? json_array_size(checks) : 1;
		size_t nnc = node_checks ? json_array_size(node_checks) : 1;
		int checks_is_serf = checks_default ||
				     (nchecks == 1 &&
				      strcmp(json_string_value(json_array_get(checks, 0)), SERF_CHECK) == 0);
		int use_checks = 1, use_nc = 1;

		if (nchecks == 0)
			use_nc = 0;
		else if (checks_is_serf)
			use_checks = 0;
		else if (nnc == 0)
			use_checks = 0;
		if (use_nc) {
			if (nc_default)
				json_array_append_new(c->node_checks, json_string(SERF_CHECK));
			else
				json_array_foreach(node_checks, i, v)
					if (!str_array_has(c->node_checks, json_string_value(v)))
						json_array_append(c->node_checks, v);
		}
		if (use_checks && checks) {
			json_array_foreach(checks, i, v)
				if (!str_array_has(c->node_checks, json_string_value(v)))
					json_array_append(c->node_checks, v);
		}
	}
	if (json_array_size(c->node_checks) + json_array_size(c->service_checks) > SESSION_MAX_CHECKS)
		return weft_errf(err, WEFT_EINVAL, "Checks: at most %d checks per session",
				 SESSION_MAX_CHECKS);
	return WEFT_OK;
}

void session_create_free(struct session_create *c)
{
	if (c == NULL)
		return;
	json_decref(c->doc);
	json_decref(c->node_checks);
	json_decref(c->service_checks);
	free(c);
}

struct session_op *session_op_new(const char *id, int64_t now_ms)
{
	struct session_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->id = strdup(id);
	op->now_ms = now_ms;
	if (op->id == NULL) {
		free(op);
		return NULL;
	}
	return op;
}

void session_op_free(struct session_op *op)
{
	if (op == NULL)
		return;
	free(op->id);
	free(op);
}

/* ---- writes ---- */

static void touch(struct store_changes *ch, const char *id, const char *node)
{
	changes_add(ch, "sessions");
	changes_add(ch, "session:%s", id);
	changes_add(ch, "sessnode:%s", node);
}

/* A check a session is tied to must exist on its node and not be critical. */
static int check_usable(struct db *db, const char *node, const char *field, const char *id,
			char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT status FROM checks WHERE node = ? AND check_id = ?");
	int rc = WEFT_OK;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, id);
	if (db_step(st) != DB_ROW)
		rc = weft_errf(err, WEFT_EINVAL,
			       "%s: check \"%s\" is not registered on node \"%s\" (Missing check '%s' registration)",
			       field, id, node, id);
	else if (strcmp(db_col_text(st, 0), "critical") == 0)
		rc = weft_errf(err, WEFT_EINVAL,
			       "%s: check \"%s\" on node \"%s\" is critical (Check '%s' is in critical state)",
			       field, id, node, id);
	db_done(st);
	return rc;
}

int session_apply_create(struct db *db, uint64_t index, struct store_write *w,
			 struct store_changes *ch)
{
	const struct session_create *c = w->arg;
	struct db_stmt *st;
	char *nc = NULL, *sc = NULL;
	size_t i;
	json_t *v;
	int rc = WEFT_OK;

	st = db_prep(db, "SELECT 1 FROM nodes WHERE name = ?");
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, c->node);
	if (db_step(st) != DB_ROW)
		rc = weft_errf(&w->err, WEFT_EINVAL,
			       "Node: node \"%s\" is not registered (Missing node registration)", c->node);
	db_done(st);
	json_array_foreach(c->node_checks, i, v) {
		if (rc == WEFT_OK)
			rc = check_usable(db, c->node, "NodeChecks", json_string_value(v), &w->err);
	}
	json_array_foreach(c->service_checks, i, v) {
		if (rc == WEFT_OK)
			rc = check_usable(db, c->node, "ServiceChecks",
					  json_string_value(json_object_get(v, "ID")), &w->err);
	}
	if (rc != WEFT_OK)
		return rc;
	nc = jx_dump(c->node_checks);
	sc = jx_dump(c->service_checks);
	st = db_prep(db, "INSERT INTO sessions (id, name, node, node_checks, service_checks, behavior,"
			 " ttl_ms, lock_delay_ms, expires_at, create_index, modify_index)"
			 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (st == NULL || nc == NULL || sc == NULL) {
		rc = weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, c->id);
	db_bind_text(st, 2, c->name);
	db_bind_text(st, 3, c->node);
	db_bind_text(st, 4, nc);
	db_bind_text(st, 5, sc);
	db_bind_text(st, 6, c->behavior);
	db_bind_int(st, 7, c->ttl_ms);
	db_bind_int(st, 8, c->lock_delay_ms);
	db_bind_int(st, 9, c->ttl_ms > 0 ? c->now_ms + SESSION_TTL_MULTIPLIER * c->ttl_ms : 0);
	db_bind_int(st, 10, (int64_t)index);
	db_bind_int(st, 11, (int64_t)index);
	if (db_step(st) != DB_DONE)
		rc = weft_errf(&w->err, WEFT_EIO, "store: cannot write session %s: %s", c->id,
			       db_errmsg(db));
	db_done(st);
	if (rc == WEFT_OK) {
		touch(ch, c->id, c->node);
		w->result = json_pack("{s:s}", "ID", c->id);
	}
out:
	free(nc);
	free(sc);
	return rc;
}

int session_invalidate(struct db *db, uint64_t index, const char *id, int64_t now_ms,
		       struct store_changes *ch, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT node, behavior, lock_delay_ms FROM sessions"
					 " WHERE id = ?");
	char *node = NULL;
	int del = 0, rc = WEFT_OK;
	int64_t delay = 0;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, id);
	if (db_step(st) == DB_ROW) {
		node = strdup(db_col_text(st, 0));
		del = strcmp(db_col_text(st, 1), "delete") == 0;
		delay = db_col_int(st, 2);
	}
	db_done(st);
	if (node == NULL)
		return WEFT_OK;   /* already gone: as Consul, nothing to do */
	st = db_prep(db, "DELETE FROM sessions WHERE id = ?");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, id);
	if (db_step(st) != DB_DONE)
		rc = weft_errf(err, WEFT_EIO, "store: cannot delete session %s: %s", id, db_errmsg(db));
	db_done(st);
	if (rc == WEFT_OK)
		rc = kv_session_invalidated(db, index, id, del, delay, now_ms, ch, err);
	if (rc == WEFT_OK) {
		touch(ch, id, node);
		log_info("session", "invalidated id=%s node=%s behavior=%s", id, node,
			 del ? "delete" : "release");
	}
out:
	free(node);
	return rc;
}

int session_apply_destroy(struct db *db, uint64_t index, struct store_write *w,
			  struct store_changes *ch)
{
	const struct session_op *op = w->arg;

	return session_invalidate(db, index, op->id, op->now_ms, ch, &w->err);
}

int session_apply_renew(struct db *db, uint64_t index, struct store_write *w,
			struct store_changes *ch)
{
	const struct session_op *op = w->arg;
	struct db_stmt *st;
	json_t *out;
	int rc;

	(void)index;
	(void)ch;   /* a renewal changes nothing a reader sees */
	st = db_prep(db, "UPDATE sessions SET expires_at = ? + ? * ttl_ms WHERE id = ? AND ttl_ms > 0");
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_int(st, 1, op->now_ms);
	db_bind_int(st, 2, SESSION_TTL_MULTIPLIER);
	db_bind_text(st, 3, op->id);
	rc = db_step(st);
	db_done(st);
	if (rc != DB_DONE)
		return weft_errf(&w->err, WEFT_EIO, "store: cannot renew session %s: %s", op->id,
				 db_errmsg(db));
	out = session_get(db, op->id);
	if (json_array_size(out) == 0) {
		json_decref(out);
		return weft_errf(&w->err, WEFT_ENOENT, "Session id '%s' not found", op->id);
	}
	w->result = out;
	return WEFT_OK;
}

int session_apply_expire(struct db *db, uint64_t index, struct store_write *w,
			 struct store_changes *ch)
{
	const struct session_op *op = w->arg;
	struct db_stmt *st = db_prep(db, "SELECT 1 FROM sessions WHERE id = ? AND ttl_ms > 0"
					 " AND expires_at <= ?");
	int due, rc = WEFT_OK;

	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, op->id);
	db_bind_int(st, 2, op->now_ms);
	due = db_step(st) == DB_ROW;
	db_done(st);
	/* A renewal may have come in since the reaper looked. */
	if (due) {
		rc = session_invalidate(db, index, op->id, op->now_ms, ch, &w->err);
		if (rc == WEFT_OK)
			log_info("session", "ttl expired id=%s", op->id);
	}
	if (rc == WEFT_OK)
		w->result = json_boolean(due);
	return rc;
}

/* ---- catalog hooks ---- */

/* The IDs of node's sessions tied to check_id (every one when NULL). */
static json_t *sessions_of_node(struct db *db, const char *node, const char *check_id)
{
	struct db_stmt *st = db_prep(db, "SELECT id, node_checks, service_checks FROM sessions"
					 " WHERE node = ? ORDER BY id");
	json_t *ids = json_array();

	if (st == NULL)
		return ids;
	db_bind_text(st, 1, node);
	while (db_step(st) == DB_ROW) {
		int hit = check_id == NULL;
		if (!hit) {
			json_t *nc = jx_load_or(db_col_text(st, 1), JSON_ARRAY);
			json_t *sc = jx_load_or(db_col_text(st, 2), JSON_ARRAY), *v;
			size_t i;
			hit = str_array_has(nc, check_id);
			json_array_foreach(sc, i, v) {
				const char *sid = json_string_value(json_object_get(v, "ID"));
				if (sid && strcmp(sid, check_id) == 0)
					hit = 1;
			}
			json_decref(nc);
			json_decref(sc);
		}
		if (hit)
			json_array_append_new(ids, json_string(db_col_text(st, 0)));
	}
	db_done(st);
	return ids;
}

static int invalidate_all(struct db *db, uint64_t index, json_t *ids, int64_t now_ms,
			  struct store_changes *ch, char **err)
{
	size_t i;
	json_t *v;
	int rc = WEFT_OK;

	json_array_foreach(ids, i, v) {
		rc = session_invalidate(db, index, json_string_value(v), now_ms, ch, err);
		if (rc != WEFT_OK)
			break;
	}
	json_decref(ids);
	return rc;
}

int session_on_check_critical(struct db *db, uint64_t index, const char *node,
			      const char *check_id, int64_t now_ms, struct store_changes *ch,
			      char **err)
{
	return invalidate_all(db, index, sessions_of_node(db, node, check_id), now_ms, ch, err);
}

int session_on_check_removed(struct db *db, uint64_t index, const char *node,
			     const char *check_id, int64_t now_ms, struct store_changes *ch,
			     char **err)
{
	return invalidate_all(db, index, sessions_of_node(db, node, check_id), now_ms, ch, err);
}

int session_on_service_removed(struct db *db, uint64_t index, const char *node,
			       const char *service_id, int64_t now_ms, struct store_changes *ch,
			       char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT check_id FROM checks WHERE node = ? AND service_id = ?");
	json_t *checks = json_array(), *v;
	size_t i;
	int rc = WEFT_OK;

	if (st == NULL) {
		json_decref(checks);
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	}
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, service_id);
	while (db_step(st) == DB_ROW)
		json_array_append_new(checks, json_string(db_col_text(st, 0)));
	db_done(st);
	json_array_foreach(checks, i, v) {
		rc = session_on_check_removed(db, index, node, json_string_value(v), now_ms, ch, err);
		if (rc != WEFT_OK)
			break;
	}
	json_decref(checks);
	return rc;
}

int session_on_node_removed(struct db *db, uint64_t index, const char *node, int64_t now_ms,
			    struct store_changes *ch, char **err)
{
	return invalidate_all(db, index, sessions_of_node(db, node, NULL), now_ms, ch, err);
}

/* ---- reads ---- */

#define SESSION_COLS "id, name, node, node_checks, service_checks, behavior, ttl_ms," \
	" lock_delay_ms, create_index, modify_index"

static json_t *session_from_row(struct db_stmt *st)
{
	json_t *s = json_object(), *nc, *sc, *all, *v;
	int64_t ttl = db_col_int(st, 6);
	char ttl_text[32] = "";
	size_t i;

	if (s == NULL)
		return NULL;
	if (ttl > 0)
		duration_format(ttl, ttl_text, sizeof(ttl_text));
	nc = jx_load_or(db_col_text(st, 3), JSON_ARRAY);
	sc = jx_load_or(db_col_text(st, 4), JSON_ARRAY);
	/* Checks: every check the session is tied to, for pre-1.7 clients. */
	all = json_deep_copy(nc);
	json_array_foreach(sc, i, v)
		json_array_append(all, json_object_get(v, "ID"));
	json_object_set_new(s, "ID", json_string(db_col_text(st, 0)));
	json_object_set_new(s, "Name", json_string(db_col_text(st, 1)));
	json_object_set_new(s, "Node", json_string(db_col_text(st, 2)));
	json_object_set_new(s, "LockDelay", json_integer(db_col_int(st, 7) * 1000000));
	json_object_set_new(s, "Behavior", json_string(db_col_text(st, 5)));
	json_object_set_new(s, "TTL", json_string(ttl_text));
	json_object_set_new(s, "NodeChecks", json_array_size(nc) ? nc : json_null());
	if (json_array_size(nc) == 0)
		json_decref(nc);
	json_object_set_new(s, "ServiceChecks", json_array_size(sc) ? sc : json_null());
	if (json_array_size(sc) == 0)
		json_decref(sc);
	if (json_array_size(all))
		json_object_set_new(s, "Checks", all);
	else
		json_decref(all);
	json_object_set_new(s, "CreateIndex", json_integer(db_col_int(st, 8)));
	json_object_set_new(s, "ModifyIndex", json_integer(db_col_int(st, 9)));
	return s;
}

static json_t *sessions_query(struct db_stmt *st)
{
	json_t *out = json_array();

	while (db_step(st) == DB_ROW)
		json_array_append_new(out, session_from_row(st));
	db_done(st);
	return out;
}

json_t *session_get(struct db *db, const char *id)
{
	struct db_stmt *st = db_prep(db, "SELECT " SESSION_COLS " FROM sessions WHERE id = ?");

	if (st == NULL)
		return json_array();
	db_bind_text(st, 1, id);
	return sessions_query(st);
}

json_t *session_list(struct db *db)
{
	struct db_stmt *st = db_prep(db, "SELECT " SESSION_COLS " FROM sessions ORDER BY id");

	if (st == NULL)
		return json_array();
	return sessions_query(st);
}

json_t *session_node_list(struct db *db, const char *node)
{
	struct db_stmt *st = db_prep(db, "SELECT " SESSION_COLS " FROM sessions WHERE node = ?"
					 " ORDER BY id");

	if (st == NULL)
		return json_array();
	db_bind_text(st, 1, node);
	return sessions_query(st);
}

char *session_node_of(struct db *db, const char *id)
{
	struct db_stmt *st = db_prep(db, "SELECT node FROM sessions WHERE id = ?");
	char *node = NULL;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, id);
	if (db_step(st) == DB_ROW)
		node = strdup(db_col_text(st, 0));
	db_done(st);
	return node;
}

/* ---- TTL expiry ---- */

#define REAP_BATCH 128

int session_reap(struct store *s)
{
	int64_t now = store_now_ms(s);
	struct db *db = store_read_begin(s);
	struct db_stmt *st;
	char *ids[REAP_BATCH];
	size_t n = 0;
	int reaped = 0;

	if (db == NULL)
		return WEFT_EIO;
	st = db_prep(db, "SELECT id FROM sessions WHERE ttl_ms > 0 AND expires_at <= ? ORDER BY id");
	if (st) {
		db_bind_int(st, 1, now);
		while (n < REAP_BATCH && db_step(st) == DB_ROW)
			if ((ids[n] = strdup(db_col_text(st, 0))) != NULL)
				n++;
		db_done(st);
	}
	store_read_end(db);
	for (size_t i = 0; i < n; i++) {
		struct store_write w = { .apply = session_apply_expire };
		struct session_op *op = session_op_new(ids[i], now);

		free(ids[i]);
		if (op == NULL)
			continue;
		w.arg = op;
		if (store_write_sync(s, &w) == WEFT_OK) {
			if (json_is_true(w.result))
				reaped++;
		} else {
			log_warnx("session", "ttl invalidation failed id=%s error=\"%s\"", op->id,
				  w.err ? w.err : "?");
		}
		free(w.err);
		json_decref(w.result);
		session_op_free(op);
	}
	return reaped;
}

static int apply_reset_timers(struct db *db, uint64_t index, struct store_write *w,
			      struct store_changes *ch)
{
	const struct session_op *op = w->arg;
	struct db_stmt *st = db_prep(db, "UPDATE sessions SET expires_at = ? + ? * ttl_ms"
					 " WHERE ttl_ms > 0");
	int rc;

	(void)index;
	(void)ch;
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_int(st, 1, op->now_ms);
	db_bind_int(st, 2, SESSION_TTL_MULTIPLIER);
	rc = db_step(st) == DB_DONE ? WEFT_OK
				    : weft_errf(&w->err, WEFT_EIO, "store: cannot reset session timers: %s",
						db_errmsg(db));
	db_done(st);
	return rc;
}

int session_reset_timers(struct store *s)
{
	struct store_write w = { .apply = apply_reset_timers };
	struct session_op op = { .id = NULL, .now_ms = store_now_ms(s) };
	int rc;

	w.arg = &op;
	rc = store_write_sync(s, &w);
	if (rc != WEFT_OK)
		log_warnx("session", "cannot reset the TTL timers error=\"%s\"", w.err ? w.err : "?");
	free(w.err);
	json_decref(w.result);
	return rc;
}

struct session_reaper {
	struct store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int interval_ms;
};

static void *reaper_main(void *arg)
{
	struct session_reaper *r = arg;
	struct timespec ts;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += r->interval_ms / 1000;
		ts.tv_nsec += (long)(r->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!r->stop && pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT)
			;
		if (r->stop)
			break;
		pthread_mutex_unlock(&r->lock);
		session_reap(r->store);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int session_reaper_start(struct session_reaper **out, struct store *s, int interval_ms,
			 char **err)
{
	struct session_reaper *r = calloc(1, sizeof(*r));
	pthread_condattr_t ca;

	if (r == NULL)
		return weft_errf(err, WEFT_ENOMEM, "session reaper: out of memory");
	r->store = s;
	r->interval_ms = interval_ms > 0 ? interval_ms : 250;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	session_reset_timers(s);
	if (pthread_create(&r->thread, NULL, reaper_main, r) != 0) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return weft_errf(err, WEFT_EIO, "session reaper: cannot start its thread");
	}
	*out = r;
	return WEFT_OK;
}

void session_reaper_stop(struct session_reaper *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
