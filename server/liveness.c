/* Agents' liveness from in-memory heartbeats (liveness.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent.h"
#include "err.h"
#include "liveness.h"
#include "log.h"
#include "util.h"

#define NODES_MAX 65536
#define POLL_MS 500

struct liveness {
	struct store *store;
	int64_t timeout_ms;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;
	json_t *nodes;   /* node -> {"seen": ms, "dead": bool} */
};

/* Sets the node's weft-agent check; 0 when written (or nothing to write). */
static int set_status(struct liveness *l, const char *node, const char *status, const char *output)
{
	struct agent_op *op = agent_op_new(node);
	struct store_write w = { .apply = agent_apply_check_update };
	int rc;

	if (op == NULL)
		return -1;
	op->check_id = strdup(LIVENESS_CHECK_ID);
	op->status = strdup(status);
	op->output = strdup(output);
	w.arg = op;
	rc = store_write_sync(l->store, &w);
	if (rc != WEFT_OK)
		log_debug("liveness", "node %s: check %s not set to %s: %s", node, LIVENESS_CHECK_ID,
			  status, w.err ? w.err : "error");
	free(w.err);
	agent_op_free(op);
	return rc == WEFT_OK ? 0 : -1;
}

static void *liveness_main(void *arg)
{
	struct liveness *l = arg;
	json_t *due = json_array(), *v;
	const char *node;
	size_t i;

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec ts;
		int64_t now = now_mono_ms();

		json_array_clear(due);
		json_object_foreach(l->nodes, node, v) {
			int dead = json_is_true(json_object_get(v, "dead"));
			int64_t seen = json_integer_value(json_object_get(v, "seen"));
			int silent = l->timeout_ms > 0 && now - seen > l->timeout_ms;
			if (silent != dead)
				json_array_append_new(due, json_pack("{ss sb}", "node", node, "dead", silent));
		}
		pthread_mutex_unlock(&l->mu);
		json_array_foreach(due, i, v) {
			const char *n = json_string_value(json_object_get(v, "node"));
			int dead = json_is_true(json_object_get(v, "dead"));
			char out[160];
			if (dead)
				snprintf(out, sizeof(out), "weft-agent not heard from for %lld s",
					 (long long)(l->timeout_ms / 1000));
			else
				snprintf(out, sizeof(out), "weft-agent heard from");
			if (set_status(l, n, dead ? "critical" : "passing", out) == 0) {
				if (dead)
					log_warnx("liveness", "node %s: %s: its services leave their callers' endpoints",
						  n, out);
				else
					log_info("liveness", "node %s: weft-agent back", n);
			}
			/* recorded even when the write failed (no such check yet, the
			 * agent registers it): retried at the next transition only */
			pthread_mutex_lock(&l->mu);
			if (json_object_get(l->nodes, n))
				json_object_set_new(json_object_get(l->nodes, n), "dead", json_boolean(dead));
			pthread_mutex_unlock(&l->mu);
		}
		pthread_mutex_lock(&l->mu);
		if (l->stop)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&l->cond, &l->mu, &ts);
	}
	pthread_mutex_unlock(&l->mu);
	json_decref(due);
	return NULL;
}

/* Nodes that hold a weft-agent check: heard from now, dead if it is not passing. */
static void load_nodes(struct liveness *l)
{
	struct db *db = store_read_begin(l->store);
	struct db_stmt *st;
	int64_t now = now_mono_ms();

	if (db == NULL)
		return;
	st = db_prep(db, "SELECT node, status FROM checks WHERE check_id = ?");
	if (st != NULL) {
		db_bind_text(st, 1, LIVENESS_CHECK_ID);
		while (db_step(st) == DB_ROW)
			json_object_set_new(l->nodes, db_col_text(st, 0),
					    json_pack("{sI sb}", "seen", (json_int_t)now, "dead",
						      strcmp(db_col_text(st, 1), "passing") != 0));
		db_done(st);
	}
	store_read_end(db);
}

int liveness_start(struct liveness **out, struct store *store, int64_t timeout_ms, char **err)
{
	struct liveness *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	l->store = store;
	l->timeout_ms = timeout_ms;
	l->nodes = json_object();
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cond, NULL);
	load_nodes(l);
	if (pthread_create(&l->thread, NULL, liveness_main, l) != 0) {
		liveness_stop(l);
		return weft_errf(err, WEFT_EIO, "liveness: cannot start its thread");
	}
	l->started = 1;
	*out = l;
	return WEFT_OK;
}

void liveness_stop(struct liveness *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
	if (l->started)
		pthread_join(l->thread, NULL);
	json_decref(l->nodes);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cond);
	free(l);
}

void liveness_heartbeat(struct liveness *l, const char *node)
{
	json_t *v;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	v = json_object_get(l->nodes, node);
	if (v == NULL) {
		if (json_object_size(l->nodes) >= NODES_MAX)
			json_object_clear(l->nodes);   /* bounded; heartbeats refill it */
		/* first heard from now: alive, as the agent registers its check */
		v = json_pack("{sb}", "dead", 0);
		json_object_set_new(l->nodes, node, v);
	}
	json_object_set_new(v, "seen", json_integer(now_mono_ms()));
	if (json_is_true(json_object_get(v, "dead")))
		pthread_cond_broadcast(&l->cond);   /* back: passing at once */
	pthread_mutex_unlock(&l->mu);
}
