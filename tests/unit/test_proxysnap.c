/* proxysnap: the snapshot of one proxy from a real store (catalog writes,
 * the default mesh's CA): the topics it depends on (exactly), the
 * "connect:<destination>" topic the catalog publishes, endpoints' health
 * and weights, the fallback to coarse topics past the budget, and the
 * errors that name the registration's field. Every snapshot built here
 * must decode with the proxy's decoder (px_config_decode). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "castore.h"
#include "catalog.h"
#include "config_store.h"
#include "hub.h"
#include "snapcache.h"
#include "err.h"
#include "jsonx.h"
#include "proxysnap.h"
#include "px_config.h"
#include "store.h"

#define MAXT 4096

struct published {
	pthread_mutex_t lock;
	char topics[MAXT][96];
	size_t n;
	struct hub *hub;
};

static void on_publish(void *ctx, const char *const *topics, const uint64_t *idx, size_t n)
{
	struct published *p = ctx;

	/* as weft-server: the hub learns every commit's topics */
	if (p->hub)
		hub_publish(p->hub, topics, idx, n);
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n && p->n < MAXT; i++, p->n++)
		snprintf(p->topics[p->n], sizeof(p->topics[0]), "%s", topics[i]);
	pthread_mutex_unlock(&p->lock);
}

static int published(struct published *p, const char *topic)
{
	int found = 0;

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n && !found; i++)
		found = strcmp(p->topics[i], topic) == 0;
	pthread_mutex_unlock(&p->lock);
	return found;
}

