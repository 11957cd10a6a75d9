/* weftctl's flag parsing, input files and their error messages, and the
 * address parsing of lib/httpc. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "err.h"
#include "httpc.h"
#include "input.h"

/* ---- flags ---- */

struct flags {
	int recurse, shell;
	const char *node;
	long long port, ttl;
	struct arg_list tags;
};

static int parse(struct flags *f, int stop, int argc, char **argv, const char ***pos,
		 int *npos, char **err)
{
	const struct arg_opt opts[] = {
		{ "recurse", ARG_BOOL, &f->recurse, NULL, "", 0, 0 },
		{ "shell", ARG_BOOL, &f->shell, NULL, "", 0, 0 },
		{ "node", ARG_STR, &f->node, "NAME", "", 0, 0 },
		{ "port", ARG_INT, &f->port, "PORT", "", 1, 65535 },
		{ "ttl", ARG_DURATION, &f->ttl, "DURATION", "", 0, 0 },
		{ "tag", ARG_LIST, &f->tags, "TAG", "", 0, 0 },
		{ 0 },
	};
	const struct arg_opt *tables[] = { opts, NULL };

	return args_parse(tables, argc, argv, stop, pos, npos, err);
}

static void test_flag_spellings(void **state)
{
	char *argv[] = { "-node", "n1", "--port=8080", "KEY", "--recurse", "-shell=false",
			 "-tag", "a", "--tag", "b", "-ttl", "1h30m", "VALUE" };
	struct flags f = { .shell = 1, .port = -1 };
	const char **pos = NULL;
	char *err = NULL;
	int npos = 0;

	assert_int_equal(parse(&f, 0, 13, argv, &pos, &npos, &err), WEFT_OK);
	assert_string_equal(f.node, "n1");
	assert_int_equal(f.port, 8080);
	assert_int_equal(f.recurse, 1);
	assert_int_equal(f.shell, 0);
	assert_int_equal(f.ttl, 90LL * 60 * 1000);
	assert_int_equal(f.tags.n, 2);
	assert_string_equal(f.tags.v[0], "a");
	assert_string_equal(f.tags.v[1], "b");
	/* Flags may sit between and after the positional arguments. */
	assert_int_equal(npos, 2);
	assert_string_equal(pos[0], "KEY");
	assert_string_equal(pos[1], "VALUE");
	free(pos);
	args_list_free(&f.tags);
}

static void test_stop_at_positional(void **state)
{
	/* weftctl lock: everything after PREFIX is the child's command line. */
	char *argv[] = { "-recurse", "locks/a", "ls", "-port", "x", "--", "-l" };
	struct flags f = { 0 };
	const char **pos = NULL;
	char *err = NULL;
	int npos = 0;

	assert_int_equal(parse(&f, 1, 7, argv, &pos, &npos, &err), WEFT_OK);
	assert_int_equal(f.recurse, 1);
	assert_int_equal(npos, 6);
	assert_string_equal(pos[0], "locks/a");
	assert_string_equal(pos[2], "-port");
	assert_string_equal(pos[4], "--");
	free(pos);
}

static void test_double_dash_and_stdin(void **state)
{
	char *argv[] = { "key", "-", "--", "-5" };
	struct flags f = { 0 };
	const char **pos = NULL;
	char *err = NULL;
	int npos = 0;

	assert_int_equal(parse(&f, 0, 4, argv, &pos, &npos, &err), WEFT_OK);
	assert_int_equal(npos, 3);
	assert_string_equal(pos[1], "-");
	assert_string_equal(pos[2], "-5");
	free(pos);
}

static void expect_error(int argc, char **argv, const char *msg)
{
	struct flags f = { 0 };
	const char **pos = NULL;
	char *err = NULL;
	int npos = 0;

	assert_int_equal(parse(&f, 0, argc, argv, &pos, &npos, &err), WEFT_EINVAL);
	assert_null(pos);
	assert_non_null(err);
	assert_string_equal(err, msg);
	free(err);
	args_list_free(&f.tags);
}

