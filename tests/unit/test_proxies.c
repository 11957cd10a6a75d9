/* agent/proxies: what the agent hands a proxy (proxies_localize) and the
 * specs proxies_set refuses before anything starts. The processes and the
 * server are in tests/integration/test_agent_proxies.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "jsonx.h"
#include "proxies.h"

/* A snapshot as weft-server sends it (docs/api.md "Proxy snapshots"):
 * the trust bundle inline, no leaf, no key, no admin listener. */
static const char *server_snapshot(const char *service, int version, const char *tls_key)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf),
		 "{\"Version\": %d, \"Index\": 42,"
		 " \"Proxy\": {\"Service\": \"%s\", \"ID\": \"web-sidecar-proxy\", \"Mesh\": \"default\","
		 "  \"Zone\": \"dc1\", \"SpiffeID\": \"spiffe://td.weft/ns/default/dc/dc1/svc/%s\"},"
		 " \"Inbound\": {\"BindAddress\": \"127.0.0.1\", \"BindPort\": 21000,"
		 "  \"AppAddress\": \"127.0.0.1\", \"AppPort\": 8080, \"Protocol\": \"http\"},"
		 " \"Upstreams\": [{\"Name\": \"api\", \"Service\": \"api\", \"BindPort\": 9191,"
		 "  \"Endpoints\": [{\"Address\": \"10.0.0.7\", \"Port\": 21000,"
		 "   \"SpiffeID\": \"spiffe://td.weft/ns/default/dc/dc1/svc/api\"}]}],"
		 " \"Intentions\": {\"DefaultAction\": \"deny\", \"Items\": []},"
		 " \"%s\": {\"trustbundle\": {\"PEM\": \"-----BEGIN CERTIFICATE-----\\nMIIB\\n"
		 "-----END CERTIFICATE-----\\n\"}},"
		 " \"Admin\": {\"BindPort\": 0}}",
		 version, service, service, tls_key);
	return buf;
}

static const struct proxy_spec web = {
	.id = "web-sidecar-proxy", .service = "web", .cert_file = "/var/lib/weft/certs/web.crt",
	.key_file = "/var/lib/weft/certs/web.key", .bundle_file = "/var/lib/weft/certs/bundle.pem",
	.admin_port = 19001,
};

static json_t *localize(const struct proxy_spec *s, const char *body, uint64_t *index, char **err)
{
	char *out = NULL;
	json_t *doc;

	*err = NULL;
	if (proxies_localize(s, body, strlen(body), &out, index, err) != WEFT_OK) {
		assert_null(out);
		return NULL;
	}
	doc = json_loads(out, 0, NULL);
	free(out);
	assert_non_null(doc);
	return doc;
}

static const char *str_at(json_t *doc, const char *a, const char *b, const char *c)
{
	json_t *v = json_object_get(json_object_get(doc, a), b);

	if (c)
		v = json_object_get(v, c);
	return json_string_value(v);
}

static void test_localize_adds_what_the_vm_knows(void **state)
{
	uint64_t index = 0;
	char *err;
	json_t *doc = localize(&web, server_snapshot("web", 1, "TLS"), &index, &err);

	assert_non_null(doc);
	assert_int_equal(index, 42);
	assert_string_equal(str_at(doc, "TLS", "Certificate", "File"), web.cert_file);
	assert_string_equal(str_at(doc, "TLS", "PrivateKey", "File"), web.key_file);
	/* the inline bundle gives way to the file the agent keeps (in any case) */
	assert_string_equal(str_at(doc, "TLS", "TrustBundle", "File"), web.bundle_file);
	assert_null(json_object_get(json_object_get(doc, "TLS"), "trustbundle"));
	assert_null(str_at(doc, "TLS", "TrustBundle", "PEM"));
	assert_string_equal(str_at(doc, "Admin", "BindAddress", NULL), "127.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "Admin"), "BindPort")),
			 19001);
	assert_true(json_is_null(json_object_get(doc, "AccessLog")));
	/* what the server said is kept */
	assert_string_equal(str_at(doc, "Proxy", "Service", NULL), "web");
	assert_int_equal(json_array_size(json_object_get(doc, "Upstreams")), 1);
	json_decref(doc);
}

static void test_localize_access_log_and_tls_case(void **state)
{
	struct proxy_spec s = web;
	uint64_t index;
	char *err;
	json_t *doc;

	s.access_log = "/var/log/weft/web-access.log";
	/* "tls" in lower case: replaced, not doubled (the decoder refuses both) */
	doc = localize(&s, server_snapshot("web", 1, "tls"), &index, &err);
	assert_non_null(doc);
	assert_true(json_is_true(json_object_get(json_object_get(doc, "AccessLog"), "Enabled")));
	assert_string_equal(str_at(doc, "AccessLog", "Path", NULL), s.access_log);
	assert_string_equal(str_at(doc, "tls", "Certificate", "File"), web.cert_file);
	json_decref(doc);
}

