#include "intentions.h"
#include "config_store.h"
#include "err.h"
#include "hub.h"
#include "jsonx.h"
#include "log.h"
#include "mesh.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- entries <-> intentions ---------------------------------------------- */

static const char *str_field(json_t *obj, const char *name, const char *dflt)
{
	const char *s = json_string_value(jx_field(obj, name));

	return s && s[0] ? s : dflt;
}

/* The intention JSON (lib/intention's input) of one source of the entry
 * named dst. */
static json_t *source_to_intention_json(json_t *entry, const char *dst, json_t *src)
{
	json_t *o = json_object(), *v;

	json_object_set_new(o, "SourceNS", json_string(str_field(src, "Namespace", INTENTION_DEFAULT_NS)));
	json_object_set_new(o, "SourceName", json_string(str_field(src, "Name", "")));
	json_object_set_new(o, "DestinationNS",
			    json_string(str_field(entry, "Namespace", INTENTION_DEFAULT_NS)));
	json_object_set_new(o, "DestinationName", json_string(dst));
	if ((v = jx_field(src, "Action")) != NULL)
		json_object_set(o, "Action", v);
	if ((v = jx_field(src, "Permissions")) != NULL)
		json_object_set(o, "Permissions", v);
	if ((v = jx_field(src, "Description")) != NULL)
		json_object_set(o, "Description", v);
	if ((v = jx_field(src, "LegacyMeta")) != NULL && json_is_object(v))
		json_object_set(o, "Meta", v);
	if ((v = jx_field(src, "LegacyID")) != NULL && json_is_string(v))
		json_object_set(o, "ID", v);
	return o;
}

/* The source stored for ix (the inverse of the above). */
static json_t *intention_to_source(const struct intention *ix, const char *legacy_id)
{
	json_t *j = intention_to_json(ix), *s = json_object(), *v;

	json_object_set_new(s, "Name", json_string(intention_source_name(ix)));
	if (strcmp(intention_source_ns(ix), INTENTION_DEFAULT_NS) != 0)
		json_object_set_new(s, "Namespace", json_string(intention_source_ns(ix)));
	if ((v = json_object_get(j, "Action")) != NULL)
		json_object_set(s, "Action", v);
	if ((v = json_object_get(j, "Permissions")) != NULL)
		json_object_set(s, "Permissions", v);
	if (intention_description(ix)[0])
		json_object_set_new(s, "Description", json_string(intention_description(ix)));
	json_object_set_new(s, "Precedence", json_integer(intention_precedence(ix)));
	json_object_set_new(s, "Type", json_string("consul"));
	if (legacy_id && legacy_id[0])
		json_object_set_new(s, "LegacyID", json_string(legacy_id));
	if ((v = json_object_get(j, "Meta")) != NULL && json_object_size(v) > 0)
		json_object_set(s, "LegacyMeta", v);
	json_decref(j);
	return s;
}

static int source_is(json_t *src, const char *ns, const char *name)
{
	return strcmp(str_field(src, "Namespace", INTENTION_DEFAULT_NS), ns ? ns : INTENTION_DEFAULT_NS) == 0 &&
	       strcmp(str_field(src, "Name", ""), name) == 0;
}

static int load_from(struct db *db, const char *mesh, const char *dst, struct intention_set **out,
		     char **err)
{
	struct db_stmt *st;
	struct intention **ixs = NULL, **p;
	size_t n = 0, cap = 0;
	int rc;

	if (dst)
		st = db_prep(db, "SELECT name, body, create_index, modify_index FROM config_entries"
				 " WHERE mesh = ? AND kind = ? AND (name = ? OR name = '*')");
	else
		st = db_prep(db, "SELECT name, body, create_index, modify_index FROM"
				 " config_entries WHERE mesh = ? AND kind = ?");
	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, INTENTIONS_KIND);
	if (dst)
		db_bind_text(st, 3, dst);
	while ((rc = db_step(st)) == DB_ROW) {
		const char *ename = db_col_text(st, 0);
		json_t *entry = jx_load_or(db_col_text(st, 1), JSON_OBJECT);
		json_t *srcs = jx_field(entry, "Sources"), *src;
		long long create = db_col_int(st, 2), modify = db_col_int(st, 3);
		size_t i;

		json_array_foreach(srcs, i, src) {
			json_t *ij = source_to_intention_json(entry, ename, src);
			struct intention *ix = NULL;
			char *e = NULL, ctx[CONFIG_NAME_MAX + 64];

			snprintf(ctx, sizeof(ctx), "%s/%s.Sources[%zu]", INTENTIONS_KIND, ename, i);
			if (intention_from_json(ij, ctx, &ix, &e) != WEFT_OK) {
				log_warnx("intentions", "skipped mesh=%s error=\"%s\"", mesh, e ? e : "?");
				free(e);
				json_decref(ij);
				continue;
			}
			json_decref(ij);
			intention_set_raft_indexes(ix, create, modify);
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				if ((p = realloc(ixs, cap * sizeof(*p))) == NULL) {
					intention_free(ix);
					json_decref(entry);
					rc = weft_errf(err, WEFT_ENOMEM, "intentions: out of memory");
					goto fail;
				}
				ixs = p;
			}
			ixs[n++] = ix;
		}
		json_decref(entry);
	}
	db_done(st);
	st = NULL;
	if (rc != DB_DONE) {
		rc = weft_errf(err, WEFT_EIO, "store: cannot read intentions: %s", db_errmsg(db));
		goto fail;
	}
	rc = intention_set_new(ixs, n, out, err);   /* takes the intentions */
	free(ixs);
	return rc;
