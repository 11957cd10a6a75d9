/* Proxy snapshots computed from the store (proxysnap.h). */
#include "proxysnap.h"
#include "ca.h"
#include "castore.h"
#include "config_store.h"
#include "err.h"
#include "intention.h"
#include "intentions.h"
#include "jsonx.h"
#include "log.h"
#include "mesh.h"
#include "snapcache.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIND_PROXY "connect-proxy"
#define APP_ADDRESS_DEFAULT "127.0.0.1"
#define UPSTREAM_BIND_DEFAULT "127.0.0.1"
#define OUTBOUND_PORT_DEFAULT 15001   /* Consul's TransparentProxy.OutboundListenerPort */
#define NAME_MAX_LEN 63            /* the format's names (service, mesh, zone) */
/* The format's bounds (dataplane/px_config.h PX_CONFIG_*_MAX). */
#define UPSTREAMS_MAX 1024
#define ENDPOINTS_MAX 4096
#define DESTINATIONS_MAX 4096
#define INTENTIONS_MAX 4096

static atomic_uint_fast64_t n_answers, n_answers_cached, n_builds, n_endpoint_scans;

void proxysnap_counters(struct proxysnap_counters *out)
{
	out->answers = atomic_load(&n_answers);
	out->answers_cached = atomic_load(&n_answers_cached);
	out->builds = atomic_load(&n_builds);
	out->endpoint_scans = atomic_load(&n_endpoint_scans);
}

void proxysnap_clear(struct proxysnap *s)
{
	if (s == NULL)
		return;
	json_decref(s->doc);
	json_decref(s->topics);
	free(s->service);
	free(s->mesh);
	free(s->node);
	memset(s, 0, sizeof(*s));
}

__attribute__((format(printf, 2, 3)))
static void topic(struct proxysnap *s, const char *fmt, ...)
{
	char t[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t, sizeof(t), fmt, ap);
	va_end(ap);
	json_object_set_new(s->topics, t, json_true());
}

/* ---- cached parts (proxysnap.h "Caching") ---- */

/* A deep copy of the part cached under key while current, or NULL. The
 * caller adds the part's topics to the snapshot's, as when computing it. */
static json_t *part_get(const struct proxysnap_req *rq, const char *key)
{
	const struct snapcache_entry *e;
	json_t *copy;

	if (rq->cache == NULL || rq->sampled == NULL || (e = snapcache_get(rq->cache, key)) == NULL)
		return NULL;
	copy = json_deep_copy(e->value);
	snapcache_release(rq->cache, e);
	return copy;
}

/* Caches value (stolen) under key if every one of its topics (an object's
 * keys; stolen) was watched before this read: then the highest of the
 * indexes read for them is the state the part reflects at least. */
static void part_put(const struct proxysnap_req *rq, const char *key, json_t *topics, json_t *value)
{
	uint64_t index = 0;
	const char *t;
	json_t *v;
	char *text;

	if (rq->cache == NULL || rq->sampled == NULL || value == NULL)
		goto out;
	json_object_foreach(topics, t, v) {
		json_t *i = json_object_get(rq->sampled, t);

		if (!json_is_integer(i))
			goto out;   /* not watched before this read: next time */
		if ((uint64_t)json_integer_value(i) > index)
			index = (uint64_t)json_integer_value(i);
	}
	/* the value's memory: about twice its compact text */
	text = json_dumps(value, JSON_COMPACT);
	snapcache_put(rq->cache, key, topics, index, value, text ? 2 * strlen(text) : 4096, NULL, 0);
	value = NULL;
	free(text);
out:
	json_decref(value);
	json_decref(topics);
}

__attribute__((format(printf, 2, 3)))
static void add_topic(json_t *set, const char *fmt, ...)
{
	char t[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t, sizeof(t), fmt, ap);
	va_end(ap);
	json_object_set_new(set, t, json_true());
}

