/* Agent-format decoding, output truncation and the metrics JSON converter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "err.h"
#include "metrics.h"

static struct agent_service_reg *decode(const char *text, char **err)
{
	json_t *doc = json_loads(text, 0, NULL);
	struct agent_service_reg *r = NULL;

	assert_non_null(doc);
	*err = NULL;
	if (agent_decode_service(doc, "n1", "127.0.0.1", &r, err) != WEFT_OK)
		r = NULL;
	json_decref(doc);
	return r;
}

static void test_service_defaults(void **state)
{
	char *err;
	struct agent_service_reg *r = decode(
		"{\"name\":\"web\",\"port\":80,\"Checks\":[{\"TTL\":\"10s\"},"
		"{\"HTTP\":\"http://a/\",\"Interval\":\"5s\",\"Timeout\":\"1500ms\"}]}", &err);

	(void)state;
	assert_non_null(r);
	assert_string_equal(r->reg.svc.name, "web");
	assert_string_equal(r->reg.svc.id, "web");
	assert_int_equal(r->reg.svc.port, 80);
	assert_string_equal(r->reg.node, "n1");
	assert_int_equal(r->reg.nchecks, 2);
	assert_string_equal(r->reg.checks[0].id, "service:web:1");
	assert_string_equal(r->reg.checks[0].type, "ttl");
	assert_int_equal(r->reg.checks[0].ttl_ms, 10000);
	assert_string_equal(r->reg.checks[0].name, "Service 'web' check");
	assert_string_equal(r->reg.checks[0].service_id, "web");
	assert_string_equal(r->reg.checks[1].id, "service:web:2");
	assert_string_equal(r->reg.checks[1].type, "http");
	assert_string_equal(json_string_value(json_object_get(r->reg.checks[1].definition, "Timeout")),
			    "1.5s");
	agent_service_reg_free(r);
}

static void test_service_errors_name_the_field(void **state)
{
	static const struct { const char *body, *prefix; } cases[] = {
		{ "{\"Port\":1}", "Name: " },
		{ "{\"Name\":\"a b\"}", "Name: " },
		{ "{\"Name\":\"a\",\"Port\":-1}", "Port: " },
		{ "{\"Name\":\"a\",\"Kind\":\"x\"}", "Kind: " },
		{ "{\"Name\":\"a\",\"Weights\":{\"Passing\":0}}", "Weights.Passing: " },
		{ "{\"Name\":\"a\",\"Checks\":[{\"TTL\":\"1s\"},{\"TCP\":\"h:1\"}]}", "Checks[1].Interval: " },
		{ "{\"Name\":\"a\",\"Check\":{\"Script\":\"/bin/true\",\"Interval\":\"1s\"}}", "Check.Script: " },
		{ "{\"Name\":\"a\",\"Check\":{\"Header\":{\"X\":\"y\"},\"HTTP\":\"u\",\"Interval\":\"1s\"}}",
		  "Check.Header.X: " },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err;
		struct agent_service_reg *r = decode(cases[i].body, &err);
		assert_null(r);
		assert_non_null(err);
		if (strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) != 0)
			fail_msg("%s: got \"%s\", want a message starting \"%s\"", cases[i].body, err,
				 cases[i].prefix);
		free(err);
	}
}

static void test_check_register_ids(void **state)
{
	json_t *doc = json_loads("{\"name\":\"Mem\",\"id\":\"mem\",\"ttl\":\"30s\",\"serviceid\":\"s1\"}",
				 0, NULL);
	struct agent_check_reg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(agent_decode_check(doc, "n1", &c, &err), WEFT_OK);
	assert_string_equal(c->check.id, "mem");
	assert_string_equal(c->check.name, "Mem");
	assert_string_equal(c->check.service_id, "s1");
	assert_string_equal(c->check.status, "");
	agent_check_reg_free(c);
	json_decref(doc);
}

static void test_output_dup(void **state)
{
	char *big = malloc(3 * 2000 + 1), *out;
	json_t *j;

	(void)state;
	for (int i = 0; i < 2000; i++)
		memcpy(big + 3 * i, "\xe2\x82\xac", 3);   /* the euro sign: 3 bytes */
	big[6000] = '\0';
	out = agent_output_dup(big);
	assert_non_null(out);
	assert_int_equal(strlen(out), 4095);   /* 1365 whole characters */
	j = json_string(out);   /* valid UTF-8 */
	assert_non_null(j);
	json_decref(j);
	free(out);
	free(big);
	assert_null(agent_output_dup("bad \xff byte"));
	out = agent_output_dup("short");
	assert_string_equal(out, "short");
	free(out);
}

static void test_metrics_json(void **state)
{
	const char *text =
		"# HELP g A gauge.\n# TYPE g gauge\ng{a=\"x\\\"y\"} 2.5\n"
		"# TYPE c_total counter\nc_total 7\n"
		"# TYPE h histogram\nh_bucket{k=\"v\",le=\"1\"} 1\nh_bucket{k=\"v\",le=\"+Inf\"} 4\n"
		"h_sum{k=\"v\"} 6\nh_count{k=\"v\"} 4\n";
	char *err = NULL;
	json_t *j = metrics_json(text, 0, &err), *g, *c, *s;

	(void)state;
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "Timestamp")),
			    "1970-01-01 00:00:00 +0000 UTC");
	g = json_array_get(json_object_get(j, "Gauges"), 0);
	assert_string_equal(json_string_value(json_object_get(g, "Name")), "g");
	assert_true(json_real_value(json_object_get(g, "Value")) == 2.5);
	assert_string_equal(json_string_value(json_object_get(json_object_get(g, "Labels"), "a")),
			    "x\"y");
	c = json_array_get(json_object_get(j, "Counters"), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "Count")), 7);
	assert_int_equal(json_array_size(json_object_get(j, "Samples")), 1);
	s = json_array_get(json_object_get(j, "Samples"), 0);
	assert_string_equal(json_string_value(json_object_get(s, "Name")), "h");
	assert_int_equal(json_integer_value(json_object_get(s, "Count")), 4);
	assert_true(json_real_value(json_object_get(s, "Mean")) == 1.5);
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "Labels"), "k")), "v");
	json_decref(j);

	assert_null(metrics_json("# TYPE g gauge\ng{a=\"unterminated} 1\n", 0, &err));
	assert_non_null(strstr(err, "metrics: "));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_defaults),
		cmocka_unit_test(test_service_errors_name_the_field),
		cmocka_unit_test(test_check_register_ids),
		cmocka_unit_test(test_output_dup),
		cmocka_unit_test(test_metrics_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
