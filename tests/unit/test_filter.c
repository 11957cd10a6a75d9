/* Filter expressions against Consul-shaped objects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "filter.h"

/* /v1/catalog/service/:name entry */
static const char *CATALOG =
	"{\"ID\":\"9f0c6a1e-0000-4000-8000-000000000001\",\"Node\":\"node-1\",\"Address\":\"10.0.0.1\","
	"\"Datacenter\":\"dc1\",\"TaggedAddresses\":{\"lan\":\"10.0.0.1\",\"wan\":\"198.18.0.1\"},"
	"\"NodeMeta\":{\"rack\":\"r1\",\"os\":\"linux\"},\"ServiceKind\":\"\",\"ServiceID\":\"web-1\","
	"\"ServiceName\":\"web\",\"ServiceTags\":[\"primary\",\"v2\"],\"ServiceAddress\":\"\","
	"\"ServiceWeights\":{\"Passing\":10,\"Warning\":1},"
	"\"ServiceMeta\":{\"version\":\"1.2.3\",\"env\":\"prod\",\"build\":\"42\",\"weird key\":\"x\"},"
	"\"ServicePort\":8080,\"ServiceEnableTagOverride\":false,\"ServiceProxy\":{},"
	"\"ServiceConnect\":{},\"Ratio\":0.5,\"Nothing\":null,\"CreateIndex\":12,\"ModifyIndex\":14}";

/* /v1/health/service/:name entry */
static const char *HEALTH =
	"{\"Node\":{\"ID\":\"\",\"Node\":\"node-2\",\"Address\":\"10.0.0.2\",\"Datacenter\":\"dc1\","
	"\"TaggedAddresses\":{},\"Meta\":{\"rack\":\"r2\"}},"
	"\"Service\":{\"ID\":\"web-2\",\"Service\":\"web\",\"Tags\":[\"secondary\"],\"Address\":\"\","
	"\"Meta\":{\"version\":\"1.3.0\"},\"Port\":8081,\"EnableTagOverride\":true,"
	"\"Weights\":{\"Passing\":1,\"Warning\":1},"
	"\"TaggedAddresses\":{\"lan\":{\"Address\":\"10.0.0.2\",\"Port\":8081}}},"
	"\"Checks\":[{\"Node\":\"node-2\",\"CheckID\":\"serfHealth\",\"Name\":\"Serf\","
	"\"Status\":\"passing\",\"ServiceID\":\"\",\"ServiceTags\":[]},"
	"{\"Node\":\"node-2\",\"CheckID\":\"service:web-2\",\"Name\":\"web check\","
	"\"Status\":\"critical\",\"ServiceID\":\"web-2\",\"ServiceTags\":[\"secondary\"]}]}";

static const char *NO_CHECKS =
	"{\"Node\":{\"Node\":\"node-3\",\"Meta\":{}},\"Service\":{\"Service\":\"web\",\"Tags\":[]},"
	"\"Checks\":[]}";

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_ALLOW_NUL, &e);

	if (v == NULL)
		fail_msg("bad test JSON: %s", e.text);
	return v;
}

/* 1 or 0 for a valid expression; fails the test if it does not compile. */
static int m(const char *expr, const char *json)
{
	struct filter *f = NULL;
	char *err = NULL;
	json_t *obj;
	int r;

	if (filter_compile(expr, &f, &err) != WEFT_OK)
		fail_msg("%s: %s", expr, err);
	obj = load(json);
	r = filter_match(f, obj);
	json_decref(obj);
	filter_free(f);
	return r;
}

static void bad(const char *expr, const char *want)
{
	struct filter *f = NULL;
	char *err = NULL;

	if (filter_compile(expr, &f, &err) == WEFT_OK) {
		filter_free(f);
		fail_msg("compiled but should not: %s", expr);
	}
	assert_null(f);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", expr, err, want);
	free(err);
}