static int ip_literal(const char *s)
{
	unsigned char buf[16];

	return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

/* The format's names: 1-63 letters, digits, '-', '_', '.'. */
static int fmt_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

/* "http" for http, http2 and grpc (what the proxy parses as HTTP/1.1 and
 * enforces L7 intentions on), "tcp" otherwise: service-defaults' Protocol,
 * else proxy-defaults "global" Config.protocol, as the discovery chain
 * (lib/config_entry.c) resolves it. */
static const char *protocol_of(struct db *db, const struct proxysnap_req *rq, const char *mesh,
			       const char *svc, struct proxysnap *s)
{
	json_t *sd, *pd, *cached, *deps;
	const char *p = NULL;
	char key[200];
	int http;

	topic(s, "cfg:%s:service-defaults:%s", mesh, svc);
	topic(s, "cfg:%s:proxy-defaults:global", mesh);
	snprintf(key, sizeof(key), "protocol\n%s\n%s", mesh, svc);
	if ((cached = part_get(rq, key)) != NULL) {
		http = json_is_true(cached);
		json_decref(cached);
		return http ? "http" : "tcp";
	}
	sd = config_store_get(db, mesh, "service-defaults", svc);
	p = json_string_value(jx_field(sd, "Protocol"));
	pd = NULL;
	if (p == NULL || p[0] == '\0') {
		pd = config_store_get(db, mesh, "proxy-defaults", "global");
		p = json_string_value(jx_field(jx_field(pd, "Config"), "protocol"));
	}
	http = p && (strcasecmp(p, "http") == 0 || strcasecmp(p, "http2") == 0 ||
		     strcasecmp(p, "grpc") == 0);
	json_decref(sd);
	json_decref(pd);
	deps = json_object();
	add_topic(deps, "cfg:%s:service-defaults:%s", mesh, svc);
	add_topic(deps, "cfg:%s:proxy-defaults:global", mesh);
	part_put(rq, key, deps, json_boolean(http));
	return http ? "http" : "tcp";
}

/* The worst status of the instance's checks and its node's: 0 passing,
 * 1 warning, 2 critical. */
static int health_of(struct db *db, const char *node, const char *service_id)
{
	struct db_stmt *st = db_prep(db, "SELECT status FROM checks WHERE node = ?"
				     " AND (service_id = ? OR service_id = '')");
	int worst = 0;

	if (st == NULL)
		return 2;
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, service_id);
	while (db_step(st) == DB_ROW) {
		const char *v = db_col_text(st, 0);
		int h = strcmp(v, "passing") == 0 ? 0 : strcmp(v, "warning") == 0 ? 1 : 2;
		if (h > worst)
			worst = h;
	}
	db_done(st);
	return worst;
}

struct proxy_row {
	char *node, *id, *name, *address, *node_address, *mesh;
	long long port;
	json_t *proxy;
};

static void proxy_row_free(struct proxy_row *p)
{
	free(p->node);
	free(p->id);
	free(p->name);
	free(p->address);
	free(p->node_address);
	free(p->mesh);
	json_decref(p->proxy);
}

static char *dup_col(struct db_stmt *st, int i)
{
	const char *v = db_col_text(st, i);

	return strdup(v ? v : "");
}

/* Finds the proxy: WEFT_ENOENT, WEFT_EINVAL when ambiguous. */
static int find_proxy(struct db *db, const struct proxysnap_req *rq, struct proxy_row *p,
		      char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT s.node, s.id, s.name, s.address, s.port, s.proxy,"
				     " s.mesh, n.address FROM services s JOIN nodes n ON n.name = s.node"
				     " WHERE s.id = ? AND s.kind = 'connect-proxy' ORDER BY s.node");
	int found = 0, rc = WEFT_OK;
	char others[300] = "";

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, rq->proxy_id);
	while ((rc = db_step(st)) == DB_ROW) {
		const char *node = db_col_text(st, 0);

		if (rq->node && strcmp(rq->node, node) != 0)
			continue;
		if (found++) {
			size_t l = strlen(others);
			snprintf(others + l, sizeof(others) - l, "%s\"%s\"", l ? ", " : "", node);
			continue;
		}
		p->node = dup_col(st, 0);
		p->id = dup_col(st, 1);
		p->name = dup_col(st, 2);
		p->address = dup_col(st, 3);
		p->port = db_col_int(st, 4);
		p->proxy = jx_load_or(db_col_text(st, 5), JSON_OBJECT);
		p->mesh = dup_col(st, 6);
		p->node_address = dup_col(st, 7);
		snprintf(others, sizeof(others), "\"%s\"", node);
	}
	db_done(st);
	if (rc < 0)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	if (found == 0)
		return weft_errf(err, WEFT_ENOENT, "proxy-id: no connect-proxy service instance \"%s\"%s%s",
				 rq->proxy_id, rq->node ? " on node " : "", rq->node ? rq->node : "");
	if (found > 1)
		return weft_errf(err, WEFT_EINVAL, "proxy-id: \"%s\" is registered on nodes %s: give "
				 "?node=", rq->proxy_id, others);
	return WEFT_OK;
}

/* Reads an integer field of obj that may be absent (0). */
static long long int_field(json_t *obj, const char *name)
{
	json_t *v = jx_field(obj, name);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	return 0;
}

static json_t *inbound(struct db *db, const struct proxysnap_req *rq, const struct proxy_row *p,
		       const char *svc, struct proxysnap *s, char **err)
{
	const char *bind = p->address[0] ? p->address : p->node_address;
	const char *app = json_string_value(jx_field(p->proxy, "LocalServiceAddress"));
	long long app_port = int_field(p->proxy, "LocalServicePort");

	if (!ip_literal(bind)) {
		weft_errf(err, WEFT_EINVAL, "Address: the proxy's address \"%s\" is not an IP address "
			  "(the proxy never resolves names)", bind);
		return NULL;
	}
	if (p->port < 1 || p->port > 65535) {
		weft_errf(err, WEFT_EINVAL, "Port: the proxy \"%s\" has no port", p->id);
		return NULL;
	}
	if (app == NULL || app[0] == '\0')
		app = APP_ADDRESS_DEFAULT;
	if (!ip_literal(app)) {
		weft_errf(err, WEFT_EINVAL, "Proxy.LocalServiceAddress: \"%s\" is not an IP address", app);
		return NULL;
	}
	if (app_port < 1 || app_port > 65535) {
		weft_errf(err, WEFT_EINVAL, "Proxy.LocalServicePort: the proxy \"%s\" needs one "
			  "(1..65535), got %lld", p->id, app_port);
		return NULL;
	}
	return json_pack("{s:s, s:I, s:s, s:I, s:s}", "BindAddress", bind, "BindPort",
			 (json_int_t)p->port, "AppAddress", app, "AppPort", (json_int_t)app_port,
			 "Protocol", protocol_of(db, rq, p->mesh, svc, s));
}

