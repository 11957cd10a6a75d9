/* TTL checks: a thread that turns checks critical when their TTL passes
 * without an update ("TTL expired", as Consul says).
 *
 * Each check with a TTL has a deadline (checks.ttl_deadline, wall-clock ms),
 * pushed forward by every status update and cleared when it expires. The
 * thread sleeps until the earliest deadline, at most TTL_POLL_MS, so a new
 * registration is seen within that time and an expiry is written within a
 * few milliseconds of its deadline; when idle it costs one indexed query per
 * TTL_POLL_MS. */
#ifndef WEFT_TTL_H
#define WEFT_TTL_H

#include <stdint.h>

#include "store.h"

#define TTL_POLL_MS 250
#define TTL_BATCH 256

struct ttl;

/* Gives every armed TTL check a whole TTL from now (the server was down,
 * so nobody could update them), then starts the thread. */
int ttl_start(struct ttl **out, struct store *store, char **err);
/* Wakes and joins the thread; NULL is fine. */
void ttl_stop(struct ttl *t);
/* How many checks it has expired since start (for metrics). */
uint64_t ttl_expired_total(struct ttl *t);

/* The write that expires the checks of node/check_id pairs whose deadline
 * is at or before now_ms (pairs no longer due are left alone). */
struct ttl_expiry {
	int64_t now_ms;
	size_t n;
	char *node[TTL_BATCH];
	char *check_id[TTL_BATCH];
	size_t expired;    /* out */
};
int ttl_apply_expire(struct db *db, uint64_t index, struct store_write *w,
		     struct store_changes *ch);

#endif
