/* Anti-entropy with weft-server's catalog (sync.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "sync.h"
#include "util.h"

struct agent_sync {
	struct agent_state *st;
	struct httpc_opts server;
	char *node, *address, *datacenter;
	int64_t interval_ms, output_interval_ms, heartbeat_ms;
	pthread_t thread, hb_thread;
	int started, hb_started;

	pthread_mutex_t mu;      /* guards what follows */
	int stop;
	int in_sync;
	char *last_error;
	uint64_t writes, full_syncs;
	int64_t last_sync_ms;
};

/* What the server holds for the node, as last read or written. */
struct remote {
	int node_ok;             /* node registered with our address */
	json_t *services;        /* id -> service as the server shows it */
	json_t *checks;          /* id -> check */
	json_t *output_at;       /* check id -> ms when its output was last written */
};

static const char *sget(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static int stopping(struct agent_sync *s)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = s->stop;
	pthread_mutex_unlock(&s->mu);
	return v;
}

/* Sleeps ms, or less when the sync stops. */
static void nap(struct agent_sync *s, int64_t ms)
{
	int64_t until = now_mono_ms() + ms;

	while (!stopping(s) && now_mono_ms() < until) {
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
	}
}

static int abort_cb(void *arg)
{
	return stopping(arg);
}

static void set_error(struct agent_sync *s, const char *msg)
{
	pthread_mutex_lock(&s->mu);
	free(s->last_error);
	s->last_error = msg ? strdup(msg) : NULL;
	s->in_sync = msg == NULL;
	if (msg == NULL)
		s->last_sync_ms = now_wall_ms();
	pthread_mutex_unlock(&s->mu);
}

/* ---- the forms sent to the server ---- */

static json_t *wire_service(json_t *svc)
{
	static const char *const keys[] = { "ID", "Service", "Tags", "Address", "Port", "Meta",
					    "Weights", "EnableTagOverride", "Kind", "Proxy", "Mesh",
					    NULL };
	json_t *w = json_object(), *v;

	for (size_t i = 0; keys[i]; i++)
		if ((v = json_object_get(svc, keys[i])) != NULL)
			json_object_set(w, keys[i], v);
	return w;
}

static json_t *wire_check(json_t *c)
{
	static const char *const def_keys[] = { "HTTP", "Method", "Header", "Body", "TLSSkipVerify",
						"TCP", "UDP", "GRPC", "GRPCUseTLS", "H2PING",
						"H2PingUseTLS", "TTL", "Interval",
						"Timeout", "DeregisterCriticalServiceAfter", "AliasService",
						"SuccessBeforePassing", "FailuresBeforeWarning",
						"FailuresBeforeCritical", NULL };
	json_t *w, *def = json_object(), *v;

	for (size_t i = 0; def_keys[i]; i++)
		if ((v = json_object_get(c, def_keys[i])) != NULL)
			json_object_set(def, def_keys[i], v);
	if ((v = json_object_get(c, "Args")) != NULL)
		json_object_set(def, "ScriptArgs", v);
	w = json_pack("{ss ss ss ss ss ss ss so}", "CheckID", sget(c, "CheckID"), "Name", sget(c, "Name"),
		      "Status", sget(c, "Status"), "Output", sget(c, "Output"), "Notes", sget(c, "Notes"),
		      "ServiceID", sget(c, "ServiceID"), "Type", sget(c, "Type"), "Definition", def);
	return w;
}

static int same_service(json_t *local_wire, json_t *remote)
{
	const char *k;
	json_t *v, *r;

	if (remote == NULL)
		return 0;
	json_object_foreach(local_wire, k, v) {
		r = json_object_get(remote, k);
		if (!json_equal(v, r))
			return 0;
	}
	/* a Kind or Proxy the local one does not have */
	if (json_object_get(local_wire, "Kind") == NULL && sget(remote, "Kind")[0])
		return 0;
	if (json_object_get(local_wire, "Proxy") == NULL && json_object_size(json_object_get(remote, "Proxy")) > 0)
		return 0;
	return 1;
}

static int same_check(json_t *wire, json_t *remote, int compare_output)
{
	static const char *const keys[] = { "Name", "Status", "Notes", "ServiceID", "Type",
					    "Definition", NULL };

	if (remote == NULL)
		return 0;
	for (size_t i = 0; keys[i]; i++)
		if (!json_equal(json_object_get(wire, keys[i]), json_object_get(remote, keys[i])))
			return 0;
	if (compare_output && strcmp(sget(wire, "Output"), sget(remote, "Output")) != 0)
		return 0;
	return 1;
}

