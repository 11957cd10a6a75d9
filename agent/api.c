/* weft-agent's local API (api.h) on libmicrohttpd. */
#include "config.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "err.h"
#include "filter.h"
#include "health.h"
#include "jsonx.h"
#include "log.h"
#include "svcdef.h"
#include "util.h"

#define BODY_MAX (1024 * 1024)
#define TOKEN_CACHE_MS 60000
#define TOKEN_CACHE_MAX 1024

struct agent_api {
	struct agent_state *st;
	struct api_opts o;
	char *node, *datacenter, *own_token;
	struct MHD_Daemon *d;
	int port;
	pthread_mutex_t mu;     /* the token cache */
	json_t *tokens;         /* secret -> {"Kind", "NodeName", "ServiceName", "Until"} */
};

struct conn {
	char *body;
	size_t len;
	int too_big;
};

struct call {
	struct agent_api *a;
	struct MHD_Connection *c;
	const char *method, *url;
	const char *body;
	size_t len;
	json_t *token;          /* the caller's grant, NULL in dev mode */
};

/* ---- replies ---- */

static enum MHD_Result send_text(struct call *k, unsigned status, const char *type, char *text)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result r;

	MHD_add_response_header(resp, "Content-Type", type);
	r = MHD_queue_response(k->c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result reply_json(struct call *k, unsigned status, json_t *v)
{
	char *text = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(v);
	if (text == NULL)
		text = strdup("null");
	return send_text(k, status, "application/json", text);
}

static enum MHD_Result reply_error(struct call *k, unsigned status, const char *msg)
{
	return reply_json(k, status, json_pack("{ss}", "error", msg));
}

static unsigned status_of(int rc)
{
	switch (rc) {
	case WEFT_EINVAL: return 400;
	case WEFT_ENOENT: return 404;
	case WEFT_EEXIST: return 409;
	case WEFT_EPERM: return 403;
	case WEFT_EAUTH: return 403;
	case WEFT_ETOOBIG: return 413;
	default: return 500;
	}
}

static enum MHD_Result reply_rc(struct call *k, int rc, char *err)
{
	enum MHD_Result r = reply_error(k, status_of(rc), err ? err : weft_strerror(rc));

	free(err);
	return r;
}

static const char *sget(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* ---- tokens ---- */

static const char *request_token(struct call *k)
{
	const char *t = MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, "X-Consul-Token");
	const char *auth;

	if (t && t[0])
		return t;
	auth = MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, "Authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
		return auth + 7;
	t = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "token");
	return t && t[0] ? t : NULL;
}

/* The grant of a token: from the cache, or asked of the server. */
static int resolve_token(struct agent_api *a, const char *secret, json_t **out, char **err)
{
	struct httpc_opts o = a->o.server;
	struct httpc *c = NULL;
	json_t *self = NULL, *g;
	int64_t now = now_mono_ms();
	int rc;

	if (a->own_token && strcmp(secret, a->own_token) == 0) {
		*out = json_pack("{ss ss ss}", "Kind", "agent", "NodeName", a->node, "ServiceName", "");
		return WEFT_OK;
	}
	pthread_mutex_lock(&a->mu);
	g = json_object_get(a->tokens, secret);
	if (g && json_integer_value(json_object_get(g, "Until")) > now) {
		*out = json_incref(g);
		pthread_mutex_unlock(&a->mu);
		return WEFT_OK;
	}
	pthread_mutex_unlock(&a->mu);
	o.token = secret;
	o.timeout_ms = 5000;
	if ((rc = httpc_new(&c, &o, err)) != WEFT_OK)
		return rc;
	rc = httpc_json(c, "GET", "/v1/acl/token/self", NULL, 0, &self, NULL, err);
	httpc_free(c);
	if (rc == WEFT_EPERM || rc == WEFT_EAUTH || rc == WEFT_ENOENT) {
		free(*err);
		*err = strdup("permission denied: the token is not valid on the server");
		return WEFT_EPERM;
	}
	if (rc != WEFT_OK) {
		/* the server is unreachable: a token it vouched for before stays good */
		pthread_mutex_lock(&a->mu);
		g = json_object_get(a->tokens, secret);
		if (g) {
			*out = json_incref(g);
			pthread_mutex_unlock(&a->mu);
			free(*err);
			*err = NULL;
			return WEFT_OK;
		}
		pthread_mutex_unlock(&a->mu);
		return rc;
	}
	g = json_pack("{ss ss ss sI}", "Kind", sget(self, "Kind"), "NodeName", sget(self, "NodeName"),
		      "ServiceName", sget(self, "ServiceName"), "Until", (json_int_t)(now + TOKEN_CACHE_MS));
	json_decref(self);
	pthread_mutex_lock(&a->mu);
	if (json_object_size(a->tokens) >= TOKEN_CACHE_MAX)
		json_object_clear(a->tokens);
	json_object_set(a->tokens, secret, g);
	pthread_mutex_unlock(&a->mu);
	*out = g;
	return WEFT_OK;
}

