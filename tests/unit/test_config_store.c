/* config_store: CRUD of entries of any kind, CAS as Consul's ?cas, the
 * validation callback, unknown meshes, the topics each write publishes
 * (including the intention topics of service-intentions entries), and the
 * intention writes built on it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_store.h"
#include "err.h"
#include "hub.h"
#include "intentions.h"
#include "jsonx.h"
#include "mesh.h"
#include "store.h"

#define MAXT 256

struct published {
	pthread_mutex_t lock;
	char topics[MAXT][96];
	size_t n;
};

static void on_publish(void *ctx, const char *const *topics, const uint64_t *idx, size_t n)
{
	struct published *p = ctx;

	(void)idx;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n && p->n < MAXT; i++, p->n++)
		snprintf(p->topics[p->n], sizeof(p->topics[0]), "%s", topics[i]);
	pthread_mutex_unlock(&p->lock);
}

struct fixture {
	char dir[64];
	char path[128];
	struct store *store;
	struct published pub;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_opts o = { 0 };
	char *err = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/weft-cfg-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/weft.db", f->dir);
	pthread_mutex_init(&f->pub.lock, NULL);
	o.path = f->path;
	o.publish = on_publish;
	o.publish_ctx = &f->pub;
	assert_int_equal(store_open(&f->store, &o, &err), WEFT_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];

	store_close(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	pthread_mutex_destroy(&f->pub.lock);
	free(f);
	return 0;
}

static int published(struct fixture *f, const char *topic)
{
	int found = 0;

	pthread_mutex_lock(&f->pub.lock);
	for (size_t i = 0; i < f->pub.n; i++)
		found |= strcmp(f->pub.topics[i], topic) == 0;
	pthread_mutex_unlock(&f->pub.lock);
	return found;
}

static void forget(struct fixture *f)
{
	pthread_mutex_lock(&f->pub.lock);
	f->pub.n = 0;
	pthread_mutex_unlock(&f->pub.lock);
}

/* Runs apply(op) and returns its status; *result gets the reply body. */
static int run(struct fixture *f, store_apply_fn apply, void *op, json_t **result, char **err)
{
	struct store_write w = { .apply = apply, .arg = op };
	int rc = store_write_sync(f->store, &w);

	if (result)
		*result = w.result;
	else
		json_decref(w.result);
	if (err)
		*err = w.err;
	else
		free(w.err);
	return rc;
}

static int put(struct fixture *f, const char *mesh, const char *kind, const char *name,
	       const char *body, int cas_set, uint64_t cas, json_t **result, char **err)
{
	json_t *entry = jx_parse(body, strlen(body), NULL);
	struct config_op *op = config_op_new(mesh, kind, name, entry);
	int rc;

	json_decref(entry);
	op->cas_set = cas_set;
	op->cas = cas;
	rc = run(f, config_store_apply_put, op, result, err);
	config_op_free(op);
	return rc;
}

static json_t *get(struct fixture *f, const char *mesh, const char *kind, const char *name)
{
	struct db *db = store_read_begin(f->store);
	json_t *e = config_store_get(db, mesh, kind, name);

	store_read_end(db);
	return e;
}

static long long idx(json_t *e, const char *field)
{
	return json_integer_value(json_object_get(e, field));
}

