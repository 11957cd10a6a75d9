/* /v1/session/... */
#include "api.h"
#include "err.h"
#include "http.h"
#include "server.h"
#include "session.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

static void free_create(void *p) { session_create_free(p); }
static void free_op(void *p) { session_op_free(p); }

static int h_create(struct req *r)
{
	struct session_create *c = calloc(1, sizeof(*c));
	json_t *doc = NULL;
	char *err = NULL;
	size_t len;
	int rc;

	if (c == NULL)
		return req_error(r, 500, "out of memory");
	req_body(r, &len);
	if (len > 0 && (doc = req_body_json(r)) == NULL) {
		free(c);
		return 400;
	}
	rc = session_decode_create(doc, req_server(r)->node_name, c, &err);
	json_decref(doc);
	if (rc != WEFT_OK) {
		session_create_free(c);
		return api_bad(r, rc, err);
	}
	if (api_check_dc(r) || !req_authorize(r, AUTH_SESSION_WRITE, c->node)) {
		session_create_free(c);
		return 403;
	}
	c->now_ms = store_now_ms(req_server(r)->store);
	return req_write(r, session_apply_create, c, free_create);
}

/* Destroy and renew act on the session's node: authorise against it. */
static int session_write(struct req *r, store_apply_fn apply, int must_exist)
{
	const char *id = req_tail(r);
	struct session_op *op;
	struct db *db;
	char *node;
	int ok;

	if (id[0] == '\0')
		return req_error(r, 400, "session: Missing session");
	if (api_check_dc(r))
		return 400;
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	node = session_node_of(db, id);
	store_read_end(db);
	if (node == NULL && must_exist)
		return req_error(r, 404, "Session id '%s' not found", id);
	ok = req_authorize(r, AUTH_SESSION_WRITE, node);
	free(node);
	if (!ok)
		return 403;
	op = session_op_new(id, store_now_ms(req_server(r)->store));
	if (op == NULL)
		return req_error(r, 500, "out of memory");
	return req_write(r, apply, op, free_op);
}

static int h_destroy(struct req *r) { return session_write(r, session_apply_destroy, 0); }
static int h_renew(struct req *r) { return session_write(r, session_apply_renew, 1); }

static int h_info(struct req *r)
{
	const char *id = req_tail(r);
	struct db *db;
	json_t *out;

	if (id[0] == '\0')
		return req_error(r, 400, "session: Missing session");
	if (api_check_dc(r) || !req_authorize(r, AUTH_READ, NULL))
		return 403;
	req_watch(r, "session:%s", id);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = session_get(db, id);
	store_read_end(db);
	return req_reply_json(r, 200, out);
}

static int h_node(struct req *r)
{
	const char *node = req_tail(r);
	struct db *db;
	json_t *out;

	if (node[0] == '\0')
		return req_error(r, 400, "node: Missing node name");
	if (api_check_dc(r) || !req_authorize(r, AUTH_READ, node))
		return 403;
	req_watch(r, "sessnode:%s", node);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = session_node_list(db, node);
	store_read_end(db);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

static int h_list(struct req *r)
{
	struct db *db;
	json_t *out;

	if (api_check_dc(r) || !req_authorize(r, AUTH_READ, NULL))
		return 403;
	req_watch(r, "sessions");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = session_list(db);
	store_read_end(db);
	out = api_filter(r, out);
	return out ? req_reply_json(r, 200, out) : 400;
}

const struct route api_session_routes[] = {
	{ M_PUT, "/v1/session/create", 0, h_create },
	{ M_PUT, "/v1/session/destroy/", ROUTE_PREFIX, h_destroy },
	{ M_PUT, "/v1/session/renew/", ROUTE_PREFIX, h_renew },
	{ M_GET, "/v1/session/info/", ROUTE_PREFIX | ROUTE_BLOCKING, h_info },
	{ M_GET, "/v1/session/node/", ROUTE_PREFIX | ROUTE_BLOCKING, h_node },
	{ M_GET, "/v1/session/list", ROUTE_BLOCKING, h_list },
	{ 0, NULL, 0, NULL },
};
