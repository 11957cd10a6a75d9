/* Intentions: Consul's precedence table, decoding and validation errors,
 * match and decide with wildcards and L7 permissions, the analysis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "intention.h"
#include "jsonx.h"

static json_t *parse(const char *s)
{
	char *err = NULL;
	json_t *v = jx_parse(s, strlen(s), &err);

	if (v == NULL)
		fail_msg("parse %s: %s", s, err);
	return v;
}

static struct intention *ix_ok(const char *s)
{
	json_t *j = parse(s);
	struct intention *ix = NULL;
	char *err = NULL;

	if (intention_from_json(j, NULL, &ix, &err) != WEFT_OK)
		fail_msg("decode %s: %s", s, err);
	json_decref(j);
	return ix;
}

/* The error decoding s gives. */
static char *ix_err(const char *s)
{
	json_t *j = parse(s);
	struct intention *ix = NULL;
	char *err = NULL;
	int rc = intention_from_json(j, NULL, &ix, &err);

	json_decref(j);
	if (rc == WEFT_OK)
		fail_msg("decode %s: accepted", s);
	assert_int_equal(rc, WEFT_EINVAL);
	assert_null(ix);
	return err;
}

static struct intention_set *set_ok(const char *s)
{
	json_t *j = parse(s);
	struct intention_set *set = NULL;
	char *err = NULL;

	if (intention_set_from_json(j, &set, &err) != WEFT_OK)
		fail_msg("set %s: %s", s, err);
	json_decref(j);
	return set;
}

/* ---- precedence --------------------------------------------------------- */

static void test_precedence_table(void **state)
{
	/* Consul's table: source ns/name, destination ns/name, precedence. */
	static const struct {
		const char *sns, *sn, *dns, *dn;
		int prec;
	} rows[] = {
		{ "default", "web", "default", "db", 9 },
		{ "default", "*", "default", "db", 8 },
		{ "*", "*", "default", "db", 7 },
		{ "default", "web", "default", "*", 6 },
		{ "default", "*", "default", "*", 5 },
		{ "*", "*", "default", "*", 4 },
		{ "default", "web", "*", "*", 3 },
		{ "default", "*", "*", "*", 2 },
		{ "*", "*", "*", "*", 1 },
		/* other namespaces count as exact values too */
		{ "team-a", "web", "team-b", "db", 9 },
		{ "team-a", "*", "team-b", "*", 5 },
	};
	size_t i;
	char buf[256];

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct intention *ix;
		json_t *o;

		snprintf(buf, sizeof(buf),
			 "{\"SourceNS\":\"%s\",\"SourceName\":\"%s\",\"DestinationNS\":\"%s\","
			 "\"DestinationName\":\"%s\",\"Action\":\"allow\",\"Precedence\":42}",
			 rows[i].sns, rows[i].sn, rows[i].dns, rows[i].dn);
		ix = ix_ok(buf);
		assert_int_equal(intention_precedence(ix), rows[i].prec);
		assert_int_equal(intention_compute_precedence(rows[i].sns, rows[i].sn, rows[i].dns,
							      rows[i].dn),
				 rows[i].prec);
		o = intention_to_json(ix);
		assert_int_equal(json_integer_value(json_object_get(o, "Precedence")), rows[i].prec);
		json_decref(o);
		intention_free(ix);
	}
	/* Namespaces default to "default", and so count as exact. */
	{
		struct intention *ix =
			ix_ok("{\"SourceName\":\"web\",\"DestinationName\":\"db\",\"Action\":\"deny\"}");

		assert_int_equal(intention_precedence(ix), 9);
		assert_string_equal(intention_source_ns(ix), "default");
		assert_string_equal(intention_destination_ns(ix), "default");
		intention_free(ix);
		ix = ix_ok("{\"SourceName\":\"*\",\"DestinationName\":\"*\",\"Action\":\"deny\"}");
		assert_int_equal(intention_precedence(ix), 5);
		intention_free(ix);
		assert_int_equal(intention_compute_precedence(NULL, "*", NULL, "db"), 8);
	}
}

static void test_evaluation_order(void **state)
{
	struct intention_set *set = set_ok(
		"[{\"ID\":\"a\",\"SourceName\":\"*\",\"DestinationName\":\"*\",\"Action\":\"allow\"},"
		"{\"ID\":\"b\",\"SourceName\":\"web\",\"DestinationName\":\"db\",\"Action\":\"allow\"},"
		"{\"ID\":\"c\",\"SourceName\":\"api\",\"DestinationName\":\"db\",\"Action\":\"allow\"},"
		"{\"ID\":\"d\",\"SourceName\":\"api\",\"DestinationName\":\"cache\",\"Action\":\"allow\"},"
		"{\"ID\":\"e\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"deny\"},"
		"{\"ID\":\"f\",\"SourceNS\":\"alpha\",\"SourceName\":\"zz\",\"DestinationName\":\"db\",\"Action\":\"deny\"}]");
	/* Precedence 9 first (f, d, c, b), ties ordered by SourceNS ("alpha" <
	 * "default"), SourceName, DestinationNS, DestinationName ("cache" <
	 * "db"); then e (7) and a (5). */
	static const char *const order[] = { "f", "d", "c", "b", "e", "a" };
	size_t i;

	(void)state;
	assert_int_equal(intention_set_count(set), 6);
	for (i = 0; i < 6; i++)
		assert_string_equal(intention_id(intention_set_get(set, i)), order[i]);
	assert_null(intention_set_get(set, 6));
	intention_set_free(set);
}

