#include "config_store.h"
#include "config_entry.h"
#include "err.h"
#include "intentions.h"
#include "jsonx.h"
#include "mesh.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct config_op *config_op_new(const char *mesh, const char *kind, const char *name,
				json_t *entry)
{
	struct config_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->mesh = strdup(mesh);
	op->kind = strdup(kind);
	op->name = strdup(name);
	if (op->mesh == NULL || op->kind == NULL || op->name == NULL) {
		config_op_free(op);
		return NULL;
	}
	op->entry = json_incref(entry);
	return op;
}

void config_op_free(void *p)
{
	struct config_op *op = p;

	if (op == NULL)
		return;
	free(op->mesh);
	free(op->kind);
	free(op->name);
	json_decref(op->entry);
	free(op);
}

/* The stored body (no indexes) and its indexes; WEFT_ENOENT if absent. */
static int load(struct db *db, const char *mesh, const char *kind, const char *name,
		json_t **body, uint64_t *create, uint64_t *modify, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT body, create_index, modify_index FROM config_entries"
				     " WHERE mesh = ? AND kind = ? AND name = ?");
	int rc;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, kind);
	db_bind_text(st, 3, name);
	rc = db_step(st);
	if (rc == DB_ROW) {
		if (body)
			*body = jx_load_or(db_col_text(st, 0), JSON_OBJECT);
		if (create)
			*create = (uint64_t)db_col_int(st, 1);
		if (modify)
			*modify = (uint64_t)db_col_int(st, 2);
		rc = WEFT_OK;
	} else if (rc == DB_DONE) {
		rc = WEFT_ENOENT;
	} else {
		rc = weft_errf(err, WEFT_EIO, "store: cannot read config entry %s/%s: %s", kind, name,
			       db_errmsg(db));
	}
	db_done(st);
	return rc;
}

static void publish(const char *mesh, const char *kind, const char *name, json_t *old,
		    json_t *new, struct store_changes *ch)
{
	changes_add(ch, "cfg:%s:%s", mesh, kind);
	changes_add(ch, "cfg:%s:%s:%s", mesh, kind, name);
	if (strcmp(kind, INTENTIONS_KIND) == 0)
		intentions_entry_changed(mesh, name, old, new, ch);
}

/* Drops the key fields and indexes a client may have sent in any case, and
 * sets Kind and Name from the key, first, as the canonical entry has them. */
static json_t *normalise(json_t *entry, const char *kind, const char *name)
{
	static const char *const drop[] = { "Kind", "Name", "CreateIndex", "ModifyIndex" };
	json_t *out = json_pack("{s:s,s:s}", "Kind", kind, "Name", name);
	const char *k;
	json_t *v;

	if (out == NULL)
		return NULL;
	json_object_foreach(entry, k, v) {
		size_t i;

		for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
			if (strcasecmp(k, drop[i]) == 0)
				break;
		}
		if (i == sizeof(drop) / sizeof(drop[0]) &&
		    json_object_set_new(out, k, json_deep_copy(v)) != 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

int config_store_write(struct db *db, uint64_t index, const char *mesh, const char *kind,
		       const char *name, json_t *entry, struct store_changes *ch, char **err)
{
	json_t *old = NULL, *body = NULL;
	struct db_stmt *st;
	char *text = NULL;
	int rc;

	if (!json_is_object(entry))
		return weft_errf(err, WEFT_EINVAL, "entry: must be a JSON object");
	rc = mesh_exists(db, mesh);
	if (rc < 0)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	if (rc == 0)
		return weft_errf(err, WEFT_EINVAL, "mesh: no mesh \"%s\"", mesh);
	rc = load(db, mesh, kind, name, &old, NULL, NULL, err);
	if (rc != WEFT_OK && rc != WEFT_ENOENT)
		return rc;
	if ((body = normalise(entry, kind, name)) == NULL || (text = jx_dump(body)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "config: out of memory");
		goto out;
	}
	st = db_prep(db, "INSERT INTO config_entries (mesh, kind, name, body, create_index,"
			 " modify_index) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mesh, kind, name)"
			 " DO UPDATE SET body = excluded.body, modify_index = excluded.modify_index");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, kind);
	db_bind_text(st, 3, name);
	db_bind_text(st, 4, text);
	db_bind_int(st, 5, (int64_t)index);
	db_bind_int(st, 6, (int64_t)index);
	rc = db_step(st) == DB_DONE ? WEFT_OK
				    : weft_errf(err, WEFT_EIO, "store: cannot write %s/%s: %s", kind,
						name, db_errmsg(db));
	db_done(st);
	if (rc == WEFT_OK)
		publish(mesh, kind, name, old, body, ch);
out:
	json_decref(old);
	json_decref(body);
	free(text);
	return rc;
}

int config_store_remove(struct db *db, uint64_t index, const char *mesh, const char *kind,
			const char *name, struct store_changes *ch, char **err)
{
	json_t *old = NULL;
	struct db_stmt *st;
	int rc;

	(void)index;
	rc = load(db, mesh, kind, name, &old, NULL, NULL, err);
	if (rc == WEFT_ENOENT)
		return weft_errf(err, WEFT_ENOENT, "%s/%s: no such config entry in mesh \"%s\"", kind,
				 name, mesh);
	if (rc != WEFT_OK)
		return rc;
	st = db_prep(db, "DELETE FROM config_entries WHERE mesh = ? AND kind = ? AND name = ?");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, kind);
	db_bind_text(st, 3, name);
	rc = db_step(st) == DB_DONE ? WEFT_OK
				    : weft_errf(err, WEFT_EIO, "store: cannot delete %s/%s: %s", kind,
						name, db_errmsg(db));
	db_done(st);
	if (rc == WEFT_OK)
		publish(mesh, kind, name, old, NULL, ch);
out:
	json_decref(old);
	return rc;
}

