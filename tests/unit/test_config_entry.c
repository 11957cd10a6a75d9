/* Config entries: every kind decoded and validated (a valid example and
 * invalid ones naming the field), normalisation, JSON and YAML giving the
 * same entry, the cross-entry checks on write and delete, and the whole of
 * examples/policy/ accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_entry.h"
#include "err.h"
#include "util.h"
#include "yamlx.h"

/* Decodes the first document of a YAML text; returns NULL and the entry, or
 * the error located as FILE:LINE:COL: message. */
static char *decode(const char *yaml, json_t **out)
{
	struct yamlx_doc *d = NULL;
	char *err = NULL, *located;

	*out = NULL;
	if (yamlx_parse(yaml, strlen(yaml), "e.yaml", &d, &err) != WEFT_OK)
		return err;
	if (config_entry_decode(yamlx_root(d, 0), out, &err) == WEFT_OK) {
		yamlx_free(d);
		return NULL;
	}
	located = yamlx_error(d, 0, err);
	free(err);
	yamlx_free(d);
	return located;
}

static json_t *decode_ok(const char *yaml)
{
	json_t *e;
	char *err = decode(yaml, &e);

	if (err)
		fail_msg("decode: %s", err);
	return e;
}

/* Asserts that the entry is refused with exactly this located message. */
#define REFUSED(yaml, msg) do { \
	json_t *e_; \
	char *err_ = decode(yaml, &e_); \
	if (err_ == NULL) \
		fail_msg("accepted: %s", yaml); \
	if (strcmp(err_, msg)) \
		fail_msg("error\n  got:  %s\n  want: %s", err_, msg); \
	free(err_); \
} while (0)

static void assert_json(json_t *got, const char *want_text)
{
	json_t *want = json_loads(want_text, 0, NULL);

	assert_non_null(want);
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_COMPACT);

		fail_msg("got %s\nwant %s", g, want_text);
	}
	json_decref(want);
}

/* ---- service-defaults ---- */

static void test_service_defaults(void **state)
{
	json_t *e;

	(void)state;
	/* Consul's decoder takes any case and the snake_case aliases. */
	e = decode_ok("kind: service-defaults\nname: web\nprotocol: HTTP\n"
		      "mesh_gateway: {mode: local}\nlocal_connect_timeout_ms: 500\n"
		      "upstream_config:\n  defaults: {connect_timeout_ms: 100, passive_health_check: {interval: 1m30s}}\n"
		      "  overrides: [{name: db, protocol: TCP}]\n"
		      "MaxInboundConnections: 10\nMeta: {team: core}\nCreateIndex: 5\nModifyIndex: 6\n");
	assert_json(e, "{\"Kind\":\"service-defaults\",\"Name\":\"web\",\"Protocol\":\"http\","
		       "\"MeshGateway\":{\"Mode\":\"local\"},\"LocalConnectTimeoutMs\":500,"
		       "\"UpstreamConfig\":{\"Defaults\":{\"ConnectTimeoutMs\":100,"
		       "\"PassiveHealthCheck\":{\"Interval\":\"1m30s\"}},"
		       "\"Overrides\":[{\"Name\":\"db\",\"Protocol\":\"tcp\"}]},"
		       "\"MaxInboundConnections\":10,\"Meta\":{\"team\":\"core\"}}");
	assert_string_equal(config_entry_kind(e), "service-defaults");
	assert_string_equal(config_entry_name(e), "web");
	assert_null(config_entry_intention_sources(e));
	json_decref(e);

	REFUSED("Kind: service-defaults\nName: web\nProtocol: udp\n",
		"e.yaml:3:1: Protocol: \"udp\" is not one of tcp, http, http2, grpc");
	REFUSED("Kind: service-defaults\nName: web\nProtocl: http\n",
		"e.yaml:3:1: Protocl: unknown field");
	REFUSED("Kind: service-defaults\nName: web\nMaxInboundConnections: -1\n",
		"e.yaml:3:1: MaxInboundConnections: -1 is out of range [0, 4294967295]");
	REFUSED("Kind: service-defaults\nName: web\nUpstreamConfig:\n  Overrides:\n    - Name: a\n    - Protocol: http\n",
		"e.yaml:6:7: UpstreamConfig.Overrides[1].Name: is required");
	REFUSED("Kind: service-defaults\nName: web\nMeshGateway:\n  Mode: far\n",
		"e.yaml:4:3: MeshGateway.Mode: \"far\" is not one of none, local, remote");
	REFUSED("Kind: service-defaults\nName: web\nExpose:\n  Paths:\n    - Path: health\n      LocalPathPort: 8080\n",
		"e.yaml:5:7: Expose.Paths[0].Path: must start with '/'");
	REFUSED("Kind: service-defaults\nProtocol: http\n", "e.yaml:1:1: Name: is required");
	REFUSED("Kind: service-defaults\nName: web/1\n",
		"e.yaml:2:1: Name: \"web/1\" is not a valid name (letters, digits, '-', '_', '.'; at most 256)");
	REFUSED("Kind: service-defaults\nName: web\nMeta:\n  consul-owner: me\n",
		"e.yaml:4:3: Meta.consul-owner: the \"consul-\" prefix is reserved");
	REFUSED("Kind: service-defaults\nName: web\nMode: magic\n",
		"e.yaml:3:1: Mode: \"magic\" is not one of direct, transparent");
	REFUSED("Kind: service-defaults\nName: web\nname: api\n",
		"e.yaml:3:1: name: given twice (as Name)");
	REFUSED("Kind: service-default\nName: web\n",
		"e.yaml:1:1: Kind: unknown kind \"service-default\" (service-defaults, proxy-defaults, service-router, service-splitter, service-resolver, service-intentions or mesh)");
	REFUSED("Name: web\n", "e.yaml:1:1: Kind: is required");
}

/* ---- proxy-defaults ---- */

