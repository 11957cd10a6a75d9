/* The store: durable writes, modify indexes, rollback of one write in a
 * batch, topics published after commit, reopen keeps everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "err.h"
#include "jsonx.h"
#include "store.h"

struct published {
	pthread_mutex_t lock;
	char topics[256][64];
	uint64_t idx[256];
	size_t n;
};

static void on_publish(void *ctx, const char *const *topics, const uint64_t *idx, size_t n)
{
	struct published *p = ctx;

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n && p->n < 256; i++, p->n++) {
		snprintf(p->topics[p->n], sizeof(p->topics[0]), "%s", topics[i]);
		p->idx[p->n] = idx[i];
	}
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

	snprintf(f->dir, sizeof(f->dir), "/tmp/weft-store-XXXXXX");
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
	free(f);
	return 0;
}

static int do_register(struct store *s, const char *json, uint64_t *index, char **err_out)
{
	struct cat_register reg;
	struct store_write w = { .apply = catalog_apply_register, .arg = &reg };
	char *err = NULL;
	json_t *doc = jx_parse(json, strlen(json), &err);
	int rc;

	assert_non_null(doc);
	rc = catalog_decode_register(doc, "dc1", &reg, &err);
	json_decref(doc);
	if (rc == WEFT_OK) {
		rc = store_write_sync(s, &w);
		if (index)
			*index = w.index;
		err = w.err;
		json_decref(w.result);
	}
	free(reg.checks);
	json_decref(reg.doc);
	if (err_out)
		*err_out = err;
	else
		free(err);
	return rc;
}

static void test_index_grows_per_write(void **state)
{
	struct fixture *f = *state;
	uint64_t start = store_last_index(f->store), i1, i2;

	assert_int_equal(do_register(f->store, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\","
				     "\"Service\":{\"Service\":\"web\",\"Port\":80}}", &i1, NULL), WEFT_OK);
	assert_int_equal(do_register(f->store, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\","
				     "\"Service\":{\"Service\":\"api\",\"Port\":81}}", &i2, NULL), WEFT_OK);
	assert_true(i1 > start);
	assert_int_equal(i2, i1 + 1);
	assert_int_equal(store_last_index(f->store), i2);
}

static void test_rows_carry_indexes(void **state)
{
	struct fixture *f = *state;
	uint64_t i1, i2;
	struct db *db;
	json_t *nodes;

	assert_int_equal(do_register(f->store, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\","
				     "\"Service\":{\"Service\":\"web\",\"Port\":80}}", &i1, NULL), WEFT_OK);
	assert_int_equal(do_register(f->store, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\","
				     "\"Service\":{\"Service\":\"web\",\"Port\":8080}}", &i2, NULL), WEFT_OK);
	db = store_read_begin(f->store);
	nodes = catalog_service_nodes(db, "dc1", "web", NULL, NULL);
	store_read_end(db);
	assert_int_equal(json_array_size(nodes), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(nodes, 0), "CreateIndex")), i1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(nodes, 0), "ModifyIndex")), i2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(nodes, 0), "ServicePort")), 8080);
	json_decref(nodes);
}

static void test_unchanged_write_publishes_nothing(void **state)
{
	struct fixture *f = *state;
	const char *body = "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"Service\":{\"Service\":\"web\",\"Port\":80}}";
	size_t before;

	assert_int_equal(do_register(f->store, body, NULL, NULL), WEFT_OK);
	before = f->pub.n;
	assert_true(before > 0);
	assert_int_equal(do_register(f->store, body, NULL, NULL), WEFT_OK);
	assert_int_equal(f->pub.n, before);  /* same content: no watcher should wake */
}

static void test_topics_name_what_changed(void **state)
{
	struct fixture *f = *state;
	int svc = 0, other = 0;

	assert_int_equal(do_register(f->store, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\","
				     "\"Service\":{\"Service\":\"web\",\"Port\":80}}", NULL, NULL), WEFT_OK);
	for (size_t i = 0; i < f->pub.n; i++) {
		if (strcmp(f->pub.topics[i], "svc:web") == 0)
			svc = 1;
		if (strcmp(f->pub.topics[i], "svc:api") == 0)
			other = 1;
	}
	assert_true(svc);
	assert_false(other);
}

