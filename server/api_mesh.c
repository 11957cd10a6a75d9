/* /v1/meshes and /v1/zones: Weft's own resources, in Consul's conventions
 * (PascalCase fields, CreateIndex/ModifyIndex, blocking GETs). */
#include "api.h"
#include "err.h"
#include "http.h"
#include "mesh.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

static int h_meshes(struct req *r)
{
	struct db *db;
	json_t *out;

	if (!req_authorize(r, AUTH_POLICY_READ, NULL))
		return 403;
	req_watch(r, "meshes");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = mesh_list(db, req_server(r)->dev);
	store_read_end(db);
	if (out == NULL)
		return req_error(r, 500, "store: cannot list meshes");
	if ((out = api_filter(r, out)) == NULL)
		return 400;
	return req_reply_json(r, 200, out);
}

static int h_mesh(struct req *r)
{
	const char *name = req_tail(r);
	struct db *db;
	json_t *out;

	if (name[0] == '\0')
		return req_error(r, 400, "name: a mesh name is required: /v1/meshes/NAME");
	if (strcmp(req_method(r), "GET") == 0) {
		if (!req_authorize(r, AUTH_POLICY_READ, name))
			return 403;
		req_watch(r, "mesh:%s", name);
		if ((db = api_read_begin(r)) == NULL)
			return 500;
		out = mesh_get(db, name, req_server(r)->dev);
		store_read_end(db);
		if (out == NULL)
			return req_error(r, 404, "mesh \"%s\" does not exist", name);
		return req_reply_json(r, 200, out);
	}
	if (strcmp(req_method(r), "DELETE") == 0) {
		char *arg;

		if (!req_authorize(r, AUTH_POLICY_WRITE, name))
			return 403;
		if ((arg = strdup(name)) == NULL)
			return req_error(r, 500, "out of memory");
		return req_write(r, mesh_apply_delete, arg, free);
	}
	{
		struct mesh_put *m = calloc(1, sizeof(*m));
		char *err = NULL;
		json_t *doc;
		int rc;

		if (m == NULL)
			return req_error(r, 500, "out of memory");
		if ((doc = req_body_json(r)) == NULL) {
			free(m);
			return 400;
		}
		rc = mesh_decode_put(doc, name, m, &err);
		json_decref(doc);
		m->dev = req_server(r)->dev;
		if (rc == WEFT_OK && (rc = req_query_u64(r, "cas", &m->cas)) < 0) {
			mesh_put_free(m);
			return 400;
		}
		if (rc != WEFT_OK && rc != 1) {
			mesh_put_free(m);
			return api_bad(r, rc, err);
		}
		m->cas_set = rc == 1;
		if (!req_authorize(r, AUTH_POLICY_WRITE, name)) {
			mesh_put_free(m);
			return 403;
		}
		return req_write(r, mesh_apply_put, m, mesh_put_free);
	}
}

/* Only the local zone for now; federation adds the others. */
static int h_zones(struct req *r)
{
	const struct server *srv = req_server(r);
	json_t *zone;

	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	req_watch(r, "zones");
	zone = json_pack("{s:s, s:b, s:s, s:s, s:[{s:s, s:s}]}", "Name", srv->datacenter,
			 "Local", 1, "Status", "online", "Mode", "standalone", "Servers",
			 "Node", srv->node_name, "Address", srv->http_addr);
	return req_reply_json(r, 200, json_pack("[o]", zone));
}

const struct route api_mesh_routes[] = {
	{ M_GET, "/v1/meshes", ROUTE_BLOCKING, h_meshes },
	{ M_GET | M_PUT | M_DELETE, "/v1/meshes/", ROUTE_PREFIX | ROUTE_BLOCKING, h_mesh },
	{ M_GET, "/v1/zones", ROUTE_BLOCKING, h_zones },
	{ 0, NULL, 0, NULL },
};