static void test_proxy_defaults(void **state)
{
	json_t *e;

	(void)state;
	e = decode_ok("Kind: proxy-defaults\nName: global\nConfig:\n  protocol: http\n  local_connect_timeout_ms: 1000\n"
		      "Mode: transparent\nTransparentProxy: {OutboundListenerPort: 15001}\n"
		      "AccessLogs: {Enabled: true, Type: file, Path: /var/log/envoy.log}\n");
	assert_json(e, "{\"Kind\":\"proxy-defaults\",\"Name\":\"global\",\"Config\":{\"protocol\":\"http\","
		       "\"local_connect_timeout_ms\":1000},\"Mode\":\"transparent\","
		       "\"TransparentProxy\":{\"OutboundListenerPort\":15001},"
		       "\"AccessLogs\":{\"Enabled\":true,\"Type\":\"file\",\"Path\":\"/var/log/envoy.log\"}}");
	json_decref(e);

	REFUSED("Kind: proxy-defaults\nName: web\n",
		"e.yaml:2:1: Name: \"web\" is not supported, proxy-defaults must be named \"global\"");
	REFUSED("Kind: proxy-defaults\nName: global\nConfig:\n  protocol: udp\n",
		"e.yaml:4:3: Config.protocol: \"udp\" is not one of tcp, http, http2, grpc");
	REFUSED("Kind: proxy-defaults\nName: global\nConfig:\n  local_connect_timeout_ms: soon\n",
		"e.yaml:4:3: Config.local_connect_timeout_ms: must be a non-negative integer");
	REFUSED("Kind: proxy-defaults\nName: global\nConfig: [1]\n", "e.yaml:3:1: Config: must be an object");
	REFUSED("Kind: proxy-defaults\nName: global\nAccessLogs:\n  Type: stdout\n  Path: /tmp/x\n",
		"e.yaml:5:3: AccessLogs.Path: only allowed with Type \"file\"");
	REFUSED("Kind: proxy-defaults\nName: global\nTransparentProxy:\n  OutboundListenerPort: 70000\n",
		"e.yaml:4:3: TransparentProxy.OutboundListenerPort: 70000 is out of range [0, 65535]");
}

/* ---- service-router ---- */

static const char router_ok[] =
	"Kind: service-router\n"
	"Name: api\n"
	"Routes:\n"
	"  - Match:\n"
	"      HTTP:\n"
	"        PathPrefix: /v2\n"
	"        Methods: [get, Post]\n"
	"        Header:\n"
	"          - {Name: x-debug, Present: true}\n"
	"        QueryParam:\n"
	"          - {Name: canary, Exact: '1'}\n"
	"    Destination:\n"
	"      ServiceSubset: v2\n"
	"      PrefixRewrite: /\n"
	"      RequestTimeout: 1500ms\n"
	"      NumRetries: 2\n"
	"      RetryOnConnectFailure: true\n"
	"      RetryOnStatusCodes: [503, 504]\n"
	"      RetryOn: [reset]\n"
	"      RequestHeaders: {Set: {x-route: v2}, Remove: [cookie]}\n";

static void test_service_router(void **state)
{
	json_t *e = decode_ok(router_ok);
	json_t *http = json_object_get(json_object_get(json_array_get(json_object_get(e, "Routes"), 0), "Match"), "HTTP");
	json_t *dest = json_object_get(json_array_get(json_object_get(e, "Routes"), 0), "Destination");

	(void)state;
	assert_json(json_object_get(http, "Methods"), "[\"GET\", \"POST\"]");
	assert_string_equal(json_string_value(json_object_get(dest, "RequestTimeout")), "1.5s");
	json_decref(e);

	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - {}\n  - {}\n  - Match:\n      HTTP:\n        PathPrefix: v2\n",
		"e.yaml:8:9: Routes[2].Match.HTTP.PathPrefix: must start with '/'");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Match:\n      HTTP: {PathExact: /a, PathRegex: /b.*}\n",
		"e.yaml:5:7: Routes[0].Match.HTTP: at most one of PathExact, PathPrefix or PathRegex");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Match:\n      HTTP:\n        Header:\n          - {Name: a, Exact: b}\n          - {Name: c, Exact: d, Prefix: e}\n",
		"e.yaml:8:13: Routes[0].Match.HTTP.Header[1]: needs exactly one of Present, Exact, Prefix, Suffix or Regex");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Match:\n      HTTP:\n        QueryParam: [{Exact: b}]\n",
		"e.yaml:6:22: Routes[0].Match.HTTP.QueryParam[0].Name: is required");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Match:\n      HTTP:\n        Methods: [GET, FETCH]\n",
		"e.yaml:6:24: Routes[0].Match.HTTP.Methods[1]: \"FETCH\" is not an HTTP method");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Match:\n      HTTP:\n        Methods: [GET, get]\n",
		"e.yaml:6:24: Routes[0].Match.HTTP.Methods[1]: \"GET\" given more than once");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Match:\n      HTTP: {PathRegex: /a.*}\n    Destination:\n      PrefixRewrite: /b\n",
		"e.yaml:7:7: Routes[0].Destination.PrefixRewrite: needs Match.HTTP.PathExact or PathPrefix");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Destination:\n      RetryOn: [5xx, sometimes]\n",
		"e.yaml:5:22: Routes[0].Destination.RetryOn[1]: \"sometimes\" is not a retry condition");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Destination:\n      RetryOnStatusCodes: [99]\n",
		"e.yaml:5:28: Routes[0].Destination.RetryOnStatusCodes[0]: 99 is out of range [100, 599]");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Destination:\n      RequestTimeout: 5 parsecs\n",
		"e.yaml:5:7: Routes[0].Destination.RequestTimeout: \"5 parsecs\" is not a duration (use a number with a unit: 500ms, 10s, 5m, 1h)");
	REFUSED("Kind: service-router\nName: api\nRoutes:\n  - Destination:\n      NumRetries: two\n",
		"e.yaml:5:7: Routes[0].Destination.NumRetries: must be an integer");
	REFUSED("Kind: service-router\nName: api\nRoutes: {a: 1}\n",
		"e.yaml:3:1: Routes: must be an array of objects");
}

/* ---- service-splitter ---- */