fail:
	if (st)
		db_done(st);
	for (size_t i = 0; i < n; i++)
		intention_free(ixs[i]);
	free(ixs);
	return rc;
}

int intentions_load(struct db *db, const char *mesh, struct intention_set **out, char **err)
{
	return load_from(db, mesh, NULL, out, err);
}

int intentions_load_for(struct db *db, const char *mesh, const char *dst,
			struct intention_set **out, char **err)
{
	return load_from(db, mesh, dst, out, err);
}

/* ---- topics -------------------------------------------------------------- */

static json_t *sources_of(json_t *entry)
{
	json_t *s = entry ? jx_field(entry, "Sources") : NULL;

	return json_is_array(s) ? s : NULL;
}

/* The sources of an entry keyed by "namespace/name" (a new object). */
static json_t *sources_by_key(json_t *srcs)
{
	json_t *m = json_object(), *s;
	size_t i;

	json_array_foreach(srcs, i, s) {
		char *key = NULL;

		if (asprintf(&key, "%s/%s", str_field(s, "Namespace", INTENTION_DEFAULT_NS),
			     str_field(s, "Name", "")) < 0)
			continue;
		json_object_set(m, key, s);
		free(key);
	}
	return m;
}

/* Publishes the source topic of every source of `a` that `b` does not hold
 * unchanged (under the same key). */
static void publish_changed(const char *mesh, json_t *a, json_t *b, int all,
			    struct store_changes *ch)
{
	const char *key;
	json_t *s;

	json_object_foreach(a, key, s) {
		if (all || !json_equal(s, json_object_get(b, key)))
			changes_add(ch, "ixn:%s:src:%s", mesh, str_field(s, "Name", ""));
	}
}

void intentions_entry_changed(const char *mesh, const char *name, json_t *old, json_t *new,
			      struct store_changes *ch)
{
	json_t *os = sources_by_key(sources_of(old)), *ns = sources_by_key(sources_of(new));
	json_t *oe = old ? json_deep_copy(old) : NULL, *ne = new ? json_deep_copy(new) : NULL;
	int all = 0;

	changes_add(ch, "ixn:%s:dst:%s", mesh, name);
	/* A change of the entry's own fields (Namespace, Meta) concerns every source. */
	if (oe && ne) {
		json_object_del(oe, "Sources");
		json_object_del(ne, "Sources");
		all = !json_equal(oe, ne);
	}
	publish_changed(mesh, os, ns, all, ch);
	publish_changed(mesh, ns, os, all, ch);
	json_decref(oe);
	json_decref(ne);
	json_decref(os);
	json_decref(ns);
}

/* ---- the cache ----------------------------------------------------------- */

struct snap {
	struct intentions_snap pub;     /* first: the public view */
	struct intention_set *set;
	int refs;                       /* under the cache's lock */
};

struct slot {
	char *mesh;
	struct snap *snap;
	int building;              /* a reader is compiling a snapshot at building_index */
	uint64_t building_index;
	pthread_cond_t built;
	struct slot *next;
};

struct intentions {
	struct store *store;
	struct hub *hub;
	int dev;
	pthread_mutex_t lock;
	struct slot *slots;
};

int intentions_new(struct intentions **out, struct store *store, struct hub *hub, int dev)
{
	struct intentions *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return WEFT_ENOMEM;
	c->store = store;
	c->dev = dev;
	c->hub = hub;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return WEFT_OK;
}

