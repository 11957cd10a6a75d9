/* Config entries in the store: one table (config_entries) for every kind,
 * keyed by (mesh, kind, name), the body kept as compact JSON.
 *
 * This module stores, reads and publishes; it does not know what a kind
 * means. Callers validate: the apply functions call the validation callback
 * the caller passed in, inside the write (so that cross-entry checks see the
 * current state through config_store_get on the same connection), and refuse
 * the write when it fails. One exception: a service-intentions entry is the
 * storage of the intentions of its destination (server/intentions.h), so
 * writing or removing one also publishes the intention topics.
 *
 * Topics: "cfg:<mesh>:<kind>" and "cfg:<mesh>:<kind>:<name>" for every
 * change; for service-intentions also "ixn:<mesh>:dst:<name>" and
 * "ixn:<mesh>:src:<source name>" for each source that changed. */
#ifndef WEFT_CONFIG_STORE_H
#define WEFT_CONFIG_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "store.h"

#define CONFIG_NAME_MAX 256
#define CONFIG_KIND_MAX 64

/* Checks entry (a whole body, with Kind and Name) before it is stored in
 * mesh, or, with entry NULL, that (op->kind, op->name) may be deleted (a
 * resolver whose subsets a router uses); WEFT_OK, or an error code with
 * *err naming the field. lib/config_entry's config_entry_check_write and
 * _check_delete fit here, with a lookup on config_store_get/_list. */
typedef int (*config_validate_fn)(void *ctx, struct db *db, const char *mesh, json_t *entry,
				  char **err);

/* The argument of the apply functions below. */
struct config_op {
	char *mesh, *kind, *name;
	json_t *entry;                 /* put: the body (Kind and Name are set from the key) */
	int cas_set;                   /* ?cas=N given: write only if ModifyIndex == N (0: absent) */
	uint64_t cas;
	config_validate_fn validate;   /* may be NULL */
	void *validate_ctx;
};

/* Takes a reference to entry (may be NULL for deletes). NULL on ENOMEM. */
struct config_op *config_op_new(const char *mesh, const char *kind, const char *name,
				json_t *entry);
void config_op_free(void *op);

/* Upsert. Result `true`, or `false` when the CAS index did not match
 * (Consul's PUT /v1/config?cas). Fails with WEFT_EINVAL for an unknown
 * mesh or what validate refuses. */
int config_store_apply_put(struct db *db, uint64_t index, struct store_write *w,
			   struct store_changes *ch);
/* Delete. Result `true` (also when there was nothing), or `false` when the
 * CAS index did not match (an absent entry never matches a CAS). validate,
 * if set, runs (entry NULL) before an existing entry is removed. */
int config_store_apply_delete(struct db *db, uint64_t index, struct store_write *w,
			      struct store_changes *ch);

/* Pieces for other apply functions. write upserts (keeping CreateIndex);
 * remove returns WEFT_ENOENT when there is nothing. Neither validates. */
int config_store_write(struct db *db, uint64_t index, const char *mesh, const char *kind,
		       const char *name, json_t *entry, struct store_changes *ch, char **err);
int config_store_remove(struct db *db, uint64_t index, const char *mesh, const char *kind,
			const char *name, struct store_changes *ch, char **err);

/* The cross-entry checks of lib/config_entry.h against the entries stored
 * in mesh (on db: inside a write, the writer's connection): writing entry
 * as (kind, name), or, with entry NULL, deleting (kind, name). */
int config_store_check(struct db *db, const char *mesh, const char *kind, const char *name,
		       json_t *entry, char **err);

/* Reads: the entry with CreateIndex and ModifyIndex, NULL if absent. */
json_t *config_store_get(struct db *db, const char *mesh, const char *kind, const char *name);
/* The entries of one kind (kind NULL: every kind) in mesh, sorted by kind
 * and name. NULL on a storage error. */
json_t *config_store_list(struct db *db, const char *mesh, const char *kind);

#endif