struct fixture {
	char dir[64];
	struct store *store;
	struct castore *cs;
	struct published pub;
	struct snapcache *cache;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_opts o = { 0 };
	char path[128], *err = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/weft-psnap-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/weft.db", f->dir);
	pthread_mutex_init(&f->pub.lock, NULL);
	o.path = path;
	o.publish = on_publish;
	o.publish_ctx = &f->pub;
	assert_int_equal(store_open(&f->store, &o, &err), WEFT_OK);
	assert_non_null(f->pub.hub = hub_new(store_last_index(f->store)));
	assert_non_null(f->cache = snapcache_new(f->pub.hub, 8 << 20));
	if (castore_open(&f->cs, f->store, f->dir, "dc1", &err) != WEFT_OK)
		fail_msg("castore_open: %s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];

	castore_close(f->cs);
	store_close(f->store);
	snapcache_free(f->cache);
	hub_free(f->pub.hub);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	pthread_mutex_destroy(&f->pub.lock);
	free(f);
	return 0;
}

/* Registers a JSON body (catalog_decode_register's form). */
static void reg(struct fixture *f, const char *text)
{
	struct cat_register *r = calloc(1, sizeof(*r));
	struct store_write w = { .apply = catalog_apply_register, .arg = r };
	json_t *doc = json_loads(text, 0, NULL);
	char *err = NULL;

	assert_non_null(doc);
	if (catalog_decode_register(doc, "dc1", r, &err) != WEFT_OK)
		fail_msg("decode %s: %s", text, err);
	json_decref(doc);
	if (store_write_sync(f->store, &w) != WEFT_OK)
		fail_msg("register %s: %s", text, w.err);
	json_decref(w.result);
	catalog_register_free(r);
}

/* Puts a config entry (a JSON body with Kind and Name) in mesh "default". */
static void config_put(struct fixture *f, const char *text)
{
	json_t *doc = json_loads(text, 0, NULL);
	struct config_op *op;
	struct store_write w = { .apply = config_store_apply_put };

	assert_non_null(doc);
	op = config_op_new("default", json_string_value(json_object_get(doc, "Kind")),
			   json_string_value(json_object_get(doc, "Name")), doc);
	assert_non_null(op);
	w.arg = op;
	if (store_write_sync(f->store, &w) != WEFT_OK)
		fail_msg("config put %s: %s", text, w.err);
	json_decref(w.result);
	config_op_free(op);
	json_decref(doc);
}

static void sidecar(struct fixture *f, const char *node, const char *addr, const char *svc,
		    const char *id, int port, const char *upstreams, const char *extra)
{
	char body[2048];

	snprintf(body, sizeof(body),
		 "{\"Node\": \"%s\", \"Address\": \"%s\", \"Service\": {\"Service\": \"%s-sidecar\","
		 " \"ID\": \"%s\", \"Kind\": \"connect-proxy\", \"Port\": %d, %s"
		 " \"Proxy\": {\"DestinationServiceName\": \"%s\", \"LocalServicePort\": 8080,"
		 " \"Upstreams\": [%s]}}}", node, addr, svc, id, port, extra ? extra : "", svc,
		 upstreams ? upstreams : "");
	reg(f, body);
}

static int build(struct fixture *f, const char *id, const char *node, struct proxysnap *s,
		 char **err)
{
	struct proxysnap_req rq = { .proxy_id = id, .node = node, .datacenter = "dc1" };
	struct db *db = store_read_begin(f->store);
	int rc;

	assert_non_null(db);
	rc = proxysnap_build(db, &rq, s, err);
	store_read_end(db);
	if (rc == WEFT_OK) {
		struct px_config *cfg = NULL;
		char *derr = NULL, *text;

		json_object_set_new(s->doc, "Index", json_integer(1));
		text = jx_dump(s->doc);
		if (px_config_decode(text, strlen(text), &cfg, &derr) != WEFT_OK)
			fail_msg("the snapshot of %s does not decode: %s\n%s", id, derr, text);
		px_config_unref(cfg);
		free(text);
	}
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The topics, sorted, joined with spaces. */
static char *topics_text(const struct proxysnap *s)
{
	const char *k, *names[64];
	size_t n = 0, len = 0;
	json_t *v;
	char *out;

	json_object_foreach(s->topics, k, v) {
		assert_true(n < 64);
		names[n++] = k;
		len += strlen(k) + 1;
	}
	qsort(names, n, sizeof(names[0]), cmp_str);
	out = calloc(1, len + 1);
	for (size_t i = 0; i < n; i++) {
		strcat(out, names[i]);
		if (i + 1 < n)
			strcat(out, " ");
	}
	return out;
}

static void test_snapshot_and_exact_topics(void **state)
{
	struct fixture *f = *state;
	struct proxysnap s = { 0 };
	char *err = NULL, *t;
	json_t *eps;

	sidecar(f, "n1", "10.0.0.1", "web", "web-1-sidecar", 21000,
		"{\"DestinationName\": \"api\", \"LocalBindPort\": 9191}", NULL);
	sidecar(f, "n2", "10.0.0.2", "api", "api-1-sidecar", 21001, NULL,
		"\"Weights\": {\"Passing\": 3, \"Warning\": 0},");
	assert_true(published(&f->pub, "connect:api"));
	assert_true(published(&f->pub, "connect:web"));
	if (build(f, "web-1-sidecar", NULL, &s, &err) != WEFT_OK)
		fail_msg("build: %s", err);
	t = topics_text(&s);
	assert_string_equal(t, "ca:default cfg:default:proxy-defaults:global"
			       " cfg:default:service-defaults:api cfg:default:service-defaults:web"
			       " connect:api ixn:default:dst:* ixn:default:dst:web mesh:default"
			       " svc:api-sidecar svc:web-sidecar");
	free(t);
	assert_string_equal(s.service, "web");
	assert_string_equal(s.node, "n1");
	eps = json_object_get(json_array_get(json_object_get(s.doc, "Upstreams"), 0), "Endpoints");
	assert_int_equal(json_array_size(eps), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(eps, 0), "Address")),
			    "10.0.0.2");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(eps, 0), "Weight")), 3);
	proxysnap_clear(&s);

	/* A warning check: Weights.Warning 0 sends it nothing. */
	reg(f, "{\"Node\": \"n2\", \"Address\": \"10.0.0.2\", \"Check\": {\"CheckID\": \"c1\","
	       " \"ServiceID\": \"api-1-sidecar\", \"Status\": \"warning\"}}");
	assert_int_equal(build(f, "web-1-sidecar", NULL, &s, &err), WEFT_OK);
	eps = json_object_get(json_array_get(json_object_get(s.doc, "Upstreams"), 0), "Endpoints");
	assert_int_equal(json_array_size(eps), 0);
	/* still watched: it may come back */
	assert_non_null(json_object_get(s.topics, "svc:api-sidecar"));
	proxysnap_clear(&s);
}