static void test_equality(void **state)
{
	(void)state;
	assert_int_equal(m("ServiceName == \"web\"", CATALOG), 1);
	assert_int_equal(m("ServiceName == \"api\"", CATALOG), 0);
	assert_int_equal(m("ServiceName != \"api\"", CATALOG), 1);
	assert_int_equal(m("ServiceName != web", CATALOG), 0);
	assert_int_equal(m("ServiceMeta.version == \"1.2.3\"", CATALOG), 1);
	assert_int_equal(m("ServiceMeta[\"version\"] == `1.2.3`", CATALOG), 1);
	assert_int_equal(m("ServiceMeta[\"weird key\"] == x", CATALOG), 1);
	assert_int_equal(m("NodeMeta.rack == r1", CATALOG), 1);
	assert_int_equal(m("TaggedAddresses.wan == \"198.18.0.1\"", CATALOG), 1);
	/* case matters, as for Go's field names and map keys */
	assert_int_equal(m("servicename == web", CATALOG), 0);
	assert_int_equal(m("ServiceName == Web", CATALOG), 0);
	/* whitespace is optional around == and may be any blank */
	assert_int_equal(m("ServiceName==web", CATALOG), 1);
	assert_int_equal(m("\t ServiceName\n==\r\n\"web\"  ", CATALOG), 1);
}

static void test_numbers_and_bools(void **state)
{
	(void)state;
	assert_int_equal(m("ServicePort == 8080", CATALOG), 1);
	assert_int_equal(m("ServicePort == \"8080\"", CATALOG), 1);
	assert_int_equal(m("ServicePort == \"0x1f90\"", CATALOG), 1); /* Go's ParseInt(s, 0, 64) */
	assert_int_equal(m("ServicePort == 8081", CATALOG), 0);
	assert_int_equal(m("ServicePort != 8081", CATALOG), 1);
	assert_int_equal(m("ServicePort == 8080.0", CATALOG), 0);   /* an int field takes ints */
	assert_int_equal(m("ServicePort == abc", CATALOG), 0);
	assert_int_equal(m("ServicePort != abc", CATALOG), 1);
	assert_int_equal(m("ServiceWeights.Passing == 10", CATALOG), 1);
	assert_int_equal(m("Ratio == 0.5", CATALOG), 1);
	assert_int_equal(m("Ratio == \"5e-1\"", CATALOG), 1);
	assert_int_equal(m("Ratio == 0.25", CATALOG), 0);
	assert_int_equal(m("ServiceMeta.build == 42", CATALOG), 1);  /* a string compares as text */
	assert_int_equal(m("ServiceMeta.build == \"042\"", CATALOG), 0);
	assert_int_equal(m("ServiceEnableTagOverride == false", CATALOG), 1);
	assert_int_equal(m("ServiceEnableTagOverride == \"F\"", CATALOG), 1);
	assert_int_equal(m("ServiceEnableTagOverride == 0", CATALOG), 1);
	assert_int_equal(m("ServiceEnableTagOverride == true", CATALOG), 0);
	assert_int_equal(m("ServiceEnableTagOverride != true", CATALOG), 1);
	assert_int_equal(m("ServiceEnableTagOverride == yes", CATALOG), 0);
	assert_int_equal(m("Service.EnableTagOverride == true", HEALTH), 1);
	assert_int_equal(m("Service.Port == -1", HEALTH), 0);
	assert_int_equal(m("Service.Port != -1", HEALTH), 1);
	/* lists and objects equal no value */
	assert_int_equal(m("ServiceTags == primary", CATALOG), 0);
	assert_int_equal(m("ServiceTags != primary", CATALOG), 1);
}

