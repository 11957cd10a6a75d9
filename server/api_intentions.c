/* /v1/connect/intentions/... : Consul's intentions API on service-intentions
 * config entries (server/intentions.h), decided by lib/intention. Every
 * endpoint takes ?mesh= (default "default"). */
#include "api.h"
#include "err.h"
#include "http.h"
#include "intention.h"
#include "intentions.h"
#include "jsonx.h"
#include "mesh.h"
#include "server.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define CHECK_HEADERS_MAX 32

/* Weft has one namespace; analysis treats it as the universe. */
static const char *const namespaces[] = { INTENTION_DEFAULT_NS };
static const struct intention_universe universe = { namespaces, 1 };


/* The mesh's snapshot, or NULL after replying. */
static const struct intentions_snap *snap_get(struct req *r, const char *mesh)
{
	const struct intentions_snap *s = NULL;
	char *err = NULL;
	int rc = intentions_acquire(req_server(r)->intentions, mesh, &s, &err);

	if (rc != WEFT_OK) {
		api_bad(r, rc, err);
		return NULL;
	}
	return s;
}

static void snap_put(struct req *r, const struct intentions_snap *s)
{
	intentions_release(req_server(r)->intentions, s);
}

/* "ns/name" or "name" (namespace "default"), as Consul's check and match
 * accept. Writes into ns (size n) and returns the name part. */
static const char *split_ns(const char *v, char *ns, size_t n)
{
	const char *slash = strchr(v, '/');

	if (slash == NULL || (size_t)(slash - v) >= n) {
		snprintf(ns, n, "%s", INTENTION_DEFAULT_NS);
		return v;
	}
	snprintf(ns, n, "%.*s", (int)(slash - v), v);
	return slash + 1;
}

static const char *required(struct req *r, const char *name)
{
	const char *v = req_query(r, name);

	if (v == NULL || v[0] == '\0') {
		req_error(r, 400, "%s: required query parameter", name);
		return NULL;
	}
	return v;
}

static json_t *set_json(const struct intention_set *set)
{
	json_t *out = json_array();

	for (size_t i = 0; i < intention_set_count(set); i++)
		json_array_append_new(out, intention_to_json(intention_set_get(set, i)));
	return out;
}

/* GET /v1/connect/intentions */
static int h_list(struct req *r)
{
	const struct intentions_snap *s;
	const char *mesh = api_mesh_param(r);
	json_t *out;

	if (mesh == NULL)
		return 400;
	if (!req_authorize(r, AUTH_POLICY_READ, NULL))
		return 403;
	req_watch(r, "cfg:%s:%s", mesh, INTENTIONS_KIND);
	if ((s = snap_get(r, mesh)) == NULL)
		return 400;
	out = set_json(s->set);
	snap_put(r, s);
	if ((out = api_filter(r, out)) == NULL)
		return 400;
	return req_reply_json(r, 200, out);
}

/* Decodes an intention body; NULL after replying 400. src/dst from the
 * query of /exact (NULL otherwise) fill in or must equal the body's. */
static struct intention *decode(struct req *r, const char *src, const char *dst)
{
	struct intention *ix = NULL;
	char *err = NULL, ns[INTENTION_NAME_MAX + 1];
	json_t *doc = req_body_json(r);
	int rc;

