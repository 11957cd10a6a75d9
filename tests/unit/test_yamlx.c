/* YAML to json with positions: scalar types, line/column of nested fields,
 * syntax errors, several documents, alias bombs and deep nesting refused,
 * JSON read through the YAML path equal to jansson's reading; yamlx_dump
 * output parsed back equal, keys in order, tricky strings quoted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"
#include "yamlx.h"

#include <dirent.h>

static struct yamlx_doc *parse_ok(const char *text)
{
	struct yamlx_doc *d = NULL;
	char *err = NULL;

	if (yamlx_parse(text, strlen(text), "t.yaml", &d, &err) != WEFT_OK)
		fail_msg("parse: %s", err);
	return d;
}

static char *parse_err(const char *text, int want)
{
	struct yamlx_doc *d = NULL;
	char *err = NULL;

	assert_int_equal(yamlx_parse(text, strlen(text), "t.yaml", &d, &err), want);
	assert_null(d);
	assert_non_null(err);
	return err;
}

static void test_scalar_types(void **state)
{
	struct yamlx_doc *d = parse_ok(
		"i: 42\nneg: -7\nhex: 0x1F\noct: 0o17\nf: 2.5\nexp: 1e3\n"
		"t: true\nT: True\nno: false\nn: null\ntilde: ~\nempty:\n"
		"qs: \"42\"\nsq: 'true'\nyes: yes\noff: off\nstr: !!str 12\n"
		"plain: hello world\nver: 1.2.3\n");
	json_t *r = yamlx_root(d, 0);

	(void)state;
	assert_int_equal(yamlx_count(d), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "i")), 42);
	assert_int_equal(json_integer_value(json_object_get(r, "neg")), -7);
	assert_int_equal(json_integer_value(json_object_get(r, "hex")), 31);
	assert_int_equal(json_integer_value(json_object_get(r, "oct")), 15);
	assert_true(json_is_real(json_object_get(r, "f")));
	assert_true(json_real_value(json_object_get(r, "f")) == 2.5);
	assert_true(json_real_value(json_object_get(r, "exp")) == 1000.0);
	assert_true(json_is_true(json_object_get(r, "t")));
	assert_true(json_is_true(json_object_get(r, "T")));
	assert_true(json_is_false(json_object_get(r, "no")));
	assert_true(json_is_null(json_object_get(r, "n")));
	assert_true(json_is_null(json_object_get(r, "tilde")));
	assert_true(json_is_null(json_object_get(r, "empty")));
	/* Quoted scalars stay strings; YAML 1.1 booleans are strings in 1.2. */
	assert_string_equal(json_string_value(json_object_get(r, "qs")), "42");
	assert_string_equal(json_string_value(json_object_get(r, "sq")), "true");
	assert_string_equal(json_string_value(json_object_get(r, "yes")), "yes");
	assert_string_equal(json_string_value(json_object_get(r, "off")), "off");
	assert_string_equal(json_string_value(json_object_get(r, "str")), "12");
	assert_string_equal(json_string_value(json_object_get(r, "plain")), "hello world");
	assert_string_equal(json_string_value(json_object_get(r, "ver")), "1.2.3");
	yamlx_free(d);
}

static void test_bad_scalars(void **state)
{
	char *err;

	(void)state;
	err = parse_err("a: 99999999999999999999\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:1:4: integer out of range");
	free(err);
	err = parse_err("a: 1e999\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:1:4: number out of range");
	free(err);
	err = parse_err("a:\n  b: .inf\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:2:6: infinite and NaN numbers are not supported");
	free(err);
	err = parse_err("a: !!int abc\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:1:4: value does not match its tag !!int");
	free(err);
	err = parse_err("a: !custom x\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:1:4: unsupported tag !custom");
	free(err);
	err = parse_err("a: 1\nb: 2\na: 3\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:3:4: duplicate key \"a\"");
	free(err);
	err = parse_err("? [a, b]\n: 1\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:1:3: mapping keys must be scalars");
	free(err);
}

static const char routes_yaml[] =
	"Kind: service-router\n"          /* 1 */
	"Name: api\n"                     /* 2 */
	"Routes:\n"                       /* 3 */
	"  - Match:\n"                    /* 4 */
	"      HTTP:\n"                   /* 5 */
	"        PathPrefix: /a\n"        /* 6 */
	"  - Destination:\n"              /* 7 */
	"      service_subset: v2\n"      /* 8 */
	"      Service:   api\n";         /* 9 */