static void snap_free(struct snap *s)
{
	if (s == NULL)
		return;
	intention_set_free(s->set);
	free(s);
}

void intentions_free(struct intentions *c)
{
	struct slot *s, *next;

	if (c == NULL)
		return;
	for (s = c->slots; s; s = next) {
		next = s->next;
		if (s->snap && --s->snap->refs == 0)
			snap_free(s->snap);
		pthread_cond_destroy(&s->built);
		free(s->mesh);
		free(s);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct slot *slot_find(struct intentions *c, const char *mesh)
{
	for (struct slot *s = c->slots; s; s = s->next) {
		if (strcmp(s->mesh, mesh) == 0)
			return s;
	}
	return NULL;
}

static uint64_t mesh_index(struct intentions *c, const char *mesh)
{
	char t1[MESH_NAME_MAX + 64], t2[MESH_NAME_MAX + 16];
	uint64_t a, b;

	snprintf(t1, sizeof(t1), "cfg:%s:%s", mesh, INTENTIONS_KIND);
	snprintf(t2, sizeof(t2), "mesh:%s", mesh);
	a = hub_index(c->hub, t1);
	b = hub_index(c->hub, t2);
	return a > b ? a : b;
}

static int build(struct intentions *c, const char *mesh, uint64_t index, struct snap **out,
		 char **err)
{
	struct snap *s = calloc(1, sizeof(*s));
	struct db *db;
	int rc, allow;

	if (s == NULL)
		return weft_errf(err, WEFT_ENOMEM, "intentions: out of memory");
	if ((db = store_read_begin(c->store)) == NULL) {
		free(s);
		return weft_errf(err, WEFT_EIO, "store: cannot open a read connection");
	}
	allow = mesh_default_allows(db, mesh, c->dev);
	if (allow == WEFT_ENOENT) {
		rc = weft_errf(err, WEFT_EINVAL, "mesh: no mesh \"%s\"", mesh);
		goto out;
	}
	if (allow < 0) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	rc = intentions_load(db, mesh, &s->set, err);
	if (rc != WEFT_OK)
		goto out;
	s->pub.set = s->set;
	s->pub.default_action = allow ? INTENTION_ALLOW : INTENTION_DENY;
	s->pub.index = index;
out:
	store_read_end(db);
	if (rc != WEFT_OK) {
		free(s);
		return rc;
	}
	*out = s;
	return WEFT_OK;
}

/* The slot for mesh, created if needed (NULL when out of memory). */
static struct slot *slot_get(struct intentions *c, const char *mesh)
{
	struct slot *sl = slot_find(c, mesh);

	if (sl || (sl = calloc(1, sizeof(*sl))) == NULL)
		return sl;
	if ((sl->mesh = strdup(mesh)) == NULL) {
		free(sl);
		return NULL;
	}
	pthread_cond_init(&sl->built, NULL);
	sl->next = c->slots;
	c->slots = sl;
	return sl;
}

/* One reader builds while the others wait for its snapshot (a snapshot
 * newer than the index a reader saw serves it too), so a change costs one
 * compilation however many readers arrive. */
int intentions_acquire(struct intentions *c, const char *mesh,
		       const struct intentions_snap **out, char **err)
{
	uint64_t index = mesh_index(c, mesh);
	struct snap *s = NULL, *old = NULL;
	struct slot *sl;
	int rc;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		sl = slot_get(c, mesh);
		if (sl && sl->snap && sl->snap->pub.index >= index) {
			sl->snap->refs++;
			*out = &sl->snap->pub;
			pthread_mutex_unlock(&c->lock);
			return WEFT_OK;
		}
		if (sl == NULL || !sl->building || sl->building_index < index)
			break;
		pthread_cond_wait(&sl->built, &c->lock);
	}
	if (sl) {
		sl->building = 1;
		sl->building_index = index;
	}
	pthread_mutex_unlock(&c->lock);

	rc = build(c, mesh, index, &s, err);
	pthread_mutex_lock(&c->lock);
	if (sl) {
		sl->building = 0;
		pthread_cond_broadcast(&sl->built);
	}
	if (rc != WEFT_OK) {
		/* A mesh that went away leaves no snapshot behind. */
		if (rc == WEFT_EINVAL && sl && sl->snap) {
			old = sl->snap;
			sl->snap = NULL;
		}
		goto out;
	}
	s->refs = 1;
	if (sl && (sl->snap == NULL || sl->snap->pub.index <= index)) {
		old = sl->snap;
		sl->snap = s;
		s->refs++;
	}
	*out = &s->pub;
out:
	if (old && --old->refs == 0) {
		pthread_mutex_unlock(&c->lock);
		snap_free(old);
		return rc;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void intentions_release(struct intentions *c, const struct intentions_snap *pub)
{
	struct snap *s = (struct snap *)pub;
	int last;

	if (s == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last)
		snap_free(s);
}

/* ---- writes ----------------------------------------------------------------- */

void intentions_op_free(void *p)
{
	struct intentions_op *op = p;

	if (op == NULL)
		return;
	free(op->mesh);
	intention_free(op->ix);
	free(op->src_ns);
	free(op->src_name);
	free(op->dst_name);
	json_decref(op->findings);
	free(op);
}

/* The entry for dst (a new one without sources when absent). */
static json_t *entry_load(struct db *db, const char *mesh, const char *dst)
{
	json_t *e = config_store_get(db, mesh, INTENTIONS_KIND, dst);

	if (e == NULL)
		return json_pack("{s:s, s:s, s:[]}", "Kind", INTENTIONS_KIND, "Name", dst, "Sources");
	if (!json_is_array(jx_field(e, "Sources"))) {
		json_object_set_new(e, "Sources", json_array());
	}
	return e;
}

static int find_source(json_t *entry, const char *ns, const char *name)
{
	json_t *srcs = jx_field(entry, "Sources"), *s;
	size_t i;

	json_array_foreach(srcs, i, s) {
		if (source_is(s, ns, name))
			return (int)i;
	}
	return -1;
}

/* Writes the entry back, or removes it when it has no source left. */
static int entry_save(struct db *db, uint64_t index, const char *mesh, const char *dst,
		      json_t *entry, struct store_changes *ch, char **err)
{
	int rc;

	if (json_array_size(jx_field(entry, "Sources")) == 0)
		return config_store_remove(db, index, mesh, INTENTIONS_KIND, dst, ch, err);
	/* The same cross-entry rules as PUT /v1/config (L7 permissions need an
	 * http-like protocol): one source of truth, one set of rules. */
	rc = config_store_check(db, mesh, INTENTIONS_KIND, dst, entry, err);
	if (rc != WEFT_OK)
		return rc;
	return config_store_write(db, index, mesh, INTENTIONS_KIND, dst, entry, ch, err);
}

/* The destination and position of the source whose LegacyID is id. */
static int find_id(struct db *db, const char *mesh, const char *id, char **dst, int *pos,
		   char **err)
{
	json_t *all = config_store_list(db, mesh, INTENTIONS_KIND), *e, *s;
	size_t i, j;
	int rc = WEFT_ENOENT;

	if (all == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	json_array_foreach(all, i, e) {
		json_array_foreach(jx_field(e, "Sources"), j, s) {
			const char *lid = json_string_value(jx_field(s, "LegacyID"));
			if (lid && strcmp(lid, id) == 0) {
				*dst = strdup(json_string_value(json_object_get(e, "Name")));
				*pos = (int)j;
				rc = *dst ? WEFT_OK : WEFT_ENOMEM;
				goto out;
			}
		}
	}
out:
	json_decref(all);
	if (rc == WEFT_ENOENT)
		weft_errf(err, rc, "intention \"%s\" not found in mesh \"%s\"", id, mesh);
	return rc;
}

static int exists_error(char **err, json_t *entry, int pos, const struct intention *ix)
{
	const char *id = json_string_value(jx_field(json_array_get(jx_field(entry, "Sources"),
								   (size_t)pos), "LegacyID"));

	return weft_errf(err, WEFT_EEXIST,
			 "intention: one from \"%s\" to \"%s\" exists already%s%s%s; change it with"
			 " PUT /v1/connect/intentions/exact", intention_source_name(ix),
			 intention_destination_name(ix), id ? " (ID " : "", id ? id : "", id ? ")" : "");
}

static json_t *id_result(const struct intentions_op *op)
{
	json_t *res = json_pack("{s:s}", "ID", op->id);

	json_t *f, *msgs;
	size_t i;

	if (op->findings && json_array_size(op->findings)) {
		msgs = json_array();
		json_array_foreach(op->findings, i, f)
			json_array_append(msgs, json_object_get(f, "Message"));
		json_object_set_new(res, "Warnings", msgs);
		json_object_set(res, "Findings", op->findings);
	}
	return res;
}

int intentions_apply(struct db *db, uint64_t index, struct store_write *w,
		     struct store_changes *ch)
{
	struct intentions_op *op = w->arg;
	json_t *entry = NULL, *other = NULL;
	char *old_dst = NULL;
	int pos = -1, rc;

	switch (op->kind) {
	case INTENTIONS_CREATE:
	case INTENTIONS_UPSERT: {
		const char *dst = intention_destination_name(op->ix);
		const char *legacy = op->kind == INTENTIONS_CREATE ? op->id : NULL;
		entry = entry_load(db, op->mesh, dst);
		pos = find_source(entry, intention_source_ns(op->ix), intention_source_name(op->ix));
		if (pos >= 0 && op->kind == INTENTIONS_CREATE) {
			rc = exists_error(&w->err, entry, pos, op->ix);
			goto out;
		}
		if (pos >= 0) {   /* an upsert keeps the ID of the one it replaces */
			legacy = json_string_value(jx_field(json_array_get(jx_field(entry, "Sources"),
									   (size_t)pos), "LegacyID"));
			json_array_set_new(jx_field(entry, "Sources"), (size_t)pos,
					   intention_to_source(op->ix, legacy));
		} else {
			json_array_append_new(jx_field(entry, "Sources"), intention_to_source(op->ix, legacy));
		}
		rc = entry_save(db, index, op->mesh, dst, entry, ch, &w->err);
		if (rc == WEFT_OK)
			w->result = op->kind == INTENTIONS_CREATE ? id_result(op) : json_true();
		goto out;
	}
	case INTENTIONS_UPDATE_ID: {
		const char *dst = intention_destination_name(op->ix);
		if ((rc = find_id(db, op->mesh, op->id, &old_dst, &pos, &w->err)) != WEFT_OK)
			goto out;
		entry = entry_load(db, op->mesh, old_dst);
		if (strcmp(old_dst, dst) != 0) {
			/* Moves to another destination's entry. */
			json_array_remove(jx_field(entry, "Sources"), (size_t)pos);
			other = entry_load(db, op->mesh, dst);
			pos = find_source(other, intention_source_ns(op->ix), intention_source_name(op->ix));
			if (pos >= 0) {
				rc = exists_error(&w->err, other, pos, op->ix);
				goto out;
			}
			json_array_append_new(jx_field(other, "Sources"), intention_to_source(op->ix, op->id));
			if ((rc = entry_save(db, index, op->mesh, old_dst, entry, ch, &w->err)) != WEFT_OK ||
			    (rc = entry_save(db, index, op->mesh, dst, other, ch, &w->err)) != WEFT_OK)
				goto out;
		} else {
			int at = find_source(entry, intention_source_ns(op->ix), intention_source_name(op->ix));
			if (at >= 0 && at != pos) {
				rc = exists_error(&w->err, entry, at, op->ix);
				goto out;
			}
			json_array_set_new(jx_field(entry, "Sources"), (size_t)pos,
					   intention_to_source(op->ix, op->id));
			if ((rc = entry_save(db, index, op->mesh, dst, entry, ch, &w->err)) != WEFT_OK)
				goto out;
		}
		w->result = id_result(op);
		goto out;
	}
	case INTENTIONS_DELETE_EXACT:
		entry = entry_load(db, op->mesh, op->dst_name);
		pos = find_source(entry, op->src_ns, op->src_name);
		if (pos < 0) {
			rc = weft_errf(&w->err, WEFT_ENOENT,
				       "intention from \"%s\" to \"%s\" not found in mesh \"%s\"",
				       op->src_name, op->dst_name, op->mesh);
			goto out;
		}
		json_array_remove(jx_field(entry, "Sources"), (size_t)pos);
		rc = entry_save(db, index, op->mesh, op->dst_name, entry, ch, &w->err);
		goto out;
	case INTENTIONS_DELETE_ID:
		if ((rc = find_id(db, op->mesh, op->id, &old_dst, &pos, &w->err)) != WEFT_OK)
			goto out;
		entry = entry_load(db, op->mesh, old_dst);
		json_array_remove(jx_field(entry, "Sources"), (size_t)pos);
		rc = entry_save(db, index, op->mesh, old_dst, entry, ch, &w->err);
		goto out;
	}
	rc = weft_errf(&w->err, WEFT_EINVAL, "intentions: unknown operation");
out:
	json_decref(entry);
	json_decref(other);
	free(old_dst);
	return rc;
}
