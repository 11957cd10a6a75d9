#include "config_entry.h"
#include "duration.h"
#include "err.h"
#include "util.h"
#include "yamlx.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SD "service-defaults"
#define PD "proxy-defaults"
#define ROUTER "service-router"
#define SPLITTER "service-splitter"
#define RESOLVER "service-resolver"
#define INTENTIONS "service-intentions"
#define MESH "mesh"

#define STR_MAX 4096
#define PATH_MAX_LEN 512

/* ---- Field tables: one row per field, as Consul names it. ---- */

enum ftype {
	F_STR, F_BOOL, F_INT, F_FLOAT, F_DUR, F_OBJ, F_OBJ_ARR, F_OBJ_MAP, F_STR_ARR,
	F_INT_ARR, F_STR_MAP, F_META, F_ANY, F_DROP,
};

#define LOWER 1u /* normalise to lower case (then check oneof) */
#define UPPER 2u

struct field {
	const char *name;
	enum ftype type;
	const struct field *sub;
	const char *const *oneof; /* allowed values besides "" */
	long long min, max;
	unsigned flags;
};

#define END { NULL, F_ANY, NULL, NULL, 0, 0, 0 }
#define STR(n) { n, F_STR, NULL, NULL, 0, 0, 0 }
#define ENUM(n, set, fl) { n, F_STR, NULL, set, 0, 0, fl }
#define BOOL(n) { n, F_BOOL, NULL, NULL, 0, 0, 0 }
#define INT(n, lo, hi) { n, F_INT, NULL, NULL, lo, hi, 0 }
#define FLOAT(n) { n, F_FLOAT, NULL, NULL, 0, 0, 0 }
#define DUR(n) { n, F_DUR, NULL, NULL, 0, 0, 0 }
#define OBJ(n, t) { n, F_OBJ, t, NULL, 0, 0, 0 }
#define OBJ_ARR(n, t) { n, F_OBJ_ARR, t, NULL, 0, 0, 0 }
#define OBJ_MAP(n, t) { n, F_OBJ_MAP, t, NULL, 0, 0, 0 }
#define STR_ARR(n, fl) { n, F_STR_ARR, NULL, NULL, 0, 0, fl }
#define INT_ARR(n, lo, hi) { n, F_INT_ARR, NULL, NULL, lo, hi, 0 }
#define STR_MAP(n) { n, F_STR_MAP, NULL, NULL, 0, 0, 0 }
#define ANY(n) { n, F_ANY, NULL, NULL, 0, 0, 0 }
#define DROP(n) { n, F_DROP, NULL, NULL, 0, 0, 0 }
#define U32 4294967295LL

#define COMMON \
	STR("Kind"), STR("Name"), STR("Namespace"), STR("Partition"), \
	{ "Meta", F_META, NULL, NULL, 0, 0, 0 }, DROP("CreateIndex"), DROP("ModifyIndex"), \
	DROP("Hash")

static const char *const protocols[] = { "tcp", "http", "http2", "grpc", NULL };
static const char *const proxy_modes[] = { "direct", "transparent", NULL };
static const char *const mtls_modes[] = { "strict", "permissive", NULL };
static const char *const gw_modes[] = { "none", "local", "remote", NULL };
static const char *const expose_protocols[] = { "http", "http2", NULL };
static const char *const balance_modes[] = { "exact_balance", NULL };
static const char *const log_types[] = { "file", "stdout", "stderr", NULL };
static const char *const failover_modes[] = { "default", "order-by-locality", NULL };
static const char *const locality_modes[] = { "none", "failover", NULL };
static const char *const lb_policies[] = { "random", "round_robin", "least_request",
					   "ring_hash", "maglev", NULL };
static const char *const hash_fields[] = { "header", "cookie", "query_parameter", NULL };
static const char *const actions[] = { "allow", "deny", NULL };
static const char *const intention_types[] = { "consul", NULL };
static const char *const tls_versions[] = { "TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2",
					    "TLSv1_3", NULL };
static const char *const cipher_suites[] = {
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
	"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", NULL,
};

static const struct field t_gateway[] = { ENUM("Mode", gw_modes, LOWER), END };
static const struct field t_tproxy[] = {
	INT("OutboundListenerPort", 0, 65535), BOOL("DialedDirectly"), END };
static const struct field t_expose_path[] = {
	INT("ListenerPort", 0, 65535), STR("Path"), INT("LocalPathPort", 0, 65535),
	ENUM("Protocol", expose_protocols, LOWER), BOOL("ParsedFromCheck"), END };
static const struct field t_expose[] = {
	BOOL("Checks"), OBJ_ARR("Paths", t_expose_path), END };
static const struct field t_headers[] = {
	STR_MAP("Add"), STR_MAP("Set"), STR_ARR("Remove", 0), END };
static const struct field t_limits[] = {
	INT("MaxConnections", 0, U32), INT("MaxPendingRequests", 0, U32),
	INT("MaxConcurrentRequests", 0, U32), END };
static const struct field t_phc[] = {
	DUR("Interval"), INT("MaxFailures", 0, U32), INT("EnforcingConsecutive5xx", 0, 100),
	INT("MaxEjectionPercent", 0, 100), DUR("BaseEjectionTime"), END };
static const struct field t_upstream[] = {
	STR("Name"), STR("Partition"), STR("Namespace"), STR("Peer"),
	STR("EnvoyListenerJSON"), STR("EnvoyClusterJSON"), ENUM("Protocol", protocols, LOWER),
	INT("ConnectTimeoutMs", 0, U32), OBJ("Limits", t_limits),
	OBJ("PassiveHealthCheck", t_phc), OBJ("MeshGateway", t_gateway),
	ENUM("BalanceOutboundConnections", balance_modes, 0), END };
static const struct field t_upstream_config[] = {
	OBJ_ARR("Overrides", t_upstream), OBJ("Defaults", t_upstream), END };
static const struct field t_destination[] = {
	STR_ARR("Addresses", 0), INT("Port", 0, 65535), END };

static const struct field t_service_defaults[] = {
	COMMON, ENUM("Protocol", protocols, LOWER), ENUM("Mode", proxy_modes, LOWER),
	OBJ("TransparentProxy", t_tproxy), ENUM("MutualTLSMode", mtls_modes, LOWER),
	OBJ("MeshGateway", t_gateway), OBJ("Expose", t_expose), STR("ExternalSNI"),
	OBJ("UpstreamConfig", t_upstream_config), OBJ("Destination", t_destination),
	INT("MaxInboundConnections", 0, U32), INT("LocalConnectTimeoutMs", 0, U32),
	INT("LocalRequestTimeoutMs", 0, U32), ENUM("BalanceInboundConnections", balance_modes, 0),
	ANY("RateLimits"), ANY("EnvoyExtensions"), END };

static const struct field t_access_logs[] = {
	BOOL("Enabled"), BOOL("DisableListenerLogs"), ENUM("Type", log_types, LOWER),
	STR("Path"), STR("JSONFormat"), STR("TextFormat"), END };
static const struct field t_proxy_defaults[] = {
	COMMON, ANY("Config"), ENUM("Mode", proxy_modes, LOWER), OBJ("TransparentProxy", t_tproxy),
	ENUM("MutualTLSMode", mtls_modes, LOWER), OBJ("MeshGateway", t_gateway),
	OBJ("Expose", t_expose), OBJ("AccessLogs", t_access_logs), ANY("FailoverPolicy"),
	ANY("PrioritizeByLocality"), ANY("EnvoyExtensions"), END };

static const struct field t_match_header[] = {
	STR("Name"), BOOL("Present"), STR("Exact"), STR("Prefix"), STR("Suffix"), STR("Regex"),
	BOOL("Invert"), END };
static const struct field t_match_query[] = {
	STR("Name"), BOOL("Present"), STR("Exact"), STR("Regex"), END };
static const struct field t_match_http[] = {
	STR("PathExact"), STR("PathPrefix"), STR("PathRegex"), OBJ_ARR("Header", t_match_header),
	OBJ_ARR("QueryParam", t_match_query), STR_ARR("Methods", UPPER), END };
static const struct field t_match[] = { OBJ("HTTP", t_match_http), END };
static const struct field t_route_dest[] = {
	STR("Service"), STR("ServiceSubset"), STR("Namespace"), STR("Partition"),
	STR("PrefixRewrite"), DUR("RequestTimeout"), DUR("IdleTimeout"),
	INT("NumRetries", 0, U32), BOOL("RetryOnConnectFailure"), STR_ARR("RetryOn", 0),
	INT_ARR("RetryOnStatusCodes", 100, 599), OBJ("RequestHeaders", t_headers),
	OBJ("ResponseHeaders", t_headers), END };
static const struct field t_route[] = {
	OBJ("Match", t_match), OBJ("Destination", t_route_dest), END };
static const struct field t_router[] = { COMMON, OBJ_ARR("Routes", t_route), END };

static const struct field t_split[] = {
	FLOAT("Weight"), STR("Service"), STR("ServiceSubset"), STR("Namespace"), STR("Partition"),
	OBJ("RequestHeaders", t_headers), OBJ("ResponseHeaders", t_headers), END };