static void test_flag_errors(void **state)
{
	char *a1[] = { "-nope" };
	char *a2[] = { "--nope=1" };
	char *a3[] = { "-node" };
	char *a4[] = { "-port", "http" };
	char *a5[] = { "-port", "70000" };
	char *a6[] = { "-ttl", "10" };
	char *a7[] = { "-recurse=maybe" };
	char *a8[] = { "-port=" };

	expect_error(1, a1, "unknown flag -nope");
	expect_error(1, a2, "unknown flag -nope");
	expect_error(1, a3, "flag -node needs a value (-node NAME)");
	expect_error(2, a4, "flag -port: \"http\" is not an integer");
	expect_error(2, a5, "flag -port: 70000 is out of range [1, 65535]");
	expect_error(2, a6, "flag -ttl: \"10\" is not a duration (use a number with a unit: 500ms, 10s, 5m, 1h)");
	expect_error(1, a7, "flag -recurse: \"maybe\" is not true or false");
	expect_error(1, a8, "flag -port: \"\" is not an integer");
}

static void test_help(void **state)
{
	char *a1[] = { "KEY", "-h" };
	char *a2[] = { "--help" };
	struct flags f = { 0 };
	const char **pos = NULL;
	char *err = NULL;
	int npos = 0;

	assert_int_equal(parse(&f, 0, 2, a1, &pos, &npos, &err), ARGS_HELP);
	assert_int_equal(parse(&f, 0, 1, a2, &pos, &npos, &err), ARGS_HELP);
	assert_null(pos);
}

/* ---- input files ---- */

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/weftctl-test-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void expect_file_error(const char *text, const char *suffix)
{
	char *path = write_tmp(text), *err = NULL, want[512];
	json_t *doc = input_registration_file(path, &err);

	assert_null(doc);
	assert_non_null(err);
	snprintf(want, sizeof(want), "%s%s", path, suffix);
	assert_string_equal(err, want);
	free(err);
	unlink(path);
	free(path);
}

static void test_json_syntax_error_has_line_and_column(void **state)
{
	/* A trailing comma on line 3. */
	expect_file_error("{\n  \"Node\": \"web-1\",\n  \"Address\": \"10.0.0.1\",\n}\n",
			  ":4:1: string or '}' expected near '}'");
	expect_file_error("{\"Node\": \"a\", \"Node\": \"b\", \"Address\": \"x\"}",
			  ":1:20: duplicate object key near '\"Node\"'");
	expect_file_error("", ":1:0: '[' or '{' expected near end of file");
}

static void test_registration_missing_fields(void **state)
{
	expect_file_error("{\"Address\": \"10.0.0.1\"}", ": Node: is required");
	expect_file_error("{\"Node\": \"n\"}", ": Address: is required");
	expect_file_error("{\"Node\": \"n\", \"Address\": \"a\", \"Service\": {\"Port\": 80}}",
			  ": Service.Service: is required");
	expect_file_error("{\"Node\": \"n\", \"Address\": \"a\", \"Service\": {\"Service\": \"s\", \"Port\": 70000}}",
			  ": Service.Port: 70000 is out of range [0, 65535]");
	expect_file_error("{\"Node\": \"n\", \"Address\": \"a\", \"Service\": {\"Service\": \"s\", \"Tags\": [1]}}",
			  ": Service.Tags[0]: must be a string");
	expect_file_error("[1, 2]",
			  ": expected a JSON object with Node and Address (a catalog registration)");
}

static void test_registration_file_ok(void **state)
{
	char *path = write_tmp("{\"Node\": \"n\", \"Address\": \"a\", \"Service\": "
			       "{\"Service\": \"web\", \"Port\": 80, \"Tags\": [\"v1\"]}}");
	char *err = NULL;
	json_t *doc = input_registration_file(path, &err);

	assert_non_null(doc);
	assert_null(err);
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "Service"), "Service")), "web");
	json_decref(doc);
	unlink(path);
	free(path);
}

static void test_missing_file(void **state)
{
	char *err = NULL;

	assert_null(input_registration_file("/nonexistent/reg.json", &err));
	assert_string_equal(err, "/nonexistent/reg.json: No such file or directory");
	free(err);
}