/* A failing write in a batch rolls back alone; the others commit. */
static int apply_fail_after_insert(struct db *db, uint64_t index, struct store_write *w,
				   struct store_changes *ch)
{
	struct db_stmt *st = db_prep(db, "INSERT INTO nodes (name, address, datacenter, create_index,"
					 " modify_index) VALUES ('ghost', '1.2.3.4', 'dc1', ?, ?)");
	db_bind_int(st, 1, (int64_t)index);
	db_bind_int(st, 2, (int64_t)index);
	db_step(st);
	db_done(st);
	changes_add(ch, "nodes");
	return weft_errf(&w->err, WEFT_EINVAL, "Node: refused on purpose");
}

struct async_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void async_done(struct store_write *w)
{
	struct async_state *a = w->done_arg;

	pthread_mutex_lock(&a->lock);
	a->done++;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

static void test_failed_write_rolls_back_alone(void **state)
{
	struct fixture *f = *state;
	struct async_state a = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct store_write bad = { .apply = apply_fail_after_insert, .done = async_done, .done_arg = &a };
	struct db *db;
	json_t *nodes;
	uint64_t before = store_last_index(f->store);

	store_submit(f->store, &bad);
	assert_int_equal(do_register(f->store, "{\"Node\":\"n2\",\"Address\":\"10.0.0.2\"}", NULL, NULL),
			 WEFT_OK);
	pthread_mutex_lock(&a.lock);
	while (a.done < 1)
		pthread_cond_wait(&a.cond, &a.lock);
	pthread_mutex_unlock(&a.lock);
	assert_int_equal(bad.status, WEFT_EINVAL);
	assert_string_equal(bad.err, "Node: refused on purpose");
	free(bad.err);
	db = store_read_begin(f->store);
	nodes = catalog_nodes(db, "dc1", NULL);
	store_read_end(db);
	assert_int_equal(json_array_size(nodes), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "Node")), "n2");
	json_decref(nodes);
	assert_int_equal(store_last_index(f->store), before + 1);
}

/* Many writers at once share commits and every one is acknowledged. */
#define WRITERS 8
#define PER_WRITER 50

static void *writer_thread(void *arg)
{
	struct store *s = arg;
	char body[256];
	static _Atomic int next;

	for (int i = 0; i < PER_WRITER; i++) {
		int n = next++;
		snprintf(body, sizeof(body), "{\"Node\":\"node-%d\",\"Address\":\"10.1.%d.%d\"}", n,
			 n / 250, n % 250);
		if (do_register(s, body, NULL, NULL) != WEFT_OK)
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_writes_group_commit(void **state)
{
	struct fixture *f = *state;
	pthread_t th[WRITERS];
	struct store_stats st;
	struct db *db;
	json_t *nodes;
	void *ret;

	for (int i = 0; i < WRITERS; i++)
		pthread_create(&th[i], NULL, writer_thread, f->store);
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	db = store_read_begin(f->store);
	nodes = catalog_nodes(db, "dc1", NULL);
	store_read_end(db);
	assert_int_equal(json_array_size(nodes), WRITERS * PER_WRITER);
	json_decref(nodes);
	store_stats(f->store, &st);
	assert_int_equal(st.writes, WRITERS * PER_WRITER);
	assert_true(st.commits <= st.writes);
	assert_true(st.file_bytes > 0);
}

static void test_reopen_keeps_data_and_index(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = { .path = f->path };
	char *err = NULL;
	uint64_t idx;
	struct db *db;
	json_t *node;

	assert_int_equal(do_register(f->store, "{\"Node\":\"n9\",\"Address\":\"10.0.0.9\"}", &idx, NULL),
			 WEFT_OK);
	store_close(f->store);
	assert_int_equal(store_open(&f->store, &o, &err), WEFT_OK);
	assert_int_equal(store_last_index(f->store), idx);
	db = store_read_begin(f->store);
	node = catalog_node_json(db, "dc1", "n9");
	store_read_end(db);
	assert_non_null(node);
	assert_string_equal(json_string_value(json_object_get(node, "Address")), "10.0.0.9");
	json_decref(node);
}

static void test_check_for_unknown_service_is_refused(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;

	assert_int_equal(do_register(f->store, "{\"Node\":\"n1\",\"Address\":\"10.0.0.1\","
				     "\"Check\":{\"Name\":\"c\",\"ServiceID\":\"nope\"}}", NULL, &err),
			 WEFT_ENOENT);
	assert_non_null(strstr(err, "nope"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_index_grows_per_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_carry_indexes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unchanged_write_publishes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topics_name_what_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_rolls_back_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writes_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data_and_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_for_unknown_service_is_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
