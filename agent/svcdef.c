/* Consul service and check definitions into the agent's canonical form
 * (svcdef.h). Keys are matched by their normalised form (lower case, no '_'
 * or '-'), so that the snake_case of Consul's files and the PascalCase of its
 * API both work; the output always uses the API's spelling. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "err.h"
#include "jsonx.h"
#include "svcdef.h"
#include "util.h"
#include "yamlx.h"

#define NAME_MAX_LEN 128
#define TEXT_MAX_LEN 4096
#define MAX_CHECKS 32
#define MAX_UPSTREAMS 256
#define MAX_TAGS 64
#define FILE_MAX (1024 * 1024)
#define MAX_FILES 1024

/* ---- keys ---- */

static void norm(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; *in && n + 1 < size; in++) {
		if (*in == '_' || *in == '-')
			continue;
		out[n++] = (char)tolower((unsigned char)*in);
	}
	out[n] = '\0';
}

static int key_is(const char *key, const char *canon)
{
	char a[64], b[64];

	norm(key, a, sizeof(a));
	norm(canon, b, sizeof(b));
	return strcmp(a, b) == 0;
}

/* The value of the member whose key normalises to canon's, or NULL. */
static json_t *get(json_t *obj, const char *canon)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		if (key_is(k, canon))
			return json_is_null(v) ? NULL : v;
	}
	return NULL;
}

static int set_path(char *buf, size_t size, const char *ctx, const char *name)
{
	if (ctx && ctx[0])
		snprintf(buf, size, "%.180s.%.60s", ctx, name);
	else
		snprintf(buf, size, "%s", name);
	return 0;
}

/* Refuses members outside allowed (NULL-terminated canonical names) and two
 * members naming the same field ("Port" and "port"). */
static int check_keys(json_t *obj, const char *ctx, const char *const *allowed, char **err)
{
	const char *k, *k2;
	json_t *v, *v2;
	int ok;

	if (!json_is_object(obj))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx && ctx[0] ? ctx : "body");
	json_object_foreach(obj, k, v) {
		ok = 0;
		for (size_t i = 0; allowed[i]; i++)
			if (key_is(k, allowed[i])) {
				ok = 1;
				break;
			}
		if (!ok)
			return weft_errf(err, WEFT_EINVAL, "%s%s%s: unknown field", ctx && ctx[0] ? ctx : "",
					 ctx && ctx[0] ? "." : "", k);
		json_object_foreach(obj, k2, v2) {
			if (k2 == k)
				break;
			if (key_is(k, k2))
				return weft_errf(err, WEFT_EINVAL, "%s%s%s: given twice (also as \"%s\")",
						 ctx && ctx[0] ? ctx : "", ctx && ctx[0] ? "." : "", k, k2);
		}
	}
	return WEFT_OK;
}

/* ---- typed fields: f is the canonical name, the error uses it ---- */

static int f_str(json_t *obj, const char *ctx, const char *f, size_t max, const char **out,
		 char **err)
{
	json_t *v = get(obj, f);
	char p[256];

	if (v == NULL)
		return WEFT_OK;
	set_path(p, sizeof(p), ctx, f);
	if (!json_is_string(v))
		return weft_errf(err, WEFT_EINVAL, "%s: must be a string", p);
	if (json_string_length(v) > max)
		return weft_errf(err, WEFT_EINVAL, "%s: longer than %zu bytes", p, max);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return weft_errf(err, WEFT_EINVAL, "%s: must not contain NUL characters", p);
	*out = json_string_value(v);
	return WEFT_OK;
}

static int f_int(json_t *obj, const char *ctx, const char *f, long long min, long long max,
		 long long *out, char **err)
{
	json_t *v = get(obj, f);
	char p[256];

	if (v == NULL)
		return WEFT_OK;
	set_path(p, sizeof(p), ctx, f);
	if (!json_is_integer(v))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an integer", p);
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return weft_errf(err, WEFT_EINVAL, "%s: %lld is out of range [%lld, %lld]", p,
				 (long long)json_integer_value(v), min, max);
	*out = json_integer_value(v);
	return WEFT_OK;
}

static int f_bool(json_t *obj, const char *ctx, const char *f, int *out, char **err)
{
	json_t *v = get(obj, f);
	char p[256];

	if (v == NULL)
		return WEFT_OK;
	set_path(p, sizeof(p), ctx, f);
	if (!json_is_boolean(v))
		return weft_errf(err, WEFT_EINVAL, "%s: must be true or false", p);
	*out = json_is_true(v);
	return WEFT_OK;
}

static int f_dur(json_t *obj, const char *ctx, const char *f, long long *ms, char **err)
{
	json_t *v = get(obj, f), *tmp;
	char p[256];
	int rc;

	if (v == NULL)
		return WEFT_OK;
	set_path(p, sizeof(p), ctx, f);
	tmp = json_pack("{sO}", p, v);
	rc = jx_duration_ms(tmp, NULL, p, ms, err);
	json_decref(tmp);
	if (rc == WEFT_OK && *ms < 0)
		return weft_errf(err, WEFT_EINVAL, "%s: must not be negative", p);
	return rc;
}

/* An array of strings, copied. */
static int f_strs(json_t *obj, const char *ctx, const char *f, size_t max_items, json_t **out,
		  char **err)
{
	json_t *v = get(obj, f), *e;
	size_t i;
	char p[256];

	*out = NULL;
	if (v == NULL)
		return WEFT_OK;
	set_path(p, sizeof(p), ctx, f);
	if (!json_is_array(v))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an array of strings", p);
	if (json_array_size(v) > max_items)
		return weft_errf(err, WEFT_EINVAL, "%s: at most %zu items", p, max_items);
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || json_string_length(e) > TEXT_MAX_LEN)
			return weft_errf(err, WEFT_EINVAL, "%s[%zu]: must be a string of at most %d bytes",
					 p, i, TEXT_MAX_LEN);
	}
	*out = json_deep_copy(v);
	return WEFT_OK;
}