	if (doc == NULL)
		return NULL;
	if (!json_is_object(doc)) {
		json_decref(doc);
		req_error(r, 400, "body: must be a JSON object (an intention)");
		return NULL;
	}
	if (src) {
		const char *name = split_ns(src, ns, sizeof(ns));
		const char *b = json_string_value(jx_field(doc, "SourceName"));
		if (b && b[0] && strcmp(b, name) != 0) {
			req_error(r, 400, "SourceName: \"%s\" differs from ?source=%s", b, src);
			goto fail;
		}
		json_object_set_new(doc, "SourceName", json_string(name));
		if (strchr(src, '/'))
			json_object_set_new(doc, "SourceNS", json_string(ns));
		name = split_ns(dst, ns, sizeof(ns));
		b = json_string_value(jx_field(doc, "DestinationName"));
		if (b && b[0] && strcmp(b, name) != 0) {
			req_error(r, 400, "DestinationName: \"%s\" differs from ?destination=%s", b, dst);
			goto fail;
		}
		json_object_set_new(doc, "DestinationName", json_string(name));
		if (strchr(dst, '/'))
			json_object_set_new(doc, "DestinationNS", json_string(ns));
	}
	rc = intention_from_json(doc, NULL, &ix, &err);
	if (rc != WEFT_OK) {
		api_bad(r, rc, err);
		goto fail;
	}
	if (strcmp(intention_destination_ns(ix), INTENTION_DEFAULT_NS) != 0) {
		req_error(r, 400, "DestinationNS: \"%s\": Weft has one namespace, \"default\"",
			  intention_destination_ns(ix));
		goto fail;
	}
	json_decref(doc);
	return ix;
fail:
	intention_free(ix);
	json_decref(doc);
	return NULL;
}

/* lib/intention's report JSON, plus "ByRules": the covering intentions as
 * "ns/name -> ns/name" (intentions written through /exact have no ID). */
static json_t *report_json(const struct intention_report *rep)
{
	json_t *out = intention_report_to_json(rep), *f;
	size_t i;

	json_array_foreach(out, i, f) {
		const struct intention_finding *fd = intention_report_get(rep, i);
		json_t *rules;

		if (fd == NULL || fd->n_by == 0 || fd->kind != INTENTION_SHADOWED)
			continue;
		rules = json_array();
		for (size_t k = 0; k < fd->n_by; k++) {
			const struct intention *b = fd->by[k];
			json_array_append_new(rules, json_sprintf("%s/%s -> %s/%s", intention_source_ns(b),
								  intention_source_name(b),
								  intention_destination_ns(b),
								  intention_destination_name(b)));
		}
		json_object_set_new(f, "ByRules", rules);
	}
	return out;
}

/* The findings writing ix to mesh would create, as a JSON array (empty if
 * none), or NULL after replying. A write to one destination is analyzed
 * against that destination's and "*"'s intentions only (what can share a
 * call with it: intentions_load_for), read from the store, so a write never
 * compiles the whole mesh; a write to "*" uses the mesh's snapshot. *id_out,
 * if given, gets the ID of the intention ix replaces ("" if none). */
static json_t *warnings_for(struct req *r, const char *mesh, struct intention *ix,
			    char *id_out, size_t id_size)
{
	const char *dst = intention_destination_name(ix);
	const struct intentions_snap *snap = NULL;
	struct intention_set *own = NULL;
	const struct intention_set *set;
	const struct intention *cur;
	struct intention_report *rep = NULL;
	char *err = NULL;
	json_t *out;
	int rc;

	if (strcmp(dst, INTENTION_WILDCARD) == 0) {
		if ((snap = snap_get(r, mesh)) == NULL)
			return NULL;
		set = snap->set;
	} else {
		struct db *db = api_read_begin(r);

		if (db == NULL)
			return NULL;
		rc = mesh_exists(db, mesh);
		if (rc == 1)
			rc = intentions_load_for(db, mesh, dst, &own, &err);
		else if (rc == 0)
			rc = weft_errf(&err, WEFT_EINVAL, "mesh: no mesh \"%s\"", mesh);
		else
			rc = weft_errf(&err, WEFT_EIO, "store: %s", db_errmsg(db));
		store_read_end(db);
		if (rc != WEFT_OK) {
			api_bad(r, rc, err);
			return NULL;
		}
		set = own;
	}
	if (id_out) {
		cur = intention_set_find(set, intention_source_ns(ix), intention_source_name(ix), NULL, dst);
		snprintf(id_out, id_size, "%s", cur ? intention_id(cur) : "");
		if (id_out[0])
			intention_set_id(ix, id_out, NULL);
	}
	if (intention_set_analyze_new(set, ix, &universe, &rep, NULL) == WEFT_OK) {
		out = report_json(rep);
		intention_report_free(rep);
	} else {
		out = NULL;
	}
	if (snap)
		snap_put(r, snap);
	intention_set_free(own);
	return out ? out : json_array();
}

