/* Request decoding: field errors name the field; durations; catalog
 * registration validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "duration.h"
#include "err.h"
#include "jsonx.h"

static json_t *parse(const char *s)
{
	char *err = NULL;
	json_t *v = jx_parse(s, strlen(s), &err);

	if (v == NULL)
		fail_msg("parse: %s", err);
	return v;
}

static void test_fields_case_insensitive(void **state)
{
	json_t *o = parse("{\"node\":\"n1\",\"PORT\":5}");
	const char *s = NULL;
	long long n = 0;

	(void)state;
	assert_int_equal(jx_str(o, NULL, "Node", &s, 10, NULL), WEFT_OK);
	assert_string_equal(s, "n1");
	assert_int_equal(jx_int(o, NULL, "Port", &n, 0, 10, NULL), WEFT_OK);
	assert_int_equal(n, 5);
	json_decref(o);
}

static void test_errors_name_the_field(void **state)
{
	json_t *o = parse("{\"Port\":\"80\",\"Tags\":[\"a\",1],\"Meta\":{\"k\":2},\"Name\":\"xxxxxxxxxxx\"}");
	char *err = NULL;
	long long n;
	json_t *arr;
	const char *s;

	(void)state;
	assert_int_equal(jx_int(o, "Service", "Port", &n, 0, 65535, &err), WEFT_EINVAL);
	assert_string_equal(err, "Service.Port: must be an integer");
	assert_int_equal(jx_str_array(o, "Service", "Tags", &arr, 100, &err), WEFT_EINVAL);
	assert_string_equal(err, "Service.Tags[1]: must be a string");
	assert_int_equal(jx_str_map(o, NULL, "Meta", &arr, 100, &err), WEFT_EINVAL);
	assert_string_equal(err, "Meta.k: must be a string");
	assert_int_equal(jx_str(o, NULL, "Name", &s, 5, &err), WEFT_EINVAL);
	assert_string_equal(err, "Name: longer than 5 bytes");
	assert_int_equal(jx_req_str(o, NULL, "Missing", &s, 5, &err), WEFT_EINVAL);
	assert_string_equal(err, "Missing: is required");
	free(err);
	json_decref(o);
}

static void test_int_range(void **state)
{
	json_t *o = parse("{\"Port\":70000,\"F\":1.5}");
	char *err = NULL;
	long long n = 0;

	(void)state;
	assert_int_equal(jx_int(o, NULL, "Port", &n, 0, 65535, &err), WEFT_EINVAL);
	assert_string_equal(err, "Port: 70000 is out of range [0, 65535]");
	assert_int_equal(jx_int(o, NULL, "F", &n, 0, 10, &err), WEFT_EINVAL);
	free(err);
	json_decref(o);
}

static void test_parse_error_says_where(void **state)
{
	char *err = NULL;

	(void)state;
	assert_null(jx_parse("{\n \"a\": }", 9, &err));
	assert_non_null(strstr(err, "line 2"));
	assert_null(jx_parse("{\"a\":1,\"a\":2}", 13, &err));   /* duplicate keys are refused */
	free(err);
}

static void test_durations(void **state)
{
	long long ms = -1;
	char out[32];

	(void)state;
	assert_int_equal(duration_parse_ms("10s", &ms), 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(duration_parse_ms("1m30s", &ms), 0);
	assert_int_equal(ms, 90000);
	assert_int_equal(duration_parse_ms("1.5h", &ms), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(duration_parse_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(duration_parse_ms("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(duration_parse_ms("10", &ms), -1);
	assert_int_equal(duration_parse_ms("s", &ms), -1);
	assert_int_equal(duration_parse_ms("10x", &ms), -1);
	assert_int_equal(duration_parse_ms("", &ms), -1);
	assert_int_equal(duration_parse_ms("99999999999999999h", &ms), -1);
	duration_format(15000, out, sizeof(out));
	assert_string_equal(out, "15s");
	duration_format(90000, out, sizeof(out));
	assert_string_equal(out, "1m30s");
}

static int decode(const char *json, char **err)
{
	struct cat_register reg;
	json_t *doc = parse(json);
	int rc = catalog_decode_register(doc, "dc1", &reg, err);

	json_decref(doc);
	free(reg.checks);
	json_decref(reg.doc);
	return rc;
}

static void test_register_validation(void **state)
{
	char *err = NULL;

	(void)state;
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"1.2.3.4\",\"Service\":{\"Service\":\"web\"}}", &err), WEFT_OK);
	assert_int_equal(decode("{\"Address\":\"1.2.3.4\"}", &err), WEFT_EINVAL);
	assert_string_equal(err, "Node: is required");
	assert_int_equal(decode("{\"Node\":\"n1\"}", &err), WEFT_EINVAL);
	assert_string_equal(err, "Address: is required");
	assert_int_equal(decode("{\"Node\":\"bad name\",\"Address\":\"a\"}", &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Node: \"bad name\" is not a valid node name"));
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Service\":{\"Port\":1}}", &err), WEFT_EINVAL);
	assert_string_equal(err, "Service.Service: is required");
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Service\":{\"Service\":\"w\",\"Port\":-1}}", &err), WEFT_EINVAL);
	assert_string_equal(err, "Service.Port: -1 is out of range [0, 65535]");
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Datacenter\":\"dc9\"}", &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Datacenter: \"dc9\""));
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Check\":{\"Name\":\"c\",\"Status\":\"fine\"}}", &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Check.Status: \"fine\""));
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Checks\":[{\"Name\":\"c\"},{\"Status\":\"passing\"}]}", &err), WEFT_EINVAL);
	assert_string_equal(err, "Checks[1].Name: is required (or CheckID)");
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Check\":{\"Name\":\"c\",\"Node\":\"n2\"}}", &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Check.Node"));
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Service\":{\"Service\":\"w\",\"Kind\":\"bogus\"}}", &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Service.Kind"));
	assert_int_equal(decode("{\"Node\":\"n1\",\"Address\":\"a\",\"Service\":{\"Service\":\"w\",\"TaggedAddresses\":{\"lan\":{\"Port\":\"x\"}}}}", &err), WEFT_EINVAL);
	assert_string_equal(err, "Service.TaggedAddresses.lan.Port: must be an integer");
	assert_int_equal(decode("[1,2]", &err), WEFT_EINVAL);
	assert_string_equal(err, "body: must be a JSON object");
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_case_insensitive),
		cmocka_unit_test(test_errors_name_the_field),
		cmocka_unit_test(test_int_range),
		cmocka_unit_test(test_parse_error_says_where),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_register_validation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