/* 1 when the caller may write on behalf of service (NULL: node-level). */
static int may_write(struct call *k, const char *service)
{
	const char *kind;

	if (!k->a->o.auth)
		return 1;
	kind = sget(k->token, "Kind");
	if (strcmp(kind, "admin") == 0 || strcmp(kind, "operator") == 0)
		return 1;
	if (strcmp(kind, "agent") == 0)
		return strcmp(sget(k->token, "NodeName"), k->a->node) == 0;
	if (strcmp(kind, "service") == 0 && service)
		return strcmp(sget(k->token, "ServiceName"), service) == 0;
	return 0;
}

static enum MHD_Result forbidden(struct call *k, const char *what)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "permission denied: token of kind %s%s%s may not %s on node %s",
		 sget(k->token, "Kind"), sget(k->token, "ServiceName")[0] ? " for " : "",
		 sget(k->token, "ServiceName"), what, k->a->node);
	return reply_error(k, 403, msg);
}

/* ---- views in Consul's agent format ---- */

static json_t *agent_service(struct agent_api *a, json_t *s)
{
	json_t *o = json_pack("{ss ss sO sO si ss sO sb ss}", "ID", sget(s, "ID"), "Service",
			      sget(s, "Service"), "Tags", json_object_get(s, "Tags"), "Meta",
			      json_object_get(s, "Meta"), "Port",
			      (int)json_integer_value(json_object_get(s, "Port")), "Address",
			      sget(s, "Address"), "Weights", json_object_get(s, "Weights"),
			      "EnableTagOverride", json_is_true(json_object_get(s, "EnableTagOverride")),
			      "Datacenter", a->datacenter);

	if (sget(s, "Kind")[0]) {
		json_object_set_new(o, "Kind", json_string(sget(s, "Kind")));
		json_object_set(o, "Proxy", json_object_get(s, "Proxy"));
	}
	if (sget(s, "Mesh")[0])
		json_object_set_new(o, "Mesh", json_string(sget(s, "Mesh")));
	return o;
}

static json_t *agent_check(struct agent_api *a, json_t *c, json_t *svc)
{
	json_t *tags = svc && json_object_get(svc, "Tags") ? json_incref(json_object_get(svc, "Tags"))
							  : json_array();
	json_t *o = json_pack("{ss ss ss ss ss ss ss ss so ss}", "Node", a->node, "CheckID",
			      sget(c, "CheckID"), "Name", sget(c, "Name"), "Status", sget(c, "Status"),
			      "Notes", sget(c, "Notes"), "Output", sget(c, "Output"), "ServiceID",
			      sget(c, "ServiceID"), "ServiceName", svc ? sget(svc, "Service") : "",
			      "ServiceTags", tags, "Type", sget(c, "Type"));
	json_t *def = json_object();
	static const char *const keys[] = { "HTTP", "Method", "Header", "TCP", "UDP", "GRPC",
					    "GRPCUseTLS", "H2PING", "H2PingUseTLS", "TTL", "Interval", "Timeout",
					    "DeregisterCriticalServiceAfter", "Args",
					    "SuccessBeforePassing", "FailuresBeforeWarning",
					    "FailuresBeforeCritical", NULL };

	for (size_t i = 0; keys[i]; i++)
		if (json_object_get(c, keys[i]))
			json_object_set(def, keys[i], json_object_get(c, keys[i]));
	json_object_set_new(o, "Definition", def);
	return o;
}