/* The endpoints of upstream dest: the passing and warning instances of the
 * connect-proxy services fronting dest in mesh; the names of those
 * services go into health_topics. */
static json_t *endpoints_scan(struct db *db, const char *mesh, const char *dest, const char *td,
			      const char *zone, json_t *health_topics, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT s.node, s.id, s.name, s.address, s.port, s.proxy,"
				     " s.weights, n.address FROM services s JOIN nodes n ON n.name = s.node"
				     " WHERE s.kind = 'connect-proxy' AND s.mesh = ? AND s.proxy_dest = ?"
				     " ORDER BY s.node, s.id");
	json_t *out = json_array();
	char *uri = NULL;
	int rc;

	atomic_fetch_add(&n_endpoint_scans, 1);
	if (st == NULL) {
		weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto fail;
	}
	if (ca_spiffe_service_uri(td, mesh, zone, dest, &uri, err) != WEFT_OK) {
		db_done(st);
		goto fail;
	}
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, dest);
	while ((rc = db_step(st)) == DB_ROW) {
		json_t *proxy = jx_load_or(db_col_text(st, 5), JSON_OBJECT);
		const char *d = json_string_value(jx_field(proxy, "DestinationServiceName"));
		const char *addr = db_col_text(st, 3), *node = db_col_text(st, 0);
		long long port = db_col_int(st, 4), weight;
		json_t *weights;
		int h;

		if (d == NULL || strcmp(d, dest) != 0) {
			json_decref(proxy);
			continue;
		}
		json_decref(proxy);
		json_object_set_new(health_topics, db_col_text(st, 2), json_true());
		if (addr == NULL || addr[0] == '\0')
			addr = db_col_text(st, 7);
		h = health_of(db, node, db_col_text(st, 1));
		weights = jx_load_or(db_col_text(st, 6), JSON_OBJECT);
		weight = int_field(weights, h == 1 ? "Warning" : "Passing");
		if (jx_field(weights, h == 1 ? "Warning" : "Passing") == NULL)
			weight = 1;
		json_decref(weights);
		if (h == 2 || weight <= 0)
			continue;     /* critical, or a weight that sends it nothing */
		if (!ip_literal(addr) || port < 1 || port > 65535) {
			log_warnx("proxysnap", "upstream %s: instance %s on node %s skipped: address "
				  "\"%s\" port %lld is not an IP address and port", dest,
				  db_col_text(st, 1), node, addr ? addr : "", port);
			continue;
		}
		if (json_array_size(out) == ENDPOINTS_MAX) {
			log_warnx("proxysnap", "upstream %s: more than %d instances; the snapshot "
				  "holds the first %d", dest, ENDPOINTS_MAX, ENDPOINTS_MAX);
			break;
		}
		json_array_append_new(out, json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}",
			"Address", addr, "Port", (json_int_t)port,
			"Weight", (json_int_t)(weight > 65535 ? 65535 : weight), "Zone", zone,
			"SpiffeID", uri, "Health", h == 1 ? "warning" : "passing"));
	}
	db_done(st);
	free(uri);
	if (rc < 0) {
		weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		json_decref(out);
		return NULL;
	}
	return out;
fail:
	free(uri);
	json_decref(out);
	return NULL;
}

/* Transparent mode (docs/transparent-proxy.md), resolved as Consul does:
 * the registration's Proxy.Mode, else the proxied service's
 * service-defaults Mode, else proxy-defaults "global"'s; the outbound
 * port likewise from TransparentProxy.OutboundListenerPort (default
 * 15001). Passthrough is the mesh config entry's
 * TransparentProxy.MeshDestinationsOnly negated (default: on). Returns
 * WEFT_OK with *out NULL when the proxy is not in transparent mode (the
 * topics watched tell when that changes), WEFT_EINVAL with *err. */
static int transparent(struct db *db, const struct proxy_row *p, const char *svc,
		       struct proxysnap *s, json_t **out, char **err)
{
	json_t *sd, *pd, *me, *srcs[3];
	const char *mode = NULL;
	long long port = 0;
	int only = 0, rc = WEFT_OK;

