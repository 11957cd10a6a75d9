/* What weftctl's intention, config and mesh commands do without a server
 * (ctl/policy.h): policy files validated with located errors, -meta and
 * -header flags, and intention explain's output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "policy.h"

/* ---- intention files ---- */

static int decode(const char *text, json_t **out, char **err)
{
	*out = json_array();
	return policy_intentions_decode(text, strlen(text), "ixn.yaml", *out, err);
}

static void assert_error(const char *text, const char *want)
{
	json_t *out;
	char *err = NULL;

	assert_int_equal(decode(text, &out, &err), WEFT_EINVAL);
	assert_non_null(err);
	assert_string_equal(err, want);
	free(err);
	json_decref(out);
}

static void test_intention_file_errors_are_located(void **state)
{
	(void)state;
	/* A bad value: the line and column of its field. */
	assert_error("SourceName: web\n"
		     "DestinationName: api\n"
		     "Action: permit\n",
		     "ixn.yaml:3:1: Action: \"permit\": must be \"allow\" or \"deny\"");
	/* In a list, the item and its field. */
	assert_error("- SourceName: web\n"
		     "  DestinationName: api\n"
		     "  Action: allow\n"
		     "- SourceName: \"web*\"\n"
		     "  DestinationName: api\n"
		     "  Action: deny\n",
		     "ixn.yaml:4:3: [1].SourceName: \"web*\": wildcard '*' must be the whole name");
	/* A nested field of an L7 intention. */
	assert_error("SourceName: web\n"
		     "DestinationName: api\n"
		     "Permissions:\n"
		     "  - Action: allow\n"
		     "    HTTP:\n"
		     "      PathPrefix: /v1\n"
		     "  - Action: permit\n"
		     "    HTTP: {PathPrefix: /v2}\n",
		     "ixn.yaml:7:5: Permissions[1].Action: \"permit\": must be \"allow\" or \"deny\"");
	/* A missing field: the document it is missing from. */
	assert_error("---\nSourceName: web\nDestinationName: db\nAction: deny\n---\nSourceName: a\nDestinationName: b\nAction: allow\n"
		     "---\n  DestinationName: db\n",
		     "ixn.yaml:10:3: SourceName: is required");
	/* A syntax error, and JSON (which is YAML) the same way. */
	assert_error("SourceName: [web\n", "ixn.yaml:2:1: did not find expected ',' or ']' "
		     "while parsing a flow sequence");
	assert_error("{\"SourceName\": \"web\", \"DestinationName\": \"db\",\n \"Action\": 1}\n",
		     "ixn.yaml:2:2: Action: must be a string");
	/* Nothing in it. */
	assert_error("# nothing\n", "ixn.yaml: no intention in the file");
	assert_error("[]\n", "ixn.yaml: no intention in the file");
	assert_error("42\n", "ixn.yaml:1:1: intention: must be an object");
}

static void test_intention_file_decodes_what_the_server_takes(void **state)
{
	json_t *out, *ix;
	char *err = NULL;

	(void)state;
	assert_int_equal(decode("ID: ignored-here\n"
				"SourceName: web\n"
				"DestinationName: api\n"
				"Precedence: 1\n"
				"Permissions:\n"
				"  - Action: allow\n"
				"    HTTP: {PathPrefix: /v1, Methods: [get, head]}\n"
				"---\n"
				"- {SourceNS: team, SourceName: '*', DestinationName: api, Action: deny,\n"
				"   Meta: {owner: ops}}\n"
				"- {SourceName: billing, DestinationName: api, Action: allow}\n",
				&out, &err), WEFT_OK);
	assert_int_equal(json_array_size(out), 3);
	ix = json_array_get(out, 0);
	/* What the server assigns or computes is not sent. */
	assert_null(json_object_get(ix, "ID"));
	assert_null(json_object_get(ix, "Precedence"));
	assert_null(json_object_get(ix, "Action"));
	{
		json_t *perm = json_array_get(json_object_get(ix, "Permissions"), 0);
		json_t *methods = json_object_get(json_object_get(perm, "HTTP"), "Methods");

		assert_string_equal(json_string_value(json_array_get(methods, 0)), "GET");
	}
	ix = json_array_get(out, 1);
	assert_string_equal(json_string_value(json_object_get(ix, "SourceNS")), "team");
	assert_string_equal(json_string_value(json_object_get(ix, "Action")), "deny");
	assert_string_equal(json_string_value(json_object_get(json_object_get(ix, "Meta"), "owner")),
			    "ops");
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 2), "SourceName")),
			    "billing");
	json_decref(out);
}

