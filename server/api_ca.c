/* /v1/connect/ca/...: Consul's CA roots and configuration endpoints, and
 * Weft's leaf signing from a CSR (docs/api.md "Connect CA", docs/ca.md). */
#include "api.h"
#include "ca.h"
#include "castore.h"
#include "err.h"
#include "http.h"
#include "jsonx.h"
#include "server.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* ?pem= as Go's strconv.ParseBool reads it (as Consul does): 1 true, 0
 * false or absent, -1 after replying 400. */
static int query_bool(struct req *r, const char *name)
{
	static const char *const yes[] = { "1", "t", "T", "true", "TRUE", "True", NULL };
	static const char *const no[] = { "0", "f", "F", "false", "FALSE", "False", NULL };
	const char *v = req_query(r, name);

	if (v == NULL || v[0] == '\0')
		return 0;
	for (size_t i = 0; yes[i]; i++)
		if (strcmp(v, yes[i]) == 0)
			return 1;
	for (size_t i = 0; no[i]; i++)
		if (strcmp(v, no[i]) == 0)
			return 0;
	req_error(r, 400, "%s: the query parameter must be a boolean value, not \"%.32s\"", name, v);
	return -1;
}

/* Makes the mesh's CA when it has none yet (lazily, docs/ca.md). */
static int ensure(struct req *r, const char *mesh)
{
	char *err = NULL;
	int rc = castore_ensure(req_server(r)->ca, mesh, &err);

	if (rc != WEFT_OK)
		return api_bad(r, rc, err);
	return 0;
}

static int h_roots(struct req *r)
{
	const char *mesh = api_mesh_param(r);
	uint64_t index = 0;
	struct db *db;
	json_t *out;
	int st, pem;

	if (mesh == NULL)
		return 400;
	if (api_check_dc(r) < 0 || (pem = query_bool(r, "pem")) < 0)
		return 400;
	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	req_watch(r, "ca:%s", mesh);
	if ((st = ensure(r, mesh)) != 0)
		return st;
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	if (pem) {
		char *text = castore_roots_pem(db, mesh);
		store_read_end(db);
		if (text == NULL)
			return req_error(r, 500, "store: cannot read the roots of mesh %s", mesh);
		return req_reply_raw(r, 200, "application/pem-certificate-chain", text, strlen(text));
	}
	out = castore_roots_json(db, mesh, &index);
	store_read_end(db);
	if (out == NULL)
		return req_error(r, 500, "store: cannot read the roots of mesh %s", mesh);
	req_index_at_least(r, index);
	return req_reply_json(r, 200, out);
}

static int h_configuration(struct req *r)
{
	const char *mesh = api_mesh_param(r);
	struct castore_put *p = NULL;
	char *err = NULL;
	struct db *db;
	json_t *doc, *out;
	int rc, st;

	if (mesh == NULL)
		return 400;
	if (api_check_dc(r) < 0)
		return 400;
	if (strcmp(req_method(r), "GET") == 0) {
		if (!req_authorize(r, AUTH_OPERATOR_READ, mesh))
			return 403;
		req_watch(r, "ca:%s", mesh);
		if ((st = ensure(r, mesh)) != 0)
			return st;
		if ((db = api_read_begin(r)) == NULL)
			return 500;
		out = castore_config_json(db, mesh);
		store_read_end(db);
		if (out == NULL)
			return req_error(r, 500, "store: cannot read the CA configuration of mesh %s", mesh);
		req_index_at_least(r, (uint64_t)json_integer_value(json_object_get(out, "ModifyIndex")));
		return req_reply_json(r, 200, out);
	}
	if ((doc = req_body_json(r)) == NULL)
		return 400;
	rc = castore_put_decode(doc, mesh, &p, &err);
	json_decref(doc);
	if (rc != WEFT_OK) {
		castore_put_free(p);
		return api_bad(r, rc, err);
	}
	if (!req_authorize(r, AUTH_POLICY_WRITE, mesh)) {
		castore_put_free(p);
		return 403;
	}
	if ((rc = castore_put_prepare(req_server(r)->ca, p, &err)) != WEFT_OK) {
		castore_put_free(p);
		return api_bad(r, rc, err);
	}
	return req_write(r, castore_apply_put, p, castore_put_free);
}

/* An agent token signs for the services of its own node: 1 when service
 * has an instance on the token's node in mesh, else 0 after a 403. */
static int agent_owns(struct req *r, const struct identity *id, const char *mesh,
		      const char *service)
{
	struct db *db;
	struct db_stmt *st;
	int rc = -1;

	if ((db = api_read_begin(r)) == NULL)
		return 0;
	st = db_prep(db, "SELECT 1 FROM services WHERE node = ? AND name = ? AND mesh = ? LIMIT 1");
	if (st) {
		db_bind_text(st, 1, id->scope);
		db_bind_text(st, 2, service);
		db_bind_text(st, 3, mesh);
		rc = db_step(st);
		db_done(st);
	}
	store_read_end(db);
	if (rc == DB_ROW)
		return 1;
	if (rc < 0) {
		req_error(r, 500, "store: cannot read the services of node %s", id->scope);
		return 0;
	}
	req_error(r, 403, "permission denied: token %s (kind agent for %s) signs only for services "
		  "registered on node \"%s\"; \"%s\" has no instance there in mesh \"%s\"",
		  id->accessor, id->scope, id->scope, service, mesh);
	return 0;
}

static int h_sign(struct req *r)
{
	const char *mesh = api_mesh_param(r), *service = NULL, *csr = NULL;
	char *err = NULL;
	json_t *doc, *out = NULL;
	int rc;

	if (mesh == NULL)
		return 400;
	if ((doc = req_body_json(r)) == NULL)
		return 400;
	if (!json_is_object(doc)) {
		json_decref(doc);
		return req_error(r, 400, "body: must be a JSON object {\"Service\", \"CSR\"}");
	}
	if (jx_req_str(doc, NULL, "Service", &service, CA_NAME_MAX + 1, &err) != WEFT_OK ||
	    jx_req_str(doc, NULL, "CSR", &csr, CA_CSR_MAX + 1, &err) != WEFT_OK) {
		json_decref(doc);
		return api_bad(r, WEFT_EINVAL, err);
	}
	if (!name_valid(service, CA_NAME_MAX + 1)) {
		rc = req_error(r, 400, "Service: \"%s\" is not a valid service name", service);
		json_decref(doc);
		return rc;
	}
	/* Consul's leaf certificates need service:write on the service. */
	if (!req_authorize(r, AUTH_SERVICE_WRITE, service)) {
		json_decref(doc);
		return 403;
	}
	if (req_identity(r) && req_identity(r)->kind == TOKEN_AGENT &&
	    !agent_owns(r, req_identity(r), mesh, service)) {
		json_decref(doc);
		return 403;
	}
	rc = castore_sign(req_server(r)->ca, mesh, service, csr, strlen(csr), &out, &err);
	json_decref(doc);
	if (rc != WEFT_OK)
		return api_bad(r, rc, err);
	return req_reply_json(r, 200, out);
}

const struct route api_ca_routes[] = {
	{ M_GET, "/v1/connect/ca/roots", ROUTE_BLOCKING, h_roots },
	{ M_GET, "/v1/agent/connect/ca/roots", ROUTE_BLOCKING, h_roots },
	{ M_GET | M_PUT, "/v1/connect/ca/configuration", ROUTE_BLOCKING, h_configuration },
	{ M_POST, "/v1/connect/ca/sign", 0, h_sign },
	{ 0, NULL, 0, NULL },
};
