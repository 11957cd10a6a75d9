/* agent/svcdef: Consul's service definitions into the agent's canonical form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "svcdef.h"

static json_t *decode_ok(const char *text)
{
	json_t *doc = json_loads(text, 0, NULL), *out = json_array();
	char *err = NULL;

	assert_non_null(doc);
	if (svcdef_decode_service(doc, NULL, out, &err) != WEFT_OK)
		fail_msg("unexpected error: %s", err);
	json_decref(doc);
	return out;
}

static void decode_err(const char *text, const char *want)
{
	json_t *doc = json_loads(text, 0, NULL), *out = json_array();
	char *err = NULL;

	assert_non_null(doc);
	assert_int_equal(svcdef_decode_service(doc, NULL, out, &err), WEFT_EINVAL);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
	free(err);
	json_decref(doc);
	json_decref(out);
}

static const char *s(json_t *o, const char *path)
{
	json_t *v = o;
	char buf[256], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
	return json_string_value(v);
}

static long long n(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void test_snake_and_pascal_case_agree(void **state)
{
	json_t *a = decode_ok("{\"name\": \"web\", \"port\": 8080, \"connect\": {\"sidecar_service\": "
			      "{\"proxy\": {\"upstreams\": [{\"destination_name\": \"api\", "
			      "\"local_bind_port\": 9191}]}}}}");
	json_t *b = decode_ok("{\"Name\": \"web\", \"Port\": 8080, \"Connect\": {\"SidecarService\": "
			      "{\"Proxy\": {\"Upstreams\": [{\"DestinationName\": \"api\", "
			      "\"LocalBindPort\": 9191}]}}}}");

	(void)state;
	assert_true(json_equal(a, b));
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(s(a, "0.ID"), "web");
	assert_string_equal(s(a, "1.ID"), "web-sidecar-proxy");
	assert_string_equal(s(a, "1.Service"), "web-sidecar-proxy");
	assert_string_equal(s(a, "1.Kind"), "connect-proxy");
	assert_string_equal(s(a, "1.SidecarFor"), "web");
	assert_string_equal(s(a, "1.Proxy.DestinationServiceName"), "web");
	assert_string_equal(s(a, "1.Proxy.LocalServiceAddress"), "127.0.0.1");
	assert_int_equal(n(json_object_get(json_array_get(a, 1), "Proxy"), "LocalServicePort"), 8080);
	assert_string_equal(s(a, "1.Proxy.Upstreams.0.LocalBindAddress"), "127.0.0.1");
	json_decref(a);
	json_decref(b);
}

static void test_sidecar_ports_and_default_checks(void **state)
{
	json_t *list = decode_ok("{\"name\": \"web\", \"port\": 8080, \"connect\": {\"sidecar_service\": {}}}");
	json_t *keep = decode_ok("{\"name\": \"api\", \"port\": 21000}");
	json_t *side, *checks;
	char *err = NULL;

	(void)state;
	assert_int_equal(svcdef_assign_ports(list, keep, "10.0.0.5", &err), WEFT_OK);
	side = json_array_get(list, 1);
	assert_int_equal(n(side, "Port"), 21001);   /* 21000 is taken by api */
	checks = json_object_get(side, "Checks");
	assert_int_equal(json_array_size(checks), 2);
	assert_string_equal(s(checks, "0.TCP"), "10.0.0.5:21001");
	assert_string_equal(s(checks, "0.CheckID"), "service:web-sidecar-proxy:1");
	assert_string_equal(s(checks, "1.Type"), "alias");
	assert_string_equal(s(checks, "1.AliasService"), "web");
	/* an existing sidecar keeps its port */
	json_object_set_new(side, "Port", json_integer(0));
	json_decref(keep);
	keep = json_pack("[{ss si}]", "ID", "web-sidecar-proxy", "Port", 21007);
	assert_int_equal(svcdef_assign_ports(list, keep, "10.0.0.5", &err), WEFT_OK);
	assert_int_equal(n(side, "Port"), 21007);
	json_decref(list);
	json_decref(keep);
}