static struct intentions_op *op_new(struct req *r, enum intentions_op_kind kind, const char *mesh)
{
	struct intentions_op *op = calloc(1, sizeof(*op));

	if (op == NULL || (op->mesh = strdup(mesh)) == NULL) {
		free(op);
		req_error(r, 500, "out of memory");
		return NULL;
	}
	op->kind = kind;
	return op;
}

/* POST /v1/connect/intentions: {"ID", "Warnings"?, "Findings"?} */
static int h_create(struct req *r)
{
	const char *mesh = api_mesh_param(r);
	struct intentions_op *op;
	struct intention *ix;

	if (mesh == NULL || (ix = decode(r, NULL, NULL)) == NULL)
		return 400;
	if (intention_id(ix)[0]) {
		intention_free(ix);
		return req_error(r, 400, "ID: must be empty when creating an intention");
	}
	if (!req_authorize(r, AUTH_POLICY_WRITE, intention_destination_name(ix))) {
		intention_free(ix);
		return 403;
	}
	if ((op = op_new(r, INTENTIONS_CREATE, mesh)) == NULL) {
		intention_free(ix);
		return 500;
	}
	uuid_generate(op->id);
	intention_set_id(ix, op->id, NULL);
	op->ix = ix;
	if ((op->findings = warnings_for(r, mesh, ix, NULL, 0)) == NULL) {
		intentions_op_free(op);
		return 400;
	}
	return req_write(r, intentions_apply, op, intentions_op_free);
}

/* GET|PUT|DELETE /v1/connect/intentions/exact?source=&destination= */
static int h_exact(struct req *r)
{
	const char *mesh = api_mesh_param(r), *src, *dst, *sname, *dname;
	char sns[INTENTION_NAME_MAX + 1], dns[INTENTION_NAME_MAX + 1];
	const struct intentions_snap *s;
	struct intentions_op *op;
	struct intention *ix;

	if (mesh == NULL || (src = required(r, "source")) == NULL ||
	    (dst = required(r, "destination")) == NULL)
		return 400;
	sname = split_ns(src, sns, sizeof(sns));
	dname = split_ns(dst, dns, sizeof(dns));
	if (strcmp(req_method(r), "GET") == 0) {
		const struct intention *found;
		json_t *out = NULL;

		if (!req_authorize(r, AUTH_POLICY_READ, dname))
			return 403;
		req_watch(r, "cfg:%s:%s:%s", mesh, INTENTIONS_KIND, dname);
		if ((s = snap_get(r, mesh)) == NULL)
			return 400;
		found = intention_set_find(s->set, sns, sname, dns, dname);
		if (found)
			out = intention_to_json(found);
		snap_put(r, s);
		if (out == NULL)
			return req_error(r, 404, "intention from \"%s\" to \"%s\" not found in mesh \"%s\"",
					 src, dst, mesh);
		return req_reply_json(r, 200, out);
	}
	if (strcmp(req_method(r), "DELETE") == 0) {
		if (!req_authorize(r, AUTH_POLICY_WRITE, dname))
			return 403;
		if ((op = op_new(r, INTENTIONS_DELETE_EXACT, mesh)) == NULL)
			return 500;
		op->src_ns = strdup(sns);
		op->src_name = strdup(sname);
		op->dst_name = strdup(dname);
		if (op->src_ns == NULL || op->src_name == NULL || op->dst_name == NULL) {
			intentions_op_free(op);
			return req_error(r, 500, "out of memory");
		}
		return req_write(r, intentions_apply, op, intentions_op_free);
	}
	/* PUT: upsert by name pair; `true`, with X-Weft-Warnings (messages) and
	 * X-Weft-Findings (the findings) when there are findings. */
	if ((ix = decode(r, src, dst)) == NULL)
		return 400;
	if (!req_authorize(r, AUTH_POLICY_WRITE, dname)) {
		intention_free(ix);
		return 403;
	}
	if ((op = op_new(r, INTENTIONS_UPSERT, mesh)) == NULL) {
		intention_free(ix);
		return 500;
	}
	op->ix = ix;
	{
		char id[64];
		json_t *warn = warnings_for(r, mesh, ix, id, sizeof(id));

		if (warn == NULL) {
			intentions_op_free(op);
			return 400;
		}
		if (json_array_size(warn)) {
			json_t *msgs = json_array(), *f;
			size_t i;
			char *text;

			json_array_foreach(warn, i, f)
				json_array_append(msgs, json_object_get(f, "Message"));
			if ((text = jx_dump(msgs)) != NULL)
				req_add_header(r, "X-Weft-Warnings", text);
			free(text);
			json_decref(msgs);
			if ((text = jx_dump(warn)) != NULL)
				req_add_header(r, "X-Weft-Findings", text);
			free(text);
		}
		json_decref(warn);
	}
	return req_write(r, intentions_apply, op, intentions_op_free);
}