static const struct field t_splitter[] = { COMMON, OBJ_ARR("Splits", t_split), END };

static const struct field t_subset[] = { STR("Filter"), BOOL("OnlyPassing"), END };
static const struct field t_redirect[] = {
	STR("Service"), STR("ServiceSubset"), STR("Namespace"), STR("Partition"),
	STR("Datacenter"), STR("Peer"), STR("SamenessGroup"), END };
static const struct field t_failover_target[] = {
	STR("Service"), STR("ServiceSubset"), STR("Partition"), STR("Namespace"),
	STR("Datacenter"), STR("Peer"), END };
static const struct field t_failover_policy[] = {
	ENUM("Mode", failover_modes, 0), STR_ARR("Regions", 0), END };
static const struct field t_failover[] = {
	STR("Service"), STR("ServiceSubset"), STR("Namespace"), STR_ARR("Datacenters", 0),
	OBJ_ARR("Targets", t_failover_target), OBJ("Policy", t_failover_policy),
	STR("SamenessGroup"), END };
static const struct field t_cookie[] = { BOOL("Session"), DUR("TTL"), STR("Path"), END };
static const struct field t_hash_policy[] = {
	ENUM("Field", hash_fields, 0), STR("FieldValue"), OBJ("CookieConfig", t_cookie),
	BOOL("SourceIP"), BOOL("Terminal"), END };
static const struct field t_ring_hash[] = {
	INT("MinimumRingSize", 0, 8388608), INT("MaximumRingSize", 0, 8388608), END };
static const struct field t_least_request[] = { INT("ChoiceCount", 0, U32), END };
static const struct field t_lb[] = {
	ENUM("Policy", lb_policies, 0), OBJ("RingHashConfig", t_ring_hash),
	OBJ("LeastRequestConfig", t_least_request), OBJ_ARR("HashPolicies", t_hash_policy), END };
static const struct field t_locality[] = { ENUM("Mode", locality_modes, 0), END };
static const struct field t_resolver[] = {
	COMMON, STR("DefaultSubset"), OBJ_MAP("Subsets", t_subset), OBJ("Redirect", t_redirect),
	OBJ_MAP("Failover", t_failover), DUR("ConnectTimeout"), DUR("RequestTimeout"),
	OBJ("PrioritizeByLocality", t_locality), OBJ("LoadBalancer", t_lb), END };

static const struct field t_source[] = {
	STR("Name"), STR("Peer"), STR("Namespace"), STR("Partition"), STR("SamenessGroup"),
	ENUM("Action", actions, 0), ANY("Permissions"), DROP("Precedence"), STR("LegacyID"),
	ENUM("Type", intention_types, 0), STR("Description"), STR_MAP("LegacyMeta"),
	ANY("LegacyCreateTime"), ANY("LegacyUpdateTime"), END };
static const struct field t_intentions[] = {
	COMMON, OBJ_ARR("Sources", t_source), ANY("JWT"), END };

static const struct field t_mesh_tproxy[] = { BOOL("MeshDestinationsOnly"), END };
static const struct field t_tls_dir[] = {
	ENUM("TLSMinVersion", tls_versions, 0), ENUM("TLSMaxVersion", tls_versions, 0),
	STR_ARR("CipherSuites", 0), END };
static const struct field t_mesh_tls[] = {
	OBJ("Incoming", t_tls_dir), OBJ("Outgoing", t_tls_dir), END };
static const struct field t_mesh_http[] = {
	BOOL("SanitizeXForwardedClientCert"), ANY("Incoming"), END };
static const struct field t_mesh_peering[] = { BOOL("PeerThroughMeshGateways"), END };
static const struct field t_mesh[] = {
	COMMON, OBJ("TransparentProxy", t_mesh_tproxy), BOOL("AllowEnablingPermissiveMutualTLS"),
	BOOL("ValidateClusters"), OBJ("TLS", t_mesh_tls), OBJ("HTTP", t_mesh_http),
	OBJ("Peering", t_mesh_peering), END };

/* ---- Generic decoding ---- */

/* Paths are cut at PATH_MAX_LEN; vsnprintf does the cutting. */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pathf(char *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, PATH_MAX_LEN, fmt, ap);
	va_end(ap);
}

static void path_key(char *out, const char *ctx, const char *name)
{
	pathf(out, "%s%s%s", ctx && *ctx ? ctx : "", ctx && *ctx ? "." : "", name);
}

/* Consul's decoder matches field names ignoring case, and translates the
 * snake_case aliases: compare ignoring both case and '_'. */
static int name_fold_eq(const char *given, const char *canon)
{
	for (;;) {
		while (*given == '_')
			given++;
		if (*given == '\0' || *canon == '\0')
			return *given == '\0' && *canon == '\0';
		if (tolower((unsigned char)*given) != tolower((unsigned char)*canon))
			return 0;
		given++;
		canon++;
	}
}

static const struct field *field_find(const struct field *tab, const char *key)
{
	for (; tab->name; tab++) {
		if (!strcmp(tab->name, key))
			return tab;
	}
	return NULL;
}

static const struct field *field_fold(const struct field *tab, const char *key)
{
	const struct field *f = field_find(tab, key);

	if (f)
		return f;
	for (; tab->name; tab++) {
		if (name_fold_eq(key, tab->name))
			return tab;
	}
	return NULL;
}

static int in_set(const char *const *set, const char *s)
{
	for (; *set; set++) {
		if (!strcmp(*set, s))
			return 1;
	}
	return 0;
}

static int bad_enum(char **err, const char *path, const char *s, const char *const *set)
{
	char list[512] = "";
	size_t n = 0;

	for (; *set && n < sizeof(list) - 1; set++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "", *set);
	return weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not one of %s", path, s, list);
}

static int decode_str(json_t *v, const char *path, unsigned flags, json_t **out, char **err)
{
	char *s;
	size_t i, len;

	if (!json_is_string(v))
		return weft_errf(err, WEFT_EINVAL, "%s: must be a string", path);
	len = json_string_length(v);
	if (len > STR_MAX)
		return weft_errf(err, WEFT_EINVAL, "%s: longer than %d bytes", path, STR_MAX);
	if (strlen(json_string_value(v)) != len)
		return weft_errf(err, WEFT_EINVAL, "%s: must not contain NUL characters", path);
	s = strdup(json_string_value(v));
	if (s == NULL)
		return WEFT_ENOMEM;
	for (i = 0; i < len; i++) {
		if (flags & LOWER)
			s[i] = (char)tolower((unsigned char)s[i]);
		else if (flags & UPPER)
			s[i] = (char)toupper((unsigned char)s[i]);
	}
	*out = json_string(s);
	free(s);
	return *out ? WEFT_OK : WEFT_ENOMEM;
}

static int get_int(json_t *v, long long *n)
{
	if (json_is_integer(v)) {
		*n = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v) && fabs(json_real_value(v)) < 9e18 &&
	    json_real_value(v) == (double)(long long)json_real_value(v)) {
		*n = (long long)json_real_value(v);
		return 0;
	}
	return -1;
}

static int meta_check(json_t *meta, const char *path, char **err)
{
	const char *k, *p;
	json_t *v;

	if (json_object_size(meta) > 64)
		return weft_errf(err, WEFT_EINVAL, "%s: more than 64 keys", path);
	json_object_foreach(meta, k, v) {
		if (*k == '\0')
			return weft_errf(err, WEFT_EINVAL, "%s: key must not be empty", path);
		if (strlen(k) > 128)
			return weft_errf(err, WEFT_EINVAL, "%s.%s: key longer than 128 bytes", path, k);
		for (p = k; *p; p++) {
			if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
				return weft_errf(err, WEFT_EINVAL,
						 "%s.%s: key may contain only letters, digits, '_' and '-'",
						 path, k);
		}
		if (!strncmp(k, "consul-", 7))
			return weft_errf(err, WEFT_EINVAL,
					 "%s.%s: the \"consul-\" prefix is reserved", path, k);
		if (json_string_length(v) > 512)
			return weft_errf(err, WEFT_EINVAL, "%s.%s: value longer than 512 bytes",
					 path, k);
	}
	return WEFT_OK;
}

static int decode_obj(json_t *in, const struct field *tab, const char *ctx, json_t *out,
		      char **err);

