/* The agent's local state (state.h): one mutex, JSON objects keyed by ID. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "state.h"
#include "svcdef.h"
#include "util.h"

struct agent_state {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	char *dir;              /* DATA_DIR/services, NULL: nothing persisted */
	char *node_address;
	json_t *services;       /* id -> canonical service, plus "Source" */
	json_t *node_checks;    /* id -> canonical node check, plus "Source" */
	json_t *extra_checks;   /* id -> service check registered on its own */
	json_t *status;         /* check id -> {"Status", "Output"} */
	json_t *restored;       /* check id -> status at the last stop */
	struct state_gen gen;
	int woken;
};

static const char *sget(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* ---- persistence of API registrations ---- */

static int persist(struct agent_state *st, const char *kind, const char *id, json_t *doc, char **err)
{
	char path[4096], *text;
	int rc;

	if (st->dir == NULL)
		return WEFT_OK;
	snprintf(path, sizeof(path), "%s/%s-%s.json", st->dir, kind, id);
	if (doc == NULL) {
		if (unlink(path) != 0 && errno != ENOENT)
			return weft_errf(err, WEFT_EIO, "%s: %s", path, strerror(errno));
		return WEFT_OK;
	}
	text = json_dumps(doc, JSON_COMPACT);
	if (text == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	rc = file_write_all(path, text, strlen(text), 0600);
	free(text);
	if (rc != WEFT_OK)
		return weft_errf(err, WEFT_EIO, "%s: cannot write: %s", path, strerror(errno));
	return WEFT_OK;
}

static void load_persisted(struct agent_state *st)
{
	DIR *d = opendir(st->dir);
	struct dirent *de;
	char path[4096];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		json_t *doc, *e;
		size_t i, n = strlen(de->d_name);
		char *text;
		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name);
		text = file_read_all(path, 1 << 20, NULL);
		doc = text ? json_loads(text, 0, NULL) : NULL;
		free(text);
		if (doc == NULL) {
			log_warnx("agent", "%s: unreadable registration, ignored", path);
			continue;
		}
		if (strncmp(de->d_name, "service-", 8) == 0 && json_is_array(doc)) {
			json_array_foreach(doc, i, e)
				if (sget(e, "ID")[0])
					json_object_set(st->services, sget(e, "ID"), e);
		} else if (strncmp(de->d_name, "check-", 6) == 0 && json_is_object(doc) &&
			   sget(doc, "CheckID")[0]) {
			json_object_set(st->extra_checks, sget(doc, "CheckID"), doc);
		}
		json_decref(doc);
	}
	closedir(d);
}

#define STATUS_FILE "statuses.json"   /* not service-* nor check-*: not a registration */

static void load_statuses(struct agent_state *st)
{
	char path[4096], *text;
	json_t *doc, *v;
	const char *k;

	snprintf(path, sizeof(path), "%s/" STATUS_FILE, st->dir);
	text = file_read_all(path, 4 << 20, NULL);
	doc = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return;
	}
	json_object_foreach(doc, k, v) {
		const char *s = json_string_value(v);
		if (s && (!strcmp(s, "passing") || !strcmp(s, "warning") || !strcmp(s, "critical")))
			json_object_set(st->restored, k, v);
	}
	json_decref(doc);
}

/* Under st->mu, after a status (not output) changed. */
static void save_statuses(struct agent_state *st)
{
	json_t *doc = json_object(), *v;
	const char *k;
	char path[4096], *text;

	if (st->dir == NULL)
		goto out;
	json_object_foreach(st->status, k, v)
		json_object_set(doc, k, json_object_get(v, "Status"));
	snprintf(path, sizeof(path), "%s/" STATUS_FILE, st->dir);
	text = json_dumps(doc, JSON_COMPACT);
	if (text == NULL || file_write_all(path, text, strlen(text), 0600) != 0)
		log_warnx("agent", "%s: cannot save the checks' statuses", path);
	free(text);
out:
	json_decref(doc);
}