/* "K:V" query values into headers (pointing into list's strings). */
static int parse_headers(struct req *r, json_t *list, struct intention_header *hs, char *buf,
			 size_t bufsize, size_t *n)
{
	size_t used = 0, i;
	json_t *v;

	*n = 0;
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v), *colon = strchr(s, ':');
		size_t len = strlen(s) + 1;

		if (colon == NULL || colon == s)
			return req_error(r, 400, "header: \"%s\" is not NAME:VALUE", s), -1;
		if (*n == CHECK_HEADERS_MAX || used + len > bufsize)
			return req_error(r, 400, "header: at most %d headers", CHECK_HEADERS_MAX), -1;
		memcpy(buf + used, s, len);
		buf[used + (size_t)(colon - s)] = '\0';
		hs[*n].name = buf + used;
		hs[*n].value = buf + used + (size_t)(colon - s) + 1;
		while (*hs[*n].value == ' ')
			hs[*n].value++;
		used += len;
		(*n)++;
	}
	return 0;
}

/* GET /v1/connect/intentions/check?source=&destination=[&method=&path=&header=K:V] */
static int h_check(struct req *r)
{
	const char *mesh = api_mesh_param(r), *src, *dst;
	char sns[INTENTION_NAME_MAX + 1], dns[INTENTION_NAME_MAX + 1], hbuf[8192];
	struct intention_header hs[CHECK_HEADERS_MAX];
	struct intention_decision d;
	struct intention_call call = { 0 };
	const struct intentions_snap *s;
	json_t *hdrs, *out;
	size_t nh = 0;

	if (mesh == NULL || (src = required(r, "source")) == NULL ||
	    (dst = required(r, "destination")) == NULL)
		return 400;
	call.source_name = split_ns(src, sns, sizeof(sns));
	call.source_ns = sns;
	call.destination_name = split_ns(dst, dns, sizeof(dns));
	call.destination_ns = dns;
	if (!req_authorize(r, AUTH_POLICY_READ, call.destination_name))
		return 403;
	hdrs = req_query_list(r, "header");
	if (parse_headers(r, hdrs, hs, hbuf, sizeof(hbuf), &nh) < 0) {
		json_decref(hdrs);
		return 400;
	}
	call.method = req_query(r, "method");
	call.path = req_query(r, "path");
	call.http = call.method || call.path || nh > 0;
	if (call.http) {
		if (call.method == NULL || call.method[0] == '\0')
			call.method = "GET";
		if (call.path == NULL || call.path[0] == '\0')
			call.path = "/";
		else if (call.path[0] != '/') {
			json_decref(hdrs);
			return req_error(r, 400, "path: \"%s\" must start with /", call.path);
		}
		call.headers = hs;
		call.n_headers = nh;
	}
	if ((s = snap_get(r, mesh)) == NULL) {
		json_decref(hdrs);
		return 400;
	}
	intention_set_decide(s->set, &call, s->default_action, &d);
	out = intention_decision_to_json(&d);
	snap_put(r, s);
	json_decref(hdrs);
	return req_reply_json(r, 200, out);
}