static int decode_value(json_t *v, const struct field *f, const char *path, json_t **out,
			char **err)
{
	json_t *e, *o = NULL;
	const char *k;
	char sub[PATH_MAX_LEN];
	long long n;
	size_t i;
	int rc = WEFT_OK;

	*out = NULL;
	switch (f->type) {
	case F_STR:
		if ((rc = decode_str(v, path, f->flags, &o, err)) != WEFT_OK)
			break;
		if (f->oneof && json_string_length(o) && !in_set(f->oneof, json_string_value(o)))
			rc = bad_enum(err, path, json_string_value(o), f->oneof);
		break;
	case F_BOOL:
		if (!json_is_boolean(v))
			return weft_errf(err, WEFT_EINVAL, "%s: must be true or false", path);
		o = json_incref(v);
		break;
	case F_INT:
		if (get_int(v, &n))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an integer", path);
		if (n < f->min || n > f->max)
			return weft_errf(err, WEFT_EINVAL, "%s: %lld is out of range [%lld, %lld]", path,
					 n, f->min, f->max);
		o = json_integer(n);
		break;
	case F_FLOAT:
		if (!json_is_number(v))
			return weft_errf(err, WEFT_EINVAL, "%s: must be a number", path);
		o = json_real(json_number_value(v));
		break;
	case F_DUR: {
		long long ms;
		char buf[64];

		if (json_is_integer(v)) {
			if (json_integer_value(v) < 0)
				return weft_errf(err, WEFT_EINVAL, "%s: must not be negative", path);
			ms = json_integer_value(v) / 1000000; /* Go: nanoseconds */
		} else if (!json_is_string(v)) {
			return weft_errf(err, WEFT_EINVAL, "%s: must be a duration such as \"10s\"", path);
		} else if (json_string_value(v)[0] == '-') {
			return weft_errf(err, WEFT_EINVAL, "%s: must not be negative", path);
		} else if (duration_parse_ms(json_string_value(v), &ms) != 0) {
			return weft_errf(err, WEFT_EINVAL,
					 "%s: \"%s\" is not a duration (use a number with a unit: 500ms, 10s, 5m, 1h)",
					 path, json_string_value(v));
		}
		duration_format(ms, buf, sizeof(buf));
		o = json_string(buf);
		break;
	}
	case F_OBJ:
		if (!json_is_object(v))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an object", path);
		o = json_object();
		rc = o ? decode_obj(v, f->sub, path, o, err) : WEFT_ENOMEM;
		break;
	case F_OBJ_ARR:
		if (!json_is_array(v))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an array of objects", path);
		o = json_array();
		json_array_foreach(v, i, e) {
			json_t *eo;

			pathf(sub, "%s[%zu]", path, i);
			if (!json_is_object(e)) {
				rc = weft_errf(err, WEFT_EINVAL, "%s: must be an object", sub);
				break;
			}
			eo = json_object();
			json_array_append_new(o, eo);
			if ((rc = decode_obj(e, f->sub, sub, eo, err)) != WEFT_OK)
				break;
		}
		break;
	case F_OBJ_MAP:
		if (!json_is_object(v))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an object", path);
		o = json_object();
		json_object_foreach(v, k, e) {
			json_t *eo;

			path_key(sub, path, k);
			if (!json_is_object(e)) {
				rc = weft_errf(err, WEFT_EINVAL, "%s: must be an object", sub);
				break;
			}
			eo = json_object();
			json_object_set_new(o, k, eo);
			if ((rc = decode_obj(e, f->sub, sub, eo, err)) != WEFT_OK)
				break;
		}
		break;
	case F_STR_ARR:
	case F_INT_ARR:
		if (!json_is_array(v))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an array", path);
		o = json_array();
		json_array_foreach(v, i, e) {
			json_t *eo = NULL;

			pathf(sub, "%s[%zu]", path, i);
			if (f->type == F_STR_ARR) {
				if ((rc = decode_str(e, sub, f->flags, &eo, err)) != WEFT_OK)
					break;
			} else {
				if (get_int(e, &n)) {
					rc = weft_errf(err, WEFT_EINVAL, "%s: must be an integer", sub);
					break;
				}
				if (n < f->min || n > f->max) {
					rc = weft_errf(err, WEFT_EINVAL,
						       "%s: %lld is out of range [%lld, %lld]", sub, n,
						       f->min, f->max);
					break;
				}
				eo = json_integer(n);
			}
			json_array_append_new(o, eo);
		}
		break;
	case F_STR_MAP:
	case F_META:
		if (!json_is_object(v))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an object of strings", path);
		o = json_object();
		json_object_foreach(v, k, e) {
			json_t *eo = NULL;

			path_key(sub, path, k);
			if ((rc = decode_str(e, sub, 0, &eo, err)) != WEFT_OK)
				break;
			json_object_set_new(o, k, eo);
		}
		if (rc == WEFT_OK && f->type == F_META)
			rc = meta_check(o, path, err);
		break;
	case F_ANY:
		o = json_deep_copy(v);
		break;
	case F_DROP:
		return WEFT_OK;
	}
	if (rc != WEFT_OK || o == NULL) {
		json_decref(o);
		return rc != WEFT_OK ? rc : weft_errf(err, WEFT_ENOMEM, "%s: out of memory", path);
	}
	*out = o;
	return WEFT_OK;
}

static int decode_obj(json_t *in, const struct field *tab, const char *ctx, json_t *out,
		      char **err)
{
	const struct field *f;
	const char *key;
	char path[PATH_MAX_LEN];
	json_t *v, *o;
	int rc;

	json_object_foreach(in, key, v) {
		path_key(path, ctx, key);
		f = field_fold(tab, key);
		if (f == NULL)
			return weft_errf(err, WEFT_EINVAL, "%s: unknown field", path);
		if (json_object_get(out, f->name))
			return weft_errf(err, WEFT_EINVAL, "%s: given twice (as %s)", path, f->name);
		if (json_is_null(v))
			continue;
		path_key(path, ctx, f->name);
		if ((rc = decode_value(v, f, path, &o, err)) != WEFT_OK)
			return rc;
		if (o && json_object_set_new(out, f->name, o) != 0)
			return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", path);
	}
	return WEFT_OK;
}

/* ---- Helpers over canonical objects ---- */

static const char *sget(const json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	return json_is_string(v) ? json_string_value(v) : "";
}

static json_t *oget(const json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	return json_is_object(v) ? v : NULL;
}

static size_t alen(const json_t *o, const char *name)
{
	return json_array_size(json_object_get(o, name));
}

/* ---- Per-kind validation of the canonical entry ---- */

static int check_name(const char *kind, const char *name, char **err)
{
	if (*name == '\0')
		return weft_errf(err, WEFT_EINVAL, "Name: is required");
	if (!strcmp(kind, INTENTIONS) && !strcmp(name, "*"))
		return WEFT_OK;
	if (!name_valid(name, CONFIG_ENTRY_NAME_MAX))
		return weft_errf(err, WEFT_EINVAL,
				 "Name: \"%s\" is not a valid name (letters, digits, '-', '_', '.'; at most %d)",
				 name, CONFIG_ENTRY_NAME_MAX);
	return WEFT_OK;
}

static int check_gateway_expose(json_t *e, char **err)
{
	json_t *paths = json_object_get(oget(e, "Expose"), "Paths"), *p;
	size_t i;

	json_array_foreach(paths, i, p) {
		const char *path = sget(p, "Path");

		if (*path && *path != '/')
			return weft_errf(err, WEFT_EINVAL, "Expose.Paths[%zu].Path: must start with '/'",
					 i);
	}
	return WEFT_OK;
}

static int validate_service_defaults(json_t *e, char **err)
{
	json_t *uc = oget(e, "UpstreamConfig"), *o;
	size_t i;

	json_array_foreach(json_object_get(uc, "Overrides"), i, o) {
		if (*sget(o, "Name") == '\0')
			return weft_errf(err, WEFT_EINVAL,
					 "UpstreamConfig.Overrides[%zu].Name: is required", i);
	}
	if (*sget(oget(uc, "Defaults"), "Name"))
		return weft_errf(err, WEFT_EINVAL,
				 "UpstreamConfig.Defaults.Name: must be empty (defaults apply to every upstream)");
	if (*sget(e, "ExternalSNI") && !name_valid(sget(e, "ExternalSNI"), 253))
		return weft_errf(err, WEFT_EINVAL, "ExternalSNI: \"%s\" is not a valid host name",
				 sget(e, "ExternalSNI"));
	if (oget(e, "Destination") && strcmp(sget(e, "Mode"), "transparent"))
		return weft_errf(err, WEFT_EINVAL,
				 "Destination: only allowed with Mode \"transparent\"");
	return check_gateway_expose(e, err);
}