static void test_intention_files_on_disk(void **state)
{
	char path[] = "/tmp/test_weftctl_policy_XXXXXX";
	json_t *out = json_array();
	char *err = NULL;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "SourceName: web\nDestinationName: db\nAction: maybe\n", 50), 50);
	close(fd);
	assert_int_equal(policy_intentions_file(path, out, &err), WEFT_EINVAL);
	{
		char want[256];

		snprintf(want, sizeof(want), "%s:3:1: Action: \"maybe\": must be \"allow\" or \"deny\"",
			 path);
		assert_string_equal(err, want);
	}
	free(err);
	err = NULL;
	unlink(path);
	assert_int_equal(policy_intentions_file(path, out, &err), WEFT_EIO);
	assert_non_null(strstr(err, "No such file or directory"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	free(err);
	json_decref(out);
}

/* Every intention file of examples/policy/intentions loads. */
static void test_example_intentions(void **state)
{
	const char *src = getenv("WEFT_SRCDIR");
	char dir[512], path[1024];
	json_t *out = json_array();
	struct dirent *de;
	char *err = NULL;
	DIR *d;
	int files = 0;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/examples/policy/intentions", src ? src : ".");
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (policy_intentions_file(path, out, &err) != WEFT_OK)
			fail_msg("%s", err);
		files++;
	}
	closedir(d);
	assert_true(files >= 2);
	assert_true(json_array_size(out) >= (size_t)files);
	json_decref(out);
}

/* ---- config files ---- */

static void test_config_file_errors_are_located(void **state)
{
	char path[] = "/tmp/test_weftctl_policy_XXXXXX";
	static const char text[] =
		"Kind: service-router\n"
		"Name: api\n"
		"Routes:\n"
		"  - Match:\n"
		"      HTTP:\n"
		"        PathPrefix: v2\n";
	json_t *out = NULL;
	char *err = NULL, want[256];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	assert_int_equal(policy_config_file(path, &out, &err), WEFT_EINVAL);
	assert_null(out);
	snprintf(want, sizeof(want), "%s:6:9: Routes[0].Match.HTTP.PathPrefix: ", path);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);
	free(err);
	err = NULL;

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Kind: service-defaults\nName: web\nProtocl: http\n", 47), 47);
	close(fd);
	assert_int_equal(policy_config_file(path, &out, &err), WEFT_EINVAL);
	snprintf(want, sizeof(want), "%s:3:1: Protocl: ", path);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);
	free(err);
	err = NULL;

	/* Several documents: all of them, in order. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Kind: service-defaults\nName: web\n---\nkind: service-defaults\n"
			       "name: api\nprotocol: HTTP\n", 85), 85);
	close(fd);
	assert_int_equal(policy_config_file(path, &out, &err), WEFT_OK);
	assert_int_equal(json_array_size(out), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 1), "Name")), "api");
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 1), "Protocol")),
			    "http");
	json_decref(out);
	unlink(path);
}

/* ---- flags ---- */

