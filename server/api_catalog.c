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

/* A service token may place an instance of its own service on any node
 * without node:write (Consul lets service identities do the same when the
 * node is left unchanged), as long as the registration touches nothing but
 * that service: every check must belong to it, and the node's address and
 * metadata are not updated. Anything else needs node:write. */
static int service_instance_only(const struct identity *id, const struct cat_register *reg)
{
	if (id == NULL || id->kind != TOKEN_SERVICE || !reg->has_service ||
	    !auth_allows(id, AUTH_SERVICE_WRITE, reg->svc.name))
		return 0;
	for (size_t i = 0; i < reg->nchecks; i++) {
		if (strcmp(reg->checks[i].service_id, reg->svc.id) != 0)
			return 0;
	}
	return 1;
}

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
	if (reg->has_service && !req_authorize(r, AUTH_SERVICE_WRITE, reg->svc.name)) {
		catalog_register_free(reg);
		return 403;
	}
	if (service_instance_only(req_identity(r), reg)) {
		/* Leave an existing node as it is; a new one is created. */
		reg->skip_node_update = 1;
	} else if (!req_authorize(r, AUTH_NODE_WRITE, reg->node)) {
		catalog_register_free(reg);
		return 403;
	}
	return req_write(r, catalog_apply_register, reg, free_register);
}

/* A service token deregisters instances of its own service on any node, as
 * it registers them (Consul asks service:write, not node:write, for this).
 * The service's name is checked again inside the write, so that an ID
 * re-registered meanwhile as another service is left alone. */
struct dereg_instance {
	struct cat_deregister *d;
	char *name;
};

static void free_dereg_instance(void *p)
{
	struct dereg_instance *x = p;

	catalog_deregister_free(x->d);
	free(x->name);
	free(x);
}

static int apply_deregister_instance(struct db *db, uint64_t index, struct store_write *w,
				     struct store_changes *ch)
{
	struct dereg_instance *x = w->arg;
	char *name = catalog_service_name(db, x->d->node, x->d->service_id);
	int rc;

	if (name == NULL || strcmp(name, x->name) != 0) {
		rc = weft_errf(&w->err, WEFT_ECONFLICT,
			       "ServiceID: \"%s\" on node \"%s\" is no longer an instance of \"%s\"",
			       x->d->service_id, x->d->node, x->name);
		free(name);
		return rc;
	}
	free(name);
	w->arg = x->d;
	rc = catalog_apply_deregister(db, index, w, ch);
	w->arg = x;
	return rc;
}

/* 1 when this is a service token's deregistration of an instance: then
 * *status is the handler's result (403 sent, or the write queued). */
static int deregister_instance(struct req *r, struct cat_deregister *d, int *status)
{
	const struct identity *id = req_identity(r);
	struct dereg_instance *x;
	struct db *db;
	char *name;

	if (id == NULL || id->kind != TOKEN_SERVICE || d->service_id == NULL || d->check_id)
		return 0;
	if ((db = store_read_begin(req_server(r)->store)) == NULL)
		return 0;
	name = catalog_service_name(db, d->node, d->service_id);
	store_read_end(db);
	if (name == NULL)
		return 0;   /* nothing of its own there: node:write decides */
	if (!req_authorize(r, AUTH_SERVICE_WRITE, name)) {
		*status = 403;
		goto refused;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		*status = req_error(r, 500, "out of memory");
		goto refused;
	}
	x->d = d;
	x->name = name;
	*status = req_write(r, apply_deregister_instance, x, free_dereg_instance);
	return 1;
refused:
	free(name);
	catalog_deregister_free(d);
	return 1;
}

static int h_deregister(struct req *r)
{
	struct cat_deregister *d = calloc(1, sizeof(*d));
	char *err = NULL;
	json_t *doc;
	int rc, status;

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
	if (!req_authenticate(r, AUTH_NODE_WRITE, d->node)) {
		catalog_deregister_free(d);
		return 403;
	}
	if (deregister_instance(r, d, &status))
		return status;
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
	if (req_query(r, "filter")) {
		/* Consul filters the instances, then lists their services */
		json_t *rows = catalog_service_rows(db, meta);
		store_read_end(db);
		json_decref(meta);
		if ((rows = api_filter(r, rows)) == NULL)
			return 400;
		out = catalog_services_group(rows);
		json_decref(rows);
		return req_reply_json(r, 200, out);
	}
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