static int validate_proxy_defaults(json_t *e, char **err)
{
	json_t *cfg = json_object_get(e, "Config"), *p, *logs = oget(e, "AccessLogs");
	const char *k;

	if (strcmp(sget(e, "Name"), "global"))
		return weft_errf(err, WEFT_EINVAL,
				 "Name: \"%s\" is not supported, proxy-defaults must be named \"global\"",
				 sget(e, "Name"));
	if (cfg && !json_is_object(cfg))
		return weft_errf(err, WEFT_EINVAL, "Config: must be an object");
	json_object_foreach(cfg, k, p) {
		if (!strcmp(k, "protocol")) {
			if (!json_is_string(p))
				return weft_errf(err, WEFT_EINVAL, "Config.protocol: must be a string");
			if (json_string_length(p) && !in_set(protocols, json_string_value(p))) {
				char low[16];
				size_t i;

				for (i = 0; i < sizeof(low) - 1 && json_string_value(p)[i]; i++)
					low[i] = (char)tolower((unsigned char)json_string_value(p)[i]);
				low[i] = '\0';
				if (json_string_length(p) >= sizeof(low) || !in_set(protocols, low))
					return bad_enum(err, "Config.protocol", json_string_value(p),
							protocols);
			}
		} else if (!strcmp(k, "local_connect_timeout_ms") ||
			   !strcmp(k, "local_request_timeout_ms") ||
			   !strcmp(k, "handshake_timeout_ms") || !strcmp(k, "connect_timeout_ms")) {
			long long n;

			if (get_int(p, &n) || n < 0)
				return weft_errf(err, WEFT_EINVAL,
						 "Config.%s: must be a non-negative integer", k);
		}
	}
	if (*sget(logs, "JSONFormat") && *sget(logs, "TextFormat"))
		return weft_errf(err, WEFT_EINVAL,
				 "AccessLogs.TextFormat: cannot be set with AccessLogs.JSONFormat");
	if (!strcmp(sget(logs, "Type"), "file") && *sget(logs, "Path") == '\0')
		return weft_errf(err, WEFT_EINVAL, "AccessLogs.Path: is required with Type \"file\"");
	if (*sget(logs, "Path") && strcmp(sget(logs, "Type"), "file"))
		return weft_errf(err, WEFT_EINVAL, "AccessLogs.Path: only allowed with Type \"file\"");
	return check_gateway_expose(e, err);
}

static const char *const http_methods[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
					    "CONNECT", "OPTIONS", "TRACE", NULL };
static const char *const retry_conditions[] = {
	"5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited", "retriable-4xx",
	"refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
	"unavailable", NULL };

static int check_matchers(json_t *list, const char *ctx, int with_suffix, char **err)
{
	json_t *h;
	size_t j;

	json_array_foreach(list, j, h) {
		int n = 0;

		if (*sget(h, "Name") == '\0')
			return weft_errf(err, WEFT_EINVAL, "%s[%zu].Name: is required", ctx, j);
		n += json_is_true(json_object_get(h, "Present"));
		n += *sget(h, "Exact") != '\0';
		n += *sget(h, "Regex") != '\0';
		if (with_suffix) {
			n += *sget(h, "Prefix") != '\0';
			n += *sget(h, "Suffix") != '\0';
		}
		if (n != 1)
			return weft_errf(err, WEFT_EINVAL, "%s[%zu]: needs exactly one of %s", ctx, j,
					 with_suffix ? "Present, Exact, Prefix, Suffix or Regex"
						     : "Present, Exact or Regex");
	}
	return WEFT_OK;
}

static int validate_router(json_t *e, char **err)
{
	json_t *route, *m, *dest;
	size_t i, j, k;
	char ctx[PATH_MAX_LEN];
	int rc;

	json_array_foreach(json_object_get(e, "Routes"), i, route) {
		json_t *http = oget(oget(route, "Match"), "HTTP");
		int paths = 0, rewrite_ok = 0;

		if (http) {
			const char *exact = sget(http, "PathExact"), *prefix = sget(http, "PathPrefix");

			if (*exact) {
				paths++;
				rewrite_ok = 1;
				if (*exact != '/')
					return weft_errf(err, WEFT_EINVAL,
							 "Routes[%zu].Match.HTTP.PathExact: must start with '/'", i);
			}
			if (*prefix) {
				paths++;
				rewrite_ok = 1;
				if (*prefix != '/')
					return weft_errf(err, WEFT_EINVAL,
							 "Routes[%zu].Match.HTTP.PathPrefix: must start with '/'", i);
			}
			paths += *sget(http, "PathRegex") != '\0';
			if (paths > 1)
				return weft_errf(err, WEFT_EINVAL,
						 "Routes[%zu].Match.HTTP: at most one of PathExact, PathPrefix or PathRegex",
						 i);
			pathf(ctx, "Routes[%zu].Match.HTTP.Header", i);
			if ((rc = check_matchers(json_object_get(http, "Header"), ctx, 1, err)))
				return rc;
			pathf(ctx, "Routes[%zu].Match.HTTP.QueryParam", i);
			if ((rc = check_matchers(json_object_get(http, "QueryParam"), ctx, 0, err)))
				return rc;
			json_array_foreach(json_object_get(http, "Methods"), j, m) {
				if (!in_set(http_methods, json_string_value(m)))
					return weft_errf(err, WEFT_EINVAL,
							 "Routes[%zu].Match.HTTP.Methods[%zu]: \"%s\" is not an HTTP method",
							 i, j, json_string_value(m));
				for (k = 0; k < j; k++) {
					if (json_equal(m, json_array_get(json_object_get(http, "Methods"), k)))
						return weft_errf(err, WEFT_EINVAL,
								 "Routes[%zu].Match.HTTP.Methods[%zu]: \"%s\" given more than once",
								 i, j, json_string_value(m));
				}
			}
		}
		dest = oget(route, "Destination");
		if (*sget(dest, "PrefixRewrite") && !rewrite_ok)
			return weft_errf(err, WEFT_EINVAL,
					 "Routes[%zu].Destination.PrefixRewrite: needs Match.HTTP.PathExact or PathPrefix",
					 i);
		json_array_foreach(json_object_get(dest, "RetryOn"), j, m) {
			if (!in_set(retry_conditions, json_string_value(m)))
				return weft_errf(err, WEFT_EINVAL,
						 "Routes[%zu].Destination.RetryOn[%zu]: \"%s\" is not a retry condition",
						 i, j, json_string_value(m));
		}
	}
	return WEFT_OK;
}

/* Weights count in hundredths of a percent, as Consul rounds them. */
static long scaled_weight(double w)
{
	return lround(w * 100.0);
}

static int validate_splitter(json_t *e, char **err)
{
	json_t *splits = json_object_get(e, "Splits"), *s, *t;
	const char *name = sget(e, "Name");
	size_t i, j;
	long sum = 0;

	if (json_array_size(splits) == 0)
		return weft_errf(err, WEFT_EINVAL, "Splits: at least one split is required");
	json_array_foreach(splits, i, s) {
		json_t *w = json_object_get(s, "Weight");
		double wv = w ? json_number_value(w) : 0;

		if (wv < 0 || wv > 100)
			return weft_errf(err, WEFT_EINVAL, "Splits[%zu].Weight: %g is not between 0 and 100",
					 i, wv);
		json_object_set_new(s, "Weight", json_real((double)scaled_weight(wv) / 100.0));
		sum += scaled_weight(wv);
		for (j = 0; j < i; j++) {
			const char *a = *sget(s, "Service") ? sget(s, "Service") : name;

			t = json_array_get(splits, j);
			if (!strcmp(a, *sget(t, "Service") ? sget(t, "Service") : name) &&
			    !strcmp(sget(s, "ServiceSubset"), sget(t, "ServiceSubset")) &&
			    !strcmp(sget(s, "Namespace"), sget(t, "Namespace")) &&
			    !strcmp(sget(s, "Partition"), sget(t, "Partition")))
				return weft_errf(err, WEFT_EINVAL,
						 "Splits[%zu]: same destination as Splits[%zu] (service \"%s\", subset \"%s\")",
						 i, j, a, sget(s, "ServiceSubset"));
		}
	}
	if (sum != 10000)
		return weft_errf(err, WEFT_EINVAL, "Splits: the weights must add up to 100, not %.2f",
				 (double)sum / 100.0);
	return WEFT_OK;
}

static int subset_name_valid(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return 0;
	}
	return 1;
}

static int is_subset(json_t *e, const char *s)
{
	return json_object_get(oget(e, "Subsets"), s) != NULL;
}

static int validate_target(json_t *t, const char *ctx, json_t *e, int can_peer, char **err)
{
	const char *svc = sget(t, "Service"), *sub = sget(t, "ServiceSubset");
	const char *peer = sget(t, "Peer");

	if (*peer && !can_peer)
		return WEFT_OK;
	if (*peer && *sub)
		return weft_errf(err, WEFT_EINVAL, "%s.Peer: cannot be set with ServiceSubset", ctx);
	if (*peer && *sget(t, "Partition"))
		return weft_errf(err, WEFT_EINVAL, "%s.Peer: cannot be set with Partition", ctx);
	if (*peer && *sget(t, "Datacenter"))
		return weft_errf(err, WEFT_EINVAL, "%s.Peer: cannot be set with Datacenter", ctx);
	if (*sub && (*svc == '\0' || !strcmp(svc, sget(e, "Name"))) && !is_subset(e, sub))
		return weft_errf(err, WEFT_EINVAL, "%s.ServiceSubset: \"%s\" is not a subset of \"%s\"",
				 ctx, sub, sget(e, "Name"));
	return WEFT_OK;
}

/* The shape of a subset Filter (a go-bexpr expression): balanced quotes
 * and parentheses, no control characters. The expression itself is
 * evaluated by lib/filter when the catalog is queried. */
