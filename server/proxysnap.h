/* Proxy snapshots: the configuration of one weft-proxy, computed from the
 * store (docs/proxy-config.md is the format; docs/api.md "Proxy
 * snapshots" the endpoint).
 *
 * A proxy is a catalog service instance of Kind "connect-proxy", found by
 * its service ID (and node, when the ID is on several nodes). Its snapshot
 * holds only what that proxy needs: its identity, its inbound listener,
 * one upstream per Proxy.Upstreams entry with the passing and warning
 * instances of the connect-proxy services fronting that destination, the
 * intentions whose destination is its service or "*", the mesh's default
 * action and the mesh CA's roots as the trust bundle. The key and the leaf
 * never come from here: the proxy has them locally.
 *
 * proxysnap_build reads on the connection it is given and reports the hub
 * topics its answer depends on, so that a blocking query re-runs it when
 * one of them moves:
 *   svc:<proxy service>            the proxy's registration, checks, node
 *   connect:<upstream>             connect-proxy instances for an upstream
 *                                  added, removed, changed (server/catalog.c)
 *   svc:<endpoint proxy service>   those instances' health
 *   ixn:<mesh>:dst:<service>, ixn:<mesh>:dst:*     the intentions
 *   cfg:<mesh>:service-defaults:<name>, cfg:<mesh>:proxy-defaults:global
 *   mesh:<mesh> (default action), ca:<mesh> (roots, trust domain)
 * and, for a proxy in transparent mode (Proxy.Mode, docs/transparent-proxy.md):
 *   svc:<upstream>                 the upstream's instances (Destinations)
 *   cfg:<mesh>:mesh:mesh           TransparentProxy.MeshDestinationsOnly
 * When these are more than PROXYSNAP_TOPICS_MAX, the endpoints' health
 * topics are replaced by "services" and "checks" (more wake-ups, none
 * missed).
 *
 * Caching (server/snapcache.h): proxysnap_answer keeps each proxy's
 * rendered snapshot, keyed by (proxy ID, node, version), for as long as
 * none of its topics moved, so that a blocking query that wakes or parks
 * again, or a second watcher of the same proxy, costs no recomputation.
 * The parts that many proxies share are cached on their own topics and
 * computed once per change, not once per proxy: an upstream's endpoints
 * (connect:<dest> and their svc: topics; the scan of the mesh's
 * connect-proxy instances), a service's intentions (ixn:<mesh>:dst:<svc>,
 * ixn:<mesh>:dst:*, mesh:<mesh>), a mesh's trust bundle (ca:<mesh>) and a
 * service's protocol (its config entries' topics). */
#ifndef WEFT_PROXYSNAP_H
#define WEFT_PROXYSNAP_H

#include <jansson.h>

#include "store.h"

#define PROXYSNAP_VERSION 1        /* the snapshot format version produced */
#define PROXYSNAP_TOPICS_MAX 1024

struct snapcache;

struct proxysnap_req {
	const char *proxy_id;      /* the proxy's catalog service ID */
	const char *node;          /* NULL: any node (an ID on several nodes is refused) */
	const char *datacenter;    /* the server's: the zone in SPIFFE IDs */
	int dev;                   /* --dev: a mesh without a chosen default allows */
	int version;               /* the format version to write, 1..PROXYSNAP_VERSION
				    * (the proxy's ?version=, capped); 0: the latest */
	struct snapcache *cache;   /* NULL: nothing cached */
	/* Set by proxysnap_answer for proxysnap_build: each topic watched so
	 * far with the hub index read before the current read transaction.
	 * A part is put in the cache only when all its topics are in it. */
	json_t *sampled;
};

struct proxysnap {
	json_t *doc;               /* the snapshot, without Index (the caller sets it) */
	json_t *topics;            /* an object whose keys are the topics (always set) */
	char *service;             /* the destination service (for authorization) */
	char *mesh;                /* the proxy's mesh (the caller makes its CA exist) */
	char *node;                /* the proxy's node (an agent token's scope) */
};

/* Computes the snapshot of one proxy on db (a read connection inside one
 * read transaction). WEFT_OK with out->doc; WEFT_ENOENT when there is no
 * such proxy (out->topics still says what to watch for it to appear);
 * WEFT_EINVAL when the ID is ambiguous or the registration cannot be
 * expressed in the format (a field named in *err, e.g.
 * `Proxy.LocalServicePort: ...`); WEFT_EIO on a storage error. out is
 * filled as far as known in every case; free it with proxysnap_clear. */
int proxysnap_build(struct db *db, const struct proxysnap_req *rq, struct proxysnap *out,
		    char **err);
void proxysnap_clear(struct proxysnap *s);

/* A blocking read's way of watching a topic: registers it, and returns the
 * hub's index of it, read after the registration and before any read that
 * follows (so the reply's claimed index is never above what was read). */
typedef uint64_t (*proxysnap_watch_fn)(void *arg, const char *topic);
/* Called once when the proxy's mesh is known, before its snapshot is
 * built (weft-server makes the mesh's CA there); WEFT_OK or *err. NULL:
 * nothing to do. */
typedef int (*proxysnap_mesh_fn)(void *arg, const char *mesh, char **err);

struct proxysnap_answer {
	char *text;                /* the snapshot without Index: "{...}" */
	size_t len;
	char *service, *mesh, *node;   /* as in struct proxysnap, NULL when unknown */
	uint64_t index;            /* the highest index of its topics as watched */
	int cached;                /* 1: served from the cache */
};

/* The snapshot of one proxy for a blocking read: from rq->cache while its
 * topics have not moved, else built (proxysnap_build, reading on store,
 * again until every topic it depends on was watched before the read that
 * produced it) and cached. Every topic it depends on has been passed to
 * watch when this returns, also on failure. Errors as proxysnap_build's;
 * out is filled as far as known; free it with proxysnap_answer_clear. */
int proxysnap_answer(struct store *store, const struct proxysnap_req *rq, proxysnap_watch_fn watch,
		     proxysnap_mesh_fn mesh_fn, void *arg, struct proxysnap_answer *out, char **err);
void proxysnap_answer_clear(struct proxysnap_answer *a);

/* Process-wide counts, for metrics and tests. */
struct proxysnap_counters {
	uint64_t answers;          /* proxysnap_answer calls */
	uint64_t answers_cached;   /* of which served from the cache */
	uint64_t builds;           /* proxysnap_build calls */
	uint64_t endpoint_scans;   /* scans of a mesh's connect-proxy instances */
};
void proxysnap_counters(struct proxysnap_counters *out);

#endif