static void test_in_contains(void **state)
{
	(void)state;
	/* lists: an element equal to the value */
	assert_int_equal(m("primary in ServiceTags", CATALOG), 1);
	assert_int_equal(m("\"primary\" in ServiceTags", CATALOG), 1);
	assert_int_equal(m("\"prim\" in ServiceTags", CATALOG), 0);
	assert_int_equal(m("\"canary\" not in ServiceTags", CATALOG), 1);
	assert_int_equal(m("\"v2\" not in ServiceTags", CATALOG), 0);
	assert_int_equal(m("ServiceTags contains \"v2\"", CATALOG), 1);
	assert_int_equal(m("ServiceTags not contains v2", CATALOG), 0);
	assert_int_equal(m("ServiceTags not contains canary", CATALOG), 1);
	/* maps: a key */
	assert_int_equal(m("\"version\" in ServiceMeta", CATALOG), 1);
	assert_int_equal(m("\"1.2.3\" in ServiceMeta", CATALOG), 0);
	assert_int_equal(m("ServiceMeta contains env", CATALOG), 1);
	assert_int_equal(m("\"lan\" in TaggedAddresses", CATALOG), 1);
	/* strings: a substring */
	assert_int_equal(m("\"eb\" in ServiceName", CATALOG), 1);
	assert_int_equal(m("ServiceName contains \"we\"", CATALOG), 1);
	assert_int_equal(m("ServiceName contains \"api\"", CATALOG), 0);
	assert_int_equal(m("ServiceName contains \"\"", CATALOG), 1);
	assert_int_equal(m("ServiceName not contains \"api\"", CATALOG), 1);
	/* numbers in a list compare as numbers */
	assert_int_equal(m("8080 in Ports", "{\"Ports\":[80,8080]}"), 1);
	assert_int_equal(m("\"8080\" in Ports", "{\"Ports\":[80,8080]}"), 1);
	assert_int_equal(m("443 in Ports", "{\"Ports\":[80,8080]}"), 0);
	assert_int_equal(m("true in Flags", "{\"Flags\":[\"x\",true]}"), 1);
	/* a number holds nothing */
	assert_int_equal(m("\"80\" in ServicePort", CATALOG), 0);
	assert_int_equal(m("\"80\" not in ServicePort", CATALOG), 1);
	/* a JSON Pointer selector */
	assert_int_equal(m("primary in \"/ServiceTags\"", CATALOG), 1);
	assert_int_equal(m("\"/ServiceMeta/version\" == \"1.2.3\"", CATALOG), 1);
	assert_int_equal(m("\"/a~1b/c~0d\" == x", "{\"a/b\":{\"c~d\":\"x\"}}"), 1);
}

static void test_empty(void **state)
{
	(void)state;
	assert_int_equal(m("ServiceAddress is empty", CATALOG), 1);
	assert_int_equal(m("ServiceAddress is not empty", CATALOG), 0);
	assert_int_equal(m("Address is not empty", CATALOG), 1);
	assert_int_equal(m("ServiceTags is not empty", CATALOG), 1);
	assert_int_equal(m("ServiceProxy is empty", CATALOG), 1);
	assert_int_equal(m("ServiceMeta is empty", CATALOG), 0);
	assert_int_equal(m("Service.Tags is empty", NO_CHECKS), 1);
	assert_int_equal(m("Checks is empty", NO_CHECKS), 1);
	assert_int_equal(m("Checks is not empty", HEALTH), 1);
	assert_int_equal(m("Nothing is empty", CATALOG), 1);        /* null is empty */
	assert_int_equal(m("ServicePort is empty", CATALOG), 0);    /* numbers are never empty */
	assert_int_equal(m("ServicePort is not empty", CATALOG), 1);
}