/* ---- handlers ---- */

/* Replies with items (an object of objects, as Consul's agent lists are)
 * kept by ?filter= (lib/filter, the server's language): 400 naming the
 * parameter when the expression is bad. */
static enum MHD_Result reply_filtered(struct call *k, json_t *items)
{
	const char *expr = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "filter");
	struct filter *f = NULL;
	char *err = NULL, msg[1024];

	if (expr == NULL || expr[0] == '\0')
		return reply_json(k, 200, items);
	if (filter_compile(expr, &f, &err) != WEFT_OK) {
		snprintf(msg, sizeof(msg), "filter: %s", err ? err : "invalid expression");
		free(err);
		json_decref(items);
		return reply_json(k, 400, json_pack("{ss ss}", "error", msg, "field", "filter"));
	}
	filter_keep(f, items);
	filter_free(f);
	return reply_json(k, 200, items);
}

static enum MHD_Result h_self(struct call *k)
{
	return reply_json(k, 200, json_pack("{s{ss ss sb ss} s{ss}}", "Config", "Datacenter",
					    k->a->datacenter, "NodeName", k->a->node, "Server", 0,
					    "Version", PACKAGE_VERSION, "Member", "Name", k->a->node));
}

static enum MHD_Result h_services(struct call *k)
{
	json_t *list = state_services(k->a->st), *out = json_object(), *s;
	size_t i;

	json_array_foreach(list, i, s)
		json_object_set_new(out, sget(s, "ID"), agent_service(k->a, s));
	json_decref(list);
	return reply_filtered(k, out);
}

static enum MHD_Result h_service(struct call *k, const char *id)
{
	json_t *s = state_service(k->a->st, id), *out;
	char msg[300];

	if (s == NULL) {
		snprintf(msg, sizeof(msg), "unknown service ID: %s", id);
		return reply_error(k, 404, msg);
	}
	out = agent_service(k->a, s);
	json_decref(s);
	return reply_json(k, 200, out);
}

static enum MHD_Result h_checks(struct call *k)
{
	json_t *list = state_services(k->a->st), *out = json_object(), *s, *c;
	size_t i, j;

	json_array_foreach(list, i, s)
		json_array_foreach(json_object_get(s, "Checks"), j, c)
			json_object_set_new(out, sget(c, "CheckID"), agent_check(k->a, c, s));
	json_decref(list);
	list = state_node_checks(k->a->st);
	json_array_foreach(list, i, c)
		json_object_set_new(out, sget(c, "CheckID"), agent_check(k->a, c, NULL));
	json_decref(list);
	return reply_filtered(k, out);
}

/* ---- local service health (Consul's /v1/agent/health/service/...) ---- */

static enum MHD_Result reply_plain(struct call *k, unsigned status, const char *text)
{
	char *copy = strdup(text);

	return copy ? send_text(k, status, "text/plain", copy) : MHD_NO;
}

/* Consul's: Accept: text/plain, or ?format=text, asks for the status alone. */
static int wants_text(struct call *k)
{
	const char *accept = MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, "Accept");
	const char *format = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "format");

	if (accept && strncmp(accept, "text/plain", 10) == 0)
		return 1;
	return format && format[0] && strcmp(format, "text") == 0;
}

/* The aggregated status of a service's checks and the node's (lib/health:
 * maintenance, else the worst; passing without checks) and its HTTP code. */
static const char *aggregated(json_t *svc, json_t *node_checks, unsigned *code)
{
	json_t *all = json_array();
	const char *agg;

	json_array_extend(all, json_object_get(svc, "Checks"));
	json_array_extend(all, node_checks);
	agg = health_aggregate(all);
	json_decref(all);
	*code = (unsigned)health_http_status(agg);
	return agg;
}