	topic(s, "cfg:%s:service-defaults:%s", p->mesh, svc);
	topic(s, "cfg:%s:proxy-defaults:global", p->mesh);
	sd = config_store_get(db, p->mesh, "service-defaults", svc);
	pd = config_store_get(db, p->mesh, "proxy-defaults", "global");
	me = config_store_get(db, p->mesh, "mesh", "mesh");
	srcs[0] = p->proxy;
	srcs[1] = sd;
	srcs[2] = pd;
	for (int i = 0; i < 3; i++) {
		const char *m = json_string_value(jx_field(srcs[i], "Mode"));

		if (mode == NULL && m != NULL && m[0] != '\0')
			mode = m;
		if (port == 0)
			port = int_field(jx_field(srcs[i], "TransparentProxy"), "OutboundListenerPort");
	}
	if (mode == NULL || strcasecmp(mode, "transparent") != 0) {
		if (mode != NULL && strcasecmp(mode, "direct") != 0)
			rc = weft_errf(err, WEFT_EINVAL, "Proxy.Mode: \"%s\" is not one of direct, "
				       "transparent", mode);
		goto out;
	}
	topic(s, "cfg:%s:mesh:mesh", p->mesh);     /* MeshDestinationsOnly */
	if (port == 0)
		port = OUTBOUND_PORT_DEFAULT;
	if (port < 1 || port > 65535) {
		rc = weft_errf(err, WEFT_EINVAL, "Proxy.TransparentProxy.OutboundListenerPort: %lld "
			       "is out of range [1, 65535]", port);
		goto out;
	}
	only = json_is_true(jx_field(jx_field(me, "TransparentProxy"), "MeshDestinationsOnly"));
	*out = json_pack("{s:s, s:I, s:b}", "BindAddress", "127.0.0.1", "BindPort", (json_int_t)port,
			 "Passthrough", !only);
	if (*out == NULL)
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
out:
	json_decref(sd);
	json_decref(pd);
	json_decref(me);
	return rc;
}

/* Whether addr is an address the application dials that the rules
 * redirect: an IP literal, not loopback nor unspecified. */
static int redirectable(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (addr != NULL && inet_pton(AF_INET, addr, &a4) == 1)
		return a4.s_addr != INADDR_ANY && (ntohl(a4.s_addr) >> 24) != 127;
	return addr != NULL && inet_pton(AF_INET6, addr, &a6) == 1 &&
	       !IN6_IS_ADDR_UNSPECIFIED(&a6) && !IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Upstreams[].Destinations: every instance of service dest in the
 * proxy's mesh (not its proxies), whatever its health (the application
 * may dial any of them: the proxy balances over the upstream's endpoints
 * anyway), as address:port; the service address, else the node's.
 * seen holds the "address:port" keys given to earlier upstreams: a key
 * goes to one upstream only. Watches svc:<dest>. */
static json_t *destinations(struct db *db, const char *mesh, const char *dest, json_t *seen,
			    struct proxysnap *s, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT s.address, s.port, n.address, s.id, s.node"
				     " FROM services s JOIN nodes n ON n.name = s.node"
				     " WHERE s.name = ? AND s.mesh = ? AND s.kind = ''"
				     " ORDER BY s.node, s.id");
	json_t *out = json_array();
	int rc;

	topic(s, "svc:%s", dest);
	if (st == NULL) {
		weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		json_decref(out);
		return NULL;
	}
	db_bind_text(st, 1, dest);
	db_bind_text(st, 2, mesh);
	while ((rc = db_step(st)) == DB_ROW) {
		const char *addr = db_col_text(st, 0);
		long long port = db_col_int(st, 1);
		char key[128];

		if (addr == NULL || addr[0] == '\0')
			addr = db_col_text(st, 2);
		if (!redirectable(addr) || port < 1 || port > 65535) {
			log_debug("proxysnap", "upstream %s: instance %s on node %s has no destination "
				  "to redirect (address \"%s\" port %lld)", dest, db_col_text(st, 3),
				  db_col_text(st, 4), addr ? addr : "", port);
			continue;
		}
		snprintf(key, sizeof(key), "%s:%lld", addr, port);
		if (json_object_get(seen, key))
			continue;
		if (json_array_size(out) == DESTINATIONS_MAX) {
			log_warnx("proxysnap", "upstream %s: more than %d instances; the transparent "
				  "listener routes the first %d", dest, DESTINATIONS_MAX, DESTINATIONS_MAX);
			break;
		}
		json_object_set_new(seen, key, json_true());
		json_array_append_new(out, json_pack("{s:s, s:I}", "Address", addr, "Port",
						     (json_int_t)port));
	}
	db_done(st);
	if (rc < 0) {
		weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		json_decref(out);
		return NULL;
	}
	return out;
}

/* The endpoints of upstream dest, computed once per change of
 * connect:<dest> or of their services' svc: topics and shared by every
 * proxy with that upstream. Watches connect:<dest>; the services' names
 * go into health_topics (their svc: topics, or the coarse fallback). */
