/* /v1/health/... */
#include "api.h"
#include "catalog.h"
#include "http.h"
#include "server.h"
#include "store.h"

#include <string.h>

static int h_service(struct req *r)
{
	const char *name = req_tail(r);
	struct db *db;
	json_t *tags, *meta, *out;
	const char *passing = req_query(r, "passing");

	if (name[0] == '\0')
		return req_error(r, 400, "service: a name is required: /v1/health/service/NAME");
	if (!req_authorize(r, AUTH_READ, name) || api_check_dc(r))
		return 403;
	req_watch(r, "svc:%s", name);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	tags = req_query_list(r, "tag");
	meta = req_query_list(r, "node-meta");
	out = health_service(db, req_server(r)->datacenter, name,
			     json_array_size(tags) ? tags : NULL,
			     passing && strcmp(passing, "false") != 0 && strcmp(passing, "0") != 0,
			     meta);
	store_read_end(db);
	json_decref(tags);
	json_decref(meta);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

static int h_checks(struct req *r)
{
	const char *name = req_tail(r);
	struct db *db;
	json_t *out;

	if (name[0] == '\0')
		return req_error(r, 400, "service: a name is required: /v1/health/checks/NAME");
	if (!req_authorize(r, AUTH_READ, name) || api_check_dc(r))
		return 403;
	req_watch(r, "svc:%s", name);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = health_checks_of_service(db, name);
	store_read_end(db);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

static int h_node(struct req *r)
{
	const char *name = req_tail(r);
	struct db *db;
	json_t *out;

	if (name[0] == '\0')
		return req_error(r, 400, "node: a name is required: /v1/health/node/NAME");
	if (!req_authorize(r, AUTH_READ, name) || api_check_dc(r))
		return 403;
	req_watch(r, "node:%s", name);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = health_checks_of_node(db, name);
	store_read_end(db);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

static int h_state(struct req *r)
{
	const char *state = req_tail(r);
	struct db *db;
	json_t *out;

	if (strcmp(state, "any") && strcmp(state, "passing") && strcmp(state, "warning") &&
	    strcmp(state, "critical"))
		return req_error(r, 400, "state: \"%s\" is not one of any, passing, warning, critical",
				 state);
	if (!req_authorize(r, AUTH_READ, NULL) || api_check_dc(r))
		return 403;
	req_watch(r, "checks");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = health_checks_in_state(db, state);
	store_read_end(db);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

const struct route api_health_routes[] = {
	{ M_GET, "/v1/health/service/", ROUTE_PREFIX | ROUTE_BLOCKING, h_service },
	{ M_GET, "/v1/health/checks/", ROUTE_PREFIX | ROUTE_BLOCKING, h_checks },
	{ M_GET, "/v1/health/node/", ROUTE_PREFIX | ROUTE_BLOCKING, h_node },
	{ M_GET, "/v1/health/state/", ROUTE_PREFIX | ROUTE_BLOCKING, h_state },
	{ 0, NULL, 0, NULL },
};