static void test_service_splitter(void **state)
{
	json_t *e;

	(void)state;
	e = decode_ok("Kind: service-splitter\nName: api\nSplits:\n  - {Weight: 33.333, ServiceSubset: v1}\n"
		      "  - {weight: 66.667, service_subset: v2}\n");
	/* Weights round to hundredths, as Consul stores them. */
	assert_true(json_real_value(json_object_get(json_array_get(json_object_get(e, "Splits"), 0), "Weight")) == 33.33);
	assert_true(json_real_value(json_object_get(json_array_get(json_object_get(e, "Splits"), 1), "Weight")) == 66.67);
	json_decref(e);
	/* Within 0.01 of 100 counts as 100. */
	e = decode_ok("Kind: service-splitter\nName: api\nSplits:\n  - {Weight: 50.004, Service: a}\n  - {Weight: 49.996, Service: b}\n");
	json_decref(e);

	REFUSED("Kind: service-splitter\nName: api\nSplits:\n  - {Weight: 50, ServiceSubset: v1}\n  - {Weight: 49.98, ServiceSubset: v2}\n",
		"e.yaml:3:1: Splits: the weights must add up to 100, not 99.98");
	REFUSED("Kind: service-splitter\nName: api\nSplits: []\n",
		"e.yaml:3:1: Splits: at least one split is required");
	REFUSED("Kind: service-splitter\nName: api\n", "e.yaml:1:1: Splits: at least one split is required");
	REFUSED("Kind: service-splitter\nName: api\nSplits:\n  - {Weight: 50, ServiceSubset: v1}\n  - {Weight: 50, ServiceSubset: v1}\n",
		"e.yaml:5:5: Splits[1]: same destination as Splits[0] (service \"api\", subset \"v1\")");
	REFUSED("Kind: service-splitter\nName: api\nSplits:\n  - {Weight: \"100\"}\n",
		"e.yaml:4:6: Splits[0].Weight: must be a number");
	REFUSED("Kind: service-splitter\nName: api\nSplits:\n  - {Weight: 120, Service: a}\n  - {Weight: -20, Service: b}\n",
		"e.yaml:4:6: Splits[0].Weight: 120 is not between 0 and 100");
}

/* ---- service-resolver ---- */

static void test_service_resolver(void **state)
{
	json_t *e;

	(void)state;
	e = decode_ok("Kind: service-resolver\nName: api\nDefaultSubset: v1\n"
		      "Subsets:\n  v1: {Filter: 'Service.Meta.version == \"1\"', OnlyPassing: true}\n  v2: {Filter: 'Service.Meta.version == \"2\"'}\n"
		      "Failover:\n  '*': {Datacenters: [dc2]}\n  v2: {ServiceSubset: v1}\n"
		      "ConnectTimeout: 15000000000\nRequestTimeout: 30s\n"
		      "LoadBalancer:\n  Policy: ring_hash\n  RingHashConfig: {MinimumRingSize: 1024}\n"
		      "  HashPolicies:\n    - {Field: header, FieldValue: x-user}\n    - {SourceIP: true}\n");
	/* A number is nanoseconds, as Go encodes a Duration. */
	assert_string_equal(json_string_value(json_object_get(e, "ConnectTimeout")), "15s");
	json_decref(e);
	e = decode_ok("Kind: service-resolver\nName: old\nRedirect: {Service: api, ServiceSubset: v2}\n");
	json_decref(e);

	REFUSED("Kind: service-resolver\nName: api\nSubsets:\n  V1: {}\n",
		"e.yaml:4:3: Subsets.V1: subset names are DNS labels (a-z, 0-9, '-', at most 63)");
	REFUSED("Kind: service-resolver\nName: api\nDefaultSubset: v3\nSubsets: {v1: {}}\n",
		"e.yaml:3:1: DefaultSubset: \"v3\" is not one of Subsets");
	REFUSED("Kind: service-resolver\nName: api\nRedirect: {Service: b}\nFailover: {'*': {Service: c}}\n",
		"e.yaml:3:1: Redirect: cannot be set with Failover");
	REFUSED("Kind: service-resolver\nName: api\nRedirect: {}\n", "e.yaml:3:1: Redirect: is empty");
	REFUSED("Kind: service-resolver\nName: api\nRedirect: {ServiceSubset: v1}\nSubsets: {v1: {}}\n",
		"e.yaml:3:12: Redirect.ServiceSubset: needs Redirect.Service");
	REFUSED("Kind: service-resolver\nName: api\nSubsets: {v1: {}}\nFailover:\n  v3: {Service: b}\n",
		"e.yaml:5:3: Failover.v3: \"v3\" is not one of Subsets");
	REFUSED("Kind: service-resolver\nName: api\nFailover:\n  '*': {ServiceSubset: v9}\n",
		"e.yaml:4:9: Failover.*.ServiceSubset: \"v9\" is not a subset of \"api\"");
	REFUSED("Kind: service-resolver\nName: api\nLoadBalancer:\n  Policy: round_robin\n  HashPolicies: [{SourceIP: true}]\n",
		"e.yaml:5:3: LoadBalancer.HashPolicies: only with Policy \"ring_hash\" or \"maglev\"");
	REFUSED("Kind: service-resolver\nName: api\nLoadBalancer:\n  Policy: maglev\n  HashPolicies: [{Field: cookie}]\n",
		"e.yaml:5:18: LoadBalancer.HashPolicies[0].FieldValue: is required with Field");
	REFUSED("Kind: service-resolver\nName: api\nLoadBalancer: {Policy: fastest}\n",
		"e.yaml:3:16: LoadBalancer.Policy: \"fastest\" is not one of random, round_robin, least_request, ring_hash, maglev");
	REFUSED("Kind: service-resolver\nName: api\nConnectTimeout: -5s\n",
		"e.yaml:3:1: ConnectTimeout: must not be negative");
	REFUSED("Kind: service-resolver\nName: api\nSubsets:\n  v1: {Filter: 'Service.Meta.v == \"1'}\n",
		"e.yaml:4:8: Subsets.v1.Filter: unbalanced quotes");
}

/* ---- service-intentions ---- */