static void test_matches(void **state)
{
	(void)state;
	assert_int_equal(m("ServiceMeta.version matches \"^1\\\\.2\\\\.\"", CATALOG), 1);
	assert_int_equal(m("ServiceMeta.version matches `^1\\.2\\.`", CATALOG), 1);
	assert_int_equal(m("ServiceMeta.version matches `^1\\.3`", CATALOG), 0);
	assert_int_equal(m("ServiceMeta.version not matches `^1\\.3`", CATALOG), 1);
	assert_int_equal(m("ServiceID matches `^web-\\d+$`", CATALOG), 1);
	assert_int_equal(m("ServiceID matches `^web-\\D`", CATALOG), 0);
	assert_int_equal(m("ServiceID matches `^web-[\\d]$`", CATALOG), 1);
	assert_int_equal(m("ServiceID matches `^[\\w-]+$`", CATALOG), 1);
	assert_int_equal(m("ServiceName matches `(?i)^WEB$`", CATALOG), 1);
	assert_int_equal(m("ServiceName matches `^WEB$`", CATALOG), 0);
	assert_int_equal(m("ServiceName matches `web|api`", CATALOG), 1);
	assert_int_equal(m("ServiceName matches `^(?:web|api)$`", CATALOG), 1);
	assert_int_equal(m("ServiceName matches `^w.*?b$`", CATALOG), 1);   /* lazy: same match */
	assert_int_equal(m("ServiceName matches `^(w+)+eb$`", CATALOG), 1);
	assert_int_equal(m("Address matches `^10\\.0\\.0\\.[0-9]{1,3}$`", CATALOG), 1);
	/* only strings match */
	assert_int_equal(m("ServicePort matches `8080`", CATALOG), 0);
	assert_int_equal(m("ServicePort not matches `8080`", CATALOG), 1);
	/* a string with a NUL inside matches in full */
	assert_int_equal(m("S matches `b$`", "{\"S\":\"a\\u0000b\"}"), 1);
	assert_int_equal(m("S == \"a\\x00b\"", "{\"S\":\"a\\u0000b\"}"), 1);
}

static void test_missing(void **state)
{
	(void)state;
	/* A missing key holds nothing: only the negated forms and "is empty" hold. */
	assert_int_equal(m("ServiceMeta.missing == x", CATALOG), 0);
	assert_int_equal(m("ServiceMeta.missing != x", CATALOG), 1);
	assert_int_equal(m("x in ServiceMeta.missing", CATALOG), 0);
	assert_int_equal(m("x not in ServiceMeta.missing", CATALOG), 1);
	assert_int_equal(m("ServiceMeta.missing is empty", CATALOG), 1);
	assert_int_equal(m("ServiceMeta.missing is not empty", CATALOG), 0);
	assert_int_equal(m("ServiceMeta.missing matches `.`", CATALOG), 0);
	assert_int_equal(m("ServiceMeta.missing not matches `.`", CATALOG), 1);
	assert_int_equal(m("NoSuch.Deeper.Field == x", CATALOG), 0);
	assert_int_equal(m("ServicePort.Deeper == x", CATALOG), 0);
	assert_int_equal(m("ServicePort.Deeper != x", CATALOG), 1);
	assert_int_equal(m("Nothing.x == y", CATALOG), 0);
}

static void test_lists_of_objects(void **state)
{
	(void)state;
	/* The rest of the selector applies to each check; any one may match. */
	assert_int_equal(m("Checks.Status == critical", HEALTH), 1);
	assert_int_equal(m("Checks.Status == warning", HEALTH), 0);
	assert_int_equal(m("Checks.Status != passing", HEALTH), 1);   /* one is not passing */
	assert_int_equal(m("not Checks.Status != passing", HEALTH), 0);
	assert_int_equal(m("Checks.CheckID == serfHealth", HEALTH), 1);
	assert_int_equal(m("secondary in Checks.ServiceTags", HEALTH), 1);
	assert_int_equal(m("Checks.ServiceTags is empty", HEALTH), 1);  /* serfHealth's */
	assert_int_equal(m("Checks.Name matches `^web`", HEALTH), 1);
	/* an empty list matches nothing, negated or not */
	assert_int_equal(m("Checks.Status == passing", NO_CHECKS), 0);
	assert_int_equal(m("Checks.Status != passing", NO_CHECKS), 0);
	/* an index picks one element */
	assert_int_equal(m("Checks.0.Status == passing", HEALTH), 1);
	assert_int_equal(m("Checks.1.Status == passing", HEALTH), 0);
	assert_int_equal(m("Checks.7.Status == passing", HEALTH), 0);
	assert_int_equal(m("Checks.7.Status is empty", HEALTH), 1);
	/* nested objects */
	assert_int_equal(m("Node.Meta.rack == r2", HEALTH), 1);
	assert_int_equal(m("Service.TaggedAddresses.lan.Port == 8081", HEALTH), 1);
	assert_int_equal(m("Service.Meta.version == \"1.3.0\"", HEALTH), 1);
}

