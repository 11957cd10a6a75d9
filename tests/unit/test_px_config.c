/* px_config: the proxy's snapshot decoder, its validation errors (each
 * naming its field), its defaults, SPIFFE ID parsing, authorization at L4
 * and L7 through the intention engine, and the swap contract (a bad
 * snapshot leaves the running one in place). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "err.h"
#include "buf.h"
#include "jsonx.h"
#include "px_config.h"

#define TD "td1.weft"
#define ID(svc) "spiffe://" TD "/ns/default/dc/dc1/svc/" svc

/* The smallest valid snapshot. */
static const char *minimal =
	"{\"Version\": 1, \"Index\": 7,"
	" \"Proxy\": {\"Service\": \"web\", \"SpiffeID\": \"" ID("web") "\"},"
	" \"Inbound\": {\"BindPort\": 21000, \"AppPort\": 8080},"
	" \"Intentions\": {\"DefaultAction\": \"deny\"}}";

/* Every section, non-default values. */
static const char *full =
	"{\"version\": 1, \"index\": 99,"
	" \"Proxy\": {\"Service\": \"web\", \"ID\": \"web-1-sidecar\", \"SpiffeID\": \"" ID("web") "\","
	"   \"Mesh\": \"default\", \"Zone\": \"dc1\"},"
	" \"Inbound\": {\"BindAddress\": \"::\", \"BindPort\": 21000, \"AppAddress\": \"::1\","
	"   \"AppPort\": 8080, \"Protocol\": \"http\","
	"   \"Limits\": {\"MaxConnections\": 50, \"MaxPendingRequests\": 7, \"MaxHeaderBytes\": 2048,"
	"     \"MaxBodyBytes\": 1048576},"
	"   \"Timeouts\": {\"Connect\": \"250ms\", \"Idle\": \"1m\", \"Request\": 0}},"
	" \"Upstreams\": ["
	"   {\"Name\": \"api-main\", \"Service\": \"api\", \"BindPort\": 9191, \"Protocol\": \"http\","
	"    \"LoadBalancer\": {\"Policy\": \"ring_hash\", \"HashHeader\": \"x-user\"},"
	"    \"Timeouts\": {\"Connect\": \"1s\", \"Idle\": \"30s\", \"Request\": \"10s\"},"
	"    \"Retries\": {\"Attempts\": 3, \"On\": [\"connect-failure\", \"5xx\"], \"BudgetPercent\": 50,"
	"      \"MinRetryConcurrency\": 1},"
	"    \"PassiveHealth\": {\"ConsecutiveFailures\": 2, \"BaseEjectionTime\": \"10s\","
	"      \"MaxEjectionPercent\": 50},"
	"    \"Endpoints\": ["
	"      {\"Address\": \"10.0.0.1\", \"Port\": 21000, \"Weight\": 3, \"Zone\": \"dc1\","
	"       \"SpiffeID\": \"" ID("api") "\", \"Health\": \"warning\"},"
	"      {\"Address\": \"fd00::2\", \"Port\": 21001, \"SpiffeID\": \"spiffe://" TD "/ns/default/dc/dc2/svc/api\"}],"
	"    \"Destinations\": [{\"Address\": \"10.1.0.5\", \"Port\": 8080},"
	"      {\"Address\": \"fd00::5\", \"Port\": 8080}]},"
	"   {\"Service\": \"db\", \"BindPort\": 9192,"
	"    \"LoadBalancer\": {\"Policy\": \"least_request\"}, \"Retries\": {\"On\": []},"
	"    \"Destinations\": [{\"Address\": \"10.1.0.5\", \"Port\": 5432}]}],"
	" \"Intentions\": {\"DefaultAction\": \"allow\", \"Items\": ["
	"   {\"ID\": \"i-1\", \"SourceName\": \"evil\", \"DestinationName\": \"web\", \"Action\": \"deny\"},"
	"   {\"ID\": \"i-2\", \"SourceName\": \"*\", \"DestinationName\": \"*\", \"Action\": \"allow\"},"
	"   {\"ID\": \"i-3\", \"SourceName\": \"admin\", \"DestinationName\": \"web\", \"Permissions\": ["
	"     {\"Action\": \"allow\", \"HTTP\": {\"PathPrefix\": \"/admin\", \"Methods\": [\"GET\"]}},"
	"     {\"Action\": \"deny\", \"HTTP\": {\"PathPrefix\": \"/\"}}]}]},"
	" \"TLS\": {\"Certificate\": {\"PEM\": \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"},"
	"   \"PrivateKey\": {\"File\": \"/var/lib/weft/web.key\"},"
	"   \"TrustBundle\": {\"File\": \"/var/lib/weft/roots.pem\"}},"
	" \"Admin\": {\"BindAddress\": \"127.0.0.2\", \"BindPort\": 0},"
	" \"AccessLog\": {\"Enabled\": true, \"Path\": \"/var/log/weft/web.log\"},"
	" \"Passthrough\": {\"BindPort\": 8443, \"Routes\": ["
	"   {\"SNI\": \"Api.Zone1.Example\", \"Endpoints\": [{\"Address\": \"10.0.0.1\", \"Port\": 443},"
	"     {\"Address\": \"10.0.0.2\", \"Port\": 8443}]},"
	"   {\"SNI\": \"*.zone2.example\", \"Endpoints\": [{\"Address\": \"10.0.1.1\", \"Port\": 443}]}]},"
	" \"Transparent\": {\"BindPort\": 15001, \"Passthrough\": true}}";

static struct px_config *decode_ok(const char *text)
{
	struct px_config *cfg = NULL;
	char *err = NULL;
	int rc = px_config_decode(text, strlen(text), &cfg, &err);

	if (rc != WEFT_OK)
		fail_msg("decode failed: %s", err);
	assert_non_null(cfg);
	return cfg;
}

static void test_minimal_defaults(void **state)
{
	struct px_config *c = decode_ok(minimal);

	(void)state;
	assert_int_equal(c->version, 1);
	assert_int_equal(c->index, 7);
	assert_string_equal(c->identity.service, "web");
	assert_string_equal(c->identity.id, "");
	assert_string_equal(c->identity.mesh, "default");
	assert_string_equal(c->identity.zone, "dc1");        /* from the SPIFFE ID */
	assert_string_equal(c->identity.trust_domain, TD);
	assert_string_equal(c->inbound.bind_address, "0.0.0.0");
	assert_string_equal(c->inbound.app_address, "127.0.0.1");
	assert_int_equal(c->inbound.bind_port, 21000);
	assert_int_equal(c->inbound.app_port, 8080);
	assert_int_equal(c->inbound.protocol, PX_PROTO_TCP);
	assert_int_equal(c->inbound.limits.max_connections, 10000);
	assert_int_equal(c->inbound.limits.max_pending_requests, 1024);
	assert_int_equal(c->inbound.limits.max_header_bytes, 65536);
	assert_int_equal(c->inbound.limits.max_body_bytes, 0);
	assert_int_equal(c->inbound.timeouts.connect_ms, 5000);
	assert_int_equal(c->inbound.timeouts.idle_ms, 300000);
	assert_int_equal(c->inbound.timeouts.request_ms, 15000);
	assert_int_equal(c->n_upstreams, 0);
	assert_int_equal(c->default_action, INTENTION_DENY);
	assert_int_equal(intention_set_count(c->intentions), 0);
	assert_int_equal(c->tls.configured, 0);
	assert_string_equal(c->admin.bind_address, "127.0.0.1");
	assert_int_equal(c->admin.bind_port, 19000);
	assert_int_equal(c->access_log.enabled, 0);
	assert_string_equal(c->access_log.path, "-");
	assert_int_equal(c->passthrough.configured, 0);
	assert_int_equal(c->passthrough.n_routes, 0);
	px_config_unref(c);
}

