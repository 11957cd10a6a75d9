/* px_stats: the proxy's counters and histograms (docs/proxy-admin.md).
 *
 * One struct px_stats per event loop (worker thread, px_worker.h), with
 * one writer: that thread. Nothing is locked: the hot-path calls are a
 * relaxed atomic load and store of a 64-bit word (no locked instruction),
 * so px_stats_render() may run on another thread (the admin's) while the
 * workers count: a scrape may be a moment stale, never torn, and it is
 * data-race free (C11 atomics, TSan-clean).
 *
 * Listeners are registered by name (px_stats_listener()) in the same order
 * on every instance, so that index i means the same listener everywhere,
 * before any other thread reads the instance (px_worker registers them
 * all before it starts the threads). */
#ifndef WEFT_PX_STATS_H
#define WEFT_PX_STATS_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct px_stats;

#define PX_STATS_MAX_LISTENERS 64
/* The denial table's slots: up to 3/4 of them (768) distinct (source,
 * destination, intention) triples are counted one by one; denials of
 * further new triples are counted in one series labelled "_other". */
#define PX_STATS_MAX_DENIALS 1024
/* Latency histogram upper bounds, in seconds (then +Inf). */
#define PX_STATS_BUCKETS 14
extern const double px_stats_bucket_le[PX_STATS_BUCKETS];

enum px_stats_side { PX_STATS_CLIENT, PX_STATS_UPSTREAM };

struct px_stats *px_stats_new(void);
void px_stats_free(struct px_stats *s);

/* Registers a listener (name is copied, at most 31 bytes); returns its
 * index, or -1 when PX_STATS_MAX_LISTENERS are taken. */
int px_stats_listener(struct px_stats *s, const char *name);

/* Hot path. li is a listener index; s may be NULL (no stats kept), and an
 * out-of-range li is ignored. */
void px_stats_conn_open(struct px_stats *s, int li);
void px_stats_conn_close(struct px_stats *s, int li);
/* A response sent to the client: its status (1xx..5xx, others count as
 * "other") and how long since the request's head arrived. */
void px_stats_request(struct px_stats *s, int li, int status, uint64_t duration_us);
void px_stats_bytes(struct px_stats *s, int li, uint64_t in, uint64_t out);
/* A handshake: reason NULL when it succeeded, else px_tls_failure()'s
 * reason ("foreign-ca", "expired", "wrong-spiffe-id", ...; an unknown one
 * counts as "other"). */
void px_stats_tls(struct px_stats *s, int li, enum px_stats_side side, const char *reason);
void px_stats_upstream_connect_failure(struct px_stats *s, int li);
/* Upstream events, exported as weft_proxy_upstream_<event>_total. */
enum px_stats_upstream_event {
	PX_STATS_RETRY = 0,
	PX_STATS_EJECTION,
	PX_STATS_TIMEOUT,
	PX_STATS_NO_ENDPOINT,
	PX_STATS_POOL_REUSE,
	PX_STATS_OVERFLOW,
	PX_STATS_N_UPSTREAM_EVENTS,
};
void px_stats_upstream_event(struct px_stats *s, int li, enum px_stats_upstream_event e);
/* A passthrough connection closed before any byte went on (px_sni):
 * reason "no-route", "no-sni", "not-tls" or "timeout" (others: ignored). */
void px_stats_sni_refused(struct px_stats *s, int li, const char *reason);

/* A connection of the transparent outbound listener (px_tproxy.h):
 * exported as weft_proxy_transparent_connections_total{result} for the
 * listener named "transparent". */
enum px_stats_tproxy_result {
	PX_STATS_TP_UPSTREAM = 0,        /* handed to an upstream's listener */
	PX_STATS_TP_PASSTHROUGH,         /* relayed to its original destination */
	PX_STATS_TP_NO_UPSTREAM,         /* no upstream, passthrough off: closed */
	PX_STATS_TP_NOT_REDIRECTED,      /* no original destination: closed */
	PX_STATS_TP_ERROR,               /* passthrough connect failed, no memory */
};
void px_stats_tproxy(struct px_stats *s, int li, enum px_stats_tproxy_result r);

/* An intention denial: the caller's SPIFFE ID (or service name), the
 * destination service, and the deciding intention's ID ("" for the
 * default policy). Strings are copied (at most 255 bytes each). Exported
 * as weft_proxy_intention_denials_total{source,destination,intention}. */
void px_stats_denial(struct px_stats *s, const char *source, const char *destination,
		     const char *intention);

/* Access log lines dropped because the sink could not keep up. */
void px_stats_accesslog_dropped(struct px_stats *s, uint64_t n);

/* Appends the Prometheus text exposition (version 0.0.4) of the sum of
 * the n instances (which registered the same listeners), one per worker:
 * n is exported as weft_proxy_workers, and each instance's accepted
 * connections as weft_proxy_worker_connections_opened_total{worker="k"}
 * (how the kernel spread them). draining is exported as
 * weft_proxy_draining. Returns 0 or WEFT_ETOOBIG/WEFT_ENOMEM. */
int px_stats_render(struct px_stats *const *s, size_t n, int draining, struct buf *out);

/* Appends weft_proxy_certificate_expiry_seconds: the seconds from now_s
 * until the earliest of the n leaf notAfter times (seconds since the
 * epoch; 0 entries are skipped), negative once it has expired. Nothing
 * when there is no leaf (no TLS). The caller passes the notAfter of the
 * certificates in use (px_tls_not_after()), so the gauge follows every
 * reload. Returns 0 or WEFT_ETOOBIG/WEFT_ENOMEM. */
int px_stats_render_certificate(const long long *not_after_s, size_t n, long long now_s,
				struct buf *out);

#endif
