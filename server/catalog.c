#include "catalog.h"
#include "err.h"
#include "jsonx.h"
#include "log.h"
#include "mesh.h"
#include "session.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* "ctx." before a field name, or nothing for top-level fields (ctx NULL). */
#define CTX(c) (c) ? (c) : "", (c) ? "." : ""

int check_status_valid(const char *s)
{
	return strcmp(s, "passing") == 0 || strcmp(s, "warning") == 0 ||
	       strcmp(s, "critical") == 0;
}

/* ---- decoding ---- */

static int decode_tagged_service_addresses(json_t *obj, const char *ctx, json_t **out, char **err)
{
	json_t *v = jx_field(obj, "TaggedAddresses"), *e;
	const char *k;
	char sub[300];

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (!json_is_object(v))
		return weft_errf(err, WEFT_EINVAL, "%s%sTaggedAddresses: must be an object", CTX(ctx));
	json_object_foreach(v, k, e) {
		const char *addr = NULL;
		long long port = 0;
		snprintf(sub, sizeof(sub), "%s%sTaggedAddresses.%s", CTX(ctx), k);
		if (!json_is_object(e))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an object with Address and Port", sub);
		if (jx_str(e, sub, "Address", &addr, CAT_NAME_MAX, err) != WEFT_OK ||
		    jx_int(e, sub, "Port", &port, 0, 65535, err) != WEFT_OK)
			return WEFT_EINVAL;
	}
	*out = v;
	return WEFT_OK;
}