static void test_full(void **state)
{
	struct px_config *c = decode_ok(full);
	const struct px_upstream *u, *db;

	(void)state;
	assert_int_equal(c->index, 99);
	assert_string_equal(c->identity.id, "web-1-sidecar");
	assert_string_equal(c->inbound.bind_address, "::");
	assert_string_equal(c->inbound.app_address, "::1");
	assert_int_equal(c->inbound.protocol, PX_PROTO_HTTP);
	assert_int_equal(c->inbound.limits.max_connections, 50);
	assert_int_equal(c->inbound.limits.max_pending_requests, 7);
	assert_int_equal(c->inbound.limits.max_header_bytes, 2048);
	assert_int_equal(c->inbound.limits.max_body_bytes, 1048576);
	assert_int_equal(c->inbound.timeouts.connect_ms, 250);
	assert_int_equal(c->inbound.timeouts.idle_ms, 60000);
	assert_int_equal(c->inbound.timeouts.request_ms, 0);
	assert_int_equal(c->n_upstreams, 2);
	u = px_config_upstream(c, "api-main");
	assert_ptr_equal(u, &c->upstreams[0]);
	assert_string_equal(u->service, "api");
	assert_string_equal(u->bind_address, "127.0.0.1");
	assert_int_equal(u->bind_port, 9191);
	assert_int_equal(u->lb_policy, PX_LB_RING_HASH);
	assert_string_equal(u->hash_header, "x-user");
	assert_int_equal(u->timeouts.connect_ms, 1000);
	assert_int_equal(u->timeouts.request_ms, 10000);
	assert_int_equal(u->retries.attempts, 3);
	assert_int_equal(u->retries.on, PX_RETRY_CONNECT_FAILURE | PX_RETRY_5XX);
	assert_int_equal(u->retries.budget_percent, 50);
	assert_int_equal(u->retries.min_retry_concurrency, 1);
	assert_int_equal(u->passive_health.consecutive_failures, 2);
	assert_int_equal(u->passive_health.base_ejection_ms, 10000);
	assert_int_equal(u->passive_health.max_ejection_percent, 50);
	assert_int_equal(u->n_endpoints, 2);
	assert_string_equal(u->endpoints[0].address, "10.0.0.1");
	assert_int_equal(u->endpoints[0].weight, 3);
	assert_string_equal(u->endpoints[0].zone, "dc1");
	assert_int_equal(u->endpoints[0].health, PX_HEALTH_WARNING);
	assert_int_equal(u->endpoints[1].weight, 1);
	assert_string_equal(u->endpoints[1].zone, "");
	assert_int_equal(u->endpoints[1].health, PX_HEALTH_PASSING);
	/* The second upstream: Name defaults to Service, the rest to defaults. */
	db = px_config_upstream(c, "db");
	assert_non_null(db);
	assert_int_equal(db->protocol, PX_PROTO_TCP);
	assert_int_equal(db->lb_policy, PX_LB_LEAST_REQUEST);
	assert_null(db->hash_header);
	assert_int_equal(db->retries.attempts, 2);
	assert_int_equal(db->retries.on, 0);           /* On: [] turns retries off */
	assert_int_equal(db->retries.budget_percent, 20);
	assert_int_equal(db->passive_health.consecutive_failures, 5);
	assert_int_equal(db->passive_health.base_ejection_ms, 30000);
	assert_int_equal(db->passive_health.max_ejection_percent, 10);
	assert_int_equal(db->n_endpoints, 0);
	assert_null(px_config_upstream(c, "nope"));
	assert_int_equal(c->default_action, INTENTION_ALLOW);
	assert_int_equal(intention_set_count(c->intentions), 3);
	assert_int_equal(c->tls.configured, 1);
	assert_non_null(c->tls.certificate.pem);
	assert_null(c->tls.certificate.file);
	assert_string_equal(c->tls.private_key.file, "/var/lib/weft/web.key");
	assert_string_equal(c->tls.trust_bundle.file, "/var/lib/weft/roots.pem");
	assert_string_equal(c->admin.bind_address, "127.0.0.2");
	assert_int_equal(c->admin.bind_port, 0);
	assert_int_equal(c->access_log.enabled, 1);
	assert_string_equal(c->access_log.path, "/var/log/weft/web.log");
	assert_int_equal(c->passthrough.configured, 1);
	assert_string_equal(c->passthrough.bind_address, "0.0.0.0");
	assert_int_equal(c->passthrough.bind_port, 8443);
	assert_int_equal(c->passthrough.n_routes, 2);
	assert_string_equal(c->passthrough.routes[0].sni, "Api.Zone1.Example");
	assert_int_equal(c->passthrough.routes[0].n_endpoints, 2);
	assert_string_equal(c->passthrough.routes[0].endpoints[1].address, "10.0.0.2");
	assert_int_equal(c->passthrough.routes[0].endpoints[1].port, 8443);
	assert_string_equal(c->passthrough.routes[1].sni, "*.zone2.example");
	assert_int_equal(c->passthrough.routes[1].endpoints[0].port, 443);
	/* transparent mode: the listener and each upstream's destinations */
	assert_int_equal(c->transparent.configured, 1);
	assert_string_equal(c->transparent.bind_address, "127.0.0.1");
	assert_int_equal(c->transparent.bind_port, 15001);
	assert_true(c->transparent.passthrough);
	assert_int_equal(u->n_destinations, 2);
	assert_string_equal(u->destinations[0].address, "10.1.0.5");
	assert_int_equal(u->destinations[0].port, 8080);
	assert_string_equal(u->destinations[1].address, "fd00::5");
	assert_int_equal(db->n_destinations, 1);
	assert_int_equal(db->destinations[0].port, 5432);   /* same address, another port */
	px_config_unref(c);
}

/* A snapshot from the server: the trust bundle only (the proxy's leaf and
 * key are files where it runs, given on its command line). */
static void test_tls_bundle_only(void **state)
{
	struct px_config *c = decode_ok(
		"{\"Version\": 1, \"Index\": 7,"
		" \"Proxy\": {\"Service\": \"web\", \"SpiffeID\": \"" ID("web") "\"},"
		" \"Inbound\": {\"BindPort\": 21000, \"AppPort\": 8080},"
		" \"Intentions\": {\"DefaultAction\": \"deny\"},"
		" \"TLS\": {\"TrustBundle\": {\"PEM\": \"-----BEGIN CERTIFICATE-----\\nAAAA\\n\"}}}");

	(void)state;
	assert_int_equal(c->tls.configured, 1);
	assert_null(c->tls.certificate.pem);
	assert_null(c->tls.certificate.file);
	assert_null(c->tls.private_key.file);
	assert_non_null(strstr(c->tls.trust_bundle.pem, "BEGIN CERTIFICATE"));
	px_config_unref(c);
}

