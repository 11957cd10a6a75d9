/* /v1/weft/proxy/:proxy-id/snapshot: one weft-proxy's configuration
 * snapshot (server/proxysnap.h, docs/api.md "Proxy snapshots"), with
 * blocking queries on exactly what the snapshot depends on. */
#include "api.h"
#include "castore.h"
#include "err.h"
#include "http.h"
#include "hub.h"
#include "proxysnap.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_PREFIX "/v1/weft/proxy/"
#define SNAP_SUFFIX "/snapshot"

/* proxysnap_watch_fn: watched first, then its index read, so that the
 * reply never claims more than what the snapshot was read after. */
static uint64_t watch_topic(void *arg, const char *topic)
{
	struct req *r = arg;

	req_watch(r, "%s", topic);
	return hub_index(req_server(r)->hub, topic);
}

/* proxysnap_mesh_fn: the mesh's CA is made on first use, as for
 * /v1/connect/ca. */
static int ensure_ca(void *arg, const char *mesh, char **err)
{
	return castore_ensure(req_server(arg)->ca, mesh, err);
}

static int h_snapshot(struct req *r)
{
	static const char *const params[] = { "index", "wait", "dc", "node", "version", NULL };
	struct server *srv = req_server(r);
	const char *tail = req_tail(r), *node = req_query(r, "node");
	struct proxysnap_req rq = { .datacenter = srv->datacenter, .dev = srv->dev,
				    .cache = srv->snapshots };
	struct proxysnap_answer a = { 0 };
	const struct identity *me;
	char *id = NULL, *err = NULL, *body = NULL;
	size_t tl = strlen(tail), sl = strlen(SNAP_SUFFIX);
	uint64_t version = 0;
	int rc, status, n;

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
	/* The version the proxy speaks, or the newest this server writes if
	 * that is older (docs/proxy-config.md "Versions"). */
	rq.version = req_query(r, "version") && version < PROXYSNAP_VERSION ? (int)version
									    : PROXYSNAP_VERSION;
	rc = proxysnap_answer(srv->store, &rq, watch_topic, ensure_ca, r, &a, &err);
	if (a.service && !req_authorize(r, AUTH_SERVICE_WRITE, a.service)) {
		status = 403;
		goto out;
	}
	/* As for leaf certificates: an agent token, for the proxies of its node. */
	me = req_identity(r);
	if (a.node && me && me->kind == TOKEN_AGENT && strcmp(me->scope, a.node) != 0) {
		status = req_error(r, 403, "permission denied: token %s (kind agent for %s) reads "
				   "only the snapshots of proxies on node \"%s\"; \"%s\" is on \"%s\"",
				   me->accessor, me->scope, me->scope, id, a.node);
		goto out;
	}
	if (rc != WEFT_OK) {
		status = req_errcode(r, rc, err);
		goto out;
	}
	/* The text is "{...}" without Index: Index goes first. */
	n = asprintf(&body, "{\"Index\":%llu%s%s",
		     (unsigned long long)(req_index(r) ? req_index(r) : 1), a.len > 2 ? "," : "",
		     a.text + 1);
	if (n < 0) {
		status = req_error(r, 500, "out of memory");
		goto out;
	}
	status = req_reply_raw(r, 200, "application/json", body, (size_t)n);
out:
	proxysnap_answer_clear(&a);
	free(err);
	free(id);
	return status;
}

const struct route api_proxy_routes[] = {
	{ M_GET, SNAP_PREFIX, ROUTE_PREFIX | ROUTE_BLOCKING, h_snapshot },
	{ 0, NULL, 0, NULL },
};