static json_t *health_info(struct agent_api *a, json_t *svc, json_t *node_checks,
			   const char *status)
{
	json_t *checks = json_array(), *c;
	size_t i;

	json_array_foreach(json_object_get(svc, "Checks"), i, c)
		json_array_append_new(checks, agent_check(a, c, svc));
	json_array_foreach(node_checks, i, c)
		json_array_append_new(checks, agent_check(a, c, NULL));
	return json_pack("{ss so so}", "AggregatedStatus", status, "Service", agent_service(a, svc),
			 "Checks", checks);
}

static enum MHD_Result h_health_id(struct call *k, const char *id)
{
	json_t *svc = state_service(k->a->st, id), *node = state_node_checks(k->a->st);
	const char *status;
	unsigned code;
	char msg[600];
	enum MHD_Result r;

	if (svc == NULL) {
		json_decref(node);
		snprintf(msg, sizeof(msg), "ServiceId %.500s not found", id);
		if (wants_text(k))
			return reply_plain(k, 404, msg);
		return reply_json(k, 404, json_pack("{ss sn sn}", "AggregatedStatus", "critical",
						    "Service", "Checks"));
	}
	status = aggregated(svc, node, &code);
	if (wants_text(k))
		r = reply_plain(k, code, status);
	else
		r = reply_json(k, code, health_info(k->a, svc, node, status));
	json_decref(svc);
	json_decref(node);
	return r;
}

/* Every instance of the service on this node; the code is the worst. */
static enum MHD_Result h_health_name(struct call *k, const char *name)
{
	json_t *list = state_services(k->a->st), *node = state_node_checks(k->a->st);
	json_t *out = json_array(), *s;
	unsigned code = 404, c;
	char msg[600];
	const char *status = msg;
	size_t i;
	enum MHD_Result r;

	snprintf(msg, sizeof(msg), "ServiceName %.500s Not Found", name);
	json_array_foreach(list, i, s) {
		const char *st;

		if (strcmp(sget(s, "Service"), name) != 0)
			continue;
		st = aggregated(s, node, &c);
		json_array_append_new(out, health_info(k->a, s, node, st));
		if (code == 404 || c > code) {
			code = c;
			status = st;
		}
	}
	if (wants_text(k)) {
		r = reply_plain(k, code, status);
		json_decref(out);
	} else {
		r = reply_json(k, code, out);
	}
	json_decref(list);
	json_decref(node);
	return r;
}

/* ---- maintenance mode ---- */

static void defs_changed(struct call *k)
{
	if (k->a->o.hooks.defs_changed)
		k->a->o.hooks.defs_changed(k->a->o.hooks.arg);
}

/* ?enable= (required: true or false) and ?reason=; -1 after a 400. */
static int maintenance_args(struct call *k, int *enable, const char **reason,
			    enum MHD_Result *r)
{
	const char *v = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "enable");
	char msg[200];

	*reason = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "reason");
	if (v == NULL || v[0] == '\0') {
		*r = reply_error(k, 400, "enable: is required (true or false)");
		return -1;
	}
	if (parse_bool(v, enable) != 0) {
		snprintf(msg, sizeof(msg), "enable: \"%.100s\" is not true or false", v);
		*r = reply_error(k, 400, msg);
		return -1;
	}
	return 0;
}

/* Maintenance on (a critical check of type maintenance, kept across
 * restarts like any check registered here) or off; service_id NULL: the
 * node. */
static enum MHD_Result set_maintenance(struct call *k, const char *service_id)
{
	json_t *svc = NULL, *check = NULL;
	const char *reason = NULL;
	char id[600], *err = NULL;
	int enable = 0, rc;
	enum MHD_Result r;