static void test_connect_topic_follows_the_destination(void **state)
{
	struct fixture *f = *state;

	sidecar(f, "n1", "10.0.0.1", "api", "p1", 21000, NULL, NULL);
	f->pub.n = 0;
	/* the same instance now fronts db: both destinations move */
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"api-sidecar\","
	       " \"ID\": \"p1\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"db\"}}}");
	assert_true(published(&f->pub, "connect:api"));
	assert_true(published(&f->pub, "connect:db"));
	/* an ordinary service publishes no connect topic */
	f->pub.n = 0;
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"x\"}}");
	for (size_t i = 0; i < f->pub.n; i++)
		assert_null(strstr(f->pub.topics[i], "connect:"));
}

/* Many endpoint services: their health topics give way to "services"
 * and "checks", which cover them all. */
static void test_topics_budget(void **state)
{
	struct fixture *f = *state;
	struct proxysnap s = { 0 };
	char *err = NULL, svc[32], id[32];

	sidecar(f, "n1", "10.0.0.1", "web", "web-1-sidecar", 21000,
		"{\"DestinationName\": \"api\", \"LocalBindPort\": 9191}", NULL);
	for (int i = 0; i < PROXYSNAP_TOPICS_MAX + 5; i++) {
		char body[600];

		snprintf(svc, sizeof(svc), "api-%d", i);
		snprintf(id, sizeof(id), "api-%d-sc", i);
		snprintf(body, sizeof(body),
			 "{\"Node\": \"n2\", \"Address\": \"10.0.0.2\", \"Service\": {\"Service\": \"%s\","
			 " \"ID\": \"%s\", \"Kind\": \"connect-proxy\", \"Port\": %d,"
			 " \"Proxy\": {\"DestinationServiceName\": \"api\"}}}", svc, id, 20000 + i);
		reg(f, body);
	}
	if (build(f, "web-1-sidecar", NULL, &s, &err) != WEFT_OK)
		fail_msg("build: %s", err);
	assert_non_null(json_object_get(s.topics, "services"));
	assert_non_null(json_object_get(s.topics, "checks"));
	assert_null(json_object_get(s.topics, "svc:api-7"));
	assert_non_null(json_object_get(s.topics, "connect:api"));
	assert_true(json_object_size(s.topics) < 20);
	assert_int_equal(json_array_size(json_object_get(json_array_get(
		json_object_get(s.doc, "Upstreams"), 0), "Endpoints")), PROXYSNAP_TOPICS_MAX + 5);
	proxysnap_clear(&s);
}

static void expect_error(struct fixture *f, const char *id, const char *node, int code,
			 const char *msg)
{
	struct proxysnap s = { 0 };
	char *err = NULL;

	assert_int_equal(build(f, id, node, &s, &err), code);
	if (err == NULL || strstr(err, msg) == NULL)
		fail_msg("want \"%s\" in \"%s\"", msg, err ? err : "(null)");
	assert_null(s.doc);
	assert_non_null(s.topics);
	free(err);
	proxysnap_clear(&s);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct proxysnap s = { 0 };
	char *err = NULL;

	expect_error(f, "nope", NULL, WEFT_ENOENT, "no connect-proxy service instance \"nope\"");
	sidecar(f, "n1", "10.0.0.1", "web", "dup", 21000, NULL, NULL);
	sidecar(f, "n2", "10.0.0.2", "web", "dup", 21000, NULL, NULL);
	expect_error(f, "dup", NULL, WEFT_EINVAL, "registered on nodes \"n1\", \"n2\": give ?node=");
	assert_int_equal(build(f, "dup", "n2", &s, &err), WEFT_OK);
	assert_string_equal(json_string_value(json_object_get(json_object_get(s.doc, "Inbound"),
							      "BindAddress")), "10.0.0.2");
	proxysnap_clear(&s);
	reg(f, "{\"Node\": \"n3\", \"Address\": \"host.example\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"p3\", \"Kind\": \"connect-proxy\", \"Port\": 1,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80}}}");
	expect_error(f, "p3", NULL, WEFT_EINVAL, "Address: the proxy's address \"host.example\"");
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"p4\", \"Kind\": \"connect-proxy\", \"Port\": 1,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\"}}}");
	expect_error(f, "p4", NULL, WEFT_EINVAL, "Proxy.LocalServicePort: the proxy \"p4\" needs one");
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"p5\", \"Kind\": \"connect-proxy\", \"Port\": 1,"
	       " \"Proxy\": {\"LocalServicePort\": 80}}}");
	expect_error(f, "p5", NULL, WEFT_EINVAL, "Proxy.DestinationServiceName");
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"p6\", \"Kind\": \"connect-proxy\", \"Port\": 1,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80,"
	       " \"Upstreams\": [{\"DestinationName\": \"api\", \"LocalBindPort\": 0}]}}}");
	expect_error(f, "p6", NULL, WEFT_EINVAL, "Proxy.Upstreams[0].LocalBindPort: 0 is out of range");
	/* listeners that could not all bind */
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"p7\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80,"
	       " \"Upstreams\": [{\"DestinationName\": \"api\", \"LocalBindPort\": 9000},"
	       " {\"DestinationName\": \"db\", \"LocalBindAddress\": \"0.0.0.0\", \"LocalBindPort\": 9000}]}}}");
	expect_error(f, "p7", NULL, WEFT_EINVAL,
		     "Proxy.Upstreams[1].LocalBindPort: 9000 clashes with Proxy.Upstreams[0]'s");
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"p8\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80,"
	       " \"Upstreams\": [{\"DestinationName\": \"api\", \"LocalBindAddress\": \"0.0.0.0\","
	       " \"LocalBindPort\": 21000}]}}}");
	expect_error(f, "p8", NULL, WEFT_EINVAL, "Proxy.Upstreams[0].LocalBindPort: 0.0.0.0:21000 "
		     "clashes with the proxy's own listener 10.0.0.1:21000");
	/* the default admin port taken: the snapshot turns the admin listener off */
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"p9\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80,"
	       " \"Upstreams\": [{\"DestinationName\": \"api\", \"LocalBindPort\": 19000}]}}}");
	assert_int_equal(build(f, "p9", NULL, &s, &err), WEFT_OK);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s.doc, "Admin"),
							    "BindPort")), 0);
	proxysnap_clear(&s);
	assert_int_equal(build(f, "dup", "n1", &s, &err), WEFT_OK);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s.doc, "Admin"),
							    "BindPort")), 0);
	proxysnap_clear(&s);
}

