#include "telemetry.h"
#include "duration.h"
#include "err.h"
#include "httpc.h"
#include "log.h"
#include "proxies.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SNAPSHOT_MAX (16u << 20)
#define SCRAPE_TIMEOUT_MS 2000L

/* What the agent remembers of one proxy process. */
struct pstate {
	char *id;
	int pid;
	int fresh;                /* not scraped yet: counts from its start */
	int have_prev;            /* prev is the last interval's scrape */
	struct prom_stats prev;
	int64_t prev_ms;          /* monotonic time of prev */
	uint64_t snap_index;      /* of the snapshot the map was read from */
	char *mesh;
	json_t *upstreams;        /* Name -> Service */
	int seen;                 /* in this round's status */
};

struct tele {
	struct httpc_opts server;
	char *address, *token, *ca_file, *node;
	struct proxies *proxies;
	int64_t interval_ms;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;
	/* the thread's own */
	struct pstate *ps;
	size_t nps;
	int server_failing;
};

/* ---- the body ---- */

static int counts_below(const struct prom_listener *cur, const struct prom_listener *prev)
{
	if (prev == NULL)
		return 0;
	for (int c = 0; c < PROM_NCLASS; c++)
		if (cur->responses[c] < prev->responses[c])
			return 1;
	if (cur->nbuckets != prev->nbuckets)
		return 1;
	for (size_t i = 0; i < cur->nbuckets; i++) {
		if (cur->cum[i] < prev->cum[i] || cur->le[i] != prev->le[i])
			return 1;
		/* each bucket's own count goes down neither */
		if (i > 0 && cur->cum[i] - cur->cum[i - 1] < prev->cum[i] - prev->cum[i - 1])
			return 1;
	}
	return 0;
}

/* 1 when cur is not a continuation of prev: the proxy started again. */
static int restarted(const struct prom_stats *prev, const struct prom_stats *cur)
{
	if (cur->denials < prev->denials)
		return 1;
	for (size_t i = 0; i < cur->n; i++)
		if (counts_below(&cur->l[i], prom_find(prev, cur->l[i].name)))
			return 1;
	return 0;
}

/* The server takes counts up to 10^12 an interval (far above any real one). */
#define COUNT_MAX 1000000000000ULL

static json_t *count(uint64_t v)
{
	return json_integer((json_int_t)(v > COUNT_MAX ? COUNT_MAX : v));
}

static json_t *counts_json(const struct prom_listener *cur, const struct prom_listener *prev)
{
	json_t *o = json_object(), *resp = json_object(), *b = json_array();
	uint64_t total = 0;

	for (int c = 0; c < PROM_NCLASS; c++) {
		uint64_t d = cur->responses[c] - (prev ? prev->responses[c] : 0);

		total = total > UINT64_MAX - d ? UINT64_MAX : total + d;
		if (d)
			json_object_set_new(resp, prom_class_names[c], count(d));
	}
	for (size_t i = 0; i < cur->nbuckets; i++) {
		uint64_t d = cur->cum[i] - (prev ? prev->cum[i] : 0);

		json_array_append_new(b, json_pack("[o, I]", isinf(cur->le[i]) ? json_string("+Inf")
						   : json_real(cur->le[i]),
						   (json_int_t)(d > COUNT_MAX ? COUNT_MAX : d)));
	}
	json_object_set_new(o, "Requests", count(total));
	json_object_set_new(o, "Responses", resp);
	/* an idle listener's empty histogram is left out: reports stay small */
	if (total > 0)
		json_object_set_new(o, "LatencyBuckets", b);
	else
		json_decref(b);
	return o;
}