int catalog_decode_service(json_t *obj, const char *ctx, struct cat_service *s, char **err)
{
	json_t *w = NULL;

	memset(s, 0, sizeof(*s));
	s->kind = "";
	s->address = "";
	s->mesh = "default";
	if (!json_is_object(obj))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx);
	if (jx_req_str(obj, ctx, "Service", &s->name, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(obj, ctx, "ID", &s->id, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Kind", &s->kind, 64, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Address", &s->address, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Mesh", &s->mesh, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_int(obj, ctx, "Port", &s->port, 0, 65535, err) != WEFT_OK ||
	    jx_str_array(obj, ctx, "Tags", &s->tags, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str_map(obj, ctx, "Meta", &s->meta, CAT_TEXT_MAX, err) != WEFT_OK ||
	    decode_tagged_service_addresses(obj, ctx, &s->tagged, err) != WEFT_OK ||
	    jx_object(obj, ctx, "Proxy", &s->proxy, err) != WEFT_OK ||
	    jx_object(obj, ctx, "Connect", &s->connect, err) != WEFT_OK ||
	    jx_object(obj, ctx, "Weights", &w, err) != WEFT_OK ||
	    jx_bool(obj, ctx, "EnableTagOverride", &s->enable_tag_override, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (!name_valid(s->name, CAT_NAME_MAX))
		return weft_errf(err, WEFT_EINVAL,
				 "%s%sService: \"%s\" is not a valid name (letters, digits, '-', '_', '.')",
				 CTX(ctx), s->name);
	if (s->id == NULL || s->id[0] == '\0')
		s->id = s->name;
	if (s->mesh[0] == '\0')
		s->mesh = "default";
	if (!name_valid(s->mesh, CAT_NAME_MAX))
		return weft_errf(err, WEFT_EINVAL, "%s%sMesh: \"%s\" is not a valid mesh name", CTX(ctx), s->mesh);
	if (s->kind[0] && strcmp(s->kind, "connect-proxy") && strcmp(s->kind, "mesh-gateway") &&
	    strcmp(s->kind, "ingress-gateway") && strcmp(s->kind, "terminating-gateway") &&
	    strcmp(s->kind, "api-gateway"))
		return weft_errf(err, WEFT_EINVAL,
				 "%s%sKind: \"%s\" is not one of connect-proxy, mesh-gateway, "
				 "ingress-gateway, terminating-gateway, api-gateway", CTX(ctx), s->kind);
	if (w) {
		long long passing = 1, warning = 1;
		char sub[300];
		snprintf(sub, sizeof(sub), "%s%sWeights", CTX(ctx));
		if (jx_int(w, sub, "Passing", &passing, 1, 1000000, err) != WEFT_OK ||
		    jx_int(w, sub, "Warning", &warning, 0, 1000000, err) != WEFT_OK)
			return WEFT_EINVAL;
		s->weights = w;
	}
	return WEFT_OK;
}

int catalog_decode_check(json_t *obj, const char *ctx, struct cat_check *c, char **err)
{
	memset(c, 0, sizeof(*c));
	c->status = "";
	c->notes = "";
	c->output = "";
	c->service_id = "";
	c->type = "";
	if (!json_is_object(obj))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx);
	if (jx_str(obj, ctx, "CheckID", &c->id, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Name", &c->name, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Status", &c->status, 16, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Notes", &c->notes, CAT_TEXT_MAX, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Output", &c->output, 65536, err) != WEFT_OK ||
	    jx_str(obj, ctx, "ServiceID", &c->service_id, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(obj, ctx, "Type", &c->type, 32, err) != WEFT_OK ||
	    jx_object(obj, ctx, "Definition", &c->definition, err) != WEFT_OK ||
	    jx_duration_ms(obj, ctx, "TTL", &c->ttl_ms, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (c->id == NULL || c->id[0] == '\0')
		c->id = c->name;
	if (c->id == NULL || c->id[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "%s%sName: is required (or CheckID)", CTX(ctx));
	if (c->name == NULL || c->name[0] == '\0')
		c->name = c->id;
	if (c->status[0] && !check_status_valid(c->status))
		return weft_errf(err, WEFT_EINVAL,
				 "%s%sStatus: \"%s\" is not one of passing, warning, critical", CTX(ctx),
				 c->status);
	if (c->ttl_ms > 0 && c->type[0] == '\0')
		c->type = "ttl";
	return WEFT_OK;
}

void catalog_register_free(struct cat_register *reg)
{
	if (reg == NULL)
		return;
	free(reg->checks);
	json_decref(reg->doc);
	free(reg);
}

int catalog_decode_register(json_t *doc, const char *datacenter, struct cat_register *r,
			    char **err)
{
	json_t *svc = NULL, *check = NULL, *checks = NULL, *e;
	size_t i, n = 0;
	char ctx[64];

	memset(r, 0, sizeof(*r));
	r->doc = json_incref(doc);
	r->node_id = "";
	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
	if (jx_req_str(doc, NULL, "Node", &r->node, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "Address", &r->address, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "ID", &r->node_id, 64, err) != WEFT_OK ||
	    jx_str(doc, NULL, "Datacenter", &r->datacenter, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str_map(doc, NULL, "TaggedAddresses", &r->tagged, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str_map(doc, NULL, "NodeMeta", &r->meta, CAT_TEXT_MAX, err) != WEFT_OK ||
	    jx_bool(doc, NULL, "SkipNodeUpdate", &r->skip_node_update, err) != WEFT_OK ||
	    jx_object(doc, NULL, "Service", &svc, err) != WEFT_OK ||
	    jx_object(doc, NULL, "Check", &check, err) != WEFT_OK ||
	    jx_array(doc, NULL, "Checks", &checks, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (!name_valid(r->node, CAT_NAME_MAX))
		return weft_errf(err, WEFT_EINVAL,
				 "Node: \"%s\" is not a valid node name (letters, digits, '-', '_', '.')",
				 r->node);
	if (r->address == NULL || r->address[0] == '\0') {
		if (!r->skip_node_update)
			return weft_errf(err, WEFT_EINVAL, "Address: is required");
		r->address = "";
	}
	if (r->node_id[0] && !uuid_valid(r->node_id))
		return weft_errf(err, WEFT_EINVAL, "ID: \"%s\" is not a UUID", r->node_id);
	if (r->datacenter && r->datacenter[0] && strcmp(r->datacenter, datacenter) != 0)
		return weft_errf(err, WEFT_EINVAL,
				 "Datacenter: \"%s\" is not this server's datacenter \"%s\"",
				 r->datacenter, datacenter);
	if (svc) {
		if (catalog_decode_service(svc, "Service", &r->svc, err) != WEFT_OK)
			return WEFT_EINVAL;
		r->has_service = 1;
	}
	n = (check ? 1 : 0) + (checks ? json_array_size(checks) : 0);
	if (n > 256)
		return weft_errf(err, WEFT_EINVAL, "Checks: at most 256 checks per registration");
	r->checks = calloc(n ? n : 1, sizeof(*r->checks));
	if (r->checks == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	if (check) {
		if (catalog_decode_check(check, "Check", &r->checks[r->nchecks++], err) != WEFT_OK)
			return WEFT_EINVAL;
	}
	if (checks) {
		json_array_foreach(checks, i, e) {
			snprintf(ctx, sizeof(ctx), "Checks[%zu]", i);
			if (catalog_decode_check(e, ctx, &r->checks[r->nchecks++], err) != WEFT_OK)
				return WEFT_EINVAL;
		}
	}
	for (i = 0; i < r->nchecks; i++) {
		const char *cnode = NULL;
		int single = i == 0 && check;
		if (single)
			snprintf(ctx, sizeof(ctx), "Check");
		else
			snprintf(ctx, sizeof(ctx), "Checks[%zu]", check ? i - 1 : i);
		jx_str(single ? check : json_array_get(checks, check ? i - 1 : i), ctx,
		       "Node", &cnode, CAT_NAME_MAX, NULL);
		if (cnode && cnode[0] && strcmp(cnode, r->node) != 0)
			return weft_errf(err, WEFT_EINVAL, "%s.Node: \"%s\" differs from Node \"%s\"",
					 ctx, cnode, r->node);
	}
	return WEFT_OK;
}

int catalog_decode_deregister(json_t *doc, struct cat_deregister *d, char **err)
{
	memset(d, 0, sizeof(*d));
	d->doc = json_incref(doc);
	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
	if (jx_req_str(doc, NULL, "Node", &d->node, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "ServiceID", &d->service_id, CAT_NAME_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "CheckID", &d->check_id, CAT_NAME_MAX, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (d->service_id && d->service_id[0] == '\0')
		d->service_id = NULL;
	if (d->check_id && d->check_id[0] == '\0')
		d->check_id = NULL;
	return WEFT_OK;
}

void catalog_deregister_free(struct cat_deregister *d)
{
	if (d == NULL)
		return;
	json_decref(d->doc);
	free(d);
}

/* ---- writes ---- */

static char *dump_or(json_t *v, const char *dflt)
{
	return v ? jx_dump(v) : strdup(dflt);
}

/* Strings equal, NULL-safe. */
static int same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* "connect:<destination>" for a connect-proxy instance (kind, its Proxy
 * as stored text or as JSON): what the proxy snapshots of the services that
 * call that destination watch (server/proxysnap.h). */
static void touch_connect(struct store_changes *ch, const char *kind, const char *proxy_text,
			  json_t *proxy)
{
	json_t *parsed = NULL;
	const char *dest;

	if (kind == NULL || strcmp(kind, "connect-proxy") != 0)
		return;
	if (proxy == NULL && proxy_text != NULL)
		proxy = parsed = json_loads(proxy_text, 0, NULL);
	dest = json_string_value(jx_field(proxy, "DestinationServiceName"));
	if (dest && dest[0])
		changes_add(ch, "connect:%s", dest);
	json_decref(parsed);
}

void catalog_touch_node(struct db *db, const char *node, struct store_changes *ch)
{
	struct db_stmt *st = db_prep(db, "SELECT DISTINCT name, kind, proxy FROM services"
					 " WHERE node = ?");

	changes_add(ch, "node:%s", node);
	changes_add(ch, "nodes");
	changes_add(ch, "checks");
	if (st == NULL)
		return;
	db_bind_text(st, 1, node);
	while (db_step(st) == DB_ROW) {
		changes_add(ch, "svc:%s", db_col_text(st, 0));
		touch_connect(ch, db_col_text(st, 1), db_col_text(st, 2), NULL);
	}
	db_done(st);
}

static int put_node(struct db *db, uint64_t index, const struct cat_register *r,
		    struct store_changes *ch, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT id, address, tagged_addresses, meta FROM nodes WHERE name = ?");
	char *tagged = NULL, *meta = NULL;
	int exists = 0, changed = 1, rc = WEFT_OK;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	tagged = dump_or(r->tagged, "{}");
	meta = dump_or(r->meta, "{}");
	db_bind_text(st, 1, r->node);
	if (db_step(st) == DB_ROW) {
		exists = 1;
		changed = !same(db_col_text(st, 0), r->node_id) || !same(db_col_text(st, 1), r->address) ||
			  !same(db_col_text(st, 2), tagged) || !same(db_col_text(st, 3), meta);
	}
	db_done(st);
	if (exists && (r->skip_node_update || !changed))
		goto out;
	st = db_prep(db, "INSERT INTO nodes (name, id, address, datacenter, tagged_addresses, meta,"
			 " create_index, modify_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
			 " ON CONFLICT (name) DO UPDATE SET id = excluded.id, address = excluded.address,"
			 " tagged_addresses = excluded.tagged_addresses, meta = excluded.meta,"
			 " modify_index = excluded.modify_index");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, r->node);
	db_bind_text(st, 2, r->node_id);
	db_bind_text(st, 3, r->address);
	db_bind_text(st, 4, r->datacenter && r->datacenter[0] ? r->datacenter : "");
	db_bind_text(st, 5, tagged);
	db_bind_text(st, 6, meta);
	db_bind_int(st, 7, (int64_t)index);
	db_bind_int(st, 8, (int64_t)index);
	if (db_step(st) != DB_DONE)
		rc = weft_errf(err, WEFT_EIO, "store: cannot write node %s: %s", r->node, db_errmsg(db));
	db_done(st);
	if (rc == WEFT_OK)
		catalog_touch_node(db, r->node, ch);
out:
	free(tagged);
	free(meta);
	return rc;
}

static int put_service(struct db *db, uint64_t index, const char *node, const struct cat_service *s,
		       struct store_changes *ch, char **err)
{
	struct db_stmt *st;
	char *tags = dump_or(s->tags, "[]"), *meta = dump_or(s->meta, "{}"),
	     *tagged = dump_or(s->tagged, "{}"), *proxy = dump_or(s->proxy, "{}"),
	     *connect = dump_or(s->connect, "{}"),
	     *weights = dump_or(s->weights, "{\"Passing\":1,\"Warning\":1}");
	int rc = WEFT_OK, changed = 1;
	const char *old_name = NULL;
	char *old_name_copy = NULL, *old_kind = NULL, *old_proxy = NULL;

	rc = mesh_exists(db, s->mesh);
	if (rc <= 0) {
		rc = rc < 0 ? weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db))
			    : weft_errf(err, WEFT_EINVAL, "Service.Mesh: no mesh \"%s\"", s->mesh);
		goto out;
	}
	rc = WEFT_OK;
	st = db_prep(db, "SELECT name, kind, tags, address, port, meta, tagged_addresses, weights,"
			 " enable_tag_override, proxy, connect, mesh FROM services WHERE node = ? AND id = ?");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, s->id);
	if (db_step(st) == DB_ROW) {
		old_name = db_col_text(st, 0);
		old_name_copy = strdup(old_name ? old_name : "");
		old_kind = strdup(db_col_text(st, 1) ? db_col_text(st, 1) : "");
		old_proxy = strdup(db_col_text(st, 9) ? db_col_text(st, 9) : "{}");
		changed = !same(old_name, s->name) || !same(db_col_text(st, 1), s->kind) ||
			  !same(db_col_text(st, 2), tags) || !same(db_col_text(st, 3), s->address) ||
			  db_col_int(st, 4) != s->port || !same(db_col_text(st, 5), meta) ||
			  !same(db_col_text(st, 6), tagged) || !same(db_col_text(st, 7), weights) ||
			  db_col_int(st, 8) != s->enable_tag_override ||
			  !same(db_col_text(st, 9), proxy) || !same(db_col_text(st, 10), connect) ||
			  !same(db_col_text(st, 11), s->mesh);
	}
	db_done(st);
	if (!changed)
		goto out;
	st = db_prep(db, "INSERT INTO services (node, id, name, kind, tags, address, port, meta,"
			 " tagged_addresses, weights, enable_tag_override, proxy, connect, mesh,"
			 " create_index, modify_index, proxy_dest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
			 " ON CONFLICT (node, id) DO UPDATE SET name = excluded.name, kind = excluded.kind,"
			 " tags = excluded.tags, address = excluded.address, port = excluded.port,"
			 " meta = excluded.meta, tagged_addresses = excluded.tagged_addresses,"
			 " weights = excluded.weights, enable_tag_override = excluded.enable_tag_override,"
			 " proxy = excluded.proxy, connect = excluded.connect, mesh = excluded.mesh,"
			 " modify_index = excluded.modify_index, proxy_dest = excluded.proxy_dest");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, s->id);
	db_bind_text(st, 3, s->name);
	db_bind_text(st, 4, s->kind);
	db_bind_text(st, 5, tags);
	db_bind_text(st, 6, s->address);
	db_bind_int(st, 7, s->port);
	db_bind_text(st, 8, meta);
	db_bind_text(st, 9, tagged);
	db_bind_text(st, 10, weights);
	db_bind_int(st, 11, s->enable_tag_override);
	db_bind_text(st, 12, proxy);
	db_bind_text(st, 13, connect);
	db_bind_text(st, 14, s->mesh);
	db_bind_int(st, 15, (int64_t)index);
	db_bind_int(st, 16, (int64_t)index);
	/* indexed: proxy snapshots look up an upstream's instances by it */
	db_bind_text(st, 17, s->kind && strcmp(s->kind, "connect-proxy") == 0 &&
			     json_string_value(jx_field(s->proxy, "DestinationServiceName"))
			     ? json_string_value(jx_field(s->proxy, "DestinationServiceName")) : "");
	if (db_step(st) != DB_DONE)
		rc = weft_errf(err, WEFT_EIO, "store: cannot write service %s: %s", s->id, db_errmsg(db));
	db_done(st);
	if (rc != WEFT_OK)
		goto out;
	/* Checks carry the service's name for health queries. */
	st = db_prep(db, "UPDATE checks SET service_name = ? WHERE node = ? AND service_id = ?");
	if (st) {
		db_bind_text(st, 1, s->name);
		db_bind_text(st, 2, node);
		db_bind_text(st, 3, s->id);
		db_step(st);
		db_done(st);
	}
	changes_add(ch, "services");
	changes_add(ch, "svc:%s", s->name);
	changes_add(ch, "node:%s", node);
	changes_add(ch, "checks");
	if (old_name_copy && strcmp(old_name_copy, s->name) != 0)
		changes_add(ch, "svc:%s", old_name_copy);
	touch_connect(ch, s->kind, NULL, s->proxy);
	touch_connect(ch, old_kind, old_proxy, NULL);
out:
	free(old_name_copy);
	free(old_kind);
	free(old_proxy);
	free(tags);
	free(meta);
	free(tagged);
	free(proxy);
	free(connect);
	free(weights);
	return rc;
}

int catalog_put_check(struct db *db, uint64_t index, const char *node, const struct cat_check *c,
		      int64_t now_ms, struct store_changes *ch, char **err)
{
	struct db_stmt *st;
	char *def = dump_or(c->definition, "{}");
	char *svc_name = NULL;
	const char *status = c->status[0] ? c->status : "critical";
	int rc = WEFT_OK, changed = 1;

	if (c->service_id[0]) {
		st = db_prep(db, "SELECT name FROM services WHERE node = ? AND id = ?");
		if (st == NULL) {
			rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
			goto out;
		}
		db_bind_text(st, 1, node);
		db_bind_text(st, 2, c->service_id);
		if (db_step(st) == DB_ROW)
			svc_name = strdup(db_col_text(st, 0));
		db_done(st);
		if (svc_name == NULL) {
			rc = weft_errf(err, WEFT_ENOENT,
				       "ServiceID: check \"%s\" refers to service \"%s\", which is not registered on node \"%s\"",
				       c->id, c->service_id, node);
			goto out;
		}
	}
	st = db_prep(db, "SELECT name, status, notes, output, service_id, type, definition, ttl_ms"
			 " FROM checks WHERE node = ? AND check_id = ?");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, c->id);
	if (db_step(st) == DB_ROW) {
		changed = !same(db_col_text(st, 0), c->name) || !same(db_col_text(st, 1), status) ||
			  !same(db_col_text(st, 2), c->notes) || !same(db_col_text(st, 3), c->output) ||
			  !same(db_col_text(st, 4), c->service_id) || !same(db_col_text(st, 5), c->type) ||
			  !same(db_col_text(st, 6), def) || db_col_int(st, 7) != c->ttl_ms;
	}
	db_done(st);
	if (!changed)
		goto out;
	st = db_prep(db, "INSERT INTO checks (node, check_id, name, status, notes, output, service_id,"
			 " service_name, type, definition, ttl_ms, ttl_deadline, create_index, modify_index)"
			 " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
			 " ON CONFLICT (node, check_id) DO UPDATE SET name = excluded.name,"
			 " status = excluded.status, notes = excluded.notes, output = excluded.output,"
			 " service_id = excluded.service_id, service_name = excluded.service_name,"
			 " type = excluded.type, definition = excluded.definition, ttl_ms = excluded.ttl_ms,"
			 " ttl_deadline = excluded.ttl_deadline, modify_index = excluded.modify_index");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, c->id);
	db_bind_text(st, 3, c->name);
	db_bind_text(st, 4, status);
	db_bind_text(st, 5, c->notes);
	db_bind_text(st, 6, c->output);
	db_bind_text(st, 7, c->service_id);
	db_bind_text(st, 8, svc_name ? svc_name : "");
	db_bind_text(st, 9, c->type);
	db_bind_text(st, 10, def);
	db_bind_int(st, 11, c->ttl_ms);
	db_bind_int(st, 12, c->ttl_ms > 0 ? now_ms + c->ttl_ms : 0);
	db_bind_int(st, 13, (int64_t)index);
	db_bind_int(st, 14, (int64_t)index);
	if (db_step(st) != DB_DONE)
		rc = weft_errf(err, WEFT_EIO, "store: cannot write check %s: %s", c->id, db_errmsg(db));
	db_done(st);
	if (rc != WEFT_OK)
		goto out;
	changes_add(ch, "checks");
	changes_add(ch, "node:%s", node);
	if (svc_name)
		changes_add(ch, "svc:%s", svc_name);
	else
		catalog_touch_node(db, node, ch);   /* a node check concerns all its services */
	if (strcmp(status, "critical") == 0)
		rc = session_on_check_critical(db, index, node, c->id, now_ms, ch, err);
out:
	free(svc_name);
	free(def);
	return rc;
}

int catalog_set_check_status(struct db *db, uint64_t index, const char *node,
			     const char *check_id, const char *status, const char *output,
			     int64_t now_ms, struct store_changes *ch, char **err)
{
	struct db_stmt *st = db_prep(db, "SELECT status, output, ttl_ms, service_name FROM checks"
					 " WHERE node = ? AND check_id = ?");
	int64_t ttl = 0;
	int changed = 0, found = 0;
	char *svc = NULL;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, check_id);
	if (db_step(st) == DB_ROW) {
		found = 1;
		changed = !same(db_col_text(st, 0), status) || !same(db_col_text(st, 1), output);
		ttl = db_col_int(st, 2);
		svc = strdup(db_col_text(st, 3));
	}
	db_done(st);
	if (!found)
		return weft_errf(err, WEFT_ENOENT, "check \"%s\" is not registered on node \"%s\"",
				 check_id, node);
	st = db_prep(db, changed ? "UPDATE checks SET status = ?, output = ?, ttl_deadline = ?,"
				   " modify_index = ? WHERE node = ? AND check_id = ?"
				 : "UPDATE checks SET status = ?, output = ?, ttl_deadline = ?"
				   " WHERE node = ? AND check_id = ? AND ? IS NOT NULL");
	if (st == NULL) {
		free(svc);
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	}
	db_bind_text(st, 1, status);
	db_bind_text(st, 2, output ? output : "");
	db_bind_int(st, 3, ttl > 0 ? now_ms + ttl : 0);
	if (changed) {
		db_bind_int(st, 4, (int64_t)index);
		db_bind_text(st, 5, node);
		db_bind_text(st, 6, check_id);
	} else {
		db_bind_text(st, 4, node);
		db_bind_text(st, 5, check_id);
		db_bind_int(st, 6, 1);
	}
	db_step(st);
	db_done(st);
	if (changed) {
		changes_add(ch, "checks");
		changes_add(ch, "node:%s", node);
		if (svc && svc[0])
			changes_add(ch, "svc:%s", svc);
		else
			catalog_touch_node(db, node, ch);
	}
	free(svc);
	if (changed && strcmp(status, "critical") == 0)
		return session_on_check_critical(db, index, node, check_id, now_ms, ch, err);
	return WEFT_OK;
}

int catalog_apply_register(struct db *db, uint64_t index, struct store_write *w,
			   struct store_changes *ch)
{
	const struct cat_register *r = w->arg;
	struct db_stmt *st;
	int rc;

	if (r->address[0] == '\0') {
		/* SkipNodeUpdate without an address: the node must exist. */
		st = db_prep(db, "SELECT 1 FROM nodes WHERE name = ?");
		db_bind_text(st, 1, r->node);
		rc = db_step(st);
		db_done(st);
		if (rc != DB_ROW)
			return weft_errf(&w->err, WEFT_EINVAL, "Address: is required for a new node \"%s\"",
					 r->node);
	}
	rc = put_node(db, index, r, ch, &w->err);
	if (rc == WEFT_OK && r->has_service)
		rc = put_service(db, index, r->node, &r->svc, ch, &w->err);
	for (size_t i = 0; rc == WEFT_OK && i < r->nchecks; i++)
		rc = catalog_put_check(db, index, r->node, &r->checks[i], now_wall_ms(), ch, &w->err);
	return rc;
}

static int exec_bound(struct db *db, const char *sql, const char *a, const char *b, char **err)
{
	struct db_stmt *st = db_prep(db, sql);
	int rc;

	if (st == NULL)
		return weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, a);
	if (b)
		db_bind_text(st, 2, b);
	rc = db_step(st) == DB_DONE ? WEFT_OK : weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_done(st);
	return rc;
}

int catalog_apply_deregister(struct db *db, uint64_t index, struct store_write *w,
			     struct store_changes *ch)
{
	const struct cat_deregister *d = w->arg;
	struct db_stmt *st;
	char *svc = NULL;
	int rc = WEFT_OK;

	if (d->service_id == NULL && d->check_id == NULL) {
		/* The whole node: its services, checks, and then the node. */
		catalog_touch_node(db, d->node, ch);
		changes_add(ch, "services");
		if ((rc = session_on_node_removed(db, index, d->node, now_wall_ms(), ch, &w->err)) ||
		    (rc = exec_bound(db, "DELETE FROM checks WHERE node = ?", d->node, NULL, &w->err)) ||
		    (rc = exec_bound(db, "DELETE FROM services WHERE node = ?", d->node, NULL, &w->err)) ||
		    (rc = exec_bound(db, "DELETE FROM nodes WHERE name = ?", d->node, NULL, &w->err)))
			return rc;
		return WEFT_OK;
	}
	if (d->service_id) {
		st = db_prep(db, "SELECT name, kind, proxy FROM services WHERE node = ? AND id = ?");
		db_bind_text(st, 1, d->node);
		db_bind_text(st, 2, d->service_id);
		if (db_step(st) == DB_ROW) {
			svc = strdup(db_col_text(st, 0));
			touch_connect(ch, db_col_text(st, 1), db_col_text(st, 2), NULL);
		}
		db_done(st);
		if (svc) {
			rc = session_on_service_removed(db, index, d->node, d->service_id, now_wall_ms(),
							ch, &w->err);
			if (rc == WEFT_OK)
				rc = exec_bound(db, "DELETE FROM checks WHERE node = ? AND service_id = ?",
						d->node, d->service_id, &w->err);
			if (rc == WEFT_OK)
				rc = exec_bound(db, "DELETE FROM services WHERE node = ? AND id = ?", d->node,
						d->service_id, &w->err);
			changes_add(ch, "services");
			changes_add(ch, "svc:%s", svc);
			changes_add(ch, "node:%s", d->node);
			changes_add(ch, "checks");
		}
		free(svc);
	}
	if (rc == WEFT_OK && d->check_id) {
		st = db_prep(db, "SELECT service_name FROM checks WHERE node = ? AND check_id = ?");
		db_bind_text(st, 1, d->node);
		db_bind_text(st, 2, d->check_id);
		if (db_step(st) == DB_ROW)
			svc = strdup(db_col_text(st, 0));
		db_done(st);
		if (svc) {
			rc = session_on_check_removed(db, index, d->node, d->check_id, now_wall_ms(), ch,
						      &w->err);
			if (rc == WEFT_OK)
				rc = exec_bound(db, "DELETE FROM checks WHERE node = ? AND check_id = ?",
						d->node, d->check_id, &w->err);
			changes_add(ch, "checks");
			changes_add(ch, "node:%s", d->node);
			if (svc[0])
				changes_add(ch, "svc:%s", svc);
			else
				catalog_touch_node(db, d->node, ch);
		}
		free(svc);
	}
	return rc;
}

/* ---- queries ---- */

static int meta_matches(const char *meta_text, json_t *filters)
{
	json_t *meta, *f;
	size_t i;
	int ok = 1;

	if (filters == NULL || json_array_size(filters) == 0)
		return 1;
	meta = jx_load_or(meta_text, JSON_OBJECT);
	json_array_foreach(filters, i, f) {
		const char *kv = json_string_value(f), *colon = strchr(kv, ':');
		char key[CAT_NAME_MAX + 1];
		const char *val;
		size_t kl = colon ? (size_t)(colon - kv) : strlen(kv);
		json_t *have;

		if (kl > CAT_NAME_MAX)
			kl = CAT_NAME_MAX;
		memcpy(key, kv, kl);
		key[kl] = '\0';
		val = colon ? colon + 1 : "";
		have = json_object_get(meta, key);
		if (!json_is_string(have) || strcmp(json_string_value(have), val) != 0) {
			ok = 0;
			break;
		}
	}
	json_decref(meta);
	return ok;
}

static int tags_match(json_t *tags, json_t *want)
{
	json_t *w, *t;
	size_t i, j;

	if (want == NULL)
		return 1;
	json_array_foreach(want, i, w) {
		int found = 0;
		json_array_foreach(tags, j, t) {
			if (json_equal(t, w)) {
				found = 1;
				break;
			}
		}
		if (!found)
			return 0;
	}
	return 1;
}

#define NODE_COLS "n.name, n.id, n.address, n.datacenter, n.tagged_addresses, n.meta, n.create_index, n.modify_index"
#define SVC_COLS "s.id, s.name, s.kind, s.tags, s.address, s.port, s.meta, s.tagged_addresses," \
	" s.weights, s.enable_tag_override, s.proxy, s.connect, s.mesh, s.create_index, s.modify_index, s.node"
#define CHECK_COLS "c.node, c.check_id, c.name, c.status, c.notes, c.output, c.service_id," \
	" c.service_name, c.type, c.definition, c.create_index, c.modify_index," \
	" (SELECT tags FROM services s WHERE s.node = c.node AND s.id = c.service_id)"

static json_t *node_from_row(struct db_stmt *st, int o, const char *dc)
{
	const char *rowdc = db_col_text(st, o + 3);

	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I}",
			 "ID", db_col_text(st, o + 1), "Node", db_col_text(st, o),
			 "Address", db_col_text(st, o + 2),
			 "Datacenter", rowdc && rowdc[0] ? rowdc : dc,
			 "TaggedAddresses", jx_load_or(db_col_text(st, o + 4), JSON_OBJECT),
			 "Meta", jx_load_or(db_col_text(st, o + 5), JSON_OBJECT),
			 "CreateIndex", (json_int_t)db_col_int(st, o + 6),
			 "ModifyIndex", (json_int_t)db_col_int(st, o + 7));
}

/* The agent/health format of a service row starting at column o. */
static json_t *service_from_row(struct db_stmt *st, int o, const char *dc)
{
	json_t *s = json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:I, s:o, s:b, s:o, s:o, s:s, s:I, s:I}",
			      "ID", db_col_text(st, o), "Service", db_col_text(st, o + 1),
			      "Tags", jx_load_or(db_col_text(st, o + 3), JSON_ARRAY),
			      "Address", db_col_text(st, o + 4),
			      "TaggedAddresses", jx_load_or(db_col_text(st, o + 7), JSON_OBJECT),
			      "Meta", jx_load_or(db_col_text(st, o + 6), JSON_OBJECT),
			      "Port", (json_int_t)db_col_int(st, o + 5),
			      "Weights", jx_load_or(db_col_text(st, o + 8), JSON_OBJECT),
			      "EnableTagOverride", (int)db_col_int(st, o + 9),
			      "Proxy", jx_load_or(db_col_text(st, o + 10), JSON_OBJECT),
			      "Connect", jx_load_or(db_col_text(st, o + 11), JSON_OBJECT),
			      "Mesh", db_col_text(st, o + 12),
			      "CreateIndex", (json_int_t)db_col_int(st, o + 13),
			      "ModifyIndex", (json_int_t)db_col_int(st, o + 14));
	const char *kind = db_col_text(st, o + 2);

	if (s && kind && kind[0])
		json_object_set_new(s, "Kind", json_string(kind));
	if (s && dc)
		json_object_set_new(s, "Datacenter", json_string(dc));
	return s;
}

static json_t *check_from_row(struct db_stmt *st, int o)
{
	const char *tags = db_col_text(st, o + 12);

	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:I, s:I}",
			 "Node", db_col_text(st, o), "CheckID", db_col_text(st, o + 1),
			 "Name", db_col_text(st, o + 2), "Status", db_col_text(st, o + 3),
			 "Notes", db_col_text(st, o + 4), "Output", db_col_text(st, o + 5),
			 "ServiceID", db_col_text(st, o + 6), "ServiceName", db_col_text(st, o + 7),
			 "ServiceTags", jx_load_or(tags, JSON_ARRAY), "Type", db_col_text(st, o + 8),
			 "Definition", jx_load_or(db_col_text(st, o + 9), JSON_OBJECT),
			 "CreateIndex", (json_int_t)db_col_int(st, o + 10),
			 "ModifyIndex", (json_int_t)db_col_int(st, o + 11));
}

