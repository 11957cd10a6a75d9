/* prom: reads what the agent needs from a weft-proxy's /stats (Prometheus
 * text 0.0.4, as dataplane/px_stats.c renders it, docs/proxy-admin.md).
 *
 * Kept, per listener ("inbound", "outbound:<upstream>"):
 *   weft_proxy_requests_total{listener,code}             responses by class
 *   weft_proxy_request_duration_seconds_bucket{listener,le}  cumulative
 * and for the proxy, the sum of weft_proxy_intention_denials_total.
 * Every other series is skipped. The input is untrusted (a process may
 * answer on the admin port): bounded in size, listeners, buckets and label
 * lengths; a malformed line is an error naming its line number, never a
 * crash. */
#ifndef WEFT_AGENT_PROM_H
#define WEFT_AGENT_PROM_H

#include <stddef.h>
#include <stdint.h>

#define PROM_MAX_BYTES (4u << 20)
#define PROM_MAX_LISTENERS 256
#define PROM_MAX_BUCKETS 64
#define PROM_NAME_MAX 127

/* Response classes, in this order. */
enum { PROM_1XX, PROM_2XX, PROM_3XX, PROM_4XX, PROM_5XX, PROM_OTHER, PROM_NCLASS };
extern const char *const prom_class_names[PROM_NCLASS];

struct prom_listener {
	char name[PROM_NAME_MAX + 1];
	uint64_t responses[PROM_NCLASS];
	size_t nbuckets;                  /* in increasing le; le = INFINITY for +Inf */
	double le[PROM_MAX_BUCKETS];
	uint64_t cum[PROM_MAX_BUCKETS];   /* cumulative counts */
};

struct prom_stats {
	struct prom_listener *l;
	size_t n;
	uint64_t denials;
};

/* Parses text (len bytes, not necessarily NUL-terminated) into *out (which
 * the caller clears with prom_stats_clear, on error too). WEFT_EINVAL with
 * *err "line 12: ..." for malformed input, WEFT_ETOOBIG past the bounds. */
int prom_parse(const char *text, size_t len, struct prom_stats *out, char **err);
void prom_stats_clear(struct prom_stats *s);

/* The listener named name, or NULL. */
const struct prom_listener *prom_find(const struct prom_stats *s, const char *name);

#endif