static void test_localize_refuses(void **state)
{
	struct proxy_spec s = web;
	uint64_t index;
	char *err;

	/* another service's snapshot */
	assert_null(localize(&web, server_snapshot("api", 1, "TLS"), &index, &err));
	assert_non_null(strstr(err, "Proxy.Service: \"api\" is not this sidecar's destination "
				    "service \"web\""));
	free(err);
	/* a version this proxy does not speak: refused as a whole */
	assert_null(localize(&web, server_snapshot("web", 2, "TLS"), &index, &err));
	assert_non_null(strstr(err, "Version: 2 is newer"));
	free(err);
	/* the admin port the agent gives clashes with a listener of the snapshot */
	s.admin_port = 9191;
	assert_null(localize(&s, server_snapshot("web", 1, "TLS"), &index, &err));
	assert_non_null(strstr(err, "9191"));
	free(err);
	/* an access log that is not absolute */
	s = web;
	s.access_log = "relative.log";
	assert_null(localize(&s, server_snapshot("web", 1, "TLS"), &index, &err));
	assert_non_null(strstr(err, "AccessLog.Path"));
	free(err);
	assert_null(localize(&web, "{\"Version\": 1,", &index, &err));
	assert_non_null(strstr(err, "not a JSON object"));
	free(err);
	assert_null(localize(&web, "[]", &index, &err));
	free(err);
}

static void test_set_refuses_bad_specs(void **state)
{
	char dir[] = "/tmp/weft-test-proxies-XXXXXX";
	struct proxies_opts o = {.proxy_bin = "/bin/true", .node = "n1",
				 .server = {.address = "127.0.0.1:1"}};
	struct proxies *p = NULL;
	struct proxy_spec two[2] = {web, web};
	struct {
		struct proxy_spec s;
		const char *want;
	} bad[] = {
		{{.id = "a/b", .service = "web"}, "specs[0].ID: \"a/b\""},
		{{.id = "..", .service = "web"}, "specs[0].ID"},
		{{.id = "x", .service = "we b"}, "specs[0].Service"},
		{{.id = "x", .service = "web", .cert_file = "web.crt"}, "specs[0].CertFile: want an "
									 "absolute path"},
		{{.id = "x", .service = "web", .cert_file = "/c", .key_file = "/k"},
		 "specs[0].BundleFile"},
		{{.id = "x", .service = "web", .cert_file = "/c", .key_file = "/k", .bundle_file = "/b"},
		 "specs[0].AdminPort: 0 is out of range"},
		{{.id = "x", .service = "web", .cert_file = "/c", .key_file = "/k", .bundle_file = "/b",
		  .admin_port = 19000, .access_log = "log"}, "specs[0].AccessLog"},
	};
	json_t *st = NULL;
	char *err = NULL;

	assert_non_null(mkdtemp(dir));
	o.dir = dir;
	assert_int_equal(proxies_new(&p, &o, &err), WEFT_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(proxies_set(p, &bad[i].s, 1, &err), WEFT_EINVAL);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("case %zu: %s (want %s)", i, err, bad[i].want);
		free(err);
	err = NULL;
		err = NULL;
	}
	assert_int_equal(proxies_set(p, two, 2, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "specs[1].ID: \"web-sidecar-proxy\" is also specs[0]'s"));
	free(err);
	err = NULL;
	two[1].id = "web-2";
	assert_int_equal(proxies_set(p, two, 2, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "specs[1].AdminPort: 19001 is also specs[0]'s"));
	free(err);
	err = NULL;
	/* nothing started; the empty set is ready */
	assert_int_equal(proxies_status_json(p, &st), WEFT_OK);
	assert_int_equal(json_array_size(st), 0);
	json_decref(st);
	assert_int_equal(proxies_ready(p), 1);
	proxies_free(p);
	/* options */
	o.proxy_bin = "weft-proxy";
	assert_int_equal(proxies_new(&p, &o, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "proxy_bin"));
	free(err);
	err = NULL;
	o.proxy_bin = "/bin/true";
	o.dir = "relative";
	assert_int_equal(proxies_new(&p, &o, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "dir"));
	free(err);
	err = NULL;
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_localize_adds_what_the_vm_knows),
		cmocka_unit_test(test_localize_access_log_and_tls_case),
		cmocka_unit_test(test_localize_refuses),
		cmocka_unit_test(test_set_refuses_bad_specs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
