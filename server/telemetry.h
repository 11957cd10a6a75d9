/* telemetry: the proxies' traffic, as the agents report it (docs/api.md
 * "Proxy telemetry"), kept in memory for the UI.
 *
 * Never in the store: samples are not catalog writes, bump no store index
 * and are lost on restart. Per (mesh, service) a ring of points covering
 * the last hour (each point TELEMETRY_MIN_WIDTH_MS wide at least, else the
 * reporting agents' interval), aggregated over every proxy of the service;
 * per edge (mesh, source, destination) the counts of the last
 * TELEMETRY_EDGE_WINDOW_MS in slots. Memory is bounded: at most
 * max_services services and max_edges edges, the least recently updated
 * dropped first.
 *
 * Blocking queries: the module has a hub of its own (hub.h) and a counter
 * of its own, bumped by each recorded sample and published on the topics
 * "svc:<mesh>/<service>" (every service a sample touched, as source or
 * destination of an edge too) and "edges:<mesh>". Thread-safe. */
#ifndef WEFT_TELEMETRY_H
#define WEFT_TELEMETRY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct hub;
struct telemetry;

#define TELEMETRY_WINDOW_MS (3600 * 1000LL)      /* points kept: the last hour */
#define TELEMETRY_EDGE_WINDOW_MS (300 * 1000LL)  /* edges: the last 5 minutes */
#define TELEMETRY_MIN_WIDTH_MS 10000LL           /* the narrowest point */
#define TELEMETRY_MAX_PROXIES 1024               /* per PUT */
#define TELEMETRY_MAX_UPSTREAMS 1024             /* per proxy */
#define TELEMETRY_MAX_BUCKETS 64                 /* LatencyBuckets entries */

/* The latency buckets points keep (upper bounds in seconds, then +Inf):
 * weft-proxy's. A sample's bucket with another bound counts in the
 * narrowest of these that holds it. */
#define TELEMETRY_NBUCKETS 15
extern const double telemetry_bucket_le[TELEMETRY_NBUCKETS - 1];

/* Response classes of a sample's Responses, in this order. */
enum { TM_1XX, TM_2XX, TM_3XX, TM_4XX, TM_5XX, TM_OTHER, TM_NCLASS };

/* One listener's counts over an interval (deltas). */
struct tm_counts {
	uint64_t requests;
	uint64_t responses[TM_NCLASS];
	uint64_t denied;                     /* inbound only */
	uint64_t buckets[TELEMETRY_NBUCKETS]; /* per bucket, not cumulative */
};

struct tm_upstream {
	char *service;
	struct tm_counts c;
};

struct tm_proxy {
	char *proxy_id, *service, *mesh;
	struct tm_counts inbound;
	struct tm_upstream *upstreams;
	size_t nupstreams;
};

/* A decoded PUT body. */
struct tm_sample {
	int64_t interval_ms;
	struct tm_proxy *proxies;
	size_t nproxies;
};

struct telemetry_opts {
	size_t max_services;   /* 0: 1024 */
	size_t max_edges;      /* 0: 4096 */
};

int telemetry_new(struct telemetry **out, const struct telemetry_opts *o, char **err);
/* Wakes the blocking queries on its hub (as timed out), then frees; NULL is fine. */
void telemetry_free(struct telemetry *t);
/* For shutdown: wakes every waiter and refuses new ones. */
void telemetry_wake_all(struct telemetry *t);
/* The hub blocking queries on telemetry wait on (req_watch_hub). */
struct hub *telemetry_hub(struct telemetry *t);

/* Decodes and validates a PUT /v1/weft/telemetry/node/:node body (the
 * contract in docs/api.md). WEFT_EINVAL with *err naming the field
 * ("Proxies[0].Inbound.LatencyBuckets[2]: ..."). */
int telemetry_decode(json_t *doc, struct tm_sample *out, char **err);
void telemetry_sample_clear(struct tm_sample *s);

/* Adds the sample received at now_ms (wall clock) from node; publishes its
 * topics. Each proxy's counts go into the point holding the middle of the
 * interval they cover. */
void telemetry_record(struct telemetry *t, const char *node, const struct tm_sample *s,
		      int64_t now_ms);

/* The service's answer ({"Service", "Mesh", "Interval", "Points",
 * "Upstreams", "Downstreams"}); an unknown service has empty Points. */
json_t *telemetry_service_json(struct telemetry *t, const char *mesh, const char *service,
			       int64_t now_ms);
/* The edges of the mesh seen in the last TELEMETRY_EDGE_WINDOW_MS. */
json_t *telemetry_edges_json(struct telemetry *t, const char *mesh, int64_t now_ms);

/* The p99 (seconds) of a histogram of per-bucket counts with upper bounds
 * telemetry_bucket_le (then +Inf), interpolated linearly within its bucket
 * (from the previous bound, 0 for the first); the last finite bound when it
 * falls in +Inf. -1 when the histogram is empty. */
double telemetry_quantile(const uint64_t *buckets, double q);

/* Counts for tests and metrics. */
size_t telemetry_service_count(struct telemetry *t);
size_t telemetry_edge_count(struct telemetry *t);

#endif