static void test_registration_flags(void **state)
{
	const char *tags[] = { "v1", "primary" };
	const char *meta[] = { "version=1.2", "team=a=b" };
	struct reg_flags f = { .node = "web-1", .address = "10.0.0.5", .service = "web",
			       .port = 8080, .tags = { tags, 2 }, .meta = { meta, 2 } };
	char *err = NULL, *text;
	json_t *doc = input_registration_flags(&f, &err);

	assert_non_null(doc);
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text,
			    "{\"Address\":\"10.0.0.5\",\"Node\":\"web-1\",\"Service\":{\"Meta\":"
			    "{\"team\":\"a=b\",\"version\":\"1.2\"},\"Port\":8080,\"Service\":\"web\","
			    "\"Tags\":[\"v1\",\"primary\"]}}");
	free(text);
	json_decref(doc);
}

static void test_registration_flags_errors(void **state)
{
	const char *meta[] = { "novalue" };
	struct reg_flags f1 = { .address = "a", .port = -1 };
	struct reg_flags f2 = { .node = "n", .port = -1 };
	struct reg_flags f3 = { .node = "n", .address = "a", .port = 80 };
	struct reg_flags f4 = { .node = "n", .address = "a", .service = "s", .port = -1,
				.meta = { meta, 1 } };
	char *err = NULL;

	assert_null(input_registration_flags(&f1, &err));
	assert_string_equal(err, "-node is required (or -file FILE)");
	assert_null(input_registration_flags(&f2, &err));
	assert_string_equal(err, "-address is required with -node");
	assert_null(input_registration_flags(&f3, &err));
	assert_string_equal(err, "-service is required with -service-id, -service-address, -port, -tag and -meta");
	assert_null(input_registration_flags(&f4, &err));
	assert_string_equal(err, "-meta \"novalue\": expected KEY=VALUE");
	free(err);
}

static void test_value_sources(void **state)
{
	char *path = write_tmp("from\0file"), at[300], *data = NULL, *err = NULL;
	FILE *in = tmpfile();
	size_t len = 0;

	assert_int_equal(input_value("plain", stdin, &data, &len, &err), WEFT_OK);
	assert_string_equal(data, "plain");
	free(data);
	snprintf(at, sizeof(at), "@%s", path);
	assert_int_equal(input_value(at, stdin, &data, &len, &err), WEFT_OK);
	assert_int_equal(len, 4);   /* write_tmp stops at the NUL */
	assert_memory_equal(data, "from", 4);
	free(data);
	fputs("line1\nline2\n", in);
	rewind(in);
	assert_int_equal(input_value("-", in, &data, &len, &err), WEFT_OK);
	assert_int_equal(len, 12);
	assert_string_equal(data, "line1\nline2\n");
	free(data);
	assert_int_equal(input_value("@/nonexistent/v.txt", stdin, &data, &len, &err), WEFT_EIO);
	assert_string_equal(err, "/nonexistent/v.txt: No such file or directory");
	free(err);
	fclose(in);
	unlink(path);
	free(path);
}

static void test_token_body(void **state)
{
	char *err = NULL, *text;
	json_t *doc;

	doc = input_token_body("service", "web", NULL, "for web", 3600000, &err);
	assert_non_null(doc);
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"Description\":\"for web\",\"ExpirationTTL\":\"1h0m0s\","
			    "\"Kind\":\"service\",\"ServiceIdentities\":[{\"ServiceName\":\"web\"}]}");
	free(text);
	json_decref(doc);
	doc = input_token_body("agent", NULL, "node-1", NULL, 0, &err);
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"Kind\":\"agent\",\"NodeIdentities\":[{\"NodeName\":\"node-1\"}]}");
	free(text);
	json_decref(doc);

	assert_null(input_token_body(NULL, NULL, NULL, NULL, 0, &err));
	assert_string_equal(err, "-kind is required: admin, operator, agent, service or read-only");
	assert_null(input_token_body("root", NULL, NULL, NULL, 0, &err));
	assert_string_equal(err, "-kind \"root\": expected admin, operator, agent, service or read-only");
	assert_null(input_token_body("service", NULL, NULL, NULL, 0, &err));
	assert_string_equal(err, "-kind service needs -service NAME");
	assert_null(input_token_body("agent", NULL, NULL, NULL, 0, &err));
	assert_string_equal(err, "-kind agent needs -node NAME");
	assert_null(input_token_body("admin", "web", NULL, NULL, 0, &err));
	assert_string_equal(err, "-service is only for -kind service");
	free(err);
}