static int filter_shape(const char *f, const char *subset, char **err)
{
	int depth = 0;
	char quote = 0;

	for (; *f; f++) {
		if ((unsigned char)*f < 0x20 && *f != '\t')
			return weft_errf(err, WEFT_EINVAL, "Subsets.%s.Filter: control character",
					 subset);
		if (quote) {
			if (*f == '\\' && f[1])
				f++;
			else if (*f == quote)
				quote = 0;
		} else if (*f == '"' || *f == '`') {
			quote = *f;
		} else if (*f == '(') {
			depth++;
		} else if (*f == ')' && --depth < 0) {
			break;
		}
	}
	if (quote || depth != 0)
		return weft_errf(err, WEFT_EINVAL, "Subsets.%s.Filter: unbalanced %s", subset,
				 quote ? "quotes" : "parentheses");
	return WEFT_OK;
}

static int validate_resolver(json_t *e, char **err)
{
	json_t *subsets = oget(e, "Subsets"), *v, *r = oget(e, "Redirect"), *t;
	json_t *lb = oget(e, "LoadBalancer");
	const char *k, *ds = sget(e, "DefaultSubset");
	char ctx[PATH_MAX_LEN];
	size_t i;
	int rc;

	json_object_foreach(subsets, k, v) {
		if (!subset_name_valid(k))
			return weft_errf(err, WEFT_EINVAL,
					 "Subsets.%s: subset names are DNS labels (a-z, 0-9, '-', at most 63)",
					 k);
		if ((rc = filter_shape(sget(v, "Filter"), k, err)) != WEFT_OK)
			return rc;
	}
	if (*ds && !is_subset(e, ds))
		return weft_errf(err, WEFT_EINVAL, "DefaultSubset: \"%s\" is not one of Subsets", ds);
	if (r) {
		if (json_object_size(oget(e, "Failover")))
			return weft_errf(err, WEFT_EINVAL, "Redirect: cannot be set with Failover");
		if (*sget(r, "Service") == '\0' && *sget(r, "ServiceSubset") == '\0' &&
		    *sget(r, "Namespace") == '\0' && *sget(r, "Partition") == '\0' &&
		    *sget(r, "Datacenter") == '\0' && *sget(r, "Peer") == '\0' &&
		    *sget(r, "SamenessGroup") == '\0')
			return weft_errf(err, WEFT_EINVAL, "Redirect: is empty");
		if (*sget(r, "Service") == '\0') {
			static const char *const need_svc[] = { "ServiceSubset", "Namespace",
								"Partition", "Peer", NULL };
			const char *const *f;

			for (f = need_svc; *f; f++) {
				if (*sget(r, *f))
					return weft_errf(err, WEFT_EINVAL,
							 "Redirect.%s: needs Redirect.Service", *f);
			}
		}
		if ((rc = validate_target(r, "Redirect", e, 1, err)) != WEFT_OK)
			return rc;
	}
	json_object_foreach(oget(e, "Failover"), k, v) {
		json_t *dcs = json_object_get(v, "Datacenters");
		size_t ntargets = alen(v, "Targets");

		if (strcmp(k, "*") && !is_subset(e, k))
			return weft_errf(err, WEFT_EINVAL, "Failover.%s: \"%s\" is not one of Subsets", k,
					 k);
		if (*sget(v, "Service") == '\0' && *sget(v, "ServiceSubset") == '\0' &&
		    *sget(v, "Namespace") == '\0' && json_array_size(dcs) == 0 && ntargets == 0 &&
		    *sget(v, "SamenessGroup") == '\0')
			return weft_errf(err, WEFT_EINVAL,
					 "Failover.%s: needs one of Service, ServiceSubset, Namespace, Targets or Datacenters",
					 k);
		if (json_array_size(dcs) && ntargets)
			return weft_errf(err, WEFT_EINVAL,
					 "Failover.%s.Targets: cannot be set with Datacenters", k);
		if (ntargets && (*sget(v, "Service") || *sget(v, "ServiceSubset")))
			return weft_errf(err, WEFT_EINVAL,
					 "Failover.%s.Targets: cannot be set with Service or ServiceSubset", k);
		pathf(ctx, "Failover.%s", k);
		if ((rc = validate_target(v, ctx, e, 0, err)) != WEFT_OK)
			return rc;
		json_array_foreach(json_object_get(v, "Targets"), i, t) {
			pathf(ctx, "Failover.%s.Targets[%zu]", k, i);
			if (*sget(t, "Partition") && *sget(t, "Datacenter"))
				return weft_errf(err, WEFT_EINVAL,
						 "%s.Partition: cannot be set with Datacenter", ctx);
			if ((rc = validate_target(t, ctx, e, 1, err)) != WEFT_OK)
				return rc;
		}
		json_array_foreach(dcs, i, t) {
			if (json_string_length(t) == 0)
				return weft_errf(err, WEFT_EINVAL,
						 "Failover.%s.Datacenters[%zu]: must not be empty", k, i);
		}
	}
	if (lb) {
		const char *pol = sget(lb, "Policy");
		int hash_based = !strcmp(pol, "ring_hash") || !strcmp(pol, "maglev");
		json_t *rh = oget(lb, "RingHashConfig"), *hp;

		if (rh && strcmp(pol, "ring_hash"))
			return weft_errf(err, WEFT_EINVAL,
					 "LoadBalancer.RingHashConfig: only with Policy \"ring_hash\"");
		if (rh && json_integer_value(json_object_get(rh, "MaximumRingSize")) &&
		    json_integer_value(json_object_get(rh, "MinimumRingSize")) >
			    json_integer_value(json_object_get(rh, "MaximumRingSize")))
			return weft_errf(err, WEFT_EINVAL,
					 "LoadBalancer.RingHashConfig.MinimumRingSize: greater than MaximumRingSize");
		if (oget(lb, "LeastRequestConfig") && strcmp(pol, "least_request"))
			return weft_errf(err, WEFT_EINVAL,
					 "LoadBalancer.LeastRequestConfig: only with Policy \"least_request\"");
		if (alen(lb, "HashPolicies") && !hash_based)
			return weft_errf(err, WEFT_EINVAL,
					 "LoadBalancer.HashPolicies: only with Policy \"ring_hash\" or \"maglev\"");
		json_array_foreach(json_object_get(lb, "HashPolicies"), i, hp) {
			const char *field = sget(hp, "Field"), *fv = sget(hp, "FieldValue");
			json_t *cc = oget(hp, "CookieConfig");

			pathf(ctx, "LoadBalancer.HashPolicies[%zu]", i);
			if (json_is_true(json_object_get(hp, "SourceIP")) && (*field || *fv))
				return weft_errf(err, WEFT_EINVAL,
						 "%s.SourceIP: cannot be set with Field or FieldValue", ctx);
			if (*field && *fv == '\0')
				return weft_errf(err, WEFT_EINVAL, "%s.FieldValue: is required with Field",
						 ctx);
			if (*fv && *field == '\0')
				return weft_errf(err, WEFT_EINVAL, "%s.Field: is required with FieldValue",
						 ctx);
			if (cc && strcmp(field, "cookie"))
				return weft_errf(err, WEFT_EINVAL,
						 "%s.CookieConfig: only with Field \"cookie\"", ctx);
			if (cc && json_is_true(json_object_get(cc, "Session")) &&
			    strcmp(sget(cc, "TTL"), "") && strcmp(sget(cc, "TTL"), "0s"))
				return weft_errf(err, WEFT_EINVAL,
						 "%s.CookieConfig.TTL: a session cookie has no TTL", ctx);
		}
	}
	return WEFT_OK;
}

static int validate_intentions(json_t *e, char **err)
{
	json_t *sources = json_object_get(e, "Sources"), *s, *t;
	size_t i, j;

	json_array_foreach(sources, i, s) {
		const char *name = sget(s, "Name");
		json_t *perms = json_object_get(s, "Permissions");

		if (*name == '\0')
			return weft_errf(err, WEFT_EINVAL, "Sources[%zu].Name: is required", i);
		if (strcmp(name, "*") && !name_valid(name, CONFIG_ENTRY_NAME_MAX))
			return weft_errf(err, WEFT_EINVAL, "Sources[%zu].Name: \"%s\" is not a valid name",
					 i, name);
		if (perms && !json_is_array(perms))
			return weft_errf(err, WEFT_EINVAL,
					 "Sources[%zu].Permissions: must be an array", i);
		if (json_array_size(perms) && *sget(s, "Action"))
			return weft_errf(err, WEFT_EINVAL,
					 "Sources[%zu].Action: must be omitted when Permissions are given", i);
		if (json_array_size(perms) == 0 && *sget(s, "Action") == '\0')
			return weft_errf(err, WEFT_EINVAL,
					 "Sources[%zu].Action: must be \"allow\" or \"deny\" (or give Permissions)",
					 i);
		json_array_foreach(perms, j, t) {
			if (!json_is_object(t))
				return weft_errf(err, WEFT_EINVAL,
						 "Sources[%zu].Permissions[%zu]: must be an object", i, j);
		}
		if (json_string_length(json_object_get(s, "Description")) > 512)
			return weft_errf(err, WEFT_EINVAL,
					 "Sources[%zu].Description: longer than 512 bytes", i);
		for (j = 0; j < i; j++) {
			t = json_array_get(sources, j);
			if (!strcmp(name, sget(t, "Name")) && !strcmp(sget(s, "Peer"), sget(t, "Peer")) &&
			    !strcmp(sget(s, "Namespace"), sget(t, "Namespace")) &&
			    !strcmp(sget(s, "Partition"), sget(t, "Partition")))
				return weft_errf(err, WEFT_EINVAL,
						 "Sources[%zu]: source \"%s\" is already given in Sources[%zu]",
						 i, name, j);
		}
	}
	return WEFT_OK;
}