static void test_service_intentions(void **state)
{
	json_t *e, *src;

	(void)state;
	e = decode_ok("Kind: service-intentions\nName: api\nSources:\n"
		      "  - Name: web\n    Permissions:\n      - Action: allow\n        HTTP: {PathPrefix: /v1, Methods: [GET]}\n"
		      "  - {Name: billing, Action: allow, Precedence: 9, Description: pays}\n"
		      "  - {Name: '*', Action: deny}\n");
	src = config_entry_intention_sources(e);
	assert_int_equal(json_array_size(src), 3);
	/* Permissions are kept as given for lib/intention; Precedence is
	 * computed, never taken from the client. */
	assert_json(json_object_get(json_array_get(src, 0), "Permissions"),
		    "[{\"Action\":\"allow\",\"HTTP\":{\"PathPrefix\":\"/v1\",\"Methods\":[\"GET\"]}}]");
	assert_null(json_object_get(json_array_get(src, 1), "Precedence"));
	json_decref(e);
	e = decode_ok("Kind: service-intentions\nName: '*'\nSources: [{Name: '*', Action: deny}]\n");
	json_decref(e);

	REFUSED("Kind: service-intentions\nName: api\nSources:\n  - {Name: web, Action: allow}\n  - {Action: deny}\n",
		"e.yaml:5:5: Sources[1].Name: is required");
	REFUSED("Kind: service-intentions\nName: api\nSources:\n  - Name: web\n    Action: allow\n    Permissions: [{Action: deny}]\n",
		"e.yaml:5:5: Sources[0].Action: must be omitted when Permissions are given");
	REFUSED("Kind: service-intentions\nName: api\nSources:\n  - Name: web\n",
		"e.yaml:4:5: Sources[0].Action: must be \"allow\" or \"deny\" (or give Permissions)");
	REFUSED("Kind: service-intentions\nName: api\nSources:\n  - {Name: web, Action: permit}\n",
		"e.yaml:4:17: Sources[0].Action: \"permit\" is not one of allow, deny");
	REFUSED("Kind: service-intentions\nName: api\nSources:\n  - {Name: web, Action: allow}\n  - {Name: web, Action: deny}\n",
		"e.yaml:5:5: Sources[1]: source \"web\" is already given in Sources[0]");
	REFUSED("Kind: service-intentions\nName: api\nSources:\n  - {Name: web, Permissions: {Action: allow}}\n",
		"e.yaml:4:17: Sources[0].Permissions: must be an array");
	REFUSED("Kind: service-intentions\nName: api\nSources:\n  - {Name: web, Action: allow, Type: kube}\n",
		"e.yaml:4:32: Sources[0].Type: \"kube\" is not one of consul");
}

/* ---- mesh ---- */

static void test_mesh(void **state)
{
	json_t *e;

	(void)state;
	e = decode_ok("Kind: mesh\nTransparentProxy: {MeshDestinationsOnly: true}\n"
		      "TLS:\n  Incoming: {TLSMinVersion: TLSv1_2, TLSMaxVersion: TLSv1_3, CipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]}\n"
		      "HTTP: {SanitizeXForwardedClientCert: true}\nPeering: {PeerThroughMeshGateways: true}\n");
	/* The one mesh entry is always named "mesh". */
	assert_string_equal(config_entry_name(e), "mesh");
	json_decref(e);

	REFUSED("Kind: mesh\nName: other\n",
		"e.yaml:2:1: Name: \"other\" is not supported, the mesh entry is named \"mesh\"");
	REFUSED("Kind: mesh\nTLS:\n  Outgoing: {TLSMinVersion: TLSv1_3, TLSMaxVersion: TLSv1_2}\n",
		"e.yaml:3:14: TLS.Outgoing.TLSMinVersion: TLSv1_3 is above TLSMaxVersion TLSv1_2");
	REFUSED("Kind: mesh\nTLS:\n  Incoming:\n    CipherSuites: [TLS_RSA_WITH_RC4_128_SHA]\n",
		"e.yaml:4:20: TLS.Incoming.CipherSuites[0]: \"TLS_RSA_WITH_RC4_128_SHA\" is not a supported cipher suite");
	REFUSED("Kind: mesh\nTLS:\n  Incoming:\n    TLSMinVersion: TLSv1_3\n    CipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
		"e.yaml:5:5: TLS.Incoming.CipherSuites: not configurable with TLSv1_3 as the minimum (TLS 1.3 suites are fixed)");
	REFUSED("Kind: mesh\nTLS:\n  Incoming: {TLSMinVersion: SSLv3}\n",
		"e.yaml:3:14: TLS.Incoming.TLSMinVersion: \"SSLv3\" is not one of TLS_AUTO, TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3");
	REFUSED("Kind: mesh\nHTTP: {SanitizeXForwardedClientCert: yes}\n",
		"e.yaml:2:8: HTTP.SanitizeXForwardedClientCert: must be true or false");
}

/* ---- JSON and YAML give the same entry ---- */

