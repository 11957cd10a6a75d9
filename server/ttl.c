#include "ttl.h"
#include "catalog.h"
#include "err.h"
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ttl {
	struct store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stopping;
	_Atomic uint64_t expired;
};

int ttl_apply_expire(struct db *db, uint64_t index, struct store_write *w,
		     struct store_changes *ch)
{
	struct ttl_expiry *e = w->arg;
	struct db_stmt *st;

	e->expired = 0;
	for (size_t i = 0; i < e->n; i++) {
		char *svc = NULL;
		int due = 0;

		st = db_prep(db, "SELECT service_name FROM checks WHERE node = ? AND check_id = ?"
				 " AND ttl_ms > 0 AND ttl_deadline > 0 AND ttl_deadline <= ?");
		if (st == NULL)
			return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		db_bind_text(st, 1, e->node[i]);
		db_bind_text(st, 2, e->check_id[i]);
		db_bind_int(st, 3, e->now_ms);
		if (db_step(st) == DB_ROW) {
			due = 1;
			svc = strdup(db_col_text(st, 0));
		}
		db_done(st);
		if (!due)
			continue;   /* updated since it was found */
		/* Consul's wording, keeping the last output for whoever looks. */
		st = db_prep(db, "UPDATE checks SET status = 'critical', ttl_deadline = 0,"
				 " output = CASE WHEN output = '' OR output LIKE 'TTL expired%'"
				 "   THEN 'TTL expired'"
				 "   ELSE 'TTL expired (last output before timeout follows): ' || output END,"
				 " modify_index = ? WHERE node = ? AND check_id = ?");
		if (st == NULL) {
			free(svc);
			return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		}
		db_bind_int(st, 1, (int64_t)index);
		db_bind_text(st, 2, e->node[i]);
		db_bind_text(st, 3, e->check_id[i]);
		if (db_step(st) != DB_DONE) {
			db_done(st);
			free(svc);
			return weft_errf(&w->err, WEFT_EIO, "store: cannot expire check %s: %s",
					 e->check_id[i], db_errmsg(db));
		}
		db_done(st);
		e->expired++;
		changes_add(ch, "checks");
		changes_add(ch, "node:%s", e->node[i]);
		if (svc && svc[0])
			changes_add(ch, "svc:%s", svc);
		else
			catalog_touch_node(db, e->node[i], ch);
		free(svc);
	}
	return WEFT_OK;
}

static void expiry_clear(struct ttl_expiry *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->node[i]);
		free(e->check_id[i]);
	}
	e->n = 0;
}

/* Finds due checks into e; returns the earliest deadline still pending
 * (0 when none). */
static int64_t scan(struct ttl *t, struct ttl_expiry *e, int64_t now)
{
	struct db *db = store_read_begin(t->store);
	struct db_stmt *st;
	int64_t next = 0;

	e->n = 0;
	e->now_ms = now;
	if (db == NULL)
		return 0;
	st = db_prep(db, "SELECT node, check_id FROM checks WHERE ttl_ms > 0"
			 " AND ttl_deadline > 0 AND ttl_deadline <= ? ORDER BY ttl_deadline LIMIT 256");
	if (st) {
		db_bind_int(st, 1, now);
		while (e->n < TTL_BATCH && db_step(st) == DB_ROW) {
			e->node[e->n] = strdup(db_col_text(st, 0));
			e->check_id[e->n] = strdup(db_col_text(st, 1));
			if (e->node[e->n] == NULL || e->check_id[e->n] == NULL) {
				free(e->node[e->n]);
				free(e->check_id[e->n]);
				break;
			}
			e->n++;
		}
		db_done(st);
	}
	st = db_prep(db, "SELECT MIN(ttl_deadline) FROM checks WHERE ttl_ms > 0 AND ttl_deadline > ?");
	if (st) {
		db_bind_int(st, 1, now);
		if (db_step(st) == DB_ROW && !db_col_is_null(st, 0))
			next = db_col_int(st, 0);
		db_done(st);
	}
	store_read_end(db);
	return next;
}

static void *ttl_main(void *arg)
{
	struct ttl *t = arg;
	struct ttl_expiry *e = calloc(1, sizeof(*e));

	if (e == NULL) {
		log_errorx("ttl", "out of memory: TTL checks will not expire");
		return NULL;
	}
	pthread_mutex_lock(&t->lock);
	while (!t->stopping) {
		int64_t now, next, sleep_ms;
		struct timespec ts;

		pthread_mutex_unlock(&t->lock);
		now = now_wall_ms();
		next = scan(t, e, now);
		if (e->n > 0) {
			struct store_write w = { .apply = ttl_apply_expire, .arg = e };
			if (store_write_sync(t->store, &w) == WEFT_OK) {
				atomic_fetch_add(&t->expired, e->expired);
				if (e->expired)
					log_info("ttl", "expired checks=%zu first=%s/%s", e->expired,
						 e->node[0], e->check_id[0]);
				/* A full batch may have more behind it: look again at once. */
				sleep_ms = e->n == TTL_BATCH ? 0 : 1;
			} else {
				log_warnx("ttl", "expiry write failed error=\"%s\"", w.err ? w.err : "?");
				sleep_ms = TTL_POLL_MS;   /* do not spin on a failing store */
			}
			free(w.err);
			json_decref(w.result);
			expiry_clear(e);
		} else {
			sleep_ms = TTL_POLL_MS;
			if (next > 0 && next - now < sleep_ms)
				sleep_ms = next - now;
			if (sleep_ms < 1)
				sleep_ms = 1;
		}
		pthread_mutex_lock(&t->lock);
		if (t->stopping || sleep_ms == 0)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += sleep_ms / 1000;
		ts.tv_nsec += (sleep_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	free(e);
	return NULL;
}

/* After a restart every armed check gets a whole TTL again, as a Consul
 * agent restarts its TTL timers: clients could not reach a stopped server,
 * so a deadline that passed meanwhile says nothing about them. */
static int apply_rearm(struct db *db, uint64_t index, struct store_write *w,
		       struct store_changes *ch)
{
	struct db_stmt *st = db_prep(db, "UPDATE checks SET ttl_deadline = ? + ttl_ms"
					 " WHERE ttl_ms > 0 AND ttl_deadline > 0");
	int rc = WEFT_OK;

	(void)index;
	(void)ch;
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_int(st, 1, now_wall_ms());
	if (db_step(st) != DB_DONE)
		rc = weft_errf(&w->err, WEFT_EIO, "store: cannot re-arm TTL checks: %s", db_errmsg(db));
	db_done(st);
	return rc;
}

int ttl_start(struct ttl **out, struct store *store, char **err)
{
	struct ttl *t;
	struct store_write w = { .apply = apply_rearm };
	pthread_condattr_t ca;

	if (store_write_sync(store, &w) != WEFT_OK) {
		weft_errf(err, w.status, "ttl: %s", w.err ? w.err : "cannot re-arm TTL checks");
		free(w.err);
		return w.status;
	}
	json_decref(w.result);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ttl: out of memory");
	t->store = store;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&t->thread, NULL, ttl_main, t) != 0) {
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return weft_errf(err, WEFT_EIO, "ttl: cannot start the TTL thread");
	}
	*out = t;
	return WEFT_OK;
}

void ttl_stop(struct ttl *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = 1;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

uint64_t ttl_expired_total(struct ttl *t)
{
	return t ? atomic_load(&t->expired) : 0;
}