static int tls_rank(const char *v)
{
	int i;

	for (i = 1; tls_versions[i]; i++) {
		if (!strcmp(tls_versions[i], v))
			return i;
	}
	return 0; /* "" or TLS_AUTO */
}

static int validate_mesh(json_t *e, char **err)
{
	static const char *const dirs[] = { "Incoming", "Outgoing", NULL };
	json_t *tls = oget(e, "TLS"), *d, *c;
	size_t i, k;

	if (*sget(e, "Name") && strcmp(sget(e, "Name"), "mesh"))
		return weft_errf(err, WEFT_EINVAL,
				 "Name: \"%s\" is not supported, the mesh entry is named \"mesh\"",
				 sget(e, "Name"));
	json_object_set_new(e, "Name", json_string("mesh"));
	for (k = 0; dirs[k]; k++) {
		int min, max;

		d = oget(tls, dirs[k]);
		if (d == NULL)
			continue;
		min = tls_rank(sget(d, "TLSMinVersion"));
		max = tls_rank(sget(d, "TLSMaxVersion"));
		if (min && max && min > max)
			return weft_errf(err, WEFT_EINVAL,
					 "TLS.%s.TLSMinVersion: %s is above TLSMaxVersion %s", dirs[k],
					 sget(d, "TLSMinVersion"), sget(d, "TLSMaxVersion"));
		json_array_foreach(json_object_get(d, "CipherSuites"), i, c) {
			if (!in_set(cipher_suites, json_string_value(c)))
				return weft_errf(err, WEFT_EINVAL,
						 "TLS.%s.CipherSuites[%zu]: \"%s\" is not a supported cipher suite",
						 dirs[k], i, json_string_value(c));
		}
		if (alen(d, "CipherSuites") && min == tls_rank("TLSv1_3"))
			return weft_errf(err, WEFT_EINVAL,
					 "TLS.%s.CipherSuites: not configurable with TLSv1_3 as the minimum (TLS 1.3 suites are fixed)",
					 dirs[k]);
	}
	return WEFT_OK;
}

struct kind {
	const char *name;
	const struct field *table;
	int (*validate)(json_t *e, char **err);
};

static const struct kind kinds[] = {
	{ SD, t_service_defaults, validate_service_defaults },
	{ PD, t_proxy_defaults, validate_proxy_defaults },
	{ ROUTER, t_router, validate_router },
	{ SPLITTER, t_splitter, validate_splitter },
	{ RESOLVER, t_resolver, validate_resolver },
	{ INTENTIONS, t_intentions, validate_intentions },
	{ MESH, t_mesh, validate_mesh },
	{ NULL, NULL, NULL },
};

static const struct kind *kind_find(const char *name)
{
	const struct kind *k;

	for (k = kinds; k->name; k++) {
		if (!strcmp(k->name, name))
			return k;
	}
	return NULL;
}

int config_entry_kind_valid(const char *kind)
{
	return kind && kind_find(kind) != NULL;
}

int config_entry_decode(json_t *in, json_t **out, char **err)
{
	const struct kind *k;
	json_t *kv = NULL, *v, *e = NULL;
	const char *key;
	int rc;

	*out = NULL;
	if (!json_is_object(in))
		return weft_errf(err, WEFT_EINVAL, "config entry: must be an object");
	json_object_foreach(in, key, v) {
		if (name_fold_eq(key, "Kind")) {
			kv = v;
			break;
		}
	}
	if (kv == NULL || (json_is_string(kv) && json_string_length(kv) == 0))
		return weft_errf(err, WEFT_EINVAL, "Kind: is required");
	if (!json_is_string(kv))
		return weft_errf(err, WEFT_EINVAL, "Kind: must be a string");
	k = kind_find(json_string_value(kv));
	if (k == NULL)
		return weft_errf(err, WEFT_EINVAL,
				 "Kind: unknown kind \"%s\" (service-defaults, proxy-defaults, service-router, service-splitter, service-resolver, service-intentions or mesh)",
				 json_string_value(kv));
	e = json_object();
	if (e == NULL)
		return WEFT_ENOMEM;
	if ((rc = decode_obj(in, k->table, NULL, e, err)) != WEFT_OK)
		goto out;
	json_object_set_new(e, "Kind", json_string(k->name));
	if (strcmp(k->name, MESH) && (rc = check_name(k->name, sget(e, "Name"), err)) != WEFT_OK)
		goto out;
	if ((rc = k->validate(e, err)) != WEFT_OK)
		goto out;
	*out = json_object();
	json_object_set(*out, "Kind", json_object_get(e, "Kind"));
	json_object_set(*out, "Name", json_object_get(e, "Name"));
	json_object_update_missing(*out, e);
out:
	json_decref(e);
	return rc;
}

int config_entry_decode_file(const char *data, size_t len, const char *file, json_t **out,
			     char **err)
{
	struct yamlx_doc *doc = NULL;
	json_t *all = NULL, *e;
	char *msg = NULL;
	size_t i;
	int rc;

	*out = NULL;
	if ((rc = yamlx_parse(data, len, file, &doc, err)) != WEFT_OK)
		return rc;
	all = json_array();
	if (all == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < yamlx_count(doc); i++) {
		if (json_is_null(yamlx_root(doc, i)))
			continue;
		if ((rc = config_entry_decode(yamlx_root(doc, i), &e, &msg)) != WEFT_OK) {
			char *located = yamlx_error(doc, i, msg ? msg : "invalid");

			weft_errf(err, rc, "%s", located ? located : msg);
			free(located);
			goto out;
		}
		json_array_append_new(all, e);
	}
	if (json_array_size(all) == 0) {
		rc = weft_errf(err, WEFT_EINVAL, "%s: no config entry in the file", yamlx_file(doc));
		goto out;
	}
	*out = all;
	all = NULL;
out:
	free(msg);
	json_decref(all);
	yamlx_free(doc);
	return rc;
}

const char *config_entry_kind(const json_t *entry)
{
	return sget(entry, "Kind");
}

const char *config_entry_name(const json_t *entry)
{
	return sget(entry, "Name");
}

json_t *config_entry_intention_sources(const json_t *entry)
{
	if (strcmp(sget(entry, "Kind"), INTENTIONS))
		return NULL;
	return json_object_get(entry, "Sources");
}

/* ---- Cross-entry checks: a discovery chain compiled per service ---- */

#define CHAIN_MAX_STEPS 64
#define NAME_BUF 300

enum chain_err { E_NONE, E_L7, E_MISMATCH, E_SUBSET, E_LOOP };

struct blame {
	const char *kind;   /* entry whose field led here, or NULL */
	char name[NAME_BUF];
	char path[PATH_MAX_LEN];
};

struct overlay {
	const struct config_entry_lookup *lk;
	const char *kind, *name;
	json_t *entry; /* the proposed entry; NULL when deleting */
	int touched;   /* the chain read (kind, name) */
};

struct chain {
	struct overlay *ov;
	const char *service;
	char proto[16], proto_svc[NAME_BUF], proto_src[2 * NAME_BUF];
	int l7;              /* uses a feature that needs an L7 protocol */
	struct blame l7_blame;
	char l7_what[NAME_BUF];
	enum chain_err etype;
	char emsg[1024];
	struct blame eblame;
	const char *split_stack[CHAIN_MAX_STEPS];
	int split_depth;
	int steps;
};

static json_t *ov_get(struct overlay *o, const char *kind, const char *name)
{
	if (!strcmp(kind, o->kind) && !strcmp(name, o->name)) {
		o->touched = 1;
		return json_incref(o->entry);
	}
	return o->lk && o->lk->get ? o->lk->get(o->lk->arg, kind, name) : NULL;
}