	if (maintenance_args(k, &enable, &reason, &r) != 0)
		return r;
	if (service_id && (svc = state_service(k->a->st, service_id)) == NULL) {
		snprintf(id, sizeof(id), "unknown service ID: %.500s", service_id);
		return reply_error(k, 404, id);
	}
	if (!may_write(k, svc ? sget(svc, "Service") : NULL)) {
		json_decref(svc);
		return forbidden(k, service_id ? "put this service in maintenance"
					       : "put this node in maintenance");
	}
	json_decref(svc);
	snprintf(id, sizeof(id), "%s%s", service_id ? HEALTH_SERVICE_MAINT_PREFIX : HEALTH_NODE_MAINT_ID,
		 service_id ? service_id : "");
	if (!enable) {
		rc = state_remove_check(k->a->st, id, &err);
		if (rc == WEFT_ENOENT)   /* not in maintenance: nothing to do */
			rc = WEFT_OK;
	} else {
		check = json_pack("{ss ss ss ss ss ss}", "CheckID", id, "Name",
				  service_id ? HEALTH_SERVICE_MAINT_NAME : HEALTH_NODE_MAINT_NAME,
				  "Notes", reason && reason[0] ? reason
					   : service_id ? HEALTH_SERVICE_MAINT_NOTES : HEALTH_NODE_MAINT_NOTES,
				  "ServiceID", service_id ? service_id : "", "Type", "maintenance",
				  "Status", "critical");
		rc = check ? state_add_check(k->a->st, check, &err) : WEFT_ENOMEM;
		json_decref(check);
	}
	if (rc != WEFT_OK)
		return reply_rc(k, rc, err);
	free(err);
	log_info("api", "%s maintenance %s%s%s", service_id ? "service" : "node",
		 enable ? "enabled" : "disabled", service_id ? ": " : "", service_id ? service_id : "");
	defs_changed(k);
	return send_text(k, 200, "text/plain", strdup(""));
}

static int has_script(json_t *services)
{
	json_t *s, *c;
	size_t i, j;

	json_array_foreach(services, i, s)
		json_array_foreach(json_object_get(s, "Checks"), j, c)
			if (strcmp(sget(c, "Type"), "script") == 0)
				return 1;
	return 0;
}

static json_t *parse_body(struct call *k, char **err)
{
	if (k->len == 0) {
		weft_errf(err, WEFT_EINVAL, "body: a JSON object is required");
		return NULL;
	}
	return jx_parse(k->body, k->len, err);
}


static enum MHD_Result h_register(struct call *k)
{
	json_t *doc = NULL, *services = json_array(), *s;
	const char *replace = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND,
							  "replace-existing-checks");
	char *err = NULL;
	size_t i;
	enum MHD_Result r;
	int rc;

	if ((doc = parse_body(k, &err)) == NULL) {
		r = reply_rc(k, WEFT_EINVAL, err);
		goto out;
	}
	if ((rc = svcdef_decode_service(doc, NULL, services, &err)) != WEFT_OK) {
		r = reply_rc(k, rc, err);
		goto out;
	}
	json_array_foreach(services, i, s) {
		const char *name = sget(s, "Kind")[0]
					   ? sget(json_object_get(s, "Proxy"), "DestinationServiceName")
					   : sget(s, "Service");
		if (!may_write(k, name)) {
			char what[300];
			snprintf(what, sizeof(what), "register service %s", sget(s, "Service"));
			r = forbidden(k, what);
			goto out;
		}
	}
	if (has_script(services) && !k->a->o.enable_scripts) {
		r = reply_error(k, 400, "Args: script checks are disabled on this agent "
					"(weft-agent --enable-script-checks)");
		goto out;
	}
	rc = state_add_services(k->a->st, services,
				replace && (replace[0] == '\0' || strcmp(replace, "true") == 0), &err);
	if (rc != WEFT_OK) {
		r = reply_rc(k, rc, err);
		goto out;
	}
	defs_changed(k);
	r = send_text(k, 200, "text/plain", strdup(""));
out:
	json_decref(doc);
	json_decref(services);
	return r;
}

static enum MHD_Result h_deregister(struct call *k, const char *id)
{
	json_t *s = state_service(k->a->st, id);
	char *err = NULL, msg[300];
	int rc;

	if (s == NULL) {
		snprintf(msg, sizeof(msg), "unknown service ID: %s", id);
		return reply_error(k, 404, msg);
	}
	if (!may_write(k, sget(s, "Kind")[0] ? sget(json_object_get(s, "Proxy"), "DestinationServiceName")
					     : sget(s, "Service"))) {
		json_decref(s);
		snprintf(msg, sizeof(msg), "deregister service %s", id);
		return forbidden(k, msg);
	}
	json_decref(s);
	if ((rc = state_remove_service(k->a->st, id, &err)) != WEFT_OK)
		return reply_rc(k, rc, err);
	defs_changed(k);
	return send_text(k, 200, "text/plain", strdup(""));
}

