/* castore: the default mesh's CA made at open, configuration decoding,
 * rotation (cross-signed chain, both roots kept), removal of the old root
 * exactly when its time comes (fake clock), keys sealed in the store and
 * reloaded after a restart, a foreign sealing key refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca.h"
#include "castore.h"
#include "err.h"
#include "jsonx.h"
#include "store.h"

static _Atomic int64_t fake_now = 1800000000000LL;

static int64_t clock_ms(void)
{
	return fake_now;
}

struct fixture {
	char dir[64];
	struct store *store;
	struct castore *cs;
	char *csr;
};

static void open_all(struct fixture *f)
{
	struct store_opts o = { 0 };
	char path[128], *err = NULL;

	snprintf(path, sizeof(path), "%s/weft.db", f->dir);
	o.path = path;
	o.now_ms = clock_ms;
	assert_int_equal(store_open(&f->store, &o, &err), WEFT_OK);
	if (castore_open(&f->cs, f->store, f->dir, "dc1", &err) != WEFT_OK)
		fail_msg("castore_open: %s", err);
}

static void close_all(struct fixture *f)
{
	castore_close(f->cs);
	store_close(f->store);
	f->cs = NULL;
	f->store = NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *key = NULL, *err = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/weft-castore-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	open_all(f);
	assert_int_equal(ca_csr_create("ec-p256", "x", NULL, &key, &f->csr, &err), WEFT_OK);
	ca_secret_free(key);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];

	close_all(f);
	free(f->csr);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static json_t *roots(struct fixture *f, const char *mesh)
{
	struct db *db = store_read_begin(f->store);
	uint64_t idx;
	json_t *r = castore_roots_json(db, mesh, &idx);

	store_read_end(db);
	return r;
}

/* decode + prepare + apply, as the API does; returns the code. */
static int put(struct fixture *f, const char *json, char **err_out)
{
	struct store_write w = { .apply = castore_apply_put };
	struct castore_put *p = NULL;
	char *err = NULL;
	json_t *doc = jx_parse(json, strlen(json), &err);
	int rc;

	assert_non_null(doc);
	rc = castore_put_decode(doc, "default", &p, &err);
	json_decref(doc);
	if (rc == WEFT_OK)
		rc = castore_put_prepare(f->cs, p, &err);
	if (rc == WEFT_OK) {
		w.arg = p;
		rc = store_write_sync(f->store, &w);
		err = w.err;
		json_decref(w.result);
	}
	castore_put_free(p);
	if (err_out)
		*err_out = err;
	else
		free(err);
	return rc;
}

static json_t *sign(struct fixture *f)
{
	json_t *out = NULL;
	char *err = NULL;

	if (castore_sign(f->cs, "default", "web", f->csr, strlen(f->csr), &out, &err) != WEFT_OK)
		fail_msg("sign: %s", err);
	return out;
}

static void test_default_ca_at_open(void **state)
{
	struct fixture *f = *state;
	json_t *r = roots(f, "default"), *leaf;
	struct stat st;
	char path[128];

	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "Roots")), 1);
	snprintf(path, sizeof(path), "%s/%s", f->dir, CASTORE_KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	leaf = sign(f);
	assert_string_equal(json_string_value(json_object_get(leaf, "ChainPEM")), "");
	assert_non_null(strstr(json_string_value(json_object_get(leaf, "ServiceURI")),
			       "/ns/default/dc/dc1/svc/web"));
	json_decref(leaf);
	json_decref(r);
}