static void test_redacted(void **state)
{
	struct px_config *c = decode_ok(full);
	json_t *j = px_config_to_json_redacted(c);
	char *s = jx_dump(j);

	(void)state;
	assert_null(strstr(s, "BEGIN CERTIFICATE"));
	assert_non_null(strstr(s, "\"PEM\":\"<redacted>\""));
	assert_non_null(strstr(s, "/var/lib/weft/web.key"));
	free(s);
	json_decref(j);
	/* The config itself still has its PEM. */
	assert_non_null(strstr(c->tls.certificate.pem, "BEGIN CERTIFICATE"));
	px_config_unref(c);
}

/* ---- mutations of the full snapshot, each refused naming its field ---- */

/* The key of obj equal to name but for case, or name. */
static const char *real_key(json_t *obj, const char *name)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		if (strcasecmp(k, name) == 0)
			return k;
	}
	return name;
}

/* Sets (or, with value NULL, deletes) the field at a dotted path such as
 * "Upstreams[0].Endpoints[1].Port" in root (names matched ignoring case,
 * as the decoder does). */
static void set_path(json_t *root, const char *path, const char *value)
{
	char buf[256], *p, *dot;
	json_t *cur = root;

	snprintf(buf, sizeof(buf), "%s", path);
	p = buf;
	for (;;) {
		char *br;
		int last;

		dot = strchr(p, '.');
		if (dot)
			*dot = '\0';
		last = dot == NULL;
		br = strchr(p, '[');
		if (br) {
			*br = '\0';
			cur = json_object_get(cur, real_key(cur, p));
			assert_non_null(cur);
			cur = json_array_get(cur, (size_t)atoi(br + 1));
			assert_non_null(cur);
			assert_false(last);
		} else if (last) {
			if (value == NULL) {
				json_object_del(cur, real_key(cur, p));
			} else {
				json_error_t je;
				json_t *v = json_loads(value, JSON_DECODE_ANY, &je);

				if (v == NULL)
					fail_msg("bad test value %s: %s", value, je.text);
				json_object_set_new(cur, real_key(cur, p), v);
			}
			return;
		} else {
			json_t *next = json_object_get(cur, real_key(cur, p));

			if (next == NULL) {
				next = json_object();
				json_object_set_new(cur, p, next);
			}
			cur = next;
		}
		p = dot + 1;
	}
}

struct bad_case {
	const char *path;
	const char *value;    /* JSON; NULL deletes the field */
	const char *error;    /* the error's start */
};