/* The service a check belongs to, for permissions (NULL: node-level). */
static char *check_service(struct call *k, const char *check_id)
{
	json_t *c = state_check(k->a->st, check_id);
	char *name = NULL;

	if (c && sget(c, "ServiceName")[0])
		name = strdup(sget(c, "ServiceName"));
	json_decref(c);
	return name;
}

static enum MHD_Result h_check_register(struct call *k)
{
	json_t *doc = NULL, *check = NULL, *svc = NULL;
	char *err = NULL;
	enum MHD_Result r;
	int rc;

	if ((doc = parse_body(k, &err)) == NULL) {
		r = reply_rc(k, WEFT_EINVAL, err);
		goto out;
	}
	if ((rc = svcdef_decode_check(doc, NULL, "", 0, &check, &err)) != WEFT_OK) {
		r = reply_rc(k, rc, err);
		goto out;
	}
	if (sget(check, "ServiceID")[0])
		svc = state_service(k->a->st, sget(check, "ServiceID"));
	if (!may_write(k, svc ? sget(svc, "Service") : NULL)) {
		r = forbidden(k, "register this check");
		goto out;
	}
	if (strcmp(sget(check, "Type"), "script") == 0 && !k->a->o.enable_scripts) {
		r = reply_error(k, 400, "Args: script checks are disabled on this agent "
					"(weft-agent --enable-script-checks)");
		goto out;
	}
	if ((rc = state_add_check(k->a->st, check, &err)) != WEFT_OK) {
		r = reply_rc(k, rc, err);
		goto out;
	}
	defs_changed(k);
	r = send_text(k, 200, "text/plain", strdup(""));
out:
	json_decref(doc);
	json_decref(check);
	json_decref(svc);
	return r;
}

static enum MHD_Result h_check_deregister(struct call *k, const char *id)
{
	char *svc = check_service(k, id), *err = NULL;
	int ok = may_write(k, svc), rc;

	free(svc);
	if (!ok)
		return forbidden(k, "deregister this check");
	if ((rc = state_remove_check(k->a->st, id, &err)) != WEFT_OK)
		return reply_rc(k, rc, err);
	defs_changed(k);
	return send_text(k, 200, "text/plain", strdup(""));
}

static enum MHD_Result set_ttl(struct call *k, const char *id, const char *status, const char *output)
{
	json_t *c = state_check(k->a->st, id);
	char *svc, *err = NULL, msg[300];
	int rc, ok;

	if (c == NULL) {
		snprintf(msg, sizeof(msg), "unknown check ID: %s", id);
		return reply_error(k, 404, msg);
	}
	if (strcmp(sget(c, "Type"), "ttl") != 0) {
		json_decref(c);
		snprintf(msg, sizeof(msg), "check \"%s\" is not a TTL check", id);
		return reply_error(k, 400, msg);
	}
	json_decref(c);
	svc = check_service(k, id);
	ok = may_write(k, svc);
	free(svc);
	if (!ok)
		return forbidden(k, "update this check");
	if (k->a->o.hooks.ttl_update)
		rc = k->a->o.hooks.ttl_update(k->a->o.hooks.arg, id, status, output ? output : "", &err);
	else
		rc = state_check_result(k->a->st, id, status, output ? output : "") < 0 ? WEFT_ENOENT : WEFT_OK;
	if (rc != WEFT_OK)
		return reply_rc(k, rc, err);
	return send_text(k, 200, "text/plain", strdup(""));
}

static enum MHD_Result h_check_update(struct call *k, const char *id)
{
	json_t *doc;
	const char *status = NULL, *output = "";
	char *err = NULL;
	enum MHD_Result r;

