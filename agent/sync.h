/* Anti-entropy: keeps the server's catalog entry of this node equal to the
 * agent's local state (state.h), as Consul's agent does.
 *
 * A thread compares the local services and checks with what the server holds
 * for the node (GET /v1/catalog/node-services/:node and
 * /v1/health/node/:node, fetched at start, after a failure and then every
 * interval) and writes only the differences: a service or check missing or
 * different on the server is registered, one the agent does not have is
 * deregistered. A local change wakes it at once and is diffed against the
 * last copy of the server's state, so a check turning critical costs one
 * write. A check whose output changed but not its status is written at most
 * once per output interval (Consul's check_update_interval, 5 min), so a
 * steady mesh makes no catalog writes. When the server cannot be reached,
 * it retries with jittered exponential backoff (1 s to 30 s) and does a full
 * comparison when the server answers again. */
#ifndef WEFT_AGENT_SYNC_H
#define WEFT_AGENT_SYNC_H

#include <jansson.h>
#include <stdint.h>

#include "httpc.h"
#include "state.h"

struct agent_sync;

struct sync_opts {
	struct httpc_opts server;  /* copied; the strings must outlive the sync */
	const char *node;          /* this node's name */
	const char *address;       /* this node's address */
	const char *datacenter;    /* NULL: the server's */
	int64_t interval_ms;       /* full comparison; 0: 60 s (with 0-10 % jitter) */
	int64_t output_interval_ms; /* 0: 5 min */
	/* PUT /v1/weft/agent/heartbeat/:node every this often (server/liveness.h:
	 * in memory on the server, not a catalog write); 0: 10 s, < 0: none */
	int64_t heartbeat_ms;
};

int sync_start(struct agent_sync **out, struct agent_state *st, const struct sync_opts *o,
	       char **err);
/* Stops the thread (a write in flight is finished or timed out). */
void sync_stop(struct agent_sync *s);
/* Removes this node and everything on it from the catalog (on stop, as
 * Consul's leave_on_terminate), within timeout_ms. */
int sync_leave(const struct httpc_opts *server, const char *node, int64_t timeout_ms,
	       char **err);

/* {"InSync": bool, "LastError": "...", "Writes": n, "FullSyncs": n,
 *  "LastSync": RFC 3339} for the agent's own status endpoint. */
json_t *sync_status(struct agent_sync *s);
/* 1 once the server has answered a full comparison and every difference
 * found since has been written. */
int sync_in_sync(struct agent_sync *s);

#endif