static const char *str_at(json_t *arr, size_t i, const char *field)
{
	return json_string_value(json_object_get(json_array_get(arr, i), field));
}

static long long int_at(json_t *arr, size_t i, const char *field)
{
	return json_integer_value(json_object_get(json_array_get(arr, i), field));
}

/* Proxy.Mode "transparent": the Transparent listener, and each upstream's
 * Destinations, the instances' address:port (not their sidecars'), each
 * given to one upstream only; watched through svc:<destination>. */
static void test_transparent(void **state)
{
	struct fixture *f = *state;
	struct proxysnap s = { 0 };
	json_t *ups, *d;
	char *err = NULL;

	sidecar(f, "n1", "10.0.0.1", "web", "web-1-sidecar", 21000,
		"{\"DestinationName\": \"api\", \"LocalBindPort\": 9191},"
		"{\"DestinationName\": \"api\", \"LocalBindPort\": 9192},"
		"{\"DestinationName\": \"db\", \"LocalBindPort\": 9193}",
		"\"Tags\": [], \"Meta\": {},");
	/* the mode is the registration's: no Transparent yet */
	assert_int_equal(build(f, "web-1-sidecar", NULL, &s, &err), WEFT_OK);
	assert_null(json_object_get(s.doc, "Transparent"));
	assert_null(json_object_get(json_array_get(json_object_get(s.doc, "Upstreams"), 0),
				    "Destinations"));
	assert_null(json_object_get(s.topics, "svc:api"));
	proxysnap_clear(&s);
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"web-sidecar\","
	       " \"ID\": \"web-1-sidecar\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 8080,"
	       " \"Mode\": \"transparent\", \"TransparentProxy\": {\"OutboundListenerPort\": 15009},"
	       " \"Upstreams\": [{\"DestinationName\": \"api\", \"LocalBindPort\": 9191},"
	       " {\"DestinationName\": \"api\", \"LocalBindPort\": 9192},"
	       " {\"DestinationName\": \"db\", \"LocalBindPort\": 9193}]}}}");
	reg(f, "{\"Node\": \"n2\", \"Address\": \"10.0.0.2\", \"Service\": {\"Service\": \"api\","
	       " \"ID\": \"api-1\", \"Port\": 8080}}");
	reg(f, "{\"Node\": \"n3\", \"Address\": \"10.0.0.3\", \"Service\": {\"Service\": \"api\","
	       " \"ID\": \"api-2\", \"Address\": \"10.0.0.30\", \"Port\": 9090}}");
	/* loopback: never redirected, so no key */
	reg(f, "{\"Node\": \"n4\", \"Address\": \"127.0.0.1\", \"Service\": {\"Service\": \"api\","
	       " \"ID\": \"api-3\", \"Port\": 8080}}");
	/* critical: still a destination (the app may dial it) */
	reg(f, "{\"Node\": \"n5\", \"Address\": \"10.0.0.5\", \"Service\": {\"Service\": \"db\","
	       " \"ID\": \"db-1\", \"Port\": 5432}, \"Check\": {\"CheckID\": \"c\","
	       " \"ServiceID\": \"db-1\", \"Status\": \"critical\"}}");
	sidecar(f, "n2", "10.0.0.2", "api", "api-1-sidecar", 21001, NULL, NULL);
	if (build(f, "web-1-sidecar", NULL, &s, &err) != WEFT_OK)
		fail_msg("build: %s", err);
	d = json_object_get(s.doc, "Transparent");
	assert_non_null(d);
	assert_string_equal(json_string_value(json_object_get(d, "BindAddress")), "127.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(d, "BindPort")), 15009);
	assert_true(json_is_true(json_object_get(d, "Passthrough")));
	ups = json_object_get(s.doc, "Upstreams");
	d = json_object_get(json_array_get(ups, 0), "Destinations");
	assert_int_equal(json_array_size(d), 2);
	assert_string_equal(str_at(d, 0, "Address"), "10.0.0.2");
	assert_int_equal(int_at(d, 0, "Port"), 8080);
	assert_string_equal(str_at(d, 1, "Address"), "10.0.0.30");
	assert_int_equal(int_at(d, 1, "Port"), 9090);
	/* the second upstream to api: the same keys went to the first */
	assert_string_equal(str_at(ups, 1, "Name"), "api-9192");
	assert_int_equal(json_array_size(json_object_get(json_array_get(ups, 1), "Destinations")), 0);
	d = json_object_get(json_array_get(ups, 2), "Destinations");
	assert_int_equal(json_array_size(d), 1);
	assert_string_equal(str_at(d, 0, "Address"), "10.0.0.5");
	/* the endpoints stay the sidecars */
	d = json_object_get(json_array_get(ups, 0), "Endpoints");
	assert_int_equal(json_array_size(d), 1);
	assert_int_equal(int_at(d, 0, "Port"), 21001);
	assert_non_null(json_object_get(s.topics, "svc:api"));
	assert_non_null(json_object_get(s.topics, "svc:db"));
	assert_non_null(json_object_get(s.topics, "cfg:default:mesh:mesh"));
	proxysnap_clear(&s);
	/* a new api instance: published on the topic the snapshot watches */
	f->pub.n = 0;
	reg(f, "{\"Node\": \"n6\", \"Address\": \"10.0.0.6\", \"Service\": {\"Service\": \"api\","
	       " \"ID\": \"api-6\", \"Port\": 8080}}");
	assert_true(published(&f->pub, "svc:api"));

	/* errors: an unknown mode, an outbound port that clashes */
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"t1\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80,"
	       " \"Mode\": \"sideways\"}}}");
	expect_error(f, "t1", NULL, WEFT_EINVAL,
		     "Proxy.Mode: \"sideways\" is not one of direct, transparent");
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"t2\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80,"
	       " \"Mode\": \"transparent\", \"Upstreams\": [{\"DestinationName\": \"api\","
	       " \"LocalBindPort\": 15001}]}}}");
	expect_error(f, "t2", NULL, WEFT_EINVAL, "Proxy.TransparentProxy.OutboundListenerPort: "
		     "15001 clashes with Proxy.Upstreams[0].LocalBindPort");
	reg(f, "{\"Node\": \"n1\", \"Address\": \"10.0.0.1\", \"Service\": {\"Service\": \"s\","
	       " \"ID\": \"t3\", \"Kind\": \"connect-proxy\", \"Port\": 21000,"
	       " \"Proxy\": {\"DestinationServiceName\": \"web\", \"LocalServicePort\": 80,"
	       " \"Mode\": \"direct\"}}}");
	assert_int_equal(build(f, "t3", NULL, &s, &err), WEFT_OK);
	assert_null(json_object_get(s.doc, "Transparent"));
	proxysnap_clear(&s);
}