/* An object of strings (Meta), copied with its keys as given. */
static int f_strmap(json_t *obj, const char *ctx, const char *f, json_t **out, char **err)
{
	json_t *v = get(obj, f), *e;
	const char *k;
	char p[256];

	*out = NULL;
	if (v == NULL)
		return WEFT_OK;
	set_path(p, sizeof(p), ctx, f);
	if (!json_is_object(v))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object of strings", p);
	if (json_object_size(v) > 64)
		return weft_errf(err, WEFT_EINVAL, "%s: at most 64 keys", p);
	json_object_foreach(v, k, e) {
		if (!json_is_string(e) || json_string_length(e) > 512 || strlen(k) > 128)
			return weft_errf(err, WEFT_EINVAL,
					 "%s.%s: must be a string of at most 512 bytes (keys at most 128)", p, k);
	}
	*out = json_deep_copy(v);
	return WEFT_OK;
}

static void put_str(json_t *o, const char *k, const char *v)
{
	if (v && v[0])
		json_object_set_new(o, k, json_string(v));
}

static void put_dur(json_t *o, const char *k, long long ms)
{
	char text[64];

	if (ms > 0) {
		duration_format(ms, text, sizeof(text));
		json_object_set_new(o, k, json_string(text));
	}
}

/* ---- checks ---- */

static const char *const check_keys_allowed[] = {
	"ID", "CheckID", "Name", "Notes", "ServiceID", "HTTP", "Method", "Header", "Body",
	"TLSSkipVerify", "TCP", "UDP", "GRPC", "GRPCUseTLS", "H2PING", "H2PingUseTLS", "TTL", "Args", "ScriptArgs", "Interval",
	"Timeout", "DeregisterCriticalServiceAfter", "Status", "AliasService", "SuccessBeforePassing",
	"FailuresBeforeWarning", "FailuresBeforeCritical", NULL
};

static int valid_hostport(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (colon == NULL || colon == s)
		return 0;
	port = strtol(colon + 1, &end, 10);
	return *end == '\0' && colon[1] != '\0' && port >= 1 && port <= 65535;
}

