/* lib/token: signing, verification, keys on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "token.h"
#include "util.h"

#define NOW 1800000000000LL   /* 2027-01-15, ms */

static struct token_key *key_a, *key_b;

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	if (token_key_generate(&key_a, NULL) != WEFT_OK || token_key_generate(&key_b, NULL) != WEFT_OK)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	token_key_free(key_a);
	token_key_free(key_b);
	return 0;
}

static struct token_claims claims(enum token_kind k, const char *scope, int64_t exp)
{
	struct token_claims c;

	memset(&c, 0, sizeof(c));
	uuid_generate(c.accessor);
	c.kind = k;
	snprintf(c.scope, sizeof(c.scope), "%s", scope);
	c.issued_ms = NOW - 1000;
	c.expires_ms = exp;
	return c;
}

static char *sign(const struct token_key *k, const struct token_claims *c)
{
	char *secret = NULL, *err = NULL;

	assert_int_equal(token_sign(k, c, &secret, &err), WEFT_OK);
	assert_null(err);
	assert_non_null(secret);
	return secret;
}

/* Verifies s (as a C string) with key_a; returns the code, frees the message. */
static int verify(const char *s, struct token_claims *out)
{
	struct token_claims tmp;
	char *err = NULL;
	int rc = token_verify(key_a, s, strlen(s), NOW, out ? out : &tmp, &err);

	if (rc != WEFT_OK) {
		assert_non_null(err);
		/* Messages never repeat the secret (or any long part of it). */
		if (strlen(s) > 20)
			assert_null(strstr(err, s + strlen(s) - 20));
	}
	free(err);
	return rc;
}

static void test_round_trip_every_kind(void **state)
{
	static const struct { enum token_kind k; const char *scope; } cases[] = {
		{ TOKEN_ADMIN, "" }, { TOKEN_OPERATOR, "" }, { TOKEN_AGENT, "node-1" },
		{ TOKEN_SERVICE, "web" }, { TOKEN_READ_ONLY, "" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct token_claims c = claims(cases[i].k, cases[i].scope, i % 2 ? NOW + 60000 : 0), got;
		char *s = sign(key_a, &c);

		assert_true(strncmp(s, "weft1.", 6) == 0);
		assert_int_equal(verify(s, &got), WEFT_OK);
		assert_string_equal(got.accessor, c.accessor);
		assert_int_equal(got.kind, c.kind);
		assert_string_equal(got.scope, c.scope);
		assert_int_equal(got.issued_ms, c.issued_ms);
		assert_int_equal(got.expires_ms, c.expires_ms);
		token_secret_free(s);
	}
}

static void test_sign_refuses_bad_claims(void **state)
{
	struct token_claims c;
	char *s = NULL, *err = NULL;
	(void)state;

	c = claims(TOKEN_SERVICE, "", 0);        /* a service token needs its service */
	assert_int_equal(token_sign(key_a, &c, &s, &err), WEFT_EINVAL);
	assert_null(s);
	free(err), err = NULL;
	c = claims(TOKEN_ADMIN, "web", 0);       /* unscoped kinds have no scope */
	assert_int_equal(token_sign(key_a, &c, &s, &err), WEFT_EINVAL);
	free(err), err = NULL;
	c = claims(TOKEN_ADMIN, "", 0);
	strcpy(c.accessor, "not-a-uuid");
	assert_int_equal(token_sign(key_a, &c, &s, &err), WEFT_EINVAL);
	free(err), err = NULL;
	c = claims(TOKEN_AGENT, "bad node", 0);
	assert_int_equal(token_sign(key_a, &c, &s, &err), WEFT_EINVAL);
	free(err);
}

static void test_tampered_payload_rejected(void **state)
{
	struct token_claims c = claims(TOKEN_READ_ONLY, "", 0);
	char *s = sign(key_a, &c), *t;
	size_t dot2 = (size_t)(strrchr(s, '.') - s);
	(void)state;

	/* Flip every payload character in turn to another base64url letter. */
	for (size_t i = 6; i < dot2; i++) {
		t = strdup(s);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		assert_int_equal(verify(t, NULL), WEFT_EAUTH);
		free(t);
	}
	/* A payload re-encoded to claim admin, with the old signature. */
	{
		struct token_claims adm = c;
		char *forged, *other;
		adm.kind = TOKEN_ADMIN;
		other = sign(key_a, &adm);
		forged = malloc(strlen(s) + strlen(other) + 1);
		memcpy(forged, other, (size_t)(strrchr(other, '.') - other));
		strcpy(forged + (strrchr(other, '.') - other), strrchr(s, '.'));
		assert_int_equal(verify(forged, NULL), WEFT_EAUTH);
		free(forged);
		token_secret_free(other);
	}
	token_secret_free(s);
}

static void test_tampered_signature_rejected(void **state)
{
	struct token_claims c = claims(TOKEN_OPERATOR, "", 0);
	char *s = sign(key_a, &c), *t;
	size_t n = strlen(s);
	(void)state;

	for (size_t i = (size_t)(strrchr(s, '.') - s) + 1; i < n; i++) {
		t = strdup(s);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		assert_int_equal(verify(t, NULL), WEFT_EAUTH);
		free(t);
	}
	/* Truncated, extended, or padded signatures. */
	t = strdup(s);
	t[n - 1] = '\0';
	assert_int_equal(verify(t, NULL), WEFT_EAUTH);
	free(t);
	t = malloc(n + 3);
	snprintf(t, n + 3, "%sAA", s);
	assert_int_equal(verify(t, NULL), WEFT_EAUTH);
	snprintf(t, n + 3, "%s==", s);
	assert_int_equal(verify(t, NULL), WEFT_EAUTH);
	free(t);
	token_secret_free(s);
}

static void test_wrong_key_rejected(void **state)
{
	struct token_claims c = claims(TOKEN_ADMIN, "", 0);
	char *s = sign(key_b, &c);
	(void)state;

	assert_int_equal(verify(s, NULL), WEFT_EAUTH);
	token_secret_free(s);
}

static void test_expiry(void **state)
{
	struct token_claims c = claims(TOKEN_SERVICE, "web", NOW + 1000), got;
	char *s = sign(key_a, &c), *err = NULL;
	(void)state;

	assert_int_equal(token_verify(key_a, s, strlen(s), NOW + 999, &got, NULL), WEFT_OK);
	assert_int_equal(token_verify(key_a, s, strlen(s), NOW + 1000, &got, &err), WEFT_EAUTH);
	/* The message names the accessor and says "expired". */
	assert_non_null(strstr(err, c.accessor));
	assert_non_null(strstr(err, "expired"));
	free(err);
	assert_int_equal(token_verify(key_a, s, strlen(s), NOW + 86400000, &got, NULL), WEFT_EAUTH);
	token_secret_free(s);
}

/* A key whose seed the test knows, loaded through the key file, so that
 * arbitrary payloads can be signed and the checks behind the signature
 * reached. */
static unsigned char known_pk[crypto_sign_PUBLICKEYBYTES], known_sk[crypto_sign_SECRETKEYBYTES];

static struct token_key *known_key(void)
{
	unsigned char seed[crypto_sign_SEEDBYTES];
	char dir[] = "/tmp/weft-token-XXXXXX", path[128], b64[64];
	struct token_key *k = NULL;
	FILE *f;

	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (unsigned char)(i * 7 + 1);
	crypto_sign_seed_keypair(known_pk, known_sk, seed);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/k", dir);
	sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed), sodium_base64_VARIANT_ORIGINAL);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "weft-ed25519-seed-v1 %s\n", b64);
	fclose(f);
	chmod(path, 0600);
	assert_int_equal(token_key_load(&k, path, NULL), WEFT_OK);
	unlink(path);
	rmdir(dir);
	return k;
}