/* ---- the cache (snapcache, proxysnap_answer) ---- */

static uint64_t watch_hub(void *arg, const char *topic)
{
	return hub_index(arg, topic);
}

static int answer(struct fixture *f, const char *id, struct proxysnap_answer *a)
{
	struct proxysnap_req rq = { .proxy_id = id, .datacenter = "dc1", .cache = f->cache };
	char *err = NULL;
	int rc = proxysnap_answer(f->store, &rq, watch_hub, NULL, f->pub.hub, a, &err);

	if (rc != WEFT_OK)
		fail_msg("answer %s: %s", id, err ? err : "?");
	return rc;
}

static size_t endpoint_count(const struct proxysnap_answer *a)
{
	json_t *doc = json_loads(a->text, 0, NULL);
	size_t n;

	assert_non_null(doc);
	n = json_array_size(json_object_get(json_array_get(json_object_get(doc, "Upstreams"), 0),
					    "Endpoints"));
	json_decref(doc);
	return n;
}

static void add_intention(struct fixture *f, const char *src, const char *dst)
{
	char body[300];

	/* a service-intentions config entry, as PUT /v1/config writes it */
	snprintf(body, sizeof(body), "{\"Kind\": \"service-intentions\", \"Name\": \"%s\","
		 " \"Sources\": [{\"Name\": \"%s\", \"Action\": \"deny\"}]}", dst, src);
	config_put(f, body);
}