/* Appends to list the values of items it does not hold yet (a service's
 * tags over its instances). */
static void add_unique(json_t *list, json_t *items)
{
	json_t *t, *have;
	size_t i, j;

	json_array_foreach(items, i, t) {
		int dup = 0;
		json_array_foreach(list, j, have)
			if (json_equal(have, t))
				dup = 1;
		if (!dup)
			json_array_append(list, t);
	}
}

json_t *catalog_services(struct db *db, json_t *node_meta)
{
	struct db_stmt *st = db_prep(db, "SELECT s.name, s.tags, n.meta FROM services s"
					 " JOIN nodes n ON n.name = s.node ORDER BY s.name");
	json_t *out = json_object(), *tags, *list;

	if (st == NULL)
		return out;
	while (db_step(st) == DB_ROW) {
		const char *name = db_col_text(st, 0);
		if (!meta_matches(db_col_text(st, 2), node_meta))
			continue;
		list = json_object_get(out, name);
		if (list == NULL) {
			list = json_array();
			json_object_set_new(out, name, list);
		}
		tags = jx_load_or(db_col_text(st, 1), JSON_ARRAY);
		add_unique(list, tags);
		json_decref(tags);
	}
	db_done(st);
	return out;
}

json_t *catalog_service_rows(struct db *db, json_t *node_meta)
{
	struct db_stmt *st = db_prep(db, "SELECT s.name, s.tags, n.meta, s.kind, s.id, s.node,"
					 " s.meta, s.port, s.address, n.address, s.mesh FROM services s"
					 " JOIN nodes n ON n.name = s.node ORDER BY s.name, s.node, s.id");
	json_t *out = json_array();

	if (st == NULL)
		return out;
	while (db_step(st) == DB_ROW) {
		if (!meta_matches(db_col_text(st, 2), node_meta))
			continue;
		json_array_append_new(out, json_pack(
			"{s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:I, s:s, s:s, s:s}",
			"ServiceName", db_col_text(st, 0),
			"ServiceTags", jx_load_or(db_col_text(st, 1), JSON_ARRAY),
			"NodeMeta", jx_load_or(db_col_text(st, 2), JSON_OBJECT),
			"ServiceKind", db_col_text(st, 3) ? db_col_text(st, 3) : "",
			"ServiceID", db_col_text(st, 4), "Node", db_col_text(st, 5),
			"ServiceMeta", jx_load_or(db_col_text(st, 6), JSON_OBJECT),
			"ServicePort", (json_int_t)db_col_int(st, 7),
			"ServiceAddress", db_col_text(st, 8) ? db_col_text(st, 8) : "",
			"Address", db_col_text(st, 9) ? db_col_text(st, 9) : "",
			"Mesh", db_col_text(st, 10) ? db_col_text(st, 10) : "default"));
	}
	db_done(st);
	return out;
}