/* ---- decoding ------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
	const char *l7 =
		"{\"ID\":\"x1\",\"Description\":\"d\",\"SourceNS\":\"default\",\"SourceName\":\"web\","
		"\"DestinationNS\":\"default\",\"DestinationName\":\"api\",\"SourceType\":\"consul\","
		"\"Permissions\":[{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/v1/\","
		"\"Methods\":[\"get\",\"Post\"],\"Header\":[{\"Name\":\"x-a\",\"Present\":true},"
		"{\"Name\":\"x-b\",\"Regex\":\"[0-9]+\",\"Invert\":true}]}},"
		"{\"Action\":\"deny\",\"HTTP\":{\"PathRegex\":\"/admin/.*\"}}],"
		"\"Meta\":{\"team\":\"core\"},\"Precedence\":1,\"CreateIndex\":3,\"ModifyIndex\":4,"
		"\"SourcePartition\":\"default\",\"Unknown\":1}";
	struct intention *ix = ix_ok(l7), *ix2;
	json_t *o, *o2, *perms;
	char *err = NULL;

	(void)state;
	assert_true(intention_is_l7(ix));
	assert_int_equal(intention_permission_count(ix), 2);
	assert_int_equal(intention_permission_action(ix, 1), INTENTION_DENY);
	assert_int_equal(intention_create_index(ix), 3);
	assert_int_equal(intention_modify_index(ix), 4);
	o = intention_to_json(ix);
	assert_null(json_object_get(o, "Action"));
	assert_int_equal(json_integer_value(json_object_get(o, "Precedence")), 9);
	perms = json_object_get(o, "Permissions");
	/* Methods are uppercased, as Consul normalises them. */
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(
		json_array_get(perms, 0), "HTTP"), "Methods"), 1)), "POST");
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "Meta"), "team")),
			    "core");
	assert_int_equal(intention_from_json(o, NULL, &ix2, &err), WEFT_OK);
	o2 = intention_to_json(ix2);
	assert_true(json_equal(o, o2));
	json_decref(o);
	json_decref(o2);
	intention_free(ix2);

	assert_int_equal(intention_set_id(ix, "new-id", &err), WEFT_OK);
	intention_set_raft_indexes(ix, 10, 11);
	o = intention_to_json(ix);
	assert_string_equal(json_string_value(json_object_get(o, "ID")), "new-id");
	assert_int_equal(json_integer_value(json_object_get(o, "ModifyIndex")), 11);
	json_decref(o);
	intention_free(ix);

	ix = ix_ok("{\"SourceName\":\"web\",\"DestinationName\":\"api\",\"Action\":\"deny\"}");
	o = intention_to_json(ix);
	assert_string_equal(json_string_value(json_object_get(o, "Action")), "deny");
	assert_null(json_object_get(o, "Permissions"));
	assert_string_equal(json_string_value(json_object_get(o, "SourceType")), "consul");
	assert_true(json_is_object(json_object_get(o, "Meta")));
	json_decref(o);
	intention_free(ix);
}

