/* The service catalog: nodes, service instances and health checks.
 * Decoding validates a request completely before anything is written;
 * apply functions run inside the store's writer; query functions build the
 * JSON that Consul's endpoints answer with. */
#ifndef WEFT_CATALOG_H
#define WEFT_CATALOG_H

#include <jansson.h>
#include <stdint.h>

#include "store.h"

#define CAT_NAME_MAX 256
#define CAT_TEXT_MAX 4096

struct cat_service {
	const char *id, *name, *kind, *address, *mesh;
	long long port;
	json_t *tags, *meta, *tagged, *proxy, *connect, *weights;
	int enable_tag_override;
};

struct cat_check {
	const char *id, *name, *status, *notes, *output, *service_id, *type;
	json_t *definition;
	long long ttl_ms;
};

struct cat_register {
	json_t *doc;            /* owns every string below */
	const char *node, *address, *node_id, *datacenter;
	json_t *tagged, *meta;
	int skip_node_update;
	int has_service;
	struct cat_service svc;
	struct cat_check *checks;
	size_t nchecks;
};

struct cat_deregister {
	json_t *doc;
	const char *node, *service_id, *check_id;
};

/* Takes a reference to doc. datacenter: ours, to refuse foreign ones. */
int catalog_decode_register(json_t *doc, const char *datacenter, struct cat_register *out,
			    char **err);
int catalog_decode_service(json_t *obj, const char *ctx, struct cat_service *out, char **err);
int catalog_decode_check(json_t *obj, const char *ctx, struct cat_check *out, char **err);
void catalog_register_free(struct cat_register *reg);
int catalog_decode_deregister(json_t *doc, struct cat_deregister *out, char **err);
void catalog_deregister_free(struct cat_deregister *d);

/* store_write apply functions: w->arg is the decoded request. */
int catalog_apply_register(struct db *db, uint64_t index, struct store_write *w,
			   struct store_changes *ch);
int catalog_apply_deregister(struct db *db, uint64_t index, struct store_write *w,
			     struct store_changes *ch);

/* Pieces usable inside another apply (agent endpoints, sessions). */
int catalog_put_check(struct db *db, uint64_t index, const char *node, const struct cat_check *c,
		      int64_t now_ms, struct store_changes *ch, char **err);
/* Sets a check's status and output; WEFT_ENOENT if there is no such check. */
int catalog_set_check_status(struct db *db, uint64_t index, const char *node,
			     const char *check_id, const char *status, const char *output,
			     int64_t now_ms, struct store_changes *ch, char **err);
/* Publishes the topics every reader of node's data watches. */
void catalog_touch_node(struct db *db, const char *node, struct store_changes *ch);

/* Queries (on a read connection). */
json_t *catalog_services(struct db *db, json_t *node_meta);
/* For ?filter on /v1/catalog/services, as Consul evaluates it: one object
 * per instance (ServiceName, ServiceKind, ServiceID, ServiceTags,
 * ServiceMeta, ServicePort, ServiceAddress, Node, NodeMeta, Address, Mesh),
 * then grouped back into {name: [tags]}. */
json_t *catalog_service_rows(struct db *db, json_t *node_meta);
json_t *catalog_services_group(json_t *rows);
json_t *catalog_service_nodes(struct db *db, const char *dc, const char *service, json_t *tags,
			      json_t *node_meta);
json_t *catalog_nodes(struct db *db, const char *dc, json_t *node_meta);
/* NULL when there is no such node. */
json_t *catalog_node(struct db *db, const char *dc, const char *node, int services_as_list);
json_t *catalog_node_json(struct db *db, const char *dc, const char *node);
json_t *health_service(struct db *db, const char *dc, const char *service, json_t *tags,
		       int passing, json_t *node_meta);
json_t *health_checks_of_service(struct db *db, const char *service);
json_t *health_checks_of_node(struct db *db, const char *node);
json_t *health_checks_in_state(struct db *db, const char *state);
/* Services of one node, keyed by ID, in the agent's format. */
json_t *catalog_agent_services(struct db *db, const char *node);
json_t *catalog_agent_checks(struct db *db, const char *node);
/* One row of a service in the agent's format, or NULL. */
json_t *catalog_agent_service(struct db *db, const char *node, const char *id);

/* The name of the service with this ID on node (allocated), or NULL. */
char *catalog_service_name(struct db *db, const char *node, const char *service_id);

int check_status_valid(const char *s);

#endif