/* GET /v1/connect/intentions/match?by=source|destination&name=N[&name=M] */
static int h_match(struct req *r)
{
	const char *mesh = api_mesh_param(r), *by;
	enum intention_match_by mb;
	const struct intentions_snap *s;
	json_t *names, *v, *out;
	size_t i;

	if (mesh == NULL || (by = required(r, "by")) == NULL)
		return 400;
	if (strcmp(by, "source") == 0)
		mb = INTENTION_MATCH_SOURCE;
	else if (strcmp(by, "destination") == 0)
		mb = INTENTION_MATCH_DESTINATION;
	else
		return req_error(r, 400, "by: \"%s\" is not one of source, destination", by);
	names = req_query_list(r, "name");
	if (json_array_size(names) == 0) {
		json_decref(names);
		return req_error(r, 400, "name: required query parameter");
	}
	if (!req_authorize(r, AUTH_POLICY_READ, NULL)) {
		json_decref(names);
		return 403;
	}
	/* Wake for the names asked about and the wildcard, not for others. */
	if (json_array_size(names) == 1) {
		char ns[INTENTION_NAME_MAX + 1];
		const char *n = split_ns(json_string_value(json_array_get(names, 0)), ns, sizeof(ns));
		const char *side = mb == INTENTION_MATCH_SOURCE ? "src" : "dst";
		req_watch(r, "ixn:%s:%s:%s", mesh, side, n);
		req_watch(r, "ixn:%s:%s:*", mesh, side);
	} else {
		req_watch(r, "cfg:%s:%s", mesh, INTENTIONS_KIND);
	}
	if ((s = snap_get(r, mesh)) == NULL) {
		json_decref(names);
		return 400;
	}
	out = json_object();
	json_array_foreach(names, i, v) {
		char ns[INTENTION_NAME_MAX + 1], *err = NULL;
		const char *full = json_string_value(v), *n = split_ns(full, ns, sizeof(ns));
		const struct intention **m = NULL;
		size_t nm = 0;
		json_t *arr;

		if (intention_set_match(s->set, mb, ns, n, &m, &nm, &err) != WEFT_OK) {
			snap_put(r, s);
			json_decref(out);
			json_decref(names);
			return api_bad(r, WEFT_EINVAL, err);
		}
		arr = json_array();
		for (size_t k = 0; k < nm; k++)
			json_array_append_new(arr, intention_to_json(m[k]));
		free(m);
		json_object_set_new(out, full, arr);
	}
	snap_put(r, s);
	json_decref(names);
	return req_reply_json(r, 200, out);
}

/* GET /v1/connect/intentions/analysis (Weft's own) */
static int h_analysis(struct req *r)
{
	const char *mesh = api_mesh_param(r);
	const struct intentions_snap *s;
	struct intention_report *rep = NULL;
	char *err = NULL;
	json_t *out;
	int rc;

	if (mesh == NULL)
		return 400;
	if (!req_authorize(r, AUTH_POLICY_READ, NULL))
		return 403;
	req_watch(r, "cfg:%s:%s", mesh, INTENTIONS_KIND);
	if ((s = snap_get(r, mesh)) == NULL)
		return 400;
	rc = intention_set_analyze(s->set, &universe, &rep, &err);
	if (rc != WEFT_OK) {
		snap_put(r, s);
		return api_bad(r, rc, err);
	}
	out = json_pack("{s:s, s:[s], s:I, s:o}", "Mesh", mesh, "Namespaces", INTENTION_DEFAULT_NS,
			"Intentions", (json_int_t)intention_set_count(s->set),
			"Findings", report_json(rep));
	intention_report_free(rep);
	snap_put(r, s);
	return req_reply_json(r, 200, out);
}