static const struct bad_case bad_cases[] = {
	{ "Version", NULL, "Version: is required" },
	{ "Version", "2", "Version: 2 is newer than this proxy's 1" },
	{ "Version", "0", "Version: 0 is out of range" },
	{ "Version", "\"1\"", "Version: must be an integer" },
	{ "Index", NULL, "Index: is required" },
	{ "Index", "0", "Index: 0 is out of range" },
	{ "Surprise", "true", "Surprise: unknown field" },
	{ "Proxy", NULL, "Proxy: is required" },
	{ "Proxy", "[]", "Proxy: must be an object" },
	{ "Proxy.Service", NULL, "Proxy.Service: is required" },
	{ "Proxy.Service", "\"we b\"", "Proxy.Service: \"we b\" is not a valid name" },
	{ "Proxy.Service", "\"api\"", "Proxy.SpiffeID: names service \"web\", not Proxy.Service \"api\"" },
	{ "Proxy.SpiffeID", NULL, "Proxy.SpiffeID: is required" },
	{ "Proxy.SpiffeID", "\"spiffe://TD/ns/default/dc/dc1/svc/web\"", "Proxy.SpiffeID: SPIFFE ID" },
	{ "Proxy.Mesh", "\"other\"", "Proxy.SpiffeID: names mesh \"default\", not Proxy.Mesh \"other\"" },
	{ "Proxy.Zone", "\"dc9\"", "Proxy.SpiffeID: names zone \"dc1\", not Proxy.Zone \"dc9\"" },
	{ "Proxy.Extra", "1", "Proxy.Extra: unknown field" },
	{ "Inbound", NULL, "Inbound: is required" },
	{ "Inbound.BindPort", NULL, "Inbound.BindPort: is required" },
	{ "Inbound.BindPort", "70000", "Inbound.BindPort: 70000 is out of range [1, 65535]" },
	{ "Inbound.BindPort", "0", "Inbound.BindPort: 0 is out of range [1, 65535]" },
	{ "Inbound.AppPort", "-1", "Inbound.AppPort: -1 is out of range" },
	{ "Inbound.BindAddress", "\"localhost\"", "Inbound.BindAddress: \"localhost\" is not an IPv4 or IPv6 address" },
	{ "Inbound.AppAddress", "\"1.2.3.4.5\"", "Inbound.AppAddress: \"1.2.3.4.5\" is not an IPv4" },
	{ "Inbound.Protocol", "\"grpc\"", "Inbound.Protocol: \"grpc\" is not one of tcp, http" },
	{ "Inbound.Limits.MaxConnections", "0", "Inbound.Limits.MaxConnections: 0 is out of range" },
	{ "Inbound.Limits.MaxHeaderBytes", "100", "Inbound.Limits.MaxHeaderBytes: 100 is out of range [1024, 1048576]" },
	{ "Inbound.Limits.MaxBodyBytes", "-5", "Inbound.Limits.MaxBodyBytes: -5 is out of range" },
	{ "Inbound.Limits.Max", "5", "Inbound.Limits.Max: unknown field" },
	{ "Inbound.Timeouts.Connect", "\"soon\"", "Inbound.Timeouts.Connect: \"soon\" is not a duration" },
	{ "Inbound.Timeouts.Connect", "\"0s\"", "Inbound.Timeouts.Connect: 0ms is out of range" },
	{ "Inbound.Timeouts.Idle", "\"25h\"", "Inbound.Timeouts.Idle: 90000000ms is out of range" },
	{ "Inbound.Timeouts.Request", "-1", "Inbound.Timeouts.Request: must not be negative" },
	{ "Upstreams", "{}", "Upstreams: must be an array" },
	{ "Upstreams[1].Service", NULL, "Upstreams[1].Service: is required" },
	{ "Upstreams[1].BindPort", "9191", "Upstreams[1].BindPort: 127.0.0.1:9191 clashes with Upstreams[0]'s 127.0.0.1:9191" },
	{ "Upstreams[1].BindPort", "21000", "Upstreams[1].BindPort: 127.0.0.1:21000 clashes with Inbound's :::21000" },
	{ "Upstreams[1].BindPort", NULL, "Upstreams[1].BindPort: is required" },
	{ "Upstreams[1].Name", "\"api-main\"", "Upstreams[1].Name: \"api-main\" is also Upstreams[0]'s name" },
	{ "Upstreams[1].Protocol", "\"udp\"", "Upstreams[1].Protocol: \"udp\" is not one of tcp, http" },
	{ "Upstreams[1].LoadBalancer.Policy", "\"maglev\"", "Upstreams[1].LoadBalancer.Policy: \"maglev\" is not one of round_robin, least_request, random, ring_hash" },
	{ "Upstreams[1].LoadBalancer.Policy", "\"ring_hash\"", "Upstreams[1].LoadBalancer.HashHeader: is required with Policy ring_hash" },
	{ "Upstreams[1].LoadBalancer.HashHeader", "\"x-user\"", "Upstreams[1].LoadBalancer.HashHeader: is only for Policy ring_hash" },
	{ "Upstreams[0].LoadBalancer.HashHeader", "\"x user\"", "Upstreams[0].LoadBalancer.HashHeader: \"x user\" is not an HTTP header name" },
	{ "Upstreams[0].Protocol", "\"tcp\"", "Upstreams[0].LoadBalancer.Policy: ring_hash on a header needs Protocol http" },
	{ "Upstreams[1].Retries.Attempts", "11", "Upstreams[1].Retries.Attempts: 11 is out of range [0, 10]" },
	{ "Upstreams[1].Retries.On", "[\"5xx\"]", "Upstreams[1].Retries.On: 5xx needs Protocol http" },
	{ "Upstreams[1].Retries.On", "[\"reset\"]", "Upstreams[1].Retries.On[0]: \"reset\" is not one of connect-failure, 5xx" },
	{ "Upstreams[1].Retries.On", "[1]", "Upstreams[1].Retries.On[0]: must be a string" },
	{ "Upstreams[1].Retries.BudgetPercent", "101", "Upstreams[1].Retries.BudgetPercent: 101 is out of range [0, 100]" },
	{ "Upstreams[1].PassiveHealth.ConsecutiveFailures", "1001", "Upstreams[1].PassiveHealth.ConsecutiveFailures: 1001 is out of range" },
	{ "Upstreams[1].PassiveHealth.BaseEjectionTime", "\"forever\"", "Upstreams[1].PassiveHealth.BaseEjectionTime: \"forever\" is not a duration" },
	{ "Upstreams[1].PassiveHealth.MaxEjectionPercent", "200", "Upstreams[1].PassiveHealth.MaxEjectionPercent: 200 is out of range" },
	{ "Upstreams[0].Endpoints[1].Port", "70000", "Upstreams[0].Endpoints[1].Port: 70000 is out of range [1, 65535]" },
	{ "Upstreams[0].Endpoints[1].Address", NULL, "Upstreams[0].Endpoints[1].Address: is required" },
	{ "Upstreams[0].Endpoints[1].Address", "\"api.internal\"", "Upstreams[0].Endpoints[1].Address: \"api.internal\" is not an IPv4 or IPv6 address" },
	{ "Upstreams[0].Endpoints[0].Weight", "0", "Upstreams[0].Endpoints[0].Weight: 0 is out of range [1, 65535]" },
	{ "Upstreams[0].Endpoints[0].Health", "\"sick\"", "Upstreams[0].Endpoints[0].Health: \"sick\" is not one of passing, warning, critical" },
	{ "Upstreams[0].Endpoints[0].SpiffeID", NULL, "Upstreams[0].Endpoints[0].SpiffeID: is required" },
	{ "Upstreams[0].Endpoints[0].SpiffeID", "\"" ID("db") "\"", "Upstreams[0].Endpoints[0].SpiffeID: names service \"db\", not the upstream's \"api\"" },
	{ "Upstreams[0].Endpoints[0].SpiffeID", "\"spiffe://other.td/ns/default/dc/dc1/svc/api\"", "Upstreams[0].Endpoints[0].SpiffeID: is in trust domain \"other.td\", not the proxy's \"td1.weft\"" },
	{ "Upstreams[0].Endpoints[0].Zone", "\"a/b\"", "Upstreams[0].Endpoints[0].Zone: \"a/b\" is not a valid name" },
	{ "Upstreams[0].Endpoints[0].Tags", "{}", "Upstreams[0].Endpoints[0].Tags: unknown field" },
	{ "Intentions", NULL, "Intentions: is required" },
	{ "Intentions.DefaultAction", NULL, "Intentions.DefaultAction: is required" },
	{ "Intentions.DefaultAction", "\"maybe\"", "Intentions.DefaultAction: \"maybe\" is not one of deny, allow" },
	{ "Intentions.Items", "{}", "Intentions.Items: must be an array" },
	{ "Intentions.Items[0].DestinationName", "\"api\"", "Intentions.Items[0].DestinationName: \"default/api\" is not this proxy's service \"web\" or \"*\"" },
	{ "Intentions.Items[0].Action", "\"perhaps\"", "Intentions.Items[0].Action" },
	{ "Intentions.Items[2].Permissions", "[{\"Action\": \"allow\", \"HTTP\": {\"PathRegex\": \"(a\"}}]", "Intentions.Items[2].Permissions[0].HTTP.PathRegex" },
	{ "Intentions.Items[0].SourceName", "\"admin\"", "Intentions.Items: intentions: \"i-1\" and \"i-3\" both go from default/admin to default/web" },
	{ "Intentions.Items[0].Unknown", "1", "Intentions.Items[0].Unknown: unknown field" },
	{ "Intentions.Items[0].SourcePeer", "\"other\"", "Intentions.Items[0].SourcePeer: \"other\" is not supported" },
	{ "Intentions.Items[0].SourcePartition", "\"p1\"", "Intentions.Items[0].SourcePartition: \"p1\" is not supported" },
	{ "Intentions.Items[2].Permissions[0].Extra", "1", "Intentions.Items[2].Permissions[0].Extra: unknown field" },
	{ "Intentions.Items[2].Permissions[0].HTTP.PathSuffix", "\"x\"", "Intentions.Items[2].Permissions[0].HTTP.PathSuffix: unknown field" },
	{ "Intentions.Items[2].Permissions[0].HTTP.Header", "[{\"Name\": \"a\", \"Exact\": \"b\", \"IgnoreCase\": true}]", "Intentions.Items[2].Permissions[0].HTTP.Header[0].IgnoreCase: unknown field" },
	{ "TLS.Certificate", NULL, "TLS.Certificate: is required" },
	{ "TLS.Certificate.File", "\"/etc/x.pem\"", "TLS.Certificate: give PEM or File, not both" },
	{ "TLS.Certificate.PEM", "\"hello\"", "TLS.Certificate.PEM: holds no PEM certificate" },
	{ "TLS.Certificate.PEM", "\"-----BEGIN CERTIFICATE-----\\n-----BEGIN PRIVATE KEY-----\"", "TLS.Certificate.PEM: holds a private key" },
	{ "TLS.PrivateKey.PEM", "\"-----BEGIN PRIVATE KEY-----\"", "TLS.PrivateKey.PEM: a private key is never sent in a snapshot" },
	{ "TLS.PrivateKey.File", NULL, "TLS.PrivateKey: File is required" },
	{ "TLS.PrivateKey", NULL, "TLS.PrivateKey: is required" },
	{ "TLS.TrustBundle", NULL, "TLS.TrustBundle: is required" },
	{ "TLS.TrustBundle.File", "\"roots.pem\"", "TLS.TrustBundle.File: \"roots.pem\" must be an absolute path" },
	{ "Admin.BindAddress", "\"0.0.0.0\"", "Admin.BindAddress: \"0.0.0.0\" is not a loopback address" },
	{ "Admin.BindPort", "21000", "Admin.BindPort: 21000 clashes with Inbound's :::21000" },
	{ "Admin", "{\"BindPort\": 9192}", "Admin.BindPort: 9192 clashes with Upstreams[1]'s 127.0.0.1:9192" },
	{ "AccessLog.Path", "\"log.txt\"", "AccessLog.Path: \"log.txt\" must be \"-\" or an absolute path" },
	{ "AccessLog.Enabled", "\"yes\"", "AccessLog.Enabled: must be true or false" },
	{ "Passthrough", "[]", "Passthrough: must be an object" },
	{ "Passthrough.BindPort", NULL, "Passthrough.BindPort: is required" },
	{ "Passthrough.BindPort", "21000", "Passthrough.BindPort: 0.0.0.0:21000 clashes with Inbound's :::21000" },
	{ "Passthrough.BindPort", "9191", "Passthrough.BindPort: 0.0.0.0:9191 clashes with Upstreams[0]'s 127.0.0.1:9191" },
	{ "Passthrough.BindAddress", "\"gw\"", "Passthrough.BindAddress: \"gw\" is not an IPv4 or IPv6 address" },
	{ "Passthrough.Extra", "1", "Passthrough.Extra: unknown field" },
	{ "Passthrough.Routes", "{}", "Passthrough.Routes: must be an array" },
	{ "Passthrough.Routes[1].SNI", NULL, "Passthrough.Routes[1].SNI: is required" },
	{ "Passthrough.Routes[1].SNI", "\"a.*.example\"", "Passthrough.Routes[1].SNI: \"a.*.example\" is not a server name" },
	{ "Passthrough.Routes[1].SNI", "\"api.zone1.EXAMPLE\"", "Passthrough.Routes[1].SNI: \"api.zone1.EXAMPLE\" is also Passthrough.Routes[0]'s (names ignore case)" },
	{ "Passthrough.Routes[1].Endpoints", "[]", "Passthrough.Routes[1].Endpoints: at least one endpoint is required" },
	{ "Passthrough.Routes[1].Endpoints", NULL, "Passthrough.Routes[1].Endpoints: at least one endpoint is required" },
	{ "Passthrough.Routes[0].Endpoints[1].Port", "0", "Passthrough.Routes[0].Endpoints[1].Port: 0 is out of range [1, 65535]" },
	{ "Passthrough.Routes[0].Endpoints[1].Address", NULL, "Passthrough.Routes[0].Endpoints[1].Address: is required" },
	{ "Passthrough.Routes[0].Endpoints[1].Weight", "1", "Passthrough.Routes[0].Endpoints[1].Weight: unknown field" },
	{ "Passthrough.Routes[0].Endpoints", "[1]", "Passthrough.Routes[0].Endpoints[0]: must be an object" },
	{ "Transparent", "[]", "Transparent: must be an object" },
	{ "Transparent.BindPort", NULL, "Transparent.BindPort: is required" },
	{ "Transparent.BindPort", "0", "Transparent.BindPort: 0 is out of range [1, 65535]" },
	{ "Transparent.BindPort", "21000", "Transparent.BindPort: 127.0.0.1:21000 clashes with Inbound's :::21000" },
	{ "Transparent.BindPort", "9192", "Transparent.BindPort: 127.0.0.1:9192 clashes with Upstreams[1]'s 127.0.0.1:9192" },
	{ "Transparent.BindPort", "8443", "Transparent.BindPort: 127.0.0.1:8443 clashes with Passthrough's 0.0.0.0:8443" },
	{ "Transparent.BindAddress", "\"lo\"", "Transparent.BindAddress: \"lo\" is not an IPv4 or IPv6 address" },
	{ "Transparent.Passthrough", "\"yes\"", "Transparent.Passthrough: must be true or false" },
	{ "Transparent.Mode", "\"x\"", "Transparent.Mode: unknown field" },
	{ "Upstreams[0].Destinations", "{}", "Upstreams[0].Destinations: must be an array" },
	{ "Upstreams[0].Destinations", "[1]", "Upstreams[0].Destinations[0]: must be an object" },
	{ "Upstreams[0].Destinations[1].Port", "0", "Upstreams[0].Destinations[1].Port: 0 is out of range [1, 65535]" },
	{ "Upstreams[0].Destinations[1].Port", NULL, "Upstreams[0].Destinations[1].Port: is required" },
	{ "Upstreams[0].Destinations[0].Address", "\"api\"", "Upstreams[0].Destinations[0].Address: \"api\" is not an IPv4 or IPv6 address" },
	{ "Upstreams[0].Destinations[0].Address", "\"127.0.0.2\"", "Upstreams[0].Destinations[0].Address: \"127.0.0.2\" is a loopback or unspecified address" },
	{ "Upstreams[0].Destinations[0].Address", "\"::\"", "Upstreams[0].Destinations[0].Address: \"::\" is a loopback or unspecified address" },
	{ "Upstreams[0].Destinations[0].Weight", "1", "Upstreams[0].Destinations[0].Weight: unknown field" },
	{ "Upstreams[1].Destinations[0].Port", "8080", "Upstreams[1].Destinations[0]: 10.1.0.5:8080 is also Upstreams[0].Destinations[0]" },
	{ "Upstreams[1].Destinations", "[{\"Address\": \"::ffff:10.1.0.5\", \"Port\": 8080}]", "Upstreams[1].Destinations[0]: ::ffff:10.1.0.5:8080 is also Upstreams[0].Destinations[0]" },
	{ "Upstreams[0].Destinations[1].Address", "\"10.1.0.5\"", "Upstreams[0].Destinations[1]: 10.1.0.5:8080 is also Upstreams[0].Destinations[0]" },
};