static void test_validation_errors(void **state)
{
#define BASE "\"SourceName\":\"web\",\"DestinationName\":\"api\""
#define L7(http) "{" BASE ",\"Permissions\":[{\"Action\":\"allow\",\"HTTP\":{\"PathExact\":\"/ok\"}}," \
		 "{\"Action\":\"allow\",\"HTTP\":" http "}]}"
	static const struct {
		const char *json, *err;
	} cases[] = {
		{ "[]", "intention: must be an object" },
		{ "{\"DestinationName\":\"api\",\"Action\":\"allow\"}", "SourceName: is required" },
		{ "{\"SourceName\":\"web\",\"Action\":\"allow\"}", "DestinationName: is required" },
		{ "{\"SourceName\":\"\",\"DestinationName\":\"api\",\"Action\":\"allow\"}",
		  "SourceName: is required" },
		{ "{\"SourceName\":\"we*\",\"DestinationName\":\"api\",\"Action\":\"allow\"}",
		  "SourceName: \"we*\": wildcard '*' must be the whole name" },
		{ "{\"SourceName\":\"web\",\"DestinationName\":\"a*i\",\"Action\":\"allow\"}",
		  "DestinationName: \"a*i\": wildcard '*' must be the whole name" },
		{ "{\"SourceNS\":\"ns*\",\"SourceName\":\"*\",\"DestinationName\":\"api\",\"Action\":\"allow\"}",
		  "SourceNS: \"ns*\": wildcard '*' must be the whole namespace" },
		{ "{\"SourceNS\":\"*\",\"SourceName\":\"web\",\"DestinationName\":\"api\",\"Action\":\"allow\"}",
		  "SourceName: \"web\": an exact name cannot follow the wildcard namespace (use \"*\")" },
		{ "{\"SourceName\":\"web\",\"DestinationNS\":\"*\",\"DestinationName\":\"api\",\"Action\":\"allow\"}",
		  "DestinationName: \"api\": an exact name cannot follow the wildcard namespace (use \"*\")" },
		{ "{" BASE "}",
		  "Action: is required (\"allow\" or \"deny\") unless Permissions are given" },
		{ "{" BASE ",\"Action\":\"permit\"}", "Action: \"permit\": must be \"allow\" or \"deny\"" },
		{ "{" BASE ",\"Action\":\"ALLOW\"}", "Action: \"ALLOW\": must be \"allow\" or \"deny\"" },
		{ "{" BASE ",\"Action\":\"allow\",\"SourceType\":\"external-uri\"}",
		  "SourceType: \"external-uri\": must be \"consul\"" },
		{ "{" BASE ",\"Action\":1}", "Action: must be a string" },
		{ "{" BASE ",\"Action\":\"allow\",\"Meta\":{\"k\":1}}", "Meta.k: must be a string" },
		{ "{" BASE ",\"Action\":\"allow\",\"Meta\":{\"\":\"v\"}}", "Meta: a key is empty" },
		{ "{" BASE ",\"Action\":\"allow\",\"CreateIndex\":-1}",
		  "CreateIndex: -1 is out of range [0, 9223372036854775807]" },
		{ "{" BASE ",\"Action\":\"allow\",\"Permissions\":[{\"Action\":\"allow\",\"HTTP\":{\"PathExact\":\"/\"}}]}",
		  "Action: must be omitted when Permissions are given" },
		{ "{\"SourceName\":\"web\",\"DestinationName\":\"*\",\"Permissions\":[{\"Action\":\"allow\",\"HTTP\":{\"PathExact\":\"/\"}}]}",
		  "Permissions: cannot be given for a wildcard destination" },
		{ "{" BASE ",\"Permissions\":{}}", "Permissions: must be an array" },
		{ "{" BASE ",\"Permissions\":[1]}", "Permissions[0]: must be an object" },
		{ "{" BASE ",\"Permissions\":[{\"HTTP\":{\"PathExact\":\"/\"}}]}",
		  "Permissions[0].Action: is required (\"allow\" or \"deny\")" },
		{ "{" BASE ",\"Permissions\":[{\"Action\":\"maybe\",\"HTTP\":{\"PathExact\":\"/\"}}]}",
		  "Permissions[0].Action: \"maybe\": must be \"allow\" or \"deny\"" },
		{ "{" BASE ",\"Permissions\":[{\"Action\":\"allow\"}]}", "Permissions[0].HTTP: is required" },
		{ L7("{}"), "Permissions[1].HTTP: must match on at least one of a path, Methods or Header" },
		{ L7("{\"PathExact\":\"/a\",\"PathPrefix\":\"/b\"}"),
		  "Permissions[1].HTTP: at most one of PathExact, PathPrefix or PathRegex may be set" },
		{ L7("{\"PathPrefix\":\"/b\",\"PathRegex\":\"/c\"}"),
		  "Permissions[1].HTTP: at most one of PathExact, PathPrefix or PathRegex may be set" },
		{ L7("{\"PathExact\":\"a\"}"), "Permissions[1].HTTP.PathExact: \"a\" must start with '/'" },
		{ L7("{\"PathPrefix\":\"v1\"}"), "Permissions[1].HTTP.PathPrefix: \"v1\" must start with '/'" },
		{ L7("{\"PathRegex\":\"/a(\"}"),
		  "Permissions[1].HTTP.PathRegex: invalid regex \"/a(\": " },
		{ L7("{\"PathRegex\":\"/user/(\\\\1)\"}"),
		  "Permissions[1].HTTP.PathRegex: invalid regex \"/user/(\\1)\": " },
		{ L7("{\"PathRegex\":\"(a{100}){200}\"}"),
		  "Permissions[1].HTTP.PathRegex: invalid regex \"(a{100}){200}\": " },
		{ L7("{\"PathRegex\":\"/use+++++++++++++++++++++++++++++++rs/[0-9]+\"}"),
		  "Permissions[1].HTTP.PathRegex: invalid regex \"/use+++++++++++++++++++++++++++++++rs/[0-9]+\": " },
		{ L7("{\"Methods\":[\"GET\",\"FETCH\"]}"),
		  "Permissions[1].HTTP.Methods[1]: \"FETCH\" is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, TRACE)" },
		{ L7("{\"Methods\":[\"GET\",\"get\"]}"),
		  "Permissions[1].HTTP.Methods[1]: \"GET\" is listed more than once" },
		{ L7("{\"Methods\":[1]}"), "Permissions[1].HTTP.Methods[0]: must be a string" },
		{ L7("{\"Header\":[{\"Exact\":\"x\"}]}"), "Permissions[1].HTTP.Header[0].Name: is required" },
		{ L7("{\"Header\":[{\"Name\":\"x\"}]}"),
		  "Permissions[1].HTTP.Header[0]: needs exactly one of Present, Exact, Prefix, Suffix or Regex (has 0)" },
		{ L7("{\"Header\":[{\"Name\":\"x\",\"Exact\":\"\"}]}"),
		  "Permissions[1].HTTP.Header[0]: needs exactly one of Present, Exact, Prefix, Suffix or Regex (has 0)" },
		{ L7("{\"Header\":[{\"Name\":\"x\",\"Present\":true},{\"Name\":\"y\",\"Exact\":\"a\",\"Suffix\":\"b\"}]}"),
		  "Permissions[1].HTTP.Header[1]: needs exactly one of Present, Exact, Prefix, Suffix or Regex (has 2)" },
		{ L7("{\"Header\":[{\"Name\":\"x\",\"Regex\":\"[a\"}]}"),
		  "Permissions[1].HTTP.Header[0].Regex: invalid regex \"[a\": " },
		{ L7("{\"Header\":[{\"Name\":\"x\",\"Present\":\"yes\"}]}"),
		  "Permissions[1].HTTP.Header[0].Present: must be true or false" },
		{ L7("{\"Header\":[{\"Name\":\"x\",\"Present\":true,\"Invert\":1}]}"),
		  "Permissions[1].HTTP.Header[0].Invert: must be true or false" },
		{ L7("{\"Header\":{}}"), "Permissions[1].HTTP.Header: must be an array" },
		/* An intention's regexes share one budget: the third is refused. */
		{ L7("{\"PathRegex\":\"(a{60}){80}\",\"Header\":[{\"Name\":\"x\",\"Regex\":\"(a{60}){80}\"},{\"Name\":\"y\",\"Regex\":\"(a{60}){80}\"}]}"),
		  "Permissions[1].HTTP.Header[1].Regex: invalid regex \"(a{60}){80}\": too complex (with the patterns before it" },
	};
	size_t i;
	char *err;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err = ix_err(cases[i].json);
		if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
		free(err);
	}
	/* Length limits: Description and Meta as Consul's. */
	{
		char big[2048], buf[4096];
		json_t *o, *meta;
		struct intention *ix = NULL;

		memset(big, 'x', 513);
		big[513] = '\0';
		snprintf(buf, sizeof(buf), "{" BASE ",\"Action\":\"allow\",\"Description\":\"%s\"}", big);
		err = ix_err(buf);
		assert_string_equal(err, "Description: longer than 512 bytes");
		free(err);
		big[512] = '\0';
		snprintf(buf, sizeof(buf), "{" BASE ",\"Action\":\"allow\",\"Description\":\"%s\"}", big);
		intention_free(ix_ok(buf));

		o = parse("{" BASE ",\"Action\":\"allow\"}");
		meta = json_object();
		for (i = 0; i < 65; i++) {
			snprintf(buf, sizeof(buf), "k%zu", i);
			json_object_set_new(meta, buf, json_string("v"));
		}
		json_object_set_new(o, "Meta", meta);
		err = NULL;
		assert_int_equal(intention_from_json(o, "Sources[0]", &ix, &err), WEFT_EINVAL);
		assert_string_equal(err, "Sources[0].Meta: more than 64 pairs");
		free(err);
		json_decref(o);
	}
	/* The context prefixes every field. */
	{
		json_t *o = parse(L7("{\"PathExact\":\"a\"}"));
		struct intention *ix = NULL;

		err = NULL;
		assert_int_equal(intention_from_json(o, "Sources[3]", &ix, &err), WEFT_EINVAL);
		assert_string_equal(err, "Sources[3].Permissions[1].HTTP.PathExact: \"a\" must start with '/'");
		free(err);
		json_decref(o);
	}