json_t *tele_proxy_json(const char *proxy_id, const char *service, const char *mesh,
			const struct prom_stats *prev, const struct prom_stats *cur,
			json_t *upstreams)
{
	json_t *o = json_object(), *ups = json_array();
	const struct prom_listener *in;

	if (prev && restarted(prev, cur))
		prev = NULL;
	json_object_set_new(o, "ProxyID", json_string(proxy_id));
	json_object_set_new(o, "Service", json_string(service));
	json_object_set_new(o, "Mesh", json_string(mesh ? mesh : "default"));
	if ((in = prom_find(cur, "inbound")) != NULL) {
		json_t *c = counts_json(in, prev ? prom_find(prev, "inbound") : NULL);

		json_object_set_new(c, "Denied", count(cur->denials - (prev ? prev->denials : 0)));
		json_object_set_new(o, "Inbound", c);
	}
	for (size_t i = 0; i < cur->n; i++) {
		const struct prom_listener *l = &cur->l[i];
		const char *name, *dest;
		json_t *c;

		if (strncmp(l->name, "outbound:", 9) != 0 || l->name[9] == '\0')
			continue;
		name = l->name + 9;
		dest = json_string_value(json_object_get(upstreams, name));
		if (!name_valid(dest ? dest : name, 128))
			continue;   /* the server would refuse the whole sample */
		c = counts_json(l, prev ? prom_find(prev, l->name) : NULL);
		json_object_set_new(c, "Service", json_string(dest ? dest : name));
		json_array_append_new(ups, c);
	}
	json_object_set_new(o, "Upstreams", ups);
	return o;
}

/* ---- the thread ---- */

static int stopping(struct tele *t)
{
	int v;

	pthread_mutex_lock(&t->mu);
	v = t->stop;
	pthread_mutex_unlock(&t->mu);
	return v;
}

static int abort_fn(void *arg)
{
	return stopping(arg);
}

static void pstate_clear(struct pstate *p)
{
	free(p->id);
	free(p->mesh);
	prom_stats_clear(&p->prev);
	json_decref(p->upstreams);
	memset(p, 0, sizeof(*p));
}

static struct pstate *pstate_get(struct tele *t, const char *id)
{
	struct pstate *n;

	for (size_t i = 0; i < t->nps; i++)
		if (strcmp(t->ps[i].id, id) == 0)
			return &t->ps[i];
	if ((n = realloc(t->ps, (t->nps + 1) * sizeof(*n))) == NULL)
		return NULL;
	t->ps = n;
	n = &t->ps[t->nps];
	memset(n, 0, sizeof(*n));
	if ((n->id = strdup(id)) == NULL)
		return NULL;
	t->nps++;
	return n;
}

/* The mesh and the upstreams' destinations, from the snapshot file the
 * proxy was given (its TLS paths and intentions are not looked at). */