static json_t *endpoints(struct db *db, const struct proxysnap_req *rq, const char *mesh,
			 const char *dest, const char *td, const char *zone, struct proxysnap *s,
			 json_t *health_topics, char **err)
{
	json_t *cached, *names, *eps, *deps, *v;
	const char *k;
	char key[1024];

	topic(s, "connect:%s", dest);
	snprintf(key, sizeof(key), "endpoints\n%s\n%s\n%s\n%s", mesh, dest, td, zone);
	if ((cached = part_get(rq, key)) != NULL) {
		json_object_foreach(json_object_get(cached, "Names"), k, v)
			json_object_set_new(health_topics, k, json_true());
		eps = json_incref(json_object_get(cached, "Endpoints"));
		json_decref(cached);
		if (json_is_array(eps))
			return eps;
		json_decref(eps);
	}
	names = json_object();
	if ((eps = endpoints_scan(db, mesh, dest, td, zone, names, err)) != NULL) {
		deps = json_object();
		add_topic(deps, "connect:%s", dest);
		json_object_foreach(names, k, v) {
			add_topic(deps, "svc:%s", k);
			json_object_set_new(health_topics, k, json_true());
		}
		part_put(rq, key, deps, json_pack("{s:o, s:O}", "Endpoints", json_deep_copy(eps),
						  "Names", names));
	}
	json_decref(names);
	return eps;
}

static json_t *upstreams(struct db *db, const struct proxysnap_req *rq, const struct proxy_row *p,
			 const char *td, const char *zone, int tproxy, struct proxysnap *s,
			 json_t *health_topics,
			 char **err)
{
	json_t *list = jx_field(p->proxy, "Upstreams"), *out = json_array(), *u, *names = json_object();
	json_t *seen = json_object();
	size_t i;

	if (list != NULL && !json_is_array(list)) {
		weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams: must be an array");
		goto fail;
	}
	if (json_array_size(list) > UPSTREAMS_MAX) {
		weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams: more than %d upstreams", UPSTREAMS_MAX);
		goto fail;
	}
	json_array_foreach(list, i, u) {
		const char *dest = json_string_value(jx_field(u, "DestinationName"));
		const char *type = json_string_value(jx_field(u, "DestinationType"));
		const char *bind = json_string_value(jx_field(u, "LocalBindAddress"));
		long long port = int_field(u, "LocalBindPort");
		long long cto = int_field(jx_field(u, "Config"), "connect_timeout_ms");
		char name[128];
		json_t *eps, *up;

		if (type && type[0] && strcmp(type, "service") != 0) {
			weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams[%zu].DestinationType: \"%s\" is not "
				  "supported (only service)", i, type);
			goto fail;
		}
		if (!fmt_name(dest)) {
			weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams[%zu].DestinationName: \"%s\" is not a "
				  "service name", i, dest ? dest : "");
			goto fail;
		}
		if (bind == NULL || bind[0] == '\0')
			bind = UPSTREAM_BIND_DEFAULT;
		if (!ip_literal(bind)) {
			weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams[%zu].LocalBindAddress: \"%s\" is not "
				  "an IP address", i, bind);
			goto fail;
		}
		if (port < 1 || port > 65535) {
			weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams[%zu].LocalBindPort: %lld is out of "
				  "range [1, 65535]", i, port);
			goto fail;
		}
		/* Names are unique in a snapshot: a second upstream to the same
		 * destination is named after its port. */
		snprintf(name, sizeof(name), "%s", dest);
		if (json_object_get(names, name))
			snprintf(name, sizeof(name), "%s-%lld", dest, port);
		json_object_set_new(names, name, json_true());
		if ((eps = endpoints(db, rq, p->mesh, dest, td, zone, s, health_topics, err)) == NULL)
			goto fail;
		up = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "Name", name, "Service", dest,
			       "BindAddress", bind, "BindPort", (json_int_t)port,
			       "Protocol", protocol_of(db, rq, p->mesh, dest, s), "Endpoints", eps);
		if (tproxy) {
			json_t *d = destinations(db, p->mesh, dest, seen, s, err);

			if (d == NULL) {
				json_decref(up);
				goto fail;
			}
			json_object_set_new(up, "Destinations", d);
		}
		if (cto >= 1 && cto <= 86400000LL) {
			char d[32];
			snprintf(d, sizeof(d), "%lldms", cto);
			json_object_set_new(up, "Timeouts", json_pack("{s:s}", "Connect", d));
		}
		json_array_append_new(out, up);
	}
	json_decref(names);
	json_decref(seen);
	return out;
fail:
	json_decref(names);
	json_decref(seen);
	json_decref(out);
	return NULL;
}

