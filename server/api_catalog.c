/* /v1/catalog/... */
#include "api.h"
#include "catalog.h"
#include "err.h"
#include "http.h"
#include "jsonx.h"
#include "rcache.h"
#include "server.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_register(void *p) { catalog_register_free(p); }
static void free_deregister(void *p) { catalog_deregister_free(p); }

static int h_register(struct req *r)
{
	struct cat_register *reg = calloc(1, sizeof(*reg));
	char *err = NULL;
	json_t *doc;
	int rc;

	if (reg == NULL)
		return req_error(r, 500, "out of memory");
	doc = req_body_json(r);
	if (doc == NULL) {
		free(reg);
		return 400;
	}
	rc = catalog_decode_register(doc, req_server(r)->datacenter, reg, &err);
	json_decref(doc);
	if (rc != WEFT_OK) {
		catalog_register_free(reg);
		return api_bad(r, rc, err);
	}
	if (!req_authorize(r, AUTH_NODE_WRITE, reg->node) ||
	    (reg->has_service && !req_authorize(r, AUTH_SERVICE_WRITE, reg->svc.name))) {
		catalog_register_free(reg);
		return 403;
	}
	return req_write(r, catalog_apply_register, reg, free_register);
}

static int h_deregister(struct req *r)
{
	struct cat_deregister *d = calloc(1, sizeof(*d));
	char *err = NULL;
	json_t *doc;
	int rc;

	if (d == NULL)
		return req_error(r, 500, "out of memory");
	doc = req_body_json(r);
	if (doc == NULL) {
		free(d);
		return 400;
	}
	rc = catalog_decode_deregister(doc, d, &err);
	json_decref(doc);
	if (rc != WEFT_OK) {
		catalog_deregister_free(d);
		return api_bad(r, rc, err);
	}
	if (!req_authorize(r, AUTH_NODE_WRITE, d->node)) {
		catalog_deregister_free(d);
		return 403;
	}
	return req_write(r, catalog_apply_deregister, d, free_deregister);
}

static int h_datacenters(struct req *r)
{
	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	return req_reply_json(r, 200, json_pack("[s]", req_server(r)->datacenter));
}

/* The common shape of a catalog read: authorise, watch, read, filter, reply. */
static int reply_list(struct req *r, json_t *items)
{
	items = api_filter(r, items);
	if (items == NULL)
		return 400;
	return req_reply_json(r, 200, items);
}

static int h_nodes(struct req *r)
{
	struct db *db;
	json_t *meta, *out;

	if (!req_authorize(r, AUTH_READ, NULL) || api_check_dc(r))
		return 403;
	req_watch(r, "nodes");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	meta = req_query_list(r, "node-meta");
	out = catalog_nodes(db, req_server(r)->datacenter, meta);
	store_read_end(db);
	json_decref(meta);
	return reply_list(r, out);
}

static int h_services(struct req *r)
{
	struct db *db;
	json_t *meta, *out;

	if (!req_authorize(r, AUTH_READ, NULL) || api_check_dc(r))
		return 403;
	req_watch(r, "services");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	meta = req_query_list(r, "node-meta");
	out = catalog_services(db, meta);
	store_read_end(db);
	json_decref(meta);
	return req_reply_json(r, 200, out);
}

static const char *const plain_params[] = {
	"index", "wait", "dc", "stale", "consistent", "cached", "token", NULL,
};

static int h_service(struct req *r)
{
	const char *name = req_tail(r);
	struct db *db;
	json_t *tags, *meta, *out;
	char key[320], *text;
	size_t len = 0;
	int cacheable;

	if (name[0] == '\0')
		return req_error(r, 400, "service: a name is required: /v1/catalog/service/NAME");
	if (!req_authorize(r, AUTH_READ, name) || api_check_dc(r))
		return 403;
	req_watch(r, "svc:%s", name);
	/* The plain question is the hot one: answered from the reply cache
	 * while svc:NAME has not moved. Only parameters that do not change
	 * the answer may come with it (a new one is uncached by default). */
	cacheable = req_query_only(r, plain_params) &&
		    (size_t)snprintf(key, sizeof(key), "catalog/service/%s", name) < sizeof(key);
	if (cacheable && (text = rcache_get(req_server(r)->replies, key, req_index(r), &len)))
		return req_reply_raw(r, 200, "application/json", text, len);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	tags = req_query_list(r, "tag");
	meta = req_query_list(r, "node-meta");
	out = catalog_service_nodes(db, req_server(r)->datacenter, name,
				    json_array_size(tags) ? tags : NULL, meta);
	store_read_end(db);
	json_decref(tags);
	json_decref(meta);
	if (!cacheable)
		return reply_list(r, out);
	text = jx_dump(out);
	json_decref(out);
	if (text == NULL)
		return req_error(r, 500, "cannot encode the reply");
	len = strlen(text);
	rcache_put(req_server(r)->replies, key, req_index(r), text, len);
	return req_reply_raw(r, 200, "application/json", text, len);
}

static int node_reply(struct req *r, int as_list)
{
	const char *name = req_tail(r);
	struct db *db;
	json_t *out;

	if (name[0] == '\0')
		return req_error(r, 400, "node: a name is required");
	if (!req_authorize(r, AUTH_READ, name) || api_check_dc(r))
		return 403;
	req_watch(r, "node:%s", name);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = catalog_node(db, req_server(r)->datacenter, name, as_list);
	store_read_end(db);
	if (out == NULL)  /* Consul answers null for an unknown node */
		return req_reply_json(r, as_list ? 404 : 200, json_null());
	if (req_query(r, "filter")) {
		json_t *svcs = json_incref(json_object_get(out, "Services"));
		svcs = api_filter(r, svcs);
		if (svcs == NULL) {
			json_decref(out);
			return 400;
		}
		json_object_set_new(out, "Services", svcs);
	}
	return req_reply_json(r, 200, out);
}

static int h_node(struct req *r) { return node_reply(r, 0); }
static int h_node_services(struct req *r) { return node_reply(r, 1); }

const struct route api_catalog_routes[] = {
	{ M_PUT, "/v1/catalog/register", 0, h_register },
	{ M_PUT, "/v1/catalog/deregister", 0, h_deregister },
	{ M_GET, "/v1/catalog/datacenters", 0, h_datacenters },
	{ M_GET, "/v1/catalog/nodes", ROUTE_BLOCKING, h_nodes },
	{ M_GET, "/v1/catalog/services", ROUTE_BLOCKING, h_services },
	{ M_GET, "/v1/catalog/service/", ROUTE_PREFIX | ROUTE_BLOCKING, h_service },
	{ M_GET, "/v1/catalog/node/", ROUTE_PREFIX | ROUTE_BLOCKING, h_node },
	{ M_GET, "/v1/catalog/node-services/", ROUTE_PREFIX | ROUTE_BLOCKING, h_node_services },
	{ 0, NULL, 0, NULL },
};