static void test_crud(void **state)
{
	struct fixture *f = *state;
	json_t *res, *e, *list;
	struct db *db;
	struct config_op *op;

	assert_int_equal(put(f, "default", "service-defaults", "web",
			     "{\"Protocol\":\"http\",\"kind\":\"ignored\",\"CreateIndex\":99}", 0, 0,
			     &res, NULL), WEFT_OK);
	assert_true(json_is_true(res));
	json_decref(res);
	e = get(f, "default", "service-defaults", "web");
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "Kind")), "service-defaults");
	assert_string_equal(json_string_value(json_object_get(e, "Name")), "web");
	assert_null(json_object_get(e, "kind"));  /* the key wins over any casing */
	assert_string_equal(json_string_value(json_object_get(e, "Protocol")), "http");
	long long created = idx(e, "CreateIndex");
	assert_true(created > 1 && created != 99);
	assert_int_equal(idx(e, "ModifyIndex"), created);
	json_decref(e);

	/* Update keeps CreateIndex, moves ModifyIndex. */
	assert_int_equal(put(f, "default", "service-defaults", "web", "{\"Protocol\":\"grpc\"}", 0, 0,
			     NULL, NULL), WEFT_OK);
	e = get(f, "default", "service-defaults", "web");
	assert_int_equal(idx(e, "CreateIndex"), created);
	assert_true(idx(e, "ModifyIndex") > created);
	assert_string_equal(json_string_value(json_object_get(e, "Protocol")), "grpc");
	json_decref(e);

	assert_int_equal(put(f, "default", "service-defaults", "api", "{}", 0, 0, NULL, NULL), WEFT_OK);
	assert_int_equal(put(f, "default", "proxy-defaults", "global", "{}", 0, 0, NULL, NULL), WEFT_OK);
	db = store_read_begin(f->store);
	list = config_store_list(db, "default", "service-defaults");
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "Name")), "api");
	json_decref(list);
	list = config_store_list(db, "default", NULL);
	assert_int_equal(json_array_size(list), 3);
	json_decref(list);
	store_read_end(db);

	op = config_op_new("default", "service-defaults", "web", NULL);
	assert_int_equal(run(f, config_store_apply_delete, op, &res, NULL), WEFT_OK);
	assert_true(json_is_true(res));
	json_decref(res);
	/* Deleting what is not there is not an error (Consul). */
	assert_int_equal(run(f, config_store_apply_delete, op, &res, NULL), WEFT_OK);
	assert_true(json_is_true(res));
	json_decref(res);
	config_op_free(op);
	assert_null(get(f, "default", "service-defaults", "web"));
}

static void test_cas(void **state)
{
	struct fixture *f = *state;
	json_t *res, *e;
	long long mi;
	struct config_op *op;

	/* cas=0: only when absent. */
	assert_int_equal(put(f, "default", "service-defaults", "web", "{\"Protocol\":\"tcp\"}", 1, 0,
			     &res, NULL), WEFT_OK);
	assert_true(json_is_true(res));
	json_decref(res);
	assert_int_equal(put(f, "default", "service-defaults", "web", "{\"Protocol\":\"http\"}", 1, 0,
			     &res, NULL), WEFT_OK);
	assert_true(json_is_false(res));
	json_decref(res);
	e = get(f, "default", "service-defaults", "web");
	mi = idx(e, "ModifyIndex");
	assert_string_equal(json_string_value(json_object_get(e, "Protocol")), "tcp");
	json_decref(e);
	/* A stale index loses, the current one wins. */
	assert_int_equal(put(f, "default", "service-defaults", "web", "{\"Protocol\":\"http\"}", 1,
			     (uint64_t)mi - 1, &res, NULL), WEFT_OK);
	assert_true(json_is_false(res));
	json_decref(res);
	assert_int_equal(put(f, "default", "service-defaults", "web", "{\"Protocol\":\"http\"}", 1,
			     (uint64_t)mi, &res, NULL), WEFT_OK);
	assert_true(json_is_true(res));
	json_decref(res);
	e = get(f, "default", "service-defaults", "web");
	assert_string_equal(json_string_value(json_object_get(e, "Protocol")), "http");
	mi = idx(e, "ModifyIndex");
	json_decref(e);
	/* Delete with CAS. */
	op = config_op_new("default", "service-defaults", "web", NULL);
	op->cas_set = 1;
	op->cas = (uint64_t)mi + 1;
	assert_int_equal(run(f, config_store_apply_delete, op, &res, NULL), WEFT_OK);
	assert_true(json_is_false(res));
	json_decref(res);
	assert_non_null(e = get(f, "default", "service-defaults", "web"));
	json_decref(e);
	op->cas = (uint64_t)mi;
	assert_int_equal(run(f, config_store_apply_delete, op, &res, NULL), WEFT_OK);
	assert_true(json_is_true(res));
	json_decref(res);
	config_op_free(op);
	assert_null(get(f, "default", "service-defaults", "web"));
}