json_t *catalog_services_group(json_t *rows)
{
	json_t *out = json_object(), *row, *list;
	size_t i;

	json_array_foreach(rows, i, row) {
		const char *name = json_string_value(json_object_get(row, "ServiceName"));
		list = json_object_get(out, name);
		if (list == NULL) {
			list = json_array();
			json_object_set_new(out, name, list);
		}
		add_unique(list, json_object_get(row, "ServiceTags"));
	}
	return out;
}

json_t *catalog_service_nodes(struct db *db, const char *dc, const char *service, json_t *tags,
			      json_t *node_meta)
{
	struct db_stmt *st = db_prep(db, "SELECT " NODE_COLS ", " SVC_COLS " FROM services s"
					 " JOIN nodes n ON n.name = s.node WHERE s.name = ?"
					 " ORDER BY n.name, s.id");
	json_t *out = json_array();

	if (st == NULL)
		return out;
	db_bind_text(st, 1, service);
	while (db_step(st) == DB_ROW) {
		json_t *stags = jx_load_or(db_col_text(st, 11), JSON_ARRAY), *e;
		const char *kind = db_col_text(st, 10);

		if (!tags_match(stags, tags) || !meta_matches(db_col_text(st, 5), node_meta)) {
			json_decref(stags);
			continue;
		}
		e = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o,"
			      " s:I, s:b, s:o, s:o, s:s, s:I, s:I}",
			      "ID", db_col_text(st, 1), "Node", db_col_text(st, 0),
			      "Address", db_col_text(st, 2),
			      "Datacenter", db_col_text(st, 3)[0] ? db_col_text(st, 3) : dc,
			      "TaggedAddresses", jx_load_or(db_col_text(st, 4), JSON_OBJECT),
			      "NodeMeta", jx_load_or(db_col_text(st, 5), JSON_OBJECT),
			      "ServiceKind", kind ? kind : "",
			      "ServiceID", db_col_text(st, 8), "ServiceName", db_col_text(st, 9),
			      "ServiceTags", stags, "ServiceAddress", db_col_text(st, 12),
			      "ServiceTaggedAddresses", jx_load_or(db_col_text(st, 15), JSON_OBJECT),
			      "ServiceWeights", jx_load_or(db_col_text(st, 16), JSON_OBJECT),
			      "ServiceMeta", jx_load_or(db_col_text(st, 14), JSON_OBJECT),
			      "ServicePort", (json_int_t)db_col_int(st, 13),
			      "ServiceEnableTagOverride", (int)db_col_int(st, 17),
			      "ServiceProxy", jx_load_or(db_col_text(st, 18), JSON_OBJECT),
			      "ServiceConnect", jx_load_or(db_col_text(st, 19), JSON_OBJECT),
			      "ServiceMesh", db_col_text(st, 20),
			      "CreateIndex", (json_int_t)db_col_int(st, 21),
			      "ModifyIndex", (json_int_t)db_col_int(st, 22));
		if (e)
			json_array_append_new(out, e);
	}
	db_done(st);
	return out;
}