int svcdef_decode_check(json_t *def, const char *ctx, const char *service_id, int index,
			json_t **out, char **err)
{
	const char *id = NULL, *check_id = NULL, *name = NULL, *notes = NULL, *sid = NULL;
	const char *http = NULL, *method = NULL, *body = NULL, *tcp = NULL, *status = "critical";
	const char *alias = NULL, *type = NULL, *udp = NULL, *grpc = NULL, *h2ping = NULL;
	long long interval = 0, timeout = 0, ttl = 0, dereg = 0, succ = 0, fwarn = 0, fcrit = 0;
	int skip = 0, grpc_tls = 0, h2ping_tls = 1;   /* (Consul: H2PING uses TLS unless told) */
	json_t *args = NULL, *sargs = NULL, *header, *c = NULL, *e;
	char p[256], idbuf[300];
	const char *k;
	int rc = WEFT_EINVAL;

	*out = NULL;
	if (check_keys(def, ctx, check_keys_allowed, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (f_str(def, ctx, "ID", NAME_MAX_LEN, &id, err) || f_str(def, ctx, "CheckID", NAME_MAX_LEN, &check_id, err) ||
	    f_str(def, ctx, "Name", NAME_MAX_LEN, &name, err) || f_str(def, ctx, "Notes", TEXT_MAX_LEN, &notes, err) ||
	    f_str(def, ctx, "ServiceID", NAME_MAX_LEN, &sid, err) || f_str(def, ctx, "HTTP", TEXT_MAX_LEN, &http, err) ||
	    f_str(def, ctx, "Method", 16, &method, err) || f_str(def, ctx, "Body", TEXT_MAX_LEN, &body, err) ||
	    f_bool(def, ctx, "TLSSkipVerify", &skip, err) || f_str(def, ctx, "TCP", NAME_MAX_LEN, &tcp, err) ||
	    f_dur(def, ctx, "TTL", &ttl, err) || f_dur(def, ctx, "Interval", &interval, err) ||
	    f_dur(def, ctx, "Timeout", &timeout, err) ||
	    f_dur(def, ctx, "DeregisterCriticalServiceAfter", &dereg, err) ||
	    f_str(def, ctx, "Status", 16, &status, err) || f_str(def, ctx, "AliasService", NAME_MAX_LEN, &alias, err) ||
	    f_strs(def, ctx, "Args", 64, &args, err) || f_strs(def, ctx, "ScriptArgs", 64, &sargs, err) ||
	    f_str(def, ctx, "UDP", NAME_MAX_LEN, &udp, err) ||
	    f_str(def, ctx, "GRPC", NAME_MAX_LEN, &grpc, err) ||
	    f_bool(def, ctx, "GRPCUseTLS", &grpc_tls, err) ||
	    f_str(def, ctx, "H2PING", NAME_MAX_LEN, &h2ping, err) ||
	    f_bool(def, ctx, "H2PingUseTLS", &h2ping_tls, err) ||
	    f_int(def, ctx, "SuccessBeforePassing", 0, 1000, &succ, err) ||
	    f_int(def, ctx, "FailuresBeforeWarning", 0, 1000, &fwarn, err) ||
	    f_int(def, ctx, "FailuresBeforeCritical", 0, 1000, &fcrit, err))
		goto out;
	/* (an empty string is no check of that kind, as Consul's zero value) */
	if (udp && !udp[0])
		udp = NULL;
	if (grpc && !grpc[0])
		grpc = NULL;
	if (h2ping && !h2ping[0])
		h2ping = NULL;
	if (id && check_id && strcmp(id, check_id) != 0) {
		set_path(p, sizeof(p), ctx, "CheckID");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" differs from ID \"%s\"", p, check_id, id);
		goto out;
	}
	if (check_id)
		id = check_id;
	if (sid && sid[0] && service_id[0] && strcmp(sid, service_id) != 0) {
		set_path(p, sizeof(p), ctx, "ServiceID");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not the service it is defined in (\"%s\")", p,
			  sid, service_id);
		goto out;
	}
	if (service_id[0] == '\0' && sid)
		service_id = sid;
	if (args && sargs) {
		set_path(p, sizeof(p), ctx, "ScriptArgs");
		weft_errf(err, WEFT_EINVAL, "%s: give Args or ScriptArgs, not both", p);
		goto out;
	}
	if (sargs) {
		args = sargs;
		sargs = NULL;
	}
	if (ttl > 0)
		type = "ttl";
	else if (http)
		type = "http";
	else if (tcp)
		type = "tcp";
	else if (udp)
		type = "udp";
	else if (grpc)
		type = "grpc";
	else if (h2ping)
		type = "h2ping";
	else if (args && json_array_size(args) > 0)
		type = "script";
	else if (alias)
		type = "alias";
	else {
		weft_errf(err, WEFT_EINVAL,
			  "%s: one of HTTP, TCP, UDP, GRPC, H2PING, TTL, Args or AliasService is required",
			  ctx && ctx[0] ? ctx : "check");
		goto out;
	}
	if ((http != NULL) + (tcp != NULL) + (udp != NULL) + (grpc != NULL) + (h2ping != NULL) +
	    (ttl > 0) + (args != NULL) + (alias != NULL) > 1) {
		weft_errf(err, WEFT_EINVAL,
			  "%s: give only one of HTTP, TCP, UDP, GRPC, H2PING, TTL, Args, AliasService",
			  ctx && ctx[0] ? ctx : "check");
		goto out;
	}
	if (http && strncmp(http, "http://", 7) != 0 && strncmp(http, "https://", 8) != 0) {
		set_path(p, sizeof(p), ctx, "HTTP");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not an http:// or https:// URL", p, http);
		goto out;
	}
	if (tcp && !valid_hostport(tcp)) {
		set_path(p, sizeof(p), ctx, "TCP");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not HOST:PORT", p, tcp);
		goto out;
	}
	if (h2ping && !valid_hostport(h2ping)) {
		set_path(p, sizeof(p), ctx, "H2PING");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not HOST:PORT", p, h2ping);
		goto out;
	}
	if (udp && !valid_hostport(udp)) {
		set_path(p, sizeof(p), ctx, "UDP");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not HOST:PORT", p, udp);
		goto out;
	}
	if (grpc) {
		char hp[NAME_MAX_LEN + 1];
		size_t n = strcspn(grpc, "/");

		snprintf(hp, sizeof(hp), "%.*s", (int)n, grpc);
		if (!valid_hostport(hp)) {
			set_path(p, sizeof(p), ctx, "GRPC");
			weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not HOST:PORT or HOST:PORT/SERVICE",
				  p, grpc);
			goto out;
		}
	}
	if (method) {
		for (const char *m = method; *m; m++)
			if (!isupper((unsigned char)*m)) {
				set_path(p, sizeof(p), ctx, "Method");
				weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not an HTTP method", p, method);
				goto out;
			}
	}
	if ((strcmp(type, "http") == 0 || strcmp(type, "tcp") == 0 || strcmp(type, "script") == 0 ||
	     strcmp(type, "udp") == 0 || strcmp(type, "grpc") == 0 || strcmp(type, "h2ping") == 0) &&
	    interval < 100) {
		set_path(p, sizeof(p), ctx, "Interval");
		weft_errf(err, WEFT_EINVAL, "%s: required for a%s %s check, at least 100ms", p,
			  strcmp(type, "http") == 0 ? "n" : "", type);
		goto out;
	}
	if (strcmp(status, "passing") && strcmp(status, "warning") && strcmp(status, "critical")) {
		set_path(p, sizeof(p), ctx, "Status");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not one of passing, warning, critical", p, status);
		goto out;
	}
	header = get(def, "Header");
	if (header) {
		set_path(p, sizeof(p), ctx, "Header");
		if (!json_is_object(header) || json_object_size(header) > 32) {
			weft_errf(err, WEFT_EINVAL, "%s: must be an object of arrays of strings (at most 32)", p);
			goto out;
		}
		json_object_foreach(header, k, e) {
			size_t i;
			json_t *s;
			if (!json_is_array(e) || json_array_size(e) > 16) {
				weft_errf(err, WEFT_EINVAL, "%s.%s: must be an array of strings", p, k);
				goto out;
			}
			json_array_foreach(e, i, s) {
				if (!json_is_string(s) || json_string_length(s) > 1024 ||
				    strpbrk(json_string_value(s), "\r\n")) {
					weft_errf(err, WEFT_EINVAL, "%s.%s[%zu]: must be a one-line string", p, k, i);
					goto out;
				}
			}
		}
	}
	if (id == NULL || id[0] == '\0') {
		if (service_id[0]) {
			if (index > 0)
				snprintf(idbuf, sizeof(idbuf), "service:%s:%d", service_id, index);
			else
				snprintf(idbuf, sizeof(idbuf), "service:%s", service_id);
			id = idbuf;
		} else if (name && name[0]) {
			id = name;
		} else {
			set_path(p, sizeof(p), ctx, "Name");
			weft_errf(err, WEFT_EINVAL, "%s: required for a node check (or ID)", p);
			goto out;
		}
	}
	if (!name_valid(id, NAME_MAX_LEN) && strncmp(id, "service:", 8) != 0) {
		set_path(p, sizeof(p), ctx, "ID");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not a valid ID (letters, digits, '-', '_', '.')",
			  p, id);
		goto out;
	}
	c = json_object();
	put_str(c, "CheckID", id);
	if (name && name[0])
		put_str(c, "Name", name);
	else if (service_id[0]) {
		char nb[300];
		snprintf(nb, sizeof(nb), "Service '%s' check", service_id);
		put_str(c, "Name", nb);
	} else
		put_str(c, "Name", id);
	put_str(c, "Notes", notes);
	json_object_set_new(c, "ServiceID", json_string(service_id));
	json_object_set_new(c, "Type", json_string(type));
	json_object_set_new(c, "Status", json_string(status));
	put_str(c, "HTTP", http);
	put_str(c, "Method", method);
	if (header)
		json_object_set(c, "Header", header);
	put_str(c, "Body", body);
	if (skip)
		json_object_set_new(c, "TLSSkipVerify", json_true());
	put_str(c, "TCP", tcp);
	put_str(c, "UDP", udp);
	put_str(c, "GRPC", grpc);
	if (grpc_tls)
		json_object_set_new(c, "GRPCUseTLS", json_true());
	if (h2ping) {
		put_str(c, "H2PING", h2ping);
		json_object_set_new(c, "H2PingUseTLS", json_boolean(h2ping_tls));
	}
	put_dur(c, "TTL", ttl);
	if (args)
		json_object_set(c, "Args", args);
	put_str(c, "AliasService", alias);
	put_dur(c, "Interval", interval);
	put_dur(c, "Timeout", timeout);
	put_dur(c, "DeregisterCriticalServiceAfter", dereg);
	if (succ > 0)
		json_object_set_new(c, "SuccessBeforePassing", json_integer(succ));
	if (fwarn > 0)
		json_object_set_new(c, "FailuresBeforeWarning", json_integer(fwarn));
	if (fcrit > 0)
		json_object_set_new(c, "FailuresBeforeCritical", json_integer(fcrit));
	*out = c;
	rc = WEFT_OK;
