/* Sessions, as Consul has them: a session belongs to a node, is tied to
 * health checks, and holds KV locks. It is invalidated when destroyed, when
 * its TTL runs out (2 x TTL after the last renewal, as Consul's timers),
 * when a check it is tied to turns critical or goes away, or when its node
 * is deregistered; then the locks it holds are released (Behavior
 * "release") or their keys deleted ("delete"), and a lock-delay window
 * keeps others from acquiring those keys for LockDelay (at most 60s).
 *
 * Topics: "sessions", "session:ID", "sessnode:NODE". */
#ifndef WEFT_SESSION_H
#define WEFT_SESSION_H

#include <jansson.h>
#include <stdint.h>

#include "store.h"

#define SESSION_TTL_MIN_MS 10000LL          /* Consul's session_ttl_min */
#define SESSION_TTL_MAX_MS 86400000LL       /* Consul's SessionTTLMax */
#define SESSION_TTL_MULTIPLIER 2            /* Consul's SessionTTLMultiplier */
#define SESSION_DEFAULT_LOCK_DELAY_MS 15000
#define SESSION_MAX_CHECKS 64

struct session_create {
	json_t *doc;             /* owns the strings below */
	char id[37];
	const char *name, *node, *behavior;
	json_t *node_checks;     /* [check ID] (NodeChecks and legacy Checks) */
	json_t *service_checks;  /* [{"ID", "Namespace"}] */
	long long ttl_ms, lock_delay_ms;
	int64_t now_ms;
};

/* doc may be NULL (no body): every default. default_node: the server's. */
int session_decode_create(json_t *doc, const char *default_node, struct session_create *out,
			  char **err);
void session_create_free(struct session_create *c);

/* The argument of destroy, renew and expire. */
struct session_op {
	char *id;
	int64_t now_ms;
};
struct session_op *session_op_new(const char *id, int64_t now_ms);
void session_op_free(struct session_op *op);

/* store_write applies. create: w->arg is a struct session_create and
 * w->result {"ID": ...}; destroy: a session_op, result true; renew: a
 * session_op, result [session] or WEFT_ENOENT; expire: invalidates the
 * session only if its TTL has run out at op->now_ms (result: whether). */
int session_apply_create(struct db *db, uint64_t index, struct store_write *w,
			 struct store_changes *ch);
int session_apply_destroy(struct db *db, uint64_t index, struct store_write *w,
			  struct store_changes *ch);
int session_apply_renew(struct db *db, uint64_t index, struct store_write *w,
			struct store_changes *ch);
int session_apply_expire(struct db *db, uint64_t index, struct store_write *w,
			 struct store_changes *ch);

/* Inside any apply. */
int session_invalidate(struct db *db, uint64_t index, const char *id, int64_t now_ms,
		       struct store_changes *ch, char **err);
/* Catalog hooks: call when a check is written as critical, when a check
 * or a service (before its checks are deleted) or a node is removed. */
int session_on_check_critical(struct db *db, uint64_t index, const char *node,
			      const char *check_id, int64_t now_ms, struct store_changes *ch,
			      char **err);
int session_on_check_removed(struct db *db, uint64_t index, const char *node,
			     const char *check_id, int64_t now_ms, struct store_changes *ch,
			     char **err);
int session_on_service_removed(struct db *db, uint64_t index, const char *node,
			       const char *service_id, int64_t now_ms, struct store_changes *ch,
			       char **err);
int session_on_node_removed(struct db *db, uint64_t index, const char *node, int64_t now_ms,
			    struct store_changes *ch, char **err);

/* Reads: arrays of sessions in Consul's format. */
json_t *session_get(struct db *db, const char *id);
json_t *session_list(struct db *db);
json_t *session_node_list(struct db *db, const char *node);
/* The node of a session (allocated), or NULL. */
char *session_node_of(struct db *db, const char *id);

/* TTL expiry. session_reap invalidates every session whose TTL has run out
 * at store_now_ms(s) and returns how many (or a negative error). */
int session_reap(struct store *s);
/* Restarts every TTL timer from now, as a new Consul leader does. */
int session_reset_timers(struct store *s);

struct session_reaper;
/* Resets the timers, then runs session_reap every interval_ms on a thread. */
int session_reaper_start(struct session_reaper **out, struct store *s, int interval_ms,
			 char **err);
void session_reaper_stop(struct session_reaper *r);

#endif
