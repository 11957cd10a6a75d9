/* px_config: decoding, validating and swapping weft-proxy's snapshot. */
#include "px_config.h"
#include "px_sni.h"
#include "buf.h"
#include "err.h"
#include "jsonx.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CTX_MAX 256

/* The defaults of docs/proxy-config.md. */
#define DEF_CONNECT_MS 5000
#define DEF_IDLE_MS 300000
#define DEF_REQUEST_MS 15000
#define DEF_MAX_CONNECTIONS 10000
#define DEF_MAX_PENDING 1024
#define DEF_MAX_HEADER_BYTES 65536
#define DEF_RETRY_ATTEMPTS 2
#define DEF_RETRY_BUDGET 20
#define DEF_RETRY_MIN_CONCURRENCY 3
#define DEF_EJECT_FAILURES 5
#define DEF_EJECT_BASE_MS 30000
#define DEF_EJECT_MAX_PERCENT 10
#define DEF_ADMIN_PORT 19000

#define MS_MAX (24LL * 3600 * 1000) /* a day: the bound of every duration */

static int bad(char **err, const char *ctx, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(char **err, const char *ctx, const char *name, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return weft_errf(err, WEFT_EINVAL, "%s%s%s: %s", ctx ? ctx : "", ctx && name ? "." : "",
			 name ? name : "", what);
}

/* Fields this proxy does not know, noted while decoding: the first one
 * refuses a snapshot of this version; in a newer version's snapshot
 * (keep_going) every one is noted, to say what could not be enforced. */
#define UNKNOWN_MAX 16
struct unknown_fields {
	int keep_going;
	size_t n, total;
	char path[UNKNOWN_MAX][CTX_MAX];
};
static _Thread_local struct unknown_fields *unknown_noted;

static void note_unknown(const char *ctx, const char *key)
{
	struct unknown_fields *u = unknown_noted;

	if (u == NULL)
		return;
	if (u->n < UNKNOWN_MAX)
		snprintf(u->path[u->n++], CTX_MAX, "%s%s%s", ctx ? ctx : "", ctx ? "." : "", key);
	u->total++;
}

/* Refuses fields this version does not know: a newer server's field that
 * the proxy would ignore might be one it must enforce. */
static int known_fields(json_t *obj, const char *ctx, const char *const *names, char **err)
{
	uint32_t seen = 0; /* names[] have at most 32 entries */
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		size_t i;

		for (i = 0; names[i]; i++) {
			if (strcasecmp(key, names[i]) == 0)
				break;
		}
		if (names[i] == NULL) {
			note_unknown(ctx, key);
			if (unknown_noted && unknown_noted->keep_going)
				continue;
			return bad(err, ctx, key, "unknown field (this proxy speaks snapshot Version %d)",
				   PX_CONFIG_VERSION);
		}
		/* "TLS" and "tls" both: one would be read, the other ignored. */
		if (seen & (UINT32_C(1) << i))
			return bad(err, ctx, names[i], "given twice (field names ignore case)");
		seen |= UINT32_C(1) << i;
	}
	(void)v;
	return WEFT_OK;
}

/* An object field: required or not. *out is NULL when absent. */
static int sub_object(json_t *obj, const char *ctx, const char *name, int required, json_t **out,
		      char **err)
{
	*out = NULL;
	if (jx_object(obj, ctx, name, out, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (*out == NULL && required)
		return bad(err, ctx, name, "is required");
	return WEFT_OK;
}

/* A field path into buf (CTX_MAX bytes), truncated if it must be. */
static void ctxf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ctxf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, CTX_MAX, fmt, ap);
	va_end(ap);
}

static void path(char *buf, const char *ctx, const char *name)
{
	ctxf(buf, "%s%s%s", ctx ? ctx : "", ctx ? "." : "", name);
}