static char *sign_raw(const char *payload_json)
{
	size_t jl = strlen(payload_json), pl;
	unsigned char sig[crypto_sign_BYTES];
	char *s = malloc(6 + jl * 2 + 4 + 100);

	memcpy(s, "weft1.", 6);
	sodium_bin2base64(s + 6, jl * 2 + 4, (const unsigned char *)payload_json, jl,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	pl = strlen(s);
	crypto_sign_detached(sig, NULL, (const unsigned char *)s, pl, known_sk);
	s[pl] = '.';
	sodium_bin2base64(s + pl + 1, 100, sig, sizeof(sig), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

static void test_signed_payload_checks(void **state)
{
	static const char *const bad[] = {
		"not json", "[]", "\"a\"", "{}", "null",
		"{\"k\":\"admin\",\"iat\":1}",
		"{\"a\":\"nope\",\"k\":\"admin\",\"iat\":1}",
		"{\"a\":42,\"k\":\"admin\",\"iat\":1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"iat\":1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"root\",\"iat\":1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"service\",\"iat\":1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"service\",\"s\":\"a b\",\"iat\":1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"service\",\"s\":7,\"iat\":1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\",\"s\":\"web\",\"iat\":1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\"}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\",\"iat\":-1}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\",\"iat\":\"1\"}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\",\"iat\":1,\"exp\":0}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\",\"iat\":1,\"exp\":1.5}",
		"{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\",\"iat\":1,\"k\":\"admin\"}",
	};
	struct token_key *k = known_key();
	struct token_claims c;
	char *s, *err = NULL;
	(void)state;

	/* The harness works: a well-formed signed payload verifies. */
	s = sign_raw("{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"agent\",\"s\":\"n1\",\"iat\":5}");
	assert_int_equal(token_verify(k, s, strlen(s), NOW, &c, NULL), WEFT_OK);
	assert_int_equal(c.kind, TOKEN_AGENT);
	assert_string_equal(c.scope, "n1");
	free(s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = sign_raw(bad[i]);
		assert_int_equal(token_verify(k, s, strlen(s), NOW, &c, &err), WEFT_EAUTH);
		assert_non_null(strstr(err, "malformed"));
		free(s);
	}
	/* A signed payload over the size limit is refused before parsing. */
	{
		char pad[1200], *big = malloc(1400);
		memset(pad, 'x', sizeof(pad) - 1);
		pad[sizeof(pad) - 1] = '\0';
		snprintf(big, 1400, "{\"a\":\"6f1c2a49-58f3-4b0a-9d55-0c6e6b3a1f00\",\"k\":\"admin\","
			 "\"iat\":1,\"pad\":\"%s\"}", pad);
		s = sign_raw(big);
		assert_true(strlen(s) < TOKEN_SECRET_MAX);
		assert_int_equal(token_verify(k, s, strlen(s), NOW, &c, &err), WEFT_EAUTH);
		assert_non_null(strstr(err, "over 1024 bytes"));
		free(s);
		free(big);
	}
	free(err);
	token_key_free(k);
}

static void test_malformed_strings(void **state)
{
	static const char *const bad[] = {
		"", "w", "weft1", "weft1.", "weft1..", "weft1...", "weft2.abc.def", "WEFT1.abc.def",
		"weft1.abc", "weft1.abc.", "weft1..def", "weft1.abc.def.ghi", "weft1.a.b",
		"weft1.!!!!.????", "weft1.eyJ9.AAAA", " weft1.abc.def", "weft1.abc.def ",
		"weft1.abc+/.def", "weft1.abc=.def=", "Bearer weft1.abc.def",
		"00000000-0000-0000-0000-000000000000", "weft1.\xff\xfe.\x01\x02",
	};
	struct token_claims c;
	char big[TOKEN_SECRET_MAX + 10];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(verify(bad[i], &c), WEFT_EAUTH);
	/* Oversized input is refused without being decoded. */
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "weft1.", 6);
	assert_int_equal(verify(big, &c), WEFT_EAUTH);
	/* Embedded NUL bytes: the length given is what counts. */
	{
		struct token_claims ok = claims(TOKEN_ADMIN, "", 0);
		char *s = sign(key_a, &ok), *t = malloc(strlen(s) + 2);
		size_t n = strlen(s);
		memcpy(t, s, n);
		t[n] = '\0';
		t[n + 1] = 'x';
		assert_int_equal(token_verify(key_a, t, n + 2, NOW, &c, NULL), WEFT_EAUTH);
		t[10] = '\0';
		assert_int_equal(token_verify(key_a, t, n, NOW, &c, NULL), WEFT_EAUTH);
		free(t);
		token_secret_free(s);
	}
}

static void test_kind_names(void **state)
{
	enum token_kind k;
	(void)state;

	assert_int_equal(token_kind_parse("read-only", &k), 0);
	assert_int_equal(k, TOKEN_READ_ONLY);
	assert_int_equal(token_kind_parse("agent", &k), 0);
	assert_int_equal(k, TOKEN_AGENT);
	assert_int_equal(token_kind_parse("Admin", &k), -1);
	assert_int_equal(token_kind_parse("", &k), -1);
	assert_int_equal(token_kind_parse(NULL, &k), -1);
	assert_string_equal(token_kind_name(TOKEN_SERVICE), "service");
}

static void test_key_save_load(void **state)
{
	char dir[] = "/tmp/weft-token-XXXXXX", path[128];
	struct token_key *loaded = NULL;
	struct token_claims c = claims(TOKEN_ADMIN, "", 0), got;
	struct stat st;
	char *s, *err = NULL;
	FILE *f;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/signing.key", dir);
	assert_int_equal(token_key_save(key_a, path, &err), WEFT_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(token_key_load(&loaded, path, &err), WEFT_OK);
	/* What one signs the other verifies. */
	s = sign(loaded, &c);
	assert_int_equal(token_verify(key_a, s, strlen(s), NOW, &got, NULL), WEFT_OK);
	token_secret_free(s);
	token_key_free(loaded);
	loaded = NULL;

	/* Readable by others: refused, and the message says how to fix it. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(token_key_load(&loaded, path, &err), WEFT_EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(loaded);

	/* Not a key. */
	f = fopen(path, "w");
	fputs("hello\n", f);
	fclose(f);
	chmod(path, 0600);
	assert_int_equal(token_key_load(&loaded, path, &err), WEFT_EINVAL);
	f = fopen(path, "w");
	fputs("weft-ed25519-seed-v1 AAAA\n", f);   /* too short a seed */
	fclose(f);
	assert_int_equal(token_key_load(&loaded, path, &err), WEFT_EINVAL);
	assert_null(loaded);
	unlink(path);
	assert_int_equal(token_key_load(&loaded, path, &err), WEFT_ENOENT);
	free(err);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_kind),
		cmocka_unit_test(test_sign_refuses_bad_claims),
		cmocka_unit_test(test_tampered_payload_rejected),
		cmocka_unit_test(test_tampered_signature_rejected),
		cmocka_unit_test(test_wrong_key_rejected),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_malformed_strings),
		cmocka_unit_test(test_signed_payload_checks),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_key_save_load),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
