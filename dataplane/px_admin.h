/* px_admin: the proxy's admin listener (docs/proxy-admin.md), on
 * 127.0.0.1 only, on the main thread's event loop (the data listeners are
 * on the workers' loops, px_worker.h, or on the same loop), parsed with
 * px_http1.
 *
 *   GET  /ready   200 "ready" while the listeners accept, 503 "draining" after
 *   GET  /stats   Prometheus text (px_stats, summed over every instance)
 *   GET  /config  the effective settings as JSON: paths, never key material
 *   POST /drain   202: stop accepting, let in-flight requests finish, exit the
 *                 loop when no connection is left or after the deadline
 *   anything else 404 (unknown path) or 405 (known path, other method).
 *
 * One request per connection, heads up to 8 KiB, bodies up to 4 KiB, a
 * 10 s limit to send the request. */
#ifndef WEFT_PX_ADMIN_H
#define WEFT_PX_ADMIN_H

#include <netinet/in.h>
#include <stddef.h>

#include "px_proxy.h"

struct event_base;
struct px_stats;
struct px_tls_files;
struct px_tls;
struct px_admin;
struct buf;

struct px_admin_cfg {
	struct sockaddr_in listen;          /* must be 127.0.0.1 */
	struct px_stats *const *stats;      /* every instance, summed by /stats */
	size_t nstats;
	struct px_listener *const *listeners;
	const struct px_listener_cfg *lcfg; /* their settings, for /config */
	size_t nlisteners;
	const struct px_tls_files *tls;     /* NULL: no TLS */
	/* The TLS contexts in use (NULL entries skipped): /stats exports the
	 * seconds until the first of their leaves expires. */
	struct px_tls *const *certs;
	size_t ncerts;
	const char *access_log;             /* NULL: none */
	unsigned drain_timeout_ms;          /* after /drain, exit after this at most */
	/* With worker threads (px_worker.h) the listeners run on other loops:
	 * /drain calls drain(ud) and waits for open_conns(ud) to reach 0,
	 * instead of draining and counting listeners (then NULL; lcfg still
	 * gives /config its listeners). workers: shown in /config. */
	void (*drain)(void *ud);
	size_t (*open_conns)(void *ud);
	void *ud;
	unsigned workers;
	/* More /stats text after px_stats' (weft-proxy: the snapshot slot's
	 * refusals and versions, px_config_slot_stats). NULL: none. */
	void (*more_stats)(void *arg, struct buf *out);
	void *more_stats_arg;
};

/* Binds and serves on base. cfg is copied; what it points to must outlive
 * the admin. Refuses an address other than 127.0.0.1. */
int px_admin_new(struct px_admin **out, struct event_base *base, const struct px_admin_cfg *cfg,
		 char **err);
void px_admin_free(struct px_admin *a);

/* What /drain does (also for a caller's own signal): idempotent. */
void px_admin_drain(struct px_admin *a);
int px_admin_draining(const struct px_admin *a);

#endif
