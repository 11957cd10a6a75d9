/* Intentions in the server: one source of truth with service-intentions
 * config entries (as Consul >= 1.9). The intentions whose destination is D
 * are the Sources of the service-intentions entry named D in the mesh:
 * {Name, Namespace, Action | Permissions, Description, Precedence, Type,
 *  LegacyID, LegacyMeta}. An intention created by POST gets a LegacyID (its
 * ID); one written through /exact or as a config entry has none.
 *
 * Every decision goes through lib/intention: this module compiles each
 * mesh's intentions into an intention_set and caches it, with the mesh's
 * default action, in a refcounted snapshot. A snapshot is rebuilt only when
 * the hub's index of "cfg:<mesh>:service-intentions" or "mesh:<mesh>" moved
 * past the one it was built at (the hub publishes after the commit is
 * durable, so a snapshot built after reading an index holds at least that
 * state). Readers share snapshots; a snapshot is freed by its last holder. */
#ifndef WEFT_INTENTIONS_H
#define WEFT_INTENTIONS_H

#include <jansson.h>
#include <stdint.h>

#include "intention.h"
#include "store.h"

#define INTENTIONS_KIND "service-intentions"

struct hub;
struct intentions;

struct intentions_snap {
	const struct intention_set *set;
	enum intention_action default_action;
	uint64_t index;                 /* the hub index it was built at */
};

/* dev: the server runs with --dev (meshes without a chosen default action
 * then allow). */
int intentions_new(struct intentions **out, struct store *store, struct hub *hub, int dev);
void intentions_free(struct intentions *c);

/* The current snapshot of mesh's intentions (built or rebuilt when needed).
 * WEFT_EINVAL "mesh: no mesh ..." for an unknown mesh; WEFT_EIO when a
 * stored entry does not compile. Release it with intentions_release. */
int intentions_acquire(struct intentions *c, const char *mesh,
		       const struct intentions_snap **out, char **err);
void intentions_release(struct intentions *c, const struct intentions_snap *snap);

/* Builds a set from the service-intentions entries of mesh on db (for
 * tools and tests; the cache uses it). Sources that do not decode are
 * skipped with a warning in the log. */
int intentions_load(struct db *db, const char *mesh, struct intention_set **out, char **err);
/* Only the intentions whose destination is dst or "*": every intention
 * that can share a call with one to dst (all destinations are in the one
 * namespace), so analyzing a new intention to dst against this set finds
 * what the whole set would, without compiling the whole mesh. */
int intentions_load_for(struct db *db, const char *mesh, const char *dst,
			struct intention_set **out, char **err);

/* Called by config_store when a service-intentions entry changes (old or
 * new NULL when absent): publishes "ixn:<mesh>:dst:<name>" and
 * "ixn:<mesh>:src:<source>" for each source added, removed or changed. */
void intentions_entry_changed(const char *mesh, const char *name, json_t *old, json_t *new,
			      struct store_changes *ch);

/* ---- writes (store apply functions, w->arg a struct intentions_op) ---- */

enum intentions_op_kind {
	INTENTIONS_CREATE,       /* POST: new, with op->id as its ID; EEXIST if the pair exists */
	INTENTIONS_UPSERT,       /* PUT /exact: create or replace by name pair */
	INTENTIONS_UPDATE_ID,    /* PUT /:id */
	INTENTIONS_DELETE_EXACT, /* DELETE /exact */
	INTENTIONS_DELETE_ID,    /* DELETE /:id */
};

struct intentions_op {
	enum intentions_op_kind kind;
	char *mesh;
	struct intention *ix;        /* CREATE, UPSERT, UPDATE_ID (owned) */
	char id[40];                 /* CREATE, UPDATE_ID, DELETE_ID */
	char *src_ns, *src_name, *dst_name;   /* DELETE_EXACT */
	json_t *findings;            /* CREATE, UPDATE_ID: analysis findings for the result */
};

void intentions_op_free(void *op);
/* Results: CREATE and UPDATE_ID {"ID"}, with "Warnings" (the findings'
 * messages) and "Findings" (the findings) when there are any; the others
 * `true`.
 * WEFT_ENOENT when there is nothing to update or delete. */
int intentions_apply(struct db *db, uint64_t index, struct store_write *w,
		     struct store_changes *ch);

#endif