#undef L7
}

static void test_duplicates_rejected(void **state)
{
	json_t *j = parse(
		"[{\"ID\":\"one\",\"SourceName\":\"web\",\"DestinationName\":\"db\",\"Action\":\"allow\"},"
		"{\"ID\":\"two\",\"SourceNS\":\"default\",\"SourceName\":\"web\",\"DestinationName\":\"db\",\"Action\":\"deny\"}]");
	struct intention_set *set = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(intention_set_from_json(j, &set, &err), WEFT_EEXIST);
	assert_null(set);
	assert_string_equal(err, "intentions: \"one\" and \"two\" both go from default/web to default/db");
	free(err);
	json_decref(j);
	j = parse("[{\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"allow\"},"
		  "{\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"deny\"}]");
	err = NULL;
	assert_int_equal(intention_set_from_json(j, &set, &err), WEFT_EEXIST);
	assert_string_equal(err, "intentions: two intentions go from default/* to default/db");
	free(err);
	json_decref(j);
	/* Decoding errors name the array position. */
	j = parse("[{\"SourceName\":\"web\",\"DestinationName\":\"db\",\"Action\":\"allow\"},{}]");
	err = NULL;
	assert_int_equal(intention_set_from_json(j, &set, &err), WEFT_EINVAL);
	assert_string_equal(err, "[1].SourceName: is required");
	free(err);
	json_decref(j);
}

/* ---- match and decide ---------------------------------------------------- */

static const char *const SET_L4 =
	"[{\"ID\":\"web-db\",\"SourceName\":\"web\",\"DestinationName\":\"db\",\"Action\":\"allow\"},"
	"{\"ID\":\"any-db\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"deny\"},"
	"{\"ID\":\"anyns-db\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"allow\"},"
	"{\"ID\":\"web-any\",\"SourceName\":\"web\",\"DestinationName\":\"*\",\"Action\":\"deny\"},"
	"{\"ID\":\"ops-all\",\"SourceNS\":\"ops\",\"SourceName\":\"*\",\"DestinationNS\":\"*\",\"DestinationName\":\"*\",\"Action\":\"allow\"},"
	"{\"ID\":\"all-all\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationNS\":\"*\",\"DestinationName\":\"*\",\"Action\":\"deny\"}]";

static void decide(const struct intention_set *set, const char *sns, const char *s,
		   const char *dns, const char *d, enum intention_action def,
		   struct intention_decision *out)
{
	struct intention_call c = { sns, s, dns, d, 0, NULL, NULL, NULL, 0 };

	intention_set_decide(set, &c, def, out);
}

static void expect(const struct intention_set *set, const char *sns, const char *s,
		   const char *dns, const char *d, enum intention_action def,
		   enum intention_action want, const char *by)
{
	struct intention_decision dec;

	decide(set, sns, s, dns, d, def, &dec);
	if (dec.action != want)
		fail_msg("%s/%s -> %s/%s: action %d, want %d", sns, s, dns, d, dec.action, want);
	if (by == NULL) {
		assert_null(dec.intention);
		assert_int_equal(dec.reason, INTENTION_BY_DEFAULT);
	} else {
		if (dec.intention == NULL || strcmp(intention_id(dec.intention), by) != 0)
			fail_msg("%s/%s -> %s/%s: decided by %s, want %s", sns, s, dns, d,
				 dec.intention ? intention_id(dec.intention) : "default", by);
		assert_int_equal(dec.reason, INTENTION_BY_ACTION);
	}
	assert_int_equal(dec.permission, -1);
}

static void test_decide_l4_wildcards(void **state)
{
	struct intention_set *set = set_ok(SET_L4), *empty = set_ok("[]");
	struct intention_decision d;
	json_t *o;

	(void)state;
	expect(set, NULL, "web", NULL, "db", INTENTION_DENY, INTENTION_ALLOW, "web-db");
	expect(set, "default", "api", "default", "db", INTENTION_ALLOW, INTENTION_DENY, "any-db");
	expect(set, "other", "api", NULL, "db", INTENTION_DENY, INTENTION_ALLOW, "anyns-db");
	expect(set, NULL, "web", NULL, "cache", INTENTION_ALLOW, INTENTION_DENY, "web-any");
	/* web-any (6) outranks ops-all (2) only for default/web. */
	expect(set, "ops", "web", NULL, "cache", INTENTION_DENY, INTENTION_ALLOW, "ops-all");
	expect(set, "ops", "x", "prod", "cache", INTENTION_DENY, INTENTION_ALLOW, "ops-all");
	expect(set, "dev", "x", "prod", "cache", INTENTION_ALLOW, INTENTION_DENY, "all-all");
	/* Destination in another namespace: db intentions are default/db. */
	expect(set, NULL, "web", "prod", "db", INTENTION_ALLOW, INTENTION_DENY, "all-all");
	expect(empty, NULL, "web", NULL, "db", INTENTION_ALLOW, INTENTION_ALLOW, NULL);
	expect(empty, NULL, "web", NULL, "db", INTENTION_DENY, INTENTION_DENY, NULL);
	/* Not a concrete service: no intention applies. */
	expect(set, NULL, "*", NULL, "db", INTENTION_ALLOW, INTENTION_ALLOW, NULL);
	expect(set, NULL, "", NULL, "db", INTENTION_ALLOW, INTENTION_ALLOW, NULL);

	decide(set, NULL, "api", NULL, "db", INTENTION_ALLOW, &d);
	o = intention_decision_to_json(&d);
	assert_false(json_is_true(json_object_get(o, "Allowed")));
	assert_string_equal(json_string_value(json_object_get(o, "DecidedBy")), "intention");
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "Intention"), "ID")),
			    "any-db");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "Intention"),
							    "Precedence")), 8);
	json_decref(o);
	decide(empty, NULL, "api", NULL, "db", INTENTION_ALLOW, &d);
	o = intention_decision_to_json(&d);
	assert_true(json_is_true(json_object_get(o, "Allowed")));
	assert_string_equal(json_string_value(json_object_get(o, "DecidedBy")), "default");
	assert_string_equal(json_string_value(json_object_get(o, "ReasonKind")), "default");
	assert_null(json_object_get(o, "Intention"));
	json_decref(o);

	assert_string_equal(intention_id(intention_set_find(set, NULL, "web", "default", "*")),
			    "web-any");
	assert_null(intention_set_find(set, NULL, "api", NULL, "*"));
	assert_string_equal(intention_id(intention_set_find_id(set, "ops-all")), "ops-all");
	assert_null(intention_set_find_id(set, "nope"));
	intention_set_free(set);
	intention_set_free(empty);
}