	if ((doc = parse_body(k, &err)) == NULL)
		return reply_rc(k, WEFT_EINVAL, err);
	if (jx_req_str(doc, NULL, "Status", &status, 16, &err) != WEFT_OK ||
	    jx_str(doc, NULL, "Output", &output, 4096, &err) != WEFT_OK) {
		json_decref(doc);
		return reply_rc(k, WEFT_EINVAL, err);
	}
	if (strcmp(status, "passing") && strcmp(status, "warning") && strcmp(status, "critical")) {
		json_decref(doc);
		return reply_error(k, 400, "Status: must be one of passing, warning, critical");
	}
	r = set_ttl(k, id, status, output);
	json_decref(doc);
	return r;
}

static enum MHD_Result h_hook(struct call *k, const char *service)
{
	const struct api_hooks *h = &k->a->o.hooks;
	json_t *out = NULL;
	char *err = NULL;
	int rc;

	if (service) {
		if (!may_write(k, service) && !(k->token && strcmp(sget(k->token, "Kind"), "service") == 0 &&
						strcmp(sget(k->token, "ServiceName"), service) == 0))
			return forbidden(k, "read this service's leaf certificate");
		if (h->leaf_json == NULL)
			return reply_error(k, 501, "this agent does not manage certificates");
		rc = h->leaf_json(h->arg, service, &out, &err);
	} else {
		if (h->roots_json == NULL)
			return reply_error(k, 501, "this agent does not manage certificates");
		rc = h->roots_json(h->arg, &out, &err);
	}
	if (rc != WEFT_OK)
		return reply_rc(k, rc, err);
	return reply_json(k, 200, out);
}

static enum MHD_Result h_status(struct call *k)
{
	json_t *out = k->a->o.hooks.status_json ? k->a->o.hooks.status_json(k->a->o.hooks.arg) : NULL;

	if (out == NULL)
		out = json_object();
	json_object_set_new(out, "Node", json_string(k->a->node));
	return reply_json(k, 200, out);
}

static int is(struct call *k, const char *method, const char *path)
{
	return strcmp(k->method, method) == 0 && strcmp(k->url, path) == 0;
}

/* The tail after prefix (non-empty), else NULL. PUT or GET as Consul allows. */
static const char *tail(struct call *k, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(k->url, prefix, n) != 0 || k->url[n] == '\0')
		return NULL;
	return k->url + n;
}

static enum MHD_Result dispatch(struct call *k)
{
	int get = strcmp(k->method, "GET") == 0, put = strcmp(k->method, "PUT") == 0;
	const char *t;

