/* /v1/weft/proxy/:proxy-id/snapshot: one weft-proxy's configuration
 * snapshot (server/proxysnap.h, docs/api.md "Proxy snapshots"), with
 * blocking queries on exactly what the snapshot depends on. */
#include "api.h"
#include "castore.h"
#include "err.h"
#include "http.h"
#include "proxysnap.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_PREFIX "/v1/weft/proxy/"
#define SNAP_SUFFIX "/snapshot"
/* Reads until the topics the answer depends on were all watched before
 * the read that produced it (a new upstream adds topics). */
#define SNAP_PASSES_MAX 6

/* Watches the topics of s not yet in watched; returns how many were new. */
static size_t watch_new(struct req *r, const struct proxysnap *s, json_t *watched)
{
	const char *t;
	json_t *v;
	size_t n = 0;

	json_object_foreach(s->topics, t, v) {
		if (json_object_get(watched, t))
			continue;
		req_watch(r, "%s", t);
		json_object_set_new(watched, t, json_true());
		n++;
	}
	return n;
}

static int h_snapshot(struct req *r)
{
	static const char *const params[] = { "index", "wait", "dc", "node", "version", NULL };
	struct server *srv = req_server(r);
	const char *tail = req_tail(r), *node = req_query(r, "node");
	struct proxysnap_req rq = { .datacenter = srv->datacenter, .dev = srv->dev };
	struct proxysnap s = { 0 };
	const struct identity *me;
	json_t *watched = NULL;
	char *id = NULL, *err = NULL;
	size_t tl = strlen(tail), sl = strlen(SNAP_SUFFIX);
	uint64_t version = 0;
	int rc = WEFT_OK, status, ensured = 0;

	if (tl <= sl || strcmp(tail + tl - sl, SNAP_SUFFIX) != 0 ||
	    memchr(tail, '/', tl - sl) != NULL)
		return req_error(r, 404, "no such endpoint: %s %s (want %s:proxy-id%s)",
				 req_method(r), req_path(r), SNAP_PREFIX, SNAP_SUFFIX);
	if (!req_query_only(r, params))
		return req_error(r, 400, "query: only index, wait, dc, node and version apply here");
	if (api_check_dc(r) < 0 || req_query_u64(r, "version", &version) < 0)
		return 400;
	if (req_query(r, "version") && version < PROXYSNAP_VERSION)
		return req_error(r, 400, "version: %llu is older than the snapshots this server "
				 "writes (%d)", (unsigned long long)version, PROXYSNAP_VERSION);
	if ((id = strndup(tail, tl - sl)) == NULL)
		return req_error(r, 500, "out of memory");
	/* A valid token first: who may not read snapshots learns nothing about
	 * which proxies exist. */
	if (!req_authenticate(r, AUTH_SERVICE_WRITE, id)) {
		free(id);
		return 403;
	}
	rq.proxy_id = id;
	rq.node = node && node[0] ? node : NULL;
	watched = json_object();
	for (int pass = 0; pass < SNAP_PASSES_MAX; pass++) {
		struct db *db;
		size_t fresh;

		proxysnap_clear(&s);
		free(err);
		err = NULL;
		if ((db = api_read_begin(r)) == NULL) {
			status = 500;
			goto out;
		}
		rc = proxysnap_build(db, &rq, &s, &err);
		store_read_end(db);
		fresh = watch_new(r, &s, watched);
		/* The mesh's CA is made on first use, as for /v1/connect/ca. */
		if (s.mesh && !ensured) {
			char *cerr = NULL;

			ensured = 1;
			if (castore_ensure(srv->ca, s.mesh, &cerr) != WEFT_OK) {
				status = api_bad(r, WEFT_EIO, cerr);
				goto out;
			}
			free(cerr);
			if (rc != WEFT_OK)
				continue;
		}
		if (fresh == 0)
			break;
	}
	if (s.service && !req_authorize(r, AUTH_SERVICE_WRITE, s.service)) {
		status = 403;
		goto out;
	}
	/* As for leaf certificates: an agent token, for the proxies of its node. */
	me = req_identity(r);
	if (s.node && me && me->kind == TOKEN_AGENT && strcmp(me->scope, s.node) != 0) {
		status = req_error(r, 403, "permission denied: token %s (kind agent for %s) reads "
				   "only the snapshots of proxies on node \"%s\"; \"%s\" is on \"%s\"",
				   me->accessor, me->scope, me->scope, id, s.node);
		goto out;
	}
	if (rc != WEFT_OK) {
		status = req_errcode(r, rc, err);
		goto out;
	}
	json_object_set_new(s.doc, "Index",
			    json_integer((json_int_t)(req_index(r) ? req_index(r) : 1)));
	status = req_reply_json(r, 200, s.doc);
	s.doc = NULL;
out:
	proxysnap_clear(&s);
	json_decref(watched);
	free(err);
	free(id);
	return status;
}

const struct route api_proxy_routes[] = {
	{ M_GET, SNAP_PREFIX, ROUTE_PREFIX | ROUTE_BLOCKING, h_snapshot },
	{ 0, NULL, 0, NULL },
};