/* 1 when the CAS condition holds (or there is none), 0 when not, <0 error. */
static int cas_holds(struct db *db, const struct config_op *op, char **err)
{
	uint64_t modify = 0;
	int rc;

	if (!op->cas_set)
		return 1;
	rc = load(db, op->mesh, op->kind, op->name, NULL, NULL, &modify, err);
	if (rc == WEFT_ENOENT)
		return op->cas == 0;  /* Consul: cas=0 means "only if absent" */
	if (rc != WEFT_OK)
		return rc;
	return modify == op->cas;
}

int config_store_apply_put(struct db *db, uint64_t index, struct store_write *w,
			   struct store_changes *ch)
{
	struct config_op *op = w->arg;
	json_t *entry = NULL;
	int rc;

	rc = cas_holds(db, op, &w->err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		w->result = json_false();
		return WEFT_OK;
	}
	if (!json_is_object(op->entry))
		return weft_errf(&w->err, WEFT_EINVAL, "entry: must be a JSON object");
	if ((entry = normalise(op->entry, op->kind, op->name)) == NULL)
		return weft_errf(&w->err, WEFT_ENOMEM, "config: out of memory");
	if (op->validate && (rc = op->validate(op->validate_ctx, db, op->mesh, entry, &w->err)) != WEFT_OK)
		goto out;
	rc = config_store_write(db, index, op->mesh, op->kind, op->name, entry, ch, &w->err);
	if (rc == WEFT_OK)
		w->result = json_true();
out:
	json_decref(entry);
	return rc;
}

int config_store_apply_delete(struct db *db, uint64_t index, struct store_write *w,
			      struct store_changes *ch)
{
	struct config_op *op = w->arg;
	int rc;

	if (op->cas_set) {
		uint64_t modify = 0;
		rc = load(db, op->mesh, op->kind, op->name, NULL, NULL, &modify, &w->err);
		if (rc != WEFT_OK && rc != WEFT_ENOENT)
			return rc;
		if (rc == WEFT_ENOENT || modify != op->cas) {
			w->result = json_false();
			return WEFT_OK;
		}
	}
	if (op->validate) {
		rc = load(db, op->mesh, op->kind, op->name, NULL, NULL, NULL, &w->err);
		if (rc == WEFT_OK)
			rc = op->validate(op->validate_ctx, db, op->mesh, NULL, &w->err);
		if (rc != WEFT_OK && rc != WEFT_ENOENT)
			return rc;
	}
	rc = config_store_remove(db, index, op->mesh, op->kind, op->name, ch, &w->err);
	if (rc == WEFT_ENOENT) {
		free(w->err);
		w->err = NULL;
		rc = WEFT_OK;
	}
	if (rc == WEFT_OK)
		w->result = json_true();
	return rc;
}

static json_t *with_indexes(const char *body, int64_t create, int64_t modify)
{
	json_t *e = jx_load_or(body, JSON_OBJECT);

	json_object_set_new(e, "CreateIndex", json_integer(create));
	json_object_set_new(e, "ModifyIndex", json_integer(modify));
	return e;
}

json_t *config_store_get(struct db *db, const char *mesh, const char *kind, const char *name)
{
	struct db_stmt *st = db_prep(db, "SELECT body, create_index, modify_index FROM config_entries"
				     " WHERE mesh = ? AND kind = ? AND name = ?");
	json_t *out = NULL;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, kind);
	db_bind_text(st, 3, name);
	if (db_step(st) == DB_ROW)
		out = with_indexes(db_col_text(st, 0), db_col_int(st, 1), db_col_int(st, 2));
	db_done(st);
	return out;
}

json_t *config_store_list(struct db *db, const char *mesh, const char *kind)
{
	struct db_stmt *st;
	json_t *out;
	int rc;

	if (kind)
		st = db_prep(db, "SELECT body, create_index, modify_index FROM config_entries"
				 " WHERE mesh = ? AND kind = ? ORDER BY name");
	else
		st = db_prep(db, "SELECT body, create_index, modify_index FROM config_entries"
				 " WHERE mesh = ? ORDER BY kind, name");
	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, mesh);
	if (kind)
		db_bind_text(st, 2, kind);
	out = json_array();
	while ((rc = db_step(st)) == DB_ROW)
		json_array_append_new(out, with_indexes(db_col_text(st, 0), db_col_int(st, 1),
							db_col_int(st, 2)));
	db_done(st);
	if (rc != DB_DONE) {
		json_decref(out);
		return NULL;
	}
	return out;
}

struct check_lookup {
	struct db *db;
	const char *mesh;
};

static json_t *check_get(void *arg, const char *kind, const char *name)
{
	struct check_lookup *l = arg;

	return config_store_get(l->db, l->mesh, kind, name);
}

static json_t *check_list(void *arg, const char *kind)
{
	struct check_lookup *l = arg;

	return config_store_list(l->db, l->mesh, kind);
}

int config_store_check(struct db *db, const char *mesh, const char *kind, const char *name,
		       json_t *entry, char **err)
{
	struct check_lookup l = { db, mesh };
	struct config_entry_lookup lookup = { check_get, check_list, &l };

	if (entry == NULL)
		return config_entry_check_delete(kind, name, &lookup, err);
	return config_entry_check_write(kind, name, entry, &lookup, err);
}