const char *state_restored_status(struct agent_state *st, const char *id)
{
	const char *s;

	pthread_mutex_lock(&st->mu);
	s = json_string_value(json_object_get(st->restored, id));
	pthread_mutex_unlock(&st->mu);
	return s;   /* restored is never modified after state_new */
}

int state_new(struct agent_state **out, const char *data_dir, const char *node_address,
	      char **err)
{
	struct agent_state *st = calloc(1, sizeof(*st));
	char path[4096];

	if (st == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->services = json_object();
	st->node_checks = json_object();
	st->extra_checks = json_object();
	st->status = json_object();
	st->restored = json_object();
	st->node_address = strdup(node_address ? node_address : "127.0.0.1");
	/* The agent's own liveness check: passing while the agent runs; the
	 * server turns it critical when the agent's heartbeats stop
	 * (server/liveness.h). Not run by the check runner. */
	json_object_set_new(st->node_checks, AGENT_ALIVE_CHECK,
			    json_pack("{ss ss ss ss ss ss ss}", "CheckID", AGENT_ALIVE_CHECK, "Name",
				      "weft-agent alive", "Notes",
				      "critical when the server has not heard from this node's weft-agent",
				      "ServiceID", "", "Type", "weft-agent", "Status", "passing",
				      "Source", "agent"));
	if (data_dir) {
		snprintf(path, sizeof(path), "%s/services", data_dir);
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			state_free(st);
			return weft_errf(err, WEFT_EIO, "%s: cannot create: %s", path, strerror(errno));
		}
		st->dir = strdup(path);
		load_persisted(st);
		load_statuses(st);
	}
	*out = st;
	return WEFT_OK;
}

void state_free(struct agent_state *st)
{
	if (st == NULL)
		return;
	json_decref(st->services);
	json_decref(st->node_checks);
	json_decref(st->extra_checks);
	json_decref(st->status);
	json_decref(st->restored);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cond);
	free(st->dir);
	free(st->node_address);
	free(st);
}

static void bump(struct agent_state *st, int defs)
{
	if (defs)
		st->gen.defs++;
	else
		st->gen.status++;
	pthread_cond_broadcast(&st->cond);
}

/* Statuses of checks that no longer exist are dropped; new ones start at
 * their definition's Status. */
static void add_status(struct agent_state *st, json_t *check)
{
	const char *id = sget(check, "CheckID");

	const char *restored = json_string_value(json_object_get(st->restored, id));

	if (json_object_get(st->status, id) == NULL)
		json_object_set_new(st->status, id, json_pack("{ss ss}", "Status",
							      restored ? restored : sget(check, "Status"),
							      "Output", ""));
}

static void prune_status(struct agent_state *st)
{
	json_t *keep = json_object(), *s, *c;
	const char *id, *k;
	size_t i;

	json_object_foreach(st->services, id, s)
		json_array_foreach(json_object_get(s, "Checks"), i, c)
			json_object_set_new(keep, sget(c, "CheckID"), json_true());
	json_object_foreach(st->node_checks, k, c)
		json_object_set_new(keep, k, json_true());
	json_object_foreach(st->extra_checks, k, c)
		json_object_set_new(keep, k, json_true());
	{
		void *tmp;
		json_object_foreach_safe(st->status, tmp, k, c) {
			if (json_object_get(keep, k) == NULL)
				json_object_del(st->status, k);
		}
	}
	json_decref(keep);
	json_object_foreach(st->services, id, s)
		json_array_foreach(json_object_get(s, "Checks"), i, c)
			add_status(st, c);
	json_object_foreach(st->node_checks, k, c)
		add_status(st, c);
	json_object_foreach(st->extra_checks, k, c)
		add_status(st, c);
}

