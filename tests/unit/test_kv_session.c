/* KV and sessions at the store level: real SQLite store on a temp file,
 * every write through store_write_sync, a fake clock for lock-delay and TTL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "err.h"
#include "jsonx.h"
#include "kv.h"
#include "session.h"
#include "store.h"

/* Atomic: the reaper thread reads it too. */
static _Atomic int64_t fake_now = 1700000000000LL;
static int64_t fake_clock(void) { return fake_now; }

/* Topics of the last commits, to check what a write wakes. */
static json_t *published;

static void collect(void *ctx, const char *const *topics, const uint64_t *idx, size_t n)
{
	(void)ctx;
	(void)idx;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(published, json_string(topics[i]));
}

struct fx {
	char path[64];
	struct store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_opts o = { 0 };
	char *err = NULL;
	int fd;

	snprintf(f->path, sizeof(f->path), "/tmp/weft-kvtest-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	unlink(f->path);
	o.path = f->path;
	o.now_ms = fake_clock;
	o.publish = collect;
	published = json_array();
	if (store_open(&f->s, &o, &err) != WEFT_OK)
		fail_msg("store_open: %s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[80];

	store_close(f->s);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	json_decref(published);
	free(f);
	return 0;
}

/* Runs apply(arg); returns the status, *result (if asked) the result. */
static int run(struct fx *f, store_apply_fn apply, void *arg, json_t **result)
{
	struct store_write w = { .apply = apply, .arg = arg };
	int rc = store_write_sync(f->s, &w);

	if (result)
		*result = w.result;
	else
		json_decref(w.result);
	free(w.err);
	return rc;
}

/* A KV write; returns 1/0 for the boolean answer, or the error code. */
static int kv(struct fx *f, enum kv_op op, const char *key, const char *val, int64_t flags,
	      uint64_t cas, const char *session)
{
	struct kv_write *k = kv_write_new(op, key, val, val ? strlen(val) : 0);
	json_t *res = NULL;
	int rc;

	k->flags = flags;
	k->cas = cas;
	k->session = session ? strdup(session) : NULL;
	k->now_ms = fake_now;
	rc = run(f, kv_apply, k, &res);
	kv_write_free(k);
	if (rc != WEFT_OK)
		return rc;
	rc = json_is_true(res);
	json_decref(res);
	return rc;
}

/* The entry at key, or NULL. */
static json_t *get(struct fx *f, const char *key)
{
	struct db *db = store_read_begin(f->s);
	json_t *arr = kv_get(db, key), *e;

	store_read_end(db);
	e = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return e;
}

static long long field_int(json_t *e, const char *name)
{
	return json_integer_value(json_object_get(e, name));
}

static const char *field_str(json_t *e, const char *name)
{
	return json_string_value(json_object_get(e, name));
}

static void reg(struct fx *f, const char *json)
{
	struct cat_register *r = calloc(1, sizeof(*r));
	json_t *doc = json_loads(json, 0, NULL);
	char *err = NULL;

	assert_non_null(doc);
	if (catalog_decode_register(doc, "dc1", r, &err) != WEFT_OK)
		fail_msg("decode: %s", err);
	json_decref(doc);
	assert_int_equal(run(f, catalog_apply_register, r, NULL), WEFT_OK);
	catalog_register_free(r);
}

static void dereg(struct fx *f, const char *json)
{
	struct cat_deregister *d = calloc(1, sizeof(*d));
	json_t *doc = json_loads(json, 0, NULL);
	char *err = NULL;

	assert_int_equal(catalog_decode_deregister(doc, d, &err), WEFT_OK);
	json_decref(doc);
	assert_int_equal(run(f, catalog_apply_deregister, d, NULL), WEFT_OK);
	catalog_deregister_free(d);
}

static void node(struct fx *f, const char *name)
{
	char buf[256];

	snprintf(buf, sizeof(buf),
		 "{\"Node\":\"%s\",\"Address\":\"10.0.0.1\",\"Check\":{\"CheckID\":\"serfHealth\","
		 "\"Name\":\"Serf\",\"Status\":\"passing\"}}", name);
	reg(f, buf);
}

/* Creates a session from a JSON body; returns WEFT_OK and its ID in id. */
static int mksession(struct fx *f, const char *json, char id[37])
{
	struct session_create *c = calloc(1, sizeof(*c));
	json_t *doc = json ? json_loads(json, 0, NULL) : NULL, *res = NULL;
	char *err = NULL;
	int rc = session_decode_create(doc, "n1", c, &err);

	json_decref(doc);
	if (rc != WEFT_OK) {
		free(err);
		session_create_free(c);
		return rc;
	}
	c->now_ms = fake_now;
	rc = run(f, session_apply_create, c, &res);
	if (rc == WEFT_OK)
		snprintf(id, 37, "%s", field_str(res, "ID"));
	json_decref(res);
	session_create_free(c);
	return rc;
}

static int sess_op(struct fx *f, store_apply_fn fn, const char *id)
{
	struct session_op *op = session_op_new(id, fake_now);
	int rc = run(f, fn, op, NULL);

	session_op_free(op);
	return rc;
}

static size_t nsessions(struct fx *f)
{
	struct db *db = store_read_begin(f->s);
	json_t *l = session_list(db);
	size_t n = json_array_size(l);

	store_read_end(db);
	json_decref(l);
	return n;
}

static void test_cas_and_flags(void **state)
{
	struct fx *f = *state;
	json_t *e;
	long long mi;

	assert_int_equal(kv(f, KV_SET, "cfg/a", "one", 42, 0, NULL), 1);
	e = get(f, "cfg/a");
	assert_int_equal(field_int(e, "Flags"), 42);
	assert_string_equal(field_str(e, "Value"), "b25l");
	assert_int_equal(field_int(e, "LockIndex"), 0);
	assert_null(json_object_get(e, "Session"));
	mi = field_int(e, "ModifyIndex");
	assert_int_equal(field_int(e, "CreateIndex"), mi);
	json_decref(e);

	/* cas=0 only creates; a stale index loses; the current one wins. */
	assert_int_equal(kv(f, KV_CAS, "cfg/a", "two", 0, 0, NULL), 0);
	assert_int_equal(kv(f, KV_CAS, "cfg/a", "two", 0, (uint64_t)mi + 100, NULL), 0);
	assert_int_equal(kv(f, KV_CAS, "cfg/absent", "x", 0, 5, NULL), 0);
	assert_null(get(f, "cfg/absent"));
	assert_int_equal(kv(f, KV_CAS, "cfg/a", "two", 7, (uint64_t)mi, NULL), 1);
	e = get(f, "cfg/a");
	assert_string_equal(field_str(e, "Value"), "dHdv");
	assert_int_equal(field_int(e, "Flags"), 7);
	assert_true(field_int(e, "ModifyIndex") > mi);
	assert_int_equal(field_int(e, "CreateIndex"), mi);
	mi = field_int(e, "ModifyIndex");
	json_decref(e);
	assert_int_equal(kv(f, KV_CAS, "cfg/new", "n", 0, 0, NULL), 1);

	/* A plain write without flags resets them to 0, as Consul; no body is null. */
	assert_int_equal(kv(f, KV_SET, "cfg/a", NULL, 0, 0, NULL), 1);
	e = get(f, "cfg/a");
	assert_int_equal(field_int(e, "Flags"), 0);
	assert_true(json_is_null(json_object_get(e, "Value")));
	mi = field_int(e, "ModifyIndex");
	json_decref(e);

	/* Delete-CAS: stale loses, current wins, absent succeeds. */
	assert_int_equal(kv(f, KV_DELETE_CAS, "cfg/a", NULL, 0, (uint64_t)mi - 1, NULL), 0);
	assert_non_null(e = get(f, "cfg/a"));
	json_decref(e);
	assert_int_equal(kv(f, KV_DELETE_CAS, "cfg/a", NULL, 0, (uint64_t)mi, NULL), 1);
	assert_null(get(f, "cfg/a"));
	assert_int_equal(kv(f, KV_DELETE_CAS, "cfg/a", NULL, 0, 12345, NULL), 1);
}

static int published_has(const char *topic)
{
	size_t i;
	json_t *v;

	json_array_foreach(published, i, v)
		if (strcmp(json_string_value(v), topic) == 0)
			return 1;
	return 0;
}

static void test_recurse_keys_and_delete_tree(void **state)
{
	struct fx *f = *state;
	const char *keys[] = { "a/1", "a/2", "a/b/3", "ab", "b" };
	struct db *db;
	json_t *l;

	for (size_t i = 0; i < 5; i++)
		assert_int_equal(kv(f, KV_SET, keys[i], "v", 0, 0, NULL), 1);
	db = store_read_begin(f->s);
	l = kv_list(db, "a/");
	assert_int_equal(json_array_size(l), 3);
	assert_string_equal(field_str(json_array_get(l, 2), "Key"), "a/b/3");
	json_decref(l);
	l = kv_keys(db, "", "/");
	assert_int_equal(json_array_size(l), 3);
	assert_string_equal(json_string_value(json_array_get(l, 0)), "a/");
	assert_string_equal(json_string_value(json_array_get(l, 1)), "ab");
	assert_string_equal(json_string_value(json_array_get(l, 2)), "b");
	json_decref(l);
	l = kv_keys(db, "a/", "/");
	assert_int_equal(json_array_size(l), 3);
	assert_string_equal(json_string_value(json_array_get(l, 2)), "a/b/");
	json_decref(l);
	l = kv_keys(db, "a", NULL);
	assert_int_equal(json_array_size(l), 4);
	json_decref(l);
	store_read_end(db);

	json_array_clear(published);
	assert_int_equal(kv(f, KV_DELETE_TREE, "a/", NULL, 0, 0, NULL), 1);
	/* Watchers of the tree, of what is above it and of each key wake;
	 * those of the neighbour "ab" do not. */
	assert_true(published_has("kv:"));
	assert_true(published_has("kv:a"));
	assert_true(published_has("kv:a/"));
	assert_true(published_has("kv:a/b/"));
	assert_true(published_has("kv:a/b/3"));
	assert_true(published_has("kvx:a/1"));
	assert_true(published_has("kvx:a/b/3"));
	assert_false(published_has("kv:ab"));
	assert_false(published_has("kvx:ab"));
	assert_null(get(f, "a/1"));
	assert_null(get(f, "a/b/3"));
	json_t *e = get(f, "ab");
	assert_non_null(e);
	json_decref(e);
	db = store_read_begin(f->s);
	l = kv_list(db, "");
	assert_int_equal(json_array_size(l), 2);
	json_decref(l);
	store_read_end(db);
}

static void test_topics(void **state)
{
	struct fx *f = *state;

	json_array_clear(published);
	assert_int_equal(kv(f, KV_SET, "app/web/x", "1", 0, 0, NULL), 1);
	assert_true(published_has("kv:"));
	assert_true(published_has("kv:app/"));
	assert_true(published_has("kv:app/web/"));
	assert_true(published_has("kv:app/web/x"));
	assert_true(published_has("kvx:app/web/x"));
	assert_false(published_has("kv:other/"));
	assert_false(published_has("kvx:app/web"));
	/* A refused CAS changes nothing and wakes nobody. */
	json_array_clear(published);
	assert_int_equal(kv(f, KV_CAS, "app/web/x", "2", 0, 0, NULL), 0);
	assert_int_equal(json_array_size(published), 0);
}

static void test_acquire_release(void **state)
{
	struct fx *f = *state;
	char s1[37], s2[37];
	json_t *e;

	node(f, "n1");
	assert_int_equal(mksession(f, NULL, s1), WEFT_OK);
	assert_int_equal(mksession(f, "{\"Name\":\"two\"}", s2), WEFT_OK);

	assert_int_equal(kv(f, KV_LOCK, "lock", "a", 0, 0, s1), 1);
	e = get(f, "lock");
	assert_int_equal(field_int(e, "LockIndex"), 1);
	assert_string_equal(field_str(e, "Session"), s1);
	json_decref(e);
	/* The holder re-acquires without a new LockIndex; others are refused. */
	assert_int_equal(kv(f, KV_LOCK, "lock", "b", 0, 0, s1), 1);
	assert_int_equal(kv(f, KV_LOCK, "lock", "c", 0, 0, s2), 0);
	e = get(f, "lock");
	assert_int_equal(field_int(e, "LockIndex"), 1);
	assert_string_equal(field_str(e, "Value"), "Yg==");
	json_decref(e);
	/* A plain write keeps the lock. */
	assert_int_equal(kv(f, KV_SET, "lock", "d", 0, 0, NULL), 1);
	e = get(f, "lock");
	assert_string_equal(field_str(e, "Session"), s1);
	assert_int_equal(field_int(e, "LockIndex"), 1);
	json_decref(e);
	/* Only the holder releases. */
	assert_int_equal(kv(f, KV_UNLOCK, "lock", "x", 0, 0, s2), 0);
	assert_int_equal(kv(f, KV_UNLOCK, "lock", "x", 0, 0, s1), 1);
	e = get(f, "lock");
	assert_null(json_object_get(e, "Session"));
	assert_int_equal(field_int(e, "LockIndex"), 1);
	json_decref(e);
	assert_int_equal(kv(f, KV_UNLOCK, "lock", "x", 0, 0, s1), 0);
	assert_int_equal(kv(f, KV_UNLOCK, "absent", "x", 0, 0, s1), 0);
	/* A new acquisition bumps LockIndex. */
	assert_int_equal(kv(f, KV_LOCK, "lock", "y", 0, 0, s2), 1);
	e = get(f, "lock");
	assert_int_equal(field_int(e, "LockIndex"), 2);
	assert_string_equal(field_str(e, "Session"), s2);
	json_decref(e);
	/* A session is required and must exist. */
	assert_int_equal(kv(f, KV_LOCK, "lock2", "y", 0, 0, "00000000-0000-0000-0000-000000000000"),
			 WEFT_EINVAL);
	assert_int_equal(kv(f, KV_LOCK, "lock2", "y", 0, 0, ""), WEFT_EINVAL);
	assert_null(get(f, "lock2"));
}

static void test_lock_delay(void **state)
{
	struct fx *f = *state;
	char s1[37], s2[37], s3[37];

	node(f, "n1");
	assert_int_equal(mksession(f, "{\"LockDelay\":\"5s\"}", s1), WEFT_OK);
	assert_int_equal(mksession(f, "{\"LockDelay\":0}", s2), WEFT_OK);
	assert_int_equal(kv(f, KV_LOCK, "leader", "s1", 0, 0, s1), 1);
	assert_int_equal(sess_op(f, session_apply_destroy, s1), WEFT_OK);
	/* Released, but nobody may take it within the 5s window. */
	fake_now += 1000;
	assert_int_equal(kv(f, KV_LOCK, "leader", "s2", 0, 0, s2), 0);
	fake_now += 3999;
	assert_int_equal(kv(f, KV_LOCK, "leader", "s2", 0, 0, s2), 0);
	fake_now += 2;
	assert_int_equal(kv(f, KV_LOCK, "leader", "s2", 0, 0, s2), 1);
	/* LockDelay 0: no window. A number below 1000 means seconds (Consul). */
	assert_int_equal(sess_op(f, session_apply_destroy, s2), WEFT_OK);
	assert_int_equal(mksession(f, "{\"LockDelay\":2}", s3), WEFT_OK);
	assert_int_equal(kv(f, KV_LOCK, "leader", "s3", 0, 0, s3), 1);
	assert_int_equal(sess_op(f, session_apply_destroy, s3), WEFT_OK);
	assert_int_equal(mksession(f, "{\"LockDelay\":0}", s2), WEFT_OK);
	fake_now += 1999;
	assert_int_equal(kv(f, KV_LOCK, "leader", "x", 0, 0, s2), 0);
	fake_now += 2;
	assert_int_equal(kv(f, KV_LOCK, "leader", "x", 0, 0, s2), 1);
}

static void test_invalidate_release_vs_delete(void **state)
{
	struct fx *f = *state;
	char rel[37], del[37];
	json_t *e;
	long long mi;

	node(f, "n1");
	assert_int_equal(mksession(f, "{\"Behavior\":\"release\",\"LockDelay\":0}", rel), WEFT_OK);
	assert_int_equal(mksession(f, "{\"Behavior\":\"delete\",\"LockDelay\":0}", del), WEFT_OK);
	assert_int_equal(kv(f, KV_LOCK, "r/1", "v", 0, 0, rel), 1);
	assert_int_equal(kv(f, KV_LOCK, "r/2", "v", 0, 0, rel), 1);
	assert_int_equal(kv(f, KV_LOCK, "d/1", "v", 0, 0, del), 1);
	assert_int_equal(kv(f, KV_SET, "other", "v", 0, 0, NULL), 1);
	e = get(f, "r/1");
	mi = field_int(e, "ModifyIndex");
	json_decref(e);

	assert_int_equal(sess_op(f, session_apply_destroy, rel), WEFT_OK);
	e = get(f, "r/1");
	assert_non_null(e);
	assert_null(json_object_get(e, "Session"));
	assert_int_equal(field_int(e, "LockIndex"), 1);
	assert_true(field_int(e, "ModifyIndex") > mi);
	assert_string_equal(field_str(e, "Value"), "dg==");
	json_decref(e);
	e = get(f, "r/2");
	assert_null(json_object_get(e, "Session"));
	json_decref(e);

	json_array_clear(published);
	assert_int_equal(sess_op(f, session_apply_destroy, del), WEFT_OK);
	assert_null(get(f, "d/1"));
	assert_true(published_has("kvx:d/1"));
	assert_true(published_has("sessions"));
	assert_non_null(e = get(f, "other"));
	json_decref(e);
	assert_int_equal(nsessions(f), 0);
	/* Destroying an unknown session is not an error (Consul). */
	assert_int_equal(sess_op(f, session_apply_destroy, del), WEFT_OK);
	/* Behavior must be release or delete. */
	assert_int_equal(mksession(f, "{\"Behavior\":\"keep\"}", rel), WEFT_EINVAL);
}

static void test_ttl_expiry(void **state)
{
	struct fx *f = *state;
	char s1[37], s2[37];
	json_t *e;

	node(f, "n1");
	assert_int_equal(mksession(f, "{\"TTL\":\"5s\"}", s1), WEFT_EINVAL);
	assert_int_equal(mksession(f, "{\"TTL\":\"86401s\"}", s1), WEFT_EINVAL);
	assert_int_equal(mksession(f, "{\"TTL\":\"10s\",\"LockDelay\":0}", s1), WEFT_OK);
	assert_int_equal(mksession(f, "{\"LockDelay\":0}", s2), WEFT_OK);   /* no TTL */
	assert_int_equal(kv(f, KV_LOCK, "ttl-lock", "v", 0, 0, s1), 1);

	/* Consul invalidates 2 x TTL after the last renewal. */
	fake_now += 15000;
	assert_int_equal(session_reap(f->s), 0);
	assert_int_equal(sess_op(f, session_apply_renew, s1), WEFT_OK);
	fake_now += 19999;
	assert_int_equal(session_reap(f->s), 0);
	assert_int_equal(nsessions(f), 2);
	fake_now += 1;
	assert_int_equal(session_reap(f->s), 1);
	assert_int_equal(nsessions(f), 1);
	e = get(f, "ttl-lock");
	assert_null(json_object_get(e, "Session"));
	json_decref(e);
	/* Renewing a gone session is a 404. */
	assert_int_equal(sess_op(f, session_apply_renew, s1), WEFT_ENOENT);
	/* The session without a TTL never expires. */
	fake_now += 10LL * 86400 * 1000;
	assert_int_equal(session_reap(f->s), 0);
	assert_int_equal(nsessions(f), 1);
}

/* The reaper thread finds expired sessions by itself. */
static void test_reaper_thread(void **state)
{
	struct fx *f = *state;
	struct session_reaper *r = NULL;
	char s1[37], *err = NULL;
	int i;

	node(f, "n1");
	assert_int_equal(mksession(f, "{\"TTL\":\"10s\"}", s1), WEFT_OK);
	assert_int_equal(session_reaper_start(&r, f->s, 10, &err), WEFT_OK);
	usleep(50 * 1000);
	assert_int_equal(nsessions(f), 1);   /* not due yet */
	fake_now += 20000;
	for (i = 0; i < 200 && nsessions(f) > 0; i++)
		usleep(10 * 1000);
	assert_int_equal(nsessions(f), 0);
	session_reaper_stop(r);
}

static void test_checks(void **state)
{
	struct fx *f = *state;
	char s1[37], s2[37], s3[37];
	json_t *e;

	reg(f, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"Checks\":["
	       "{\"CheckID\":\"serfHealth\",\"Name\":\"Serf\",\"Status\":\"passing\"},"
	       "{\"CheckID\":\"disk\",\"Name\":\"disk\",\"Status\":\"passing\"},"
	       "{\"CheckID\":\"bad\",\"Name\":\"bad\",\"Status\":\"critical\"}]}");
	/* Creation needs the node and usable checks. */
	assert_int_equal(mksession(f, "{\"Node\":\"nope\"}", s1), WEFT_EINVAL);
	assert_int_equal(mksession(f, "{\"NodeChecks\":[\"bad\"]}", s1), WEFT_EINVAL);
	assert_int_equal(mksession(f, "{\"NodeChecks\":[\"missing\"]}", s1), WEFT_EINVAL);
	assert_int_equal(nsessions(f), 0);

	assert_int_equal(mksession(f, "{\"NodeChecks\":[\"disk\"],\"LockDelay\":0}", s1), WEFT_OK);
	assert_int_equal(mksession(f, "{\"LockDelay\":0}", s2), WEFT_OK);   /* serfHealth */
	assert_int_equal(kv(f, KV_LOCK, "k1", "v", 0, 0, s1), 1);
	assert_int_equal(kv(f, KV_LOCK, "k2", "v", 0, 0, s2), 1);

	/* disk turns critical: s1 goes, its lock is released; s2 stays. */
	reg(f, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"Check\":"
	       "{\"CheckID\":\"disk\",\"Name\":\"disk\",\"Status\":\"critical\"}}");
	assert_int_equal(nsessions(f), 1);
	e = get(f, "k1");
	assert_null(json_object_get(e, "Session"));
	json_decref(e);
	e = get(f, "k2");
	assert_string_equal(field_str(e, "Session"), s2);
	json_decref(e);

	/* Deregistering the node invalidates the rest. */
	assert_int_equal(mksession(f, "{\"Checks\":[],\"Behavior\":\"delete\",\"LockDelay\":0}", s3),
			 WEFT_OK);
	assert_int_equal(kv(f, KV_LOCK, "k3", "v", 0, 0, s3), 1);
	dereg(f, "{\"Node\":\"n1\"}");
	assert_int_equal(nsessions(f), 0);
	assert_null(get(f, "k3"));
	e = get(f, "k2");
	assert_null(json_object_get(e, "Session"));
	json_decref(e);
}

static void test_check_removed(void **state)
{
	struct fx *f = *state;
	char s1[37];

	reg(f, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"Service\":{\"Service\":\"web\"},"
	       "\"Checks\":[{\"CheckID\":\"web-ok\",\"Name\":\"w\",\"Status\":\"passing\","
	       "\"ServiceID\":\"web\"}]}");
	assert_int_equal(mksession(f, "{\"Checks\":[],\"ServiceChecks\":[{\"ID\":\"web-ok\"}]}", s1),
			 WEFT_OK);
	assert_int_equal(nsessions(f), 1);
	dereg(f, "{\"Node\":\"n1\",\"ServiceID\":\"web\"}");
	assert_int_equal(nsessions(f), 0);
}

struct status_arg {
	const char *node, *check, *status;
};

static int apply_status(struct db *db, uint64_t index, struct store_write *w,
			struct store_changes *ch)
{
	const struct status_arg *a = w->arg;

	return catalog_set_check_status(db, index, a->node, a->check, a->status, "out", fake_now,
					ch, &w->err);
}

/* A status update (what TTL checks and agents do) to critical invalidates,
 * one to warning does not; deregistering a single check does too. */
static void test_check_status_and_check_removal(void **state)
{
	struct fx *f = *state;
	struct status_arg warn = { "n1", "disk", "warning" }, crit = { "n1", "disk", "critical" };
	char s1[37], s2[37];

	reg(f, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"Checks\":["
	       "{\"CheckID\":\"serfHealth\",\"Name\":\"Serf\",\"Status\":\"passing\"},"
	       "{\"CheckID\":\"disk\",\"Name\":\"disk\",\"Status\":\"passing\"},"
	       "{\"CheckID\":\"mem\",\"Name\":\"mem\",\"Status\":\"passing\"}]}");
	assert_int_equal(mksession(f, "{\"NodeChecks\":[\"disk\"]}", s1), WEFT_OK);
	assert_int_equal(mksession(f, "{\"NodeChecks\":[\"serfHealth\",\"mem\"]}", s2), WEFT_OK);
	assert_int_equal(run(f, apply_status, &warn, NULL), WEFT_OK);
	assert_int_equal(nsessions(f), 2);
	assert_int_equal(run(f, apply_status, &crit, NULL), WEFT_OK);
	assert_int_equal(nsessions(f), 1);
	dereg(f, "{\"Node\":\"n1\",\"CheckID\":\"disk\"}");
	assert_int_equal(nsessions(f), 1);
	dereg(f, "{\"Node\":\"n1\",\"CheckID\":\"mem\"}");
	assert_int_equal(nsessions(f), 0);
}

static void test_decode_checks(void **state)
{
	struct session_create *c = calloc(1, sizeof(*c));
	json_t *doc = json_loads("{\"checks\":[\"a\"]}", 0, NULL);
	char *err = NULL;

	(void)state;
	/* Legacy Checks other than serfHealth add to the default NodeChecks. */
	assert_int_equal(session_decode_create(doc, "n1", c, &err), WEFT_OK);
	assert_int_equal(json_array_size(c->node_checks), 2);
	assert_string_equal(c->node, "n1");
	assert_string_equal(c->behavior, "release");
	assert_int_equal(c->lock_delay_ms, 15000);
	json_decref(doc);
	session_create_free(c);
	c = calloc(1, sizeof(*c));
	doc = json_loads("{\"LockDelay\":\"bogus\"}", 0, NULL);
	assert_int_equal(session_decode_create(doc, "n1", c, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "LockDelay"));
	free(err);
	json_decref(doc);
	session_create_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cas_and_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recurse_keys_and_delete_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acquire_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalidate_release_vs_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reaper_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_status_and_check_removal, setup, teardown),
		cmocka_unit_test(test_decode_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