static int refuse_tcp(void *ctx, struct db *db, const char *mesh, json_t *entry, char **err)
{
	int *calls = ctx;
	const char *p = json_string_value(json_object_get(entry, "Protocol"));

	(void)db;
	(*calls)++;
	assert_string_equal(mesh, "default");
	if (entry == NULL)   /* a delete */
		return weft_errf(err, WEFT_ECONFLICT, "web: still used by the test");
	assert_string_equal(json_string_value(json_object_get(entry, "Kind")), "service-defaults");
	if (p && strcmp(p, "tcp") == 0)
		return weft_errf(err, WEFT_EINVAL, "Protocol: tcp refused by the test");
	return WEFT_OK;
}

static void test_validate_and_mesh(void **state)
{
	struct fixture *f = *state;
	json_t *entry = json_pack("{s:s}", "Protocol", "tcp");
	struct config_op *op = config_op_new("default", "service-defaults", "web", entry);
	int calls = 0;
	char *err = NULL;

	op->validate = refuse_tcp;
	op->validate_ctx = &calls;
	assert_int_equal(run(f, config_store_apply_put, op, NULL, &err), WEFT_EINVAL);
	assert_string_equal(err, "Protocol: tcp refused by the test");
	free(err);
	err = NULL;
	assert_null(get(f, "default", "service-defaults", "web"));
	json_object_set_new(op->entry, "Protocol", json_string("http"));
	assert_int_equal(run(f, config_store_apply_put, op, NULL, NULL), WEFT_OK);
	assert_int_equal(calls, 2);
	/* Deletes ask it too (entry NULL); a refusal keeps the entry. */
	assert_int_equal(run(f, config_store_apply_delete, op, NULL, &err), WEFT_ECONFLICT);
	assert_string_equal(err, "web: still used by the test");
	free(err);
	err = NULL;
	assert_int_equal(calls, 3);
	json_t *still = get(f, "default", "service-defaults", "web");
	assert_non_null(still);
	json_decref(still);
	op->validate = NULL;
	assert_int_equal(run(f, config_store_apply_delete, op, NULL, NULL), WEFT_OK);
	assert_null(get(f, "default", "service-defaults", "web"));
	config_op_free(op);
	json_decref(entry);

	/* No such mesh. */
	assert_int_equal(put(f, "nope", "service-defaults", "web", "{}", 0, 0, NULL, &err), WEFT_EINVAL);
	assert_string_equal(err, "mesh: no mesh \"nope\"");
	free(err);
	err = NULL;
}

static void test_topics(void **state)
{
	struct fixture *f = *state;
	struct config_op *op;

	forget(f);
	assert_int_equal(put(f, "default", "service-router", "web", "{}", 0, 0, NULL, NULL), WEFT_OK);
	assert_true(published(f, "cfg:default:service-router"));
	assert_true(published(f, "cfg:default:service-router:web"));
	assert_false(published(f, "cfg:default:service-router:api"));
	assert_false(published(f, "ixn:default:dst:web"));

	/* service-intentions: the destination and each source that changed. */
	forget(f);
	assert_int_equal(put(f, "default", INTENTIONS_KIND, "db",
			     "{\"Sources\":[{\"Name\":\"web\",\"Action\":\"allow\"},"
			     "{\"Name\":\"api\",\"Action\":\"deny\"}]}", 0, 0, NULL, NULL), WEFT_OK);
	assert_true(published(f, "cfg:default:service-intentions:db"));
	assert_true(published(f, "ixn:default:dst:db"));
	assert_true(published(f, "ixn:default:src:web"));
	assert_true(published(f, "ixn:default:src:api"));
	forget(f);
	assert_int_equal(put(f, "default", INTENTIONS_KIND, "db",
			     "{\"Sources\":[{\"Name\":\"web\",\"Action\":\"allow\"},"
			     "{\"Name\":\"api\",\"Action\":\"allow\"}]}", 0, 0, NULL, NULL), WEFT_OK);
	assert_true(published(f, "ixn:default:dst:db"));
	assert_true(published(f, "ixn:default:src:api"));
	assert_false(published(f, "ixn:default:src:web"));   /* unchanged */
	forget(f);
	op = config_op_new("default", INTENTIONS_KIND, "db", NULL);
	assert_int_equal(run(f, config_store_apply_delete, op, NULL, NULL), WEFT_OK);
	config_op_free(op);
	assert_true(published(f, "ixn:default:src:web"));
	assert_true(published(f, "ixn:default:src:api"));
	assert_true(published(f, "cfg:default:service-intentions"));
}

