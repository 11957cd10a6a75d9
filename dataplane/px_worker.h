/* px_worker: weft-proxy's worker threads (docs/proxy-admin.md, "Workers").
 *
 * Each worker is a thread running its own libevent loop with its own
 * instance of every listener (bound with SO_REUSEPORT when there are
 * several workers: the kernel spreads the connections among them), its
 * own px_stats, its own px_accesslog on the shared path, and its own
 * px_enforce (denials counted in its px_stats). What the workers share is
 * thread-safe: the px_tls objects and the px_config_slot of the listener
 * settings.
 *
 * The main thread keeps the signals, the reload timer and the admin
 * listener: it reads every worker's px_stats (px_worker_stats(), safe
 * from another thread: px_stats.h), asks every loop to drain
 * (px_worker_drain()) and watches the connections left
 * (px_worker_conns()), and stops and joins the threads
 * (px_worker_stop()). Drain and stop reach the loops from the main thread:
 * px_worker_new() turns on libevent's locking (evthread_use_pthreads())
 * before it makes the workers' loops. */
#ifndef WEFT_PX_WORKER_H
#define WEFT_PX_WORKER_H

#include <stddef.h>

#include "px_config.h"
#include "px_proxy.h"
#include "px_sni.h"
#include "px_tproxy.h"

#define PX_WORKERS_MAX 64

struct px_stats;
struct px_worker;

struct px_worker_cfg {
	unsigned n;                          /* 1..PX_WORKERS_MAX */
	/* The listeners, as templates (copied): each worker binds its own
	 * instance with its stats, access log and, for a template whose
	 * authorize is px_enforce_authorize with a NULL authorize_ud, its
	 * own px_enforce on enforce_slot. Their strings and px_tls objects
	 * must outlive the workers. */
	const struct px_listener_cfg *listeners;
	size_t nlisteners;
	const char *access_log;              /* path or "-"; NULL: none */
	struct px_config_slot *enforce_slot; /* with px_enforce_authorize templates */
	/* The TLS passthrough listener (px_sni), as a template: each worker
	 * binds its own instance with its stats. NULL: none. */
	const struct px_sni_cfg *passthrough;
	int enforce_http;                    /* px_enforce_new()'s http */
	/* The transparent outbound listener (px_tproxy), as a template: each
	 * worker binds its own instance, handing connections to its own
	 * instances of the listeners above. NULL: none. */
	const struct px_tproxy_cfg *transparent;
};

/* Builds every worker: loop, stats, access log, enforcement, and binds
 * every listener instance; no thread runs yet. On error nothing is left
 * (*err says which worker and listener). */
int px_worker_new(struct px_worker **out, const struct px_worker_cfg *cfg, char **err);

/* Starts the threads (each logs "worker K started"), with every signal
 * blocked in them: the main thread handles the signals. On error the
 * threads already started run until px_worker_stop() or px_worker_free(). */
int px_worker_start(struct px_worker *w, char **err);

/* The workers' px_stats, one per worker (*n of them), for px_stats_render()
 * and px_admin: valid until px_worker_free(). */
struct px_stats *const *px_worker_stats(const struct px_worker *w, size_t *n);

/* From the main thread: every worker drains its listeners in its own loop
 * (px_listener_drain()). Returns once every worker has closed its
 * listening sockets (new connections are refused from then on), or after
 * one second if a loop does not answer. Idempotent. */
void px_worker_drain(struct px_worker *w);

/* After px_worker_drain(): the connections still open in every worker as
 * they last reported them (every 20 ms); a worker that has not drained
 * yet counts as one. */
size_t px_worker_conns(const struct px_worker *w);

/* Stops every loop and joins the threads (the connections still open are
 * left as they are: px_worker_free() closes them). Idempotent. */
void px_worker_stop(struct px_worker *w);

/* Stops (if needed), then frees the listeners and their connections, the
 * access logs (with a last flush), the enforcement, stats and loops. */
void px_worker_free(struct px_worker *w);

#endif