json_t *catalog_nodes(struct db *db, const char *dc, json_t *node_meta)
{
	struct db_stmt *st = db_prep(db, "SELECT " NODE_COLS " FROM nodes n ORDER BY n.name");
	json_t *out = json_array();

	if (st == NULL)
		return out;
	while (db_step(st) == DB_ROW) {
		if (!meta_matches(db_col_text(st, 5), node_meta))
			continue;
		json_array_append_new(out, node_from_row(st, 0, dc));
	}
	db_done(st);
	return out;
}

json_t *catalog_node_json(struct db *db, const char *dc, const char *node)
{
	struct db_stmt *st = db_prep(db, "SELECT " NODE_COLS " FROM nodes n WHERE n.name = ?");
	json_t *out = NULL;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, node);
	if (db_step(st) == DB_ROW)
		out = node_from_row(st, 0, dc);
	db_done(st);
	return out;
}

json_t *catalog_node(struct db *db, const char *dc, const char *node, int services_as_list)
{
	struct db_stmt *st;
	json_t *n = catalog_node_json(db, dc, node), *svcs;

	if (n == NULL)
		return NULL;
	svcs = services_as_list ? json_array() : json_object();
	st = db_prep(db, "SELECT " SVC_COLS " FROM services s WHERE s.node = ? ORDER BY s.id");
	if (st) {
		db_bind_text(st, 1, node);
		while (db_step(st) == DB_ROW) {
			json_t *s = service_from_row(st, 0, NULL);
			if (services_as_list)
				json_array_append_new(svcs, s);
			else
				json_object_set_new(svcs, db_col_text(st, 0), s);
		}
		db_done(st);
	}
	return json_pack("{s:o, s:o}", "Node", n, "Services", svcs);
}