/* A check ID used by two different owners would make results ambiguous. */
static int check_ids_unique(struct agent_state *st, char **err)
{
	json_t *seen = json_object(), *s, *c;
	const char *id, *k;
	size_t i;
	int rc = WEFT_OK;

	json_object_foreach(st->services, id, s)
		json_array_foreach(json_object_get(s, "Checks"), i, c) {
			if (json_object_get(seen, sget(c, "CheckID"))) {
				rc = weft_errf(err, WEFT_EINVAL, "check ID \"%s\" is used twice (service %s)",
					       sget(c, "CheckID"), id);
				goto out;
			}
			json_object_set_new(seen, sget(c, "CheckID"), json_true());
		}
	json_object_foreach(st->node_checks, k, c) {
		if (json_object_get(seen, k)) {
			rc = weft_errf(err, WEFT_EINVAL, "check ID \"%s\" is used twice", k);
			goto out;
		}
		json_object_set_new(seen, k, json_true());
	}
out:
	json_decref(seen);
	return rc;
}

static json_t *services_array(struct agent_state *st, const char *source_not)
{
	json_t *arr = json_array(), *s;
	const char *id;

	json_object_foreach(st->services, id, s) {
		if (source_not == NULL || strcmp(sget(s, "Source"), source_not) != 0)
			json_array_append(arr, s);
	}
	return arr;
}

