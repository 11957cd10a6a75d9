/* /v1/config: Consul's config entries, validated field by field
 * (lib/config_entry.h) and across entries inside the write, so that two
 * concurrent writes cannot together break a discovery chain. A
 * service-intentions entry is also the storage of its destination's
 * intentions: its sources are checked with the intention engine's decoder,
 * so the two APIs accept exactly the same rules.
 *
 * Entries are written as JSON or, with Content-Type: application/yaml (or
 * text/yaml, application/x-yaml), as one YAML document; a single entry is
 * read as YAML when Accept prefers application/yaml. A 400 about a field of
 * the body also gives the "line" and "column" of that field in it. */
#include "api.h"
#include "config_entry.h"
#include "config_store.h"
#include "err.h"
#include "http.h"
#include "intention.h"
#include "rx.h"
#include "server.h"
#include "yamlx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* config_validate_fn: runs inside the write, on the writer's connection. */
static int validate_cross(void *ctx, struct db *db, const char *mesh, json_t *entry, char **err)
{
	struct config_op *op = ctx;

	return config_store_check(db, mesh, op->kind, op->name, entry, err);
}

/* Each source of a service-intentions entry, as the intention it stands for,
 * must decode: the same rules as /v1/connect/intentions. Their regexes share
 * one budget, as an intention's do: a thousand sources must not each bring
 * the most a single intention may. */