static int all_passing(json_t *checks)
{
	json_t *c;
	size_t i;

	json_array_foreach(checks, i, c)
		if (strcmp(json_string_value(json_object_get(c, "Status")), "passing") != 0)
			return 0;
	return 1;
}

json_t *health_service(struct db *db, const char *dc, const char *service, json_t *tags,
		       int passing, json_t *node_meta)
{
	struct db_stmt *st = db_prep(db, "SELECT " NODE_COLS ", " SVC_COLS " FROM services s"
					 " JOIN nodes n ON n.name = s.node WHERE s.name = ?"
					 " ORDER BY n.name, s.id");
	struct db_stmt *cst;
	json_t *out = json_array();

	if (st == NULL)
		return out;
	db_bind_text(st, 1, service);
	while (db_step(st) == DB_ROW) {
		json_t *stags = jx_load_or(db_col_text(st, 11), JSON_ARRAY), *checks, *entry;
		int keep = tags_match(stags, tags) && meta_matches(db_col_text(st, 5), node_meta);

		json_decref(stags);
		if (!keep)
			continue;
		checks = json_array();
		cst = db_prep(db, "SELECT " CHECK_COLS " FROM checks c WHERE c.node = ?"
				  " AND (c.service_id = '' OR c.service_id = ?) ORDER BY c.check_id");
		if (cst) {
			db_bind_text(cst, 1, db_col_text(st, 0));
			db_bind_text(cst, 2, db_col_text(st, 8));
			while (db_step(cst) == DB_ROW)
				json_array_append_new(checks, check_from_row(cst, 0));
			db_done(cst);
		}
		if (passing && !all_passing(checks)) {
			json_decref(checks);
			continue;
		}
		entry = json_pack("{s:o, s:o, s:o}", "Node", node_from_row(st, 0, dc),
				  "Service", service_from_row(st, 8, NULL), "Checks", checks);
		json_array_append_new(out, entry);
	}
	db_done(st);
	return out;
}