static void expect_match(const struct intention_set *set, enum intention_match_by by,
			 const char *ns, const char *name, const char *want)
{
	const struct intention **v = NULL;
	size_t n = 0, i;
	char got[512] = "";
	char *err = NULL;

	assert_int_equal(intention_set_match(set, by, ns, name, &v, &n, &err), WEFT_OK);
	for (i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "",
			 intention_id(v[i]));
	free(v);
	if (strcmp(got, want) != 0)
		fail_msg("match %s/%s: got \"%s\", want \"%s\"", ns ? ns : "-", name, got, want);
}

static void test_match(void **state)
{
	struct intention_set *set = set_ok(SET_L4);
	const struct intention **v;
	size_t n;
	char *err = NULL;

	(void)state;
	expect_match(set, INTENTION_MATCH_DESTINATION, NULL, "db",
		     "web-db any-db anyns-db web-any ops-all all-all");
	expect_match(set, INTENTION_MATCH_DESTINATION, "prod", "db", "ops-all all-all");
	expect_match(set, INTENTION_MATCH_DESTINATION, "default", "cache", "web-any ops-all all-all");
	expect_match(set, INTENTION_MATCH_SOURCE, NULL, "web",
		     "web-db any-db anyns-db web-any all-all");
	expect_match(set, INTENTION_MATCH_SOURCE, "ops", "web", "anyns-db ops-all all-all");
	expect_match(set, INTENTION_MATCH_SOURCE, NULL, "api", "any-db anyns-db all-all");
	assert_int_equal(intention_set_match(set, INTENTION_MATCH_SOURCE, NULL, "", &v, &n, &err),
			 WEFT_EINVAL);
	assert_string_equal(err, "name: is required");
	free(err);
	intention_set_free(set);
}

/* An L7 intention: web -> api with every kind of matcher. */
static const char *const SET_L7 =
	"[{\"ID\":\"l7\",\"SourceName\":\"web\",\"DestinationName\":\"api\",\"Permissions\":["
	/* 0 */ "{\"Action\":\"deny\",\"HTTP\":{\"PathExact\":\"/admin\"}},"
	/* 1 */ "{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/v1/\",\"Methods\":[\"GET\",\"HEAD\"]}},"
	/* 2 */ "{\"Action\":\"allow\",\"HTTP\":{\"PathRegex\":\"/users/[0-9]+\"}},"
	/* 3 */ "{\"Action\":\"allow\",\"HTTP\":{\"Header\":[{\"Name\":\"X-Token\",\"Exact\":\"s3cret\"}]}},"
	/* 4 */ "{\"Action\":\"allow\",\"HTTP\":{\"Header\":[{\"Name\":\"x-env\",\"Prefix\":\"prod\"},{\"Name\":\"x-zone\",\"Suffix\":\"-a\"}]}},"
	/* 5 */ "{\"Action\":\"deny\",\"HTTP\":{\"Header\":[{\"Name\":\"x-debug\",\"Present\":true}]}},"
	/* 6 */ "{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/open\",\"Header\":[{\"Name\":\"x-user\",\"Present\":true,\"Invert\":true}]}},"
	/* 7 */ "{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/ver\",\"Header\":[{\"Name\":\"x-ver\",\"Regex\":\"v[0-9]\",\"Invert\":true}]}},"
	/* 8 */ "{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/neq\",\"Header\":[{\"Name\":\"x-k\",\"Exact\":\"no\",\"Invert\":true}]}}"
	"]},"
	"{\"ID\":\"any-api\",\"SourceName\":\"*\",\"DestinationName\":\"api\",\"Action\":\"allow\"}]";

static void http(const struct intention_set *set, const char *method, const char *path,
		 const struct intention_header *h, size_t nh, enum intention_action def,
		 enum intention_action want, enum intention_reason reason, int perm)
{
	struct intention_call c = { NULL, "web", NULL, "api", 1, method, path, h, nh };
	struct intention_decision d;

	intention_set_decide(set, &c, def, &d);
	if (d.action != want || d.reason != reason || d.permission != perm)
		fail_msg("%s %s: got action %d reason %d permission %d, want %d %d %d", method, path,
			 d.action, d.reason, d.permission, want, reason, perm);
	assert_non_null(d.intention);
	assert_string_equal(intention_id(d.intention), "l7");
}

