/* The server's metrics: Prometheus text exposition (version 0.0.4) for
 * GET /metrics and /v1/agent/metrics?format=prometheus, and Consul's JSON
 * summary (Gauges, Counters, Samples) for GET /v1/agent/metrics, built
 * from the same text so the two never disagree. */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include <jansson.h>
#include <stdint.h>

#include "buf.h"

struct server;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends every metric of the server to out. */
void metrics_prometheus(struct server *srv, struct buf *out);

/* Converts exposition text into Consul's /v1/agent/metrics document:
 * gauges to Gauges, counters to Counters, histograms to Samples (Count, Sum,
 * Mean), each with its labels. NULL with *err when the text is malformed. */
json_t *metrics_json(const char *text, int64_t now_wall_ms, char **err);

#endif