static void blame_set(struct blame *b, const char *kind, const char *name, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

static void blame_set(struct blame *b, const char *kind, const char *name, const char *fmt, ...)
{
	va_list ap;

	b->kind = kind;
	snprintf(b->name, sizeof(b->name), "%s", name ? name : "");
	va_start(ap, fmt);
	vsnprintf(b->path, sizeof(b->path), fmt, ap);
	va_end(ap);
}

static int chain_fail(struct chain *c, enum chain_err t, const struct blame *b, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

static int chain_fail(struct chain *c, enum chain_err t, const struct blame *b, const char *fmt,
		      ...)
{
	va_list ap;

	if (c->etype != E_NONE)
		return -1;
	c->etype = t;
	if (b)
		c->eblame = *b;
	else
		memset(&c->eblame, 0, sizeof(c->eblame));
	va_start(ap, fmt);
	vsnprintf(c->emsg, sizeof(c->emsg), fmt, ap);
	va_end(ap);
	return -1;
}

static int http_like(const char *p)
{
	return !strcmp(p, "http") || !strcmp(p, "http2") || !strcmp(p, "grpc");
}

static void service_protocol(struct chain *c, const char *svc, char *proto, size_t psize,
			     char *src, size_t ssize)
{
	json_t *sd = ov_get(c->ov, SD, svc), *pd;
	const char *p;
	size_t i;

	if (sd && *(p = sget(sd, "Protocol"))) {
		snprintf(proto, psize, "%s", p);
		snprintf(src, ssize, "from service-defaults \"%s\" Protocol", svc);
		json_decref(sd);
		return;
	}
	json_decref(sd);
	pd = ov_get(c->ov, PD, "global");
	p = sget(json_object_get(pd, "Config"), "protocol");
	if (*p) {
		snprintf(proto, psize, "%s", p);
		for (i = 0; proto[i]; i++)
			proto[i] = (char)tolower((unsigned char)proto[i]);
		snprintf(src, ssize, "from proxy-defaults \"global\" Config.protocol");
	} else {
		snprintf(proto, psize, "tcp");
		snprintf(src, ssize,
			 "the default: neither service-defaults \"%s\" nor proxy-defaults \"global\" sets one",
			 svc);
	}
	json_decref(pd);
}

static int record_protocol(struct chain *c, const char *svc, const struct blame *b)
{
	char proto[16], src[2 * NAME_BUF];

	service_protocol(c, svc, proto, sizeof(proto), src, sizeof(src));
	if (c->proto[0] == '\0') {
		snprintf(c->proto, sizeof(c->proto), "%s", proto);
		snprintf(c->proto_svc, sizeof(c->proto_svc), "%s", svc);
		snprintf(c->proto_src, sizeof(c->proto_src), "%s", src);
		return 0;
	}
	if (strcmp(c->proto, proto))
		return chain_fail(c, E_MISMATCH, b,
				  "discovery chain \"%s\" mixes protocols: service \"%s\" has \"%s\" (%s) but service \"%s\" has \"%s\" (%s)",
				  c->service, svc, proto, src, c->proto_svc, c->proto, c->proto_src);
	return 0;
}

static void mark_l7(struct chain *c, const struct blame *b, const char *what)
{
	if (c->l7)
		return;
	c->l7 = 1;
	c->l7_blame = *b;
	snprintf(c->l7_what, sizeof(c->l7_what), "%s", what);
}

/* Consul's target rewrite: a new service resets the subset. */
static void rewrite(char *svc, char *sub, const char *nsvc, const char *nsub)
{
	if (*nsvc && strcmp(nsvc, svc)) {
		snprintf(svc, NAME_BUF, "%s", nsvc);
		sub[0] = '\0';
	}
	if (*nsub)
		snprintf(sub, NAME_BUF, "%s", nsub);
}

static int resolve(struct chain *c, const char *svc0, const char *sub0, const struct blame *b0,
		   int for_failover)
{
	char svc[NAME_BUF], sub[NAME_BUF], hist[CHAIN_MAX_STEPS][2 * NAME_BUF + 2];
	char loop[1024];
	struct blame b = *b0;
	json_t *res = NULL, *f, *t;
	int nhist = 0, rc = 0, i;
	size_t j;

	snprintf(svc, sizeof(svc), "%s", svc0);
	snprintf(sub, sizeof(sub), "%s", sub0);
	for (;;) {
		json_t *r;
		const char *ds;

		json_decref(res);
		res = NULL;
		if (++c->steps > 4096 || nhist >= CHAIN_MAX_STEPS) {
			rc = chain_fail(c, E_LOOP, &b, "discovery chain \"%s\" is too long", c->service);
			goto out;
		}
		if ((rc = record_protocol(c, svc, &b)) != 0)
			goto out;
		res = ov_get(c->ov, RESOLVER, svc);
		snprintf(hist[nhist], sizeof(hist[0]), "%s%s%s", *sub ? sub : "", *sub ? "." : "",
			 svc);
		for (i = 0; i < nhist; i++) {
			if (!strcmp(hist[i], hist[nhist]))
				break;
		}
		if (i < nhist) {
			size_t n = 0;

			for (i = 0; i <= nhist && n < sizeof(loop) - 1; i++)
				n += (size_t)snprintf(loop + n, sizeof(loop) - n, "%s%s",
						      i ? " -> " : "", hist[i]);
			rc = chain_fail(c, E_LOOP, &b, "circular resolver redirect: %s", loop);
			goto out;
		}
		nhist++;
		r = oget(res, "Redirect");
		if (r && *sget(r, "Peer") == '\0' && *sget(r, "SamenessGroup") == '\0') {
			char nsvc[NAME_BUF], nsub[NAME_BUF];

			snprintf(nsvc, sizeof(nsvc), "%s", svc);
			snprintf(nsub, sizeof(nsub), "%s", sub);
			rewrite(nsvc, nsub, sget(r, "Service"), sget(r, "ServiceSubset"));
			if (strcmp(nsvc, svc) || strcmp(nsub, sub)) {
				blame_set(&b, RESOLVER, svc, "Redirect");
				snprintf(svc, sizeof(svc), "%s", nsvc);
				snprintf(sub, sizeof(sub), "%s", nsub);
				continue;
			}
		} else if (r) {
			goto out; /* resolved in a peer cluster: nothing to check here */
		}
		ds = sget(res, "DefaultSubset");
		if (*sub == '\0' && *ds) {
			blame_set(&b, RESOLVER, svc, "DefaultSubset");
			snprintf(sub, sizeof(sub), "%s", ds);
			continue;
		}
		break;
	}
	if (*sub && !is_subset(res, sub)) {
		rc = chain_fail(c, E_SUBSET, &b, "service \"%s\" has no subset \"%s\"%s", svc, sub,
				res ? " in its service-resolver" : " (it has no service-resolver)");
		goto out;
	}
	json_array_foreach(json_object_get(oget(res, "LoadBalancer"), "HashPolicies"), j, t) {
		if (*sget(t, "Field")) {
			struct blame hb;

			blame_set(&hb, RESOLVER, svc, "LoadBalancer.HashPolicies[%zu].Field", j);
			mark_l7(c, &hb, "a hash policy on a header, cookie or query parameter");
			break;
		}
	}
	if (for_failover)
		goto out;
	f = oget(oget(res, "Failover"), sub);
	if (f == NULL)
		f = oget(oget(res, "Failover"), "*");
	if (f && json_array_size(json_object_get(f, "Datacenters")) == 0) {
		json_t *targets = json_object_get(f, "Targets");
		size_t n = json_array_size(targets) ? json_array_size(targets) : 1;

		for (j = 0; j < n && rc == 0; j++) {
			char tsvc[NAME_BUF], tsub[NAME_BUF];
			struct blame fb;

			t = json_array_size(targets) ? json_array_get(targets, j) : f;
			if (*sget(t, "Peer") || *sget(t, "Datacenter"))
				continue;
			snprintf(tsvc, sizeof(tsvc), "%s", svc);
			snprintf(tsub, sizeof(tsub), "%s", sub);
			rewrite(tsvc, tsub, sget(t, "Service"), sget(t, "ServiceSubset"));
			if (!strcmp(tsvc, svc) && !strcmp(tsub, sub))
				continue;
			if (json_array_size(targets))
				blame_set(&fb, RESOLVER, svc, "Failover.%s.Targets[%zu]",
					  json_object_get(oget(res, "Failover"), sub) ? sub : "*", j);
			else
				blame_set(&fb, RESOLVER, svc, "Failover.%s",
					  json_object_get(oget(res, "Failover"), sub) ? sub : "*");
			rc = resolve(c, tsvc, tsub, &fb, 1);
		}
	}
out:
	json_decref(res);
	return rc;
}

static int split_or_resolve(struct chain *c, const char *svc, const struct blame *b)
{
	json_t *sp = ov_get(c->ov, SPLITTER, svc), *s;
	struct blame sb;
	size_t j;
	int i, rc = 0;

	if (sp == NULL)
		return resolve(c, svc, "", b, 0);
	for (i = 0; i < c->split_depth; i++) {
		if (!strcmp(c->split_stack[i], svc)) {
			rc = chain_fail(c, E_LOOP, b, "circular service-splitter reference through \"%s\"",
					svc);
			goto out;
		}
	}
	if (c->split_depth >= CHAIN_MAX_STEPS) {
		rc = chain_fail(c, E_LOOP, b, "service-splitters nest too deep at \"%s\"", svc);
		goto out;
	}
	c->split_stack[c->split_depth++] = svc;
	blame_set(&sb, SPLITTER, svc, "Splits");
	mark_l7(c, &sb, "a service-splitter");
	json_array_foreach(json_object_get(sp, "Splits"), j, s) {
		const char *s2 = *sget(s, "Service") ? sget(s, "Service") : svc;
		const char *sub = sget(s, "ServiceSubset");

		blame_set(&sb, SPLITTER, svc, "Splits[%zu].%s", j, *sub ? "ServiceSubset" : "Service");
		if (strcmp(s2, svc) && *sub == '\0')
			rc = split_or_resolve(c, s2, &sb);
		else
			rc = resolve(c, s2, sub, &sb, 0);
		if (rc)
			break;
	}
	c->split_depth--;
out:
	json_decref(sp);
	return rc;
}

static int chain_compile(struct chain *c)
{
	json_t *router = ov_get(c->ov, ROUTER, c->service), *route;
	struct blame b;
	size_t i;
	int rc = 0;

	memset(&b, 0, sizeof(b));
	if (router) {
		blame_set(&b, ROUTER, c->service, "Routes");
		mark_l7(c, &b, "a service-router");
		if ((rc = record_protocol(c, c->service, &b)) != 0)
			goto out;
		json_array_foreach(json_object_get(router, "Routes"), i, route) {
			json_t *d = oget(route, "Destination");
			const char *svc = *sget(d, "Service") ? sget(d, "Service") : c->service;
			const char *sub = sget(d, "ServiceSubset");

			blame_set(&b, ROUTER, c->service, "Routes[%zu].Destination%s", i,
				  *sub ? ".ServiceSubset" : *sget(d, "Service") ? ".Service" : "");
			rc = *sub ? resolve(c, svc, sub, &b, 0) : split_or_resolve(c, svc, &b);
			if (rc)
				goto out;
		}
		blame_set(&b, ROUTER, c->service, "Name");
	}
	if ((rc = split_or_resolve(c, c->service, &b)) != 0)
		goto out;
	if (c->l7 && !http_like(c->proto))
		rc = chain_fail(c, E_L7, &c->l7_blame,
				"%s for \"%s\" needs protocol http, http2 or grpc, but service \"%s\" has protocol \"%s\" (%s)",
				c->l7_what, c->l7_blame.name, c->proto_svc, c->proto, c->proto_src);
out:
	json_decref(router);
	return rc;
}

/* Services whose chains a change may affect. */
struct names {
	char **v;
	size_t n, cap;
};

static void names_add(struct names *ns, const char *s)
{
	size_t i;
	char **v;

	if (s == NULL || *s == '\0' || ns->n >= 100000)
		return;
	for (i = 0; i < ns->n; i++) {
		if (!strcmp(ns->v[i], s))
			return;
	}
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 16;

		v = realloc(ns->v, cap * sizeof(*v));
		if (v == NULL)
			return;
		ns->v = v;
		ns->cap = cap;
	}
	if ((ns->v[ns->n] = strdup(s)) != NULL)
		ns->n++;
}

static void names_free(struct names *ns)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

static const char *default_field(const char *kind, json_t *entry, enum chain_err t)
{
	if (!strcmp(kind, SD))
		return t == E_L7 || t == E_MISMATCH ? "Protocol" : "Name";
	if (!strcmp(kind, PD))
		return t == E_L7 || t == E_MISMATCH ? "Config.protocol" : "Name";
	if (!strcmp(kind, ROUTER))
		return "Routes";
	if (!strcmp(kind, SPLITTER))
		return "Splits";
	if (!strcmp(kind, RESOLVER)) {
		if (t == E_SUBSET)
			return "Subsets";
		if (t == E_LOOP || oget(entry, "Redirect"))
			return "Redirect";
	}
	return "Name";
}

/* Index of the first source with L7 Permissions, or -1. */
static long l7_source(const json_t *ixn)
{
	json_t *s;
	size_t i;

	if (ixn == NULL || !strcmp(sget(ixn, "Name"), "*"))
		return -1;
	json_array_foreach(json_object_get(ixn, "Sources"), i, s) {
		if (json_array_size(json_object_get(s, "Permissions")))
			return (long)i;
	}
	return -1;
}

/* Consul refuses L7 intention permissions on a service whose protocol is
 * not HTTP-like, whether the intentions or the protocol change. */
static int check_l7_intentions(const char *kind, const char *name, json_t *entry,
			       struct chain *c, json_t *ixn, char **err)
{
	long i = l7_source(ixn);

	if (i < 0 || http_like(c->proto))
		return WEFT_OK;
	if (!strcmp(kind, INTENTIONS))
		return weft_errf(err, WEFT_EINVAL,
				 "Sources[%ld].Permissions: service \"%s\" has protocol \"%s\" (%s), which does not allow L7 permissions; set its protocol to http, http2 or grpc",
				 i, c->service, c->proto, c->proto_src);
	if (entry == NULL)
		return weft_errf(err, WEFT_EINVAL,
				 "%s \"%s\": cannot delete: service \"%s\" would have protocol \"%s\" (%s), but service-intentions \"%s\" Sources[%ld].Permissions need http, http2 or grpc",
				 kind, name, c->service, c->proto, c->proto_src, c->service, i);
	return weft_errf(err, WEFT_EINVAL,
			 "%s: service \"%s\" would have protocol \"%s\" (%s), but service-intentions \"%s\" Sources[%ld].Permissions need http, http2 or grpc",
			 default_field(kind, entry, E_L7), c->service, c->proto, c->proto_src,
			 c->service, i);
}

static int check_chains(const char *kind, const char *name, json_t *entry,
			const struct config_entry_lookup *lk, char **err)
{
	static const char *const chain_kinds[] = { ROUTER, SPLITTER, RESOLVER, SD, INTENTIONS,
						   NULL };
	struct overlay ov = { lk, kind, name, entry, 0 };
	struct names ns = { NULL, 0, 0 };
	struct chain *c = NULL;
	size_t i, j;
	int rc = WEFT_OK;

	if (strcmp(kind, SD) && strcmp(kind, PD) && strcmp(kind, ROUTER) &&
	    strcmp(kind, SPLITTER) && strcmp(kind, RESOLVER) &&
	    (strcmp(kind, INTENTIONS) || l7_source(entry) < 0))
		return WEFT_OK;
	if (strcmp(kind, PD))
		names_add(&ns, name);
	if (lk && lk->list && strcmp(kind, INTENTIONS)) {
		const char *const *k;

		for (k = chain_kinds; *k; k++) {
			json_t *all = lk->list(lk->arg, *k), *e;

			json_array_foreach(all, j, e)
				names_add(&ns, sget(e, "Name"));
			json_decref(all);
		}
	}
	c = malloc(sizeof(*c));
	if (c == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < ns.n; i++) {
		memset(c, 0, sizeof(*c));
		c->ov = &ov;
		c->service = ns.v[i];
		ov.touched = 0;
		if (chain_compile(c) == 0) {
			json_t *ixn;

			if (!ov.touched && strcmp(kind, INTENTIONS))
				continue;
			ixn = ov_get(&ov, INTENTIONS, c->service);
			rc = check_l7_intentions(kind, name, entry, c, ixn, err);
			json_decref(ixn);
			if (rc != WEFT_OK)
				goto out;
			continue;
		}
		if (!ov.touched)
			continue;
		if (entry == NULL && c->eblame.kind) {
			rc = weft_errf(err, WEFT_EINVAL,
				       "%s \"%s\": cannot delete: %s (%s \"%s\" %s depends on it)", kind,
				       name, c->emsg, c->eblame.kind, c->eblame.name, c->eblame.path);
		} else if (entry == NULL) {
			rc = weft_errf(err, WEFT_EINVAL, "%s \"%s\": cannot delete: %s", kind, name,
				       c->emsg);
		} else if (c->eblame.kind && !strcmp(c->eblame.kind, kind) &&
			   !strcmp(c->eblame.name, name)) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: %s", c->eblame.path, c->emsg);
		} else if (c->eblame.kind) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: %s (at %s \"%s\" %s)",
				       default_field(kind, entry, c->etype), c->emsg, c->eblame.kind,
				       c->eblame.name, c->eblame.path);
		} else {
			rc = weft_errf(err, WEFT_EINVAL, "%s: %s", default_field(kind, entry, c->etype),
				       c->emsg);
		}
		goto out;
	}