/* ---- server calls ---- */

static int put(struct agent_sync *s, struct httpc *c, const char *path, json_t *body, char **err)
{
	int rc = httpc_json(c, "PUT", path, body, 0, NULL, NULL, err);

	if (rc == WEFT_OK) {
		pthread_mutex_lock(&s->mu);
		s->writes++;
		pthread_mutex_unlock(&s->mu);
	}
	return rc;
}

static int fetch_remote(struct agent_sync *s, struct httpc *c, struct remote *r, char **err)
{
	char path[512];
	json_t *out = NULL, *e;
	size_t i;
	int rc;

	json_object_clear(r->services);
	json_object_clear(r->checks);
	r->node_ok = 0;
	snprintf(path, sizeof(path), "/v1/catalog/node-services/%s", s->node);
	rc = httpc_json(c, "GET", path, NULL, 0, &out, NULL, err);
	if (rc == WEFT_ENOENT) {   /* node not registered yet */
		free(*err);
		*err = NULL;
		return WEFT_OK;
	}
	if (rc != WEFT_OK)
		return rc;
	if (json_is_object(out)) {
		json_t *node = json_object_get(out, "Node");
		r->node_ok = node && strcmp(sget(node, "Address"), s->address) == 0;
		json_array_foreach(json_object_get(out, "Services"), i, e)
			json_object_set(r->services, sget(e, "ID"), e);
	}
	json_decref(out);
	out = NULL;
	snprintf(path, sizeof(path), "/v1/health/node/%s", s->node);
	rc = httpc_json(c, "GET", path, NULL, 0, &out, NULL, err);
	if (rc != WEFT_OK)
		return rc;
	json_array_foreach(out, i, e)
		json_object_set(r->checks, sget(e, "CheckID"), e);
	json_decref(out);
	return WEFT_OK;
}

static json_t *reg_body(struct agent_sync *s)
{
	json_t *b = json_pack("{ss ss sb}", "Node", s->node, "Address", s->address, "SkipNodeUpdate", 1);

	if (s->datacenter)
		json_object_set_new(b, "Datacenter", json_string(s->datacenter));
	return b;
}

/* Writes one check if it differs; updates r. */
static int sync_check(struct agent_sync *s, struct httpc *c, struct remote *r, json_t *check,
		      char **err)
{
	const char *id = sget(check, "CheckID");
	json_t *wire = wire_check(check), *remote = json_object_get(r->checks, id), *body;
	int64_t now = now_mono_ms();
	json_t *at = json_object_get(r->output_at, id);
	int due = at == NULL || now - json_integer_value(at) >= s->output_interval_ms;
	int rc = WEFT_OK;

	if (!same_check(wire, remote, due)) {
		body = reg_body(s);
		json_object_set(body, "Check", wire);
		rc = put(s, c, "/v1/catalog/register", body, err);
		json_decref(body);
		if (rc == WEFT_OK) {
			json_object_set(r->checks, id, wire);
			json_object_set_new(r->output_at, id, json_integer(now));
		}
	}
	json_decref(wire);
	return rc;
}