static int is_any(const char *s)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, s, &a4) == 1)
		return a4.s_addr == INADDR_ANY;
	return inet_pton(AF_INET6, s, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

/* The decoder's rule: the same port on the same address, or on any
 * address and another one. */
static int clash(json_t *a, json_t *b)
{
	const char *a1 = json_string_value(json_object_get(a, "BindAddress"));
	const char *a2 = json_string_value(json_object_get(b, "BindAddress"));
	json_int_t p1 = json_integer_value(json_object_get(a, "BindPort"));
	json_int_t p2 = json_integer_value(json_object_get(b, "BindPort"));

	return p1 != 0 && p1 == p2 && (strcmp(a1, a2) == 0 || is_any(a1) || is_any(a2));
}

/* Refuses listeners that could not all bind (the proxy would refuse the
 * snapshot); 1 when the default admin listener (127.0.0.1:19000) clashes
 * with one of them, 0 when not, -1 with *err. */
static int check_listeners(json_t *in, json_t *ups, json_t *tp, char **err)
{
	json_t *admin = json_pack("{s:s, s:i}", "BindAddress", "127.0.0.1", "BindPort", 19000);
	int admin_clash = clash(admin, in);
	size_t i, j;

	if (tp != NULL && clash(tp, in)) {
		json_decref(admin);
		return weft_errf(err, WEFT_EINVAL, "Proxy.TransparentProxy.OutboundListenerPort: %lld "
				 "clashes with the proxy's own listener %s:%lld",
				 (long long)json_integer_value(json_object_get(tp, "BindPort")),
				 json_string_value(json_object_get(in, "BindAddress")),
				 (long long)json_integer_value(json_object_get(in, "BindPort")));
	}
	for (i = 0; tp != NULL && i < json_array_size(ups); i++) {
		if (clash(tp, json_array_get(ups, i))) {
			json_decref(admin);
			return weft_errf(err, WEFT_EINVAL, "Proxy.TransparentProxy.OutboundListenerPort: "
					 "%lld clashes with Proxy.Upstreams[%zu].LocalBindPort",
					 (long long)json_integer_value(json_object_get(tp, "BindPort")),
					 i);
		}
	}

	for (i = 0; i < json_array_size(ups); i++) {
		json_t *u = json_array_get(ups, i);

		if (clash(u, in)) {
			json_decref(admin);
			return weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams[%zu].LocalBindPort: %s:%lld "
					 "clashes with the proxy's own listener %s:%lld", i,
					 json_string_value(json_object_get(u, "BindAddress")),
					 (long long)json_integer_value(json_object_get(u, "BindPort")),
					 json_string_value(json_object_get(in, "BindAddress")),
					 (long long)json_integer_value(json_object_get(in, "BindPort")));
		}
		for (j = 0; j < i; j++) {
			if (clash(u, json_array_get(ups, j))) {
				json_decref(admin);
				return weft_errf(err, WEFT_EINVAL, "Proxy.Upstreams[%zu].LocalBindPort: "
						 "%lld clashes with Proxy.Upstreams[%zu]'s", i,
						 (long long)json_integer_value(json_object_get(u, "BindPort")),
						 j);
			}
		}
		admin_clash |= clash(admin, u);
	}
	json_decref(admin);
	return admin_clash;
}

static json_t *intentions_part(struct db *db, const struct proxysnap_req *rq, const char *mesh,
			       const char *svc, struct proxysnap *s, char **err)
{
	struct intention_set *set = NULL;
	json_t *items, *part, *deps;
	char key[200];
	int allow, dev = rq->dev;

	topic(s, "ixn:%s:dst:%s", mesh, svc);
	topic(s, "ixn:%s:dst:*", mesh);
	topic(s, "mesh:%s", mesh);
	snprintf(key, sizeof(key), "intentions\n%s\n%s\n%d", mesh, svc, dev);
	if ((part = part_get(rq, key)) != NULL)
		return part;
	allow = mesh_default_allows(db, mesh, dev);
	if (allow < 0) {
		weft_errf(err, allow == WEFT_ENOENT ? WEFT_EINVAL : WEFT_EIO,
			  allow == WEFT_ENOENT ? "Mesh: no mesh \"%s\"" : "store: cannot read mesh %s",
			  mesh);
		return NULL;
	}
	if (intentions_load_for(db, mesh, svc, &set, err) != WEFT_OK)
		return NULL;
	if (intention_set_count(set) > INTENTIONS_MAX) {
		weft_errf(err, WEFT_EINVAL, "Intentions: %zu intentions concern service \"%s\" (to it "
			  "or to *); a snapshot holds at most %d", intention_set_count(set), svc,
			  INTENTIONS_MAX);
		intention_set_free(set);
		return NULL;
	}
	items = json_array();
	for (size_t i = 0; i < intention_set_count(set); i++)
		json_array_append_new(items, intention_to_json(intention_set_get(set, i)));
	intention_set_free(set);
	part = json_pack("{s:s, s:o}", "DefaultAction", allow ? "allow" : "deny", "Items", items);
	deps = json_object();
	add_topic(deps, "ixn:%s:dst:%s", mesh, svc);
	add_topic(deps, "ixn:%s:dst:*", mesh);
	add_topic(deps, "mesh:%s", mesh);
	part_put(rq, key, deps, json_deep_copy(part));
	return part;
}

/* The mesh's trust domain and roots (PEM), from ca:<mesh>: an object
 * {"TrustDomain", "PEM"}, or NULL when the store cannot be read. */
static json_t *trust_part(struct db *db, const struct proxysnap_req *rq, const char *mesh,
			  struct proxysnap *s)
{
	json_t *roots, *part, *deps;
	uint64_t ca_index = 0;
	const char *td;
	char key[200], *pem;

	topic(s, "ca:%s", mesh);
	snprintf(key, sizeof(key), "trust\n%s", mesh);
	if ((part = part_get(rq, key)) != NULL)
		return part;
	roots = castore_roots_json(db, mesh, &ca_index);
	td = json_string_value(json_object_get(roots, "TrustDomain"));
	pem = castore_roots_pem(db, mesh);
	part = pem ? json_pack("{s:s, s:s}", "TrustDomain", td ? td : "", "PEM", pem) : NULL;
	json_decref(roots);
	free(pem);
	if (part) {
		deps = json_object();
		add_topic(deps, "ca:%s", mesh);
		part_put(rq, key, deps, json_deep_copy(part));
	}
	return part;
}