static void test_bad_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		json_t *root = json_loads(full, 0, NULL);
		struct px_config *c = (struct px_config *)0x1;
		char *text, *err = NULL;
		int rc;

		assert_non_null(root);
		set_path(root, bc->path, bc->value);
		text = jx_dump(root);
		rc = px_config_decode(text, strlen(text), &c, &err);
		if (rc == WEFT_OK)
			fail_msg("case %zu (%s = %s): accepted", i, bc->path, bc->value ? bc->value : "<deleted>");
		assert_null(c);
		assert_non_null(err);
		if (strncmp(err, bc->error, strlen(bc->error)) != 0)
			fail_msg("case %zu (%s = %s):\n got  \"%s\"\n want \"%s...\"", i, bc->path,
				 bc->value ? bc->value : "<deleted>", err, bc->error);
		free(err);
		free(text);
		json_decref(root);
	}
}

static void test_bad_documents(void **state)
{
	static const char *const docs[][2] = {
		{ "", "snapshot: invalid JSON" },
		{ "[1]", "snapshot: must be a JSON object" },
		{ "{\"Version\": 1, \"Version\": 1}", "snapshot: invalid JSON" },
		{ "{\"Version\": 1, \"Index\": 1}", "Proxy: is required" },
		{ "{\"Version\": 1, \"Index\": 1, \"index\": 2}", "Index: given twice (field names ignore case)" },
		{ "{\"Version\": 9, \"Unknown\": 1}", "Version: 9 is newer" },
	};
	char *big;

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct px_config *c = NULL;
		char *err = NULL;

		assert_int_not_equal(px_config_decode(docs[i][0], strlen(docs[i][0]), &c, &err), WEFT_OK);
		assert_null(c);
		if (strncmp(err, docs[i][1], strlen(docs[i][1])) != 0)
			fail_msg("doc %zu: got \"%s\"", i, err);
		free(err);
	}
	/* Over the size limit: refused before parsing. */
	big = malloc(PX_CONFIG_MAX_BYTES + 1);
	memset(big, ' ', PX_CONFIG_MAX_BYTES + 1);
	{
		struct px_config *c = NULL;
		char *err = NULL;

		assert_int_equal(px_config_decode(big, PX_CONFIG_MAX_BYTES + 1, &c, &err), WEFT_ETOOBIG);
		assert_non_null(strstr(err, "over the limit"));
		free(err);
	}
	free(big);
}

