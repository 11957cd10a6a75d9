#include "telemetry.h"
#include "duration.h"
#include "err.h"
#include "hub.h"
#include "jsonx.h"
#include "mesh.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double telemetry_bucket_le[TELEMETRY_NBUCKETS - 1] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const class_names[TM_NCLASS] = { "1xx", "2xx", "3xx", "4xx", "5xx", "other" };

/* A count in a sample: far above any real interval's, low enough that sums
 * of many samples cannot wrap (they saturate anyway). */
#define COUNT_MAX 1000000000000LL
#define NAME_MAX_LEN 128
#define PROXY_ID_MAX 256
#define EDGE_SLOT_MS 10000LL
#define EDGE_SLOTS ((size_t)(TELEMETRY_EDGE_WINDOW_MS / EDGE_SLOT_MS) + 1)

/* ---- the store ---- */

struct point {
	int64_t slot;          /* start_ms / width_ms; -1: empty */
	uint64_t requests, responses, errors, denied;
	uint64_t buckets[TELEMETRY_NBUCKETS];
};

struct svc {
	struct svc *next_in_bucket;
	char *key;             /* "mesh/service" */
	char *mesh, *name;
	int64_t width_ms;
	size_t nslots;
	struct point *ring;
	int64_t updated_ms;
};

struct eslot {
	int64_t slot;          /* start_ms / EDGE_SLOT_MS; -1: empty */
	uint64_t requests, responses, errors;
};

struct edge {
	struct edge *next_in_bucket;
	char *key;             /* "mesh/source/destination" */
	char *mesh, *src, *dst;
	struct eslot ring[EDGE_SLOTS];
	int64_t first_ms;      /* the start of the first interval reported */
	int64_t seen_ms;       /* the last sample with requests */
	int64_t updated_ms;
};

#define NBUCKETS 4096

struct telemetry {
	pthread_mutex_t lock;
	struct hub *hub;
	uint64_t counter;      /* X-Consul-Index of telemetry reads */
	size_t max_services, max_edges;
	struct svc *svcs[NBUCKETS];
	struct edge *edges[NBUCKETS];
	size_t nsvcs, nedges;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static char *join(const char *a, const char *b, const char *c)
{
	char *s = NULL;

	if (asprintf(&s, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "") < 0)
		return NULL;
	return s;
}

int telemetry_new(struct telemetry **out, const struct telemetry_opts *o, char **err)
{
	struct telemetry *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL)
		return weft_errf(err, WEFT_ENOMEM, "telemetry: out of memory");
	/* Index 1 for what never had a sample: Consul clients take 0 as "none". */
	t->counter = 1;
	if ((t->hub = hub_new(t->counter)) == NULL) {
		free(t);
		return weft_errf(err, WEFT_ENOMEM, "telemetry: cannot start its watch hub");
	}
	pthread_mutex_init(&t->lock, NULL);
	t->max_services = o && o->max_services ? o->max_services : 1024;
	t->max_edges = o && o->max_edges ? o->max_edges : 4096;
	*out = t;
	return WEFT_OK;
}

static void svc_free(struct svc *s)
{
	free(s->key);
	free(s->mesh);
	free(s->name);
	free(s->ring);
	free(s);
}

static void edge_free(struct edge *e)
{
	free(e->key);
	free(e->mesh);
	free(e->src);
	free(e->dst);
	free(e);
}

void telemetry_wake_all(struct telemetry *t)
{
	if (t)
		hub_wake_all(t->hub);
}