static void test_json_and_yaml_same(void **state)
{
	static const char *const pairs[][2] = {
		{ "{\"Kind\": \"service-router\", \"Name\": \"api\", \"Routes\": [{\"Match\": {\"HTTP\": "
		  "{\"PathPrefix\": \"/v2\", \"Methods\": [\"GET\"]}}, \"Destination\": {\"ServiceSubset\": "
		  "\"v2\", \"RequestTimeout\": \"10s\", \"NumRetries\": 3}}]}",
		  "Kind: service-router\nName: api\nRoutes:\n  - Match:\n      HTTP:\n        PathPrefix: /v2\n"
		  "        Methods: [GET]\n    Destination:\n      ServiceSubset: v2\n      RequestTimeout: 10s\n"
		  "      NumRetries: 3\n" },
		{ "{\"kind\": \"service-resolver\", \"name\": \"api\", \"default_subset\": \"v1\", \"subsets\": "
		  "{\"v1\": {\"only_passing\": true}}, \"connect_timeout\": \"5s\"}",
		  "Kind: service-resolver\nName: api\nDefaultSubset: v1\nSubsets:\n  v1:\n    OnlyPassing: true\n"
		  "ConnectTimeout: 5s\n" },
		{ "{\"Kind\": \"service-splitter\", \"Name\": \"api\", \"Splits\": [{\"Weight\": 90, "
		  "\"ServiceSubset\": \"v1\"}, {\"Weight\": 10.0, \"ServiceSubset\": \"v2\"}]}",
		  "Kind: service-splitter\nName: api\nSplits:\n  - Weight: 90.0\n    ServiceSubset: v1\n"
		  "  - Weight: 10\n    ServiceSubset: v2\n" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		json_t *a = decode_ok(pairs[i][0]), *b = decode_ok(pairs[i][1]), *c = NULL;
		json_t *raw = json_loads(pairs[i][0], 0, NULL);
		char *err = NULL;

		assert_true(json_equal(a, b));
		/* The JSON text read by jansson (the HTTP API's path) too. */
		assert_int_equal(config_entry_decode(raw, &c, &err), WEFT_OK);
		assert_true(json_equal(a, c));
		json_decref(a);
		json_decref(b);
		json_decref(c);
		json_decref(raw);
	}
}

static void test_decode_file(void **state)
{
	static const char multi[] =
		"Kind: service-defaults\nName: api\nProtocol: http\n"
		"---\n"
		"Kind: service-resolver\nName: api\nSubsets:\n  v1: {}\n"
		"---\n";
	static const char bad_second[] =
		"Kind: service-defaults\nName: api\n"
		"---\n"
		"Kind: service-router\nName: api\nRoutes:\n  - Destination:\n      NumRetries: -1\n";
	static const char json_file[] =
		"{\n  \"Kind\": \"service-splitter\",\n  \"Name\": \"api\",\n  \"Splits\": [\n"
		"    {\"Weight\": 50},\n    {\"Weight\": 60, \"Service\": \"b\"}\n  ]\n}\n";
	json_t *all = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(config_entry_decode_file(multi, strlen(multi), "p.yaml", &all, &err), WEFT_OK);
	assert_int_equal(json_array_size(all), 2);
	assert_string_equal(config_entry_kind(json_array_get(all, 1)), "service-resolver");
	json_decref(all);
	/* The error names the file, the line of the field in the second
	 * document, and the field. */
	assert_int_equal(config_entry_decode_file(bad_second, strlen(bad_second), "p.yaml", &all, &err),
			 WEFT_EINVAL);
	assert_null(all);
	assert_string_equal(err, "p.yaml:8:7: Routes[0].Destination.NumRetries: -1 is out of range [0, 4294967295]");
	assert_int_equal(config_entry_decode_file(json_file, strlen(json_file), "s.json", &all, &err),
			 WEFT_EINVAL);
	assert_string_equal(err, "s.json:4:3: Splits: the weights must add up to 100, not 110.00");
	assert_int_equal(config_entry_decode_file("a: [", 4, "x.yaml", &all, &err), WEFT_EINVAL);
	assert_string_equal(err, "x.yaml:2:1: did not find expected node content while parsing a flow node");
	assert_int_equal(config_entry_decode_file("# nothing\n", 10, "e.yaml", &all, &err), WEFT_EINVAL);
	assert_string_equal(err, "e.yaml: no config entry in the file");
	free(err);
}

/* ---- Cross-entry checks over an in-memory store ---- */

struct mem {
	json_t *entries;
	int with_list;
};

static json_t *mem_get(void *arg, const char *kind, const char *name)
{
	struct mem *m = arg;
	json_t *e;
	size_t i;

	json_array_foreach(m->entries, i, e) {
		if (!strcmp(config_entry_kind(e), kind) && !strcmp(config_entry_name(e), name))
			return json_incref(e);
	}
	return NULL;
}

static json_t *mem_list(void *arg, const char *kind)
{
	struct mem *m = arg;
	json_t *out = json_array(), *e;
	size_t i;

	json_array_foreach(m->entries, i, e) {
		if (!strcmp(config_entry_kind(e), kind))
			json_array_append(out, e);
	}
	return out;
}

static struct config_entry_lookup lookup_of(struct mem *m)
{
	struct config_entry_lookup lk = { mem_get, m->with_list ? mem_list : NULL, m };

	return lk;
}

/* Replaces or adds an entry in the store (no checks). */
static void mem_put(struct mem *m, json_t *e)
{
	json_t *x;
	size_t i;

	json_array_foreach(m->entries, i, x) {
		if (!strcmp(config_entry_kind(x), config_entry_kind(e)) &&
		    !strcmp(config_entry_name(x), config_entry_name(e))) {
			json_array_set_new(m->entries, i, e);
			return;
		}
	}
	json_array_append_new(m->entries, e);
}

static struct mem *mem_new(int with_list, const char *const *yamls)
{
	struct mem *m = calloc(1, sizeof(*m));

	m->entries = json_array();
	m->with_list = with_list;
	for (; yamls && *yamls; yamls++)
		mem_put(m, decode_ok(*yamls));
	return m;
}

static void mem_free(struct mem *m)
{
	json_decref(m->entries);
	free(m);
}

/* Checks writing the entry; returns the error (caller frees) or NULL. */
static char *write_err(struct mem *m, const char *yaml)
{
	struct config_entry_lookup lk = lookup_of(m);
	json_t *e = decode_ok(yaml);
	char *err = NULL;
	int rc = config_entry_check_write(config_entry_kind(e), config_entry_name(e), e, &lk, &err);

	json_decref(e);
	if (rc == WEFT_OK) {
		assert_null(err);
		return NULL;
	}
	assert_int_equal(rc, WEFT_EINVAL);
	return err;
}

static char *delete_err(struct mem *m, const char *kind, const char *name)
{
	struct config_entry_lookup lk = lookup_of(m);
	char *err = NULL;
	int rc = config_entry_check_delete(kind, name, &lk, &err);

	if (rc == WEFT_OK)
		return NULL;
	assert_int_equal(rc, WEFT_EINVAL);
	return err;
}

#define WRITE_OK(m, yaml) do { \
	char *e_ = write_err(m, yaml); \
	if (e_) \
		fail_msg("write refused: %s", e_); \
} while (0)

#define WRITE_REFUSED(m, yaml, msg) do { \
	char *e_ = write_err(m, yaml); \
	if (e_ == NULL) \
		fail_msg("write accepted: %s", yaml); \
	if (strcmp(e_, msg)) \
		fail_msg("error\n  got:  %s\n  want: %s", e_, msg); \
	free(e_); \
} while (0)

#define SD_API_HTTP "Kind: service-defaults\nName: api\nProtocol: http\n"
#define SD_API_TCP "Kind: service-defaults\nName: api\nProtocol: tcp\n"
#define RESOLVER_API_V1 "Kind: service-resolver\nName: api\nSubsets: {v1: {}}\n"
#define RESOLVER_API_V1V2 "Kind: service-resolver\nName: api\nSubsets: {v1: {}, v2: {}}\n"
#define ROUTER_API_V2 "Kind: service-router\nName: api\nRoutes:\n  - Match: {HTTP: {PathPrefix: /v2}}\n    Destination: {ServiceSubset: v2}\n"