static void test_decode_names_the_field(void **state)
{
	struct fixture *f = *state;
	static const struct { const char *json, *prefix; } bad[] = {
		{ "{\"Provider\": \"vault\"}", "Provider:" },
		{ "{\"Config\": {\"LeafCertTTL\": \"1ms\"}}", "Config.LeafCertTTL:" },
		{ "{\"Config\": {\"LeafCertTTL\": \"9000h\"}}", "Config.LeafCertTTL:" },
		{ "{\"Config\": {\"Nope\": 1}}", "Config.Nope:" },
		{ "{\"Config\": {\"PrivateKeyType\": \"rsa\"}}", "Config.PrivateKeyType:" },
		{ "{\"RotateRoot\": 1}", "RotateRoot:" },
		{ "{\"Provider\": \"provided\"}", "Config.RootCert:" },
		{ "{\"Provider\": \"provided\", \"Config\": {\"RootCert\": \"x\"}}", "Config.PrivateKey:" },
		{ "{\"Config\": {\"RootCert\": \"x\", \"PrivateKey\": \"y\"}}", "Config.RootCert:" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		int rc = put(f, bad[i].json, &err);
		if (rc != WEFT_EINVAL || err == NULL || strncmp(err, bad[i].prefix, strlen(bad[i].prefix)))
			fail_msg("%s: rc %d, %s", bad[i].json, rc, err ? err : "(no message)");
		free(err);
	}
}

static void test_rotation_and_removal(void **state)
{
	struct fixture *f = *state;
	json_t *r, *before, *leaf;
	const char *old_id;
	int64_t t0;

	assert_int_equal(put(f, "{\"Config\": {\"LeafCertTTL\": \"10s\"}}", NULL), WEFT_OK);
	before = roots(f, "default");
	old_id = json_string_value(json_object_get(before, "ActiveRootID"));
	/* a TTL change is no rotation */
	assert_int_equal(json_array_size(json_object_get(before, "Roots")), 1);
	t0 = fake_now;
	assert_int_equal(put(f, "{\"RotateRoot\": true}", NULL), WEFT_OK);
	r = roots(f, "default");
	assert_int_equal(json_array_size(json_object_get(r, "Roots")), 2);
	assert_string_not_equal(json_string_value(json_object_get(r, "ActiveRootID")), old_id);
	json_decref(r);
	leaf = sign(f);   /* by the new root, with the cross-signed certificate */
	assert_non_null(strstr(json_string_value(json_object_get(leaf, "ChainPEM")),
			       "BEGIN CERTIFICATE"));
	json_decref(leaf);

	fake_now = t0 + 10000 - 1;
	castore_prune(f->cs, fake_now);
	r = roots(f, "default");
	assert_int_equal(json_array_size(json_object_get(r, "Roots")), 2);
	json_decref(r);
	fake_now = t0 + 10000;
	castore_prune(f->cs, fake_now);   /* (or the thread did it already) */
	r = roots(f, "default");
	assert_int_equal(json_array_size(json_object_get(r, "Roots")), 1);
	assert_string_not_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(r, "Roots"), 0), "ID")), old_id);
	json_decref(r);
	json_decref(before);
}

static void test_keys_sealed_and_reloaded(void **state)
{
	struct fixture *f = *state;
	struct db *db = store_read_begin(f->store);
	struct db_stmt *st = db_prep(db, "SELECT sealed_key FROM ca_roots");
	json_t *r1, *r2, *leaf;
	char id[CA_ID_LEN + 1];
	int n = 0;

	while (db_step(st) == DB_ROW) {
		assert_int_equal(strncmp(db_col_text(st, 0), SEALED_PREFIX, strlen(SEALED_PREFIX)), 0);
		assert_null(strstr(db_col_text(st, 0), "PRIVATE"));
		n++;
	}
	db_done(st);
	store_read_end(db);
	assert_int_equal(n, 1);
	r1 = roots(f, "default");
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r1, "ActiveRootID")));
	close_all(f);
	open_all(f);
	r2 = roots(f, "default");
	assert_string_equal(json_string_value(json_object_get(r2, "ActiveRootID")), id);
	leaf = sign(f);   /* the key unsealed from the store */
	json_decref(leaf);
	json_decref(r1);
	json_decref(r2);
}

static void test_foreign_sealing_key_refused(void **state)
{
	struct fixture *f = *state;
	struct sealed_key *k = NULL;
	char path[128], *err = NULL;
	json_t *out = NULL;

	close_all(f);
	snprintf(path, sizeof(path), "%s/%s", f->dir, CASTORE_KEY_FILE);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(sealed_key_create(&k, path, &err), WEFT_OK);
	sealed_key_free(k);
	open_all(f);
	assert_int_equal(castore_sign(f->cs, "default", "web", f->csr, strlen(f->csr), &out, &err),
			 WEFT_EIO);
	assert_non_null(strstr(err, CASTORE_KEY_FILE));
	assert_null(out);
	assert_null(strstr(err, "weftseal1."));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_ca_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_names_the_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_and_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_sealed_and_reloaded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_sealing_key_refused, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
