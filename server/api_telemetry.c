/* /v1/weft/telemetry/...: the proxies' traffic as the agents report it
 * (server/telemetry.h, docs/api.md "Proxy telemetry"). In memory: no store
 * write, and blocking queries on telemetry's own hub and index. */
#include "api.h"
#include "err.h"
#include "http.h"
#include "jsonx.h"
#include "server.h"
#include "telemetry.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_PREFIX "/v1/weft/telemetry/node/"
#define SERVICE_PREFIX "/v1/weft/telemetry/service/"
#define EDGES_PATH "/v1/weft/telemetry/edges"

static const char *const read_params[] = { "index", "wait", "mesh", "dc", "stale", "consistent",
					   NULL };

/* Rates are rounded to 4 decimals: printed with 10 significant digits,
 * 7.98 reads 7.98 and not 7.9800000000000004. */
static int reply(struct req *r, json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10));

	json_decref(doc);
	if (text == NULL)
		return req_error(r, 500, "cannot encode the reply");
	return req_reply_raw(r, 200, "application/json", text, strlen(text));
}

static struct telemetry *tm_of(struct req *r)
{
	struct telemetry *t = req_server(r)->telemetry;

	if (t == NULL)
		req_error(r, 503, "telemetry: not enabled on this server");
	return t;
}

static int h_put_node(struct req *r)
{
	const char *node = req_tail(r);
	struct tm_sample s;
	struct telemetry *t;
	char *err = NULL;
	json_t *doc;
	int rc;

	if (node[0] == '\0' || strchr(node, '/') || !name_valid(node, 128))
		return req_error(r, 404, "no such endpoint: %s %s (want %s:node with a valid node "
				 "name)", req_method(r), req_path(r), NODE_PREFIX);
	if (api_check_dc(r) < 0)
		return 400;
	if ((t = tm_of(r)) == NULL)
		return 503;
	/* Who may not report for the node learns nothing from the body's errors. */
	if (!req_authorize(r, AUTH_NODE_WRITE, node))
		return 403;
	if ((doc = req_body_json(r)) == NULL)
		return 400;
	rc = telemetry_decode(doc, &s, &err);
	json_decref(doc);
	if (rc != WEFT_OK)
		return api_bad(r, rc, err);
	telemetry_record(t, node, &s, now_wall_ms());
	telemetry_sample_clear(&s);
	return req_reply_json(r, 200, json_true());
}

static int h_get_service(struct req *r)
{
	const char *name = req_tail(r), *mesh;
	struct telemetry *t;
	char topic[256];

	if (name[0] == '\0' || strchr(name, '/'))
		return req_error(r, 404, "no such endpoint: %s %s (want %s:name)", req_method(r),
				 req_path(r), SERVICE_PREFIX);
	if (!req_query_only(r, read_params))
		return req_error(r, 400, "query: only index, wait, mesh and dc apply here");
	if (api_check_dc(r) < 0 || (mesh = api_mesh_param(r)) == NULL)
		return 400;
	if (!name_valid(name, 128))
		return req_error(r, 400, "service: \"%s\" is not a valid service name", name);
	if ((t = tm_of(r)) == NULL)
		return 503;
	if (!req_authorize(r, AUTH_READ, name))
		return 403;
	snprintf(topic, sizeof(topic), "svc:%s/%s", mesh, name);
	req_watch_hub(r, telemetry_hub(t), topic);
	return reply(r, telemetry_service_json(t, mesh, name, now_wall_ms()));
}

static int h_get_edges(struct req *r)
{
	struct telemetry *t;
	const char *mesh;
	char topic[128];

	if (!req_query_only(r, read_params))
		return req_error(r, 400, "query: only index, wait, mesh and dc apply here");
	if (api_check_dc(r) < 0 || (mesh = api_mesh_param(r)) == NULL)
		return 400;
	if ((t = tm_of(r)) == NULL)
		return 503;
	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	snprintf(topic, sizeof(topic), "edges:%s", mesh);
	req_watch_hub(r, telemetry_hub(t), topic);
	return reply(r, telemetry_edges_json(t, mesh, now_wall_ms()));
}

const struct route api_telemetry_routes[] = {
	{ M_PUT, NODE_PREFIX, ROUTE_PREFIX, h_put_node },
	{ M_GET, SERVICE_PREFIX, ROUTE_PREFIX | ROUTE_BLOCKING, h_get_service },
	{ M_GET, EDGES_PATH, ROUTE_BLOCKING, h_get_edges },
	{ 0, NULL, 0, NULL },
};