static void test_decide_l7(void **state)
{
	struct intention_set *set = set_ok(SET_L7);
	const enum intention_action A = INTENTION_ALLOW, D = INTENTION_DENY;
	struct intention_header tok = { "x-token", "s3cret" }, tok_bad = { "X-Token", "s3cret2" };
	struct intention_header env[] = { { "x-env", "production" }, { "x-zone", "eu-a" } };
	struct intention_header env_bad[] = { { "x-env", "production" }, { "x-zone", "eu-b" } };
	struct intention_header dbg = { "X-Debug", "" }, user = { "x-user", "bob" };
	struct intention_header ver1 = { "x-ver", "v1" }, ver2 = { "x-ver", "v10" };
	struct intention_header k_no = { "x-k", "no" }, k_yes = { "x-k", "yes" };
	struct intention_header multi[] = { { "x-k", "no" }, { "X-K", "no" } };
	struct intention_call c = { NULL, "web", NULL, "api", 0, NULL, NULL, NULL, 0 };
	struct intention_decision d;
	json_t *o;

	(void)state;
	/* PathExact, with the query and fragment not part of the path. */
	http(set, "GET", "/admin", NULL, 0, A, D, INTENTION_BY_PERMISSION, 0);
	http(set, "POST", "/admin?x=1", NULL, 0, A, D, INTENTION_BY_PERMISSION, 0);
	http(set, "GET", "/admin#frag", NULL, 0, A, D, INTENTION_BY_PERMISSION, 0);
	/* /admin/x is not /admin: no permission matches -> the default decides,
	 * NOT the lower-precedence any-api intention. */
	http(set, "GET", "/admin/x", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	http(set, "GET", "/admin/x", NULL, 0, A, A, INTENTION_BY_NO_PERMISSION, -1);
	/* PathPrefix + Methods (case-sensitive request method). */
	http(set, "GET", "/v1/things", NULL, 0, D, A, INTENTION_BY_PERMISSION, 1);
	http(set, "HEAD", "/v1/", NULL, 0, D, A, INTENTION_BY_PERMISSION, 1);
	http(set, "POST", "/v1/things", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	http(set, "get", "/v1/things", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	http(set, "GET", "/v1", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	/* PathRegex matches the whole path. */
	http(set, "DELETE", "/users/42", NULL, 0, D, A, INTENTION_BY_PERMISSION, 2);
	http(set, "DELETE", "/users/42?a", NULL, 0, D, A, INTENTION_BY_PERMISSION, 2);
	http(set, "DELETE", "/users/42/x", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	http(set, "DELETE", "/x/users/42", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	/* Header Exact, names case-insensitive, values not. */
	http(set, "PUT", "/z", &tok, 1, D, A, INTENTION_BY_PERMISSION, 3);
	http(set, "PUT", "/z", &tok_bad, 1, D, D, INTENTION_BY_NO_PERMISSION, -1);
	/* Prefix and Suffix, both required. */
	http(set, "PUT", "/z", env, 2, D, A, INTENTION_BY_PERMISSION, 4);
	http(set, "PUT", "/z", env_bad, 2, D, D, INTENTION_BY_NO_PERMISSION, -1);
	http(set, "PUT", "/z", env, 1, D, D, INTENTION_BY_NO_PERMISSION, -1);
	/* Present, even with an empty value. */
	http(set, "PUT", "/z", &dbg, 1, A, D, INTENTION_BY_PERMISSION, 5);
	/* Present + Invert: matches when the header is absent. */
	http(set, "GET", "/open/x", NULL, 0, D, A, INTENTION_BY_PERMISSION, 6);
	http(set, "GET", "/open/x", &user, 1, D, D, INTENTION_BY_NO_PERMISSION, -1);
	/* Regex + Invert: a present value not matching; an absent header
	 * does not match an inverted value rule (Envoy). */
	http(set, "GET", "/ver", &ver2, 1, D, A, INTENTION_BY_PERMISSION, 7);
	http(set, "GET", "/ver", &ver1, 1, D, D, INTENTION_BY_NO_PERMISSION, -1);
	http(set, "GET", "/ver", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	/* Exact + Invert; repeated headers are joined with ",". */
	http(set, "GET", "/neq", &k_yes, 1, D, A, INTENTION_BY_PERMISSION, 8);
	http(set, "GET", "/neq", &k_no, 1, D, D, INTENTION_BY_NO_PERMISSION, -1);
	http(set, "GET", "/neq", multi, 2, D, A, INTENTION_BY_PERMISSION, 8);
	http(set, "GET", "/neq", NULL, 0, D, D, INTENTION_BY_NO_PERMISSION, -1);
	/* Joining keeps empty values: "" and "no" give ",no", not "no". */
	{
		struct intention_header empty_first[] = { { "x-k", "" }, { "x-k", "no" } };

		http(set, "GET", "/neq", empty_first, 2, D, A, INTENTION_BY_PERMISSION, 8);
	}
	/* First matching permission wins: /admin with a token is denied. */
	http(set, "GET", "/admin", &tok, 1, A, D, INTENTION_BY_PERMISSION, 0);

	/* An L4 check of an L7 intention is denied, whatever the default
	 * (Consul's check answers Allowed=false). */
	intention_set_decide(set, &c, A, &d);
	assert_int_equal(d.action, D);
	assert_int_equal(d.reason, INTENTION_BY_L7_NOT_HTTP);
	assert_string_equal(intention_id(d.intention), "l7");
	o = intention_decision_to_json(&d);
	assert_null(json_object_get(json_object_get(o, "Intention"), "Action"));
	assert_string_equal(json_string_value(json_object_get(o, "ReasonKind")), "l7-not-http");
	json_decref(o);
	/* Other sources reach the L4 intention below. */
	c.source_name = "other";
	c.http = 1;
	c.method = "GET";
	c.path = "/admin";
	intention_set_decide(set, &c, D, &d);
	assert_int_equal(d.action, A);
	assert_string_equal(intention_id(d.intention), "any-api");
	/* A decision names the permission. */
	c.source_name = "web";
	intention_set_decide(set, &c, A, &d);
	o = intention_decision_to_json(&d);
	assert_int_equal(json_integer_value(json_object_get(o, "Permission")), 0);
	json_decref(o);
	intention_set_free(set);
}

/* ---- analysis ------------------------------------------------------------ */

static struct intention_report *analyze(const struct intention_set *set,
					const char *const *ns, size_t n)
{
	struct intention_universe u = { ns, n };
	struct intention_report *r = NULL;
	char *err = NULL;

	if (intention_set_analyze(set, &u, &r, &err) != WEFT_OK)
		fail_msg("analyze: %s", err);
	return r;
}

/* "kind:id[.perm]<by,by>" for each finding, space-separated. */
static void expect_findings(const struct intention_report *r, const char *want)
{
	char got[2048] = "";
	size_t i, k;

	for (i = 0; i < intention_report_count(r); i++) {
		const struct intention_finding *f = intention_report_get(r, i);

		assert_non_null(f->message);
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s:%s", i ? " " : "",
			 intention_finding_kind_string(f->kind), intention_id(f->intention));
		if (f->permission >= 0)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), ".%d", f->permission);
		for (k = 0; k < f->n_by; k++) {
			if (f->by)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s",
					 k ? "," : "<", intention_id(f->by[k]));
			else
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%d",
					 k ? "," : "<", f->by_permissions[k]);
		}
		if (f->n_by)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), ">");
	}
	if (strcmp(got, want) != 0)
		fail_msg("findings: got \"%s\", want \"%s\"", got, want);
}

static const char *const DEFAULT_ONLY[] = { "default" };

