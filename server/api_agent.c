/* /v1/agent/... and /metrics: the agent endpoints Consul clients expect at
 * the server's address, acting for the server's own node (srv->node_name). */
#include "agent.h"
#include "liveness.h"
#include "api.h"
#include "catalog.h"
#include "err.h"
#include "http.h"
#include "jsonx.h"
#include "metrics.h"
#include "server.h"
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_service_reg(void *p) { agent_service_reg_free(p); }
static void free_check_reg(void *p) { agent_check_reg_free(p); }
static void free_op(void *p) { agent_op_free(p); }


static int flag_set(struct req *r, const char *name)
{
	const char *v = req_query(r, name);
	int b = 1;

	if (v == NULL)
		return 0;
	return v[0] == '\0' || parse_bool(v, &b) != 0 || b;
}

/* The port of host:port, or 0. */
static int addr_port(const char *addr)
{
	const char *colon = addr ? strrchr(addr, ':') : NULL;

	return colon ? atoi(colon + 1) : 0;
}

/* ---- views ---- */

static json_t *member_json(struct server *srv)
{
	char port[16];
	int p = addr_port(srv->http_addr);

	snprintf(port, sizeof(port), "%d", p);
	return json_pack("{s:s, s:s, s:i, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s},"
			 " s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
			 "Name", srv->node_name, "Addr", srv->advertise_addr, "Port", p,
			 "Tags", "role", "consul", "dc", srv->datacenter, "id", srv->node_id,
			 "port", port, "build", srv->version, "vsn", "2", "vsn_min", "2",
			 "vsn_max", "3", "bootstrap", "1", "segment", "",
			 "Status", 1, "ProtocolMin", 1, "ProtocolMax", 5, "ProtocolCur", 2,
			 "DelegateMin", 2, "DelegateMax", 5, "DelegateCur", 4);
}

static int h_self(struct req *r)
{
	struct server *srv = req_server(r);
	struct db *db;
	json_t *node, *meta, *out;

	if (!req_authorize(r, AUTH_OPERATOR_READ, NULL))
		return 403;
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	node = catalog_node_json(db, srv->datacenter, srv->node_name);
	store_read_end(db);
	meta = node ? json_incref(json_object_get(node, "Meta")) : json_object();
	json_decref(node);
	out = json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s},"
			" s:{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s},"
			" s:o, s:o}",
			"Config", "Datacenter", srv->datacenter, "PrimaryDatacenter", srv->datacenter,
			"NodeName", srv->node_name, "NodeID", srv->node_id, "Revision", "",
			"Server", 1, "Version", srv->version, "BuildDate", "",
			"DebugConfig", "Datacenter", srv->datacenter, "PrimaryDatacenter", srv->datacenter,
			"NodeName", srv->node_name, "NodeID", srv->node_id, "ServerMode", 1,
			"Version", srv->version, "AdvertiseAddrLAN", srv->advertise_addr,
			"HTTPAddr", srv->http_addr,
			"Member", member_json(srv), "Meta", meta ? meta : json_object());
	return req_reply_json(r, 200, out);
}

static int h_members(struct req *r)
{
	if (!req_authorize(r, AUTH_OPERATOR_READ, NULL))
		return 403;
	return req_reply_json(r, 200, json_pack("[o]", member_json(req_server(r))));
}

static void add_datacenter(json_t *svc, const char *dc)
{
	if (json_is_object(svc))
		json_object_set_new(svc, "Datacenter", json_string(dc));
}

