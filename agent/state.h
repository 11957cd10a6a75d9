/* The agent's local state: the services and checks of this VM (from the
 * config directory and from the local API), and each check's latest status
 * and output. Everything else (the catalog sync, the check runner, the
 * certificates, the proxies) reads it from here. Thread-safe.
 *
 * Services and checks are the canonical JSON objects of svcdef.h. A service
 * registered through the API is kept in DATA_DIR/services/<id>.json (0600)
 * so that it survives a restart, as Consul's agent persists them; services
 * from files come back from the files. Two counters say what changed:
 * `defs` (a service or check was added, removed or redefined) and `status`
 * (a check's status or output moved). */
#ifndef WEFT_AGENT_STATE_H
#define WEFT_AGENT_STATE_H

#include <jansson.h>
#include <stdint.h>

struct agent_state;

/* The node check every agent holds (server/liveness.h): passing while the
 * agent runs, turned critical by the server when its heartbeats stop. */
#define AGENT_ALIVE_CHECK "weft-agent"

struct state_gen {
	uint64_t defs;
	uint64_t status;
};

/* node_address: where a sidecar's default "listening" check connects when
 * the sidecar has no address of its own (its proxy binds there). */
int state_new(struct agent_state **out, const char *data_dir, const char *node_address,
	      char **err);
void state_free(struct agent_state *st);

/* Replaces the services and node checks that came from files (a reload).
 * A service registered through the API with the same ID is replaced by the
 * file's. Sidecar ports are assigned (kept for IDs that had one). */
int state_set_file_defs(struct agent_state *st, json_t *services, json_t *checks, char **err);

/* PUT /v1/agent/service/register: services is svcdef's output for one
 * definition (the service, and its sidecar). Persisted. replace_checks:
 * Consul's ?replace-existing-checks (checks not in the definition go; the
 * default keeps the checks registered separately for that service). */
int state_add_services(struct agent_state *st, json_t *services, int replace_checks, char **err);
/* Removes a service, its checks and its sidecar. WEFT_ENOENT if unknown. */
int state_remove_service(struct agent_state *st, const char *id, char **err);
/* PUT /v1/agent/check/register and deregister. */
int state_add_check(struct agent_state *st, json_t *check, char **err);
int state_remove_check(struct agent_state *st, const char *id, char **err);

/* A check's result. Returns 1 if the status or output changed, 0 if not,
 * WEFT_ENOENT for an unknown check. Statuses (not outputs) are kept in
 * DATA_DIR/services/statuses.json, so that a restarted agent starts its
 * checks from their last status instead of flapping them critical until
 * their first run. */
int state_check_result(struct agent_state *st, const char *id, const char *status,
		       const char *output);

/* The status a check had when the agent last stopped (NULL: none known). */
const char *state_restored_status(struct agent_state *st, const char *id);

/* Copies: every service (canonical, with "Checks" holding their current
 * Status and Output, alias checks resolved), and every node-level check. */
json_t *state_services(struct agent_state *st);
json_t *state_node_checks(struct agent_state *st);
/* One service (copy) or NULL. */
json_t *state_service(struct agent_state *st, const char *id);
/* Every check, service and node ones, by ID (copies with Status/Output). */
json_t *state_checks(struct agent_state *st);
/* A check's definition (copy) or NULL. */
json_t *state_check(struct agent_state *st, const char *id);

struct state_gen state_generation(struct agent_state *st);
/* Waits until a counter moves past gen, or timeout_ms (or state_wake). */
struct state_gen state_wait(struct agent_state *st, struct state_gen gen, int64_t timeout_ms);
/* Wakes every state_wait (shutdown). */
void state_wake(struct agent_state *st);

#endif
