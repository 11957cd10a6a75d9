/* px_enforce: the authorize hook the inbound listener calls. L4 and L7
 * decisions through the config current in a slot, the X-Weft-Denied-By
 * label (intention ID, name pair, "default", or the identity reason), the
 * HTTP listener allowing at connection level and deciding per request, a
 * reload changing the next decision, and the denial counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "px_enforce.h"

#define TD "td1.weft"
#define ID(svc) "spiffe://" TD "/ns/default/dc/dc1/svc/" svc

#define HEAD "{\"Version\": 1, \"Index\": %d," \
	" \"Proxy\": {\"Service\": \"api\", \"SpiffeID\": \"" ID("api") "\"}," \
	" \"Inbound\": {\"BindPort\": 21000, \"AppPort\": 8080, \"Protocol\": \"%s\"},"

static const char *l4 =
	" \"Intentions\": {\"DefaultAction\": \"deny\", \"Items\": ["
	"   {\"ID\": \"ixn-web\", \"SourceName\": \"web\", \"DestinationName\": \"api\", \"Action\": \"allow\"},"
	"   {\"SourceName\": \"db\", \"DestinationName\": \"api\", \"Action\": \"deny\"}]}";

static const char *l7 =
	" \"Intentions\": {\"DefaultAction\": \"deny\", \"Items\": ["
	"   {\"ID\": \"ixn-l7\", \"SourceName\": \"web\", \"DestinationName\": \"api\", \"Permissions\": ["
	"     {\"Action\": \"allow\", \"HTTP\": {\"PathPrefix\": \"/v1/\", \"Methods\": [\"GET\"]}},"
	"     {\"Action\": \"allow\", \"HTTP\": {\"PathExact\": \"/h\", \"Header\": [{\"Name\": \"x-ok\", \"Exact\": \"yes\"}]}},"
	"     {\"Action\": \"deny\", \"HTTP\": {\"PathPrefix\": \"/\"}}]}]}";

/* A snapshot for "api" with this Index, inbound Protocol and Intentions. */
static void load(struct px_config_slot *slot, const char *intentions, int index, const char *proto)
{
	char text[4096], *err = NULL;

	snprintf(text, sizeof(text), HEAD "%s}", index, proto, intentions);
	if (px_config_slot_load(slot, text, strlen(text), &err) != WEFT_OK)
		fail_msg("load: %s", err);
}

static int req(struct px_enforce *e, const char *peer, const char *line,
	       const struct px_http1_header *h, size_t nh, char *by)
{
	struct px_request_info ri = {NULL, line, strlen(line), h, nh};

	by[0] = '\0';
	return px_enforce_authorize(e, peer, &ri, by, PX_DENIED_BY_MAX);
}

static uint64_t counted(struct px_enforce *e, const char *src, const char *ix)
{
	struct px_denial_count *c = NULL;
	size_t n = 0;
	uint64_t v = 0;

	assert_int_equal(px_enforce_counters(e, &c, &n, NULL), WEFT_OK);
	for (size_t i = 0; i < n; i++)
		if (strcmp(c[i].source, src) == 0 && strcmp(c[i].intention, ix) == 0) {
			assert_string_equal(c[i].destination, "api");
			v = c[i].count;
		}
	free(c);
	return v;
}

static void test_l4(void **state)
{
	struct px_config_slot slot;
	struct px_enforce *e = NULL;
	char by[PX_DENIED_BY_MAX];

	px_config_slot_init(&slot);
	load(&slot, l4, 1, "tcp");
	assert_int_equal(px_enforce_new(&e, &slot, 0, NULL), WEFT_OK);
	assert_int_equal(px_enforce_authorize(e, ID("web"), NULL, by, sizeof(by)), 0);
	/* an intention without an ID is named by its pair */
	assert_int_not_equal(px_enforce_authorize(e, ID("db"), NULL, by, sizeof(by)), 0);
	assert_string_equal(by, "default/db > default/api");
	/* nothing matches: the default */
	assert_int_not_equal(px_enforce_authorize(e, ID("cache"), NULL, by, sizeof(by)), 0);
	assert_string_equal(by, "default");
	assert_int_not_equal(px_enforce_authorize(e, ID("cache"), NULL, by, sizeof(by)), 0);
	/* outside the mesh, or no identity: the reason */
	assert_int_not_equal(px_enforce_authorize(e, "spiffe://other.td/ns/default/dc/dc1/svc/web",
						  NULL, by, sizeof(by)), 0);
	assert_string_equal(by, "foreign-trust-domain");
	assert_int_not_equal(px_enforce_authorize(e, NULL, NULL, by, sizeof(by)), 0);
	assert_string_equal(by, "bad-identity");

	assert_int_equal(counted(e, ID("cache"), "default"), 2);
	assert_int_equal(counted(e, ID("db"), "default/db > default/api"), 1);
	assert_int_equal(counted(e, ID("web"), "ixn-web"), 0);

	/* a reload decides the next call; a stale one is refused and changes nothing */
	load(&slot, " \"Intentions\": {\"DefaultAction\": \"allow\"}", 2, "tcp");
	assert_int_equal(px_enforce_authorize(e, ID("cache"), NULL, by, sizeof(by)), 0);
	assert_int_not_equal(px_config_slot_load(&slot, "{\"Version\": 1}", 14, NULL), WEFT_OK);
	assert_int_equal(px_enforce_authorize(e, ID("db"), NULL, by, sizeof(by)), 0);
	px_enforce_free(e);
	px_config_slot_destroy(&slot);
}