static void test_analysis_shadowing(void **state)
{
	/* Only "default" exists: * / * sources are default / * in effect. */
	struct intention_set *set = set_ok(
		"[{\"ID\":\"a\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"deny\"},"
		"{\"ID\":\"b\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"allow\"},"
		"{\"ID\":\"c\",\"SourceName\":\"web\",\"DestinationName\":\"*\",\"Action\":\"allow\"},"
		"{\"ID\":\"d\",\"SourceName\":\"web\",\"DestinationNS\":\"*\",\"DestinationName\":\"*\",\"Action\":\"deny\"},"
		"{\"ID\":\"e\",\"SourceName\":\"*\",\"DestinationName\":\"*\",\"Action\":\"allow\"},"
		"{\"ID\":\"f\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationNS\":\"*\",\"DestinationName\":\"*\",\"Action\":\"deny\"},"
		"{\"ID\":\"g\",\"SourceNS\":\"ghost\",\"SourceName\":\"x\",\"DestinationName\":\"db\",\"Action\":\"deny\"}]");
	static const char *const TWO[] = { "default", "ops" };
	struct intention_report *r;
	json_t *j;

	(void)state;
	/* Any namespace may exist: nothing is shadowed, nothing is dead. */
	r = analyze(set, NULL, 0);
	expect_findings(r, "");
	intention_report_free(r);

	r = analyze(set, DEFAULT_ONLY, 1);
	expect_findings(r, "never-matches:g shadowed:b<a> shadowed:d<c> shadowed:f<e>");
	j = intention_report_to_json(r);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "Kind")),
			    "shadowed");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
		json_array_get(j, 1), "By"), 0)), "a");
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(j, 1), "Message")),
			       "default/* -> default/db (ID a)"));
	json_decref(j);
	intention_report_free(r);

	/* With "ops" too, b still decides ops/x -> db, d decides web -> ops/y,
	 * f decides ops/x -> ops/y. */
	r = analyze(set, TWO, 2);
	expect_findings(r, "never-matches:g");
	intention_report_free(r);
	intention_set_free(set);

	/* Shadowed by several intentions together, one namespace each. */
	set = set_ok(
		"[{\"ID\":\"a\",\"SourceNS\":\"default\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"deny\"},"
		"{\"ID\":\"b\",\"SourceNS\":\"ops\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"deny\"},"
		"{\"ID\":\"c\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"allow\"}]");
	r = analyze(set, TWO, 2);
	expect_findings(r, "shadowed:c<a,b>");
	intention_report_free(r);
	r = analyze(set, NULL, 0);
	expect_findings(r, "");
	intention_report_free(r);
	intention_set_free(set);
}

static void test_analysis_permissions(void **state)
{
	struct intention_set *set = set_ok(
		"[{\"ID\":\"p\",\"SourceName\":\"web\",\"DestinationName\":\"api\",\"Permissions\":["
		/* 0 */ "{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/v1/\",\"Methods\":[\"GET\"]}},"
		/* 1 */ "{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/v1/\",\"Methods\":[\"POST\"]}},"
		/* 2: preempted by 0 and 1 together */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathPrefix\":\"/v1/items\",\"Methods\":[\"GET\",\"POST\"]}},"
		/* 3: PUT is not covered */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathPrefix\":\"/v1/items\",\"Methods\":[\"GET\",\"PUT\"]}},"
		/* 4: a regex over the exact path of 5 */
		"{\"Action\":\"allow\",\"HTTP\":{\"PathRegex\":\"/u/[0-9]+\"}},"
		/* 5: preempted: /u/7 matches 4's regex */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathExact\":\"/u/7\",\"Methods\":[\"DELETE\"]}},"
		/* 6: a regex path: not provably covered by 4's different regex */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathRegex\":\"/u/[0-9]\"}},"
		/* 7: header rules */
		"{\"Action\":\"allow\",\"HTTP\":{\"Header\":[{\"Name\":\"x-env\",\"Prefix\":\"prod\"}]}},"
		/* 8: preempted by 7 (x-env=production-eu starts with prod) */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathExact\":\"/z\",\"Header\":[{\"Name\":\"X-Env\",\"Exact\":\"production-eu\"}]}},"
		/* 9: not preempted: x-env=staging */
		"{\"Action\":\"deny\",\"HTTP\":{\"Header\":[{\"Name\":\"x-env\",\"Exact\":\"staging\"}]}},"
		/* 10: contradictory: Exact a and Exact b on one header */
		"{\"Action\":\"deny\",\"HTTP\":{\"Header\":[{\"Name\":\"x-a\",\"Exact\":\"1\"},{\"Name\":\"X-A\",\"Exact\":\"2\"}]}},"
		/* 11: contradictory: absent and present */
		"{\"Action\":\"deny\",\"HTTP\":{\"Header\":[{\"Name\":\"x-b\",\"Present\":true,\"Invert\":true},{\"Name\":\"x-b\",\"Suffix\":\"z\"}]}},"
		/* 12: never: a query in PathExact */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathExact\":\"/q?x=1\"}},"
		/* 13: inverted rules: x-t not starting with 'a' ⊆ x-t != 'abc' */
		"{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/t\",\"Header\":[{\"Name\":\"x-t\",\"Exact\":\"abc\",\"Invert\":true}]}},"
		/* 14: preempted by 13 */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathPrefix\":\"/t/\",\"Header\":[{\"Name\":\"x-t\",\"Prefix\":\"a\",\"Invert\":true}]}},"
		/* 15: not preempted: an absent x-t does not match 13 */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathPrefix\":\"/t/\"}},"
		/* 16: any request: preempts nothing earlier, is not preempted */
		"{\"Action\":\"deny\",\"HTTP\":{\"Methods\":[\"GET\",\"HEAD\",\"POST\",\"PUT\",\"PATCH\",\"DELETE\",\"CONNECT\",\"OPTIONS\",\"TRACE\"]}},"
		/* 17: all listed methods are taken by 16, any other method is not */
		"{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/\"}},"
		/* 18: preempted by 16 */
		"{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/\",\"Methods\":[\"PATCH\"]}}"
		"]},"
		"{\"ID\":\"q\",\"SourceName\":\"web\",\"DestinationName\":\"db\",\"Permissions\":["
		/* 0: a header present */
		"{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/h\",\"Header\":[{\"Name\":\"x-h\",\"Present\":true}]}},"
		/* 1: preempted by 0: x-h != 1 still needs x-h present */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathExact\":\"/h\",\"Header\":[{\"Name\":\"x-h\",\"Exact\":\"1\",\"Invert\":true}]}},"
		/* 2: not preempted: x-h absent */
		"{\"Action\":\"deny\",\"HTTP\":{\"PathExact\":\"/h\",\"Header\":[{\"Name\":\"x-h\",\"Present\":true,\"Invert\":true}]}},"
		/* 3, 4 (preempted by 3), 5 (different suffixes: never) */
		"{\"Action\":\"allow\",\"HTTP\":{\"Header\":[{\"Name\":\"x-f\",\"Suffix\":\"on\"}]}},"
		"{\"Action\":\"allow\",\"HTTP\":{\"Header\":[{\"Name\":\"x-f\",\"Suffix\":\".json\"}]}},"
		"{\"Action\":\"allow\",\"HTTP\":{\"Header\":[{\"Name\":\"x-g\",\"Suffix\":\".json\"},{\"Name\":\"x-g\",\"Suffix\":\".xml\"}]}},"
		/* 6: prefixes that overlap are not contradictory */
		"{\"Action\":\"allow\",\"HTTP\":{\"Header\":[{\"Name\":\"x-p\",\"Prefix\":\"ab\"},{\"Name\":\"x-p\",\"Prefix\":\"abc\"}]}}"
		"]}]");
	struct intention_report *r = analyze(set, NULL, 0);

	(void)state;
	expect_findings(r,
			"permission-preempted:p.2<0,1> permission-preempted:p.5<4> "
			"permission-preempted:p.8<7> permission-never-matches:p.10 "
			"permission-never-matches:p.11 permission-never-matches:p.12 "
			"permission-preempted:p.14<13> permission-preempted:p.18<16> "
			"permission-preempted:q.1<0> permission-preempted:q.4<3> "
			"permission-never-matches:q.5");
	intention_report_free(r);
	intention_set_free(set);
}

