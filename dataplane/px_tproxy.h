/* px_tproxy: the transparent outbound listener (docs/transparent-proxy.md).
 *
 * iptables' REDIRECT (weftctl install transparent-proxy) sends the
 * application's outgoing TCP connections to this listener. For each one it
 * reads the destination the application dialled (getsockopt
 * SO_ORIGINAL_DST) and looks it up among the snapshot's
 * Upstreams[].Destinations (the upstream services' instances'
 * address:port); a hit is handed to that upstream's outbound listener in
 * the same worker (px_listener_adopt), which balances it over the
 * upstream's endpoints with mTLS as if the application had dialled the
 * upstream's local port. A miss is relayed as it is to the original
 * destination when the snapshot's Transparent.Passthrough says so (the
 * proxy's own connections are not redirected: it runs as the excluded
 * user), else closed. The table follows the config slot: it is rebuilt
 * when the slot's generation moves, at the next connection.
 *
 * One instance per worker (px_worker), like every listener. */
#ifndef WEFT_PX_TPROXY_H
#define WEFT_PX_TPROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct px_config_slot;
struct px_listener;
struct px_listener_cfg;
struct px_stats;

#define PX_TPROXY_CONNECT_TIMEOUT_MS 5000   /* passthrough: the original destination */
#define PX_TPROXY_IDLE_MS 300000            /* passthrough: a tunnel idle this long ends */

struct px_tproxy_cfg {
	const char *name;               /* "transparent": for log lines and /stats */
	struct sockaddr_in listen;
	struct px_config_slot *slot;    /* Upstreams[].Destinations, Transparent.Passthrough */
	uint32_t connect_timeout_ms;    /* 0: PX_TPROXY_CONNECT_TIMEOUT_MS */
	uint32_t idle_ms;               /* 0: PX_TPROXY_IDLE_MS */
	struct px_stats *stats;         /* NULL: none kept */
	bool reuse_port;                /* SO_REUSEPORT: one listener per worker on one port */
};

struct px_tproxy;

/* Binds and starts accepting on base. The targets are the worker's
 * listeners (listeners[i] built from lcfg[i]): those with a slot and an
 * upstream_cluster are the upstreams connections are handed to, by name.
 * cfg is copied; the arrays and strings must outlive the listener. */
int px_tproxy_new(struct px_tproxy **out, struct event_base *base, const struct px_tproxy_cfg *cfg,
		  struct px_listener *const *listeners, const struct px_listener_cfg *lcfg, size_t n,
		  char **err);
/* Closes the listener and every passthrough connection; call once base's
 * loop has stopped. NULL is fine. */
void px_tproxy_free(struct px_tproxy *t);
/* Stops accepting; passthrough tunnels go on, connects in progress end. */
void px_tproxy_drain(struct px_tproxy *t);
/* Passthrough connections still open (those handed to an upstream count
 * in its listener). */
size_t px_tproxy_conns(const struct px_tproxy *t);

#endif