/* One pass: every difference between local and r written. */
static int reconcile(struct agent_sync *s, struct httpc *c, struct remote *r, char **err)
{
	json_t *services = state_services(s->st), *node_checks = state_node_checks(s->st);
	json_t *local_checks = json_object(), *svc, *chk, *body, *wire;
	const char *id;
	void *tmp;
	size_t i, j;
	int rc = WEFT_OK;
	char path[64];

	(void)path;
	if (!r->node_ok) {
		body = json_pack("{ss ss}", "Node", s->node, "Address", s->address);
		if (s->datacenter)
			json_object_set_new(body, "Datacenter", json_string(s->datacenter));
		rc = put(s, c, "/v1/catalog/register", body, err);
		json_decref(body);
		if (rc != WEFT_OK)
			goto out;
		r->node_ok = 1;
	}
	json_array_foreach(services, i, svc) {
		id = sget(svc, "ID");
		wire = wire_service(svc);
		json_array_foreach(json_object_get(svc, "Checks"), j, chk)
			json_object_set_new(local_checks, sget(chk, "CheckID"), json_true());
		if (!same_service(wire, json_object_get(r->services, id))) {
			json_t *checks = json_array();
			int64_t now = now_mono_ms();
			body = reg_body(s);
			json_object_set(body, "Service", wire);
			json_array_foreach(json_object_get(svc, "Checks"), j, chk)
				json_array_append_new(checks, wire_check(chk));
			json_object_set_new(body, "Checks", checks);
			rc = put(s, c, "/v1/catalog/register", body, err);
			if (rc == WEFT_OK) {
				json_object_set(r->services, id, wire);
				json_array_foreach(checks, j, chk) {
					json_object_set(r->checks, sget(chk, "CheckID"), chk);
					json_object_set_new(r->output_at, sget(chk, "CheckID"), json_integer(now));
				}
			}
			json_decref(body);
		} else {
			json_array_foreach(json_object_get(svc, "Checks"), j, chk) {
				if ((rc = sync_check(s, c, r, chk, err)) != WEFT_OK)
					break;
			}
		}
		json_decref(wire);
		if (rc != WEFT_OK)
			goto out;
	}
	json_array_foreach(node_checks, i, chk) {
		json_object_set_new(local_checks, sget(chk, "CheckID"), json_true());
		if ((rc = sync_check(s, c, r, chk, err)) != WEFT_OK)
			goto out;
	}
	/* what the server has and the agent does not */
	json_object_foreach_safe(r->services, tmp, id, svc) {
		int found = 0;
		json_array_foreach(services, i, chk)
			if (strcmp(sget(chk, "ID"), id) == 0)
				found = 1;
		if (found)
			continue;
		body = json_pack("{ss ss}", "Node", s->node, "ServiceID", id);
		rc = put(s, c, "/v1/catalog/deregister", body, err);
		json_decref(body);
		if (rc != WEFT_OK)
			goto out;
		{
			void *t2;
			const char *cid;
			json_t *cc;
			json_object_foreach_safe(r->checks, t2, cid, cc) {
				if (strcmp(sget(cc, "ServiceID"), id) == 0)
					json_object_del(r->checks, cid);
			}
		}
		json_object_del(r->services, id);
	}
	json_object_foreach_safe(r->checks, tmp, id, chk) {
		if (json_object_get(local_checks, id) || strcmp(id, "serfHealth") == 0)
			continue;
		body = json_pack("{ss ss}", "Node", s->node, "CheckID", id);
		rc = put(s, c, "/v1/catalog/deregister", body, err);
		json_decref(body);
		if (rc != WEFT_OK)
			goto out;
		json_object_del(r->checks, id);
	}
out:
	json_decref(services);
	json_decref(node_checks);
	json_decref(local_checks);
	return rc;
}

static void *sync_main(void *arg)
{
	struct agent_sync *s = arg;
	struct remote r = { 0, json_object(), json_object(), json_object() };
	struct httpc *c = NULL;
	struct state_gen gen = { 0, 0 };
	int64_t backoff = 0, next_full = 0;
	int have_remote = 0;
	char *err = NULL;

	if (httpc_new(&c, &s->server, &err) != WEFT_OK) {
		log_warnx("sync", "%s", err);
		set_error(s, err);
		goto out;
	}
	while (!stopping(s)) {
		int rc;
		gen = state_generation(s->st);
		if (!have_remote || now_mono_ms() >= next_full) {
			rc = fetch_remote(s, c, &r, &err);
			if (rc != WEFT_OK)
				goto failed;
			have_remote = 1;
			next_full = now_mono_ms() + s->interval_ms +
				    (int64_t)(random_below((uint32_t)(s->interval_ms / 10 + 1)));
			pthread_mutex_lock(&s->mu);
			s->full_syncs++;
			pthread_mutex_unlock(&s->mu);
		}
		rc = reconcile(s, c, &r, &err);
		if (rc != WEFT_OK)
			goto failed;
		if (backoff)
			log_info("sync", "catalog of node %s in sync with %s again", s->node,
				  httpc_display(c));
		backoff = 0;
		set_error(s, NULL);
		{
			int64_t wait = next_full - now_mono_ms();
			struct state_gen now_gen = state_generation(s->st);
			if (now_gen.defs == gen.defs && now_gen.status == gen.status && wait > 0)
				state_wait(s->st, gen, wait);
		}
		continue;
failed:
		if (stopping(s))
			break;
		if (backoff == 0)
			log_warnx("sync", "node %s: %s (retrying with backoff)", s->node, err ? err : "error");
		set_error(s, err ? err : "error");
		free(err);
		err = NULL;
		have_remote = 0;
		backoff = backoff ? backoff * 2 : 1000;
		if (backoff > 30000)
			backoff = 30000;
		nap(s, backoff / 2 + (int64_t)random_below((uint32_t)(backoff / 2 + 1)));
	}
out:
	free(err);
	httpc_free(c);
	json_decref(r.services);
	json_decref(r.checks);
	json_decref(r.output_at);
	return NULL;
}