static void test_too_many(void **state)
{
	json_t *root = json_loads(minimal, 0, NULL), *ups = json_array(), *ixs = json_array();
	struct px_config *c = NULL;
	char *text, *err = NULL;

	(void)state;
	for (int i = 0; i <= PX_CONFIG_UPSTREAMS_MAX; i++)
		json_array_append_new(ups, json_pack("{s:s, s:i}", "Service", "x", "BindPort", 1));
	json_object_set_new(root, "Upstreams", ups);
	text = jx_dump(root);
	assert_int_not_equal(px_config_decode(text, strlen(text), &c, &err), WEFT_OK);
	assert_string_equal(err, "Upstreams: more than 1024 upstreams");
	free(err);
	free(text);
	json_object_del(root, "Upstreams");
	for (int i = 0; i <= PX_CONFIG_INTENTIONS_MAX; i++)
		json_array_append_new(ixs, json_pack("{s:s, s:s, s:s}", "SourceName", "s",
						     "DestinationName", "web", "Action", "allow"));
	json_object_set_new(json_object_get(root, "Intentions"), "Items", ixs);
	text = jx_dump(root);
	err = NULL;
	assert_int_not_equal(px_config_decode(text, strlen(text), &c, &err), WEFT_OK);
	assert_string_equal(err, "Intentions.Items: more than 4096 intentions");
	free(err);
	free(text);
	json_object_set_new(json_object_get(root, "Intentions"), "Items", json_array());
	ups = json_array();
	json_array_append_new(ups, json_pack("{s:s, s:i, s:[]}", "Service", "x", "BindPort", 1,
					     "Destinations"));
	for (int i = 0; i <= PX_CONFIG_DESTINATIONS_MAX; i++)
		json_array_append_new(json_object_get(json_array_get(ups, 0), "Destinations"),
				      json_pack("{s:s, s:i}", "Address", "10.9.0.1", "Port", i + 1));
	json_object_set_new(root, "Upstreams", ups);
	text = jx_dump(root);
	err = NULL;
	assert_int_not_equal(px_config_decode(text, strlen(text), &c, &err), WEFT_OK);
	assert_string_equal(err, "Upstreams[0].Destinations: more than 4096 destinations");
	free(err);
	free(text);
	/* 4096 distinct ones are fine (the duplicate check sorts, it does not
	 * compare every pair) */
	json_array_remove(json_object_get(json_array_get(ups, 0), "Destinations"), 0);
	text = jx_dump(root);
	c = decode_ok(text);
	assert_int_equal(c->upstreams[0].n_destinations, PX_CONFIG_DESTINATIONS_MAX);
	px_config_unref(c);
	free(text);
	json_decref(root);
}

/* ---- SPIFFE IDs ---- */