static void test_meta_flags(void **state)
{
	const char *good[] = { "owner=payments", "query=a=b", "owner=ops", "empty=" };
	const char *bad1[] = { "owner" }, *bad2[] = { "=x" };
	struct arg_list l = { good, 4 };
	json_t *meta;
	char *err = NULL;

	(void)state;
	assert_int_equal(policy_meta(&l, &meta, &err), WEFT_OK);
	assert_int_equal(json_object_size(meta), 3);
	/* The last value of a key wins; '=' may appear in the value. */
	assert_string_equal(json_string_value(json_object_get(meta, "owner")), "ops");
	assert_string_equal(json_string_value(json_object_get(meta, "query")), "a=b");
	assert_string_equal(json_string_value(json_object_get(meta, "empty")), "");
	json_decref(meta);

	l = (struct arg_list){ NULL, 0 };
	assert_int_equal(policy_meta(&l, &meta, &err), WEFT_OK);
	assert_null(meta);

	l = (struct arg_list){ bad1, 1 };
	assert_int_equal(policy_meta(&l, &meta, &err), WEFT_EINVAL);
	assert_string_equal(err, "-meta \"owner\": missing '=' (KEY=VALUE)");
	free(err);
	err = NULL;
	l = (struct arg_list){ bad2, 1 };
	assert_int_equal(policy_meta(&l, &meta, &err), WEFT_EINVAL);
	assert_string_equal(err, "-meta \"=x\": the key is empty");
	free(err);
}

static void test_header_and_target_flags(void **state)
{
	char *n, *v, *err = NULL, *ns, *name;

	(void)state;
	assert_int_equal(policy_header("x-version=2", &n, &v, &err), WEFT_OK);
	assert_string_equal(n, "x-version");
	assert_string_equal(v, "2");
	free(n);
	free(v);
	/* NAME:VALUE too; the value keeps the rest as it is. */
	assert_int_equal(policy_header("authorization:Bearer a=b:c", &n, &v, &err), WEFT_OK);
	assert_string_equal(n, "authorization");
	assert_string_equal(v, "Bearer a=b:c");
	free(n);
	free(v);
	assert_int_equal(policy_header("x-empty=", &n, &v, &err), WEFT_OK);
	assert_string_equal(v, "");
	free(n);
	free(v);
	assert_int_equal(policy_header("x-version", &n, &v, &err), WEFT_EINVAL);
	assert_string_equal(err, "-header \"x-version\": missing '=' (NAME=VALUE)");
	free(err);
	err = NULL;
	assert_int_equal(policy_header("=1", &n, &v, &err), WEFT_EINVAL);
	free(err);
	err = NULL;

	assert_int_equal(policy_target("web", "source", &ns, &name, &err), WEFT_OK);
	assert_null(ns);
	assert_string_equal(name, "web");
	free(name);
	assert_int_equal(policy_target("team/*", "source", &ns, &name, &err), WEFT_OK);
	assert_string_equal(ns, "team");
	assert_string_equal(name, "*");
	free(ns);
	free(name);
	assert_int_equal(policy_target("a/b/c", "destination", &ns, &name, &err), WEFT_EINVAL);
	assert_string_equal(err, "destination \"a/b/c\": at most one '/' (NAMESPACE/NAME)");
	free(err);
	err = NULL;
	assert_int_equal(policy_target("/web", "source", &ns, &name, &err), WEFT_EINVAL);
	free(err);
}

static void test_intention_line(void **state)
{
	json_t *ix;
	char *s;

	(void)state;
	ix = json_pack("{s:s, s:s, s:s}", "SourceName", "web", "DestinationName", "db", "Action",
		       "allow");
	s = policy_intention_line(ix);
	assert_string_equal(s, "web => db (allow)");
	free(s);
	json_object_set_new(ix, "SourceNS", json_string("team"));
	json_object_set_new(ix, "DestinationNS", json_string("default"));
	json_object_set_new(ix, "Permissions", json_pack("[{}, {}]"));
	s = policy_intention_line(ix);
	assert_string_equal(s, "team/web => db (2 permissions)");
	free(s);
	json_decref(ix);
}

/* ---- explain ---- */