/* Runs a prepared CHECK_COLS query with up to two text parameters and
 * collects its rows. */
static json_t *checks_run(struct db_stmt *st, const char *p1, const char *p2)
{
	json_t *out = json_array();

	if (st == NULL)
		return out;
	db_bind_text(st, 1, p1);
	if (p2)
		db_bind_text(st, 2, p2);
	while (db_step(st) == DB_ROW)
		json_array_append_new(out, check_from_row(st, 0));
	db_done(st);
	return out;
}

json_t *health_checks_of_service(struct db *db, const char *service)
{
	return checks_run(db_prep(db, "SELECT " CHECK_COLS " FROM checks c WHERE c.service_name = ?"
				      " ORDER BY c.node, c.check_id"), service, NULL);
}

json_t *health_checks_of_node(struct db *db, const char *node)
{
	return checks_run(db_prep(db, "SELECT " CHECK_COLS " FROM checks c WHERE c.node = ?"
				      " ORDER BY c.check_id"), node, NULL);
}

json_t *health_checks_in_state(struct db *db, const char *state)
{
	return checks_run(db_prep(db, "SELECT " CHECK_COLS " FROM checks c"
				      " WHERE ? = 'any' OR c.status = ? ORDER BY c.node, c.check_id"),
			  state, state);
}

