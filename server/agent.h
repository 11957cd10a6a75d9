/* The agent endpoints' domain: Consul's agent-format service and check
 * definitions, decoded into catalog registrations on the server's own node,
 * and the writes behind /v1/agent/... (status updates, maintenance).
 *
 * The server stores HTTP, TCP, gRPC, script and alias check definitions but
 * does not run them (weft-agent will); it does expire TTL checks (ttl.h). */
#ifndef WEFT_AGENT_H
#define WEFT_AGENT_H

#include <jansson.h>

#include "catalog.h"
#include "health.h"
#include "store.h"

/* Consul keeps at most this much of a check's output. */
#define AGENT_OUTPUT_MAX 4096

#define AGENT_NODE_MAINT_ID HEALTH_NODE_MAINT_ID
#define AGENT_SERVICE_MAINT_PREFIX HEALTH_SERVICE_MAINT_PREFIX

struct agent_service_reg {
	struct cat_register reg;  /* a service (and its checks) on node */
	json_t *keep;             /* owns the normalised documents reg points into */
	int replace_checks;       /* drop the service's checks not in this definition */
};

struct agent_check_reg {
	const char *node;
	struct cat_check check;
	json_t *keep;             /* the normalised document check points into */
	json_t *held;             /* strings the apply function points check at */
};

/* One change to an existing object on node: deregistration, a status
 * update, or maintenance mode. Strings are owned. */
struct agent_op {
	char *node;
	char *service_id;   /* service deregistration and service maintenance */
	char *check_id;     /* check deregistration and status updates */
	char *status;
	char *output;
	char *reason;       /* maintenance */
	int enable;
	struct cat_deregister dereg;
};

/* Decodes PUT /v1/agent/service/register's body for the given node (whose
 * address is used if the node has to be created). */
int agent_decode_service(json_t *doc, const char *node, const char *address,
			 struct agent_service_reg **out, char **err);
void agent_service_reg_free(struct agent_service_reg *r);

/* Decodes PUT /v1/agent/check/register's body. */
int agent_decode_check(json_t *doc, const char *node, struct agent_check_reg **out, char **err);
void agent_check_reg_free(struct agent_check_reg *r);

struct agent_op *agent_op_new(const char *node);
void agent_op_free(struct agent_op *op);

/* Copies at most AGENT_OUTPUT_MAX bytes of s, cut on a UTF-8 boundary;
 * NULL when s is not valid UTF-8. */
char *agent_output_dup(const char *s);

/* store_write apply functions. */
int agent_apply_service_register(struct db *db, uint64_t index, struct store_write *w,
				 struct store_changes *ch);
int agent_apply_check_register(struct db *db, uint64_t index, struct store_write *w,
			       struct store_changes *ch);
/* op->service_id or op->check_id set in op->dereg. */
int agent_apply_deregister(struct db *db, uint64_t index, struct store_write *w,
			   struct store_changes *ch);
int agent_apply_check_update(struct db *db, uint64_t index, struct store_write *w,
			     struct store_changes *ch);
/* Service maintenance when op->service_id is set, node maintenance otherwise. */
int agent_apply_maintenance(struct db *db, uint64_t index, struct store_write *w,
			    struct store_changes *ch);

/* What the handlers need to know about a check before acting on it. */
struct agent_check_info {
	char service_id[CAT_NAME_MAX + 1];
	char service_name[CAT_NAME_MAX + 1];
	char type[33];
};
/* 1 and *out filled when node has the check, 0 otherwise. */
int agent_check_lookup(struct db *db, const char *node, const char *check_id,
		       struct agent_check_info *out);

#endif
