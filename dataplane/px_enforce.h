/* px_enforce: inbound intentions enforcement (docs/proxy-config.md,
 * "Enforcement"). px_enforce_authorize() is a px_authorize_fn: it decides
 * each caller (L4, TCP listeners) or each request (L7, HTTP listeners)
 * with px_config_authorize() on the config current in a px_config_slot,
 * so a reload applies to the next connection or request. Every denial is
 * one log line (source, destination, deciding intention, reason) and one
 * increment of an in-memory counter labelled by source, destination and
 * intention, read with px_enforce_counters() (for the admin /stats).
 *
 * Thread-safe: the slot and the counter table have their own locks. */
#ifndef WEFT_PX_ENFORCE_H
#define WEFT_PX_ENFORCE_H

#include <stddef.h>
#include <stdint.h>

#include "px_config.h"
#include "px_proxy.h"

#define PX_ENFORCE_COUNTERS_MAX 1024   /* distinct label sets; more go to "_other" */
#define PX_ENFORCE_LABEL_MAX 512

struct px_enforce;

/* The label of a decision: the deciding intention's ID, or
 * "SourceNS/SourceName > DestinationNS/DestinationName" when it has none,
 * "default" when no intention matched, or the px_authz reason
 * ("foreign-mesh", ...) when the caller was refused before the intentions.
 * Bytes outside printable ASCII, '"' and '\\' become '?' (header- and
 * log-safe). */
void px_enforce_label(const struct px_authz *a, char *out, size_t size);

/* http: whether the listener relays HTTP (then the decision is per request
 * and the connection-level call is allowed). slot must outlive it. */
int px_enforce_new(struct px_enforce **out, struct px_config_slot *slot, int http, char **err);
void px_enforce_free(struct px_enforce *e);
/* Counts every denial in stats as well (weft_proxy_intention_denials_total
 * on the admin /stats); stats must outlive e and belong to its event loop. */
struct px_stats;
void px_enforce_set_stats(struct px_enforce *e, struct px_stats *stats);

/* A px_authorize_fn; ud is the struct px_enforce. */
int px_enforce_authorize(void *ud, const char *peer_id, const struct px_request_info *req,
			 char *denied_by, size_t denied_by_size);

struct px_denial_count {
	char source[PX_ENFORCE_LABEL_MAX];       /* the caller's SPIFFE ID */
	char destination[PX_ENFORCE_LABEL_MAX];  /* this proxy's service */
	char intention[PX_ENFORCE_LABEL_MAX];    /* as px_enforce_label */
	uint64_t count;
};

/* A copy of the counters (*out: free() it), in first-seen order. */
int px_enforce_counters(struct px_enforce *e, struct px_denial_count **out, size_t *n, char **err);

#endif