static void test_router_subsets(void **state)
{
	static const char *const with_v1[] = {
		SD_API_HTTP, RESOLVER_API_V1, "Kind: service-defaults\nName: web\nProtocol: http\n", NULL };
	static const char *const with_v2[] = { SD_API_HTTP, RESOLVER_API_V1V2, NULL };
	static const char *const no_resolver[] = { SD_API_HTTP, NULL };
	struct mem *m;

	(void)state;
	m = mem_new(1, with_v1);
	WRITE_REFUSED(m, ROUTER_API_V2,
		      "Routes[0].Destination.ServiceSubset: service \"api\" has no subset \"v2\" in its service-resolver");
	/* A destination in another service is checked against that service. */
	WRITE_REFUSED(m, "Kind: service-router\nName: web\nRoutes:\n  - Destination: {Service: api, ServiceSubset: v3}\n",
		      "Routes[0].Destination.ServiceSubset: service \"api\" has no subset \"v3\" in its service-resolver");
	mem_free(m);

	m = mem_new(1, no_resolver);
	WRITE_REFUSED(m, ROUTER_API_V2,
		      "Routes[0].Destination.ServiceSubset: service \"api\" has no subset \"v2\" (it has no service-resolver)");
	mem_free(m);

	m = mem_new(0, with_v2);
	WRITE_OK(m, ROUTER_API_V2);
	mem_free(m);
}

static void test_l7_needs_http(void **state)
{
	static const char *const none[] = { NULL };
	static const char *const pd_http[] = { "Kind: proxy-defaults\nName: global\nConfig: {protocol: HTTP}\n", NULL };
	static const char *const sd_tcp_pd_http[] = {
		SD_API_TCP, "Kind: proxy-defaults\nName: global\nConfig: {protocol: http}\n", NULL };
	struct mem *m;

	(void)state;
	m = mem_new(1, none);
	WRITE_REFUSED(m, "Kind: service-router\nName: api\nRoutes: [{Match: {HTTP: {PathPrefix: /a}}}]\n",
		      "Routes: a service-router for \"api\" needs protocol http, http2 or grpc, but service \"api\" has protocol \"tcp\" (the default: neither service-defaults \"api\" nor proxy-defaults \"global\" sets one)");
	/* As in Consul, a chain without a router takes the protocol of the
	 * service it resolves to first. */
	WRITE_REFUSED(m, "Kind: service-splitter\nName: api\nSplits: [{Weight: 100, Service: api2}]\n",
		      "Splits: a service-splitter for \"api\" needs protocol http, http2 or grpc, but service \"api2\" has protocol \"tcp\" (the default: neither service-defaults \"api2\" nor proxy-defaults \"global\" sets one)");
	/* A resolver alone is fine on tcp, except hashing on L7 fields. */
	WRITE_OK(m, RESOLVER_API_V1V2);
	WRITE_OK(m, "Kind: service-resolver\nName: api\nLoadBalancer: {Policy: maglev, HashPolicies: [{SourceIP: true}]}\n");
	WRITE_REFUSED(m, "Kind: service-resolver\nName: api\nLoadBalancer: {Policy: maglev, HashPolicies: [{SourceIP: true}, {Field: header, FieldValue: x-user}]}\n",
		      "LoadBalancer.HashPolicies[1].Field: a hash policy on a header, cookie or query parameter for \"api\" needs protocol http, http2 or grpc, but service \"api\" has protocol \"tcp\" (the default: neither service-defaults \"api\" nor proxy-defaults \"global\" sets one)");
	mem_free(m);

	m = mem_new(1, pd_http);
	WRITE_OK(m, "Kind: service-router\nName: api\nRoutes: [{Match: {HTTP: {PathPrefix: /a}}}]\n");
	WRITE_OK(m, "Kind: service-splitter\nName: api\nSplits: [{Weight: 100, Service: api2}]\n");
	mem_free(m);

	/* service-defaults wins over proxy-defaults, and the error says so. */
	m = mem_new(1, sd_tcp_pd_http);
	WRITE_REFUSED(m, "Kind: service-router\nName: api\nRoutes: []\n",
		      "Routes: a service-router for \"api\" needs protocol http, http2 or grpc, but service \"api\" has protocol \"tcp\" (from service-defaults \"api\" Protocol)");
	mem_free(m);
}

static void test_protocol_change_refused(void **state)
{
	static const char *const routed[] = { SD_API_HTTP, RESOLVER_API_V1V2, ROUTER_API_V2, NULL };
	static const char *const routed_by_pd[] = {
		"Kind: proxy-defaults\nName: global\nConfig: {protocol: http}\n",
		"Kind: service-splitter\nName: api\nSplits: [{Weight: 100, Service: api2}]\n", NULL };
	struct mem *m;

	(void)state;
	m = mem_new(1, routed);
	WRITE_REFUSED(m, SD_API_TCP,
		      "Protocol: a service-router for \"api\" needs protocol http, http2 or grpc, but service \"api\" has protocol \"tcp\" (from service-defaults \"api\" Protocol) (at service-router \"api\" Routes)");
	WRITE_OK(m, "Kind: service-defaults\nName: api\nProtocol: http2\n");
	mem_free(m);

	/* Without list, the check still sees the service's own chain. */
	m = mem_new(0, routed);
	WRITE_REFUSED(m, SD_API_TCP,
		      "Protocol: a service-router for \"api\" needs protocol http, http2 or grpc, but service \"api\" has protocol \"tcp\" (from service-defaults \"api\" Protocol) (at service-router \"api\" Routes)");
	mem_free(m);

	m = mem_new(1, routed_by_pd);
	WRITE_REFUSED(m, "Kind: proxy-defaults\nName: global\nConfig: {protocol: tcp}\n",
		      "Config.protocol: a service-splitter for \"api\" needs protocol http, http2 or grpc, but service \"api2\" has protocol \"tcp\" (from proxy-defaults \"global\" Config.protocol) (at service-splitter \"api\" Splits)");
	WRITE_OK(m, "Kind: proxy-defaults\nName: global\nConfig: {protocol: grpc}\n");
	/* service-defaults of the split's target decides, not the splitter's. */
	WRITE_OK(m, SD_API_TCP);
	WRITE_REFUSED(m, "Kind: service-defaults\nName: api2\nProtocol: tcp\n",
		      "Protocol: a service-splitter for \"api\" needs protocol http, http2 or grpc, but service \"api2\" has protocol \"tcp\" (from service-defaults \"api2\" Protocol) (at service-splitter \"api\" Splits)");
	mem_free(m);
}