void telemetry_free(struct telemetry *t)
{
	if (t == NULL)
		return;
	hub_free(t->hub);
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct svc *s, *sn;
		struct edge *e, *en;

		for (s = t->svcs[i]; s; s = sn) {
			sn = s->next_in_bucket;
			svc_free(s);
		}
		for (e = t->edges[i]; e; e = en) {
			en = e->next_in_bucket;
			edge_free(e);
		}
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct hub *telemetry_hub(struct telemetry *t)
{
	return t->hub;
}

size_t telemetry_service_count(struct telemetry *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nsvcs;
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t telemetry_edge_count(struct telemetry *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nedges;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* ---- lookups (lock held) ---- */

static struct svc *svc_find(struct telemetry *t, const char *key)
{
	struct svc *s;

	for (s = t->svcs[hash_str(key) % NBUCKETS]; s; s = s->next_in_bucket)
		if (strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

static struct edge *edge_find(struct telemetry *t, const char *key)
{
	struct edge *e;

	for (e = t->edges[hash_str(key) % NBUCKETS]; e; e = e->next_in_bucket)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Drops the least recently updated service. */
static void svc_evict(struct telemetry *t)
{
	struct svc **victim = NULL;

	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct svc **pp = &t->svcs[i]; *pp; pp = &(*pp)->next_in_bucket)
			if (victim == NULL || (*pp)->updated_ms < (*victim)->updated_ms)
				victim = pp;
	if (victim) {
		struct svc *s = *victim;

		*victim = s->next_in_bucket;
		svc_free(s);
		t->nsvcs--;
	}
}

static void edge_evict(struct telemetry *t)
{
	struct edge **victim = NULL;

	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct edge **pp = &t->edges[i]; *pp; pp = &(*pp)->next_in_bucket)
			if (victim == NULL || (*pp)->updated_ms < (*victim)->updated_ms)
				victim = pp;
	if (victim) {
		struct edge *e = *victim;

		*victim = e->next_in_bucket;
		edge_free(e);
		t->nedges--;
	}
}

static struct svc *svc_get(struct telemetry *t, const char *mesh, const char *name,
			   int64_t interval_ms)
{
	char *key = join(mesh, name, NULL);
	struct svc *s = NULL;
	size_t b;

	if (key == NULL)
		return NULL;
	if ((s = svc_find(t, key)) != NULL)
		goto out;
	if (t->nsvcs >= t->max_services)
		svc_evict(t);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto out;
	s->width_ms = interval_ms > TELEMETRY_MIN_WIDTH_MS ? interval_ms : TELEMETRY_MIN_WIDTH_MS;
	s->nslots = (size_t)((TELEMETRY_WINDOW_MS + s->width_ms - 1) / s->width_ms) + 1;
	s->ring = calloc(s->nslots, sizeof(*s->ring));
	s->mesh = strdup(mesh);
	s->name = strdup(name);
	if (s->ring == NULL || s->mesh == NULL || s->name == NULL) {
		svc_free(s);
		s = NULL;
		goto out;
	}
	for (size_t i = 0; i < s->nslots; i++)
		s->ring[i].slot = -1;
	s->key = key;
	key = NULL;
	b = hash_str(s->key) % NBUCKETS;
	s->next_in_bucket = t->svcs[b];
	t->svcs[b] = s;
	t->nsvcs++;
out:
	free(key);
	return s;
}

static struct edge *edge_get(struct telemetry *t, const char *mesh, const char *src,
			     const char *dst, int64_t start_ms)
{
	char *key = join(mesh, src, dst);
	struct edge *e = NULL;
	size_t b;

	if (key == NULL)
		return NULL;
	if ((e = edge_find(t, key)) != NULL)
		goto out;
	if (t->nedges >= t->max_edges)
		edge_evict(t);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		goto out;
	e->mesh = strdup(mesh);
	e->src = strdup(src);
	e->dst = strdup(dst);
	if (e->mesh == NULL || e->src == NULL || e->dst == NULL) {
		edge_free(e);
		e = NULL;
		goto out;
	}
	for (size_t i = 0; i < EDGE_SLOTS; i++)
		e->ring[i].slot = -1;
	e->first_ms = start_ms;
	e->key = key;
	key = NULL;
	b = hash_str(e->key) % NBUCKETS;
	e->next_in_bucket = t->edges[b];
	t->edges[b] = e;
	t->nedges++;
out:
	free(key);
	return e;
}

/* ---- recording ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static uint64_t responses_of(const struct tm_counts *c)
{
	uint64_t n = 0;

	for (int k = 0; k < TM_NCLASS; k++)
		n = sat_add(n, c->responses[k]);
	return n;
}

static void svc_add(struct svc *s, const struct tm_counts *c, int64_t mid_ms, int64_t now_ms)
{
	int64_t slot = floor_div(mid_ms, s->width_ms);
	struct point *p = &s->ring[(size_t)(slot % (int64_t)s->nslots + (int64_t)s->nslots) % s->nslots];

	if (p->slot != slot) {
		memset(p, 0, sizeof(*p));
		p->slot = slot;
	}
	p->requests = sat_add(p->requests, c->requests);
	p->responses = sat_add(p->responses, responses_of(c));
	p->errors = sat_add(p->errors, c->responses[TM_5XX]);
	p->denied = sat_add(p->denied, c->denied);
	for (int k = 0; k < TELEMETRY_NBUCKETS; k++)
		p->buckets[k] = sat_add(p->buckets[k], c->buckets[k]);
	s->updated_ms = now_ms;
}

static void edge_add(struct edge *e, const struct tm_counts *c, int64_t mid_ms, int64_t now_ms)
{
	int64_t slot = floor_div(mid_ms, EDGE_SLOT_MS);
	struct eslot *p = &e->ring[(size_t)(slot % (int64_t)EDGE_SLOTS + (int64_t)EDGE_SLOTS) % EDGE_SLOTS];

	if (p->slot != slot) {
		memset(p, 0, sizeof(*p));
		p->slot = slot;
	}
	p->requests = sat_add(p->requests, c->requests);
	p->responses = sat_add(p->responses, responses_of(c));
	p->errors = sat_add(p->errors, c->responses[TM_5XX]);
	if (c->requests > 0)
		e->seen_ms = now_ms;
	e->updated_ms = now_ms;
}

static void topic_add(json_t *topics, const char *kind, const char *mesh, const char *name)
{
	char *k = NULL;

	if (asprintf(&k, "%s:%s%s%s", kind, mesh, name ? "/" : "", name ? name : "") < 0)
		return;
	json_object_set_new(topics, k, json_true());
	free(k);
}

void telemetry_record(struct telemetry *t, const char *node, const struct tm_sample *sm,
		      int64_t now_ms)
{
	int64_t mid_ms = now_ms - sm->interval_ms / 2, start_ms = now_ms - sm->interval_ms;
	json_t *topics = json_object();
	const char **names = NULL;
	uint64_t *idx = NULL, counter;
	const char *k;
	json_t *v;
	size_t n = 0;

	(void)node;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < sm->nproxies; i++) {
		const struct tm_proxy *px = &sm->proxies[i];
		struct svc *s = svc_get(t, px->mesh, px->service, sm->interval_ms);

		if (s)
			svc_add(s, &px->inbound, mid_ms, now_ms);
		topic_add(topics, "svc", px->mesh, px->service);
		topic_add(topics, "edges", px->mesh, NULL);
		for (size_t j = 0; j < px->nupstreams; j++) {
			const struct tm_upstream *u = &px->upstreams[j];
			struct edge *e = edge_get(t, px->mesh, px->service, u->service, start_ms);

			if (e)
				edge_add(e, &u->c, mid_ms, now_ms);
			topic_add(topics, "svc", px->mesh, u->service);
		}
	}
	counter = ++t->counter;
	pthread_mutex_unlock(&t->lock);
	/* After the data: a reader woken by the topic finds the sample. */
	names = calloc(json_object_size(topics) + 1, sizeof(*names));
	idx = calloc(json_object_size(topics) + 1, sizeof(*idx));
	if (names && idx) {
		json_object_foreach(topics, k, v) {
			names[n] = k;
			idx[n++] = counter;
		}
		hub_publish(t->hub, names, idx, n);
	}
	free(names);
	free(idx);
	json_decref(topics);
}

/* ---- reading ---- */

double telemetry_quantile(const uint64_t *b, double q)
{
	uint64_t total = 0, cum = 0;
	double rank;

	for (int k = 0; k < TELEMETRY_NBUCKETS; k++)
		total = sat_add(total, b[k]);
	if (total == 0)
		return -1;
	rank = q * (double)total;
	for (int k = 0; k < TELEMETRY_NBUCKETS; k++) {
		double lo = k == 0 ? 0 : telemetry_bucket_le[k - 1];

		if (b[k] == 0 || (double)(cum + b[k]) < rank) {
			cum += b[k];
			continue;
		}
		if (k == TELEMETRY_NBUCKETS - 1)   /* +Inf: the last finite bound */
			return telemetry_bucket_le[TELEMETRY_NBUCKETS - 2];
		return lo + (telemetry_bucket_le[k] - lo) * ((rank - (double)cum) / (double)b[k]);
	}
	return telemetry_bucket_le[TELEMETRY_NBUCKETS - 2];
}

static json_t *time_json(int64_t ms)
{
	time_t sec = (time_t)floor_div(ms, 1000);
	struct tm tm;
	char buf[32];

	gmtime_r(&sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *interval_json(int64_t ms)
{
	char buf[32];

	duration_format(ms, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *success_json(uint64_t responses, uint64_t errors)
{
	if (responses == 0)
		return json_null();
	return json_real((double)(responses - (errors < responses ? errors : responses)) /
			 (double)responses);
}

/* Rounded for the eye: 4 significant decimals are plenty for a chart. */
static json_t *rate_json(double v)
{
	if (!(v >= 0) || v > 1e14)
		return json_real(v >= 0 ? v : 0);
	return json_real((double)(long long)(v * 10000.0 + 0.5) / 10000.0);
}

/* An edge's totals over the window; 0 when it carried no request there. */
static int edge_window(const struct edge *e, int64_t now_ms, uint64_t *req, uint64_t *resp,
		       uint64_t *errs, double *span_s)
{
	int64_t from = now_ms - TELEMETRY_EDGE_WINDOW_MS, first = e->first_ms > from ? e->first_ms : from;

	*req = *resp = *errs = 0;
	for (size_t i = 0; i < EDGE_SLOTS; i++) {
		const struct eslot *p = &e->ring[i];

		if (p->slot < 0 || (p->slot + 1) * EDGE_SLOT_MS <= from || p->slot * EDGE_SLOT_MS > now_ms)
			continue;
		*req = sat_add(*req, p->requests);
		*resp = sat_add(*resp, p->responses);
		*errs = sat_add(*errs, p->errors);
	}
	*span_s = (double)(now_ms - first) / 1000.0;
	if (*span_s < 1)
		*span_s = 1;
	return *req > 0 && e->seen_ms > from;
}

static json_t *edge_json(const struct edge *e, int64_t now_ms, int as_edge, const char *other)
{
	uint64_t req, resp, errs;
	double span;
	json_t *o;

	if (!edge_window(e, now_ms, &req, &resp, &errs, &span))
		return NULL;
	o = json_object();
	if (as_edge) {
		json_object_set_new(o, "Source", json_string(e->src));
		json_object_set_new(o, "Destination", json_string(e->dst));
	} else {
		json_object_set_new(o, "Service", json_string(other));
	}
	json_object_set_new(o, "RequestRate", rate_json((double)req / span));
	json_object_set_new(o, "SuccessRate", success_json(resp, errs));
	if (as_edge)
		json_object_set_new(o, "LastSeen", time_json(e->seen_ms));
	return o;
}

static int by_name(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a, "Service"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b, "Service"));

	if (x == NULL) {   /* edges */
		int c = strcmp(json_string_value(json_object_get(*(json_t *const *)a, "Source")),
			       json_string_value(json_object_get(*(json_t *const *)b, "Source")));
		return c ? c : strcmp(json_string_value(json_object_get(*(json_t *const *)a, "Destination")),
				      json_string_value(json_object_get(*(json_t *const *)b, "Destination")));
	}
	return strcmp(x, y);
}

/* Steals the items; returns a sorted array. */
static json_t *sorted(json_t **items, size_t n)
{
	json_t *arr = json_array();

	if (n > 1)
		qsort(items, n, sizeof(*items), by_name);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, items[i]);
	return arr;
}

/* The mesh's edges from or to service (either NULL: any). */
static json_t *edges_list(struct telemetry *t, const char *mesh, const char *from,
			  const char *to, int64_t now_ms)
{
	json_t **items = calloc(t->nedges + 1, sizeof(*items));
	size_t n = 0;

	if (items == NULL)
		return json_array();
	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct edge *e = t->edges[i]; e; e = e->next_in_bucket) {
			json_t *o;

			if (strcmp(e->mesh, mesh) != 0 || (from && strcmp(e->src, from) != 0) ||
			    (to && strcmp(e->dst, to) != 0))
				continue;
			o = edge_json(e, now_ms, from == NULL && to == NULL, from ? e->dst : e->src);
			if (o && n < t->nedges)
				items[n++] = o;
			else
				json_decref(o);
		}
	{
		json_t *arr = sorted(items, n);
		free(items);
		return arr;
	}
}

json_t *telemetry_service_json(struct telemetry *t, const char *mesh, const char *service,
			       int64_t now_ms)
{
	json_t *o = json_object(), *points = json_array();
	char *key = join(mesh, service, NULL);
	int64_t width = TELEMETRY_MIN_WIDTH_MS;
	struct svc *s;

	pthread_mutex_lock(&t->lock);
	s = key ? svc_find(t, key) : NULL;
	if (s) {
		int64_t last = floor_div(now_ms, s->width_ms);
		int64_t first = floor_div(now_ms - TELEMETRY_WINDOW_MS, s->width_ms) + 1;
		double width_s = (double)s->width_ms / 1000.0;

		width = s->width_ms;
		for (int64_t slot = first; slot <= last; slot++) {
			const struct point *p = &s->ring[(size_t)(slot % (int64_t)s->nslots + (int64_t)s->nslots) % s->nslots];
			json_t *pt;
			double p99;

			if (p->slot != slot)
				continue;
			pt = json_object();
			json_object_set_new(pt, "Time", time_json(slot * s->width_ms));
			json_object_set_new(pt, "RequestRate", rate_json((double)p->requests / width_s));
			json_object_set_new(pt, "SuccessRate", success_json(p->responses, p->errors));
			p99 = telemetry_quantile(p->buckets, 0.99);
			json_object_set_new(pt, "P99Ms", p99 < 0 || p->requests == 0 ? json_null()
					    : rate_json(p99 * 1000.0));
			json_object_set_new(pt, "Denied", json_integer((json_int_t)(p->denied > INT64_MAX ? INT64_MAX : p->denied)));
			json_array_append_new(points, pt);
		}
	}
	json_object_set_new(o, "Service", json_string(service));
	json_object_set_new(o, "Mesh", json_string(mesh));
	json_object_set_new(o, "Interval", interval_json(width));
	json_object_set_new(o, "Points", points);
	json_object_set_new(o, "Upstreams", edges_list(t, mesh, service, NULL, now_ms));
	json_object_set_new(o, "Downstreams", edges_list(t, mesh, NULL, service, now_ms));
	pthread_mutex_unlock(&t->lock);
	free(key);
	return o;
}

json_t *telemetry_edges_json(struct telemetry *t, const char *mesh, int64_t now_ms)
{
	json_t *arr;

	pthread_mutex_lock(&t->lock);
	arr = edges_list(t, mesh, NULL, NULL, now_ms);
	pthread_mutex_unlock(&t->lock);
	return arr;
}

/* ---- decoding ---- */

static int decode_buckets(json_t *arr, const char *ctx, uint64_t *out, char **err)
{
	double prev_le = 0;
	uint64_t prev = 0;
	size_t i;
	json_t *b;

	if (json_array_size(arr) > TELEMETRY_MAX_BUCKETS)
		return weft_errf(err, WEFT_EINVAL, "%s: %zu buckets, at most %d", ctx,
				 json_array_size(arr), TELEMETRY_MAX_BUCKETS);
	json_array_foreach(arr, i, b) {
		json_t *le = json_array_get(b, 0), *cnt = json_array_get(b, 1);
		double lev;
		long long c;
		int k;

		if (!json_is_array(b) || json_array_size(b) != 2)
			return weft_errf(err, WEFT_EINVAL, "%s[%zu]: must be [le, count]", ctx, i);
		if (json_is_string(le) && strcmp(json_string_value(le), "+Inf") == 0) {
			lev = INFINITY;
		} else if (json_is_number(le) && isfinite(json_number_value(le)) &&
			   json_number_value(le) > 0) {
			lev = json_number_value(le);
		} else {
			return weft_errf(err, WEFT_EINVAL, "%s[%zu]: le must be a positive number "
					 "of seconds or \"+Inf\"", ctx, i);
		}
		if (i > 0 && !(lev > prev_le))
			return weft_errf(err, WEFT_EINVAL, "%s[%zu]: le must be greater than the "
					 "previous bucket's", ctx, i);
		if (!json_is_integer(cnt) || (c = json_integer_value(cnt)) < 0 || c > COUNT_MAX)
			return weft_errf(err, WEFT_EINVAL, "%s[%zu]: the count must be an integer in "
					 "[0, %lld]", ctx, i, COUNT_MAX);
		if ((uint64_t)c < prev)
			return weft_errf(err, WEFT_EINVAL, "%s[%zu]: counts are cumulative: %lld is "
					 "below the previous bucket's %llu", ctx, i, c,
					 (unsigned long long)prev);
		/* the narrowest bucket of ours that holds this one */
		for (k = 0; k < TELEMETRY_NBUCKETS - 1; k++)
			if (lev <= telemetry_bucket_le[k] * (1 + 1e-9))
				break;
		out[k] += (uint64_t)c - prev;
		prev = (uint64_t)c;
		prev_le = lev;
	}
	return WEFT_OK;
}

static int decode_counts(json_t *obj, const char *ctx, struct tm_counts *c, int inbound, char **err)
{
	json_t *resp = NULL, *buckets = NULL, *v;
	long long n = 0;
	const char *k;
	char sub[256];
	int rc;

	if (!json_is_object(obj))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx);
	if ((rc = jx_int(obj, ctx, "Requests", &n, 0, COUNT_MAX, err)) != WEFT_OK)
		return rc;
	c->requests = (uint64_t)n;
	if (inbound) {
		n = 0;
		if ((rc = jx_int(obj, ctx, "Denied", &n, 0, COUNT_MAX, err)) != WEFT_OK)
			return rc;
		c->denied = (uint64_t)n;
	}
	if ((rc = jx_object(obj, ctx, "Responses", &resp, err)) != WEFT_OK)
		return rc;
	json_object_foreach(resp, k, v) {
		int cls;

		for (cls = 0; cls < TM_NCLASS; cls++)
			if (strcmp(k, class_names[cls]) == 0)
				break;
		if (cls == TM_NCLASS)
			return weft_errf(err, WEFT_EINVAL, "%s.Responses.%.40s: not a response class "
					 "(1xx, 2xx, 3xx, 4xx, 5xx, other)", ctx, k);
		snprintf(sub, sizeof(sub), "%s.Responses", ctx);
		n = 0;
		if ((rc = jx_int(resp, sub, k, &n, 0, COUNT_MAX, err)) != WEFT_OK)
			return rc;
		c->responses[cls] = (uint64_t)n;
	}
	if ((rc = jx_array(obj, ctx, "LatencyBuckets", &buckets, err)) != WEFT_OK)
		return rc;
	snprintf(sub, sizeof(sub), "%s.LatencyBuckets", ctx);
	return buckets ? decode_buckets(buckets, sub, c->buckets, err) : WEFT_OK;
}

static int decode_name(json_t *obj, const char *ctx, const char *field, char **out, char **err)
{
	const char *s = NULL;
	int rc;

	if ((rc = jx_req_str(obj, ctx, field, &s, NAME_MAX_LEN, err)) != WEFT_OK)
		return rc;
	if (!name_valid(s, NAME_MAX_LEN))
		return weft_errf(err, WEFT_EINVAL, "%s.%s: \"%s\" is not a valid service name "
				 "(letters, digits, '-', '_', '.')", ctx, field, s);
	if ((*out = strdup(s)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	return WEFT_OK;
}

static int decode_proxy(json_t *obj, const char *ctx, struct tm_proxy *p, char **err)
{
	const char *id = NULL, *mesh = MESH_DEFAULT;
	json_t *in = NULL, *ups = NULL, *u;
	char sub[256];
	size_t i;
	int rc;

	if (!json_is_object(obj))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx);
	if ((rc = jx_req_str(obj, ctx, "ProxyID", &id, PROXY_ID_MAX, err)) != WEFT_OK)
		return rc;
	if ((p->proxy_id = strdup(id)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	if ((rc = decode_name(obj, ctx, "Service", &p->service, err)) != WEFT_OK)
		return rc;
	if ((rc = jx_str(obj, ctx, "Mesh", &mesh, 64, err)) != WEFT_OK)
		return rc;
	if (!mesh_name_valid(mesh))
		return weft_errf(err, WEFT_EINVAL, "%s.Mesh: \"%s\" is not a valid mesh name", ctx, mesh);
	if ((p->mesh = strdup(mesh)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	if ((rc = jx_object(obj, ctx, "Inbound", &in, err)) != WEFT_OK)
		return rc;
	if (in) {
		snprintf(sub, sizeof(sub), "%s.Inbound", ctx);
		if ((rc = decode_counts(in, sub, &p->inbound, 1, err)) != WEFT_OK)
			return rc;
	}
	if ((rc = jx_array(obj, ctx, "Upstreams", &ups, err)) != WEFT_OK)
		return rc;
	if (json_array_size(ups) > TELEMETRY_MAX_UPSTREAMS)
		return weft_errf(err, WEFT_EINVAL, "%s.Upstreams: %zu upstreams, at most %d", ctx,
				 json_array_size(ups), TELEMETRY_MAX_UPSTREAMS);
	if ((p->upstreams = calloc(json_array_size(ups) + 1, sizeof(*p->upstreams))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	json_array_foreach(ups, i, u) {
		struct tm_upstream *up = &p->upstreams[i];

		snprintf(sub, sizeof(sub), "%s.Upstreams[%zu]", ctx, i);
		p->nupstreams = i + 1;
		if (!json_is_object(u))
			return weft_errf(err, WEFT_EINVAL, "%s: must be an object", sub);
		if ((rc = decode_name(u, sub, "Service", &up->service, err)) != WEFT_OK)
			return rc;
		if ((rc = decode_counts(u, sub, &up->c, 0, err)) != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

int telemetry_decode(json_t *doc, struct tm_sample *out, char **err)
{
	json_t *proxies = NULL, *p;
	long long interval = 0;
	char ctx[32];
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
	if (jx_field(doc, "Interval") == NULL)
		return weft_errf(err, WEFT_EINVAL, "Interval: is required");
	if ((rc = jx_duration_ms(doc, NULL, "Interval", &interval, err)) != WEFT_OK)
		return rc;
	if (interval < 1000 || interval > 3600 * 1000)
		return weft_errf(err, WEFT_EINVAL, "Interval: must be from 1s to 1h");
	out->interval_ms = interval;
	if ((rc = jx_array(doc, NULL, "Proxies", &proxies, err)) != WEFT_OK)
		goto fail;
	if (proxies == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "Proxies: is required");
		goto fail;
	}
	if (json_array_size(proxies) > TELEMETRY_MAX_PROXIES) {
		rc = weft_errf(err, WEFT_EINVAL, "Proxies: %zu proxies, at most %d",
			       json_array_size(proxies), TELEMETRY_MAX_PROXIES);
		goto fail;
	}
	if ((out->proxies = calloc(json_array_size(proxies) + 1, sizeof(*out->proxies))) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto fail;
	}
	json_array_foreach(proxies, i, p) {
		snprintf(ctx, sizeof(ctx), "Proxies[%zu]", i);
		out->nproxies = i + 1;
		if ((rc = decode_proxy(p, ctx, &out->proxies[i], err)) != WEFT_OK)
			goto fail;
	}
	return WEFT_OK;
fail:
	telemetry_sample_clear(out);
	return rc;
}

void telemetry_sample_clear(struct tm_sample *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nproxies; i++) {
		struct tm_proxy *p = &s->proxies[i];

		free(p->proxy_id);
		free(p->service);
		free(p->mesh);
		for (size_t j = 0; j < p->nupstreams; j++)
			free(p->upstreams[j].service);
		free(p->upstreams);
	}
	free(s->proxies);
	memset(s, 0, sizeof(*s));
}