/* ---- httpc addresses ---- */

static void expect_addr(const char *in, const char *url, const char *display)
{
	char *u = NULL, *d = NULL, *err = NULL;

	assert_int_equal(httpc_parse_address(in, &u, &d, &err), WEFT_OK);
	assert_string_equal(u, url);
	assert_string_equal(d, display);
	free(u);
	free(d);
}

static void expect_bad_addr(const char *in, const char *msg)
{
	char *u = NULL, *d = NULL, *err = NULL;

	assert_int_equal(httpc_parse_address(in, &u, &d, &err), WEFT_EINVAL);
	assert_null(u);
	assert_string_equal(err, msg);
	free(err);
}

static void test_addresses(void **state)
{
	expect_addr("127.0.0.1:8500", "http://127.0.0.1:8500", "127.0.0.1:8500");
	expect_addr("localhost", "http://localhost:8500", "localhost:8500");
	expect_addr("http://10.0.0.1:9000/", "http://10.0.0.1:9000", "10.0.0.1:9000");
	expect_addr("https://weft.example:8501", "https://weft.example:8501",
		    "https://weft.example:8501");
	expect_addr("HTTPS://h", "https://h:443", "https://h:443");
	expect_addr("[::1]:8500", "http://[::1]:8500", "[::1]:8500");
	expect_bad_addr("", "address: empty (use HOST:PORT)");
	expect_bad_addr("ftp://h:1", "address \"ftp://h:1\": only http:// and https:// are supported");
	expect_bad_addr("h:0", "address \"h:0\": the port must be a number from 1 to 65535");
	expect_bad_addr("h:http", "address \"h:http\": the port must be a number from 1 to 65535");
	expect_bad_addr("::1", "address \"::1\": write an IPv6 address in brackets: [::1]:8500");
	expect_bad_addr("http://h:1/v1", "address \"http://h:1/v1\": expected HOST:PORT without a path");
	expect_bad_addr(":8500", "address \":8500\": no host");
}

static void test_escape(void **state)
{
	char *s = httpc_escape("a b/c?d&e=é", 1);

	assert_string_equal(s, "a%20b/c%3Fd%26e%3D%C3%A9");
	free(s);
	s = httpc_escape("a/b", 0);
	assert_string_equal(s, "a%2Fb");
	free(s);
}

static void test_error_message(void **state)
{
	char json[] = "{\"error\": \"Node: is required\"}", text[] = "  Missing node\n";
	char endpoint[] = "{\"error\": \"no such endpoint: GET /v1/kv/x\"}";
	struct httpc_resp r = { .status = 400, .body = json, .len = sizeof(json) - 1 };
	char *m = httpc_error_message(&r);

	assert_string_equal(m, "Node: is required");
	free(m);
	r.body = text;
	r.len = sizeof(text) - 1;
	m = httpc_error_message(&r);
	assert_string_equal(m, "Missing node");
	free(m);
	r.body = NULL;
	r.len = 0;
	r.status = 404;
	m = httpc_error_message(&r);
	assert_string_equal(m, "the server answered HTTP 404 without a message");
	free(m);
	assert_int_equal(httpc_missing_object(&r), 1);
	r.body = endpoint;
	r.len = sizeof(endpoint) - 1;
	assert_int_equal(httpc_missing_object(&r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flag_spellings),
		cmocka_unit_test(test_stop_at_positional),
		cmocka_unit_test(test_double_dash_and_stdin),
		cmocka_unit_test(test_flag_errors),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_json_syntax_error_has_line_and_column),
		cmocka_unit_test(test_registration_missing_fields),
		cmocka_unit_test(test_registration_file_ok),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_registration_flags),
		cmocka_unit_test(test_registration_flags_errors),
		cmocka_unit_test(test_value_sources),
		cmocka_unit_test(test_token_body),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_error_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