out:
	json_decref(args);
	json_decref(sargs);
	return rc;
}

/* ---- services ---- */

static const char *const service_keys_allowed[] = {
	"ID", "Name", "Tags", "Address", "Port", "Meta", "Weights", "EnableTagOverride", "Kind",
	"Proxy", "Connect", "Check", "Checks", "Mesh", NULL
};
static const char *const sidecar_keys_allowed[] = {
	"ID", "Name", "Tags", "Address", "Port", "Meta", "Weights", "EnableTagOverride", "Proxy",
	"Check", "Checks", NULL
};
static const char *const proxy_keys_allowed[] = {
	"DestinationServiceName", "DestinationServiceID", "LocalServiceAddress",
	"LocalServicePort", "Upstreams", "Config", "Mode", "TransparentProxy", NULL
};
static const char *const upstream_keys_allowed[] = {
	"DestinationName", "DestinationType", "Datacenter", "LocalBindAddress", "LocalBindPort",
	"Config", NULL
};
static const char *const connect_keys_allowed[] = { "SidecarService", "Native", NULL };
static const char *const weights_keys_allowed[] = { "Passing", "Warning", NULL };

static int valid_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int decode_checks(json_t *def, const char *ctx, const char *sid, json_t *svc, char **err)
{
	json_t *one = get(def, "Check"), *many = get(def, "Checks"), *list = json_array(), *c, *e;
	size_t i, n;
	char p[256];

	json_object_set_new(svc, "Checks", list);
	if (many && !json_is_array(many)) {
		set_path(p, sizeof(p), ctx, "Checks");
		return weft_errf(err, WEFT_EINVAL, "%s: must be an array", p);
	}
	n = (one ? 1 : 0) + (many ? json_array_size(many) : 0);
	if (n > MAX_CHECKS) {
		set_path(p, sizeof(p), ctx, "Checks");
		return weft_errf(err, WEFT_EINVAL, "%s: at most %d checks per service", p, MAX_CHECKS);
	}
	if (one) {
		set_path(p, sizeof(p), ctx, "Check");
		if (svcdef_decode_check(one, p, sid, n > 1 ? 1 : 0, &c, err) != WEFT_OK)
			return WEFT_EINVAL;
		json_array_append_new(list, c);
	}
	if (many)
		json_array_foreach(many, i, e) {
			char q[256];
			set_path(p, sizeof(p), ctx, "Checks");
			snprintf(q, sizeof(q), "%.200s[%zu]", p, i);
			if (svcdef_decode_check(e, q, sid, n > 1 ? (int)(i + 1 + (one ? 1 : 0)) : 0, &c,
						err) != WEFT_OK)
				return WEFT_EINVAL;
			json_array_append_new(list, c);
		}
	json_array_foreach(list, i, c) {
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(json_object_get(c, "CheckID")),
				   json_string_value(json_object_get(json_array_get(list, j), "CheckID"))) == 0)
				return weft_errf(err, WEFT_EINVAL, "%s: two checks have the ID \"%s\"",
						 ctx && ctx[0] ? ctx : "service",
						 json_string_value(json_object_get(c, "CheckID")));
	}
	return WEFT_OK;
}

