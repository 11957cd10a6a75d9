/* weft-agent's local HTTP API on 127.0.0.1, compatible with Consul's agent
 * API for what a VM's tools use (docs/agent.md "Local API"):
 *
 *   GET  /v1/agent/self, /v1/agent/services, /v1/agent/service/:id,
 *        /v1/agent/checks, /v1/agent/connect/ca/roots,
 *        /v1/agent/connect/ca/leaf/:service
 *   PUT  /v1/agent/service/register[?replace-existing-checks],
 *        /v1/agent/service/deregister/:id, /v1/agent/check/register,
 *        /v1/agent/check/deregister/:id, /v1/agent/check/pass|warn|fail/:id,
 *        /v1/agent/check/update/:id
 *   GET  /v1/weft/agent/status (Weft's own: sync, proxies, certificates)
 *
 * Tokens (X-Consul-Token, Authorization: Bearer, ?token=) are required
 * unless auth is off (--dev): the agent's own token, or a token the server
 * vouches for (GET /v1/acl/token/self, cached 60 s). Reads need any valid
 * token; writes an admin, operator or this node's agent token, or a service
 * token for the service concerned. */
#ifndef WEFT_AGENT_API_H
#define WEFT_AGENT_API_H

#include <jansson.h>

#include "httpc.h"
#include "state.h"

struct agent_api;

/* What other modules answer; any may be NULL (the endpoint then says the
 * agent does not do that yet, 501). Called from the API's threads. */
struct api_hooks {
	int (*leaf_json)(void *arg, const char *service, json_t **out, char **err);
	int (*roots_json)(void *arg, json_t **out, char **err);
	/* TTL updates go to the check runner, which reports them back */
	int (*ttl_update)(void *arg, const char *check_id, const char *status, const char *output,
			  char **err);
	json_t *(*status_json)(void *arg);  /* merged into /v1/weft/agent/status */
	/* after a registration or deregistration, before the reply: the
	 * check runner, certificates and proxies take the new definitions
	 * (a TTL update right after a registration finds its check) */
	void (*defs_changed)(void *arg);
	void *arg;
};

struct api_opts {
	const char *bind;           /* 127.0.0.1:8500 */
	const char *node;
	const char *datacenter;
	const char *own_token;      /* the agent's token, NULL in dev mode */
	int auth;                   /* 0: every request allowed (dev) */
	struct httpc_opts server;   /* to check other tokens */
	int enable_scripts;         /* script checks through the API */
	struct api_hooks hooks;
};

int api_start(struct agent_api **out, struct agent_state *st, const struct api_opts *o,
	      char **err);
void api_stop(struct agent_api *a);
/* The port bound (for :0). */
int api_port(const struct agent_api *a);

#endif