static void test_locate_nested(void **state)
{
	struct yamlx_doc *d = parse_ok(routes_yaml);
	int line, col;

	(void)state;
	assert_int_equal(yamlx_locate(d, 0, "Routes[1].Destination.Service", &line, &col), 1);
	assert_int_equal(line, 9);
	assert_int_equal(col, 7);
	assert_int_equal(yamlx_locate(d, 0, "Routes[0].Match.HTTP.PathPrefix", &line, &col), 1);
	assert_int_equal(line, 6);
	assert_int_equal(col, 9);
	/* Canonical names find the snake_case and any-case spellings. */
	assert_int_equal(yamlx_locate(d, 0, "Routes[1].Destination.ServiceSubset", &line, &col), 1);
	assert_int_equal(line, 8);
	assert_int_equal(col, 7);
	assert_int_equal(yamlx_locate(d, 0, "routes[0]", &line, &col), 1);
	assert_int_equal(line, 4);
	assert_int_equal(col, 5);
	/* A missing field: the deepest part found. */
	assert_int_equal(yamlx_locate(d, 0, "Routes[1].Destination.Timeout", &line, &col), 0);
	assert_int_equal(line, 7);
	assert_int_equal(col, 5);
	assert_int_equal(yamlx_locate(d, 0, "Routes[5]", &line, &col), 0);
	assert_int_equal(line, 3);
	assert_int_equal(col, 1);
	yamlx_free(d);
}

static void test_error_format(void **state)
{
	struct yamlx_doc *d = parse_ok(routes_yaml);
	char *m;

	(void)state;
	m = yamlx_error(d, 0, "Routes[1].Destination.ServiceSubset: service \"api\" has no subset \"v2\"");
	assert_string_equal(m, "t.yaml:8:7: Routes[1].Destination.ServiceSubset: service \"api\" has no subset \"v2\"");
	free(m);
	/* A message that does not start with a path points at the document. */
	m = yamlx_error(d, 0, "cannot delete: in use");
	assert_string_equal(m, "t.yaml:1:1: cannot delete: in use");
	free(m);
	yamlx_free(d);
}

