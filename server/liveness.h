/* Liveness of weft-agents without gossip (docs/agent.md "Liveness").
 *
 * Each agent registers a node check "weft-agent" (passing) and sends a
 * heartbeat (PUT /v1/weft/agent/heartbeat/:node) every few seconds. The
 * heartbeats are kept in memory only: a steady mesh makes no store write.
 * A thread turns a node's check critical when its agent has not been heard
 * from for the timeout (a VM that died without leaving: its sidecars leave
 * their callers' endpoints, as Consul's serfHealth does), and passing again
 * at its next heartbeat. Writes happen only on those transitions.
 *
 * At start every node holding a "weft-agent" check counts as heard from
 * then, so an agent that died while the server was down is noticed one
 * timeout after the start. */
#ifndef WEFT_LIVENESS_H
#define WEFT_LIVENESS_H

#include <stdint.h>

#include "store.h"

#define LIVENESS_CHECK_ID "weft-agent"

struct liveness;

/* timeout_ms 0: the thread never turns a check critical (heartbeats are
 * still taken). */
int liveness_start(struct liveness **out, struct store *store, int64_t timeout_ms, char **err);
void liveness_stop(struct liveness *l);   /* NULL is fine */
/* An agent's heartbeat. Bounded: past 65536 nodes the least recent is forgotten. */
void liveness_heartbeat(struct liveness *l, const char *node);

#endif