out:
	free(c);
	names_free(&ns);
	return rc;
}

int config_entry_check_write(const char *kind, const char *name, json_t *entry,
			     const struct config_entry_lookup *lookup, char **err)
{
	if (!config_entry_kind_valid(kind))
		return weft_errf(err, WEFT_EINVAL, "Kind: unknown kind \"%s\"", kind ? kind : "");
	if (!json_is_object(entry) || strcmp(sget(entry, "Kind"), kind) ||
	    strcmp(sget(entry, "Name"), name))
		return weft_errf(err, WEFT_EINVAL, "Name: the entry is not %s \"%s\"", kind, name);
	if (!strcmp(kind, SPLITTER)) {
		/* Weights were checked when decoding; an entry built by hand is
		 * checked again. */
		json_t *copy = json_deep_copy(entry);
		int rc = validate_splitter(copy, err);

		json_decref(copy);
		if (rc != WEFT_OK)
			return rc;
	}
	return check_chains(kind, name, entry, lookup, err);
}

int config_entry_check_delete(const char *kind, const char *name,
			      const struct config_entry_lookup *lookup, char **err)
{
	if (!config_entry_kind_valid(kind))
		return weft_errf(err, WEFT_EINVAL, "Kind: unknown kind \"%s\"", kind ? kind : "");
	return check_chains(kind, name, NULL, lookup, err);
}