static void test_logic_and_precedence(void **state)
{
	(void)state;
	assert_int_equal(m("ServiceName == web and ServicePort == 8080", CATALOG), 1);
	assert_int_equal(m("ServiceName == web and ServicePort == 1", CATALOG), 0);
	assert_int_equal(m("ServiceName == api or ServicePort == 8080", CATALOG), 1);
	assert_int_equal(m("ServiceName == api or ServicePort == 1", CATALOG), 0);
	assert_int_equal(m("not ServiceName == api", CATALOG), 1);
	assert_int_equal(m("not not ServiceName == web", CATALOG), 1);
	assert_int_equal(m("not not not ServiceName == web", CATALOG), 0);
	/* and binds tighter than or: true or (false and false) */
	assert_int_equal(m("ServiceName == web or ServiceName == api and ServicePort == 1", CATALOG), 1);
	/* (true or false) and false */
	assert_int_equal(m("(ServiceName == web or ServiceName == api) and ServicePort == 1", CATALOG), 0);
	/* not binds tighter than and: (not true) and true */
	assert_int_equal(m("not ServiceName == web and ServicePort == 8080", CATALOG), 0);
	assert_int_equal(m("not (ServiceName == web and ServicePort == 1)", CATALOG), 1);
	/* false and not false or true == ((false and (not false)) or true) */
	assert_int_equal(m("ServicePort == 1 and not ServicePort == 2 or ServiceName == web", CATALOG), 1);
	assert_int_equal(m("((((ServiceName == web))))", CATALOG), 1);
	assert_int_equal(m("(ServiceName == web)and(ServicePort == 8080)", CATALOG), 1);
	assert_int_equal(m("not(ServiceName == api)", CATALOG), 1);
	assert_int_equal(m("ServiceName == a or ServiceName == b or ServiceName == c or ServiceName == web",
			   CATALOG), 1);
	/* keywords only stand alone: these are selectors */
	assert_int_equal(m("notes == x", "{\"notes\":\"x\"}"), 1);
	assert_int_equal(m("order == x and android == y", "{\"order\":\"x\",\"android\":\"y\"}"), 1);
	assert_int_equal(m("Status == passing", "{\"Status\":\"passing\"}"), 1);
	/* the value "or" is text, a word is a value */
	assert_int_equal(m("Word == or", "{\"Word\":\"or\"}"), 1);
	assert_int_equal(m("A.B == c.d", "{\"A\":{\"B\":\"c.d\"}}"), 1);
}

static void test_strings(void **state)
{
	(void)state;
	assert_int_equal(m("S == \"a\\\"b\"", "{\"S\":\"a\\\"b\"}"), 1);
	assert_int_equal(m("S == \"tab\\there\"", "{\"S\":\"tab\\there\"}"), 1);
	assert_int_equal(m("S == \"\\u00e9t\\u00E9\"", "{\"S\":\"\\u00e9t\\u00e9\"}"), 1);
	assert_int_equal(m("S == \"\\U0001F600\"", "{\"S\":\"\\ud83d\\ude00\"}"), 1);
	assert_int_equal(m("S == \"\\x41\\102\"", "{\"S\":\"AB\"}"), 1);
	assert_int_equal(m("S == \"back\\\\slash\"", "{\"S\":\"back\\\\slash\"}"), 1);
	assert_int_equal(m("S == `raw \\n \"q\"`", "{\"S\":\"raw \\\\n \\\"q\\\"\"}"), 1);
	assert_int_equal(m("S == \"\"", "{\"S\":\"\"}"), 1);
	assert_int_equal(m("S == \"caf\xc3\xa9\"", "{\"S\":\"caf\\u00e9\"}"), 1);
}