static void test_mixed_protocols(void **state)
{
	static const char *const entries[] = {
		"Kind: service-defaults\nName: web\nProtocol: http\n",
		"Kind: service-defaults\nName: db\nProtocol: tcp\n", NULL };
	struct mem *m = mem_new(1, entries);

	(void)state;
	WRITE_REFUSED(m, "Kind: service-router\nName: web\nRoutes:\n  - Match: {HTTP: {PathPrefix: /a}}\n  - Destination: {Service: db}\n",
		      "Routes[1].Destination.Service: discovery chain \"web\" mixes protocols: service \"db\" has \"tcp\" (from service-defaults \"db\" Protocol) but service \"web\" has \"http\" (from service-defaults \"web\" Protocol)");
	mem_free(m);
}

static void test_redirect_loops(void **state)
{
	static const char *const entries[] = {
		"Kind: service-resolver\nName: a\nRedirect: {Service: b}\n",
		"Kind: service-resolver\nName: c\nRedirect: {Service: d}\n",
		"Kind: service-resolver\nName: d\nRedirect: {Service: b}\n", NULL };
	struct mem *m = mem_new(1, entries);

	(void)state;
	WRITE_REFUSED(m, "Kind: service-resolver\nName: b\nRedirect: {Service: a}\n",
		      "Redirect: circular resolver redirect: b -> a -> b (at service-resolver \"a\" Redirect)");
	WRITE_REFUSED(m, "Kind: service-resolver\nName: b\nRedirect: {Service: c}\nConnectTimeout: 1s\n",
		      "Redirect: circular resolver redirect: b -> c -> d -> b (at service-resolver \"d\" Redirect)");
	mem_free(m);
}

static void test_redirect_chains(void **state)
{
	static const char *const entries[] = {
		"Kind: service-resolver\nName: a\nRedirect: {Service: b}\n",
		"Kind: service-resolver\nName: c\nSubsets: {v1: {}}\nDefaultSubset: v1\n", NULL };
	struct mem *m = mem_new(1, entries);

	(void)state;
	/* a -> b -> c (default subset v1): no loop. */
	WRITE_OK(m, "Kind: service-resolver\nName: b\nRedirect: {Service: c}\n");
	/* A redirect to a subset the target lacks is refused. */
	WRITE_REFUSED(m, "Kind: service-resolver\nName: b\nRedirect: {Service: c, ServiceSubset: v2}\n",
		      "Redirect: service \"c\" has no subset \"v2\" in its service-resolver");
	/* A redirect to one's own subset is not a loop. */
	WRITE_OK(m, "Kind: service-resolver\nName: d\nSubsets: {v1: {}}\nRedirect: {Service: d, ServiceSubset: v1}\n");
	mem_free(m);
}

static void test_splitter_loop(void **state)
{
	static const char *const entries[] = {
		"Kind: proxy-defaults\nName: global\nConfig: {protocol: http}\n",
		"Kind: service-splitter\nName: a\nSplits: [{Weight: 50, Service: b}, {Weight: 50, Service: c}]\n",
		NULL };
	struct mem *m = mem_new(1, entries);

	(void)state;
	WRITE_REFUSED(m, "Kind: service-splitter\nName: b\nSplits: [{Weight: 100, Service: a}]\n",
		      "Splits: circular service-splitter reference through \"b\" (at service-splitter \"a\" Splits[0].Service)");
	WRITE_OK(m, "Kind: service-splitter\nName: b\nSplits: [{Weight: 100, Service: c}]\n");
	mem_free(m);
}

static void test_delete_checks(void **state)
{
	static const char *const entries[] = { SD_API_HTTP, RESOLVER_API_V1V2, ROUTER_API_V2, NULL };
	static const char *const unrouted[] = { SD_API_HTTP, RESOLVER_API_V1V2, NULL };
	struct mem *m = mem_new(1, entries);
	char *err;

	(void)state;
	err = delete_err(m, "service-resolver", "api");
	assert_non_null(err);
	assert_string_equal(err, "service-resolver \"api\": cannot delete: service \"api\" has no subset \"v2\" (it has no service-resolver) (service-router \"api\" Routes[0].Destination.ServiceSubset depends on it)");
	free(err);
	err = delete_err(m, "service-defaults", "api");
	assert_non_null(err);
	assert_string_equal(err, "service-defaults \"api\": cannot delete: a service-router for \"api\" needs protocol http, http2 or grpc, but service \"api\" has protocol \"tcp\" (the default: neither service-defaults \"api\" nor proxy-defaults \"global\" sets one) (service-router \"api\" Routes depends on it)");
	free(err);
	/* The router itself may go, and then the resolver. */
	assert_null(delete_err(m, "service-router", "api"));
	mem_free(m);
	m = mem_new(1, unrouted);
	assert_null(delete_err(m, "service-resolver", "api"));
	assert_null(delete_err(m, "mesh", "mesh"));
	mem_free(m);
}

static void test_l7_intentions(void **state)
{
	static const char *const tcp[] = { SD_API_TCP, NULL };
	static const char *const http_with_l7[] = {
		SD_API_HTTP,
		"Kind: service-intentions\nName: api\nSources:\n  - {Name: web, Action: allow}\n  - Name: admin\n    Permissions: [{Action: allow, HTTP: {PathPrefix: /admin}}]\n",
		NULL };
	struct mem *m = mem_new(1, tcp);

	(void)state;
	WRITE_REFUSED(m, "Kind: service-intentions\nName: api\nSources:\n  - Name: web\n    Permissions: [{Action: allow, HTTP: {PathPrefix: /}}]\n",
		      "Sources[0].Permissions: service \"api\" has protocol \"tcp\" (from service-defaults \"api\" Protocol), which does not allow L7 permissions; set its protocol to http, http2 or grpc");
	/* L4 intentions need no protocol; nor do wildcard destinations. */
	WRITE_OK(m, "Kind: service-intentions\nName: api\nSources: [{Name: web, Action: allow}]\n");
	WRITE_OK(m, "Kind: service-intentions\nName: '*'\nSources: [{Name: web, Permissions: [{Action: deny}]}]\n");
	mem_free(m);

	m = mem_new(1, http_with_l7);
	WRITE_REFUSED(m, SD_API_TCP,
		      "Protocol: service \"api\" would have protocol \"tcp\" (from service-defaults \"api\" Protocol), but service-intentions \"api\" Sources[1].Permissions need http, http2 or grpc");
	mem_free(m);
}