static void test_l7(void **state)
{
	struct px_config_slot slot;
	struct px_enforce *e = NULL;
	char by[PX_DENIED_BY_MAX];
	struct px_http1_header ok = {"X-OK", 4, "yes", 3};

	px_config_slot_init(&slot);
	load(&slot, l7, 1, "http");
	assert_int_equal(px_enforce_new(&e, &slot, 1, NULL), WEFT_OK);
	/* HTTP listener: the connection is allowed, each request decided */
	assert_int_equal(px_enforce_authorize(e, ID("db"), NULL, by, sizeof(by)), 0);
	assert_int_equal(req(e, ID("web"), "GET /v1/x?q=1", NULL, 0, by), 0);
	assert_int_not_equal(req(e, ID("web"), "DELETE /v1/x", NULL, 0, by), 0);
	assert_string_equal(by, "ixn-l7");
	/* absolute-form is matched on its path */
	assert_int_equal(req(e, ID("web"), "GET http://api:80/v1/y", NULL, 0, by), 0);
	assert_int_not_equal(req(e, ID("web"), "GET http://api/admin", NULL, 0, by), 0);
	/* header rules see the request's headers */
	assert_int_equal(req(e, ID("web"), "POST /h", &ok, 1, by), 0);
	assert_int_not_equal(req(e, ID("web"), "POST /h", NULL, 0, by), 0);
	assert_int_not_equal(req(e, ID("db"), "GET /v1/x", NULL, 0, by), 0);
	assert_string_equal(by, "default");
	assert_int_equal(counted(e, ID("web"), "ixn-l7"), 3);
	/* an ID from the snapshot cannot break the 403's header */
	load(&slot, " \"Intentions\": {\"DefaultAction\": \"allow\", \"Items\": ["
	     "{\"ID\": \"a\\r\\nSet-Cookie: x\\\"\", \"SourceName\": \"web\","
	     " \"DestinationName\": \"api\", \"Action\": \"deny\"}]}", 2, "http");
	assert_int_not_equal(req(e, ID("web"), "GET /v1/x", NULL, 0, by), 0);
	assert_string_equal(by, "a??Set-Cookie: x?");
	assert_int_equal(counted(e, ID("db"), "default"), 1);
	px_enforce_free(e);
	px_config_slot_destroy(&slot);
}

static void test_counter_bound(void **state)
{
	struct px_config_slot slot;
	struct px_enforce *e = NULL;
	struct px_denial_count *c = NULL;
	char by[PX_DENIED_BY_MAX], id[128];
	size_t n = 0;

	px_config_slot_init(&slot);
	load(&slot, l4, 1, "tcp");
	assert_int_equal(px_enforce_new(&e, &slot, 0, NULL), WEFT_OK);
	for (int i = 0; i < PX_ENFORCE_COUNTERS_MAX + 10; i++) {
		snprintf(id, sizeof(id), ID("svc%d"), i);
		assert_int_not_equal(px_enforce_authorize(e, id, NULL, by, sizeof(by)), 0);
	}
	assert_int_equal(px_enforce_counters(e, &c, &n, NULL), WEFT_OK);
	assert_int_equal(n, PX_ENFORCE_COUNTERS_MAX + 1);
	assert_string_equal(c[n - 1].source, "_other");
	assert_int_equal(c[n - 1].count, 10);
	free(c);
	px_enforce_free(e);
	px_config_slot_destroy(&slot);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_l4),
		cmocka_unit_test(test_l7),
		cmocka_unit_test(test_counter_bound),
	};

	log_setup(LOG_LVL_ERROR, stderr);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
