/* server/auth: the permission matrix, bootstrap, revocation through the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "token.h"
#include "util.h"

/* ---- the matrix ----
 * Per kind, one letter per permission in enum auth_perm order:
 * Y everywhere, N nowhere, S only on the token's own node or service. */
#define NPERM (AUTH_OPERATOR_READ + 1)
static const struct {
	enum token_kind kind;
	const char *scope;
	const char *expect;   /* read nodeW svcW kvR kvW sessW polR polW aclR aclW opR */
} matrix[] = {
	{ TOKEN_ADMIN,     "",    "YYYYYYYYYYY" },
	{ TOKEN_OPERATOR,  "",    "YYYYYYYYYNY" },
	{ TOKEN_AGENT,     "n1",  "YSYYNSNNNNN" },
	{ TOKEN_SERVICE,   "web", "YNSNNNNNNNN" },
	{ TOKEN_READ_ONLY, "",    "YNNYNNYNNNY" },
};

static void test_matrix(void **state)
{
	(void)state;
	assert_int_equal(strlen(matrix[0].expect), NPERM);
	for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
		struct identity id = { .kind = matrix[i].kind };
		const char *own = matrix[i].scope[0] ? matrix[i].scope : "anything";
		/* Names that only look like the scope must not match it. */
		const char *others[] = { "other", "n10", "n", "web-2", "we", "WEB", "N1", "" };

		snprintf(id.scope, sizeof(id.scope), "%s", matrix[i].scope);
		strcpy(id.accessor, "00000000-0000-4000-8000-000000000001");
		for (int p = 0; p < NPERM; p++) {
			char e = matrix[i].expect[p];
			int on_own = auth_allows(&id, (enum auth_perm)p, own);
			int on_null = auth_allows(&id, (enum auth_perm)p, NULL);

			if (on_own != (e != 'N'))
				fail_msg("%s: %s on its own \"%s\": got %d", token_kind_name(id.kind),
					 auth_perm_name((enum auth_perm)p), own, on_own);
			/* NULL (no particular resource): never for scoped grants. */
			if (on_null != (e == 'Y'))
				fail_msg("%s: %s on any resource: got %d", token_kind_name(id.kind),
					 auth_perm_name((enum auth_perm)p), on_null);
			for (size_t o = 0; o < sizeof(others) / sizeof(others[0]); o++) {
				int got = auth_allows(&id, (enum auth_perm)p, others[o]);
				if (got != (e == 'Y'))
					fail_msg("%s(%s): %s on \"%s\": got %d", token_kind_name(id.kind),
						 id.scope, auth_perm_name((enum auth_perm)p), others[o], got);
			}
		}
	}
}

static void test_matrix_edges(void **state)
{
	struct identity id = { .kind = TOKEN_AGENT };
	(void)state;

	/* A scoped identity without a scope holds no scoped grant, not even on "". */
	assert_false(auth_allows(&id, AUTH_NODE_WRITE, ""));
	assert_false(auth_allows(&id, AUTH_SESSION_WRITE, ""));
	id.kind = TOKEN_SERVICE;
	assert_false(auth_allows(&id, AUTH_SERVICE_WRITE, ""));
	/* No identity, no permission; unknown kinds and permissions are refused. */
	assert_false(auth_allows(NULL, AUTH_READ, NULL));
	id.kind = (enum token_kind)42;
	assert_false(auth_allows(&id, AUTH_READ, NULL));
	assert_string_equal(auth_perm_name(AUTH_SESSION_WRITE), "session:write");
	assert_string_equal(auth_perm_name((enum auth_perm)99), "unknown");
}

/* ---- with a store ---- */

struct fixture {
	char dir[64];
	struct store *store;
	struct auth *auth;
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct store_opts so = { 0 };
	char path[128];