static void test_check_write_args(void **state)
{
	struct mem *m = mem_new(1, NULL);
	struct config_entry_lookup lk = lookup_of(m);
	json_t *e = decode_ok(SD_API_HTTP);
	char *err = NULL;

	(void)state;
	assert_int_equal(config_entry_check_write("service-defaults", "web", e, &lk, &err), WEFT_EINVAL);
	assert_string_equal(err, "Name: the entry is not service-defaults \"web\"");
	assert_int_equal(config_entry_check_write("nope", "api", e, &lk, &err), WEFT_EINVAL);
	assert_string_equal(err, "Kind: unknown kind \"nope\"");
	/* A hand-built splitter is checked again. */
	json_decref(e);
	e = json_pack("{s:s, s:s, s:[{s:f}]}", "Kind", "service-splitter", "Name", "api", "Splits",
		      "Weight", 40.0);
	assert_int_equal(config_entry_check_write("service-splitter", "api", e, &lk, &err), WEFT_EINVAL);
	assert_string_equal(err, "Splits: the weights must add up to 100, not 40.00");
	free(err);
	err = NULL;
	json_decref(e);
	/* Integer weights, as a JSON client may send them, count too. */
	e = json_pack("{s:s, s:s, s:[{s:i, s:s}, {s:i, s:s}]}", "Kind", "service-splitter", "Name",
		      "api", "Splits", "Weight", 60, "Service", "a", "Weight", 40, "Service", "b");
	assert_int_equal(config_entry_check_write("service-splitter", "api", e, &lk, &err), WEFT_EINVAL);
	/* The weights pass; what is left is the protocol (none is set here). */
	assert_non_null(strstr(err, "Splits: a service-splitter for \"api\" needs protocol"));
	free(err);
	json_decref(e);
	mem_free(m);
}

/* ---- examples/policy/ ---- */

static char *read_file(const char *dir, const char *name, size_t *len)
{
	char path[2400];
	char *data;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	data = file_read_all(path, 1 << 20, len);
	if (data == NULL)
		fail_msg("cannot read %s", path);
	return data;
}

static void test_examples_policy(void **state)
{
	const char *src = getenv("WEFT_SRCDIR");
	char dir[1024], idir[1100];
	struct mem *m = mem_new(1, NULL);
	struct config_entry_lookup lk = lookup_of(m);
	struct dirent *de;
	DIR *d;
	json_t *e;
	size_t i, n_entries = 0, n_intentions = 0;
	char *err = NULL;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/examples/policy", src ? src : ".");
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		struct yamlx_doc *doc = NULL;
		size_t len, k;
		char *data;

		if (strlen(de->d_name) < 6 || strcmp(de->d_name + strlen(de->d_name) - 5, ".yaml"))
			continue;
		data = read_file(dir, de->d_name, &len);
		if (yamlx_parse(data, len, de->d_name, &doc, &err) != WEFT_OK)
			fail_msg("%s", err);
		for (k = 0; k < yamlx_count(doc); k++) {
			if (config_entry_decode(yamlx_root(doc, k), &e, &err) != WEFT_OK)
				fail_msg("%s", yamlx_error(doc, k, err));
			mem_put(m, e);
			n_entries++;
		}
		yamlx_free(doc);
		free(data);
	}
	closedir(d);
	/* The set the README describes: 2 service-defaults, proxy-defaults,
	 * router, splitter, resolver, mesh, service-intentions. */
	assert_int_equal(n_entries, 8);
	/* Every entry, checked against all the others, is accepted. */
	json_array_foreach(m->entries, i, e) {
		if (config_entry_check_write(config_entry_kind(e), config_entry_name(e), e, &lk, &err))
			fail_msg("%s %s: %s", config_entry_kind(e), config_entry_name(e), err);
	}
	/* And the set holds together: api's resolver carries the router's v2. */
	assert_int_equal(config_entry_check_delete("service-resolver", "api", &lk, &err), WEFT_EINVAL);
	free(err);
	err = NULL;
	/* api's L7 intention needs api to stay http. */
	e = json_pack("{s:s,s:s,s:s}", "Kind", "service-defaults", "Name", "api", "Protocol", "tcp");
	assert_int_equal(config_entry_check_write("service-defaults", "api", e, &lk, &err), WEFT_EINVAL);
	json_decref(e);
	free(err);

	/* Intentions in Consul's intention JSON, for weftctl intention create -file. */
	snprintf(idir, sizeof(idir), "%s/intentions", dir);
	d = opendir(idir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		struct yamlx_doc *doc = NULL;
		size_t len;
		char *data;
		json_t *ixn;

		if (strlen(de->d_name) < 6 || strcmp(de->d_name + strlen(de->d_name) - 5, ".json"))
			continue;
		data = read_file(idir, de->d_name, &len);
		if (yamlx_parse(data, len, de->d_name, &doc, &err) != WEFT_OK)
			fail_msg("%s", err);
		ixn = yamlx_root(doc, 0);
		assert_true(json_is_string(json_object_get(ixn, "SourceName")));
		assert_true(json_is_string(json_object_get(ixn, "DestinationName")));
		assert_true(json_is_string(json_object_get(ixn, "Action")));
		n_intentions++;
		yamlx_free(doc);
		free(data);
	}
	closedir(d);
	assert_true(n_intentions >= 2);
	mem_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_defaults),
		cmocka_unit_test(test_proxy_defaults),
		cmocka_unit_test(test_service_router),
		cmocka_unit_test(test_service_splitter),
		cmocka_unit_test(test_service_resolver),
		cmocka_unit_test(test_service_intentions),
		cmocka_unit_test(test_mesh),
		cmocka_unit_test(test_json_and_yaml_same),
		cmocka_unit_test(test_decode_file),
		cmocka_unit_test(test_router_subsets),
		cmocka_unit_test(test_l7_needs_http),
		cmocka_unit_test(test_protocol_change_refused),
		cmocka_unit_test(test_mixed_protocols),
		cmocka_unit_test(test_redirect_loops),
		cmocka_unit_test(test_redirect_chains),
		cmocka_unit_test(test_splitter_loop),
		cmocka_unit_test(test_delete_checks),
		cmocka_unit_test(test_l7_intentions),
		cmocka_unit_test(test_check_write_args),
		cmocka_unit_test(test_examples_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