static void test_syntax_errors(void **state)
{
	char *err;

	(void)state;
	err = parse_err("a: 1\nb: [1, 2\nc: 3\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:3:2: did not find expected ',' or ']' while parsing a flow sequence");
	free(err);
	err = parse_err("a:\n  b: 1\n c: 2\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:3:2: did not find expected key while parsing a block mapping");
	free(err);
	err = parse_err("a: *nope\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:1:4: unknown anchor \"nope\"");
	free(err);
	err = parse_err("a: \"abc\n", WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:2:1: found unexpected end of stream while scanning a quoted scalar");
	free(err);
}

static void test_multi_document(void **state)
{
	struct yamlx_doc *d = parse_ok("Kind: a\n---\nKind: b\n---\n---\n- 1\n- 2\n");
	int line, col;

	(void)state;
	assert_int_equal(yamlx_count(d), 4);
	assert_string_equal(json_string_value(json_object_get(yamlx_root(d, 0), "Kind")), "a");
	assert_string_equal(json_string_value(json_object_get(yamlx_root(d, 1), "Kind")), "b");
	assert_true(json_is_null(yamlx_root(d, 2)));
	assert_int_equal(json_array_size(yamlx_root(d, 3)), 2);
	assert_null(yamlx_root(d, 4));
	/* Positions are per document, lines count in the whole file. */
	assert_int_equal(yamlx_locate(d, 1, "Kind", &line, &col), 1);
	assert_int_equal(line, 3);
	assert_int_equal(yamlx_locate(d, 3, "[1]", &line, &col), 1);
	assert_int_equal(line, 7);
	yamlx_free(d);

	d = parse_ok("");
	assert_int_equal(yamlx_count(d), 0);
	yamlx_free(d);
}

static void test_aliases(void **state)
{
	struct yamlx_doc *d = parse_ok(
		"base: &h\n  Set: {a: b}\nr1:\n  Headers: *h\nr2:\n  Headers: *h\n");
	json_t *r = yamlx_root(d, 0);
	int line, col;

	(void)state;
	assert_true(json_equal(json_object_get(json_object_get(r, "r1"), "Headers"),
			       json_object_get(r, "base")));
	/* Copies, not shared values: changing one leaves the others alone. */
	json_object_set_new(json_object_get(json_object_get(r, "r2"), "Headers"), "x", json_true());
	assert_null(json_object_get(json_object_get(r, "base"), "x"));
	/* An aliased field is located where the anchor defined it. */
	assert_int_equal(yamlx_locate(d, 0, "r2.Headers.Set", &line, &col), 1);
	assert_int_equal(line, 2);
	yamlx_free(d);
}

static void test_alias_bomb(void **state)
{
	/* Nine levels of ten aliases: 10^9 values if expanded. */
	static const char bomb[] =
		"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
		"h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
		"i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
	char *err = parse_err(bomb, WEFT_ETOOBIG);

	(void)state;
	/* e: &e [*d ...]: the eighth *d passes the budget. */
	assert_string_equal(err, "t.yaml:5:36: more than 100000 values (aliases included)");
	free(err);
}

static void test_alias_depth(void **state)
{
	char text[4096];
	size_t n = 0;
	int i;
	char *err;

	(void)state;
	/* Each anchor nests the previous one: depth grows without text nesting. */
	n += (size_t)snprintf(text + n, sizeof(text) - n, "a0: &a0 [x]\n");
	for (i = 1; i < 70; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "a%d: &a%d [*a%d]\n", i, i, i - 1);
	err = parse_err(text, WEFT_EINVAL);
	assert_non_null(strstr(err, "nests too deep"));
	free(err);
}

static void test_deep_nesting(void **state)
{
	char text[512];
	struct yamlx_doc *d;
	char *err;
	int i;

	(void)state;
	for (i = 0; i < 64; i++) {
		text[i] = '[';
		text[64 + i] = ']';
	}
	text[128] = '\0';
	d = parse_ok(text);
	yamlx_free(d);
	for (i = 0; i < 65; i++) {
		text[i] = '[';
		text[65 + i] = ']';
	}
	text[130] = '\0';
	err = parse_err(text, WEFT_EINVAL);
	assert_string_equal(err, "t.yaml:1:65: nesting deeper than 64 levels");
	free(err);
}

static void test_json_same_as_jansson(void **state)
{
	static const char *const texts[] = {
		"{\"Kind\": \"service-router\", \"Routes\": [{\"Match\": {\"HTTP\": {\"PathPrefix\": \"/a\\/b\"}}}]}",
		"{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":-2.5e-3,\"e\":\"\\u00e9\\n\\t\"}}",
		"{\n\t\"tabbed\": {\n\t\t\"x\": 0\n\t},\n\t\"y\": \"\"\n}",
		"[1, 2.0, \"3\", [], {}]",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct yamlx_doc *d = parse_ok(texts[i]);
		json_t *j = json_loads(texts[i], JSON_DECODE_ANY, NULL);

		assert_non_null(j);
		if (!json_equal(j, yamlx_root(d, 0))) {
			char *a = json_dumps(j, JSON_ENCODE_ANY), *b = json_dumps(yamlx_root(d, 0), JSON_ENCODE_ANY);

			fail_msg("JSON %zu differs: jansson %s, yamlx %s", i, a, b);
		}
		json_decref(j);
		yamlx_free(d);
	}
}

static void test_json_positions(void **state)
{
	struct yamlx_doc *d = parse_ok("{\n  \"Kind\": \"service-splitter\",\n  \"Splits\": [\n    {\"Weight\": 50},\n    {\"Weight\": \"x\"}\n  ]\n}\n");
	int line, col;

	(void)state;
	assert_int_equal(yamlx_locate(d, 0, "Splits[1].Weight", &line, &col), 1);
	assert_int_equal(line, 5);
	assert_int_equal(col, 6);
	yamlx_free(d);
}

/* ---- yamlx_dump ---- */

/* Dumps v, parses the text back and requires an equal value; returns the
 * text (caller frees). */
static char *round_trip(const json_t *v)
{
	struct yamlx_doc *d = NULL;
	char *text = yamlx_dump(v), *err = NULL;

	assert_non_null(text);
	if (yamlx_parse(text, strlen(text), "dump.yaml", &d, &err) != WEFT_OK)
		fail_msg("dump does not parse: %s\n%s", err, text);
	assert_int_equal(yamlx_count(d), 1);
	if (!json_equal(yamlx_root(d, 0), (json_t *)v)) {
		char *a = json_dumps(v, JSON_ENCODE_ANY), *b = json_dumps(yamlx_root(d, 0), JSON_ENCODE_ANY);

		fail_msg("round trip differs: %s became %s via\n%s", a, b, text);
	}
	yamlx_free(d);
	return text;
}

static void test_dump_tricky_scalars(void **state)
{
	json_t *v = json_pack(
		"{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
		"t", "true", "f", "False", "r", "1.0", "i", "42", "h", "0x1F", "nn", "null",
		"tilde", "~", "e", "", "yy", "yes", "off", "Off", "ml", "line one\nline two\n",
		"mlnoeol", "a\n  indented\nb", "trail", "ends with spaces  \nx", "u",
		"caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x9a\x80", "colon", "a: b", "dash", "- x",
		"hash", "# not a comment", "quote", "\"'\\");
	char *text;

	(void)state;
	json_object_set_new(v, "bmp", json_string("caf\xc3\xa9 \xe2\x86\x92"));
	json_object_set_new(v, "int", json_integer(-7));
	json_object_set_new(v, "real", json_real(0.1));
	json_object_set_new(v, "big", json_real(1e300));
	json_object_set_new(v, "whole", json_real(2.0));
	json_object_set_new(v, "bool", json_true());
	json_object_set_new(v, "nul", json_null());
	json_object_set_new(v, "emptyo", json_object());
	json_object_set_new(v, "emptya", json_array());
	json_object_set_new(v, "nested", json_pack("[{s:[i,s]},[],s]", "k", 1, "2", "true"));
	json_object_set_new(v, "nul\x01key", json_string("ctl\x01" "char"));
	text = round_trip(v);
	/* Strings that read as another type are quoted, others stay plain,
	 * text is not escaped, a multi-line string is a literal block. */
	assert_non_null(strstr(text, "t: \"true\"\n"));
	assert_non_null(strstr(text, "r: \"1.0\"\n"));
	assert_non_null(strstr(text, "nn: \"null\"\n"));
	assert_non_null(strstr(text, "e: \"\"\n"));
	assert_non_null(strstr(text, "yy: \"yes\"\n"));
	assert_non_null(strstr(text, "\"off\": \"Off\"\n"));
	assert_non_null(strstr(text, "real: 0.1\n"));
	assert_non_null(strstr(text, "bool: true\n"));
	assert_non_null(strstr(text, "nul: null\n"));
	/* libyaml writes characters beyond the BMP as \U escapes. */
	assert_non_null(strstr(text, "u: \"caf\xc3\xa9 \xe2\x86\x92 \\U0001F680\"\n"));
	assert_non_null(strstr(text, "bmp: caf\xc3\xa9 \xe2\x86\x92\n"));
	assert_non_null(strstr(text, "ml: |\n  line one\n  line two\n"));
	assert_non_null(strstr(text, "emptyo: {}\n"));
	free(text);
	json_decref(v);

	/* Scalars and containers at the top level too. */
	v = json_string("");
	free(round_trip(v));
	json_decref(v);
	v = json_pack("[s,i,b,n]", "null", 3, 0);
	free(round_trip(v));
	json_decref(v);
}

static void test_dump_key_order(void **state)
{
	json_t *v = json_object();
	char *text;

	(void)state;
	json_object_set_new(v, "Kind", json_string("service-defaults"));
	json_object_set_new(v, "Name", json_string("web"));
	json_object_set_new(v, "Protocol", json_string("http"));
	json_object_set_new(v, "Meta", json_pack("{s:s,s:s}", "z", "1", "a", "2"));
	text = round_trip(v);
	assert_string_equal(text, "Kind: service-defaults\nName: web\nProtocol: http\n"
				  "Meta:\n  z: \"1\"\n  a: \"2\"\n");
	free(text);
	json_decref(v);
}

/* Every example policy file: each document dumped reads back equal. */
static void test_dump_examples(void **state)
{
	const char *src = getenv("WEFT_SRCDIR");
	char dir[1024], path[1400];
	struct dirent *de;
	size_t ndocs = 0;
	DIR *dh;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/examples/policy", src ? src : ".");
	assert_non_null(dh = opendir(dir));
	while ((de = readdir(dh)) != NULL) {
		struct yamlx_doc *d = NULL;
		char *data, *err = NULL;
		size_t len, k;

		if (de->d_name[0] == '.' || (!strstr(de->d_name, ".yaml") && !strstr(de->d_name, ".json")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((data = file_read_all(path, 1 << 20, &len)) == NULL)
			fail_msg("cannot read %s", path);
		if (yamlx_parse(data, len, de->d_name, &d, &err) != WEFT_OK)
			fail_msg("%s", err);
		for (k = 0; k < yamlx_count(d); k++, ndocs++)
			free(round_trip(yamlx_root(d, k)));
		yamlx_free(d);
		free(data);
	}
	closedir(dh);
	assert_true(ndocs >= 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalar_types),
		cmocka_unit_test(test_bad_scalars),
		cmocka_unit_test(test_locate_nested),
		cmocka_unit_test(test_error_format),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_multi_document),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_alias_bomb),
		cmocka_unit_test(test_alias_depth),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_json_same_as_jansson),
		cmocka_unit_test(test_json_positions),
		cmocka_unit_test(test_dump_tricky_scalars),
		cmocka_unit_test(test_dump_key_order),
		cmocka_unit_test(test_dump_examples),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