int proxysnap_build(struct db *db, const struct proxysnap_req *rq, struct proxysnap *out,
		    char **err)
{
	struct proxy_row p = { 0 };
	json_t *trust = NULL, *in = NULL, *ups = NULL, *ixns = NULL, *health = json_object(), *v;
	json_t *tp = NULL;
	const char *svc, *td, *k, *pem;
	char *self = NULL;
	int rc, admin_clash = 0;

	atomic_fetch_add(&n_builds, 1);
	memset(out, 0, sizeof(*out));
	out->topics = json_object();
	if ((rc = find_proxy(db, rq, &p, err)) != WEFT_OK) {
		/* Wake when a service is registered: the proxy may appear. */
		topic(out, "services");
		goto out;
	}
	topic(out, "svc:%s", p.name);
	svc = json_string_value(jx_field(p.proxy, "DestinationServiceName"));
	if (!fmt_name(svc)) {
		rc = weft_errf(err, WEFT_EINVAL, "Proxy.DestinationServiceName: the proxy \"%s\" has "
			       "\"%s\", not a service name (1-63 letters, digits, '-', '_', '.')",
			       p.id, svc ? svc : "");
		goto out;
	}
	if (strlen(p.id) > 126) {
		rc = weft_errf(err, WEFT_EINVAL, "ID: the proxy's ID is longer than 126 bytes");
		goto out;
	}
	out->service = strdup(svc);
	out->mesh = strdup(p.mesh);
	out->node = strdup(p.node);
	if (!fmt_name(p.mesh) || !fmt_name(rq->datacenter)) {
		rc = weft_errf(err, WEFT_EINVAL, "Mesh: \"%s\" or zone \"%s\" is not a valid name",
			       p.mesh, rq->datacenter);
		goto out;
	}
	if ((trust = trust_part(db, rq, p.mesh, out)) == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: cannot read the roots of mesh %s", p.mesh);
		goto out;
	}
	td = json_string_value(json_object_get(trust, "TrustDomain"));
	pem = json_string_value(json_object_get(trust, "PEM"));
	if (td == NULL || td[0] == '\0') {
		rc = weft_errf(err, WEFT_EINVAL, "TLS: mesh \"%s\" has no CA yet", p.mesh);
		goto out;
	}
	if ((rc = ca_spiffe_service_uri(td, p.mesh, rq->datacenter, svc, &self, err)) != WEFT_OK)
		goto out;
	rc = WEFT_EINVAL;
	if ((in = inbound(db, rq, &p, svc, out, err)) == NULL)
		goto out;
	if (transparent(db, &p, svc, out, &tp, err) != WEFT_OK)
		goto out;
	if ((ups = upstreams(db, rq, &p, td, rq->datacenter, tp != NULL, out, health, err)) == NULL)
		goto out;
	if ((admin_clash = check_listeners(in, ups, tp, err)) < 0)
		goto out;
	if ((ixns = intentions_part(db, rq, p.mesh, svc, out, err)) == NULL)
		goto out;
	/* The endpoints' health: one topic per proxy service, or, past the
	 * budget, every service and check change. */
	if (json_object_size(out->topics) + json_object_size(health) > PROXYSNAP_TOPICS_MAX) {
		topic(out, "services");
		topic(out, "checks");
	} else {
		json_object_foreach(health, k, v)
			topic(out, "svc:%s", k);
	}
	out->doc = json_pack("{s:i, s:{s:s, s:s, s:s, s:s, s:s}, s:o, s:o, s:o, s:{s:{s:s}}}",
		"Version", rq->version > 0 && rq->version < PROXYSNAP_VERSION ? rq->version
									     : PROXYSNAP_VERSION,
		"Proxy", "Service", svc, "ID", p.id, "SpiffeID", self, "Mesh", p.mesh,
			 "Zone", rq->datacenter,
		"Inbound", in, "Upstreams", ups, "Intentions", ixns,
		"TLS", "TrustBundle", "PEM", pem);
	in = ups = ixns = NULL;
	/* No admin listener from here: whoever starts the proxy gives it one
	 * (--admin; the agent picks a port per proxy), so that two sidecars
	 * on one machine never both take the decoder's default 127.0.0.1:19000
	 * (and a proxy listener on that address is no clash). */
	(void)admin_clash;
	if (out->doc)
		json_object_set_new(out->doc, "Admin", json_pack("{s:i}", "BindPort", 0));
	if (out->doc && tp != NULL) {
		json_object_set_new(out->doc, "Transparent", tp);
		tp = NULL;
	}
	rc = out->doc ? WEFT_OK : weft_errf(err, WEFT_ENOMEM, "out of memory");
out:
	json_decref(tp);
	json_decref(in);
	json_decref(ups);
	json_decref(ixns);
	json_decref(trust);
	json_decref(health);
	free(self);
	proxy_row_free(&p);
	return rc;
}

/* ---- answers for blocking reads, cached ---- */

#define ANSWER_PASSES_MAX 6