static int decode_upstreams(json_t *proxy, const char *ctx, json_t *out, char **err)
{
	json_t *ups = get(proxy, "Upstreams"), *e, *list = json_array(), *cfg;
	size_t i;
	char p[256], q[300];

	json_object_set_new(out, "Upstreams", list);
	if (ups == NULL)
		return WEFT_OK;
	set_path(p, sizeof(p), ctx, "Upstreams");
	if (!json_is_array(ups) || json_array_size(ups) > MAX_UPSTREAMS)
		return weft_errf(err, WEFT_EINVAL, "%s: must be an array of at most %d upstreams", p,
				 MAX_UPSTREAMS);
	json_array_foreach(ups, i, e) {
		const char *dest = NULL, *type = "service", *dc = NULL, *addr = "127.0.0.1";
		long long port = 0;
		json_t *u;
		snprintf(q, sizeof(q), "%.200s[%zu]", p, i);
		if (check_keys(e, q, upstream_keys_allowed, err) ||
		    f_str(e, q, "DestinationName", NAME_MAX_LEN, &dest, err) ||
		    f_str(e, q, "DestinationType", 32, &type, err) ||
		    f_str(e, q, "Datacenter", NAME_MAX_LEN, &dc, err) ||
		    f_str(e, q, "LocalBindAddress", 64, &addr, err) ||
		    f_int(e, q, "LocalBindPort", 1, 65535, &port, err))
			return WEFT_EINVAL;
		if (dest == NULL || !name_valid(dest, NAME_MAX_LEN))
			return weft_errf(err, WEFT_EINVAL, "%s.DestinationName: %s", q,
					 dest ? "is not a valid service name" : "is required");
		if (strcmp(type, "service") != 0)
			return weft_errf(err, WEFT_EINVAL,
					 "%s.DestinationType: \"%s\" is not supported (only \"service\")", q, type);
		if (port == 0)
			return weft_errf(err, WEFT_EINVAL, "%s.LocalBindPort: is required", q);
		if (!valid_ip(addr))
			return weft_errf(err, WEFT_EINVAL, "%s.LocalBindAddress: \"%s\" is not an IP address",
					 q, addr);
		u = json_pack("{ss ss ss sI}", "DestinationName", dest, "DestinationType", type,
			      "LocalBindAddress", addr, "LocalBindPort", (json_int_t)port);
		put_str(u, "Datacenter", dc);
		cfg = get(e, "Config");
		if (cfg) {
			if (!json_is_object(cfg))
				return weft_errf(err, WEFT_EINVAL, "%s.Config: must be an object", q);
			json_object_set(u, "Config", cfg);
		}
		json_array_append_new(list, u);
	}
	return WEFT_OK;
}

/* The Proxy block of a connect-proxy (given, or a sidecar's with defaults
 * from its parent: dest_name, dest_id, dest_port). */
static int decode_proxy(json_t *proxy, const char *ctx, const char *dest_name,
			const char *dest_id, long long dest_port, json_t *svc, char **err)
{
	const char *dname = dest_name, *did = dest_id, *laddr = "127.0.0.1", *mode = NULL;
	long long lport = dest_port;
	json_t *out = json_object(), *v;
	char p[256];

	json_object_set_new(svc, "Proxy", out);
	set_path(p, sizeof(p), ctx, "Proxy");
	if (proxy) {
		if (check_keys(proxy, p, proxy_keys_allowed, err) ||
		    f_str(proxy, p, "DestinationServiceName", NAME_MAX_LEN, &dname, err) ||
		    f_str(proxy, p, "DestinationServiceID", NAME_MAX_LEN, &did, err) ||
		    f_str(proxy, p, "LocalServiceAddress", 64, &laddr, err) ||
		    f_int(proxy, p, "LocalServicePort", 0, 65535, &lport, err) ||
		    f_str(proxy, p, "Mode", 32, &mode, err))
			return WEFT_EINVAL;
	}
	if (dname == NULL || !name_valid(dname, NAME_MAX_LEN))
		return weft_errf(err, WEFT_EINVAL, "%s.DestinationServiceName: %s", p,
				 dname ? "is not a valid service name" : "is required for a connect-proxy");
	if (!valid_ip(laddr))
		return weft_errf(err, WEFT_EINVAL, "%s.LocalServiceAddress: \"%s\" is not an IP address", p,
				 laddr);
	if (mode && strcmp(mode, "") && strcmp(mode, "direct") && strcmp(mode, "transparent"))
		return weft_errf(err, WEFT_EINVAL,
				 "%s.Mode: \"%s\" is not one of direct, transparent", p, mode);
	json_object_set_new(out, "DestinationServiceName", json_string(dname));
	json_object_set_new(out, "DestinationServiceID", json_string(did ? did : dname));
	json_object_set_new(out, "LocalServiceAddress", json_string(laddr));
	if (lport > 0)
		json_object_set_new(out, "LocalServicePort", json_integer(lport));
	put_str(out, "Mode", mode);
	if (proxy && (v = get(proxy, "Config")) != NULL) {
		if (!json_is_object(v))
			return weft_errf(err, WEFT_EINVAL, "%s.Config: must be an object", p);
		json_object_set(out, "Config", v);
	}
	if (proxy && (v = get(proxy, "TransparentProxy")) != NULL) {
		if (!json_is_object(v))
			return weft_errf(err, WEFT_EINVAL, "%s.TransparentProxy: must be an object", p);
		json_object_set(out, "TransparentProxy", v);
	}
	return decode_upstreams(proxy ? proxy : out, p, out, err);
}