static void test_checks(void **state)
{
	json_t *l = decode_ok("{\"name\": \"api\", \"id\": \"api-1\", \"port\": 9000, \"checks\": ["
			      "{\"http\": \"http://127.0.0.1:9000/health\", \"interval\": \"10s\","
			      " \"timeout\": 1000000000, \"header\": {\"X-A\": [\"1\"]}},"
			      "{\"ttl\": \"30s\", \"status\": \"passing\"},"
			      "{\"id\": \"own\", \"args\": [\"/bin/check\", \"-v\"], \"interval\": \"5s\"}]}");
	json_t *c = json_object_get(json_array_get(l, 0), "Checks");

	(void)state;
	assert_int_equal(json_array_size(c), 3);
	assert_string_equal(s(c, "0.CheckID"), "service:api-1:1");
	assert_string_equal(s(c, "0.Type"), "http");
	assert_string_equal(s(c, "0.Timeout"), "1s");
	assert_string_equal(s(c, "0.Status"), "critical");
	assert_string_equal(s(c, "1.CheckID"), "service:api-1:2");
	assert_string_equal(s(c, "1.Type"), "ttl");
	assert_string_equal(s(c, "1.TTL"), "30s");
	assert_string_equal(s(c, "1.Status"), "passing");
	assert_string_equal(s(c, "2.CheckID"), "own");
	assert_string_equal(s(c, "2.Type"), "script");
	assert_string_equal(s(c, "2.ServiceID"), "api-1");
	json_decref(l);
	l = decode_ok("{\"name\": \"db\", \"check\": {\"tcp\": \"127.0.0.1:5432\", \"interval\": \"1s\"}}");
	c = json_object_get(json_array_get(l, 0), "Checks");
	assert_string_equal(s(c, "0.CheckID"), "service:db");
	assert_string_equal(s(c, "0.Name"), "Service 'db' check");
	json_decref(l);
	/* gRPC and UDP, the thresholds; snake_case as Consul's files write it */
	l = decode_ok("{\"name\": \"rpc\", \"checks\": ["
		      "{\"grpc\": \"127.0.0.1:9000/rpc.v1\", \"grpc_use_tls\": true, \"interval\": \"2s\","
		      " \"success_before_passing\": 2, \"failures_before_critical\": 3},"
		      "{\"udp\": \"[::1]:53\", \"interval\": \"5s\", \"grpc\": \"\"}]}");
	c = json_object_get(json_array_get(l, 0), "Checks");
	assert_string_equal(s(c, "0.Type"), "grpc");
	assert_string_equal(s(c, "0.GRPC"), "127.0.0.1:9000/rpc.v1");
	assert_true(json_is_true(json_object_get(json_array_get(c, 0), "GRPCUseTLS")));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(c, 0), "SuccessBeforePassing")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(c, 0), "FailuresBeforeCritical")), 3);
	assert_null(json_object_get(json_array_get(c, 0), "FailuresBeforeWarning"));
	assert_string_equal(s(c, "1.Type"), "udp");
	assert_string_equal(s(c, "1.UDP"), "[::1]:53");
	assert_null(json_object_get(json_array_get(c, 1), "GRPC"));
	json_decref(l);
	/* H2PING: TLS unless h2ping_use_tls is false, as Consul */
	l = decode_ok("{\"name\": \"h2\", \"checks\": ["
		      "{\"h2ping\": \"localhost:8443\", \"interval\": \"2s\"},"
		      "{\"h2ping\": \"127.0.0.1:8080\", \"h2ping_use_tls\": false, \"interval\": \"2s\"}]}");
	c = json_object_get(json_array_get(l, 0), "Checks");
	assert_string_equal(s(c, "0.Type"), "h2ping");
	assert_string_equal(s(c, "0.H2PING"), "localhost:8443");
	assert_true(json_is_true(json_object_get(json_array_get(c, 0), "H2PingUseTLS")));
	assert_true(json_is_false(json_object_get(json_array_get(c, 1), "H2PingUseTLS")));
	json_decref(l);
}