static const char set_json[] =
	"["
	" {\"ID\": \"id-web-api\", \"SourceName\": \"web\", \"DestinationName\": \"api\","
	"  \"Permissions\": [{\"Action\": \"allow\","
	"    \"HTTP\": {\"PathPrefix\": \"/v1/\", \"Methods\": [\"GET\"]}},"
	"   {\"Action\": \"deny\", \"HTTP\": {\"Header\": [{\"Name\": \"x-debug\", \"Present\": true}]}}]},"
	" {\"ID\": \"id-any-api\", \"SourceName\": \"*\", \"DestinationName\": \"api\", \"Action\": \"deny\"},"
	" {\"ID\": \"id-web-any\", \"SourceName\": \"web\", \"DestinationName\": \"*\", \"Action\": \"allow\"},"
	" {\"ID\": \"id-billing-db\", \"SourceName\": \"billing\", \"DestinationName\": \"db\", \"Action\": \"allow\"}"
	"]";

static struct intention_set *make_set(void)
{
	json_t *arr = json_loads(set_json, 0, NULL);
	struct intention_set *set = NULL;
	char *err = NULL;

	assert_non_null(arr);
	if (intention_set_from_json(arr, &set, &err) != WEFT_OK)
		fail_msg("%s", err);
	json_decref(arr);
	return set;
}

/* Runs policy_explain into a string. */
static char *explain(const struct intention_set *set, const struct intention_call *call,
		     enum intention_action def, json_t *server, int *agree, json_t **json)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	*agree = policy_explain(f, set, call, def, server, json);
	fclose(f);
	return text;
}

static void test_explain_l7_permission(void **state)
{
	struct intention_set *set = make_set();
	struct intention_call call = { .source_name = "web", .destination_name = "api", .http = 1,
				       .method = "GET", .path = "/v1/items?x=1" };
	json_t *server, *json = NULL;
	char *text;
	int agree;

	(void)state;
	/* What the server's check says for this call (the same engine). */
	server = json_pack("{s:b, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:i}, s:i}", "Allowed", 1,
			   "DecidedBy", "intention", "ReasonKind", "permission", "Intention",
			   "ID", "id-web-api", "SourceNS", "default", "SourceName", "web",
			   "DestinationName", "api", "Precedence", 9, "Permission", 0);
	text = explain(set, &call, INTENTION_DENY, server, &agree, &json);
	assert_int_equal(agree, 1);
	assert_string_equal(text,
		"Call:       web => api, HTTP GET /v1/items?x=1\n"
		"Decision:   ALLOWED\n"
		"Decided by: intention web => api (2 permissions), precedence 9, ID id-web-api\n"
		"            Permissions[0]: allow {\"Methods\":[\"GET\"],\"PathPrefix\":\"/v1/\"}\n"
		"Reason:     the first matching permission's Action applies\n"
		"Default:    deny\n"
		"\n"
		"Intentions for this source and destination, in evaluation order:\n"
		"  precedence 9  web => api (2 permissions)  <- decides\n"
		"  precedence 8  * => api (deny)  (not reached)\n"
		"  precedence 6  web => * (allow)  (not reached)\n"
		"\n"
		"Server:     /v1/connect/intentions/check answers allowed by intention web => api: "
		"agrees\n");
	assert_true(json_is_true(json_object_get(json_object_get(json, "Decision"), "Allowed")));
	assert_int_equal(json_array_size(json_object_get(json, "Candidates")), 3);
	assert_true(json_is_true(json_object_get(json, "Agree")));
	free(text);
	json_decref(json);
	json_decref(server);
	intention_set_free(set);
}