static void test_cache_hit_until_a_topic_moves(void **state)
{
	struct fixture *f = *state;
	struct proxysnap_answer a = { 0 }, b = { 0 };
	struct proxysnap_counters c0, c1;

	sidecar(f, "n1", "10.0.0.1", "web", "web-1-sidecar", 21000,
		"{\"DestinationName\": \"api\", \"LocalBindPort\": 9191}", NULL);
	sidecar(f, "n2", "10.0.0.2", "api", "api-1-sidecar", 21001, NULL, NULL);
	answer(f, "web-1-sidecar", &a);
	assert_int_equal(a.cached, 0);
	assert_string_equal(a.service, "web");
	assert_string_equal(a.node, "n1");
	assert_int_equal(endpoint_count(&a), 1);
	/* the same question again: the same bytes, at the same index, no build */
	proxysnap_counters(&c0);
	answer(f, "web-1-sidecar", &b);
	proxysnap_counters(&c1);
	assert_int_equal(b.cached, 1);
	assert_int_equal(c1.builds, c0.builds);
	assert_int_equal(b.index, a.index);
	assert_string_equal(b.text, a.text);
	assert_string_equal(b.service, "web");
	assert_string_equal(b.node, "n1");
	proxysnap_answer_clear(&b);
	/* a write to something it does not depend on: still cached */
	reg(f, "{\"Node\": \"n3\", \"Address\": \"10.0.0.3\", \"Service\": {\"Service\": \"other\"}}");
	answer(f, "web-1-sidecar", &b);
	assert_int_equal(b.cached, 1);
	proxysnap_answer_clear(&b);
	/* a new endpoint of its upstream: built again, with it, at a higher index */
	sidecar(f, "n3", "10.0.0.3", "api", "api-2-sidecar", 21001, NULL, NULL);
	answer(f, "web-1-sidecar", &b);
	assert_int_equal(b.cached, 0);
	assert_true(b.index > a.index);
	assert_int_equal(endpoint_count(&b), 2);
	proxysnap_answer_clear(&b);
	/* an intention to it */
	add_intention(f, "db", "web");
	answer(f, "web-1-sidecar", &b);
	assert_int_equal(b.cached, 0);
	assert_non_null(strstr(b.text, "\"SourceName\":\"db\""));
	proxysnap_answer_clear(&b);
	/* one to another destination: cached */
	add_intention(f, "db", "api");
	answer(f, "web-1-sidecar", &b);
	assert_int_equal(b.cached, 1);
	proxysnap_answer_clear(&b);
	/* the endpoint's health */
	reg(f, "{\"Node\": \"n3\", \"Address\": \"10.0.0.3\", \"Check\": {\"CheckID\": \"c1\","
	       " \"ServiceID\": \"api-2-sidecar\", \"Status\": \"critical\"}}");
	answer(f, "web-1-sidecar", &b);
	assert_int_equal(b.cached, 0);
	assert_int_equal(endpoint_count(&b), 1);
	proxysnap_answer_clear(&b);
	proxysnap_answer_clear(&a);
}