static void test_errors(void **state)
{
	(void)state;
	bad("ServicePort ==", "position 15: expected a value after \"==\", found end of expression");
	bad("ServicePort == )", "position 16: expected a value after \"==\"");
	bad("ServicePort != ", "expected a value after \"!=\"");
	bad("ServiceName contains", "expected a value after \"contains\"");
	bad("ServiceName not contains", "expected a value after \"not contains\"");
	bad("ServiceName", "position 12: expected an operator");
	bad("ServiceName = web", "position 13: expected an operator");
	bad("ServiceName equals web", "found \"equals\"");
	bad("ServiceName is", "expected \"empty\" after \"is\"");
	bad("ServiceName is not full", "position 20: expected \"empty\" after \"is not\"");
	bad("ServiceName not web", "expected \"contains\" or \"matches\" after \"not\"");
	bad("x in", "expected a selector after \"in\"");
	bad("x not in 5", "expected a selector after \"not in\"");
	bad("\"x\" in \"notapointer\"", "expected a selector after \"in\"");
	bad("\"x\"", "expected \"in\" or \"not in\" after a value");
	bad("5 == ServicePort", "expected \"in\" or \"not in\" after a value");
	bad("\"web\" == ServiceName", "a quoted selector must be a JSON Pointer");
	bad("", "position 1: expected an expression");
	bad("   ", "position 4: expected an expression");
	bad("== web", "position 1: expected a selector, a value or \"(\"");
	bad("(ServiceName == web", "position 20: expected \")\" to close the \"(\" at position 1");
	bad("ServiceName == web)", "position 19: unexpected \")\" with no \"(\"");
	bad("()", "position 2: unexpected \")\"");
	bad("ServiceName == web and", "position 23: expected an expression");
	bad("ServiceName == web or", "expected an expression");
	bad("ServiceName == web ServicePort == 1", "position 20: expected \"and\", \"or\" or the end");
	bad("not", "expected an expression");
	bad("ServiceName == \"web", "position 16: unterminated string");
	bad("ServiceName == `web", "unterminated string");
	bad("ServiceName == \"a\\qb\"", "position 18: invalid escape \"\\\\q\"");
	bad("S == \"\\x4\"", "invalid escape");
	bad("S == \"\\u12\"", "invalid escape");
	bad("S == \"\\uD800\"", "invalid escape");
	bad("S == \"\\U00110000\"", "invalid escape");
	bad("S == \"\\400\"", "invalid escape");
	bad("S == \"\\'\"", "invalid escape");
	bad("ServicePort == 1.2.3", "position 16: invalid number \"1.2.3\"");
	bad("ServicePort == 12abc", "invalid number");
	bad("ServicePort == 01", "invalid number");
	bad("ServicePort == 0x1f90", "invalid number \"0x1f90\" (quote it if it is text)");
	bad("ServicePort == -", "invalid number");
	bad("Meta. == x", "position 6: expected a name after \".\"");
	bad("Meta[version] == x", "expected a quoted key after \"[\"");
	bad("Meta[\"version\" == x", "expected \"]\" to close the \"[\" at position 5");
	bad("Name matches \"(\"", "position 14: invalid regular expression \"(\"");
	bad("Name matches `a[`", "invalid regular expression");
	bad("Name matches `(a)\\1`", "back-references are not supported");
	bad("Name matches `((a{1000}){1000})`", "too complex");
	bad("Name matches `a{2000}`", "too complex");
	bad("Name matches `[\\-]`", "not supported inside [ ]");
	bad("Name matches `a**`", "a repetition operator cannot follow another");
	bad("Name matches `(a{2}){3}+`", "a repetition operator cannot follow another");
	/* glibc copies a group for each "+": nested ones double it each time. */
	bad("Name matches `((((((((((((((((x+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+`", "too complex");
	bad("Name matches `(?<name>x)`", "invalid regular expression");
	/* An expression's patterns share one budget (each alone would pass). */
	bad("Name matches `(a{60}){80}` or Name matches `(b{60}){80}` or Name matches `(c{60}){80}`",
	    "position 74: invalid regular expression \"(c{60}){80}\": too complex (with the patterns before it");
	bad("S == x and \x01", "found \"\\x01\"");
	bad("S == x and \xff\xfe", "found \"\\xff\\xfe\"");
}

