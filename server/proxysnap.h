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
 * Nothing is cached: proxysnap_build reads on the connection it is given
 * and reports the hub topics its answer depends on, so that a blocking
 * query re-runs it when one of them moves:
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
 * missed). */
#ifndef WEFT_PROXYSNAP_H
#define WEFT_PROXYSNAP_H

#include <jansson.h>

#include "store.h"

#define PROXYSNAP_VERSION 1        /* the snapshot format version produced */
#define PROXYSNAP_TOPICS_MAX 1024

struct proxysnap_req {
	const char *proxy_id;      /* the proxy's catalog service ID */
	const char *node;          /* NULL: any node (an ID on several nodes is refused) */
	const char *datacenter;    /* the server's: the zone in SPIFFE IDs */
	int dev;                   /* --dev: a mesh without a chosen default allows */
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

#endif