static struct intention *ix_parse(const char *text)
{
	json_t *j = jx_parse(text, strlen(text), NULL);
	struct intention *ix = NULL;
	char *err = NULL;

	assert_int_equal(intention_from_json(j, NULL, &ix, &err), WEFT_OK);
	json_decref(j);
	return ix;
}

static int ixop(struct fixture *f, enum intentions_op_kind kind, const char *ix, const char *id,
		json_t **res, char **err)
{
	struct intentions_op *op = calloc(1, sizeof(*op));
	int rc;

	op->kind = kind;
	op->mesh = strdup("default");
	if (ix)
		op->ix = ix_parse(ix);
	if (id)
		snprintf(op->id, sizeof(op->id), "%s", id);
	rc = run(f, intentions_apply, op, res, err);
	intentions_op_free(op);
	return rc;
}

static struct intention_set *load(struct fixture *f)
{
	struct db *db = store_read_begin(f->store);
	struct intention_set *set = NULL;

	assert_int_equal(intentions_load(db, "default", &set, NULL), WEFT_OK);
	store_read_end(db);
	return set;
}

/* Intentions are the Sources of service-intentions entries: written either
 * way, read either way. */
static void test_intentions_on_entries(void **state)
{
	struct fixture *f = *state;
	const char *id = "0d4f1c1e-8a43-4b8b-9c3e-111111111111";
	struct intention_set *set;
	const struct intention *ix;
	json_t *res, *e;
	char *err = NULL;

	assert_int_equal(ixop(f, INTENTIONS_CREATE, "{\"SourceName\":\"web\",\"DestinationName\":\"db\","
			      "\"Action\":\"allow\",\"Meta\":{\"team\":\"a\"}}", id, &res, NULL), WEFT_OK);
	assert_string_equal(json_string_value(json_object_get(res, "ID")), id);
	json_decref(res);
	e = get(f, "default", INTENTIONS_KIND, "db");
	assert_non_null(e);
	json_t *src = json_array_get(json_object_get(e, "Sources"), 0);
	assert_string_equal(json_string_value(json_object_get(src, "Name")), "web");
	assert_string_equal(json_string_value(json_object_get(src, "LegacyID")), id);
	assert_string_equal(json_string_value(json_object_get(json_object_get(src, "LegacyMeta"), "team")), "a");
	json_decref(e);
	/* The same pair again: refused. */
	assert_int_equal(ixop(f, INTENTIONS_CREATE, "{\"SourceName\":\"web\",\"DestinationName\":\"db\","
			      "\"Action\":\"deny\"}", "0d4f1c1e-8a43-4b8b-9c3e-222222222222", NULL, &err),
			 WEFT_EEXIST);
	assert_non_null(strstr(err, id));
	free(err);
	err = NULL;
	/* Upsert by pair keeps the ID; another source joins the entry. */
	assert_int_equal(ixop(f, INTENTIONS_UPSERT, "{\"SourceName\":\"web\",\"DestinationName\":\"db\","
			      "\"Action\":\"deny\"}", NULL, NULL, NULL), WEFT_OK);
	assert_int_equal(ixop(f, INTENTIONS_UPSERT, "{\"SourceName\":\"*\",\"DestinationName\":\"db\","
			      "\"Action\":\"allow\"}", NULL, NULL, NULL), WEFT_OK);
	/* An entry written directly is read as intentions. */
	assert_int_equal(put(f, "default", INTENTIONS_KIND, "cache",
			     "{\"Sources\":[{\"Name\":\"db\",\"Action\":\"allow\"}]}", 0, 0, NULL,
			     NULL), WEFT_OK);
	set = load(f);
	assert_int_equal(intention_set_count(set), 3);
	ix = intention_set_find(set, NULL, "web", NULL, "db");
	assert_non_null(ix);
	assert_string_equal(intention_id(ix), id);
	assert_int_equal(intention_action(ix), INTENTION_DENY);
	assert_non_null(intention_set_find(set, NULL, "db", NULL, "cache"));
	intention_set_free(set);

	/* Update by ID moves it to another destination. */
	assert_int_equal(ixop(f, INTENTIONS_UPDATE_ID, "{\"SourceName\":\"web\",\"DestinationName\":\"cache\","
			      "\"Action\":\"allow\"}", id, NULL, NULL), WEFT_OK);
	set = load(f);
	assert_null(intention_set_find(set, NULL, "web", NULL, "db"));
	assert_string_equal(intention_id(intention_set_find(set, NULL, "web", NULL, "cache")), id);
	intention_set_free(set);

	/* Deletes; the last source gone removes the entry. */
	struct intentions_op *op = calloc(1, sizeof(*op));
	op->kind = INTENTIONS_DELETE_EXACT;
	op->mesh = strdup("default");
	op->src_ns = strdup("default");
	op->src_name = strdup("*");
	op->dst_name = strdup("db");
	assert_int_equal(run(f, intentions_apply, op, NULL, NULL), WEFT_OK);
	assert_int_equal(run(f, intentions_apply, op, NULL, &err), WEFT_ENOENT);
	free(err);
	err = NULL;
	intentions_op_free(op);
	assert_null(get(f, "default", INTENTIONS_KIND, "db"));
	assert_int_equal(ixop(f, INTENTIONS_DELETE_ID, NULL, id, NULL, NULL), WEFT_OK);
	assert_int_equal(ixop(f, INTENTIONS_DELETE_ID, NULL, id, NULL, &err), WEFT_ENOENT);
	free(err);
	err = NULL;
	set = load(f);
	assert_int_equal(intention_set_count(set), 1);
	intention_set_free(set);
}