static void test_limits(void **state)
{
	char *long_expr, *deep;
	size_t n;

	(void)state;
	/* Length. */
	n = FILTER_MAX_LEN + 1;
	long_expr = malloc(n + 1);
	memset(long_expr, ' ', n);
	memcpy(long_expr, "S == x", 6);
	long_expr[n] = '\0';
	bad(long_expr, "longer than 8192 bytes");
	long_expr[n - 1] = '\0';
	assert_int_equal(m(long_expr, "{\"S\":\"x\"}"), 1);
	free(long_expr);

	/* Nesting: 32 levels pass, 33 do not; "not" counts as a level too. */
	deep = malloc(200);
	n = 0;
	for (int i = 0; i < 32; i++)
		deep[n++] = '(';
	memcpy(deep + n, "S==x", 4);
	n += 4;
	for (int i = 0; i < 32; i++)
		deep[n++] = ')';
	deep[n] = '\0';
	assert_int_equal(m(deep, "{\"S\":\"x\"}"), 1);
	memmove(deep + 1, deep, n + 1);
	deep[0] = '(';
	strcat(deep, ")");
	bad(deep, "nests deeper than 32 levels");
	free(deep);

	deep = malloc(33 * 4 + 8);
	deep[0] = '\0';
	for (int i = 0; i < 33; i++)
		strcat(deep, "not ");
	strcat(deep, "S==x");
	bad(deep, "nests deeper than 32 levels");
	free(deep);

	/* Thousands of "or" make a flat node, not a deep one. */
	long_expr = malloc(FILTER_MAX_LEN + 1);
	long_expr[0] = '\0';
	while (strlen(long_expr) + 16 < FILTER_MAX_LEN)
		strcat(long_expr, "S==a or ");
	strcat(long_expr, "S==x");
	assert_int_equal(m(long_expr, "{\"S\":\"x\"}"), 1);
	assert_int_equal(m(long_expr, "{\"S\":\"y\"}"), 0);
	free(long_expr);

	bad("A.B.C.D.E.F.G.H.I.J.K.L.M.N.O.P.Q.R.S.T.U.V.W.X.Y.Z.a.b.c.d.e.f.g == x",
	    "more than 32 parts");

	/* A regular expression has at most 1024 bytes; the message shows its start. */
	long_expr = malloc(1200);
	strcpy(long_expr, "Name matches `");
	memset(long_expr + 14, 'a', 1100);
	strcpy(long_expr + 1114, "`");
	bad(long_expr, "position 14: invalid regular expression \"aaaa");
	bad(long_expr, "...\": longer than 1024 bytes");
	free(long_expr);
}

static void test_null_and_free(void **state)
{
	(void)state;
	filter_free(NULL);
	assert_int_equal(filter_match(NULL, NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equality),
		cmocka_unit_test(test_numbers_and_bools),
		cmocka_unit_test(test_in_contains),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_lists_of_objects),
		cmocka_unit_test(test_logic_and_precedence),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_null_and_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