static void test_spiffe(void **state)
{
	static const char *const good[][5] = {
		{ "spiffe://td/ns/default/dc/dc1/svc/web", "td", "default", "dc1", "web" },
		{ "spiffe://a.b-c_d/ns/M.x/dc/Z_1/svc/Web-2", "a.b-c_d", "M.x", "Z_1", "Web-2" },
		{ "spiffe://t/ns/" "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"
		  "/dc/z/svc/s", "t", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc", "z", "s" },
	};
	static const char *const bad[] = {
		"",
		"spiffe:/td/ns/default/dc/dc1/svc/web",
		"SPIFFE://td/ns/default/dc/dc1/svc/web",
		"https://td/ns/default/dc/dc1/svc/web",
		"spiffe://",
		"spiffe://td",
		"spiffe://td/",
		"spiffe:///ns/default/dc/dc1/svc/web",
		"spiffe://TD/ns/default/dc/dc1/svc/web",
		"spiffe://td:8443/ns/default/dc/dc1/svc/web",
		"spiffe://user@td/ns/default/dc/dc1/svc/web",
		"spiffe://td/ns/default/dc/dc1/svc/web/",
		"spiffe://td/ns/default/dc/dc1/svc/web/x",
		"spiffe://td/ns/default/dc/dc1/svc/",
		"spiffe://td/ns/default/dc/dc1/svc",
		"spiffe://td/ns//dc/dc1/svc/web",
		"spiffe://td/ns/default/dc/dc1",
		"spiffe://td/dc/dc1/ns/default/svc/web",
		"spiffe://td/ns/default/dc/dc1/svc/w%65b",
		"spiffe://td/ns/default/dc/dc1/svc/web?x=1",
		"spiffe://td/ns/default/dc/dc1/svc/web#f",
		"spiffe://td/ns/default/dc/dc1/svc/*",
		"spiffe://td/ns/de fault/dc/dc1/svc/web",
		"spiffe://td/agent/client/dc/dc1/id/web",
		"spiffe://td/ns/default/dc/dc1/svc/"
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd", /* 64 */
		"spiffe://td//ns/default/dc/dc1/svc/web",
	};
	struct px_spiffe sp;
	char *err;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err = NULL;
		if (px_spiffe_parse(good[i][0], &sp, &err) != WEFT_OK)
			fail_msg("%s: %s", good[i][0], err);
		assert_string_equal(sp.trust_domain, good[i][1]);
		assert_string_equal(sp.mesh, good[i][2]);
		assert_string_equal(sp.zone, good[i][3]);
		assert_string_equal(sp.service, good[i][4]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (px_spiffe_parse(bad[i], &sp, &err) == WEFT_OK)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(err);
		assert_non_null(strstr(err, "SPIFFE ID"));
		free(err);
	}
	/* NULL and over-long. */
	assert_int_equal(px_spiffe_parse(NULL, &sp, NULL), WEFT_EINVAL);
	{
		char longid[PX_CONFIG_SPIFFE_MAX + 2];

		memset(longid, 'a', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		memcpy(longid, "spiffe://", 9);
		err = NULL;
		assert_int_equal(px_spiffe_parse(longid, &sp, &err), WEFT_EINVAL);
		assert_non_null(strstr(err, "longer than 512"));
		free(err);
	}
}

/* ---- authorization ---- */

static void test_authorize_l4(void **state)
{
	struct px_config *c = decode_ok(full);
	struct px_authz a;

	(void)state;
	/* evil -> web: the exact deny (precedence 9) beats the wildcard allow. */
	assert_int_equal(px_config_authorize(c, ID("evil"), NULL, &a), INTENTION_DENY);
	assert_int_equal(a.reason, PX_AUTHZ_INTENTIONS);
	assert_int_equal(a.decision.reason, INTENTION_BY_ACTION);
	assert_string_equal(intention_id(a.decision.intention), "i-1");
	assert_string_equal(a.source.service, "evil");
	/* Anyone else: the wildcard allow. */
	assert_int_equal(px_config_authorize(c, ID("api"), NULL, &a), INTENTION_ALLOW);
	assert_string_equal(intention_id(a.decision.intention), "i-2");
	/* admin -> web is L7: an L4 call is denied. */
	assert_int_equal(px_config_authorize(c, ID("admin"), NULL, &a), INTENTION_DENY);
	assert_int_equal(a.decision.reason, INTENTION_BY_L7_NOT_HTTP);
	assert_string_equal(intention_id(a.decision.intention), "i-3");
	/* A caller from another zone of the same mesh is the same service. */
	assert_int_equal(px_config_authorize(c, "spiffe://" TD "/ns/default/dc/dc7/svc/evil", NULL, &a),
			 INTENTION_DENY);
	assert_string_equal(intention_id(a.decision.intention), "i-1");
	/* Foreign trust domain, foreign mesh, not an ID: denied before intentions. */
	assert_int_equal(px_config_authorize(c, "spiffe://other.td/ns/default/dc/dc1/svc/api", NULL, &a),
			 INTENTION_DENY);
	assert_int_equal(a.reason, PX_AUTHZ_FOREIGN_TRUST_DOMAIN);
	assert_string_equal(px_authz_reason_string(a.reason), "foreign-trust-domain");
	assert_null(a.decision.intention);
	assert_int_equal(px_config_authorize(c, "spiffe://" TD "/ns/pay/dc/dc1/svc/api", NULL, &a),
			 INTENTION_DENY);
	assert_int_equal(a.reason, PX_AUTHZ_FOREIGN_MESH);
	assert_int_equal(px_config_authorize(c, "spiffe://" TD "/ns/default/dc/dc1/svc/*", NULL, &a),
			 INTENTION_DENY);
	assert_int_equal(a.reason, PX_AUTHZ_BAD_IDENTITY);
	assert_int_equal(px_config_authorize(c, NULL, NULL, &a), INTENTION_DENY);
	assert_int_equal(a.reason, PX_AUTHZ_BAD_IDENTITY);
	px_config_unref(c);

	/* No intention at all: the default decides, both ways. */
	c = decode_ok(minimal);
	assert_int_equal(px_config_authorize(c, ID("api"), NULL, &a), INTENTION_DENY);
	assert_int_equal(a.decision.reason, INTENTION_BY_DEFAULT);
	assert_null(a.decision.intention);
	px_config_unref(c);
}

static void test_authorize_l7(void **state)
{
	struct px_config *c = decode_ok(full);
	struct intention_header hs[] = { { "X-Debug", "1" } };
	struct intention_call http = { .http = 1, .method = "GET", .path = "/admin/users?x=1",
				       .headers = hs, .n_headers = 1 };
	struct px_authz a;

	(void)state;
	/* The source/destination the caller put in are ignored. */
	http.source_name = "evil";
	http.destination_name = "elsewhere";
	assert_int_equal(px_config_authorize(c, ID("admin"), &http, &a), INTENTION_ALLOW);
	assert_int_equal(a.decision.reason, INTENTION_BY_PERMISSION);
	assert_int_equal(a.decision.permission, 0);
	assert_string_equal(intention_id(a.decision.intention), "i-3");
	http.method = "POST";
	assert_int_equal(px_config_authorize(c, ID("admin"), &http, &a), INTENTION_DENY);
	assert_int_equal(a.decision.permission, 1);
	http.method = "GET";
	http.path = "/";
	assert_int_equal(px_config_authorize(c, ID("admin"), &http, &a), INTENTION_DENY);
	assert_int_equal(a.decision.permission, 1);
	/* An L4 intention decides HTTP requests by its action. */
	assert_int_equal(px_config_authorize(c, ID("evil"), &http, &a), INTENTION_DENY);
	assert_int_equal(a.decision.reason, INTENTION_BY_ACTION);
	assert_int_equal(px_config_authorize(c, ID("api"), &http, &a), INTENTION_ALLOW);
	px_config_unref(c);

	/* No permission matches: the default action (deny here), no fall-through
	 * to the lower wildcard allow. */
	{
		const char *doc =
			"{\"Version\": 1, \"Index\": 1,"
			" \"Proxy\": {\"Service\": \"web\", \"SpiffeID\": \"" ID("web") "\"},"
			" \"Inbound\": {\"BindPort\": 1, \"AppPort\": 2, \"Protocol\": \"http\"},"
			" \"Intentions\": {\"DefaultAction\": \"deny\", \"Items\": ["
			"  {\"SourceName\": \"*\", \"DestinationName\": \"*\", \"Action\": \"allow\"},"
			"  {\"ID\": \"l7\", \"SourceName\": \"api\", \"DestinationName\": \"web\", \"Permissions\": ["
			"   {\"Action\": \"allow\", \"HTTP\": {\"PathExact\": \"/ok\", \"Header\": [{\"Name\": \"x-a\", \"Present\": true}]}}]}]}}";
		struct intention_call h2 = { .http = 1, .method = "GET", .path = "/ok" };

		c = decode_ok(doc);
		assert_int_equal(px_config_authorize(c, ID("api"), &h2, &a), INTENTION_DENY);
		assert_int_equal(a.decision.reason, INTENTION_BY_NO_PERMISSION);
		h2.headers = hs;
		h2.n_headers = 1;
		hs[0].name = "X-A";
		assert_int_equal(px_config_authorize(c, ID("api"), &h2, &a), INTENTION_ALLOW);
		assert_string_equal(intention_id(a.decision.intention), "l7");
		assert_int_equal(px_config_authorize(c, ID("web"), &h2, &a), INTENTION_ALLOW);
		assert_int_equal(a.decision.reason, INTENTION_BY_ACTION);
		px_config_unref(c);
	}
}

/* ---- the swap contract ---- */

static char *with_index(const char *base, long long index, const char *service)
{
	json_t *root = json_loads(base, 0, NULL);
	char *s;

	json_object_set_new(root, real_key(root, "Index"), json_integer(index));
	if (service) {
		char id[128];

		snprintf(id, sizeof(id), "spiffe://" TD "/ns/default/dc/dc1/svc/%s", service);
		json_object_set_new(json_object_get(root, "Proxy"), "Service", json_string(service));
		json_object_set_new(json_object_get(root, "Proxy"), "SpiffeID", json_string(id));
	}
	s = jx_dump(root);
	json_decref(root);
	return s;
}

/* docs/proxy-config.md "Versions": a snapshot from a newer server is
 * refused as a whole, the running one stays, and the refusal names what
 * this proxy could not enforce; /stats counts it by reason and section. */
static void test_newer_version(void **state)
{
	/* a v2 document: known sections plus fields v1 does not have, one of
	 * them inside an allow permission (ignoring it would let traffic in) */
	static const char *v2 =
		"{\"Version\": 2, \"Index\": 9,"
		" \"Proxy\": {\"Service\": \"web\", \"SpiffeID\": \"" ID("web") "\"},"
		" \"Inbound\": {\"BindPort\": 21000, \"AppPort\": 8080},"
		" \"RateLimits\": {\"RequestsPerSecond\": 10},"
		" \"Intentions\": {\"DefaultAction\": \"deny\", \"Items\": ["
		"   {\"ID\": \"i-1\", \"SourceName\": \"admin\", \"DestinationName\": \"web\","
		"    \"Permissions\": [{\"Action\": \"allow\", \"HTTP\": {\"PathPrefix\": \"/\","
		"      \"JWT\": {\"Issuer\": \"idp\"}}}]}]}}";
	static const char *v2_known_only =
		"{\"Version\": 2, \"Index\": 9,"
		" \"Proxy\": {\"Service\": \"web\", \"SpiffeID\": \"" ID("web") "\"},"
		" \"Inbound\": {\"BindPort\": 21000, \"AppPort\": 8080},"
		" \"Intentions\": {\"DefaultAction\": \"deny\"}}";
	struct px_config_slot slot;
	struct px_config *cfg = NULL, *now;
	uint64_t refused[PX_CONFIG_REFUSAL_REASONS];
	struct buf b;
	char *err = NULL, *v1_unknown;

	(void)state;
	/* the decoder alone: refused, every unknown field named */
	assert_int_equal(px_config_decode(v2, strlen(v2), &cfg, &err), WEFT_EINVAL);
	assert_null(cfg);
	assert_non_null(strstr(err, "Version: 2 is newer than this proxy's 1: refused as a whole"));
	assert_non_null(strstr(err, "what this proxy cannot enforce: RateLimits, "
				    "Intentions.Items[0].Permissions[0].HTTP.JWT"));
	free(err);
	err = NULL;
	/* nothing new to it, still refused: the meaning may have changed */
	assert_int_equal(px_config_decode(v2_known_only, strlen(v2_known_only), &cfg, &err),
			 WEFT_EINVAL);
	assert_non_null(strstr(err, "no field is new to this proxy, but version 2 may give"));
	free(err);
	err = NULL;

	/* through the slot: the running snapshot stays; counted */
	px_config_slot_init(&slot);
	assert_int_equal(px_config_slot_load(&slot, minimal, strlen(minimal), &err), WEFT_OK);
	assert_int_equal(px_config_slot_load(&slot, v2, strlen(v2), &err), WEFT_EINVAL);
	free(err);
	err = NULL;
	now = px_config_slot_get(&slot);
	assert_int_equal(now->version, 1);
	assert_int_equal(now->index, 7);
	px_config_unref(now);
	/* a version-1 document with an unknown field: refused, counted apart */
	v1_unknown = strdup(minimal);
	v1_unknown[strlen(v1_unknown) - 1] = '\0';
	{
		char doc[1024];

		snprintf(doc, sizeof(doc), "%s, \"Intentions2\": {}}", v1_unknown);
		assert_int_equal(px_config_slot_load(&slot, doc, strlen(doc), &err), WEFT_EINVAL);
		assert_non_null(strstr(err, "Intentions2: unknown field"));
		free(err);
		err = NULL;
	}
	free(v1_unknown);
	px_config_slot_refusals(&slot, refused);
	assert_int_equal(refused[PX_CONFIG_REFUSED_NEWER_VERSION], 1);
	assert_int_equal(refused[PX_CONFIG_REFUSED_UNKNOWN_FIELD], 1);
	assert_int_equal(refused[PX_CONFIG_REFUSED_INVALID], 0);
	buf_init(&b, 1 << 16);
	px_config_slot_stats(&slot, &b);
	assert_non_null(strstr(b.data, "weft_proxy_config_refused_total{reason=\"newer-version\"} 1\n"));
	assert_non_null(strstr(b.data, "weft_proxy_config_refused_total{reason=\"unknown-field\"} 1\n"));
	assert_non_null(strstr(b.data,
		"weft_proxy_config_unenforceable_fields_total{section=\"RateLimits\"} 1\n"));
	assert_non_null(strstr(b.data,
		"weft_proxy_config_unenforceable_fields_total{section=\"Intentions\"} 1\n"));
	assert_non_null(strstr(b.data,
		"weft_proxy_config_unenforceable_fields_total{section=\"Intentions2\"} 1\n"));
	assert_non_null(strstr(b.data, "weft_proxy_config_version{of=\"proxy\"} 1\n"));
	assert_non_null(strstr(b.data, "weft_proxy_config_index 7\n"));
	buf_free(&b);
	px_config_slot_destroy(&slot);
}

static void test_slot(void **state)
{
	struct px_config_slot slot;
	struct px_config *before, *held, *now;
	char *err = NULL, *s;

	(void)state;
	px_config_slot_init(&slot);
	assert_null(px_config_slot_get(&slot));
	/* A bad first snapshot: still none. */
	assert_int_not_equal(px_config_slot_load(&slot, "{}", 2, &err), WEFT_OK);
	assert_string_equal(err, "Version: is required");
	free(err);
	err = NULL;
	assert_null(px_config_slot_get(&slot));

	assert_int_equal(px_config_slot_load(&slot, full, strlen(full), &err), WEFT_OK);
	before = px_config_slot_get(&slot);
	assert_non_null(before);
	assert_int_equal(before->index, 99);

	/* decode fails -> the old pointer is unchanged, and still works. */
	s = with_index(full, 100, NULL);
	s[strlen(s) - 1] = ',';  /* broken JSON */
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "invalid JSON"));
	free(err);
	err = NULL;
	free(s);
	now = px_config_slot_get(&slot);
	assert_ptr_equal(now, before);
	px_config_unref(now);
	{
		const char *bad = "{\"Version\": 2, \"Index\": 500}";

		assert_int_equal(px_config_slot_load(&slot, bad, strlen(bad), &err), WEFT_EINVAL);
		assert_non_null(strstr(err, "newer than this proxy's"));
		free(err);
		err = NULL;
		now = px_config_slot_get(&slot);
		assert_ptr_equal(now, before);
		px_config_unref(now);
	}
	/* An older index and another service are refused too. */
	s = with_index(full, 98, NULL);
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_ECONFLICT);
	assert_string_equal(err, "Index: 98 is older than the current 99");
	free(err);
	err = NULL;
	free(s);
	s = with_index(minimal, 200, "api");
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_ECONFLICT);
	assert_non_null(strstr(err, "Proxy.Service: \"api\""));
	free(err);
	err = NULL;
	free(s);
	now = px_config_slot_get(&slot);
	assert_ptr_equal(now, before);
	px_config_unref(now);

	/* A good one replaces it; a reader holding the old one keeps it valid. */
	held = before;
	s = with_index(minimal, 120, NULL);
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_OK);
	free(s);
	/* A source that started over (its index back at 3): refused until told
	 * to forget the index, then taken, and the check is back for the next */
	s = with_index(minimal, 3, NULL);
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_ECONFLICT);
	free(err);
	err = NULL;
	px_config_slot_forget_index(&slot);
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_OK);
	free(s);
	s = with_index(minimal, 2, NULL);
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_ECONFLICT);
	free(err);
	err = NULL;
	free(s);
	s = with_index(minimal, 120, NULL);
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_OK);
	free(s);
	now = px_config_slot_get(&slot);
	assert_ptr_not_equal(now, held);
	assert_int_equal(now->index, 120);
	assert_int_equal(held->index, 99);                     /* still readable */
	assert_int_equal(held->n_upstreams, 2);
	assert_string_equal(held->upstreams[0].endpoints[0].address, "10.0.0.1");
	px_config_unref(held);
	px_config_unref(now);
	/* The same index again is accepted (a re-sent snapshot). */
	s = with_index(minimal, 120, NULL);
	assert_int_equal(px_config_slot_load(&slot, s, strlen(s), &err), WEFT_OK);
	free(s);
	px_config_slot_destroy(&slot);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_redacted),
		cmocka_unit_test(test_tls_bundle_only),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_bad_documents),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_spiffe),
		cmocka_unit_test(test_authorize_l4),
		cmocka_unit_test(test_authorize_l7),
		cmocka_unit_test(test_slot),
		cmocka_unit_test(test_newer_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