	strcpy(fx->dir, "/tmp/weft-auth-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/weft.db", fx->dir);
	so.path = path;
	if (store_open(&fx->store, &so, NULL) != WEFT_OK)
		return -1;
	if (auth_open(&fx->auth, fx->dir, fx->store, NULL) != WEFT_OK)
		return -1;
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	auth_close(fx->auth);
	store_close(fx->store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static char *read_admin_token(struct fixture *fx)
{
	char path[128], *s;
	size_t len;

	snprintf(path, sizeof(path), "%s/admin.token", fx->dir);
	s = file_read_all(path, 4096, &len);
	assert_non_null(s);
	assert_true(len > 1 && s[len - 1] == '\n');
	s[len - 1] = '\0';
	return s;
}

/* Creates a token through the store; returns its secret. */
static char *create(struct fixture *fx, enum token_kind k, const char *scope, int64_t expires_ms,
		    char accessor_out[37])
{
	struct auth_create *c = calloc(1, sizeof(*c));
	struct store_write w = { .apply = auth_apply_create };
	char *secret;

	uuid_generate(c->claims.accessor);
	c->claims.kind = k;
	snprintf(c->claims.scope, sizeof(c->claims.scope), "%s", scope);
	c->claims.issued_ms = now_wall_ms();
	c->claims.expires_ms = expires_ms;
	c->description = strdup("test");
	c->datacenter = "dc1";
	assert_int_equal(auth_mint(fx->auth, c, NULL), WEFT_OK);
	w.arg = c;
	assert_int_equal(store_write_sync(fx->store, &w), WEFT_OK);
	/* The reply is the only place the secret appears. */
	assert_string_equal(json_string_value(json_object_get(w.result, "SecretID")), c->secret);
	assert_string_equal(json_string_value(json_object_get(w.result, "Kind")), token_kind_name(k));
	json_decref(w.result);
	strcpy(accessor_out, c->claims.accessor);
	secret = strdup(c->secret);
	auth_create_free(c);
	return secret;
}

static int do_revoke(struct fixture *fx, const char *accessor, char **err)
{
	struct auth_revoke rv = { .auth = fx->auth, .datacenter = "dc1" };
	struct store_write w = { .apply = auth_apply_revoke, .arg = &rv };
	int rc;

	snprintf(rv.accessor, sizeof(rv.accessor), "%s", accessor);
	rc = store_write_sync(fx->store, &w);
	if (err) {
		free(*err);
		*err = w.err;
	} else {
		free(w.err);
	}
	json_decref(w.result);
	return rc;
}

static void test_bootstrap(void **state)
{
	struct fixture *fx = *state;
	struct identity id;
	struct stat st;
	char path[128], *secret = read_admin_token(fx), *again;
	struct db *db;
	json_t *list;

	snprintf(path, sizeof(path), "%s/admin.token", fx->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/signing.key", fx->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(auth_identify(fx->auth, secret, &id, NULL), WEFT_OK);
	assert_int_equal(id.kind, TOKEN_ADMIN);
	/* Recorded in acl_tokens, as the only token. */
	db = store_read_begin(fx->store);
	list = auth_token_list(db, "dc1");
	store_read_end(db);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "AccessorID")),
			    id.accessor);
	assert_null(json_object_get(json_array_get(list, 0), "SecretID"));
	json_decref(list);

	/* A restart keeps the key and makes no new admin token. */
	auth_close(fx->auth);
	fx->auth = NULL;
	assert_int_equal(auth_open(&fx->auth, fx->dir, fx->store, NULL), WEFT_OK);
	again = read_admin_token(fx);
	assert_string_equal(again, secret);
	assert_int_equal(auth_identify(fx->auth, secret, &id, NULL), WEFT_OK);
	free(again);
	free(secret);
}

static void test_bad_secrets(void **state)
{
	struct fixture *fx = *state;
	struct identity id;
	char *err = NULL, *secret = read_admin_token(fx);
	size_t n = strlen(secret);

	secret[n - 3] = secret[n - 3] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_identify(fx->auth, secret, &id, &err), WEFT_EAUTH);
	assert_null(strstr(err, secret + 6));
	assert_string_equal(id.accessor, "");
	assert_int_equal(auth_identify(fx->auth, "", &id, &err), WEFT_EAUTH);
	assert_int_equal(auth_identify(fx->auth, "00000000-0000-4000-8000-000000000001", &id, &err),
			 WEFT_EAUTH);
	assert_int_equal(auth_identify(fx->auth, NULL, &id, &err), WEFT_EAUTH);
	free(err);
	free(secret);
}

static void test_revocation_through_store(void **state)
{
	struct fixture *fx = *state;
	struct identity id;
	char acc[37], acc2[37], *err = NULL, *secret, *secret2;
	struct db *db;
	json_t *tok, *list;

	secret = create(fx, TOKEN_SERVICE, "web", 0, acc);
	secret2 = create(fx, TOKEN_AGENT, "n1", now_wall_ms() + 3600000, acc2);
	assert_int_equal(auth_identify(fx->auth, secret, &id, NULL), WEFT_OK);
	assert_string_equal(id.accessor, acc);
	assert_int_equal(id.kind, TOKEN_SERVICE);
	assert_string_equal(id.scope, "web");

	assert_int_equal(do_revoke(fx, acc, &err), WEFT_OK);
	assert_int_equal(auth_identify(fx->auth, secret, &id, &err), WEFT_EAUTH);
	assert_non_null(strstr(err, acc));
	assert_non_null(strstr(err, "revoked"));
	/* Others are untouched. */
	assert_int_equal(auth_identify(fx->auth, secret2, &id, NULL), WEFT_OK);
	/* Gone from reads; a second revocation, or an unknown accessor, is not found. */
	db = store_read_begin(fx->store);
	tok = auth_token_json(db, acc, "dc1");
	list = auth_token_list(db, "dc1");
	store_read_end(db);
	assert_null(tok);
	assert_int_equal(json_array_size(list), 2);   /* bootstrap admin + agent */
	json_decref(list);
	assert_int_equal(do_revoke(fx, acc, &err), WEFT_ENOENT);
	assert_int_equal(do_revoke(fx, "6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00", &err), WEFT_ENOENT);
	assert_non_null(strstr(err, "6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00"));

	/* A restart reloads revocations from acl_tokens. */
	auth_close(fx->auth);
	fx->auth = NULL;
	assert_int_equal(auth_open(&fx->auth, fx->dir, fx->store, NULL), WEFT_OK);
	assert_int_equal(auth_identify(fx->auth, secret, &id, &err), WEFT_EAUTH);
	assert_non_null(strstr(err, "revoked"));
	assert_int_equal(auth_identify(fx->auth, secret2, &id, NULL), WEFT_OK);
	assert_int_equal(id.kind, TOKEN_AGENT);
	assert_string_equal(id.scope, "n1");
	free(err);
	free(secret);
	free(secret2);
}