static void test_explain_l7_no_permission_and_l4(void **state)
{
	struct intention_set *set = make_set();
	struct intention_header h = { "X-Debug", "1" };
	struct intention_call call = { .source_name = "web", .destination_name = "api", .http = 1,
				       .method = "POST", .path = "/v1/items" };
	char *text;
	int agree;

	(void)state;
	/* No permission matches: the default decides, not the lower intentions. */
	text = explain(set, &call, INTENTION_ALLOW, NULL, &agree, NULL);
	assert_int_equal(agree, 1);
	assert_non_null(strstr(text, "Decision:   ALLOWED\n"));
	assert_non_null(strstr(text, "Reason:     the intention has Permissions and none matches "
				     "the request: the default action applies\n"));
	assert_non_null(strstr(text, "Default:    allow\n"));
	assert_null(strstr(text, "Permissions[")); /* no permission decided */
	assert_null(strstr(text, "Server:"));
	free(text);

	/* The second permission, on a header (names compared without case). */
	call.n_headers = 1;
	call.headers = &h;
	text = explain(set, &call, INTENTION_ALLOW, NULL, &agree, NULL);
	assert_non_null(strstr(text, "Call:       web => api, HTTP POST /v1/items, header X-Debug: 1\n"));
	assert_non_null(strstr(text, "Decision:   DENIED\n"));
	assert_non_null(strstr(text, "            Permissions[1]: deny {\"Header\":"));
	free(text);

	/* A connection: L7 intentions deny it. */
	call = (struct intention_call){ .source_name = "web", .destination_name = "api" };
	text = explain(set, &call, INTENTION_ALLOW, NULL, &agree, NULL);
	assert_non_null(strstr(text, "Call:       web => api (a connection: no HTTP request)\n"));
	assert_non_null(strstr(text, "Decision:   DENIED\n"));
	assert_non_null(strstr(text, "only an HTTP request can satisfy"));
	free(text);
	intention_set_free(set);
}

static void test_explain_default_and_disagreement(void **state)
{
	struct intention_set *set = make_set();
	struct intention_call call = { .source_name = "api", .destination_name = "db" };
	json_t *server, *json = NULL;
	char *text;
	int agree;

	(void)state;
	server = json_pack("{s:b, s:s}", "Allowed", 0, "DecidedBy", "default");
	text = explain(set, &call, INTENTION_DENY, server, &agree, NULL);
	assert_int_equal(agree, 1);
	assert_non_null(strstr(text, "Decision:   DENIED\n"
				     "Decided by: the default action (deny)\n"
				     "Reason:     no intention matches: the default action applies\n"));
	assert_non_null(strstr(text, "\nNo intention matches this source and destination.\n"));
	assert_non_null(strstr(text, "answers denied by the default action: agrees\n"));
	free(text);
	json_decref(server);

	/* A server that says otherwise is called out. */
	server = json_pack("{s:b, s:s}", "Allowed", 1, "DecidedBy", "default");
	text = explain(set, &call, INTENTION_DENY, server, &agree, &json);
	assert_int_equal(agree, 0);
	assert_non_null(strstr(text, "answers allowed by the default action: DISAGREES with the "
				     "local engine (the server says allowed, the local engine denied)\n"));
	assert_true(json_is_false(json_object_get(json, "Agree")));
	free(text);
	json_decref(json);
	json_decref(server);

	/* Same answer, another deciding intention. */
	call.source_name = "billing";
	server = json_pack("{s:b, s:s, s:{s:s, s:s, s:s}}", "Allowed", 1, "DecidedBy", "intention",
			   "Intention", "SourceName", "*", "DestinationName", "db", "Action", "allow");
	text = explain(set, &call, INTENTION_DENY, server, &agree, NULL);
	assert_int_equal(agree, 0);
	assert_non_null(strstr(text, "(the server's deciding intention is * => db (allow), the "
				     "local engine's billing => db (allow))"));
	free(text);
	json_decref(server);
	intention_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intention_file_errors_are_located),
		cmocka_unit_test(test_intention_file_decodes_what_the_server_takes),
		cmocka_unit_test(test_intention_files_on_disk),
		cmocka_unit_test(test_example_intentions),
		cmocka_unit_test(test_config_file_errors_are_located),
		cmocka_unit_test(test_meta_flags),
		cmocka_unit_test(test_header_and_target_flags),
		cmocka_unit_test(test_intention_line),
		cmocka_unit_test(test_explain_l7_permission),
		cmocka_unit_test(test_explain_l7_no_permission_and_l4),
		cmocka_unit_test(test_explain_default_and_disagreement),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