static int get_ms(json_t *obj, const char *ctx, const char *name, uint32_t *out, long long min,
		  char **err)
{
	long long ms = *out;

	if (jx_duration_ms(obj, ctx, name, &ms, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (ms < min || ms > MS_MAX)
		return bad(err, ctx, name, "%lldms is out of range [%lldms, 24h]", ms, min);
	*out = (uint32_t)ms;
	return WEFT_OK;
}

static int get_u32(json_t *obj, const char *ctx, const char *name, uint32_t *out, long long min,
		   long long max, char **err)
{
	long long v = *out;

	if (jx_int(obj, ctx, name, &v, min, max, err) != WEFT_OK)
		return WEFT_EINVAL;
	*out = (uint32_t)v;
	return WEFT_OK;
}

static int get_port(json_t *obj, const char *ctx, const char *name, int required, int allow_zero,
		    uint16_t *out, char **err)
{
	long long v = -1;

	if (jx_int(obj, ctx, name, &v, allow_zero ? 0 : 1, 65535, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (v < 0) {
		if (required)
			return bad(err, ctx, name, "is required");
		return WEFT_OK;
	}
	*out = (uint16_t)v;
	return WEFT_OK;
}

static int is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int is_loopback(const char *s)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, s, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, s, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int is_any(const char *s)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, s, &a4) == 1)
		return a4.s_addr == INADDR_ANY;
	return inet_pton(AF_INET6, s, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

/* Two listeners that cannot both bind: the same port on the same address,
 * or on any address and another one. */
static int binds_clash(const char *a1, uint16_t p1, const char *a2, uint16_t p2)
{
	return p1 != 0 && p1 == p2 && (strcmp(a1, a2) == 0 || is_any(a1) || is_any(a2));
}

static int get_addr(json_t *obj, const char *ctx, const char *name, const char *def,
		    const char **out, char **err)
{
	const char *s = NULL;

	if (jx_str(obj, ctx, name, &s, PX_CONFIG_ADDR_MAX, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (s == NULL || s[0] == '\0') {
		if (def == NULL)
			return bad(err, ctx, name, "is required");
		s = def;
	}
	if (!is_ip(s))
		return bad(err, ctx, name, "\"%s\" is not an IPv4 or IPv6 address", s);
	*out = s;
	return WEFT_OK;
}

static int get_name(json_t *obj, const char *ctx, const char *name, int required,
		    const char **out, char **err)
{
	const char *s = NULL;

	if (jx_str(obj, ctx, name, &s, PX_CONFIG_NAME_MAX, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (s == NULL || s[0] == '\0') {
		if (required)
			return bad(err, ctx, name, "is required");
		*out = "";
		return WEFT_OK;
	}
	if (!name_valid(s, PX_CONFIG_NAME_MAX + 1))
		return bad(err, ctx, name, "\"%s\" is not a valid name (letters, digits, '-', '_', '.')",
			   s);
	*out = s;
	return WEFT_OK;
}

/* One of names[] (case-insensitive); *out its index, unchanged if absent. */
static int get_enum(json_t *obj, const char *ctx, const char *name, const char *const *names,
		    int *out, char **err)
{
	const char *s = NULL;
	char list[256] = "";

	if (jx_str(obj, ctx, name, &s, 64, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (s == NULL || s[0] == '\0')
		return WEFT_OK;
	for (int i = 0; names[i]; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = i;
			return WEFT_OK;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
			 names[i]);
	}
	return bad(err, ctx, name, "\"%s\" is not one of %s", s, list);
}

static const char *const protocols[] = { "tcp", "http", NULL };
static const char *const policies[] = { "round_robin", "least_request", "random", "ring_hash",
					NULL };
static const char *const healths[] = { "passing", "warning", "critical", NULL };
static const char *const actions[] = { "deny", "allow", NULL };

/* ---- SPIFFE IDs ---- */

const char *px_authz_reason_string(enum px_authz_reason r)
{
	switch (r) {
	case PX_AUTHZ_INTENTIONS: return "intentions";
	case PX_AUTHZ_BAD_IDENTITY: return "bad-identity";
	case PX_AUTHZ_FOREIGN_TRUST_DOMAIN: return "foreign-trust-domain";
	case PX_AUTHZ_FOREIGN_MESH: return "foreign-mesh";
	}
	return "unknown";
}

/* Copies the segment [p, end) into out (size n) if it is a valid name. */
static int segment(const char *p, const char *end, char *out, size_t n)
{
	size_t len = (size_t)(end - p);

	if (len == 0 || len >= n)
		return -1;
	for (const char *q = p; q < end; q++) {
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' || *q == '.'))
			return -1;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

int px_spiffe_parse(const char *uri, struct px_spiffe *out, char **err)
{
	static const char *const keys[] = { "ns", "dc", "svc" };
	char *fields[3] = { out->mesh, out->zone, out->service };
	const char *p, *slash;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (uri == NULL || uri[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "SPIFFE ID: empty");
	n = strnlen(uri, PX_CONFIG_SPIFFE_MAX + 1);
	if (n > PX_CONFIG_SPIFFE_MAX)
		return weft_errf(err, WEFT_EINVAL, "SPIFFE ID: longer than %d bytes",
				 PX_CONFIG_SPIFFE_MAX);
	if (strncmp(uri, "spiffe://", 9) != 0)
		return weft_errf(err, WEFT_EINVAL, "SPIFFE ID \"%s\": must start with spiffe://", uri);
	p = uri + 9;
	if ((slash = strchr(p, '/')) == NULL)
		return weft_errf(err, WEFT_EINVAL, "SPIFFE ID \"%s\": no path after the trust domain",
				 uri);
	if (slash == p || (size_t)(slash - p) > PX_CONFIG_TRUST_DOMAIN_MAX)
		return weft_errf(err, WEFT_EINVAL, "SPIFFE ID \"%s\": bad trust domain length", uri);
	for (const char *q = p; q < slash; q++) {
		if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '.' ||
		      *q == '-' || *q == '_'))
			return weft_errf(err, WEFT_EINVAL,
					 "SPIFFE ID \"%s\": trust domain may hold only lowercase "
					 "letters, digits, '.', '-', '_'", uri);
	}
	memcpy(out->trust_domain, p, (size_t)(slash - p));
	p = slash + 1;
	for (int i = 0; i < 3; i++) {
		size_t kl = strlen(keys[i]);

		if (strncmp(p, keys[i], kl) != 0 || p[kl] != '/')
			return weft_errf(err, WEFT_EINVAL,
					 "SPIFFE ID \"%s\": path must be /ns/<mesh>/dc/<zone>/svc/<service>",
					 uri);
		p += kl + 1;
		slash = strchr(p, '/');
		if (i < 2 && slash == NULL)
			return weft_errf(err, WEFT_EINVAL,
					 "SPIFFE ID \"%s\": path must be /ns/<mesh>/dc/<zone>/svc/<service>",
					 uri);
		if (i == 2 && slash != NULL)
			return weft_errf(err, WEFT_EINVAL, "SPIFFE ID \"%s\": extra path after the service",
					 uri);
		if (segment(p, slash ? slash : p + strlen(p), fields[i], PX_CONFIG_NAME_MAX + 1) != 0)
			return weft_errf(err, WEFT_EINVAL,
					 "SPIFFE ID \"%s\": %s must be a name of at most %d letters, "
					 "digits, '-', '_', '.'", uri, keys[i], PX_CONFIG_NAME_MAX);
		if (slash)
			p = slash + 1;
	}
	return WEFT_OK;
}

/* ---- decoding ---- */

struct px_config_priv {
	struct px_config pub;
	struct px_upstream *upstreams;
	struct px_passthrough_route *routes;
	struct intention_set *set;
	char zone[PX_CONFIG_NAME_MAX + 1]; /* from the SPIFFE ID when Proxy.Zone is absent */
};

static const char *const timeout_fields[] = { "Connect", "Idle", "Request", NULL };
static const char *const limit_fields[] = { "MaxConnections", "MaxPendingRequests",
					    "MaxHeaderBytes", "MaxBodyBytes", NULL };

static int decode_timeouts(json_t *obj, const char *ctx, struct px_timeouts *t, char **err)
{
	char c[CTX_MAX];
	json_t *o;

	t->connect_ms = DEF_CONNECT_MS;
	t->idle_ms = DEF_IDLE_MS;
	t->request_ms = DEF_REQUEST_MS;
	if (sub_object(obj, ctx, "Timeouts", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	path(c, ctx, "Timeouts");
	if (known_fields(o, c, timeout_fields, err) != WEFT_OK ||
	    get_ms(o, c, "Connect", &t->connect_ms, 1, err) != WEFT_OK ||
	    get_ms(o, c, "Idle", &t->idle_ms, 1, err) != WEFT_OK ||
	    get_ms(o, c, "Request", &t->request_ms, 0, err) != WEFT_OK)
		return WEFT_EINVAL;
	return WEFT_OK;
}

static int decode_limits(json_t *obj, const char *ctx, struct px_limits *l, char **err)
{
	char c[CTX_MAX];
	long long body = 0;
	json_t *o;

	l->max_connections = DEF_MAX_CONNECTIONS;
	l->max_pending_requests = DEF_MAX_PENDING;
	l->max_header_bytes = DEF_MAX_HEADER_BYTES;
	l->max_body_bytes = 0;
	if (sub_object(obj, ctx, "Limits", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	path(c, ctx, "Limits");
	if (known_fields(o, c, limit_fields, err) != WEFT_OK ||
	    get_u32(o, c, "MaxConnections", &l->max_connections, 1, 1000000, err) != WEFT_OK ||
	    get_u32(o, c, "MaxPendingRequests", &l->max_pending_requests, 1, 1000000, err) != WEFT_OK ||
	    get_u32(o, c, "MaxHeaderBytes", &l->max_header_bytes, 1024, 1 << 20, err) != WEFT_OK ||
	    jx_int(o, c, "MaxBodyBytes", &body, 0, 1LL << 40, err) != WEFT_OK)
		return WEFT_EINVAL;
	l->max_body_bytes = (uint64_t)body;
	return WEFT_OK;
}

static const char *const identity_fields[] = { "Service", "ID", "SpiffeID", "Mesh", "Zone", NULL };

static int decode_identity(json_t *root, struct px_identity *id, char **err)
{
	struct px_spiffe sp;
	char *e = NULL;
	json_t *o;
	int rc;

	if (sub_object(root, NULL, "Proxy", 1, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (known_fields(o, "Proxy", identity_fields, err) != WEFT_OK ||
	    get_name(o, "Proxy", "Service", 1, &id->service, err) != WEFT_OK ||
	    jx_str(o, "Proxy", "ID", &id->id, PX_CONFIG_NAME_MAX * 2, err) != WEFT_OK ||
	    jx_req_str(o, "Proxy", "SpiffeID", &id->spiffe_id, PX_CONFIG_SPIFFE_MAX, err) != WEFT_OK ||
	    get_name(o, "Proxy", "Mesh", 0, &id->mesh, err) != WEFT_OK ||
	    get_name(o, "Proxy", "Zone", 0, &id->zone, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (id->id == NULL)
		id->id = "";
	if (id->mesh[0] == '\0')
		id->mesh = "default";
	if ((rc = px_spiffe_parse(id->spiffe_id, &sp, &e)) != WEFT_OK) {
		rc = bad(err, "Proxy", "SpiffeID", "%s", e);
		free(e);
		return rc;
	}
	if (strcmp(sp.service, id->service) != 0)
		return bad(err, "Proxy", "SpiffeID", "names service \"%s\", not Proxy.Service \"%s\"",
			   sp.service, id->service);
	if (strcmp(sp.mesh, id->mesh) != 0)
		return bad(err, "Proxy", "SpiffeID", "names mesh \"%s\", not Proxy.Mesh \"%s\"",
			   sp.mesh, id->mesh);
	if (id->zone[0] != '\0' && strcmp(sp.zone, id->zone) != 0)
		return bad(err, "Proxy", "SpiffeID", "names zone \"%s\", not Proxy.Zone \"%s\"",
			   sp.zone, id->zone);
	/* The trust domain points into the SPIFFE ID string, which lives as
	 * long as the JSON: it is the text between "spiffe://" and the next '/'. */
	return WEFT_OK;
}

static const char *const inbound_fields[] = { "BindAddress", "BindPort", "AppAddress", "AppPort",
					      "Protocol", "Limits", "Timeouts", NULL };

static int decode_inbound(json_t *root, struct px_inbound *in, char **err)
{
	int proto = PX_PROTO_TCP;
	json_t *o;

	if (sub_object(root, NULL, "Inbound", 1, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (known_fields(o, "Inbound", inbound_fields, err) != WEFT_OK ||
	    get_addr(o, "Inbound", "BindAddress", "0.0.0.0", &in->bind_address, err) != WEFT_OK ||
	    get_port(o, "Inbound", "BindPort", 1, 0, &in->bind_port, err) != WEFT_OK ||
	    get_addr(o, "Inbound", "AppAddress", "127.0.0.1", &in->app_address, err) != WEFT_OK ||
	    get_port(o, "Inbound", "AppPort", 1, 0, &in->app_port, err) != WEFT_OK ||
	    get_enum(o, "Inbound", "Protocol", protocols, &proto, err) != WEFT_OK ||
	    decode_limits(o, "Inbound", &in->limits, err) != WEFT_OK ||
	    decode_timeouts(o, "Inbound", &in->timeouts, err) != WEFT_OK)
		return WEFT_EINVAL;
	in->protocol = (enum px_protocol)proto;
	return WEFT_OK;
}

static const char *const lb_fields[] = { "Policy", "HashHeader", NULL };
static const char *const retry_fields[] = { "Attempts", "On", "BudgetPercent",
					    "MinRetryConcurrency", NULL };
static const char *const health_fields[] = { "ConsecutiveFailures", "BaseEjectionTime",
					     "MaxEjectionPercent", NULL };
static const char *const endpoint_fields[] = { "Address", "Port", "Weight", "Zone", "SpiffeID",
					       "Health", NULL };
static const char *const upstream_fields[] = { "Name", "Service", "BindAddress", "BindPort",
					       "Protocol", "LoadBalancer", "Timeouts", "Retries",
					       "PassiveHealth", "Limits", "Endpoints", "Destinations",
					       NULL };

static int header_name_valid(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return 0;
	for (; *s; s++) {
		/* RFC 9110 token characters. */
		if (!(((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		       (*s >= '0' && *s <= '9')) || strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	}
	return 1;
}

static int decode_lb(json_t *obj, const char *ctx, struct px_upstream *u, char **err)
{
	char c[CTX_MAX];
	int policy = PX_LB_ROUND_ROBIN;
	const char *hh = NULL;
	json_t *o;

	if (sub_object(obj, ctx, "LoadBalancer", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	u->lb_policy = PX_LB_ROUND_ROBIN;
	if (o == NULL)
		return WEFT_OK;
	path(c, ctx, "LoadBalancer");
	if (known_fields(o, c, lb_fields, err) != WEFT_OK ||
	    get_enum(o, c, "Policy", policies, &policy, err) != WEFT_OK ||
	    jx_str(o, c, "HashHeader", &hh, 128, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (hh && hh[0] == '\0')
		hh = NULL;
	if (policy == PX_LB_RING_HASH && hh == NULL)
		return bad(err, c, "HashHeader", "is required with Policy ring_hash");
	if (policy != PX_LB_RING_HASH && hh != NULL)
		return bad(err, c, "HashHeader", "is only for Policy ring_hash");
	if (hh && !header_name_valid(hh))
		return bad(err, c, "HashHeader", "\"%s\" is not an HTTP header name", hh);
	if (hh && u->protocol != PX_PROTO_HTTP)
		return bad(err, c, "Policy", "ring_hash on a header needs Protocol http");
	u->lb_policy = (enum px_lb_policy)policy;
	u->hash_header = hh;
	return WEFT_OK;
}

static int decode_retries(json_t *obj, const char *ctx, struct px_retries *r, char **err)
{
	char c[CTX_MAX], c2[CTX_MAX];
	json_t *o, *on = NULL, *v;
	size_t i;

	r->attempts = DEF_RETRY_ATTEMPTS;
	r->on = PX_RETRY_CONNECT_FAILURE;
	r->budget_percent = DEF_RETRY_BUDGET;
	r->min_retry_concurrency = DEF_RETRY_MIN_CONCURRENCY;
	if (sub_object(obj, ctx, "Retries", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	path(c, ctx, "Retries");
	if (known_fields(o, c, retry_fields, err) != WEFT_OK ||
	    get_u32(o, c, "Attempts", &r->attempts, 0, 10, err) != WEFT_OK ||
	    get_u32(o, c, "BudgetPercent", &r->budget_percent, 0, 100, err) != WEFT_OK ||
	    get_u32(o, c, "MinRetryConcurrency", &r->min_retry_concurrency, 0, 1000, err) != WEFT_OK ||
	    jx_str_array(o, c, "On", &on, 32, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (on == NULL)
		return WEFT_OK;
	r->on = 0;
	path(c2, c, "On");
	json_array_foreach(on, i, v) {
		const char *s = json_string_value(v);
		char ci[CTX_MAX];

		ctxf(ci, "%s[%zu]", c2, i);
		if (strcasecmp(s, "connect-failure") == 0)
			r->on |= PX_RETRY_CONNECT_FAILURE;
		else if (strcasecmp(s, "5xx") == 0)
			r->on |= PX_RETRY_5XX;
		else
			return bad(err, ci, NULL, "\"%s\" is not one of connect-failure, 5xx", s);
	}
	return WEFT_OK;
}

static int decode_passive(json_t *obj, const char *ctx, struct px_passive_health *h, char **err)
{
	char c[CTX_MAX];
	json_t *o;

	h->consecutive_failures = DEF_EJECT_FAILURES;
	h->base_ejection_ms = DEF_EJECT_BASE_MS;
	h->max_ejection_percent = DEF_EJECT_MAX_PERCENT;
	if (sub_object(obj, ctx, "PassiveHealth", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	path(c, ctx, "PassiveHealth");
	if (known_fields(o, c, health_fields, err) != WEFT_OK ||
	    get_u32(o, c, "ConsecutiveFailures", &h->consecutive_failures, 0, 1000, err) != WEFT_OK ||
	    get_ms(o, c, "BaseEjectionTime", &h->base_ejection_ms, 1, err) != WEFT_OK ||
	    get_u32(o, c, "MaxEjectionPercent", &h->max_ejection_percent, 0, 100, err) != WEFT_OK)
		return WEFT_EINVAL;
	return WEFT_OK;
}

static int decode_endpoint(json_t *o, const char *c, const char *service, const char *td,
			   struct px_endpoint *ep, char **err)
{
	struct px_spiffe sp;
	int health = PX_HEALTH_PASSING;
	char *e = NULL;
	int rc;

	if (!json_is_object(o))
		return bad(err, c, NULL, "must be an object");
	if (known_fields(o, c, endpoint_fields, err) != WEFT_OK ||
	    get_addr(o, c, "Address", NULL, &ep->address, err) != WEFT_OK ||
	    get_port(o, c, "Port", 1, 0, &ep->port, err) != WEFT_OK ||
	    get_u32(o, c, "Weight", &ep->weight, 1, 65535, err) != WEFT_OK ||
	    get_name(o, c, "Zone", 0, &ep->zone, err) != WEFT_OK ||
	    jx_req_str(o, c, "SpiffeID", &ep->spiffe_id, PX_CONFIG_SPIFFE_MAX, err) != WEFT_OK ||
	    get_enum(o, c, "Health", healths, &health, err) != WEFT_OK)
		return WEFT_EINVAL;
	ep->health = (enum px_health)health;
	if ((rc = px_spiffe_parse(ep->spiffe_id, &sp, &e)) != WEFT_OK) {
		rc = bad(err, c, "SpiffeID", "%s", e);
		free(e);
		return rc;
	}
	if (strcmp(sp.service, service) != 0)
		return bad(err, c, "SpiffeID", "names service \"%s\", not the upstream's \"%s\"",
			   sp.service, service);
	if (strcmp(sp.trust_domain, td) != 0)
		return bad(err, c, "SpiffeID", "is in trust domain \"%s\", not the proxy's \"%s\"",
			   sp.trust_domain, td);
	return WEFT_OK;
}

static const char *const hostport_fields[] = { "Address", "Port", NULL };

/* Upstreams[].Destinations: the addresses the application dials to reach
 * the upstream in transparent mode. Not loopback nor unspecified (what
 * the application sends there is never redirected), no duplicate. */
static int decode_destinations(json_t *o, const char *c, struct px_upstream *u, char **err)
{
	char cl[CTX_MAX], ce[CTX_MAX];
	struct px_hostport *d;
	json_t *arr = NULL, *v;
	size_t i;

	if (jx_array(o, c, "Destinations", &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (arr == NULL || json_array_size(arr) == 0)
		return WEFT_OK;
	path(cl, c, "Destinations");
	if (json_array_size(arr) > PX_CONFIG_DESTINATIONS_MAX)
		return bad(err, cl, NULL, "more than %d destinations", PX_CONFIG_DESTINATIONS_MAX);
	if ((d = calloc(json_array_size(arr), sizeof(*d))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", cl);
	u->destinations = d;
	json_array_foreach(arr, i, v) {
		ctxf(ce, "%s[%zu]", cl, i);
		if (!json_is_object(v))
			return bad(err, ce, NULL, "must be an object");
		if (known_fields(v, ce, hostport_fields, err) != WEFT_OK ||
		    get_addr(v, ce, "Address", NULL, &d[i].address, err) != WEFT_OK ||
		    get_port(v, ce, "Port", 1, 0, &d[i].port, err) != WEFT_OK)
			return WEFT_EINVAL;
		u->n_destinations = i + 1;
		if (is_loopback(d[i].address) || is_any(d[i].address))
			return bad(err, ce, "Address", "\"%s\" is a loopback or unspecified address: "
				   "connections to it are never redirected", d[i].address);
	}
	return WEFT_OK;
}

static int decode_upstream(json_t *o, const char *c, const char *td, struct px_upstream *u,
			   char **err)
{
	char ce[CTX_MAX], cl[CTX_MAX];
	struct px_endpoint *eps = NULL;
	int proto = PX_PROTO_TCP;
	json_t *arr = NULL, *v;
	size_t i;

	if (!json_is_object(o))
		return bad(err, c, NULL, "must be an object");
	if (known_fields(o, c, upstream_fields, err) != WEFT_OK ||
	    get_name(o, c, "Service", 1, &u->service, err) != WEFT_OK ||
	    jx_str(o, c, "Name", &u->name, PX_CONFIG_NAME_MAX, err) != WEFT_OK ||
	    get_addr(o, c, "BindAddress", "127.0.0.1", &u->bind_address, err) != WEFT_OK ||
	    get_port(o, c, "BindPort", 1, 0, &u->bind_port, err) != WEFT_OK ||
	    get_enum(o, c, "Protocol", protocols, &proto, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (u->name == NULL || u->name[0] == '\0')
		u->name = u->service;
	u->protocol = (enum px_protocol)proto;
	if (decode_lb(o, c, u, err) != WEFT_OK || decode_timeouts(o, c, &u->timeouts, err) != WEFT_OK ||
	    decode_retries(o, c, &u->retries, err) != WEFT_OK ||
	    decode_passive(o, c, &u->passive_health, err) != WEFT_OK ||
	    decode_limits(o, c, &u->limits, err) != WEFT_OK)
		return WEFT_EINVAL;
	if ((u->retries.on & PX_RETRY_5XX) && u->protocol != PX_PROTO_HTTP)
		return bad(err, c, "Retries.On", "5xx needs Protocol http");
	if (decode_destinations(o, c, u, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (jx_array(o, c, "Endpoints", &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (arr == NULL || json_array_size(arr) == 0)
		return WEFT_OK;
	path(cl, c, "Endpoints");
	if (json_array_size(arr) > PX_CONFIG_ENDPOINTS_MAX)
		return bad(err, cl, NULL, "more than %d endpoints", PX_CONFIG_ENDPOINTS_MAX);
	if ((eps = calloc(json_array_size(arr), sizeof(*eps))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", cl);
	u->endpoints = eps;
	json_array_foreach(arr, i, v) {
		eps[i].weight = 1;
		ctxf(ce, "%s[%zu]", cl, i);
		if (decode_endpoint(v, ce, u->service, td, &eps[i], err) != WEFT_OK)
			return WEFT_EINVAL;
		u->n_endpoints = i + 1;
	}
	return WEFT_OK;
}

static int decode_upstreams(json_t *root, struct px_config_priv *p, char **err)
{
	char c[CTX_MAX];
	json_t *arr = NULL, *v;
	size_t i, j;

	if (jx_array(root, NULL, "Upstreams", &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (arr == NULL || json_array_size(arr) == 0)
		return WEFT_OK;
	if (json_array_size(arr) > PX_CONFIG_UPSTREAMS_MAX)
		return bad(err, "Upstreams", NULL, "more than %d upstreams", PX_CONFIG_UPSTREAMS_MAX);
	if ((p->upstreams = calloc(json_array_size(arr), sizeof(*p->upstreams))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "Upstreams: out of memory");
	p->pub.upstreams = p->upstreams;
	json_array_foreach(arr, i, v) {
		struct px_upstream *u = &p->upstreams[i];

		ctxf(c, "Upstreams[%zu]", i);
		p->pub.n_upstreams = i + 1; /* so that the free sees its endpoints */
		if (decode_upstream(v, c, p->pub.identity.trust_domain, u, err) != WEFT_OK)
			return WEFT_EINVAL;
		for (j = 0; j < i; j++) {
			if (strcmp(p->upstreams[j].name, u->name) == 0)
				return bad(err, c, "Name", "\"%s\" is also Upstreams[%zu]'s name",
					   u->name, j);
			if (binds_clash(p->upstreams[j].bind_address, p->upstreams[j].bind_port,
					u->bind_address, u->bind_port))
				return bad(err, c, "BindPort", "%s:%u clashes with Upstreams[%zu]'s %s:%u",
					   u->bind_address, u->bind_port, j,
					   p->upstreams[j].bind_address, p->upstreams[j].bind_port);
		}
		if (binds_clash(u->bind_address, u->bind_port, p->pub.inbound.bind_address,
				p->pub.inbound.bind_port))
			return bad(err, c, "BindPort", "%s:%u clashes with Inbound's %s:%u",
				   u->bind_address, u->bind_port, p->pub.inbound.bind_address,
				   p->pub.inbound.bind_port);
	}
	return WEFT_OK;
}


/* One 18-byte key per destination: the address (16 bytes, IPv4 mapped)
 * and the port, so that "10.0.0.1" and "::ffff:10.0.0.1" are the same. */
struct dest_key {
	unsigned char k[18];
	size_t up, i;
};

static void dest_key(const struct px_hostport *h, struct dest_key *out)
{
	struct in_addr a4;

	memset(out->k, 0, sizeof(out->k));
	if (inet_pton(AF_INET, h->address, &a4) == 1) {
		out->k[10] = out->k[11] = 0xff;
		memcpy(out->k + 12, &a4, 4);
	} else {
		inet_pton(AF_INET6, h->address, out->k);
	}
	out->k[16] = (unsigned char)(h->port >> 8);
	out->k[17] = (unsigned char)(h->port & 0xff);
}

static int dest_cmp(const void *a, const void *b)
{
	const struct dest_key *x = a, *y = b;
	int c = memcmp(x->k, y->k, sizeof(x->k));

	if (c != 0)
		return c;
	return x->up != y->up ? (x->up < y->up ? -1 : 1) : (x->i < y->i ? -1 : x->i > y->i);
}

/* A destination in two upstreams (or twice in one) would make the
 * transparent listener's choice arbitrary: refused. Sorted, not
 * compared pairwise (up to 1024 x 4096 of them). */
static int check_destinations(const struct px_config *c, char **err)
{
	struct dest_key *keys;
	size_t n = 0, k = 0;
	int rc = WEFT_OK;

	for (size_t i = 0; i < c->n_upstreams; i++)
		n += c->upstreams[i].n_destinations;
	if (n < 2)
		return WEFT_OK;
	if ((keys = calloc(n, sizeof(*keys))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "Upstreams: out of memory");
	for (size_t i = 0; i < c->n_upstreams; i++)
		for (size_t j = 0; j < c->upstreams[i].n_destinations; j++, k++) {
			dest_key(&c->upstreams[i].destinations[j], &keys[k]);
			keys[k].up = i;
			keys[k].i = j;
		}
	qsort(keys, n, sizeof(*keys), dest_cmp);
	for (k = 1; k < n; k++) {
		if (memcmp(keys[k - 1].k, keys[k].k, sizeof(keys[k].k)) == 0) {
			char ctx[CTX_MAX];
			const struct px_hostport *h =
				&c->upstreams[keys[k].up].destinations[keys[k].i];

			ctxf(ctx, "Upstreams[%zu].Destinations[%zu]", keys[k].up, keys[k].i);
			rc = bad(err, ctx, NULL, "%s:%u is also Upstreams[%zu].Destinations[%zu]",
				 h->address, h->port, keys[k - 1].up, keys[k - 1].i);
			break;
		}
	}
	free(keys);
	return rc;
}

static const char *const intentions_fields[] = { "DefaultAction", "Items", NULL };
static const char *const intention_fields[] = {
	"ID", "Description", "SourceNS", "SourceName", "DestinationNS", "DestinationName",
	"SourceType", "Action", "Permissions", "Meta", "SourcePartition", "DestinationPartition",
	"SourcePeer", "Precedence", "CreateIndex", "ModifyIndex", "CreatedAt", "UpdatedAt", "Hash",
	NULL };
static const char *const permission_fields[] = { "Action", "HTTP", NULL };
static const char *const http_fields[] = { "PathExact", "PathPrefix", "PathRegex", "Methods",
					   "Header", NULL };
static const char *const header_fields[] = { "Name", "Present", "Exact", "Prefix", "Suffix",
					     "Regex", "Invert", NULL };

/* lib/intention ignores fields it does not know, as Consul's API does; a
 * snapshot must not: a matcher this proxy ignored would widen an allow.
 * Partitions and peers, which Weft does not have, must be empty or
 * "default" for the same reason. Type errors are left to
 * intention_from_json. */
static int intention_strict(json_t *ix, const char *c, char **err)
{
	char cp[CTX_MAX], ch[CTX_MAX], chh[CTX_MAX];
	static const char *const parts[] = { "SourcePartition", "DestinationPartition",
					     "SourcePeer" };
	json_t *perms, *p, *http, *hdrs, *h;
	size_t i, j;

	if (!json_is_object(ix))
		return WEFT_OK;
	if (known_fields(ix, c, intention_fields, err) != WEFT_OK)
		return WEFT_EINVAL;
	for (i = 0; i < 3; i++) {
		const char *v = json_string_value(jx_field(ix, parts[i]));

		if (v && v[0] && (i == 2 || strcmp(v, "default") != 0))
			return bad(err, c, parts[i], "\"%s\" is not supported by this proxy", v);
	}
	perms = jx_field(ix, "Permissions");
	json_array_foreach(perms, i, p) {
		ctxf(cp, "%s.Permissions[%zu]", c, i);
		if (!json_is_object(p))
			continue;
		if (known_fields(p, cp, permission_fields, err) != WEFT_OK)
			return WEFT_EINVAL;
		if (!json_is_object(http = jx_field(p, "HTTP")))
			continue;
		path(ch, cp, "HTTP");
		if (known_fields(http, ch, http_fields, err) != WEFT_OK)
			return WEFT_EINVAL;
		hdrs = jx_field(http, "Header");
		json_array_foreach(hdrs, j, h) {
			ctxf(chh, "%s.Header[%zu]", ch, j);
			if (json_is_object(h) && known_fields(h, chh, header_fields, err) != WEFT_OK)
				return WEFT_EINVAL;
		}
	}
	return WEFT_OK;
}

static int decode_intentions(json_t *root, struct px_config_priv *p, char **err)
{
	struct intention **ixs = NULL;
	int action = -1, rc = WEFT_EINVAL;
	char c[CTX_MAX];
	json_t *o, *arr = NULL, *v;
	size_t i, n = 0;

	if (sub_object(root, NULL, "Intentions", 1, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (known_fields(o, "Intentions", intentions_fields, err) != WEFT_OK ||
	    get_enum(o, "Intentions", "DefaultAction", actions, &action, err) != WEFT_OK ||
	    jx_array(o, "Intentions", "Items", &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	/* No default: a snapshot that forgot it must not open the service. */
	if (action < 0)
		return bad(err, "Intentions", "DefaultAction", "is required (allow or deny)");
	p->pub.default_action = (enum intention_action)action;
	n = arr ? json_array_size(arr) : 0;
	if (n > PX_CONFIG_INTENTIONS_MAX)
		return bad(err, "Intentions", "Items", "more than %d intentions",
			   PX_CONFIG_INTENTIONS_MAX);
	if (n > 0 && (ixs = calloc(n, sizeof(*ixs))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "Intentions: out of memory");
	for (i = 0; i < n; i++) {
		const char *dns, *dname;

		v = json_array_get(arr, i);
		ctxf(c, "Intentions.Items[%zu]", i);
		if ((rc = intention_strict(v, c, err)) != WEFT_OK ||
		    (rc = intention_from_json(v, c, &ixs[i], err)) != WEFT_OK)
			goto out;
		dns = intention_destination_ns(ixs[i]);
		dname = intention_destination_name(ixs[i]);
		if ((strcmp(dns, INTENTION_DEFAULT_NS) != 0 && strcmp(dns, INTENTION_WILDCARD) != 0) ||
		    (strcmp(dname, p->pub.identity.service) != 0 &&
		     strcmp(dname, INTENTION_WILDCARD) != 0)) {
			rc = bad(err, c, "DestinationName",
				 "\"%s/%s\" is not this proxy's service \"%s\" or \"*\"", dns, dname,
				 p->pub.identity.service);
			goto out;
		}
	}
	rc = intention_set_new(ixs, n, &p->set, err);
	free(ixs); /* the intentions are the set's in every case, the array is ours */
	ixs = NULL;
	if (rc != WEFT_OK) {
		char *inner = err ? *err : NULL;

		if (err) {
			*err = NULL;
			rc = bad(err, "Intentions.Items", NULL, "%s", inner ? inner : "invalid");
		}
		free(inner);
		goto out;
	}
	p->pub.intentions = p->set;
	rc = WEFT_OK;
out:
	if (ixs) {
		for (i = 0; i < n; i++)
			intention_free(ixs[i]);
		free(ixs);
	}
	return rc;
}

static const char *const pem_fields[] = { "PEM", "File", NULL };
static const char *const tls_fields[] = { "Certificate", "PrivateKey", "TrustBundle", NULL };

static int decode_pem(json_t *obj, const char *ctx, const char *name, int key, int required,
		      struct px_pem_ref *ref, char **err)
{
	char c[CTX_MAX];
	json_t *o;

	if (sub_object(obj, ctx, name, required, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	path(c, ctx, name);
	if (known_fields(o, c, pem_fields, err) != WEFT_OK ||
	    jx_str(o, c, "PEM", &ref->pem, PX_CONFIG_PEM_MAX, err) != WEFT_OK ||
	    jx_str(o, c, "File", &ref->file, PX_CONFIG_PATH_MAX, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (ref->pem && ref->pem[0] == '\0')
		ref->pem = NULL;
	if (ref->file && ref->file[0] == '\0')
		ref->file = NULL;
	if (key && ref->pem)
		return bad(err, c, "PEM", "a private key is never sent in a snapshot: it is made "
			   "where the proxy runs (give File)");
	if (ref->pem && ref->file)
		return bad(err, c, NULL, "give PEM or File, not both");
	if (!ref->pem && !ref->file)
		return bad(err, c, NULL, key ? "File is required" : "PEM or File is required");
	if (ref->file && ref->file[0] != '/')
		return bad(err, c, "File", "\"%s\" must be an absolute path", ref->file);
	if (ref->pem && strstr(ref->pem, "-----BEGIN CERTIFICATE-----") == NULL)
		return bad(err, c, "PEM", "holds no PEM certificate");
	if (ref->pem && strstr(ref->pem, "PRIVATE KEY-----") != NULL)
		return bad(err, c, "PEM", "holds a private key, which a snapshot never carries");
	return WEFT_OK;
}

static int decode_tls(json_t *root, struct px_tls_cfg *t, char **err)
{
	json_t *o;
	int has_leaf;

	if (sub_object(root, NULL, "TLS", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	/* Certificate and PrivateKey: both, or neither (a snapshot from the
	 * server, whose proxy has its leaf in files of its own). */
	has_leaf = (jx_field(o, "Certificate") && !json_is_null(jx_field(o, "Certificate"))) ||
		   (jx_field(o, "PrivateKey") && !json_is_null(jx_field(o, "PrivateKey")));
	if (known_fields(o, "TLS", tls_fields, err) != WEFT_OK ||
	    decode_pem(o, "TLS", "Certificate", 0, has_leaf, &t->certificate, err) != WEFT_OK ||
	    decode_pem(o, "TLS", "PrivateKey", 1, has_leaf, &t->private_key, err) != WEFT_OK ||
	    decode_pem(o, "TLS", "TrustBundle", 0, 1, &t->trust_bundle, err) != WEFT_OK)
		return WEFT_EINVAL;
	t->configured = 1;
	return WEFT_OK;
}

static const char *const admin_fields[] = { "BindAddress", "BindPort", NULL };
static const char *const log_fields[] = { "Enabled", "Path", NULL };

static int decode_admin_log(json_t *root, struct px_config *c, char **err)
{
	json_t *o;

	c->admin.bind_address = "127.0.0.1";
	c->admin.bind_port = DEF_ADMIN_PORT;
	if (sub_object(root, NULL, "Admin", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o != NULL) {
		if (known_fields(o, "Admin", admin_fields, err) != WEFT_OK ||
		    get_addr(o, "Admin", "BindAddress", "127.0.0.1", &c->admin.bind_address, err) != WEFT_OK ||
		    get_port(o, "Admin", "BindPort", 0, 1, &c->admin.bind_port, err) != WEFT_OK)
			return WEFT_EINVAL;
		if (!is_loopback(c->admin.bind_address))
			return bad(err, "Admin", "BindAddress", "\"%s\" is not a loopback address",
				   c->admin.bind_address);
	}
	c->access_log.path = "-";
	if (sub_object(root, NULL, "AccessLog", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o != NULL) {
		if (known_fields(o, "AccessLog", log_fields, err) != WEFT_OK ||
		    jx_bool(o, "AccessLog", "Enabled", &c->access_log.enabled, err) != WEFT_OK ||
		    jx_str(o, "AccessLog", "Path", &c->access_log.path, PX_CONFIG_PATH_MAX, err) != WEFT_OK)
			return WEFT_EINVAL;
		if (c->access_log.path == NULL || c->access_log.path[0] == '\0')
			c->access_log.path = "-";
		if (strcmp(c->access_log.path, "-") != 0 && c->access_log.path[0] != '/')
			return bad(err, "AccessLog", "Path", "\"%s\" must be \"-\" or an absolute path",
				   c->access_log.path);
	}
	return WEFT_OK;
}

static const char *const passthrough_fields[] = { "BindAddress", "BindPort", "Routes", NULL };
static const char *const route_fields[] = { "SNI", "Endpoints", NULL };

static int decode_route(json_t *o, const char *c, struct px_passthrough_route *r, char **err)
{
	char cl[CTX_MAX], ce[CTX_MAX];
	struct px_hostport *eps;
	json_t *arr = NULL, *v;
	size_t i;

	if (!json_is_object(o))
		return bad(err, c, NULL, "must be an object");
	if (known_fields(o, c, route_fields, err) != WEFT_OK ||
	    jx_req_str(o, c, "SNI", &r->sni, PX_SNI_NAME_MAX + 2, err) != WEFT_OK ||
	    jx_array(o, c, "Endpoints", &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (!px_sni_name_valid(r->sni, true))
		return bad(err, c, "SNI", "\"%s\" is not a server name (letters, digits, '-', '_' "
			   "and '.', optionally after \"*.\")", r->sni);
	path(cl, c, "Endpoints");
	if (arr == NULL || json_array_size(arr) == 0)
		return bad(err, cl, NULL, "at least one endpoint is required");
	if (json_array_size(arr) > PX_CONFIG_ROUTE_ENDPOINTS_MAX)
		return bad(err, cl, NULL, "more than %d endpoints", PX_CONFIG_ROUTE_ENDPOINTS_MAX);
	if ((eps = calloc(json_array_size(arr), sizeof(*eps))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", cl);
	r->endpoints = eps;
	json_array_foreach(arr, i, v) {
		ctxf(ce, "%s[%zu]", cl, i);
		if (!json_is_object(v))
			return bad(err, ce, NULL, "must be an object");
		if (known_fields(v, ce, hostport_fields, err) != WEFT_OK ||
		    get_addr(v, ce, "Address", NULL, &eps[i].address, err) != WEFT_OK ||
		    get_port(v, ce, "Port", 1, 0, &eps[i].port, err) != WEFT_OK)
			return WEFT_EINVAL;
		r->n_endpoints = i + 1;
	}
	return WEFT_OK;
}

/* Passthrough: optional; its port must not clash with the others. */
static int decode_passthrough(json_t *root, struct px_config_priv *p, char **err)
{
	struct px_passthrough *pt = &p->pub.passthrough;
	char c[CTX_MAX];
	json_t *o, *arr = NULL, *v;
	size_t i;

	if (sub_object(root, NULL, "Passthrough", 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	if (known_fields(o, "Passthrough", passthrough_fields, err) != WEFT_OK ||
	    get_addr(o, "Passthrough", "BindAddress", "0.0.0.0", &pt->bind_address, err) != WEFT_OK ||
	    get_port(o, "Passthrough", "BindPort", 1, 0, &pt->bind_port, err) != WEFT_OK ||
	    jx_array(o, "Passthrough", "Routes", &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	pt->configured = 1;
	if (binds_clash(pt->bind_address, pt->bind_port, p->pub.inbound.bind_address,
			p->pub.inbound.bind_port))
		return bad(err, "Passthrough", "BindPort", "%s:%u clashes with Inbound's %s:%u",
			   pt->bind_address, pt->bind_port, p->pub.inbound.bind_address,
			   p->pub.inbound.bind_port);
	if (binds_clash(pt->bind_address, pt->bind_port, p->pub.admin.bind_address,
			p->pub.admin.bind_port))
		return bad(err, "Passthrough", "BindPort", "%s:%u clashes with Admin's %s:%u",
			   pt->bind_address, pt->bind_port, p->pub.admin.bind_address,
			   p->pub.admin.bind_port);
	for (i = 0; i < p->pub.n_upstreams; i++) {
		const struct px_upstream *u = &p->pub.upstreams[i];

		if (binds_clash(pt->bind_address, pt->bind_port, u->bind_address, u->bind_port))
			return bad(err, "Passthrough", "BindPort", "%s:%u clashes with Upstreams[%zu]'s "
				   "%s:%u", pt->bind_address, pt->bind_port, i, u->bind_address,
				   u->bind_port);
	}
	if (arr == NULL || json_array_size(arr) == 0)
		return WEFT_OK;         /* a listener that refuses every name */
	if (json_array_size(arr) > PX_CONFIG_ROUTES_MAX)
		return bad(err, "Passthrough", "Routes", "more than %d routes", PX_CONFIG_ROUTES_MAX);
	if ((p->routes = calloc(json_array_size(arr), sizeof(*p->routes))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "Passthrough.Routes: out of memory");
	pt->routes = p->routes;
	json_array_foreach(arr, i, v) {
		ctxf(c, "Passthrough.Routes[%zu]", i);
		pt->n_routes = i + 1; /* so that the free sees its endpoints */
		if (decode_route(v, c, &p->routes[i], err) != WEFT_OK)
			return WEFT_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(p->routes[j].sni, p->routes[i].sni) == 0)
				return bad(err, c, "SNI", "\"%s\" is also Passthrough.Routes[%zu]'s "
					   "(names ignore case)", p->routes[i].sni, j);
	}
	return WEFT_OK;
}


static const char *const transparent_fields[] = { "BindAddress", "BindPort", "Passthrough", NULL };

/* Transparent: optional; its port must not clash with another listener. */
static int decode_transparent(json_t *root, struct px_config_priv *p, char **err)
{
	struct px_transparent_cfg *t = &p->pub.transparent;
	const struct px_passthrough *pt = &p->pub.passthrough;
	const char *c = "Transparent";
	int pass = 0;
	json_t *o;

	if (sub_object(root, NULL, c, 0, &o, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (o == NULL)
		return WEFT_OK;
	if (known_fields(o, c, transparent_fields, err) != WEFT_OK ||
	    get_addr(o, c, "BindAddress", "127.0.0.1", &t->bind_address, err) != WEFT_OK ||
	    get_port(o, c, "BindPort", 1, 0, &t->bind_port, err) != WEFT_OK ||
	    jx_bool(o, c, "Passthrough", &pass, err) != WEFT_OK)
		return WEFT_EINVAL;
	t->configured = 1;
	t->passthrough = pass != 0;
	if (binds_clash(t->bind_address, t->bind_port, p->pub.inbound.bind_address,
			p->pub.inbound.bind_port))
		return bad(err, c, "BindPort", "%s:%u clashes with Inbound's %s:%u", t->bind_address,
			   t->bind_port, p->pub.inbound.bind_address, p->pub.inbound.bind_port);
	if (binds_clash(t->bind_address, t->bind_port, p->pub.admin.bind_address,
			p->pub.admin.bind_port))
		return bad(err, c, "BindPort", "%s:%u clashes with Admin's %s:%u", t->bind_address,
			   t->bind_port, p->pub.admin.bind_address, p->pub.admin.bind_port);
	if (pt->configured && binds_clash(t->bind_address, t->bind_port, pt->bind_address,
					  pt->bind_port))
		return bad(err, c, "BindPort", "%s:%u clashes with Passthrough's %s:%u",
			   t->bind_address, t->bind_port, pt->bind_address, pt->bind_port);
	for (size_t i = 0; i < p->pub.n_upstreams; i++) {
		const struct px_upstream *u = &p->pub.upstreams[i];

		if (binds_clash(t->bind_address, t->bind_port, u->bind_address, u->bind_port))
			return bad(err, c, "BindPort", "%s:%u clashes with Upstreams[%zu]'s %s:%u",
				   t->bind_address, t->bind_port, i, u->bind_address, u->bind_port);
	}
	return WEFT_OK;
}

static const char *const root_fields[] = { "Version", "Index", "Proxy", "Inbound", "Upstreams",
					   "Intentions", "TLS", "Admin", "AccessLog", "Passthrough",
					   "Transparent", NULL };

static void config_free(struct px_config_priv *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; p->upstreams && i < p->pub.n_upstreams; i++) {
		free((void *)p->upstreams[i].endpoints);
		free((void *)p->upstreams[i].destinations);
	}
	free(p->upstreams);
	for (size_t i = 0; p->routes && i < p->pub.passthrough.n_routes; i++)
		free((void *)p->routes[i].endpoints);
	free(p->routes);
	intention_set_free(p->set);
	free((void *)p->pub.identity.trust_domain);
	json_decref(p->pub._json);
	free(p);
}

/* Why a snapshot was refused, for the slot's counters. */
enum refusal {
	REFUSED_NONE = -1,
	REFUSED_NEWER_VERSION = PX_CONFIG_REFUSED_NEWER_VERSION,
	REFUSED_UNKNOWN_FIELD = PX_CONFIG_REFUSED_UNKNOWN_FIELD,
	REFUSED_INVALID = PX_CONFIG_REFUSED_INVALID,
	REFUSED_OLDER_INDEX = PX_CONFIG_REFUSED_OLDER_INDEX,
	REFUSED_OTHER_SERVICE = PX_CONFIG_REFUSED_OTHER_SERVICE,
};

static const char *const refusal_names[PX_CONFIG_REFUSAL_REASONS] = {
	"newer-version", "unknown-field", "invalid", "older-index", "other-service",
};

/* The rest of a snapshot whose Version is newer than this proxy's: read
 * as this version, noting every field it does not know, so that the
 * refusal says which parts this proxy cannot enforce. Never accepted. */
static int refuse_newer(struct px_config_priv *p, long long version, struct unknown_fields *u,
			char **err);

static int decode_fields(struct px_config_priv *p, char **err);

static int decode(const char *data, size_t len, struct px_config **out, struct unknown_fields *u,
		  enum refusal *why, char **err)
{
	struct px_config_priv *p = NULL;
	long long version = -1, index = -1;
	json_error_t jerr;
	json_t *root = NULL;
	int rc = WEFT_EINVAL;

	*out = NULL;
	if (len > PX_CONFIG_MAX_BYTES) {
		rc = weft_errf(err, WEFT_ETOOBIG, "snapshot: %zu bytes is over the limit of %u", len,
			       PX_CONFIG_MAX_BYTES);
		goto out;
	}
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "snapshot: invalid JSON at line %d column %d: %s",
			       jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		rc = weft_errf(err, WEFT_EINVAL, "snapshot: must be a JSON object");
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "snapshot: out of memory");
		goto out;
	}
	p->pub._json = root;
	root = NULL;
	atomic_init(&p->pub._refs, 1);
	/* Version first: a newer format is refused as a whole, before any
	 * field it may have redefined is read. */
	if (jx_int(p->pub._json, NULL, "Version", &version, 1, 1LL << 31, err) != WEFT_OK)
		goto out;
	if (version < 0) {
		rc = bad(err, NULL, "Version", "is required");
		goto out;
	}
	if (version > PX_CONFIG_VERSION) {
		*why = REFUSED_NEWER_VERSION;
		rc = refuse_newer(p, version, u, err);
		goto out;
	}
	unknown_noted = u;
	rc = known_fields(p->pub._json, NULL, root_fields, err);
	unknown_noted = NULL;
	if (rc != WEFT_OK) {
		*why = REFUSED_UNKNOWN_FIELD;
		goto out;
	}
	rc = WEFT_EINVAL;
	if (jx_int(p->pub._json, NULL, "Index", &index, 1, 1LL << 62, err) != WEFT_OK)
		goto out;
	if (index < 0) {
		rc = bad(err, NULL, "Index", "is required");
		goto out;
	}
	p->pub.version = (uint64_t)version;
	p->pub.index = (uint64_t)index;
	unknown_noted = u;
	rc = decode_fields(p, err);
	unknown_noted = NULL;
	if (rc != WEFT_OK) {
		*why = u->n ? REFUSED_UNKNOWN_FIELD : REFUSED_INVALID;
		goto out;
	}
	*out = &p->pub;
	p = NULL;
	rc = WEFT_OK;
out:
	config_free(p);
	json_decref(root);
	if (rc != WEFT_OK && *why == REFUSED_NONE)
		*why = REFUSED_INVALID;
	return rc;
}

/* Everything after Version and Index. */
static int decode_fields(struct px_config_priv *p, char **err)
{
	struct px_spiffe sp;
	int rc = WEFT_EINVAL;

	if (decode_identity(p->pub._json, &p->pub.identity, err) != WEFT_OK)
		goto out;
	if (px_spiffe_parse(p->pub.identity.spiffe_id, &sp, NULL) != WEFT_OK ||
	    (p->pub.identity.trust_domain = strdup(sp.trust_domain)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "snapshot: out of memory");
		goto out;
	}
	if (p->pub.identity.zone[0] == '\0') {
		memcpy(p->zone, sp.zone, sizeof(p->zone));
		p->pub.identity.zone = p->zone;
	}
	if (decode_inbound(p->pub._json, &p->pub.inbound, err) != WEFT_OK ||
	    decode_upstreams(p->pub._json, p, err) != WEFT_OK ||
	    decode_intentions(p->pub._json, p, err) != WEFT_OK ||
	    decode_tls(p->pub._json, &p->pub.tls, err) != WEFT_OK ||
	    decode_admin_log(p->pub._json, &p->pub, err) != WEFT_OK ||
	    decode_passthrough(p->pub._json, p, err) != WEFT_OK ||
	    decode_transparent(p->pub._json, p, err) != WEFT_OK ||
	    check_destinations(&p->pub, err) != WEFT_OK)
		goto out;
	if (binds_clash(p->pub.admin.bind_address, p->pub.admin.bind_port,
			p->pub.inbound.bind_address, p->pub.inbound.bind_port)) {
		rc = bad(err, "Admin", "BindPort", "%u clashes with Inbound's %s:%u",
			 p->pub.admin.bind_port, p->pub.inbound.bind_address, p->pub.inbound.bind_port);
		goto out;
	}
	for (size_t i = 0; i < p->pub.n_upstreams; i++) {
		const struct px_upstream *u = &p->pub.upstreams[i];

		if (binds_clash(p->pub.admin.bind_address, p->pub.admin.bind_port, u->bind_address,
				u->bind_port)) {
			rc = bad(err, "Admin", "BindPort", "%u clashes with Upstreams[%zu]'s %s:%u",
				 p->pub.admin.bind_port, i, u->bind_address, u->bind_port);
			goto out;
		}
	}
	rc = WEFT_OK;
out:
	return rc;
}

static int refuse_newer(struct px_config_priv *p, long long version, struct unknown_fields *u,
			char **err)
{
	char *as_ours = NULL, list[UNKNOWN_MAX * 64 + 64] = "";
	size_t l = 0;
	int rc;

	u->keep_going = 1;
	unknown_noted = u;
	rc = known_fields(p->pub._json, NULL, root_fields, &as_ours);
	if (rc == WEFT_OK)
		rc = decode_fields(p, &as_ours);
	unknown_noted = NULL;
	for (size_t i = 0; i < u->n && l < sizeof(list) - 1; i++)
		l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", u->path[i]);
	if (u->total > u->n && l < sizeof(list) - 1)
		snprintf(list + l, sizeof(list) - l, " and %zu more", u->total - u->n);
	if (u->n)
		rc = bad(err, NULL, "Version", "%lld is newer than this proxy's %d: refused as a whole "
			 "rather than enforced in part (the current snapshot stays); what this proxy "
			 "cannot enforce: %s%s%s", version, PX_CONFIG_VERSION, list,
			 rc != WEFT_OK ? "; read as this version it also fails: " : "",
			 rc != WEFT_OK && as_ours ? as_ours : "");
	else
		rc = bad(err, NULL, "Version", "%lld is newer than this proxy's %d: refused as a whole "
			 "rather than enforced in part (the current snapshot stays); no field is new to "
			 "this proxy, but version %lld may give known ones a meaning it does not "
			 "enforce%s%s", version, PX_CONFIG_VERSION, version,
			 rc != WEFT_OK ? "; read as this version it also fails: " : "",
			 rc != WEFT_OK && as_ours ? as_ours : "");
	free(as_ours);
	return rc;
}

int px_config_decode(const char *data, size_t len, struct px_config **out, char **err)
{
	struct unknown_fields u = { 0 };
	enum refusal why = REFUSED_NONE;

	return decode(data, len, out, &u, &why, err);
}

struct px_config *px_config_ref(struct px_config *cfg)
{
	if (cfg)
		atomic_fetch_add(&cfg->_refs, 1);
	return cfg;
}

void px_config_unref(struct px_config *cfg)
{
	if (cfg && atomic_fetch_sub(&cfg->_refs, 1) == 1)
		config_free((struct px_config_priv *)cfg);
}

const struct px_upstream *px_config_upstream(const struct px_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->n_upstreams; i++) {
		if (strcmp(cfg->upstreams[i].name, name) == 0)
			return &cfg->upstreams[i];
	}
	return NULL;
}

json_t *px_config_to_json_redacted(const struct px_config *cfg)
{
	json_t *copy = json_deep_copy(cfg->_json), *tls;
	static const char *const parts[] = { "Certificate", "PrivateKey", "TrustBundle" };

	if (copy && (tls = jx_field(copy, "TLS")) != NULL) {
		for (size_t i = 0; i < 3; i++) {
			json_t *ref = jx_field(tls, parts[i]);
			const char *key;
			json_t *v;

			json_object_foreach(ref, key, v) {
				if (strcasecmp(key, "PEM") == 0)
					json_object_set_new(ref, key, json_string("<redacted>"));
			}
		}
	}
	return copy;
}

/* ---- authorization ---- */

enum intention_action px_config_authorize(const struct px_config *cfg, const char *caller_spiffe_id,
					  const struct intention_call *http, struct px_authz *out)
{
	struct intention_call call = { 0 };

	memset(out, 0, sizeof(*out));
	out->action = INTENTION_DENY;
	out->decision.action = INTENTION_DENY;
	out->decision.permission = -1;
	if (px_spiffe_parse(caller_spiffe_id, &out->source, NULL) != WEFT_OK) {
		out->reason = PX_AUTHZ_BAD_IDENTITY;
		return out->action;
	}
	if (strcmp(out->source.trust_domain, cfg->identity.trust_domain) != 0) {
		out->reason = PX_AUTHZ_FOREIGN_TRUST_DOMAIN;
		return out->action;
	}
	if (strcmp(out->source.mesh, cfg->identity.mesh) != 0) {
		out->reason = PX_AUTHZ_FOREIGN_MESH;
		return out->action;
	}
	/* Weft's intentions live per mesh, in the namespace "default". */
	call.source_ns = INTENTION_DEFAULT_NS;
	call.source_name = out->source.service;
	call.destination_ns = INTENTION_DEFAULT_NS;
	call.destination_name = cfg->identity.service;
	if (http) {
		call.http = 1;
		call.method = http->method;
		call.path = http->path;
		call.headers = http->headers;
		call.n_headers = http->n_headers;
	}
	out->reason = PX_AUTHZ_INTENTIONS;
	intention_set_decide(cfg->intentions, &call, cfg->default_action, &out->decision);
	out->action = out->decision.action;
	return out->action;
}

/* ---- the slot ---- */

void px_config_slot_init(struct px_config_slot *slot)
{
	pthread_mutex_init(&slot->_lock, NULL);
	slot->_cur = NULL;
	atomic_init(&slot->_gen, 0);
	slot->_any_index = false;
	memset(slot->_refused, 0, sizeof(slot->_refused));
	slot->_nsections = 0;
	memset(slot->_section_count, 0, sizeof(slot->_section_count));
}

void px_config_slot_forget_index(struct px_config_slot *slot)
{
	pthread_mutex_lock(&slot->_lock);
	slot->_any_index = true;
	pthread_mutex_unlock(&slot->_lock);
}

void px_config_slot_destroy(struct px_config_slot *slot)
{
	if (slot == NULL)
		return;
	px_config_unref(slot->_cur);
	slot->_cur = NULL;
	pthread_mutex_destroy(&slot->_lock);
}

struct px_config *px_config_slot_get(struct px_config_slot *slot)
{
	struct px_config *c;

	pthread_mutex_lock(&slot->_lock);
	c = px_config_ref(slot->_cur);
	pthread_mutex_unlock(&slot->_lock);
	return c;
}

uint64_t px_config_slot_generation(struct px_config_slot *slot)
{
	return atomic_load_explicit(&slot->_gen, memory_order_acquire);
}

/* Counts a refusal and the top-level sections of the fields it named;
 * lock held. */
static void count_refusal(struct px_config_slot *slot, enum refusal why,
			  const struct unknown_fields *u)
{
	if ((int)why < 0 || (int)why >= (int)PX_CONFIG_REFUSAL_REASONS)
		return;
	slot->_refused[why]++;
	for (size_t i = 0; u && i < u->n; i++) {
		char sec[PX_CONFIG_SECTION_LEN];
		size_t j;

		snprintf(sec, sizeof(sec), "%.*s", (int)strcspn(u->path[i], ".["), u->path[i]);
		for (j = 0; j < slot->_nsections; j++)
			if (strcmp(slot->_section[j], sec) == 0)
				break;
		if (j == slot->_nsections) {
			if (j == PX_CONFIG_SECTIONS_MAX)
				j--;   /* the last row takes the rest */
			else
				slot->_nsections++;
			if (j == PX_CONFIG_SECTIONS_MAX - 1)
				snprintf(slot->_section[j], sizeof(slot->_section[j]), "%s", "other");
			else
				snprintf(slot->_section[j], sizeof(slot->_section[j]), "%s", sec);
		}
		slot->_section_count[j]++;
	}
}

int px_config_slot_load(struct px_config_slot *slot, const char *data, size_t len, char **err)
{
	struct px_config *c = NULL, *old = NULL;
	struct unknown_fields u = { 0 };
	enum refusal why = REFUSED_NONE;
	int rc;

	if ((rc = decode(data, len, &c, &u, &why, err)) != WEFT_OK) {
		pthread_mutex_lock(&slot->_lock);
		count_refusal(slot, why, &u);
		pthread_mutex_unlock(&slot->_lock);
		return rc;
	}
	pthread_mutex_lock(&slot->_lock);
	if (slot->_cur && c->index < slot->_cur->index && !slot->_any_index) {
		rc = weft_errf(err, WEFT_ECONFLICT, "Index: %llu is older than the current %llu",
			       (unsigned long long)c->index, (unsigned long long)slot->_cur->index);
		count_refusal(slot, REFUSED_OLDER_INDEX, NULL);
	} else if (slot->_cur && strcmp(c->identity.service, slot->_cur->identity.service) != 0) {
		rc = weft_errf(err, WEFT_ECONFLICT,
			       "Proxy.Service: \"%s\" is not the running proxy's \"%s\"",
			       c->identity.service, slot->_cur->identity.service);
		count_refusal(slot, REFUSED_OTHER_SERVICE, NULL);
	} else {
		old = slot->_cur;
		slot->_cur = c;
		c = NULL;
		slot->_any_index = false;
		atomic_fetch_add_explicit(&slot->_gen, 1, memory_order_release);
	}
	pthread_mutex_unlock(&slot->_lock);
	px_config_unref(old);
	px_config_unref(c);
	return rc;
}

void px_config_slot_refusals(struct px_config_slot *slot, uint64_t out[PX_CONFIG_REFUSAL_REASONS])
{
	pthread_mutex_lock(&slot->_lock);
	memcpy(out, slot->_refused, sizeof(slot->_refused));
	pthread_mutex_unlock(&slot->_lock);
}

void px_config_slot_stats(struct px_config_slot *slot, struct buf *out)
{
	struct px_config *cur;

	pthread_mutex_lock(&slot->_lock);
	buf_printf(out, "# HELP weft_proxy_config_refused_total Snapshots refused, the current one "
			"staying in force, by reason.\n"
			"# TYPE weft_proxy_config_refused_total counter\n");
	for (size_t i = 0; i < PX_CONFIG_REFUSAL_REASONS; i++)
		buf_printf(out, "weft_proxy_config_refused_total{reason=\"%s\"} %llu\n",
			   refusal_names[i], (unsigned long long)slot->_refused[i]);
	buf_printf(out, "# HELP weft_proxy_config_unenforceable_fields_total Fields of refused "
			"snapshots this proxy does not know (so could not enforce), by top-level "
			"section.\n# TYPE weft_proxy_config_unenforceable_fields_total counter\n");
	for (size_t i = 0; i < slot->_nsections; i++)
		buf_printf(out, "weft_proxy_config_unenforceable_fields_total{section=\"%s\"} %llu\n",
			   slot->_section[i], (unsigned long long)slot->_section_count[i]);
	cur = px_config_ref(slot->_cur);
	pthread_mutex_unlock(&slot->_lock);
	buf_printf(out, "# HELP weft_proxy_config_version The snapshot format version this proxy "
			"speaks, and that of the snapshot in force.\n"
			"# TYPE weft_proxy_config_version gauge\n"
			"weft_proxy_config_version{of=\"proxy\"} %d\n", PX_CONFIG_VERSION);
	if (cur)
		buf_printf(out, "weft_proxy_config_version{of=\"current\"} %llu\n"
				"# HELP weft_proxy_config_index The Index of the snapshot in force.\n"
				"# TYPE weft_proxy_config_index gauge\nweft_proxy_config_index %llu\n",
			   (unsigned long long)cur->version, (unsigned long long)cur->index);
	px_config_unref(cur);
}