static void test_create_conflict_and_expiry(void **state)
{
	struct fixture *fx = *state;
	struct auth_create *c = calloc(1, sizeof(*c));
	struct store_write w = { .apply = auth_apply_create };
	struct identity id;
	char acc[37], *secret, *err = NULL;

	/* Already expired when used. */
	secret = create(fx, TOKEN_READ_ONLY, "", now_wall_ms() + 1, acc);
	usleep(5000);
	assert_int_equal(auth_identify(fx->auth, secret, &id, &err), WEFT_EAUTH);
	assert_non_null(strstr(err, "expired"));
	free(err);
	free(secret);
	/* The same accessor twice: refused. */
	strcpy(c->claims.accessor, acc);
	c->claims.kind = TOKEN_READ_ONLY;
	c->claims.issued_ms = now_wall_ms();
	c->description = strdup("dup");
	assert_int_equal(auth_mint(fx->auth, c, NULL), WEFT_OK);
	w.arg = c;
	assert_int_equal(store_write_sync(fx->store, &w), WEFT_EEXIST);
	assert_non_null(strstr(w.err, acc));
	free(w.err);
	auth_create_free(c);
}

/* Readers identify while a writer revokes: the cache must stay consistent. */
struct race {
	struct fixture *fx;
	char *secret;
	int stop;
	int failures;
};

static void *reader(void *p)
{
	struct race *rc = p;
	struct identity id;

	for (int i = 0; i < 20000 && !__atomic_load_n(&rc->stop, __ATOMIC_ACQUIRE); i++) {
		if (auth_identify(rc->fx->auth, rc->secret, &id, NULL) != WEFT_OK)
			__atomic_add_fetch(&rc->failures, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_concurrent_identify_and_revoke(void **state)
{
	struct fixture *fx = *state;
	struct race rc = { .fx = fx };
	pthread_t th[3];
	char acc[37], keep[37];
	char *victims[20];

	rc.secret = create(fx, TOKEN_OPERATOR, "", 0, keep);
	for (int i = 0; i < 20; i++)
		victims[i] = create(fx, TOKEN_SERVICE, "web", 0, acc);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &rc), 0);
	/* Revoke 20 other tokens (the cache grows and moves) while readers run. */
	{
		struct db *db = store_read_begin(fx->store);
		json_t *list = auth_token_list(db, "dc1"), *t;
		size_t i;
		store_read_end(db);
		json_array_foreach(list, i, t) {
			const char *a = json_string_value(json_object_get(t, "AccessorID"));
			if (strcmp(json_string_value(json_object_get(t, "Kind")), "service") == 0)
				assert_int_equal(do_revoke(fx, a, NULL), WEFT_OK);
		}
		json_decref(list);
	}
	__atomic_store_n(&rc.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(rc.failures, 0);
	for (int i = 0; i < 20; i++) {
		struct identity id;
		assert_int_equal(auth_identify(fx->auth, victims[i], &id, NULL), WEFT_EAUTH);
		free(victims[i]);
	}
	free(rc.secret);
}

static void test_refuses_open_key(void **state)
{
	struct fixture *fx = *state;
	struct auth *a = NULL;
	char path[128], *err = NULL;

	snprintf(path, sizeof(path), "%s/signing.key", fx->dir);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_not_equal(auth_open(&a, fx->dir, fx->store, &err), WEFT_OK);
	assert_null(a);
	assert_non_null(strstr(err, "signing.key"));
	free(err);
	chmod(path, 0600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_matrix_edges),
		cmocka_unit_test_setup_teardown(test_bootstrap, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_secrets, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_revocation_through_store, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_conflict_and_expiry, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_identify_and_revoke, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_refuses_open_key, fx_setup, fx_teardown),
	};

	if (sodium_init() < 0)
		return 1;
	log_setup(LOG_LVL_ERROR, stderr);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
