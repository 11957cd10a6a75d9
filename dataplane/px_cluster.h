/* px_cluster: one upstream's endpoints as one worker sees them: load
 * balancing, passive health (outlier ejection) and the retry budget
 * (docs/proxy-config.md, Upstreams).
 *
 * One instance per upstream per worker thread: nothing here is locked or
 * atomic. The relay (px_proxy) asks px_cluster_pick() for an endpoint for
 * each connection (TCP) or request (HTTP), brackets the request with
 * px_ep_request_begin/end (least request reads those counts), and reports
 * each attempt's outcome with px_cluster_report() (passive health).
 *
 * Endpoints are reference counted: px_cluster_update() may drop an
 * endpoint that a request in flight or a pooled connection still holds;
 * it stays valid (and is never picked again) until its last reference goes.
 * An endpoint keeps its counters and ejection state across updates that
 * keep its address and port. */
#ifndef WEFT_PX_CLUSTER_H
#define WEFT_PX_CLUSTER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_config.h"

struct px_cluster;
struct px_ep;

/* What one attempt on an endpoint came to. */
enum px_outcome {
	PX_OUTCOME_SUCCESS = 0,        /* connected (TCP) or a non-5xx response (HTTP) */
	PX_OUTCOME_CONNECT_FAILURE,    /* refused, timed out, or the TLS handshake failed */
	PX_OUTCOME_5XX,                /* the endpoint answered 5xx */
};

/* name: for log lines (copied). */
int px_cluster_new(struct px_cluster **out, const char *name, char **err);
void px_cluster_free(struct px_cluster *c);

/* Takes u's policy, hash header, passive health, retries and endpoints
 * (all copied: u may go away after the call). Endpoints whose Health is
 * critical are not picked. Only IPv4 literals are usable; others are
 * refused with WEFT_EINVAL and *err naming the endpoint, and the cluster
 * keeps its previous state. */
int px_cluster_update(struct px_cluster *c, const struct px_upstream *u, char **err);

/* An endpoint for one attempt, with a new reference (px_ep_unref when
 * done), or NULL when no endpoint is known or all are critical. When
 * every non-critical endpoint is ejected, ejection is ignored (Envoy's
 * panic mode) rather than failing the request.
 * hash: the request's hash (px_cluster_hash of the hash header's value)
 * for ring_hash; has_hash false picks as random. avoid: an endpoint
 * already tried for this request (NULL: none); another one is picked if
 * there is one. now_ms: a monotonic clock in milliseconds. */
struct px_ep *px_cluster_pick(struct px_cluster *c, uint64_t hash, bool has_hash,
			      const struct px_ep *avoid, uint64_t now_ms);

/* An attempt's result: consecutive failures (connect failures and 5xx)
 * eject the endpoint for n * BaseEjectionTime on its n-th ejection (capped
 * at max(5 min, BaseEjectionTime)), unless that would put more than
 * MaxEjectionPercent of the endpoints out (one may always be out; a lone
 * endpoint never is); a success resets the count. Reports on an endpoint
 * an update removed are ignored. Returns true when this report ejected ep
 * (for a log line and the ejections counter). */
bool px_cluster_report(struct px_cluster *c, struct px_ep *ep, enum px_outcome o, uint64_t now_ms);

/* Requests in flight on the cluster, for the budget; px_ep_request_* also
 * count them per endpoint for least_request. */
void px_ep_request_begin(struct px_ep *ep);
void px_ep_request_end(struct px_ep *ep);

/* Retry budget: whether one more retry may start now (retries in flight
 * < max(MinRetryConcurrency, BudgetPercent% of requests in flight)), and
 * if so counts it until px_cluster_retry_end. Also false when the policy
 * allows no retry for o (Retries.On). */
bool px_cluster_retry_begin(struct px_cluster *c, enum px_outcome o);
void px_cluster_retry_end(struct px_cluster *c);
/* Retries.Attempts, Timeouts, the ring hash header (NULL unless ring_hash). */
uint32_t px_cluster_attempts(const struct px_cluster *c);
const struct px_timeouts *px_cluster_timeouts(const struct px_cluster *c);
const char *px_cluster_hash_header(const struct px_cluster *c);
const char *px_cluster_name(const struct px_cluster *c);
size_t px_cluster_size(const struct px_cluster *c);      /* endpoints known */
size_t px_cluster_ejected(const struct px_cluster *c, uint64_t now_ms);

/* A stable 64-bit hash of a header value (for ring_hash): FNV-1a 64
 * followed by MurmurHash3's fmix64 finalizer. The same on every proxy. */
uint64_t px_cluster_hash(const char *data, size_t len);
/* Seeds the generator random, least_request and ring_hash without a hash
 * draw from (px_cluster_new seeds it from the clock; tests use this). */
void px_cluster_seed(struct px_cluster *c, uint64_t seed);

struct px_ep *px_ep_ref(struct px_ep *ep);
void px_ep_unref(struct px_ep *ep);
const struct sockaddr_in *px_ep_addr(const struct px_ep *ep);
const char *px_ep_name(const struct px_ep *ep);       /* "address:port" */
const char *px_ep_spiffe_id(const struct px_ep *ep);  /* "" when none */
const char *px_ep_sni(const struct px_ep *ep);        /* SERVICE.MESH.ZONE.TD, or "" */
/* A pointer the relay owns (the head of its idle connection pool for
 * this endpoint), NULL at first. */
void **px_ep_slot(struct px_ep *ep);
/* Whether an update removed ep from its cluster (it is never picked again). */
bool px_ep_removed(const struct px_ep *ep);
/* Called by px_cluster_update (and px_cluster_free) for each endpoint it
 * removes, before dropping the cluster's reference: the relay closes the
 * idle pooled connections that hold it. */
void px_cluster_set_on_remove(struct px_cluster *c, void (*fn)(struct px_ep *ep, void *ud),
			      void *ud);

#endif