/* The heartbeat thread: one small PUT per interval, so that the server
 * knows this agent lives without a catalog write (server/liveness.h). */
static void *hb_main(void *arg)
{
	struct agent_sync *s = arg;
	struct httpc *c = NULL;
	char *err = NULL, path[512], *node_q = httpc_escape(s->node, 0);
	int failing = 0;

	snprintf(path, sizeof(path), "/v1/weft/agent/heartbeat/%s", node_q ? node_q : s->node);
	free(node_q);
	while (!stopping(s)) {
		if (c == NULL && httpc_new(&c, &s->server, &err) != WEFT_OK) {
			log_warnx("sync", "heartbeat: %s", err);
			free(err);
			err = NULL;
		} else if (c != NULL) {
			if (httpc_json(c, "PUT", path, NULL, 10000, NULL, NULL, &err) != WEFT_OK) {
				if (!failing)
					log_warnx("sync", "heartbeat of node %s not taken: %s", s->node, err);
				failing = 1;
				free(err);
				err = NULL;
			} else if (failing) {
				log_info("sync", "heartbeat of node %s taken again", s->node);
				failing = 0;
			}
		}
		nap(s, s->heartbeat_ms);
	}
	httpc_free(c);
	return NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int sync_start(struct agent_sync **out, struct agent_state *st, const struct sync_opts *o,
	       char **err)
{
	struct agent_sync *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	s->st = st;
	s->server = o->server;
	s->server.abort_fn = abort_cb;
	s->server.abort_arg = s;
	s->node = strdup(o->node);
	s->address = strdup(o->address);
	s->datacenter = dup_or_null(o->datacenter);
	s->interval_ms = o->interval_ms > 0 ? o->interval_ms : 60000;
	s->output_interval_ms = o->output_interval_ms > 0 ? o->output_interval_ms : 300000;
	s->heartbeat_ms = o->heartbeat_ms == 0 ? 10000 : o->heartbeat_ms;
	pthread_mutex_init(&s->mu, NULL);
	if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
		sync_stop(s);
		return weft_errf(err, WEFT_EIO, "sync: cannot start its thread");
	}
	s->started = 1;
	if (s->heartbeat_ms > 0) {
		if (pthread_create(&s->hb_thread, NULL, hb_main, s) != 0) {
			sync_stop(s);
			return weft_errf(err, WEFT_EIO, "sync: cannot start the heartbeat thread");
		}
		s->hb_started = 1;
	}
	*out = s;
	return WEFT_OK;
}

void sync_stop(struct agent_sync *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_mutex_unlock(&s->mu);
	state_wake(s->st);
	if (s->started)
		pthread_join(s->thread, NULL);
	if (s->hb_started)
		pthread_join(s->hb_thread, NULL);
	pthread_mutex_destroy(&s->mu);
	free(s->node);
	free(s->address);
	free(s->datacenter);
	free(s->last_error);
	free(s);
}

int sync_leave(const struct httpc_opts *server, const char *node, int64_t timeout_ms,
	       char **err)
{
	struct httpc_opts o = *server;
	struct httpc *c = NULL;
	json_t *body;
	int rc;

	o.abort_fn = NULL;
	o.connect_timeout_ms = timeout_ms;
	o.timeout_ms = timeout_ms;
	if ((rc = httpc_new(&c, &o, err)) != WEFT_OK)
		return rc;
	body = json_pack("{ss}", "Node", node);
	rc = httpc_json(c, "PUT", "/v1/catalog/deregister", body, timeout_ms, NULL, NULL, err);
	json_decref(body);
	httpc_free(c);
	return rc;
}

json_t *sync_status(struct agent_sync *s)
{
	json_t *o;
	char when[64] = "";

	pthread_mutex_lock(&s->mu);
	if (s->last_sync_ms)
		time_format_rfc3339(s->last_sync_ms, when, sizeof(when));
	o = json_pack("{sb ss* sI sI ss}", "InSync", s->in_sync, "LastError", s->last_error,
		      "Writes", (json_int_t)s->writes, "FullSyncs", (json_int_t)s->full_syncs,
		      "LastSync", when);
	pthread_mutex_unlock(&s->mu);
	return o;
}

int sync_in_sync(struct agent_sync *s)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = s->in_sync;
	pthread_mutex_unlock(&s->mu);
	return v;
}