static void test_analysis_new_rule(void **state)
{
	struct intention_set *set = set_ok(
		"[{\"ID\":\"a\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"deny\"},"
		"{\"ID\":\"b\",\"SourceName\":\"web\",\"DestinationName\":\"*\",\"Action\":\"allow\"}]");
	struct intention_universe u = { DEFAULT_ONLY, 1 };
	struct intention_report *r = NULL;
	struct intention *ix;
	char *err = NULL;

	(void)state;
	/* Would be shadowed by a. */
	ix = ix_ok("{\"ID\":\"new\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationName\":\"db\",\"Action\":\"allow\"}");
	assert_int_equal(intention_set_analyze_new(set, ix, &u, &r, &err), WEFT_OK);
	expect_findings(r, "shadowed:new<a>");
	intention_report_free(r);
	intention_free(ix);
	/* Fine on its own: nothing to say. */
	ix = ix_ok("{\"ID\":\"new\",\"SourceName\":\"api\",\"DestinationName\":\"db\",\"Action\":\"allow\"}");
	assert_int_equal(intention_set_analyze_new(set, ix, &u, &r, &err), WEFT_OK);
	expect_findings(r, "");
	intention_report_free(r);
	intention_free(ix);
	/* A new "web to any service anywhere" is shadowed by b ("web to any
	 * service in default") when only default exists; a new "default to
	 * default" rule newly shadows an existing "anything to anything". */
	ix = ix_ok("{\"ID\":\"new\",\"SourceName\":\"web\",\"DestinationNS\":\"*\",\"DestinationName\":\"*\",\"Action\":\"deny\"}");
	assert_int_equal(intention_set_analyze_new(set, ix, &u, &r, &err), WEFT_OK);
	expect_findings(r, "shadowed:new<b>");
	intention_report_free(r);
	intention_free(ix);
	intention_set_free(set);
	set = set_ok("[{\"ID\":\"old\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationNS\":\"*\",\"DestinationName\":\"*\",\"Action\":\"deny\"}]");
	ix = ix_ok("{\"ID\":\"new\",\"SourceName\":\"*\",\"DestinationName\":\"*\",\"Action\":\"allow\"}");
	assert_int_equal(intention_set_analyze_new(set, ix, &u, &r, &err), WEFT_OK);
	expect_findings(r, "shadowed:old<new>");
	intention_report_free(r);
	intention_free(ix);
	/* A namespace that does not exist; a dead permission. */
	ix = ix_ok("{\"ID\":\"new\",\"SourceNS\":\"nope\",\"SourceName\":\"x\",\"DestinationName\":\"db\",\"Action\":\"allow\"}");
	assert_int_equal(intention_set_analyze_new(set, ix, &u, &r, &err), WEFT_OK);
	expect_findings(r, "never-matches:new");
	intention_report_free(r);
	intention_free(ix);
	ix = ix_ok("{\"ID\":\"new\",\"SourceName\":\"x\",\"DestinationName\":\"db\",\"Permissions\":["
		   "{\"Action\":\"allow\",\"HTTP\":{\"PathExact\":\"/a?b\"}}]}");
	assert_int_equal(intention_set_analyze_new(set, ix, NULL, &r, &err), WEFT_OK);
	expect_findings(r, "permission-never-matches:new.0");
	intention_report_free(r);
	intention_free(ix);
	/* Replacing the same pair is an upsert, not a duplicate. */
	ix = ix_ok("{\"ID\":\"old2\",\"SourceNS\":\"*\",\"SourceName\":\"*\",\"DestinationNS\":\"*\",\"DestinationName\":\"*\",\"Action\":\"allow\"}");
	assert_int_equal(intention_set_analyze_new(set, ix, &u, &r, &err), WEFT_OK);
	expect_findings(r, "");
	intention_report_free(r);
	intention_free(ix);
	intention_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_precedence_table),
		cmocka_unit_test(test_evaluation_order),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_validation_errors),
		cmocka_unit_test(test_duplicates_rejected),
		cmocka_unit_test(test_decide_l4_wildcards),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_decide_l7),
		cmocka_unit_test(test_analysis_shadowing),
		cmocka_unit_test(test_analysis_permissions),
		cmocka_unit_test(test_analysis_new_rule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