int state_set_file_defs(struct agent_state *st, json_t *services, json_t *checks, char **err)
{
	json_t *old_services, *old_checks, *keep, *s, *c;
	const char *id;
	size_t i;
	void *tmp;
	int rc;

	pthread_mutex_lock(&st->mu);
	old_services = json_deep_copy(st->services);
	old_checks = json_deep_copy(st->node_checks);
	/* sidecar ports: kept for the same IDs, and API services' stay taken */
	keep = services_array(st, NULL);
	rc = svcdef_assign_ports(services, keep, st->node_address, err);
	json_decref(keep);
	if (rc != WEFT_OK)
		goto fail;
	json_object_foreach_safe(st->services, tmp, id, s) {
		if (strcmp(sget(s, "Source"), "file") == 0)
			json_object_del(st->services, id);
	}
	json_array_foreach(services, i, s) {
		json_t *copy = json_deep_copy(s);
		json_object_set_new(copy, "Source", json_string("file"));
		if (json_object_get(st->services, sget(s, "ID")))
			persist(st, "service", sget(s, "ID"), NULL, NULL);
		json_object_set_new(st->services, sget(s, "ID"), copy);
	}
	json_object_foreach_safe(st->node_checks, tmp, id, c) {
		if (strcmp(sget(c, "Source"), "agent") != 0)
			json_object_del(st->node_checks, id);
	}
	json_array_foreach(checks, i, c) {
		json_t *copy = json_deep_copy(c);
		json_object_set_new(copy, "Source", json_string("file"));
		json_object_set_new(st->node_checks, sget(c, "CheckID"), copy);
	}
	if ((rc = check_ids_unique(st, err)) != WEFT_OK)
		goto fail;
	prune_status(st);
	if (!json_equal(old_services, st->services) || !json_equal(old_checks, st->node_checks))
		bump(st, 1);
	pthread_mutex_unlock(&st->mu);
	json_decref(old_services);
	json_decref(old_checks);
	return WEFT_OK;
fail:
	json_decref(st->services);
	json_decref(st->node_checks);
	st->services = old_services;
	st->node_checks = old_checks;
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int state_add_services(struct agent_state *st, json_t *services, int replace_checks, char **err)
{
	json_t *old = NULL, *keep, *s, *persisted = NULL;
	const char *id0;
	size_t i;
	int rc;

	(void)replace_checks;
	if (json_array_size(services) == 0)
		return weft_errf(err, WEFT_EINVAL, "no service to register");
	id0 = sget(json_array_get(services, 0), "ID");
	if (id0[0] == '.')
		return weft_errf(err, WEFT_EINVAL, "ID: \"%s\" must not start with '.'", id0);
	pthread_mutex_lock(&st->mu);
	old = json_deep_copy(st->services);
	keep = services_array(st, NULL);
	rc = svcdef_assign_ports(services, keep, st->node_address, err);
	json_decref(keep);
	if (rc != WEFT_OK)
		goto out;
	json_array_foreach(services, i, s) {
		json_t *prev = json_object_get(st->services, sget(s, "ID"));
		if (prev && strcmp(sget(prev, "Source"), "file") == 0) {
			rc = weft_errf(err, WEFT_EEXIST,
				       "ID: \"%s\" is defined in a file of the config directory; change it there",
				       sget(s, "ID"));
			goto out;
		}
	}
	/* A service re-registered without its sidecar loses the old sidecar. */
	{
		void *tmp;
		const char *k;
		json_object_foreach_safe(st->services, tmp, k, s) {
			if (strcmp(sget(s, "SidecarFor"), id0) == 0)
				json_object_del(st->services, k);
		}
	}
	json_array_foreach(services, i, s) {
		json_t *copy = json_deep_copy(s);
		json_object_set_new(copy, "Source", json_string("api"));
		json_object_set_new(st->services, sget(s, "ID"), copy);
	}
	if (replace_checks) {
		void *tmp;
		const char *k;
		json_t *c;
		json_object_foreach_safe(st->extra_checks, tmp, k, c) {
			if (strcmp(sget(c, "ServiceID"), id0) == 0) {
				json_object_del(st->extra_checks, k);
				persist(st, "check", k, NULL, NULL);
			}
		}
	}
	if ((rc = check_ids_unique(st, err)) != WEFT_OK)
		goto out;
	persisted = json_deep_copy(services);
	if ((rc = persist(st, "service", id0, persisted, err)) != WEFT_OK)
		goto out;
	prune_status(st);
	if (!json_equal(old, st->services))
		bump(st, 1);
out:
	if (rc != WEFT_OK) {
		json_decref(st->services);
		st->services = old;
		old = NULL;
	}
	pthread_mutex_unlock(&st->mu);
	json_decref(old);
	json_decref(persisted);
	return rc;
}

int state_remove_service(struct agent_state *st, const char *id, char **err)
{
	json_t *s, *c;
	const char *k;
	void *tmp;
	int rc = WEFT_OK;

	pthread_mutex_lock(&st->mu);
	s = json_object_get(st->services, id);
	if (s == NULL) {
		rc = weft_errf(err, WEFT_ENOENT, "no service with ID \"%s\" on this agent", id);
		goto out;
	}
	if (sget(s, "SidecarFor")[0] == '\0')
		json_object_foreach_safe(st->services, tmp, k, c) {
			if (strcmp(sget(c, "SidecarFor"), id) == 0)
				json_object_del(st->services, k);
		}
	json_object_del(st->services, id);
	json_object_foreach_safe(st->extra_checks, tmp, k, c) {
		if (strcmp(sget(c, "ServiceID"), id) == 0) {
			json_object_del(st->extra_checks, k);
			persist(st, "check", k, NULL, NULL);
		}
	}
	persist(st, "service", id, NULL, NULL);
	prune_status(st);
	bump(st, 1);
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int state_add_check(struct agent_state *st, json_t *check, char **err)
{
	const char *id = sget(check, "CheckID"), *sid = sget(check, "ServiceID");
	json_t *copy, *s, *c;
	const char *k;
	size_t i;
	int rc = WEFT_OK;

	if (id[0] == '.')
		return weft_errf(err, WEFT_EINVAL, "ID: \"%s\" must not start with '.'", id);
	pthread_mutex_lock(&st->mu);
	if (sid[0] && json_object_get(st->services, sid) == NULL) {
		rc = weft_errf(err, WEFT_ENOENT, "ServiceID: no service \"%s\" on this agent", sid);
		goto out;
	}
	json_object_foreach(st->services, k, s)
		json_array_foreach(json_object_get(s, "Checks"), i, c)
			if (strcmp(sget(c, "CheckID"), id) == 0) {
				rc = weft_errf(err, WEFT_EEXIST,
					       "ID: check \"%s\" belongs to the definition of service %s", id, k);
				goto out;
			}
	if (json_object_get(st->node_checks, id)) {
		rc = weft_errf(err, WEFT_EEXIST, "ID: check \"%s\" is defined in a file of the config directory", id);
		goto out;
	}
	copy = json_deep_copy(check);
	json_object_set_new(copy, "Source", json_string("api"));
	if ((rc = persist(st, "check", id, copy, err)) != WEFT_OK) {
		json_decref(copy);
		goto out;
	}
	if (!json_equal(json_object_get(st->extra_checks, id), copy)) {
		json_object_set_new(st->extra_checks, id, copy);
		json_object_del(st->status, id);
		prune_status(st);
		bump(st, 1);
	} else {
		json_decref(copy);
	}
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int state_remove_check(struct agent_state *st, const char *id, char **err)
{
	int rc = WEFT_OK;

	pthread_mutex_lock(&st->mu);
	if (json_object_get(st->extra_checks, id) == NULL) {
		rc = weft_errf(err, WEFT_ENOENT,
			       json_object_get(st->status, id)
				       ? "check \"%s\" belongs to a service definition: deregister the service"
				       : "no check with ID \"%s\" on this agent",
			       id);
		goto out;
	}
	json_object_del(st->extra_checks, id);
	persist(st, "check", id, NULL, NULL);
	prune_status(st);
	bump(st, 1);
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int state_check_result(struct agent_state *st, const char *id, const char *status,
		       const char *output)
{
	json_t *cur;
	int rc = 0;

	pthread_mutex_lock(&st->mu);
	cur = json_object_get(st->status, id);
	if (cur == NULL) {
		rc = WEFT_ENOENT;
		goto out;
	}
	if (strcmp(sget(cur, "Status"), status) != 0 || strcmp(sget(cur, "Output"), output ? output : "") != 0) {
		int moved = strcmp(sget(cur, "Status"), status) != 0;
		json_object_set_new(cur, "Status", json_string(status));
		json_object_set_new(cur, "Output", json_string(output ? output : ""));
		if (moved)
			save_statuses(st);
		bump(st, 0);
		rc = 1;
	}
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* ---- views ---- */

static int severity(const char *s)
{
	return strcmp(s, "passing") == 0 ? 0 : strcmp(s, "warning") == 0 ? 1 : 2;
}

/* The checks of service id with their current status (alias ones
 * resolved), a new array. */
static json_t *checks_of(struct agent_state *st, json_t *svc, const char *id, int depth);

static void fill_status(struct agent_state *st, json_t *c, int depth)
{
	json_t *cur = json_object_get(st->status, sget(c, "CheckID"));

	if (strcmp(sget(c, "Type"), "alias") == 0 && depth < 2) {
		const char *target = sget(c, "AliasService");
		json_t *svc = json_object_get(st->services, target), *tc, *list;
		const char *worst = "passing", *why = NULL;
		char out[512];
		size_t i;
		if (svc == NULL) {
			json_object_set_new(c, "Status", json_string("critical"));
			snprintf(out, sizeof(out), "Service \"%s\" is not registered on this agent", target);
			json_object_set_new(c, "Output", json_string(out));
			return;
		}
		list = checks_of(st, svc, target, depth + 1);
		json_array_foreach(list, i, tc) {
			if (severity(sget(tc, "Status")) > severity(worst)) {
				worst = sget(tc, "Status");
				why = sget(tc, "CheckID");
			}
		}
		if (why)
			snprintf(out, sizeof(out), "Aliased check \"%s\" is %s", why, worst);
		else
			snprintf(out, sizeof(out), "All checks passing");
		json_object_set_new(c, "Status", json_string(worst));
		json_object_set_new(c, "Output", json_string(out));
		json_decref(list);
		return;
	}
	if (cur) {
		json_object_set(c, "Status", json_object_get(cur, "Status"));
		json_object_set(c, "Output", json_object_get(cur, "Output"));
	}
}

static json_t *checks_of(struct agent_state *st, json_t *svc, const char *id, int depth)
{
	json_t *list = json_deep_copy(json_object_get(svc, "Checks")), *c;
	const char *k;
	size_t i;

	if (list == NULL)
		list = json_array();
	json_object_foreach(st->extra_checks, k, c) {
		if (strcmp(sget(c, "ServiceID"), id) == 0)
			json_array_append_new(list, json_deep_copy(c));
	}
	json_array_foreach(list, i, c)
		fill_status(st, c, depth);
	return list;
}

static json_t *service_view(struct agent_state *st, json_t *s, const char *id)
{
	json_t *copy = json_deep_copy(s);

	json_object_set_new(copy, "Checks", checks_of(st, s, id, 0));
	return copy;
}

json_t *state_services(struct agent_state *st)
{
	json_t *out = json_array(), *s;
	const char *id;

	pthread_mutex_lock(&st->mu);
	json_object_foreach(st->services, id, s)
		json_array_append_new(out, service_view(st, s, id));
	pthread_mutex_unlock(&st->mu);
	return out;
}

json_t *state_service(struct agent_state *st, const char *id)
{
	json_t *s, *out = NULL;

	pthread_mutex_lock(&st->mu);
	s = json_object_get(st->services, id);
	if (s)
		out = service_view(st, s, id);
	pthread_mutex_unlock(&st->mu);
	return out;
}

json_t *state_node_checks(struct agent_state *st)
{
	json_t *out = json_array(), *c, *copy;
	const char *id;

	pthread_mutex_lock(&st->mu);
	json_object_foreach(st->node_checks, id, c) {
		copy = json_deep_copy(c);
		fill_status(st, copy, 0);
		json_array_append_new(out, copy);
	}
	json_object_foreach(st->extra_checks, id, c) {
		if (sget(c, "ServiceID")[0])
			continue;
		copy = json_deep_copy(c);
		fill_status(st, copy, 0);
		json_array_append_new(out, copy);
	}
	pthread_mutex_unlock(&st->mu);
	return out;
}

json_t *state_checks(struct agent_state *st)
{
	json_t *out = json_object(), *s, *c, *list;
	const char *id;
	size_t i;

	list = state_services(st);
	json_array_foreach(list, i, s) {
		size_t j;
		json_array_foreach(json_object_get(s, "Checks"), j, c) {
			json_object_set_new(c, "ServiceName", json_string(sget(s, "Service")));
			json_object_set(out, sget(c, "CheckID"), c);
		}
	}
	json_decref(list);
	list = state_node_checks(st);
	json_array_foreach(list, i, c) {
		json_object_set_new(c, "ServiceName", json_string(""));
		json_object_set(out, sget(c, "CheckID"), c);
	}
	json_decref(list);
	(void)id;
	return out;
}

json_t *state_check(struct agent_state *st, const char *id)
{
	json_t *all = state_checks(st), *c = json_incref(json_object_get(all, id));

	json_decref(all);
	return c;
}

struct state_gen state_generation(struct agent_state *st)
{
	struct state_gen g;

	pthread_mutex_lock(&st->mu);
	g = st->gen;
	pthread_mutex_unlock(&st->mu);
	return g;
}

struct state_gen state_wait(struct agent_state *st, struct state_gen gen, int64_t timeout_ms)
{
	struct timespec ts;
	struct state_gen g;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&st->mu);
	while (!st->woken && st->gen.defs == gen.defs && st->gen.status == gen.status) {
		if (pthread_cond_timedwait(&st->cond, &st->mu, &ts) == ETIMEDOUT)
			break;
	}
	g = st->gen;
	pthread_mutex_unlock(&st->mu);
	return g;
}

void state_wake(struct agent_state *st)
{
	pthread_mutex_lock(&st->mu);
	st->woken = 1;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->mu);
}