	if (is(k, "GET", "/v1/agent/self"))
		return h_self(k);
	if (is(k, "GET", "/v1/agent/services"))
		return h_services(k);
	if (is(k, "GET", "/v1/agent/checks"))
		return h_checks(k);
	if (is(k, "PUT", "/v1/agent/service/register"))
		return h_register(k);
	if (is(k, "PUT", "/v1/agent/check/register"))
		return h_check_register(k);
	if (is(k, "GET", "/v1/agent/connect/ca/roots"))
		return h_hook(k, NULL);
	if (is(k, "GET", "/v1/weft/agent/status"))
		return h_status(k);
	if (get && (t = tail(k, "/v1/agent/connect/ca/leaf/")))
		return h_hook(k, t);
	if ((put || get) && (t = tail(k, "/v1/agent/service/deregister/")))
		return h_deregister(k, t);
	if ((put || get) && (t = tail(k, "/v1/agent/check/deregister/")))
		return h_check_deregister(k, t);
	if ((put || get) && (t = tail(k, "/v1/agent/check/pass/")))
		return set_ttl(k, t, "passing", MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "note"));
	if ((put || get) && (t = tail(k, "/v1/agent/check/warn/")))
		return set_ttl(k, t, "warning", MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "note"));
	if ((put || get) && (t = tail(k, "/v1/agent/check/fail/")))
		return set_ttl(k, t, "critical", MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "note"));
	if (put && (t = tail(k, "/v1/agent/check/update/")))
		return h_check_update(k, t);
	if (is(k, "PUT", "/v1/agent/maintenance"))
		return set_maintenance(k, NULL);
	if (put && (t = tail(k, "/v1/agent/service/maintenance/")))
		return set_maintenance(k, t);
	if (get && (t = tail(k, "/v1/agent/health/service/id/")))
		return h_health_id(k, t);
	if (get && (t = tail(k, "/v1/agent/health/service/name/")))
		return h_health_name(k, t);
	if (get && (t = tail(k, "/v1/agent/service/")))
		return h_service(k, t);
	{
		char msg[600];
		snprintf(msg, sizeof(msg), "no such endpoint on weft-agent: %s %.400s", k->method, k->url);
		return reply_error(k, 404, msg);
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct agent_api *a = cls;
	struct conn *cn = *con_cls;
	struct call k = { a, c, method, url, NULL, 0, NULL };
	const char *secret;
	char *err = NULL;
	enum MHD_Result r;
	int rc;

	(void)version;
	if (cn == NULL) {
		cn = calloc(1, sizeof(*cn));
		if (cn == NULL)
			return MHD_NO;
		*con_cls = cn;
		return MHD_YES;
	}
	if (*upload_size) {
		if (cn->len + *upload_size > BODY_MAX)
			cn->too_big = 1;
		else {
			char *nb = realloc(cn->body, cn->len + *upload_size + 1);
			if (nb == NULL)
				return MHD_NO;
			cn->body = nb;
			memcpy(cn->body + cn->len, upload, *upload_size);
			cn->len += *upload_size;
			cn->body[cn->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (cn->too_big)
		return reply_error(&k, 413, "body: larger than 1 MiB");
	k.body = cn->body;
	k.len = cn->len;
	if (a->o.auth) {
		secret = request_token(&k);
		if (secret == NULL)
			return reply_error(&k, 403, "permission denied: a token is required "
						    "(X-Consul-Token header)");
		if ((rc = resolve_token(a, secret, &k.token, &err)) != WEFT_OK)
			return reply_rc(&k, rc == WEFT_EIO ? WEFT_EIO : rc, err);
	}
	r = dispatch(&k);
	json_decref(k.token);
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn *cn = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (cn) {
		free(cn->body);
		free(cn);
	}
	*con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_warnx("api", "%s", msg);
}

int api_start(struct agent_api **out, struct agent_state *st, const struct api_opts *o,
	      char **err)
{
	struct agent_api *a = calloc(1, sizeof(*a));
	struct sockaddr_in sin;
	const char *colon = strrchr(o->bind, ':');
	char host[64];
	char *end;
	long port;
	const union MHD_DaemonInfo *info;

	if (a == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (colon == NULL || (size_t)(colon - o->bind) >= sizeof(host)) {
		free(a);
		return weft_errf(err, WEFT_EINVAL, "--http-addr: \"%s\" is not IPv4:PORT", o->bind);
	}
	memcpy(host, o->bind, (size_t)(colon - o->bind));
	host[colon - o->bind] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		free(a);
		return weft_errf(err, WEFT_EINVAL, "--http-addr: \"%s\" is not IPv4:PORT", o->bind);
	}
	sin.sin_port = htons((uint16_t)port);
	a->st = st;
	a->o = *o;
	a->node = strdup(o->node);
	a->datacenter = strdup(o->datacenter ? o->datacenter : "dc1");
	a->own_token = o->own_token ? strdup(o->own_token) : NULL;
	a->o.own_token = a->own_token;
	a->tokens = json_object();
	pthread_mutex_init(&a->mu, NULL);
	a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0,
				NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_log, a,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				MHD_OPTION_THREAD_POOL_SIZE, 2, MHD_OPTION_CONNECTION_LIMIT, 512,
				MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED,
				on_completed, a, MHD_OPTION_END);
	if (a->d == NULL) {
		api_stop(a);
		return weft_errf(err, WEFT_EIO, "--http-addr %s: cannot listen (in use?)", o->bind);
	}
	info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
	a->port = info ? info->port : (int)port;
	*out = a;
	return WEFT_OK;
}

void api_stop(struct agent_api *a)
{
	if (a == NULL)
		return;
	if (a->d)
		MHD_stop_daemon(a->d);
	json_decref(a->tokens);
	pthread_mutex_destroy(&a->mu);
	free(a->node);
	free(a->datacenter);
	free(a->own_token);
	free(a);
}

int api_port(const struct agent_api *a)
{
	return a->port;
}