/* Fields a service and a sidecar share. */
static int decode_common(json_t *def, const char *ctx, json_t *svc, const char *def_id,
			 const char *def_name, char **err)
{
	const char *id = NULL, *name = NULL, *addr = NULL, *mesh = NULL;
	long long port = 0, passing = 1, warning = 1;
	int eto = 0;
	json_t *tags = NULL, *meta = NULL, *w;
	char p[256];

	if (f_str(def, ctx, "ID", NAME_MAX_LEN, &id, err) || f_str(def, ctx, "Name", NAME_MAX_LEN, &name, err) ||
	    f_str(def, ctx, "Address", 64, &addr, err) || f_int(def, ctx, "Port", 0, 65535, &port, err) ||
	    f_bool(def, ctx, "EnableTagOverride", &eto, err) || f_str(def, ctx, "Mesh", NAME_MAX_LEN, &mesh, err) ||
	    f_strs(def, ctx, "Tags", MAX_TAGS, &tags, err))
		return WEFT_EINVAL;
	if (f_strmap(def, ctx, "Meta", &meta, err)) {
		json_decref(tags);
		return WEFT_EINVAL;
	}
	if (name == NULL)
		name = def_name;
	if (id == NULL || id[0] == '\0')
		id = def_id ? def_id : name;
	json_object_set_new(svc, "Service", json_string(name ? name : ""));
	json_object_set_new(svc, "ID", json_string(id ? id : ""));
	json_object_set_new(svc, "Tags", tags ? tags : json_array());
	json_object_set_new(svc, "Meta", meta ? meta : json_object());
	json_object_set_new(svc, "Port", json_integer(port));
	json_object_set_new(svc, "Address", json_string(addr ? addr : ""));
	json_object_set_new(svc, "EnableTagOverride", json_boolean(eto));
	json_object_set_new(svc, "Mesh", json_string(mesh && mesh[0] ? mesh : "default"));
	if (name == NULL || !name_valid(name, NAME_MAX_LEN)) {
		set_path(p, sizeof(p), ctx, "Name");
		return weft_errf(err, WEFT_EINVAL, "%s: %s", p,
				 name ? "is not a valid service name (letters, digits, '-', '_', '.')"
				      : "is required");
	}
	if (!name_valid(id, NAME_MAX_LEN)) {
		set_path(p, sizeof(p), ctx, "ID");
		return weft_errf(err, WEFT_EINVAL,
				 "%s: \"%s\" is not a valid ID (letters, digits, '-', '_', '.')", p, id);
	}
	if (mesh && mesh[0] && !name_valid(mesh, NAME_MAX_LEN)) {
		set_path(p, sizeof(p), ctx, "Mesh");
		return weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not a valid mesh name", p, mesh);
	}
	if (addr && addr[0] && !valid_ip(addr)) {
		set_path(p, sizeof(p), ctx, "Address");
		return weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not an IP address", p, addr);
	}
	if ((w = get(def, "Weights")) != NULL) {
		set_path(p, sizeof(p), ctx, "Weights");
		if (check_keys(w, p, weights_keys_allowed, err) ||
		    f_int(w, p, "Passing", 1, 65535, &passing, err) ||
		    f_int(w, p, "Warning", 0, 65535, &warning, err))
			return WEFT_EINVAL;
	}
	json_object_set_new(svc, "Weights", json_pack("{sI sI}", "Passing", (json_int_t)passing,
						       "Warning", (json_int_t)warning));
	return WEFT_OK;
}

int svcdef_decode_service(json_t *def, const char *ctx, json_t *out, char **err)
{
	json_t *svc = json_object(), *side = NULL, *connect, *sd, *native;
	const char *kind = "", *name, *id;
	long long port;
	char p[256], q[300], sid[300], sname[300];
	int rc = WEFT_EINVAL;

	if (check_keys(def, ctx, service_keys_allowed, err) != WEFT_OK)
		goto out;
	if (decode_common(def, ctx, svc, NULL, NULL, err) != WEFT_OK)
		goto out;
	if (f_str(def, ctx, "Kind", 32, &kind, err) != WEFT_OK)
		goto out;
	name = json_string_value(json_object_get(svc, "Service"));
	id = json_string_value(json_object_get(svc, "ID"));
	port = json_integer_value(json_object_get(svc, "Port"));
	if (kind[0] && strcmp(kind, "connect-proxy") != 0) {
		set_path(p, sizeof(p), ctx, "Kind");
		weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not supported by weft-agent (\"\" or connect-proxy)",
			  p, kind);
		goto out;
	}
	if (kind[0]) {
		json_object_set_new(svc, "Kind", json_string(kind));
		if (port == 0) {
			set_path(p, sizeof(p), ctx, "Port");
			weft_errf(err, WEFT_EINVAL, "%s: is required for a connect-proxy", p);
			goto out;
		}
		if (decode_proxy(get(def, "Proxy"), ctx, NULL, NULL, 0, svc, err) != WEFT_OK)
			goto out;
	} else if (get(def, "Proxy")) {
		set_path(p, sizeof(p), ctx, "Proxy");
		weft_errf(err, WEFT_EINVAL, "%s: only for Kind connect-proxy", p);
		goto out;
	}
	if (decode_checks(def, ctx, id, svc, err) != WEFT_OK)
		goto out;
	connect = get(def, "Connect");
	if (connect) {
		set_path(p, sizeof(p), ctx, "Connect");
		if (check_keys(connect, p, connect_keys_allowed, err) != WEFT_OK)
			goto out;
		if ((native = get(connect, "Native")) != NULL && json_is_true(native)) {
			weft_errf(err, WEFT_EINVAL, "%s.Native: native Connect apps are not supported", p);
			goto out;
		}
		sd = get(connect, "SidecarService");
		if (sd) {
			snprintf(q, sizeof(q), "%.200s.SidecarService", p);
			if (kind[0]) {
				weft_errf(err, WEFT_EINVAL, "%s: a connect-proxy cannot have a sidecar", q);
				goto out;
			}
			if (port == 0) {
				set_path(p, sizeof(p), ctx, "Port");
				weft_errf(err, WEFT_EINVAL,
					  "%s: is required for a service with a sidecar (the proxy forwards to it)", p);
				goto out;
			}
			if (check_keys(sd, q, sidecar_keys_allowed, err) != WEFT_OK)
				goto out;
			snprintf(sid, sizeof(sid), "%s-sidecar-proxy", id);
			snprintf(sname, sizeof(sname), "%s-sidecar-proxy", name);
			side = json_object();
			if (decode_common(sd, q, side, sid, sname, err) != WEFT_OK)
				goto out;
			json_object_set_new(side, "Kind", json_string("connect-proxy"));
			if (json_string_length(json_object_get(side, "Address")) == 0)
				json_object_set(side, "Address", json_object_get(svc, "Address"));
			if (strcmp(json_string_value(json_object_get(side, "Mesh")), "default") == 0)
				json_object_set(side, "Mesh", json_object_get(svc, "Mesh"));
			if (decode_proxy(get(sd, "Proxy"), q, name, id, port, side, err) != WEFT_OK)
				goto out;
			if (decode_checks(sd, q, json_string_value(json_object_get(side, "ID")), side, err) != WEFT_OK)
				goto out;
			if (json_array_size(json_object_get(side, "Checks")) == 0)
				json_object_set_new(side, "_DefaultChecks", json_true());
			json_object_set_new(side, "SidecarFor", json_string(id));
		}
	}
	json_array_append(out, svc);
	if (side)
		json_array_append(out, side);
	rc = WEFT_OK;
out:
	json_decref(svc);
	json_decref(side);
	return rc;
}