static int h_services(struct req *r)
{
	struct server *srv = req_server(r);
	struct db *db;
	json_t *out, *v;
	const char *k;

	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	req_watch(r, "node:%s", srv->node_name);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = catalog_agent_services(db, srv->node_name);
	store_read_end(db);
	json_object_foreach(out, k, v)
		add_datacenter(v, srv->datacenter);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

static int h_service(struct req *r)
{
	struct server *srv = req_server(r);
	const char *id = req_tail(r);
	struct db *db;
	json_t *out;

	if (id[0] == '\0')
		return req_error(r, 400, "service: an ID is required: /v1/agent/service/ID");
	req_watch(r, "node:%s", srv->node_name);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = catalog_agent_service(db, srv->node_name, id);
	store_read_end(db);
	if (out == NULL) {
		if (!req_authorize(r, AUTH_READ, NULL))
			return 403;
		return req_error(r, 404, "unknown service ID \"%s\"", id);
	}
	if (!req_authorize(r, AUTH_READ, json_string_value(json_object_get(out, "Service")))) {
		json_decref(out);
		return 403;
	}
	add_datacenter(out, srv->datacenter);
	return req_reply_json(r, 200, out);
}

static int h_checks(struct req *r)
{
	struct server *srv = req_server(r);
	struct db *db;
	json_t *out;

	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	req_watch(r, "node:%s", srv->node_name);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = catalog_agent_checks(db, srv->node_name);
	store_read_end(db);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

/* ---- services ---- */

/* The name of the service with this ID on the server's node, or NULL. */
static char *service_name_of(struct req *r, const char *id, int *failed)
{
	struct server *srv = req_server(r);
	struct db *db = api_read_begin(r);
	json_t *svc;
	char *name = NULL;

	*failed = db == NULL;
	if (db == NULL)
		return NULL;
	svc = catalog_agent_service(db, srv->node_name, id);
	store_read_end(db);
	if (svc)
		name = strdup(json_string_value(json_object_get(svc, "Service")));
	json_decref(svc);
	return name;
}

static int h_service_register(struct req *r)
{
	struct server *srv = req_server(r);
	struct agent_service_reg *reg = NULL;
	char *err = NULL, *old_name;
	json_t *doc;
	int rc, failed, allowed;

	doc = req_body_json(r);
	if (doc == NULL)
		return 400;
	rc = agent_decode_service(doc, srv->node_name, srv->advertise_addr, &reg, &err);
	json_decref(doc);
	if (rc != WEFT_OK)
		return api_bad(r, rc, err);
	reg->replace_checks = flag_set(r, "replace-existing-checks");
	if (!req_authorize(r, AUTH_SERVICE_WRITE, reg->reg.svc.name)) {
		agent_service_reg_free(reg);
		return 403;
	}
	/* Replacing an instance of another service needs that service too. */
	old_name = service_name_of(r, reg->reg.svc.id, &failed);
	allowed = failed || old_name == NULL || strcmp(old_name, reg->reg.svc.name) == 0 ||
		  req_authorize(r, AUTH_SERVICE_WRITE, old_name);
	free(old_name);
	if (failed || !allowed) {
		agent_service_reg_free(reg);
		return failed ? 500 : 403;
	}
	return req_write(r, agent_apply_service_register, reg, free_service_reg);
}

static int h_service_deregister(struct req *r)
{
	const char *id = req_tail(r);
	struct agent_op *op;
	char *name;
	int failed;

	if (id[0] == '\0')
		return req_error(r, 400, "service: an ID is required: /v1/agent/service/deregister/ID");
	name = service_name_of(r, id, &failed);
	if (failed)
		return 500;
	if (name == NULL) {
		if (!req_authorize(r, AUTH_SERVICE_WRITE, id))
			return 403;
		return req_error(r, 404, "unknown service ID \"%s\": pass the service ID, not its name",
				 id);
	}
	if (!req_authorize(r, AUTH_SERVICE_WRITE, name)) {
		free(name);
		return 403;
	}
	free(name);
	op = agent_op_new(req_server(r)->node_name);
	if (op == NULL || (op->service_id = strdup(id)) == NULL) {
		agent_op_free(op);
		return req_error(r, 500, "out of memory");
	}
	return req_write(r, agent_apply_deregister, op, free_op);
}

/* ?enable= (required) and ?reason= of the maintenance endpoints. */
static int maintenance_args(struct req *r, int *enable, const char **reason)
{
	const char *v = req_query(r, "enable");

	if (v == NULL || v[0] == '\0') {
		req_error(r, 400, "enable: is required (true or false)");
		return -1;
	}
	if (parse_bool(v, enable) != 0) {
		req_error(r, 400, "enable: \"%s\" is not true or false", v);
		return -1;
	}
	*reason = req_query(r, "reason");
	return 0;
}

static int h_service_maintenance(struct req *r)
{
	const char *id = req_tail(r), *reason = NULL;
	struct agent_op *op;
	char *name;
	int enable = 0, failed;

	if (id[0] == '\0')
		return req_error(r, 400, "service: an ID is required: /v1/agent/service/maintenance/ID");
	if (maintenance_args(r, &enable, &reason) != 0)
		return 400;
	name = service_name_of(r, id, &failed);
	if (failed)
		return 500;
	if (name == NULL) {
		if (!req_authorize(r, AUTH_SERVICE_WRITE, id))
			return 403;
		return req_error(r, 404, "unknown service ID \"%s\"", id);
	}
	if (!req_authorize(r, AUTH_SERVICE_WRITE, name)) {
		free(name);
		return 403;
	}
	free(name);
	op = agent_op_new(req_server(r)->node_name);
	if (op == NULL || (op->service_id = strdup(id)) == NULL) {
		agent_op_free(op);
		return req_error(r, 500, "out of memory");
	}
	if (reason && (op->reason = agent_output_dup(reason)) == NULL) {
		agent_op_free(op);
		return req_error(r, 400, "reason: must be UTF-8 text");
	}
	op->enable = enable;
	return req_write(r, agent_apply_maintenance, op, free_op);
}

static int h_node_maintenance(struct req *r)
{
	const char *reason = NULL;
	struct agent_op *op;
	int enable = 0;

	if (maintenance_args(r, &enable, &reason) != 0)
		return 400;
	if (!req_authorize(r, AUTH_NODE_WRITE, req_server(r)->node_name))
		return 403;
	op = agent_op_new(req_server(r)->node_name);
	if (op == NULL)
		return req_error(r, 500, "out of memory");
	if (reason && (op->reason = agent_output_dup(reason)) == NULL) {
		agent_op_free(op);
		return req_error(r, 400, "reason: must be UTF-8 text");
	}
	op->enable = enable;
	return req_write(r, agent_apply_maintenance, op, free_op);
}

/* ---- checks ---- */

/* Authorises a change to a check: service:write on its service, or
 * node:write on the node for a node check. */
static int authorize_check(struct req *r, const struct agent_check_info *ci)
{
	if (ci->service_name[0])
		return req_authorize(r, AUTH_SERVICE_WRITE, ci->service_name);
	return req_authorize(r, AUTH_NODE_WRITE, req_server(r)->node_name);
}

/* Looks up the check named by the path tail; replies 404 (or 403) when
 * there is none. Returns 0 when found. */
static int find_check(struct req *r, const char *id, struct agent_check_info *ci)
{
	struct db *db = api_read_begin(r);
	int found;

	if (db == NULL)
		return 500;
	found = agent_check_lookup(db, req_server(r)->node_name, id, ci);
	store_read_end(db);
	if (found)
		return 0;
	if (!req_authorize(r, AUTH_NODE_WRITE, req_server(r)->node_name))
		return 403;
	return req_error(r, 404, "unknown check ID \"%s\": pass the check ID, not its name", id);
}

static int h_check_register(struct req *r)
{
	struct server *srv = req_server(r);
	struct agent_check_reg *reg = NULL;
	char *err = NULL, *name = NULL;
	json_t *doc;
	int rc, failed = 0, allowed;

	doc = req_body_json(r);
	if (doc == NULL)
		return 400;
	rc = agent_decode_check(doc, srv->node_name, &reg, &err);
	json_decref(doc);
	if (rc != WEFT_OK)
		return api_bad(r, rc, err);
	if (reg->check.service_id[0]) {
		name = service_name_of(r, reg->check.service_id, &failed);
		if (failed) {
			agent_check_reg_free(reg);
			return 500;
		}
		if (name == NULL) {
			rc = req_error(r, 400, "ServiceID: \"%s\" is not a service registered on node \"%s\"",
				       reg->check.service_id, srv->node_name);
			agent_check_reg_free(reg);
			return rc;
		}
		allowed = req_authorize(r, AUTH_SERVICE_WRITE, name);
		free(name);
	} else {
		allowed = req_authorize(r, AUTH_NODE_WRITE, srv->node_name);
	}
	if (!allowed) {
		agent_check_reg_free(reg);
		return 403;
	}
	return req_write(r, agent_apply_check_register, reg, free_check_reg);
}

static int h_check_deregister(struct req *r)
{
	const char *id = req_tail(r);
	struct agent_check_info ci;
	struct agent_op *op;
	int rc;

	if (id[0] == '\0')
		return req_error(r, 400, "check: an ID is required: /v1/agent/check/deregister/ID");
	if ((rc = find_check(r, id, &ci)) != 0)
		return rc;
	if (!authorize_check(r, &ci))
		return 403;
	op = agent_op_new(req_server(r)->node_name);
	if (op == NULL || (op->check_id = strdup(id)) == NULL) {
		agent_op_free(op);
		return req_error(r, 500, "out of memory");
	}
	return req_write(r, agent_apply_deregister, op, free_op);
}

/* Sets a TTL check's status: pass/warn/fail (?note=) and update (body). */
static int check_update(struct req *r, const char *id, const char *status, const char *output)
{
	struct agent_check_info ci;
	struct agent_op *op;
	int rc;

	if (id[0] == '\0')
		return req_error(r, 400, "check: an ID is required: %s", req_path(r));
	if ((rc = find_check(r, id, &ci)) != 0)
		return rc;
	if (!authorize_check(r, &ci))
		return 403;
	if (strcmp(ci.type, "ttl") != 0)
		return req_error(r, 400, "check: \"%s\" is not a TTL check (its type is \"%s\"); only TTL "
				 "checks take status updates", id, ci.type[0] ? ci.type : "none");
	op = agent_op_new(req_server(r)->node_name);
	if (op == NULL || (op->check_id = strdup(id)) == NULL ||
	    (op->status = strdup(status)) == NULL) {
		agent_op_free(op);
		return req_error(r, 500, "out of memory");
	}
	if ((op->output = agent_output_dup(output ? output : "")) == NULL) {
		agent_op_free(op);
		return req_error(r, 400, "%s: must be UTF-8 text", req_query(r, "note") ? "note" : "Output");
	}
	return req_write(r, agent_apply_check_update, op, free_op);
}

static int h_check_pass(struct req *r)
{
	return check_update(r, req_tail(r), "passing", req_query(r, "note"));
}

static int h_check_warn(struct req *r)
{
	return check_update(r, req_tail(r), "warning", req_query(r, "note"));
}

static int h_check_fail(struct req *r)
{
	return check_update(r, req_tail(r), "critical", req_query(r, "note"));
}

static int h_check_update(struct req *r)
{
	const char *status = NULL, *output = NULL;
	char *err = NULL;
	json_t *doc = req_body_json(r);
	int rc;

	if (doc == NULL)
		return 400;
	if (!json_is_object(doc)) {
		json_decref(doc);
		return req_error(r, 400, "body: must be a JSON object with Status and Output");
	}
	if (jx_req_str(doc, NULL, "Status", &status, 16, &err) != WEFT_OK ||
	    jx_str(doc, NULL, "Output", &output, 1 << 20, &err) != WEFT_OK) {
		json_decref(doc);
		return api_bad(r, WEFT_EINVAL, err);
	}
	if (!check_status_valid(status)) {
		rc = req_error(r, 400, "Status: \"%s\" is not one of passing, warning, critical", status);
		json_decref(doc);
		return rc;
	}
	rc = check_update(r, req_tail(r), status, output);
	json_decref(doc);
	return rc;
}

/* ---- local service health (/v1/agent/health/service/...) ---- */

/* {AggregatedStatus, Service, Checks} for one service: its checks and the
 * node's. */
static json_t *service_health(json_t *svc, json_t *all_checks, const char *dc)
{
	const char *id = json_string_value(json_object_get(svc, "ID")), *k;
	json_t *checks = json_array(), *c;

	json_object_foreach(all_checks, k, c) {
		const char *sid = json_string_value(json_object_get(c, "ServiceID"));
		if (sid[0] == '\0' || strcmp(sid, id) == 0)
			json_array_append(checks, c);
	}
	add_datacenter(svc, dc);
	return json_pack("{s:s, s:O, s:o}", "AggregatedStatus", health_aggregate(checks), "Service", svc,
			 "Checks", checks);
}

/* agg may point into body. */
static int reply_health(struct req *r, int status, const char *agg, json_t *body)
{
	const char *format = req_query(r, "format");
	char *text;

	if (format && strcmp(format, "text") == 0) {
		text = strdup(agg);
		json_decref(body);
		if (text == NULL)
			return req_error(r, 500, "out of memory");
		return req_reply_raw(r, status, "text/plain", text, strlen(text));
	}
	return req_reply_json(r, status, body);
}

static int h_health_by_id(struct req *r)
{
	struct server *srv = req_server(r);
	const char *id = req_tail(r);
	struct db *db;
	json_t *svc, *checks, *out;
	const char *agg;

	if (id[0] == '\0')
		return req_error(r, 400, "service: an ID is required: /v1/agent/health/service/id/ID");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	svc = catalog_agent_service(db, srv->node_name, id);
	checks = svc ? catalog_agent_checks(db, srv->node_name) : NULL;
	store_read_end(db);
	if (svc == NULL) {
		if (!req_authorize(r, AUTH_READ, NULL))
			return 403;
		if (req_query(r, "format") && strcmp(req_query(r, "format"), "text") == 0)
			return req_reply_raw(r, 404, "text/plain", strdup("unknown service ID"), 18);
		return req_error(r, 404, "unknown service ID \"%s\"", id);
	}
	if (!req_authorize(r, AUTH_READ, json_string_value(json_object_get(svc, "Service")))) {
		json_decref(svc);
		json_decref(checks);
		return 403;
	}
	out = service_health(svc, checks, srv->datacenter);
	json_decref(svc);
	json_decref(checks);
	agg = json_string_value(json_object_get(out, "AggregatedStatus"));
	return reply_health(r, health_http_status(agg), agg, out);
}

static int h_health_by_name(struct req *r)
{
	struct server *srv = req_server(r);
	const char *name = req_tail(r), *k, *agg = "passing";
	struct db *db;
	json_t *svcs, *checks, *out, *svc;
	int status = 200;

	if (name[0] == '\0')
		return req_error(r, 400, "service: a name is required: /v1/agent/health/service/name/NAME");
	if (!req_authorize(r, AUTH_READ, name))
		return 403;
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	svcs = catalog_agent_services(db, srv->node_name);
	checks = catalog_agent_checks(db, srv->node_name);
	store_read_end(db);
	out = json_array();
	json_object_foreach(svcs, k, svc) {
		json_t *h;
		int st;
		if (strcmp(json_string_value(json_object_get(svc, "Service")), name) != 0)
			continue;
		h = service_health(svc, checks, srv->datacenter);
		st = health_http_status(json_string_value(json_object_get(h, "AggregatedStatus")));
		/* The answer's status is the worst instance's. */
		if (st > status || (st == 503 && strcmp(agg, "critical") != 0)) {
			status = st;
			agg = json_string_value(json_object_get(h, "AggregatedStatus"));
		}
		json_array_append_new(out, h);
	}
	json_decref(svcs);
	json_decref(checks);
	if (json_array_size(out) == 0) {
		json_decref(out);
		if (req_query(r, "format") && strcmp(req_query(r, "format"), "text") == 0)
			return req_reply_raw(r, 404, "text/plain", strdup("critical"), 8);
		return req_error(r, 404, "no service named \"%s\" on this agent", name);
	}
	return reply_health(r, status, agg, out);
}

/* ---- metrics ---- */

static int reply_prometheus(struct req *r)
{
	struct buf out;

	buf_init(&out, 64 << 20);
	metrics_prometheus(req_server(r), &out);
	if (out.data == NULL)
		return req_reply_raw(r, 200, METRICS_CONTENT_TYPE, strdup(""), 0);
	{
		size_t len = out.len;
		return req_reply_raw(r, 200, METRICS_CONTENT_TYPE, buf_steal(&out), len);
	}
}

static int h_metrics(struct req *r)
{
	if (!req_authorize(r, AUTH_OPERATOR_READ, NULL))
		return 403;
	return reply_prometheus(r);
}

static int h_agent_metrics(struct req *r)
{
	const char *format = req_query(r, "format");
	struct buf text;
	json_t *out;
	char *err = NULL;

	if (!req_authorize(r, AUTH_OPERATOR_READ, NULL))
		return 403;
	if (format && strcmp(format, "prometheus") == 0)
		return reply_prometheus(r);
	if (format && format[0])
		return req_error(r, 400, "format: \"%s\" is not supported (prometheus, or none for JSON)",
				 format);
	buf_init(&text, 64 << 20);
	metrics_prometheus(req_server(r), &text);
	out = metrics_json(text.data ? text.data : "", now_wall_ms(), &err);
	buf_free(&text);
	if (out == NULL)
		return api_bad(r, WEFT_EIO, err);
	return req_reply_json(r, 200, out);
}

/* Specific paths come before the prefixes that would also match them.
 * Deregistration and pass/warn/fail also take GET, as Consul did before
 * 1.0: python-consul 0.7.1 (Debian's) still sends GET for them. */
/* PUT /v1/weft/agent/heartbeat/:node: a weft-agent is alive (liveness.h);
 * kept in memory, no store write. */
static int h_heartbeat(struct req *r)
{
	const char *node = req_tail(r);

	if (node[0] == '\0' || !name_valid(node, CAT_NAME_MAX))
		return req_error(r, 400, "node: a node name is required: /v1/weft/agent/heartbeat/NODE");
	if (!req_authorize(r, AUTH_NODE_WRITE, node))
		return 403;
	liveness_heartbeat(req_server(r)->liveness, node);
	return req_reply_json(r, 200, json_true());
}

const struct route api_agent_routes[] = {
	{ M_PUT, "/v1/weft/agent/heartbeat/", ROUTE_PREFIX, h_heartbeat },
	{ M_GET, "/v1/agent/self", 0, h_self },
	{ M_GET, "/v1/agent/members", 0, h_members },
	{ M_GET, "/v1/agent/services", ROUTE_BLOCKING, h_services },
	{ M_GET, "/v1/agent/checks", ROUTE_BLOCKING, h_checks },
	{ M_GET, "/v1/agent/metrics", 0, h_agent_metrics },
	{ M_PUT, "/v1/agent/service/register", 0, h_service_register },
	{ M_PUT | M_GET, "/v1/agent/service/deregister/", ROUTE_PREFIX, h_service_deregister },
	{ M_PUT, "/v1/agent/service/maintenance/", ROUTE_PREFIX, h_service_maintenance },
	{ M_GET, "/v1/agent/service/", ROUTE_PREFIX | ROUTE_BLOCKING, h_service },
	{ M_PUT, "/v1/agent/maintenance", 0, h_node_maintenance },
	{ M_GET, "/v1/agent/health/service/id/", ROUTE_PREFIX, h_health_by_id },
	{ M_GET, "/v1/agent/health/service/name/", ROUTE_PREFIX, h_health_by_name },
	{ M_PUT, "/v1/agent/check/register", 0, h_check_register },
	{ M_PUT | M_GET, "/v1/agent/check/deregister/", ROUTE_PREFIX, h_check_deregister },
	{ M_PUT | M_GET, "/v1/agent/check/pass/", ROUTE_PREFIX, h_check_pass },
	{ M_PUT | M_GET, "/v1/agent/check/warn/", ROUTE_PREFIX, h_check_warn },
	{ M_PUT | M_GET, "/v1/agent/check/fail/", ROUTE_PREFIX, h_check_fail },
	{ M_PUT, "/v1/agent/check/update/", ROUTE_PREFIX, h_check_update },
	{ M_GET, "/metrics", 0, h_metrics },
	{ 0, NULL, 0, NULL },
};
