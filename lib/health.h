/* Health as Consul's agents report a local service's: the aggregated status
 * of its checks (and its node's) and the HTTP status that says it, and the
 * maintenance checks both weft-server (for its own node) and weft-agent add.
 * Shared so that /v1/agent/health/service/... answers alike on both. */
#ifndef WEFT_HEALTH_H
#define WEFT_HEALTH_H

#include <jansson.h>

#define HEALTH_NODE_MAINT_ID "_node_maintenance"
#define HEALTH_SERVICE_MAINT_PREFIX "_service_maintenance:"
#define HEALTH_NODE_MAINT_NAME "Node Maintenance Mode"
#define HEALTH_SERVICE_MAINT_NAME "Service Maintenance Mode"
/* Consul's notes when maintenance is enabled without a reason. */
#define HEALTH_NODE_MAINT_NOTES \
	"Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
#define HEALTH_SERVICE_MAINT_NOTES \
	"Maintenance mode is enabled for this service, but no reason was provided. This is a default message."

/* 1 for a maintenance check's ID. */
int health_is_maintenance(const char *check_id);

/* "maintenance" when a maintenance check is among checks (an array of
 * objects with CheckID and Status), else the worst status; "passing" for
 * none. */
const char *health_aggregate(json_t *checks);

/* 200 passing, 429 warning, 503 anything else. */
int health_http_status(const char *aggregated);

#endif