void proxysnap_answer_clear(struct proxysnap_answer *a)
{
	if (a == NULL)
		return;
	free(a->text);
	free(a->service);
	free(a->mesh);
	free(a->node);
	memset(a, 0, sizeof(*a));
}

/* Watches t unless done already (sampled: topic -> the index read); 1 when new. */
static int watch_one(proxysnap_watch_fn watch, void *arg, json_t *sampled, const char *t)
{
	if (json_object_get(sampled, t))
		return 0;
	json_object_set_new(sampled, t, json_integer((json_int_t)watch(arg, t)));
	return 1;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int proxysnap_answer(struct store *store, const struct proxysnap_req *rq_in, proxysnap_watch_fn watch,
		     proxysnap_mesh_fn mesh_fn, void *arg, struct proxysnap_answer *out, char **err)
{
	struct proxysnap_req rq = *rq_in;
	struct proxysnap s = { 0 };
	const struct snapcache_entry *e;
	json_t *sampled = json_object(), *v;
	const char *t;
	char *key = NULL, *msg = NULL;
	int rc = WEFT_EIO, mesh_done = 0, complete = 0, current = 0;

	atomic_fetch_add(&n_answers, 1);
	memset(out, 0, sizeof(*out));
	if (asprintf(&key, "snapshot\n%zu:%s\n%zu:%s\n%s\n%d\n%d", strlen(rq.proxy_id), rq.proxy_id,
		     rq.node ? strlen(rq.node) : 0, rq.node ? rq.node : "", rq.datacenter,
		     rq.version > 0 && rq.version < PROXYSNAP_VERSION ? rq.version : PROXYSNAP_VERSION,
		     rq.dev) < 0) {
		key = NULL;
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	/* The cached answer, if none of its topics moved since it was read;
	 * else its topics are watched before the read that builds it again. */
	if ((e = snapcache_lookup(rq.cache, key, &current)) != NULL) {
		uint64_t max = 0;

		for (size_t i = 0; i < e->ntopics; i++) {
			watch_one(watch, arg, sampled, e->topics[i]);
			if ((uint64_t)json_integer_value(json_object_get(sampled, e->topics[i])) > max)
				max = (uint64_t)json_integer_value(json_object_get(sampled, e->topics[i]));
		}
		if (current && max == e->index && e->text && (out->text = strdup(e->text)) != NULL) {
			out->len = e->text_len;
			out->service = dup_or_null(json_string_value(json_object_get(e->value, "Service")));
			out->mesh = dup_or_null(json_string_value(json_object_get(e->value, "Mesh")));
			out->node = dup_or_null(json_string_value(json_object_get(e->value, "Node")));
			out->index = max;
			out->cached = 1;
			atomic_fetch_add(&n_answers_cached, 1);
			snapcache_release(rq.cache, e);
			rc = WEFT_OK;
			goto out;
		}
		snapcache_release(rq.cache, e);
	}
	/* Built again until every topic it depends on was watched before the
	 * read that produced it (a new upstream brings new topics). */
	rq.sampled = sampled;
	for (int pass = 0; pass < ANSWER_PASSES_MAX; pass++) {
		struct db *db;
		size_t fresh = 0;

		proxysnap_clear(&s);
		free(msg);
		msg = NULL;
		if ((db = store_read_begin(store)) == NULL) {
			rc = weft_errf(&msg, WEFT_EIO, "store: cannot open a read connection");
			goto out;
		}
		rc = proxysnap_build(db, &rq, &s, &msg);
		store_read_end(db);
		json_object_foreach(s.topics, t, v)
			fresh += (size_t)watch_one(watch, arg, sampled, t);
		if (s.mesh && !mesh_done && mesh_fn) {
			char *merr = NULL;
			int mrc;

			mesh_done = 1;
			if ((mrc = mesh_fn(arg, s.mesh, &merr)) != WEFT_OK) {
				free(msg);
				msg = merr;
				rc = mrc;
				goto out;
			}
			free(merr);
			if (rc != WEFT_OK)
				continue;   /* its CA may be new: read again */
		}
		if (fresh == 0) {
			complete = 1;
			break;
		}
	}
	out->service = s.service;
	out->mesh = s.mesh;
	out->node = s.node;
	s.service = s.mesh = s.node = NULL;
	json_object_foreach(s.topics, t, v) {
		uint64_t i = (uint64_t)json_integer_value(json_object_get(sampled, t));

		if (i > out->index)
			out->index = i;
	}
	if (rc != WEFT_OK)
		goto out;
	if ((out->text = jx_dump(s.doc)) == NULL || out->text[0] != '{') {
		rc = weft_errf(&msg, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	out->len = strlen(out->text);
	if (complete)
		snapcache_put(rq.cache, key, s.topics, out->index,
			      json_pack("{s:s?, s:s?, s:s?}", "Service", out->service, "Mesh", out->mesh,
					"Node", out->node),
			      256, out->text, out->len);
out:
	if (rc != WEFT_OK && msg && err)
		*err = msg;
	else
		free(msg);
	proxysnap_clear(&s);
	json_decref(sampled);
	free(key);
	return rc;
}