static int check_intention_sources(json_t *entry, char **err)
{
	json_t *sources = config_entry_intention_sources(entry), *src;
	const char *dst = config_entry_name(entry);
	long rx_budget = RX_MAX_COST;
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
		rc = intention_from_json_budget(ixj, ctx, &rx_budget, &ix, err);
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

static int is_yaml_type(const char *t, size_t len)
{
	static const char *const types[] = { "application/yaml", "text/yaml", "application/x-yaml",
					     NULL };
	size_t i;

	while (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t'))
		len--;
	for (i = 0; types[i]; i++) {
		if (strlen(types[i]) == len && strncasecmp(t, types[i], len) == 0)
			return 1;
	}
	return 0;
}

static int body_is_yaml(struct req *r)
{
	const char *ct = req_header(r, "Content-Type");

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	return is_yaml_type(ct, strcspn(ct, ";"));
}

/* 1 when Accept ranks a YAML type above application/json (at equal
 * quality, the one listed first wins). Wildcards favour neither. */
static int accept_yaml(struct req *r)
{
	const char *a = req_header(r, "Accept"), *p, *q;
	double yq = 0, jq = 0;
	int yfirst = 0, seen_json = 0;

	for (p = a; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
		size_t n = strcspn(p, ",;"), range = strcspn(p, ",");
		double quality = 1;

		while (*p == ' ' || *p == '\t') {
			p++;
			n--;
			range--;
		}
		q = strstr(p, "q=");
		if (q && (size_t)(q - p) < range)
			quality = strtod(q + 2, NULL);
		if (is_yaml_type(p, n) && quality > yq) {
			yq = quality;
			yfirst = yfirst || !seen_json;
		} else if (n == 16 && strncasecmp(p, "application/json", n) == 0 && quality > jq) {
			jq = quality;
			seen_json = 1;
		}
	}
	return yq > 0 && (yq > jq || (yq == jq && yfirst));
}

/* Replies 400 with {"error", "field", "line", "column"}: the field that msg
 * starts with ("Sources[0].Action: ...") located in document k of doc. Other
 * errors (code not EINVAL, or no doc) go through api_bad. Frees msg. */
static int bad_located(struct req *r, int code, char *msg, struct yamlx_doc *doc, size_t k)
{
	const char *sep = msg ? strstr(msg, ": ") : NULL;
	int line = 1, col = 1;
	char *field = NULL;
	json_t *body;

	if (code != WEFT_EINVAL || doc == NULL)
		return api_bad(r, code, msg);
	if (sep && strcspn(msg, " \"'") > (size_t)(sep - msg))
		field = strndup(msg, (size_t)(sep - msg));
	yamlx_locate(doc, k, field ? field : "", &line, &col);
	body = json_pack("{s:s,s:i,s:i}", "error", msg, "line", line, "column", col);
	if (body && field)
		json_object_set_new(body, "field", json_string(field));
	free(field);
	free(msg);
	if (body == NULL)
		return req_error(r, 500, "out of memory");
	return req_reply_json(r, 400, body);
}

/* A syntax error of the body, at its position. */
static int bad_syntax(struct req *r, const char *what, int line, int col, const char *problem)
{
	json_t *body = json_object();
	char *msg = NULL;

	if (body == NULL || asprintf(&msg, "body: invalid %s at line %d column %d: %s", what, line,
				     col, problem) < 0) {
		json_decref(body);
		return req_error(r, 500, "out of memory");
	}
	json_object_set_new(body, "error", json_string(msg));
	json_object_set_new(body, "field", json_string("body"));
	json_object_set_new(body, "line", json_integer(line));
	json_object_set_new(body, "column", json_integer(col));
	free(msg);
	return req_reply_json(r, 400, body);
}

/* Reads the body as one YAML document (or JSON, which positions come from
 * the same parser for). *doc keeps the positions for errors. Returns the
 * entry as the client wrote it (borrowed from *doc), or NULL with a 400
 * sent. */
static json_t *body_yaml(struct req *r, const char *data, size_t len, struct yamlx_doc **doc,
			 size_t *k)
{
	size_t i, n = 0;
	char *err = NULL;
	int line = 0, col = 0, off = 0;

	if (yamlx_parse(data, len, "body", doc, &err) != WEFT_OK) {
		if (err && sscanf(err, "body:%d:%d: %n", &line, &col, &off) == 2 && off > 0)
			bad_syntax(r, "YAML", line, col, err + off);
		else
			req_error(r, 400, "body: %s", err ? err : "invalid YAML");
		free(err);
		return NULL;
	}
	for (i = 0; i < yamlx_count(*doc); i++) {
		if (!json_is_null(yamlx_root(*doc, i))) {
			n++;
			*k = i;
		}
	}
	if (n != 1) {
		req_error(r, 400, n == 0 ? "body: a config entry is required" :
					   "body: one config entry per request, the body has %zu", n);
		return NULL;
	}
	return yamlx_root(*doc, *k);
}

static int h_put(struct req *r)
{
	const char *mesh = api_mesh_param(r), *data;
	struct yamlx_doc *doc = NULL;
	json_t *in = NULL, *entry = NULL;
	struct config_op *op;
	json_error_t jerr;
	char *err = NULL;
	size_t len, k = 0;
	int rc, status;

	if (mesh == NULL)
		return 400;
	data = req_body(r, &len);
	if (data == NULL || len == 0)
		return req_error(r, 400, "body: a config entry is required");
	if (body_is_yaml(r)) {
		if ((in = body_yaml(r, data, len, &doc, &k)) == NULL) {
			status = 400;
			goto out;
		}
		json_incref(in);
	} else if ((in = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
				    &jerr)) == NULL) {
		return bad_syntax(r, "JSON", jerr.line, jerr.column, jerr.text);
	}
	rc = config_entry_decode(in, &entry, &err);
	if (rc == WEFT_OK && strcmp(config_entry_kind(entry), "service-intentions") == 0)
		rc = check_intention_sources(entry, &err);
	if (rc != WEFT_OK) {
		/* JSON is YAML: its positions come from the same parser. */
		if (doc == NULL && rc == WEFT_EINVAL) {
			char *perr = NULL;

			if (yamlx_parse(data, len, "body", &doc, &perr) != WEFT_OK)
				doc = NULL;
			free(perr);
		}
		status = bad_located(r, rc, err, doc, k);
		goto out;
	}
	if (!req_authorize(r, AUTH_POLICY_WRITE, config_entry_name(entry))) {
		status = 403;
		goto out;
	}
	op = config_op_new(mesh, config_entry_kind(entry), config_entry_name(entry), entry);
	if (op == NULL) {
		status = req_error(r, 500, "out of memory");
		goto out;
	}
	if (parse_cas(r, op) != 0) {
		config_op_free(op);
		status = 400;
		goto out;
	}
	op->validate = validate_cross;
	op->validate_ctx = op;
	status = req_write(r, config_store_apply_put, op, config_op_free);
out:
	json_decref(in);
	json_decref(entry);
	yamlx_free(doc);
	return status;
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
	req_add_header(r, "Vary", "Accept");
	if (name && accept_yaml(r)) {
		char *yaml = yamlx_dump(out);

		json_decref(out);
		if (yaml == NULL)
			return req_error(r, 500, "cannot encode %s/%s as YAML", kind, name);
		return req_reply_raw(r, 200, "application/yaml", yaml, strlen(yaml));
	}
	return req_reply_json(r, 200, out);
}

const struct route api_config_routes[] = {
	{ M_PUT, "/v1/config", 0, h_put },
	{ M_GET | M_DELETE, "/v1/config/", ROUTE_PREFIX | ROUTE_BLOCKING, h_kind },
	{ 0, NULL, 0, NULL },
};