/* Ten proxies with the same upstream: one scan of the mesh's instances
 * per change, not one per proxy. */
static void test_endpoints_computed_once_per_change(void **state)
{
	struct fixture *f = *state;
	struct proxysnap_answer a = { 0 };
	struct proxysnap_counters c0, c1;
	char id[32];

	sidecar(f, "n2", "10.0.0.2", "api", "api-1-sidecar", 21001, NULL, NULL);
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "web-%d-sidecar", i);
		sidecar(f, "n1", "10.0.0.1", "web", id, 21000 + i,
			"{\"DestinationName\": \"api\", \"LocalBindPort\": 9191}", NULL);
	}
	proxysnap_counters(&c0);
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "web-%d-sidecar", i);
		answer(f, id, &a);
		assert_int_equal(endpoint_count(&a), 1);
		proxysnap_answer_clear(&a);
	}
	proxysnap_counters(&c1);
	/* the first proxy's first pass cannot cache it yet (the endpoints'
	 * svc: topics were not watched before that read); its second does */
	assert_int_equal(c1.endpoint_scans - c0.endpoint_scans, 2);
	/* a change of the upstream: one scan again, and every proxy sees it */
	sidecar(f, "n3", "10.0.0.3", "api", "api-2-sidecar", 21001, NULL, NULL);
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "web-%d-sidecar", i);
		answer(f, id, &a);
		assert_int_equal(a.cached, 0);
		assert_int_equal(endpoint_count(&a), 2);
		proxysnap_answer_clear(&a);
	}
	proxysnap_counters(&c0);
	assert_int_equal(c0.endpoint_scans - c1.endpoint_scans, 1);
	/* and each woken proxy is built once (its topics known from before) */
	assert_int_equal(c0.builds - c1.builds, 10);
}

/* The cache itself: stale entries are never handed out, a newer entry is
 * not replaced by an older one, memory stays bounded (LRU). */
static void test_snapcache_bounds_and_staleness(void **state)
{
	struct hub *hub = hub_new(10);
	struct snapcache *c = snapcache_new(hub, 64 << 10);
	const struct snapcache_entry *e;
	struct snapcache_stats st;
	const char *t[] = { "svc:a" };
	uint64_t idx[] = { 11 };
	json_t *topics;
	char key[32], text[400];

	(void)state;
	assert_non_null(c);
	topics = json_pack("{s:b}", "svc:a", 1);
	snapcache_put(c, "k", topics, 10, json_string("v10"), 8, "text", 4);
	assert_non_null(e = snapcache_get(c, "k"));
	assert_string_equal(json_string_value(e->value), "v10");
	assert_string_equal(e->text, "text");
	/* an older answer does not replace it */
	snapcache_put(c, "k", topics, 9, json_string("v9"), 8, NULL, 0);
	/* the reader's reference outlives a replacement */
	snapcache_put(c, "k", topics, 10, json_string("v10b"), 8, NULL, 0);
	assert_string_equal(json_string_value(e->value), "v10");
	snapcache_release(c, e);
	assert_non_null(e = snapcache_get(c, "k"));
	assert_string_equal(json_string_value(e->value), "v10b");
	snapcache_release(c, e);
	/* its topic moves: gone */
	hub_publish(hub, t, idx, 1);
	assert_null(snapcache_get(c, "k"));
	snapcache_stats(c, &st);
	assert_int_equal(st.stale, 1);
	assert_int_equal(st.entries, 0);
	/* memory: 1,000 entries of ~600 bytes in 64 KiB */
	memset(text, 'x', sizeof(text));
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		snapcache_put(c, key, topics, 11, NULL, 0, text, sizeof(text));
		snapcache_stats(c, &st);
		assert_true(st.bytes <= st.max_bytes);
		if (i == 5)   /* used: stays while others go */
			snapcache_release(c, snapcache_get(c, "key-0"));
	}
	snapcache_stats(c, &st);
	assert_true(st.evictions > 800);
	assert_true(st.entries > 50);
	assert_null(snapcache_get(c, "key-1"));
	assert_non_null(e = snapcache_get(c, "key-999"));
	snapcache_release(c, e);
	/* one entry larger than a quarter of the cache is never kept */
	snapcache_put(c, "big", topics, 11, NULL, 40 << 10, NULL, 0);
	assert_null(snapcache_get(c, "big"));
	json_decref(topics);
	snapcache_free(c);
	hub_free(hub);
}