static void test_errors_name_the_field(void **state)
{
	(void)state;
	decode_err("{\"port\": 1}", "Name: is required");
	decode_err("{\"name\": \"a b\"}", "Name: is not a valid service name");
	decode_err("{\"name\": \"a\", \"prot\": 1}", "prot: unknown field");
	decode_err("{\"name\": \"a\", \"port\": 1, \"Port\": 2}", "given twice");
	decode_err("{\"name\": \"a\", \"port\": 70000}", "Port: 70000 is out of range [0, 65535]");
	decode_err("{\"name\": \"a\", \"check\": {\"http\": \"ftp://x\", \"interval\": \"1s\"}}",
		   "Check.HTTP: \"ftp://x\" is not an http:// or https:// URL");
	decode_err("{\"name\": \"a\", \"check\": {\"tcp\": \"x\", \"interval\": \"1s\"}}",
		   "Check.TCP: \"x\" is not HOST:PORT");
	decode_err("{\"name\": \"a\", \"check\": {\"interval\": \"1s\"}}",
		   "Check: one of HTTP, TCP, UDP, GRPC, H2PING, TTL, Args or AliasService is required");
	decode_err("{\"name\": \"a\", \"check\": {\"ttl\": \"1s\", \"http\": \"http://x:1/\"}}",
		   "give only one of");
	decode_err("{\"name\": \"a\", \"check\": {\"ttl\": \"soon\"}}", "Check.TTL");
	decode_err("{\"name\": \"a\", \"check\": {\"udp\": \"x\", \"interval\": \"1s\"}}",
		   "Check.UDP: \"x\" is not HOST:PORT");
	decode_err("{\"name\": \"a\", \"check\": {\"grpc\": \"x/svc\", \"interval\": \"1s\"}}",
		   "Check.GRPC: \"x/svc\" is not HOST:PORT or HOST:PORT/SERVICE");
	decode_err("{\"name\": \"a\", \"check\": {\"grpc\": \"x:1\"}}",
		   "Check.Interval: required for a grpc check, at least 100ms");
	decode_err("{\"name\": \"a\", \"check\": {\"udp\": \"x:1\", \"tcp\": \"x:1\", "
		   "\"interval\": \"1s\"}}", "give only one of HTTP, TCP, UDP, GRPC");
	decode_err("{\"name\": \"a\", \"check\": {\"tcp\": \"x:1\", \"interval\": \"1s\", "
		   "\"failures_before_critical\": 1001}}",
		   "Check.FailuresBeforeCritical: 1001 is out of range [0, 1000]");
	decode_err("{\"name\": \"a\", \"check\": {\"tcp\": \"x:1\", \"interval\": \"1s\", "
		   "\"success_before_passing\": \"2\"}}", "Check.SuccessBeforePassing:");
	decode_err("{\"name\": \"a\", \"check\": {\"h2ping\": \"x\", \"interval\": \"1s\"}}",
		   "Check.H2PING: \"x\" is not HOST:PORT");
	decode_err("{\"name\": \"a\", \"check\": {\"docker_container_id\": \"f00\", "
		   "\"interval\": \"1s\"}}", "Check.docker_container_id: unknown field");
	decode_err("{\"name\": \"a\", \"connect\": {\"sidecar_service\": {}}}",
		   "Port: is required for a service with a sidecar");
	decode_err("{\"name\": \"a\", \"port\": 1, \"connect\": {\"sidecar_service\": {\"proxy\": "
		   "{\"upstreams\": [{\"destination_name\": \"b\"}]}}}}",
		   "Connect.SidecarService.Proxy.Upstreams[0].LocalBindPort: is required");
	decode_err("{\"name\": \"a\", \"port\": 1, \"connect\": {\"sidecar_service\": {\"proxy\": "
		   "{\"upstreams\": [{\"destination_name\": \"b\", \"local_bind_port\": 1, "
		   "\"destination_type\": \"prepared_query\"}]}}}}",
		   "DestinationType: \"prepared_query\" is not supported");
	decode_err("{\"name\": \"a\", \"kind\": \"mesh-gateway\", \"port\": 1}", "Kind: \"mesh-gateway\"");
	decode_err("{\"name\": \"p\", \"kind\": \"connect-proxy\", \"port\": 1}",
		   "Proxy.DestinationServiceName: is required for a connect-proxy");
	decode_err("{\"name\": \"a\", \"address\": \"web.local\"}", "Address: \"web.local\" is not an IP address");
	decode_err("{\"name\": \"a\", \"checks\": [{\"ttl\": \"1s\", \"id\": \"x\"}, {\"ttl\": \"1s\", \"id\": \"x\"}]}",
		   "two checks have the ID \"x\"");
}

static char *write_file(const char *dir, const char *name, const char *text)
{
	char *path = NULL;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_load_dir(void **state)
{
	char dir[] = "/tmp/weft-svcdef-XXXXXX";
	json_t *services = NULL, *checks = NULL;
	char *err = NULL, *p1, *p2, *p3;

	(void)state;
	assert_non_null(mkdtemp(dir));
	p1 = write_file(dir, "a.yaml", "services:\n  - name: web\n    port: 80\n  - name: api\n    port: 81\n");
	p2 = write_file(dir, "b.json", "{\"check\": {\"name\": \"mem\", \"ttl\": \"1m\"}}");
	p3 = write_file(dir, "notes.txt", "not a definition");
	assert_int_equal(svcdef_load_dir(dir, &services, &checks, &err), WEFT_OK);
	assert_int_equal(json_array_size(services), 2);
	assert_int_equal(json_array_size(checks), 1);
	assert_string_equal(s(checks, "0.CheckID"), "mem");
	json_decref(services);
	json_decref(checks);
	unlink(p1);
	free(p1);
	p1 = write_file(dir, "a.yaml", "service:\n  name: web\n  port: 80\n  check:\n    http: http://x:1/\n");
	assert_int_equal(svcdef_load_dir(dir, &services, &checks, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "a.yaml:4:3: service.Check.Interval: required for an http check"));
	free(err);
	err = NULL;
	unlink(p1);
	free(p1);
	p1 = write_file(dir, "a.yaml", "service: {name: web, port: 80\n");
	assert_int_equal(svcdef_load_dir(dir, &services, &checks, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "a.yaml:"));
	free(err);
	err = NULL;
	unlink(p1);
	free(p1);
	p1 = write_file(dir, "a.json", "{\"service\": {\"name\": \"web\",}}");
	assert_int_equal(svcdef_load_dir(dir, &services, &checks, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "a.json:1:"));
	free(err);
	unlink(p1);
	unlink(p2);
	unlink(p3);
	free(p1);
	free(p2);
	free(p3);
	rmdir(dir);
	/* a missing directory holds nothing */
	assert_int_equal(svcdef_load_dir("/nonexistent/weft", &services, &checks, &err), WEFT_OK);
	assert_int_equal(json_array_size(services), 0);
	json_decref(services);
	json_decref(checks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snake_and_pascal_case_agree),
		cmocka_unit_test(test_sidecar_ports_and_default_checks),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_errors_name_the_field),
		cmocka_unit_test(test_load_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
