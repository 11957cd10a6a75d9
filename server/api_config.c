/* /v1/config: Consul's config entries, validated field by field
 * (lib/config_entry.h) and across entries inside the write, so that two
 * concurrent writes cannot together break a discovery chain. A
 * service-intentions entry is also the storage of its destination's
 * intentions: its sources are checked with the intention engine's decoder,
 * so the two APIs accept exactly the same rules. */
#include "api.h"
#include "config_entry.h"
#include "config_store.h"
#include "err.h"
#include "http.h"
#include "intention.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* config_validate_fn: runs inside the write, on the writer's connection. */
static int validate_cross(void *ctx, struct db *db, const char *mesh, json_t *entry, char **err)
{
	struct config_op *op = ctx;

	return config_store_check(db, mesh, op->kind, op->name, entry, err);
}

/* Each source of a service-intentions entry, as the intention it stands for,
 * must decode: the same rules as /v1/connect/intentions. */
static int check_intention_sources(json_t *entry, char **err)
{
	json_t *sources = config_entry_intention_sources(entry), *src;
	const char *dst = config_entry_name(entry);
	size_t i;

	json_array_foreach(sources, i, src) {
		json_t *ixj = json_deep_copy(src);
		struct intention *ix = NULL;
		char ctx[48];
		int rc;

		if (ixj == NULL)
			return weft_errf(err, WEFT_ENOMEM, "out of memory");
		/* A source names the caller; the entry names the destination. */
		json_object_set(ixj, "SourceName", json_object_get(src, "Name"));
		if (json_object_get(src, "Namespace"))
			json_object_set(ixj, "SourceNS", json_object_get(src, "Namespace"));
		json_object_del(ixj, "Name");
		json_object_del(ixj, "Namespace");
		json_object_del(ixj, "Type");
		json_object_del(ixj, "LegacyID");
		json_object_del(ixj, "LegacyMeta");
		json_object_del(ixj, "LegacyCreateTime");
		json_object_del(ixj, "LegacyUpdateTime");
		json_object_set_new(ixj, "DestinationName", json_string(dst));
		snprintf(ctx, sizeof(ctx), "Sources[%zu]", i);
		rc = intention_from_json(ixj, ctx, &ix, err);
		intention_free(ix);
		json_decref(ixj);
		if (rc != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

static int parse_cas(struct req *r, struct config_op *op)
{
	int rc = req_query_u64(r, "cas", &op->cas);

	if (rc < 0)
		return -1;
	op->cas_set = rc > 0;
	return 0;
}

static int h_put(struct req *r)
{
	const char *mesh = api_mesh_param(r);
	json_t *doc, *entry = NULL;
	struct config_op *op;
	char *err = NULL;
	int rc;

	if (mesh == NULL)
		return 400;
	if ((doc = req_body_json(r)) == NULL)
		return 400;
	rc = config_entry_decode(doc, &entry, &err);
	json_decref(doc);
	if (rc == WEFT_OK && strcmp(config_entry_kind(entry), "service-intentions") == 0)
		rc = check_intention_sources(entry, &err);
	if (rc != WEFT_OK) {
		json_decref(entry);
		return api_bad(r, rc, err);
	}
	if (!req_authorize(r, AUTH_POLICY_WRITE, config_entry_name(entry))) {
		json_decref(entry);
		return 403;
	}
	op = config_op_new(mesh, config_entry_kind(entry), config_entry_name(entry), entry);
	json_decref(entry);
	if (op == NULL)
		return req_error(r, 500, "out of memory");
	if (parse_cas(r, op) != 0) {
		config_op_free(op);
		return 400;
	}
	op->validate = validate_cross;
	op->validate_ctx = op;
	return req_write(r, config_store_apply_put, op, config_op_free);
}

/* Splits "/v1/config/KIND[/NAME]"; replies 400 and returns -1 when bad. */
static int split_path(struct req *r, char *kind, size_t ksize, const char **name)
{
	const char *tail = req_tail(r), *slash = strchr(tail, '/');
	size_t kl = slash ? (size_t)(slash - tail) : strlen(tail);

	if (kl == 0 || kl >= ksize) {
		req_error(r, 400, "kind: a config entry kind is required: /v1/config/KIND[/NAME]");
		return -1;
	}
	memcpy(kind, tail, kl);
	kind[kl] = '\0';
	if (!config_entry_kind_valid(kind)) {
		req_error(r, 400,
			  "kind: \"%s\" is not one of service-defaults, proxy-defaults, service-router, "
			  "service-splitter, service-resolver, service-intentions, mesh", kind);
		return -1;
	}
	*name = slash ? slash + 1 : NULL;
	if (*name && (*name)[0] == '\0')
		*name = NULL;
	if (*name && (strchr(*name, '/') || strlen(*name) > CONFIG_NAME_MAX)) {
		req_error(r, 400, "name: \"%s\" is not a config entry name", *name);
		return -1;
	}
	return 0;
}

static int h_kind(struct req *r)
{
	const char *mesh = api_mesh_param(r), *name;
	char kind[CONFIG_KIND_MAX + 1];
	struct config_op *op;
	struct db *db;
	json_t *out;

	if (mesh == NULL || split_path(r, kind, sizeof(kind), &name) != 0)
		return 400;
	if (strcmp(req_method(r), "DELETE") == 0) {
		if (name == NULL)
			return req_error(r, 400, "name: DELETE needs /v1/config/KIND/NAME");
		if (!req_authorize(r, AUTH_POLICY_WRITE, name))
			return 403;
		op = config_op_new(mesh, kind, name, NULL);
		if (op == NULL)
			return req_error(r, 500, "out of memory");
		if (parse_cas(r, op) != 0) {
			config_op_free(op);
			return 400;
		}
		op->validate = validate_cross;
		op->validate_ctx = op;
		return req_write(r, config_store_apply_delete, op, config_op_free);
	}
	if (!req_authorize(r, AUTH_POLICY_READ, name))
		return 403;
	if (name)
		req_watch(r, "cfg:%s:%s:%s", mesh, kind, name);
	else
		req_watch(r, "cfg:%s:%s", mesh, kind);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = name ? config_store_get(db, mesh, kind, name) : config_store_list(db, mesh, kind);
	store_read_end(db);
	if (out == NULL && name)
		return req_error(r, 404, "config entry not found for %s/%s in mesh \"%s\"", kind, name,
				 mesh);
	if (out == NULL)
		return req_error(r, 500, "store: cannot list %s entries", kind);
	if (name == NULL && (out = api_filter(r, out)) == NULL)
		return 400;
	return req_reply_json(r, 200, out);
}

const struct route api_config_routes[] = {
	{ M_PUT, "/v1/config", 0, h_put },
	{ M_GET | M_DELETE, "/v1/config/", ROUTE_PREFIX | ROUTE_BLOCKING, h_kind },
	{ 0, NULL, 0, NULL },
};