/* Writes and readers at once: an answer never reflects less than the
 * index it claims (every endpoint registered at or below it is in it). */
struct race {
	struct fixture *f;
	pthread_mutex_t lock;
	uint64_t written[64];   /* the index of each registration, in order */
	int nwritten;
	int done;
	int checks;
	char failure[300];
};

#define RACE_WRITES 40

static void *race_writer(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < RACE_WRITES; i++) {
		struct cat_register *reg_ = calloc(1, sizeof(*reg_));
		struct store_write w = { .apply = catalog_apply_register, .arg = reg_ };
		char body[600], *err = NULL;
		json_t *doc;

		snprintf(body, sizeof(body),
			 "{\"Node\": \"n2\", \"Address\": \"10.0.0.2\", \"Service\": {\"Service\":"
			 " \"api-sidecar\", \"ID\": \"api-%d\", \"Kind\": \"connect-proxy\", \"Port\": %d,"
			 " \"Proxy\": {\"DestinationServiceName\": \"api\"}}}", i, 20000 + i);
		doc = json_loads(body, 0, NULL);
		if (catalog_decode_register(doc, "dc1", reg_, &err) != WEFT_OK ||
		    store_write_sync(r->f->store, &w) != WEFT_OK)
			abort();
		json_decref(doc);
		json_decref(w.result);
		catalog_register_free(reg_);
		pthread_mutex_lock(&r->lock);
		r->written[r->nwritten++] = w.index;
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_lock(&r->lock);
	r->done = 1;
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	char id[32];

	for (int n = 0;; n++) {
		struct proxysnap_req rq = { .datacenter = "dc1", .cache = r->f->cache };
		struct proxysnap_answer a = { 0 };
		char *err = NULL;
		int done, below = 0;
		size_t have;
		json_t *doc;

		snprintf(id, sizeof(id), "web-%d-sidecar", n % 3);
		rq.proxy_id = id;
		pthread_mutex_lock(&r->lock);
		done = r->done;
		pthread_mutex_unlock(&r->lock);
		if (proxysnap_answer(r->f->store, &rq, watch_hub, NULL, r->f->pub.hub, &a, &err) != WEFT_OK) {
			snprintf(r->failure, sizeof(r->failure), "answer: %s", err ? err : "?");
			free(err);
			return NULL;
		}
		doc = json_loads(a.text, 0, NULL);
		have = json_array_size(json_object_get(json_array_get(json_object_get(doc, "Upstreams"), 0),
						       "Endpoints"));
		json_decref(doc);
		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < r->nwritten; i++)
			below += r->written[i] <= a.index;
		r->checks++;
		pthread_mutex_unlock(&r->lock);
		if (have < (size_t)below) {
			snprintf(r->failure, sizeof(r->failure), "%s at index %llu has %zu endpoints; %d "
				 "were written at or below it (cached=%d)", id,
				 (unsigned long long)a.index, have, below, a.cached);
			proxysnap_answer_clear(&a);
			return NULL;
		}
		proxysnap_answer_clear(&a);
		if (done)
			return NULL;
	}
}

static void test_cache_under_concurrent_writes(void **state)
{
	struct fixture *f = *state;
	struct race r = { .f = f };
	pthread_t w, rd[3];
	struct proxysnap_answer a = { 0 };
	char id[32];

	pthread_mutex_init(&r.lock, NULL);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "web-%d-sidecar", i);
		sidecar(f, "n1", "10.0.0.1", "web", id, 21000 + i,
			"{\"DestinationName\": \"api\", \"LocalBindPort\": 9191}", NULL);
	}
	assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&rd[i], NULL, race_reader, &r), 0);
	pthread_join(w, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(rd[i], NULL);
	if (r.failure[0])
		fail_msg("%s", r.failure);
	assert_true(r.checks > 3);
	/* and at the end, every proxy has them all */
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "web-%d-sidecar", i);
		answer(f, id, &a);
		assert_int_equal(endpoint_count(&a), RACE_WRITES);
		proxysnap_answer_clear(&a);
	}
	pthread_mutex_destroy(&r.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_and_exact_topics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_topic_follows_the_destination, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_topics_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transparent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_hit_until_a_topic_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endpoints_computed_once_per_change, setup,
						teardown),
		cmocka_unit_test(test_snapcache_bounds_and_staleness),
		cmocka_unit_test_setup_teardown(test_cache_under_concurrent_writes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