json_t *catalog_agent_services(struct db *db, const char *node)
{
	struct db_stmt *st = db_prep(db, "SELECT " SVC_COLS " FROM services s WHERE s.node = ?"
					 " ORDER BY s.id");
	json_t *out = json_object();

	if (st == NULL)
		return out;
	db_bind_text(st, 1, node);
	while (db_step(st) == DB_ROW)
		json_object_set_new(out, db_col_text(st, 0), service_from_row(st, 0, NULL));
	db_done(st);
	return out;
}

json_t *catalog_agent_service(struct db *db, const char *node, const char *id)
{
	struct db_stmt *st = db_prep(db, "SELECT " SVC_COLS " FROM services s WHERE s.node = ? AND s.id = ?");
	json_t *out = NULL;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, id);
	if (db_step(st) == DB_ROW)
		out = service_from_row(st, 0, NULL);
	db_done(st);
	return out;
}

json_t *catalog_agent_checks(struct db *db, const char *node)
{
	struct db_stmt *st = db_prep(db, "SELECT " CHECK_COLS " FROM checks c WHERE c.node = ?"
					 " ORDER BY c.check_id");
	json_t *out = json_object();

	if (st == NULL)
		return out;
	db_bind_text(st, 1, node);
	while (db_step(st) == DB_ROW)
		json_object_set_new(out, db_col_text(st, 1), check_from_row(st, 0));
	db_done(st);
	return out;
}

char *catalog_service_name(struct db *db, const char *node, const char *service_id)
{
	struct db_stmt *st = db_prep(db, "SELECT name FROM services WHERE node = ? AND id = ?");
	char *name = NULL;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, node);
	db_bind_text(st, 2, service_id);
	if (db_step(st) == DB_ROW)
		name = strdup(db_col_text(st, 0));
	db_done(st);
	return name;
}