int svcdef_decode_file(json_t *doc, json_t *services, json_t *checks, char **err)
{
	static const char *const file_keys[] = { "Service", "Services", "Check", "Checks", NULL };
	const char *k;
	json_t *v, *e, *c;
	size_t i;
	char ctx[300];

	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL, "the document must be an object with \"service\", "
				 "\"services\", \"check\" or \"checks\"");
	if (check_keys(doc, "", file_keys, err) != WEFT_OK)
		return WEFT_EINVAL;
	json_object_foreach(doc, k, v) {
		if (key_is(k, "Service")) {
			if (svcdef_decode_service(v, k, services, err) != WEFT_OK)
				return WEFT_EINVAL;
		} else if (key_is(k, "Services")) {
			if (!json_is_array(v))
				return weft_errf(err, WEFT_EINVAL, "%s: must be an array", k);
			json_array_foreach(v, i, e) {
				snprintf(ctx, sizeof(ctx), "%.100s[%zu]", k, i);
				if (svcdef_decode_service(e, ctx, services, err) != WEFT_OK)
					return WEFT_EINVAL;
			}
		} else if (key_is(k, "Check")) {
			if (svcdef_decode_check(v, k, "", 0, &c, err) != WEFT_OK)
				return WEFT_EINVAL;
			json_array_append_new(checks, c);
		} else {
			if (!json_is_array(v))
				return weft_errf(err, WEFT_EINVAL, "%s: must be an array", k);
			json_array_foreach(v, i, e) {
				snprintf(ctx, sizeof(ctx), "%.100s[%zu]", k, i);
				if (svcdef_decode_check(e, ctx, "", 0, &c, err) != WEFT_OK)
					return WEFT_EINVAL;
				json_array_append_new(checks, c);
			}
		}
	}
	return WEFT_OK;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int wanted_file(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return 0;
	return (n > 5 && strcmp(name + n - 5, ".json") == 0) ||
	       (n > 5 && strcmp(name + n - 5, ".yaml") == 0) || (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

/* One file: its services and checks appended, an error located. */
static int load_file(const char *path, json_t *services, json_t *checks, char **err)
{
	struct yamlx_doc *ydoc = NULL;
	char *data = NULL, *msg = NULL;
	size_t len = 0, n = strlen(path);
	json_t *jdoc = NULL;
	int is_json = n > 5 && strcmp(path + n - 5, ".json") == 0;
	int rc = WEFT_EINVAL;

	data = file_read_all(path, FILE_MAX, &len);
	if (data == NULL) {
		rc = weft_errf(err, WEFT_EIO, "%s: cannot read (missing, unreadable, or over %d bytes)", path,
			       FILE_MAX);
		goto out;
	}
	if (is_json) {
		json_error_t je;
		jdoc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
		if (jdoc == NULL) {
			weft_errf(err, WEFT_EINVAL, "%s:%d:%d: %s", path, je.line, je.column, je.text);
			goto out;
		}
		/* JSON is YAML: parsed again only to locate a field in an error. */
		if (yamlx_parse(data, len, path, &ydoc, NULL) != WEFT_OK)
			ydoc = NULL;
		if (svcdef_decode_file(jdoc, services, checks, &msg) != WEFT_OK)
			goto located;
	} else {
		if (yamlx_parse(data, len, path, &ydoc, err) != WEFT_OK)
			goto out;
		for (size_t i = 0; i < yamlx_count(ydoc); i++)
			if (svcdef_decode_file(yamlx_root(ydoc, i), services, checks, &msg) != WEFT_OK)
				goto located;
	}
	rc = WEFT_OK;
	goto out;
located:
	if (ydoc && err)
		*err = yamlx_error(ydoc, 0, msg);
	else
		weft_errf(err, WEFT_EINVAL, "%s: %s", path, msg);
out:
	free(msg);
	free(data);
	json_decref(jdoc);
	yamlx_free(ydoc);
	return rc;
}

int svcdef_load_dir(const char *dir, json_t **services_out, json_t **checks_out, char **err)
{
	json_t *services = json_array(), *checks = json_array(), *a, *b;
	json_t *origin = json_object();
	char **names = NULL, path[4096];
	size_t nnames = 0, i, j, before;
	struct dirent *de;
	DIR *d = NULL;
	int rc = WEFT_EINVAL;

	d = opendir(dir);
	if (d == NULL) {
		rc = WEFT_OK;   /* a missing directory holds no definitions */
		goto done;
	}
	names = calloc(MAX_FILES, sizeof(*names));
	while ((de = readdir(d)) != NULL) {
		if (!wanted_file(de->d_name))
			continue;
		if (nnames == MAX_FILES) {
			weft_errf(err, WEFT_EINVAL, "%s: more than %d definition files", dir, MAX_FILES);
			goto out;
		}
		names[nnames++] = strdup(de->d_name);
	}
	qsort(names, nnames, sizeof(*names), cmp_names);
	for (i = 0; i < nnames; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		before = json_array_size(services);
		if (load_file(path, services, checks, err) != WEFT_OK)
			goto out;
		for (j = before; j < json_array_size(services); j++) {
			const char *id = json_string_value(json_object_get(json_array_get(services, j), "ID"));
			json_t *prev = json_object_get(origin, id);
			if (prev) {
				weft_errf(err, WEFT_EINVAL, "%s: service ID \"%s\" is also defined in %s", path, id,
					  json_string_value(prev));
				goto out;
			}
			json_object_set_new(origin, id, json_string(path));
		}
	}
	json_array_foreach(checks, i, a) {
		json_array_foreach(checks, j, b) {
			if (j >= i)
				break;
			if (json_equal(json_object_get(a, "CheckID"), json_object_get(b, "CheckID"))) {
				weft_errf(err, WEFT_EINVAL, "%s: two node checks have the ID \"%s\"", dir,
					  json_string_value(json_object_get(a, "CheckID")));
				goto out;
			}
		}
	}
done:
	*services_out = services;
	*checks_out = checks;
	services = checks = NULL;
	rc = WEFT_OK;
out:
	if (d)
		closedir(d);
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	json_decref(services);
	json_decref(checks);
	json_decref(origin);
	return rc;
}

static int port_used(const json_t *list, long long port, const char *except_id)
{
	size_t i;
	json_t *s;

	if (list == NULL)
		return 0;
	json_array_foreach(list, i, s) {
		if (except_id && strcmp(json_string_value(json_object_get(s, "ID")), except_id) == 0)
			continue;
		if (json_integer_value(json_object_get(s, "Port")) == port)
			return 1;
	}
	return 0;
}

/* Consul's default sidecar checks: its port listening, and an alias of the
 * service it fronts (so that a sick app takes its sidecar out of the
 * upstreams' endpoints). */
static void add_default_checks(json_t *side, const char *node_address)
{
	json_t *checks = json_object_get(side, "Checks");
	const char *id = json_string_value(json_object_get(side, "ID"));
	const char *addr = json_string_value(json_object_get(side, "Address"));

	if (addr == NULL || addr[0] == '\0')
		addr = node_address;
	const char *parent = json_string_value(json_object_get(side, "SidecarFor"));
	long long port = json_integer_value(json_object_get(side, "Port"));
	char cid[300], tcp[128], name[300];

	snprintf(cid, sizeof(cid), "service:%s:1", id);
	snprintf(tcp, sizeof(tcp), strchr(addr && addr[0] ? addr : "127.0.0.1", ':') ? "[%s]:%lld" : "%s:%lld",
		 addr && addr[0] ? addr : "127.0.0.1", port);
	json_array_append_new(checks, json_pack("{ss ss ss ss ss ss ss}", "CheckID", cid, "Name",
						"Connect Sidecar Listening", "ServiceID", id, "Type", "tcp",
						"Status", "critical", "TCP", tcp, "Interval", "10s"));
	snprintf(cid, sizeof(cid), "service:%s:2", id);
	snprintf(name, sizeof(name), "Connect Sidecar Aliasing %s", parent);
	json_array_append_new(checks, json_pack("{ss ss ss ss ss ss}", "CheckID", cid, "Name", name,
						"ServiceID", id, "Type", "alias", "Status", "critical",
						"AliasService", parent));
}

int svcdef_assign_ports(json_t *services, const json_t *keep, const char *node_address,
			char **err)
{
	size_t i, k;
	json_t *s, *old;

	json_array_foreach(services, i, s) {
		const char *id = json_string_value(json_object_get(s, "ID"));
		long long port = json_integer_value(json_object_get(s, "Port"));
		if (json_object_get(s, "SidecarFor") == NULL || port != 0)
			goto checks;
		json_array_foreach(keep, k, old) {
			if (strcmp(json_string_value(json_object_get(old, "ID")), id) == 0) {
				port = json_integer_value(json_object_get(old, "Port"));
				if (port_used(services, port, id))
					port = 0;
				break;
			}
		}
		for (long long p = SVCDEF_SIDECAR_PORT_MIN; port == 0 && p <= SVCDEF_SIDECAR_PORT_MAX; p++)
			if (!port_used(services, p, id) && !port_used(keep, p, id))
				port = p;
		if (port == 0)
			return weft_errf(err, WEFT_EINVAL,
					 "%s: no free sidecar port left in %d-%d: give the sidecar a Port", id,
					 SVCDEF_SIDECAR_PORT_MIN, SVCDEF_SIDECAR_PORT_MAX);
		json_object_set_new(s, "Port", json_integer(port));
checks:
		if (json_is_true(json_object_get(s, "_DefaultChecks"))) {
			json_object_del(s, "_DefaultChecks");
			add_default_checks(s, node_address);
		}
	}
	return WEFT_OK;
}