static void read_snapshot(struct pstate *p, const char *path, uint64_t index)
{
	char *text = path ? file_read_all(path, SNAPSHOT_MAX, NULL) : NULL;
	json_t *doc = text ? json_loads(text, 0, NULL) : NULL, *u;
	const char *mesh;
	size_t i;

	free(text);
	if (doc == NULL)
		return;   /* not yet written: looked at again next time */
	free(p->mesh);
	json_decref(p->upstreams);
	mesh = json_string_value(json_object_get(json_object_get(doc, "Proxy"), "Mesh"));
	/* the server's rule for mesh names: lower case, digits, '-' */
	if (mesh == NULL || mesh[0] == '\0' || strlen(mesh) > 63 || strspn(mesh,
	    "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(mesh))
		mesh = "default";
	p->mesh = strdup(mesh);
	p->upstreams = json_object();
	json_array_foreach(json_object_get(doc, "Upstreams"), i, u) {
		const char *svc = json_string_value(json_object_get(u, "Service"));
		const char *name = json_string_value(json_object_get(u, "Name"));

		if (svc)
			json_object_set_new(p->upstreams, name ? name : svc, json_string(svc));
	}
	p->snap_index = index;
	json_decref(doc);
}

static int scrape(struct tele *t, int port, struct prom_stats *out, char **err)
{
	struct httpc_opts o = { 0 };
	struct httpc_resp resp = { 0 };
	struct httpc *c = NULL;
	char addr[64];
	int rc;

	snprintf(addr, sizeof(addr), "http://127.0.0.1:%d", port);
	o.address = addr;
	o.connect_timeout_ms = SCRAPE_TIMEOUT_MS;
	o.timeout_ms = SCRAPE_TIMEOUT_MS;
	o.max_body = PROM_MAX_BYTES;
	o.abort_fn = abort_fn;
	o.abort_arg = t;
	if ((rc = httpc_new(&c, &o, err)) != WEFT_OK)
		return rc;
	rc = httpc_request(c, "GET", "/stats", NULL, 0, NULL, 0, &resp, err);
	if (rc == WEFT_OK && resp.status != 200)
		rc = weft_errf(err, WEFT_EIO, "%s/stats answered %ld", addr, resp.status);
	if (rc == WEFT_OK)
		rc = prom_parse(resp.body ? resp.body : "", resp.len, out, err);
	httpc_resp_free(&resp);
	httpc_free(c);
	return rc;
}

/* One round: the body to PUT (NULL when there is nothing to send). */
static json_t *round_body(struct tele *t)
{
	json_t *status = NULL, *px, *proxies = json_array(), *body = NULL;
	int64_t now = now_mono_ms();
	size_t i;

	if (proxies_status_json(t->proxies, &status) != WEFT_OK)
		goto out;
	for (i = 0; i < t->nps; i++)
		t->ps[i].seen = 0;
	json_array_foreach(status, i, px) {
		const char *id = json_string_value(json_object_get(px, "ID"));
		const char *svc = json_string_value(json_object_get(px, "Service"));
		int pid = (int)json_integer_value(json_object_get(px, "Pid"));
		int port = (int)json_integer_value(json_object_get(px, "AdminPort"));
		uint64_t sidx = (uint64_t)json_integer_value(json_object_get(px, "SnapshotIndex"));
		struct prom_stats cur = { 0 };   /* cleared also when the scrape fails early */
		struct pstate *p;
		char *err = NULL;

		if (id == NULL || svc == NULL || pid <= 0 || port <= 0 || stopping(t))
			continue;
		if ((p = pstate_get(t, id)) == NULL)
			continue;
		p->seen = 1;
		if (p->pid != pid) {   /* a new process: its first scrape counts from its start */
			p->pid = pid;
			p->have_prev = 0;
			p->fresh = 1;
		}
		if (p->upstreams == NULL || p->snap_index != sidx)
			read_snapshot(p, json_string_value(json_object_get(px, "Snapshot")), sidx);
		if (scrape(t, port, &cur, &err) != WEFT_OK) {
			log_debug("telemetry", "%s: /stats on 127.0.0.1:%d: %s", id, port, err);
			free(err);
			prom_stats_clear(&cur);
			/* the next scrape only sets a new baseline: never a
			 * delta over two intervals sent as one */
			p->have_prev = 0;
			continue;
		}
		if (p->fresh)
			json_array_append_new(proxies, tele_proxy_json(id, svc, p->mesh, NULL, &cur,
								       p->upstreams));
		else if (p->have_prev && now - p->prev_ms <= t->interval_ms * 3 / 2)
			json_array_append_new(proxies, tele_proxy_json(id, svc, p->mesh, &p->prev, &cur,
								       p->upstreams));
		prom_stats_clear(&p->prev);
		p->prev = cur;
		p->have_prev = 1;
		p->fresh = 0;
		p->prev_ms = now;
	}
	/* forget the proxies that went away */
	for (i = 0; i < t->nps; ) {
		if (t->ps[i].seen) {
			i++;
			continue;
		}
		pstate_clear(&t->ps[i]);
		t->ps[i] = t->ps[--t->nps];
	}
	if (json_array_size(proxies) > 0) {
		char iv[32];

		duration_format(t->interval_ms, iv, sizeof(iv));   /* "10s" */
		body = json_pack("{s:s, s:O}", "Interval", iv, "Proxies", proxies);
	}
out:
	json_decref(status);
	json_decref(proxies);
	return body;
}

static void send_body(struct tele *t, struct httpc *c, json_t *body)
{
	char *path = NULL, *node = httpc_escape(t->node, 0), *err = NULL;
	int rc;

	if (node == NULL || asprintf(&path, "/v1/weft/telemetry/node/%s", node) < 0) {
		free(node);
		return;
	}
	rc = httpc_json(c, "PUT", path, body, 0, NULL, NULL, &err);
	if (rc != WEFT_OK && rc != WEFT_ESHUTDOWN && !t->server_failing) {
		log_warnx("telemetry", "samples dropped until the server takes them again: %s", err);
		t->server_failing = 1;
	} else if (rc == WEFT_OK && t->server_failing) {
		log_info("telemetry", "the server takes the samples again");
		t->server_failing = 0;
	}
	free(err);
	free(path);
	free(node);
}

static void *tele_main(void *arg)
{
	struct tele *t = arg;
	struct httpc *c = NULL;
	char *err = NULL;

	if (httpc_new(&c, &t->server, &err) != WEFT_OK) {
		log_warnx("telemetry", "no telemetry: %s", err);
		free(err);
		return NULL;
	}
	for (;;) {
		/* the next multiple of the interval on the wall clock */
		int64_t wait = t->interval_ms - now_wall_ms() % t->interval_ms;
		int64_t dl = now_mono_ms() + wait;
		struct timespec ts = { .tv_sec = dl / 1000, .tv_nsec = (dl % 1000) * 1000000L };
		json_t *body;

		pthread_mutex_lock(&t->mu);
		while (!t->stop && now_mono_ms() < dl)
			pthread_cond_timedwait(&t->cond, &t->mu, &ts);
		if (t->stop) {
			pthread_mutex_unlock(&t->mu);
			break;
		}
		pthread_mutex_unlock(&t->mu);
		if ((body = round_body(t)) != NULL) {
			send_body(t, c, body);
			json_decref(body);
		}
	}
	httpc_free(c);
	return NULL;
}

int tele_start(struct tele **out, const struct tele_opts *o, char **err)
{
	struct tele *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;
	int rc = WEFT_OK;

	*out = NULL;
	if (t == NULL)
		return weft_errf(err, WEFT_ENOMEM, "telemetry: out of memory");
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	t->server = o->server;
	t->address = o->server.address ? strdup(o->server.address) : NULL;
	t->token = o->server.token ? strdup(o->server.token) : NULL;
	t->ca_file = o->server.ca_file ? strdup(o->server.ca_file) : NULL;
	t->node = strdup(o->node ? o->node : "");
	t->server.address = t->address;
	t->server.token = t->token;
	t->server.ca_file = t->ca_file;
	t->server.timeout_ms = 5000;
	t->server.abort_fn = abort_fn;
	t->server.abort_arg = t;
	t->proxies = o->proxies;
	t->interval_ms = o->interval_ms > 0 ? o->interval_ms : 10000;
	if (t->address == NULL || t->node == NULL || t->proxies == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "telemetry: a server, a node and the proxies are needed");
		goto fail;
	}
	if (pthread_create(&t->thread, NULL, tele_main, t) != 0) {
		rc = weft_errf(err, WEFT_EIO, "telemetry: cannot start its thread");
		goto fail;
	}
	t->started = 1;
	*out = t;
	return WEFT_OK;
fail:
	tele_stop(t);
	return rc;
}

void tele_stop(struct tele *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->mu);
	if (t->started)
		pthread_join(t->thread, NULL);
	for (size_t i = 0; i < t->nps; i++)
		pstate_clear(&t->ps[i]);
	free(t->ps);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->mu);
	free(t->address);
	free(t->token);
	free(t->ca_file);
	free(t->node);
	free(t);
}