static void test_meshes(void **state)
{
	struct fixture *f = *state;
	struct mesh_put *m = calloc(1, sizeof(*m));
	json_t *doc = json_pack("{s:s}", "DefaultIntentionAction", "allow"), *res, *def;
	struct db *db;
	char *err = NULL;

	assert_int_equal(mesh_decode_put(doc, "pay", m, &err), WEFT_OK);
	json_decref(doc);
	assert_int_equal(run(f, mesh_apply_put, m, &res, NULL), WEFT_OK);
	mesh_put_free(m);
	def = get(f, "default", "x", "y");
	assert_null(def);
	db = store_read_begin(f->store);
	def = mesh_get(db, "default", 0);
	assert_int_equal(mesh_default_allows(db, "default", 0), 0);
	/* Never chosen: the server's default, allow under --dev. */
	assert_int_equal(mesh_default_allows(db, "default", 1), 1);
	assert_int_equal(mesh_default_allows(db, "pay", 0), 1);
	assert_int_equal(mesh_default_allows(db, "pay", 1), 1);
	assert_int_equal(mesh_default_allows(db, "nope", 0), WEFT_ENOENT);
	store_read_end(db);
	/* The default mesh: strict, deny, "<uuid>.weft". */
	const char *td = json_string_value(json_object_get(def, "TrustDomain"));
	assert_int_equal(strlen(td), 36 + 5);
	assert_string_equal(td + 36, ".weft");
	assert_string_equal(json_string_value(json_object_get(def, "MTLSMode")), "strict");
	/* A new mesh's trust domain derives from it. */
	char want[128];
	snprintf(want, sizeof(want), "pay.%s", td);
	assert_string_equal(json_string_value(json_object_get(res, "TrustDomain")), want);
	json_decref(def);
	json_decref(res);

	/* Field errors. */
	m = calloc(1, sizeof(*m));
	doc = json_pack("{s:s}", "TrustDomain", "Bad_Domain");
	assert_int_equal(mesh_decode_put(doc, "pay", m, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "TrustDomain: "));
	free(err);
	err = NULL;
	json_decref(doc);
	mesh_put_free(m);
	m = calloc(1, sizeof(*m));
	doc = json_object();
	assert_int_equal(mesh_decode_put(doc, "Pay", m, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Name: "));
	free(err);
	err = NULL;
	json_decref(doc);
	mesh_put_free(m);

	/* Delete: refused while it holds entries, and never for default. */
	assert_int_equal(put(f, "pay", "service-defaults", "web", "{}", 0, 0, NULL, NULL), WEFT_OK);
	char *name = strdup("pay");
	assert_int_equal(run(f, mesh_apply_delete, name, NULL, &err), WEFT_ECONFLICT);
	assert_non_null(strstr(err, "service-defaults/web"));
	free(err);
	err = NULL;
	struct config_op *op = config_op_new("pay", "service-defaults", "web", NULL);
	assert_int_equal(run(f, config_store_apply_delete, op, NULL, NULL), WEFT_OK);
	config_op_free(op);
	assert_int_equal(run(f, mesh_apply_delete, name, NULL, NULL), WEFT_OK);
	assert_int_equal(run(f, mesh_apply_delete, name, NULL, &err), WEFT_ENOENT);
	free(err);
	err = NULL;
	free(name);
	name = strdup("default");
	assert_int_equal(run(f, mesh_apply_delete, name, NULL, &err), WEFT_EINVAL);
	free(err);
	err = NULL;
	free(name);
}

/* The compiled set per mesh: shared while nothing changes, rebuilt after a
 * change, a held snapshot stays usable after it is replaced, and readers on
 * several threads during writes always see a whole set. */
static void hub_pub(void *ctx, const char *const *topics, const uint64_t *idx, size_t n)
{
	hub_publish(ctx, topics, idx, n);
}

struct reader {
	struct intentions *c;
	int stop, rounds, bad;
};

static void *read_loop(void *arg)
{
	struct reader *rd = arg;
	struct intention_call call = { .source_name = "web", .destination_name = "db" };

	for (int i = 0; i < 100000 && !__atomic_load_n(&rd->stop, __ATOMIC_ACQUIRE); i++) {
		const struct intentions_snap *s = NULL;
		struct intention_decision d;

		if (intentions_acquire(rd->c, "default", &s, NULL) != WEFT_OK) {
			__atomic_fetch_add(&rd->bad, 1, __ATOMIC_RELAXED);
			continue;
		}
		intention_set_decide(s->set, &call, s->default_action, &d);
		/* web -> db is always there (allow); the writer only adds others. */
		if (d.action != INTENTION_ALLOW || d.intention == NULL)
			__atomic_fetch_add(&rd->bad, 1, __ATOMIC_RELAXED);
		intentions_release(rd->c, s);
		__atomic_fetch_add(&rd->rounds, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_intentions_cache(void **state)
{
	struct fixture *f = *state;
	struct hub *hub = hub_new(store_last_index(f->store));
	const struct intentions_snap *a, *b, *c2;
	struct intentions *c;
	struct reader rd = { 0 };
	pthread_t th[3];
	char *err = NULL;

	store_set_publisher(f->store, hub_pub, hub);
	assert_int_equal(intentions_new(&c, f->store, hub, 0), WEFT_OK);
	assert_int_equal(ixop(f, INTENTIONS_UPSERT, "{\"SourceName\":\"web\",\"DestinationName\":\"db\","
			      "\"Action\":\"allow\"}", NULL, NULL, NULL), WEFT_OK);
	assert_int_equal(intentions_acquire(c, "default", &a, NULL), WEFT_OK);
	assert_int_equal(intentions_acquire(c, "default", &b, NULL), WEFT_OK);
	assert_ptr_equal(a, b);                 /* nothing changed: the same compiled set */
	assert_int_equal(intention_set_count(a->set), 1);
	assert_int_equal(a->default_action, INTENTION_DENY);
	intentions_release(c, b);
	/* A write elsewhere does not rebuild it. */
	assert_int_equal(put(f, "default", "service-defaults", "web", "{}", 0, 0, NULL, NULL), WEFT_OK);
	assert_int_equal(intentions_acquire(c, "default", &b, NULL), WEFT_OK);
	assert_ptr_equal(a, b);
	intentions_release(c, b);
	/* An intention write does; the old snapshot stays valid while held. */
	assert_int_equal(ixop(f, INTENTIONS_UPSERT, "{\"SourceName\":\"api\",\"DestinationName\":\"db\","
			      "\"Action\":\"deny\"}", NULL, NULL, NULL), WEFT_OK);
	assert_int_equal(intentions_acquire(c, "default", &b, NULL), WEFT_OK);
	assert_ptr_not_equal(a, b);
	assert_int_equal(intention_set_count(b->set), 2);
	assert_int_equal(intention_set_count(a->set), 1);
	assert_non_null(intention_set_find(a->set, NULL, "web", NULL, "db"));
	intentions_release(c, a);
	intentions_release(c, b);
	/* The mesh's default action is part of the snapshot. */
	struct mesh_put *m = calloc(1, sizeof(*m));
	json_t *doc = json_pack("{s:s}", "DefaultIntentionAction", "allow");
	assert_int_equal(mesh_decode_put(doc, "default", m, NULL), WEFT_OK);
	json_decref(doc);
	assert_int_equal(run(f, mesh_apply_put, m, NULL, NULL), WEFT_OK);
	mesh_put_free(m);
	assert_int_equal(intentions_acquire(c, "default", &c2, NULL), WEFT_OK);
	assert_int_equal(c2->default_action, INTENTION_ALLOW);
	intentions_release(c, c2);
	assert_int_equal(intentions_acquire(c, "nope", &c2, &err), WEFT_EINVAL);
	assert_string_equal(err, "mesh: no mesh \"nope\"");
	free(err);

	/* Readers on three threads while intentions are written. */
	rd.c = c;
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, read_loop, &rd);
	for (int i = 0; i < 30; i++) {
		char body[128];
		snprintf(body, sizeof(body), "{\"SourceName\":\"s%d\",\"DestinationName\":\"d%d\","
			 "\"Action\":\"allow\"}", i, i % 4);
		assert_int_equal(ixop(f, INTENTIONS_UPSERT, body, NULL, NULL, NULL), WEFT_OK);
	}
	/* The writes can finish before a reader thread is scheduled. */
	for (int i = 0; i < 200 && __atomic_load_n(&rd.rounds, __ATOMIC_ACQUIRE) == 0; i++)
		usleep(10000);
	__atomic_store_n(&rd.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(rd.bad, 0);
	assert_true(rd.rounds > 0);
	assert_int_equal(intentions_acquire(c, "default", &b, NULL), WEFT_OK);
	assert_int_equal(intention_set_count(b->set), 32);
	intentions_release(c, b);
	intentions_free(c);
	store_set_publisher(f->store, on_publish, &f->pub);
	hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validate_and_mesh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intentions_on_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meshes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intentions_cache, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