/* GET|PUT|DELETE /v1/connect/intentions/:id (intentions created by POST) */
static int h_id(struct req *r)
{
	const char *mesh = api_mesh_param(r), *id = req_tail(r);
	const struct intentions_snap *s;
	const struct intention *cur;
	struct intentions_op *op;
	struct intention *ix = NULL;
	char dst[INTENTION_NAME_MAX + 1];
	json_t *out;

	if (strcmp(id, "exact") == 0 || strcmp(id, "check") == 0 || strcmp(id, "match") == 0 ||
	    strcmp(id, "analysis") == 0)
		return req_error(r, 405, "%s is not allowed on /v1/connect/intentions/%s",
				 req_method(r), id);
	if (mesh == NULL)
		return 400;
	if (!uuid_valid(id))
		return req_error(r, 400, "id: \"%s\" is not an intention ID (a UUID)", id);
	if (strcmp(req_method(r), "PUT") == 0 && (ix = decode(r, NULL, NULL)) == NULL)
		return 400;
	if (ix && intention_id(ix)[0] && strcmp(intention_id(ix), id) != 0) {
		intention_free(ix);
		return req_error(r, 400, "ID: \"%s\" differs from the ID in the path", id);
	}
	if (strcmp(req_method(r), "GET") == 0) {
		if (!req_authorize(r, AUTH_POLICY_READ, NULL))
			return 403;
		req_watch(r, "cfg:%s:%s", mesh, INTENTIONS_KIND);
	}
	if ((s = snap_get(r, mesh)) == NULL) {
		intention_free(ix);
		return 400;
	}
	cur = intention_set_find_id(s->set, id);
	if (cur == NULL) {
		snap_put(r, s);
		intention_free(ix);
		return req_error(r, 404, "intention \"%s\" not found in mesh \"%s\"", id, mesh);
	}
	snprintf(dst, sizeof(dst), "%s", intention_destination_name(cur));
	if (strcmp(req_method(r), "GET") == 0) {
		out = intention_to_json(cur);
		snap_put(r, s);
		return req_reply_json(r, 200, out);
	}
	if (!req_authorize(r, AUTH_POLICY_WRITE, dst) ||
	    (ix && !req_authorize(r, AUTH_POLICY_WRITE, intention_destination_name(ix)))) {
		snap_put(r, s);
		intention_free(ix);
		return 403;
	}
	op = op_new(r, ix ? INTENTIONS_UPDATE_ID : INTENTIONS_DELETE_ID, mesh);
	if (op == NULL) {
		snap_put(r, s);
		intention_free(ix);
		return 500;
	}
	snprintf(op->id, sizeof(op->id), "%s", id);
	snap_put(r, s);
	if (ix) {
		intention_set_id(ix, id, NULL);
		op->ix = ix;
		if ((op->findings = warnings_for(r, mesh, ix, NULL, 0)) == NULL) {
			intentions_op_free(op);
			return 400;
		}
	}
	return req_write(r, intentions_apply, op, intentions_op_free);
}

const struct route api_intentions_routes[] = {
	{ M_GET, "/v1/connect/intentions", ROUTE_BLOCKING, h_list },
	{ M_POST, "/v1/connect/intentions", 0, h_create },
	{ M_GET | M_PUT | M_DELETE, "/v1/connect/intentions/exact", ROUTE_BLOCKING, h_exact },
	{ M_GET, "/v1/connect/intentions/check", 0, h_check },
	{ M_GET, "/v1/connect/intentions/match", ROUTE_BLOCKING, h_match },
	{ M_GET, "/v1/connect/intentions/analysis", ROUTE_BLOCKING, h_analysis },
	{ M_GET | M_PUT | M_DELETE, "/v1/connect/intentions/", ROUTE_PREFIX | ROUTE_BLOCKING, h_id },
	{ 0, NULL, 0, NULL },
};
