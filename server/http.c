#include "http.h"
#include "auth.h"
#include "buf.h"
#include "duration.h"
#include "err.h"
#include "hub.h"
#include "jsonx.h"
#include "log.h"
#include "server.h"
#include "tlsfiles.h"
#include "util.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 8
#define DEFAULT_WAIT_MS (5 * 60 * 1000)
#define MAX_WAIT_MS (10 * 60 * 1000)
#define STAT_SLOTS 512
/* Each connection's libmicrohttpd memory pool: it holds the request line
 * and headers (so they are limited to about 7.5 KB, as nginx's 8 KB, with
 * 431/414 above) and is touched whole when a reply goes out, so it sets
 * the memory of many open connections: with libmicrohttpd's default of
 * 32 KB, 10,000 woken blocking queries took 350 MB; with 8 KB, 110 MB. */
#define CONN_MEMORY 8192
/* GnuTLS's defaults less TLS 1.0 and 1.1, which it still offers. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static const struct route *const route_tables[] = {
	api_catalog_routes,
	api_ui_routes,
	api_health_routes,
	api_status_routes,
	api_acl_routes,
	api_kv_routes,
	api_session_routes,
	api_agent_routes,
	api_intentions_routes,
	api_mesh_routes,
	api_config_routes,
	api_ca_routes,
	api_proxy_routes,
	api_telemetry_routes,
};

enum phase {
	PH_HEADERS,     /* headers seen, body may follow */
	PH_PARKED,      /* blocking query waiting on the hub */
	PH_WOKEN,       /* the hub woke it: run the handler again */
	PH_WRITING,     /* a write is queued on the store */
	PH_WRITTEN,     /* the write is durable (or failed): reply */
	PH_REPLIED,
};

struct stat_slot {
	const char *route;  /* route table path: a static string */
	unsigned method;
	int status;
	uint64_t count;
};

static const double latency_bounds_s[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define NLAT (sizeof(latency_bounds_s) / sizeof(latency_bounds_s[0]))

struct http {
	struct server *srv;
	struct MHD_Daemon *daemon;
	char *addr;
	int tls;
	_Atomic int stopping;   /* http_stop began: refuse new requests, close after replies */
	_Atomic long inflight;
	pthread_mutex_t stats_lock;
	struct stat_slot stats[STAT_SLOTS];
	size_t nstats;
	uint64_t lat_buckets[NLAT + 1];
	double lat_sum;
	uint64_t lat_count;
};

struct req {
	struct MHD_Connection *conn;
	struct http *http;
	struct server *srv;
	const struct route *route;
	unsigned method;
	const char *method_name;
	char *path;
	const char *tail;
	struct buf body;
	int body_too_big;
	enum phase phase;
	struct timespec started;
	/* reply */
	struct MHD_Response *resp;
	int status;
	char *hdr_name[MAX_HEADERS], *hdr_value[MAX_HEADERS];
	size_t nhdr;
	/* blocking query */
	char **topics;                /* grown by req_watch, up to HUB_MAX_TOPICS */
	size_t ntopics, cap_topics;
	uint64_t index;
	uint64_t min_index;
	int64_t deadline;
	int timed_out;
	struct hub *hub;              /* what topics are watched on: srv->hub unless req_watch_hub */
	struct hub_waiter waiter;
	/* write */
	struct store_write write;
	void *write_arg;
	void (*write_arg_free)(void *);
	/* auth */
	int auth_state;       /* 0 not yet, 1 identified, -1 failed */
	struct identity id;
	const char *token_source;
};

/* ---- small helpers ---- */

static unsigned method_bit(const char *m)
{
	if (strcmp(m, "GET") == 0) return M_GET;
	if (strcmp(m, "PUT") == 0) return M_PUT;
	if (strcmp(m, "POST") == 0) return M_POST;
	if (strcmp(m, "DELETE") == 0) return M_DELETE;
	if (strcmp(m, "HEAD") == 0) return M_HEAD;
	return 0;
}

static const char *method_label(unsigned m)
{
	switch (m) {
	case M_GET: return "GET";
	case M_PUT: return "PUT";
	case M_POST: return "POST";
	case M_DELETE: return "DELETE";
	case M_HEAD: return "HEAD";
	default: return "OTHER";
	}
}

struct server *req_server(struct req *r) { return r->srv; }
const char *req_method(struct req *r) { return r->method_name; }
const char *req_path(struct req *r) { return r->path; }
const char *req_tail(struct req *r) { return r->tail ? r->tail : ""; }

const char *req_query(struct req *r, const char *name)
{
	const char *v;

	if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name),
					  &v, NULL) != MHD_YES)
		return NULL;
	return v ? v : "";
}

struct query_collect {
	const char *name;
	json_t *list;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct query_collect *qc = cls;

	if (strcmp(key, qc->name) == 0)
		json_array_append_new(qc->list, json_string(value ? value : ""));
	return MHD_YES;
}

struct query_check {
	const char *const *names;
	int ok;
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct query_check *qc = cls;

	for (size_t i = 0; qc->names[i]; i++)
		if (strcmp(key, qc->names[i]) == 0)
			return MHD_YES;
	qc->ok = 0;
	return MHD_NO;
}

int req_query_only(struct req *r, const char *const *names)
{
	struct query_check qc = { .names = names, .ok = 1 };

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &qc);
	return qc.ok;
}

json_t *req_query_list(struct req *r, const char *name)
{
	struct query_collect qc = { .name = name, .list = json_array() };

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &qc);
	return qc.list;
}

const char *req_header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_body(struct req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return r->body.data ? r->body.data : "";
}

json_t *req_body_json(struct req *r)
{
	char *err = NULL;
	json_t *v;

	if (r->body.len == 0) {
		req_error(r, 400, "body: a JSON document is required");
		return NULL;
	}
	v = jx_parse(r->body.data, r->body.len, &err);
	if (v == NULL) {
		req_error(r, 400, "%s", err);
		free(err);
	}
	return v;
}

int req_query_u64(struct req *r, const char *name, uint64_t *out)
{
	const char *v = req_query(r, name);
	char *end;
	unsigned long long n;

	if (v == NULL || v[0] == '\0')
		return 0;
	n = strtoull(v, &end, 10);
	if (*end != '\0' || v[0] == '-') {
		req_error(r, 400, "%s: \"%s\" is not a non-negative integer", name, v);
		return -1;
	}
	*out = n;
	return 1;
}

void req_add_header(struct req *r, const char *name, const char *value)
{
	if (r->nhdr == MAX_HEADERS)
		return;
	r->hdr_name[r->nhdr] = strdup(name);
	r->hdr_value[r->nhdr] = strdup(value);
	r->nhdr++;
}

/* ---- replies ---- */

static void reply_set(struct req *r, int status, struct MHD_Response *resp, const char *ctype)
{
	char num[32];

	if (r->resp)
		MHD_destroy_response(r->resp);
	r->resp = resp;
	r->status = status;
	if (resp == NULL)
		return;
	MHD_add_response_header(resp, "Content-Type", ctype);
	if (r->route && (r->route->flags & ROUTE_BLOCKING)) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)(r->index ? r->index : 1));
		MHD_add_response_header(resp, "X-Consul-Index", num);
		MHD_add_response_header(resp, "X-Consul-KnownLeader", "true");
		MHD_add_response_header(resp, "X-Consul-LastContact", "0");
	}
	for (size_t i = 0; i < r->nhdr; i++)
		MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
}

int req_reply_raw(struct req *r, int status, const char *content_type, char *data, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);

	if (resp == NULL)
		free(data);
	reply_set(r, status, resp, content_type);
	return status;
}

int req_reply_json(struct req *r, int status, json_t *body)
{
	char *text = jx_dump(body);

	json_decref(body);
	if (text == NULL)
		return req_reply_raw(r, 500, "application/json",
				     strdup("{\"error\":\"cannot encode the reply\"}"), 35);
	return req_reply_raw(r, status, "application/json", text, strlen(text));
}

int req_error(struct req *r, int status, const char *fmt, ...)
{
	char *msg = NULL;
	json_t *body;
	const char *colon;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	body = json_pack("{s:s}", "error", msg ? msg : "error");
	/* Messages start with the field they are about: "Service.Port: ...". */
	if (msg && status == 400 && (colon = strstr(msg, ": ")) != NULL &&
	    memchr(msg, ' ', (size_t)(colon - msg)) == NULL)
		json_object_set_new(body, "field", json_stringn(msg, (size_t)(colon - msg)));
	if (status >= 500)
		log_warnx("http", "error method=%s path=%s status=%d msg=\"%s\"", r->method_name,
			  r->path, status, msg ? msg : "");
	free(msg);
	return req_reply_json(r, status, body);
}

int req_errcode(struct req *r, int code, const char *msg)
{
	int status;

	switch (code) {
	case WEFT_EINVAL: status = 400; break;
	case WEFT_ENOENT: status = 404; break;
	case WEFT_EEXIST:
	case WEFT_ECONFLICT: status = 409; break;
	case WEFT_EPERM:
	case WEFT_EAUTH: status = 403; break;
	case WEFT_ETOOBIG: status = 413; break;
	case WEFT_ESHUTDOWN: status = 503; break;
	default: status = 500; break;
	}
	return req_error(r, status, "%s", msg ? msg : weft_strerror(code));
}

/* ---- blocking queries ---- */

static void watch_on(struct req *r, struct hub *hub, char *topic);

void req_watch(struct req *r, const char *fmt, ...)
{
	char *topic = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&topic, fmt, ap) < 0)
		topic = NULL;
	va_end(ap);
	watch_on(r, r->srv->hub, topic);
}

void req_watch_hub(struct req *r, struct hub *hub, const char *topic)
{
	watch_on(r, hub, strdup(topic));
}

/* Takes topic (NULL: out of memory, nothing watched). */
static void watch_on(struct req *r, struct hub *hub, char *topic)
{
	uint64_t idx;

	if (topic == NULL)
		return;
	r->hub = hub;
	idx = hub_index(hub, topic);
	if (idx > r->index)
		r->index = idx;
	if (r->ntopics == r->cap_topics && r->cap_topics < HUB_MAX_TOPICS) {
		size_t nc = r->cap_topics ? r->cap_topics * 2 : 8;
		char **nt = realloc(r->topics, nc * sizeof(*nt));

		if (nt != NULL) {
			r->topics = nt;
			r->cap_topics = nc;
		}
	}
	if (r->ntopics < r->cap_topics)
		r->topics[r->ntopics++] = topic;
	else
		free(topic);
}

void req_index_at_least(struct req *r, uint64_t idx)
{
	if (idx > r->index)
		r->index = idx;
}

uint64_t req_index(struct req *r)
{
	return r->index;
}

static void topics_clear(struct req *r)
{
	for (size_t i = 0; i < r->ntopics; i++)
		free(r->topics[i]);
	r->ntopics = 0;
}

static void waiter_wake(struct hub_waiter *w, int timed_out)
{
	struct req *r = w->owner;

	r->timed_out = timed_out;
	r->phase = PH_WOKEN;
	MHD_resume_connection(r->conn);
}

/* ---- writes ---- */

static void write_done(struct store_write *w)
{
	struct req *r = w->done_arg;

	r->phase = PH_WRITTEN;
	MHD_resume_connection(r->conn);
}

int req_write(struct req *r, store_apply_fn apply, void *arg, void (*arg_free)(void *))
{
	r->write.apply = apply;
	r->write.arg = arg;
	r->write.done = write_done;
	r->write.done_arg = r;
	r->write_arg = arg;
	r->write_arg_free = arg_free;
	r->phase = PH_WRITING;
	MHD_suspend_connection(r->conn);
	store_submit(r->srv->store, &r->write);
	return REQ_SUSPEND;
}

static int reply_written(struct req *r)
{
	struct store_write *w = &r->write;
	int status;

	if (w->status == WEFT_OK) {
		json_t *res = w->result ? w->result : json_true();
		w->result = NULL;
		status = req_reply_json(r, 200, res);
	} else {
		status = req_errcode(r, w->status, w->err);
	}
	free(w->err);
	w->err = NULL;
	if (r->write_arg_free)
		r->write_arg_free(r->write_arg);
	r->write_arg = NULL;
	r->write_arg_free = NULL;
	return status;
}

/* ---- authorisation ---- */

static const char *find_token(struct req *r)
{
	const char *v = req_header(r, "X-Consul-Token");

	if (v && v[0]) {
		r->token_source = "X-Consul-Token header";
		return v;
	}
	v = req_header(r, "Authorization");
	if (v && strncasecmp(v, "Bearer ", 7) == 0) {
		r->token_source = "Authorization header";
		return v + 7;
	}
	v = req_query(r, "token");
	if (v && v[0]) {
		r->token_source = "?token= parameter";
		return v;
	}
	return NULL;
}

const struct identity *req_identity(struct req *r)
{
	return r->auth_state == 1 ? &r->id : NULL;
}

/* Identifies the request's token once; 0 after a 403 saying what is wrong
 * (wanted says what the request needs, for the message when no token came). */
static int identify(struct req *r, const char *wanted)
{
	char *err = NULL;
	const char *secret;

	if (r->auth_state == 0) {
		secret = find_token(r);
		if (secret == NULL) {
			r->auth_state = -1;
			req_error(r, 403,
				  "permission denied: no token was sent (use the X-Consul-Token header, "
				  "Authorization: Bearer, or ?token=); %s", wanted);
			return 0;
		}
		if (auth_identify(r->srv->auth, secret, &r->id, &err) != WEFT_OK) {
			r->auth_state = -1;
			req_error(r, 403, "permission denied: the token from the %s was refused: %s",
				  r->token_source, err ? err : "invalid");
			free(err);
			return 0;
		}
		r->auth_state = 1;
	}
	return r->auth_state > 0;
}

static void wanted_text(char *out, size_t size, enum auth_perm perm, const char *resource)
{
	snprintf(out, size, "%s%s%s needs a token with %s", resource ? "\"" : "",
		 resource ? resource : "this endpoint", resource ? "\"" : "", auth_perm_name(perm));
}

int req_authenticate(struct req *r, enum auth_perm perm, const char *resource)
{
	char wanted[512];

	if (r->srv->auth == NULL)
		return 1;   /* --dev */
	wanted_text(wanted, sizeof(wanted), perm, resource);
	return identify(r, wanted);
}

int req_authorize(struct req *r, enum auth_perm perm, const char *resource)
{
	if (!req_authenticate(r, perm, resource))
		return 0;
	if (r->srv->auth == NULL || auth_allows(&r->id, perm, resource))
		return 1;
	req_error(r, 403,
		  "permission denied: token %s (kind %s%s%s, from the %s) lacks %s on %s%s%s",
		  r->id.accessor, token_kind_name(r->id.kind), r->id.scope[0] ? " for " : "",
		  r->id.scope, r->token_source, auth_perm_name(perm),
		  resource ? "\"" : "", resource ? resource : "this endpoint", resource ? "\"" : "");
	return 0;
}

/* ---- metrics ---- */

static void stats_record(struct http *h, struct req *r)
{
	struct timespec now;
	double secs;
	const char *route = r->route ? r->route->path : "unmatched";
	size_t i, b;

	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - r->started.tv_sec) +
	       (double)(now.tv_nsec - r->started.tv_nsec) / 1e9;
	pthread_mutex_lock(&h->stats_lock);
	for (i = 0; i < h->nstats; i++) {
		struct stat_slot *s = &h->stats[i];
		if (s->route == route && s->method == r->method && s->status == r->status)
			break;
	}
	if (i == h->nstats && h->nstats < STAT_SLOTS) {
		h->stats[i].route = route;
		h->stats[i].method = r->method;
		h->stats[i].status = r->status;
		h->nstats++;
	}
	if (i < h->nstats)
		h->stats[i].count++;
	/* Parked blocking queries would swamp the latency of real work. */
	if (r->min_index == 0) {
		for (b = 0; b < NLAT && secs > latency_bounds_s[b]; b++)
			;
		h->lat_buckets[b]++;
		h->lat_sum += secs;
		h->lat_count++;
	}
	pthread_mutex_unlock(&h->stats_lock);
}

void http_metrics(struct http *h, struct buf *out)
{
	uint64_t cum = 0;

	pthread_mutex_lock(&h->stats_lock);
	buf_printf(out, "# HELP weft_http_requests_total HTTP requests by route, method and status.\n"
			"# TYPE weft_http_requests_total counter\n");
	for (size_t i = 0; i < h->nstats; i++)
		buf_printf(out, "weft_http_requests_total{listener=\"%s\",route=\"%s\",method=\"%s\",code=\"%d\"} %llu\n",
			   h->tls ? "https" : "http", h->stats[i].route,
			   method_label(h->stats[i].method), h->stats[i].status,
			   (unsigned long long)h->stats[i].count);
	buf_printf(out, "# HELP weft_http_request_duration_seconds Time to answer a request (blocking queries excluded).\n"
			"# TYPE weft_http_request_duration_seconds histogram\n");
	for (size_t b = 0; b <= NLAT; b++) {
		cum += h->lat_buckets[b];
		if (b < NLAT)
			buf_printf(out, "weft_http_request_duration_seconds_bucket{listener=\"%s\",le=\"%g\"} %llu\n",
				   h->tls ? "https" : "http", latency_bounds_s[b], (unsigned long long)cum);
		else
			buf_printf(out, "weft_http_request_duration_seconds_bucket{listener=\"%s\",le=\"+Inf\"} %llu\n",
				   h->tls ? "https" : "http", (unsigned long long)cum);
	}
	buf_printf(out, "weft_http_request_duration_seconds_sum{listener=\"%s\"} %.6f\n"
			"weft_http_request_duration_seconds_count{listener=\"%s\"} %llu\n",
		   h->tls ? "https" : "http", h->lat_sum, h->tls ? "https" : "http",
		   (unsigned long long)h->lat_count);
	buf_printf(out, "# HELP weft_http_requests_in_flight Requests being answered, parked ones included.\n"
			"# TYPE weft_http_requests_in_flight gauge\n"
			"weft_http_requests_in_flight{listener=\"%s\"} %ld\n",
		   h->tls ? "https" : "http", atomic_load(&h->inflight));
	pthread_mutex_unlock(&h->stats_lock);
}

/* ---- dispatch ---- */

static const struct route *route_find(const char *path, unsigned method, int *path_matched)
{
	*path_matched = 0;
	for (size_t t = 0; t < sizeof(route_tables) / sizeof(route_tables[0]); t++) {
		for (const struct route *rt = route_tables[t]; rt->path; rt++) {
			size_t n = strlen(rt->path);
			int match = (rt->flags & ROUTE_PREFIX) ? strncmp(path, rt->path, n) == 0
							       : strcmp(path, rt->path) == 0;
			if (!match)
				continue;
			*path_matched = 1;
			if (rt->methods & method)
				return rt;
		}
	}
	return NULL;
}

static int parse_blocking(struct req *r)
{
	const char *wait;
	long long wait_ms = DEFAULT_WAIT_MS;
	int rc = req_query_u64(r, "index", &r->min_index);

	if (rc < 0)
		return -1;
	wait = req_query(r, "wait");
	if (wait && wait[0]) {
		if (duration_parse_ms(wait, &wait_ms) != 0) {
			req_error(r, 400, "wait: \"%s\" is not a duration (use 10s, 5m)", wait);
			return -1;
		}
		if (wait_ms > MAX_WAIT_MS)
			wait_ms = MAX_WAIT_MS;
	}
	/* As Consul does: up to wait/16 of jitter so that watchers spread out. */
	wait_ms += (long long)randombytes_uniform((uint32_t)(wait_ms / 16 + 1));
	r->deadline = now_mono_ms() + wait_ms;
	return 0;
}

/* Runs the handler; returns 1 when the connection was parked or handed to
 * the store, 0 when r->resp holds the reply. */
static int run_handler(struct req *r)
{
	int status, refused = 0;

	for (;;) {
		topics_clear(r);
		r->index = 0;
		r->hub = NULL;
		status = r->route->fn(r);
		if (status == REQ_SUSPEND)
			return 1;
		/* A miss (404) blocks too, as Consul's: watchers wait for a key to appear. */
		if (!(r->route->flags & ROUTE_BLOCKING) || r->min_index == 0 || r->timed_out || refused ||
		    (status != 200 && status != 404) || r->ntopics == 0 || r->index > r->min_index)
			return 0;
		if (now_mono_ms() >= r->deadline)
			return 0;
		/* Nothing new: park until a watched topic moves or the wait ends. */
		MHD_destroy_response(r->resp);
		r->resp = NULL;
		r->waiter.wake = waiter_wake;
		r->waiter.owner = r;
		r->phase = PH_PARKED;
		MHD_suspend_connection(r->conn);
		if (hub_wait(r->hub ? r->hub : r->srv->hub, &r->waiter,
			     (const char *const *)r->topics, r->ntopics, r->min_index,
			     r->deadline) == 0)
			return 1;
		/* Moved while we looked, or the hub is shutting down: look again,
		 * and answer whatever that finds. */
		MHD_resume_connection(r->conn);
		r->phase = PH_HEADERS;
		refused = 1;
	}
}

static enum MHD_Result queue_reply(struct req *r)
{
	enum MHD_Result ret;

	if (r->resp == NULL)
		req_error(r, 500, "no reply was produced");
	if (r->resp == NULL)
		return MHD_NO;
	/* Stopping: end keep-alive connections so that clients go away. */
	if (atomic_load(&r->http->stopping))
		MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	r->phase = PH_REPLIED;
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct http *h = cls;
	struct req *r = *con_cls;
	int path_matched;

	if (r == NULL) {
		const char *cl;

		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		r->conn = conn;
		r->http = h;
		r->srv = h->srv;
		r->method_name = method;
		r->method = method_bit(method);
		r->path = strdup(url);
		clock_gettime(CLOCK_MONOTONIC, &r->started);
		buf_init(&r->body, h->srv->max_body);
		atomic_fetch_add(&h->inflight, 1);
		*con_cls = r;
		/* Counted in flight before this check, so that http_stop either
		 * waits for this request or this request sees it stopping and
		 * never suspends (libmicrohttpd aborts when it stops with a
		 * suspended connection). */
		if (atomic_load(&h->stopping)) {
			req_error(r, 503, "the server is shutting down");
			return queue_reply(r);
		}
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > h->srv->max_body) {
			const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
			/* A client that waits for "100 Continue" gets the refusal before
			 * sending; others would see a broken pipe, so their body is read
			 * and dropped, and the refusal comes after it. */
			if (expect && strcasecmp(expect, "100-continue") == 0) {
				req_error(r, 413, "body: %s bytes is over the limit of %zu bytes (--max-body)",
					  cl, h->srv->max_body);
				return queue_reply(r);
			}
			r->body_too_big = 1;
		}
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		if (!r->body_too_big && buf_append(&r->body, upload_data, *upload_data_size) != WEFT_OK)
			r->body_too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	switch (r->phase) {
	case PH_HEADERS:
		break;
	case PH_WOKEN:
		r->phase = PH_HEADERS;
		if (run_handler(r))
			return MHD_YES;
		return queue_reply(r);
	case PH_WRITTEN:
		reply_written(r);
		return queue_reply(r);
	case PH_PARKED:
	case PH_WRITING:
		return MHD_YES;
	case PH_REPLIED:
		return MHD_YES;
	}
	if (r->body_too_big) {
		req_error(r, 413, "body: over the limit of %zu bytes (--max-body)", h->srv->max_body);
		return queue_reply(r);
	}
	r->route = route_find(r->path, r->method, &path_matched);
	if (r->route == NULL) {
		if (path_matched)
			req_error(r, 405, "method %s is not allowed on %s", method, r->path);
		else
			req_error(r, 404, "no such endpoint: %s %s", method, r->path);
		return queue_reply(r);
	}
	if (r->route->flags & ROUTE_PREFIX)
		r->tail = r->path + strlen(r->route->path);
	if ((r->route->flags & ROUTE_BLOCKING) && parse_blocking(r) != 0)
		return queue_reply(r);
	if (run_handler(r))
		return MHD_YES;
	return queue_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct req *r = *con_cls;

	if (r == NULL)
		return;
	if (r->phase == PH_PARKED)
		hub_cancel(r->hub ? r->hub : h->srv->hub, &r->waiter);
	if (r->status == 0)
		r->status = 499;   /* the client went away before a reply */
	stats_record(h, r);
	topics_clear(r);
	free(r->topics);
	if (r->resp)
		MHD_destroy_response(r->resp);
	for (size_t i = 0; i < r->nhdr; i++) {
		free(r->hdr_name[i]);
		free(r->hdr_value[i]);
	}
	if (r->write_arg_free)
		r->write_arg_free(r->write_arg);
	json_decref(r->write.result);
	free(r->write.err);
	buf_free(&r->body);
	free(r->path);
	free(r);
	*con_cls = NULL;
	atomic_fetch_sub(&h->inflight, 1);
}

__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warnx("http", "libmicrohttpd msg=\"%s\"", msg);
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss, char **err)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE }, *res = NULL;
	size_t hl;

	if (colon == NULL || colon == addr || colon[1] == '\0')
		return weft_errf(err, WEFT_EINVAL, "address \"%s\": expected HOST:PORT", addr);
	hl = (size_t)(colon - addr);
	if (addr[0] == '[' && colon[-1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return weft_errf(err, WEFT_EINVAL, "address \"%s\": host too long", addr);
	memcpy(host, addr, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
		return weft_errf(err, WEFT_EINVAL,
				 "address \"%s\": host must be a numeric IP and port a number", addr);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return WEFT_OK;
}

int http_start(struct http **out, struct server *srv, const struct http_opts *opts, char **err)
{
	struct http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss;
	char *cert = NULL, *key = NULL;
	/* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon races its
	 * epoll workers over the listening socket and aborts ("Failed to remove
	 * listen FD from epoll set"). Parked (suspended) connections are not
	 * polled, so thousands of watchers do not lengthen the poll set. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG;
	int rc;

	if (h == NULL)
		return weft_errf(err, WEFT_ENOMEM, "http: out of memory");
	h->srv = srv;
	h->addr = strdup(opts->addr);
	pthread_mutex_init(&h->stats_lock, NULL);
	rc = parse_addr(opts->addr, &ss, err);
	if (rc != WEFT_OK)
		goto fail;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (opts->tls_cert) {
		rc = tlsfiles_check(opts->tls_cert, opts->tls_key, err);
		if (rc != WEFT_OK)
			goto fail;
		cert = file_read_all(opts->tls_cert, 1 << 20, NULL);
		key = file_read_all(opts->tls_key, 1 << 20, NULL);
		if (cert == NULL || key == NULL) {
			rc = weft_errf(err, WEFT_EINVAL, "https: cannot read %s",
				       cert == NULL ? opts->tls_cert : opts->tls_key);
			goto fail;
		}
		flags |= MHD_USE_TLS;
		h->tls = 1;
	}
	h->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, h,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, opts->threads ? opts->threads : 2,
		MHD_OPTION_CONNECTION_LIMIT, opts->max_connections ? opts->max_connections : 20000,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(MAX_WAIT_MS / 1000 + 120),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		h->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
		MHD_OPTION_HTTPS_MEM_KEY, key,
		MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
		MHD_OPTION_END);
	if (h->daemon == NULL) {
		rc = weft_errf(err, WEFT_EIO, "%s: cannot listen on %s (in use, or not an address of this machine?)",
			       h->tls ? "https" : "http", opts->addr);
		goto fail;
	}
	if (key)
		sodium_memzero(key, strlen(key));
	free(cert);
	free(key);
	log_info("http", "listening addr=%s tls=%s threads=%u", opts->addr, h->tls ? "on" : "off",
		 opts->threads ? opts->threads : 2);
	*out = h;
	return WEFT_OK;
fail:
	free(cert);
	free(key);
	free(h->addr);
	pthread_mutex_destroy(&h->stats_lock);
	free(h);
	return rc;
}

void http_stop(struct http *h)
{
	int64_t until;

	if (h == NULL)
		return;
	atomic_store(&h->stopping, 1);
	MHD_quiesce_daemon(h->daemon);
	/* In-flight requests finish: parked queries were woken by the caller
	 * (hub_wake_all) and queued writes complete on the store. Requests
	 * that start from now on get 503, and every reply closes its
	 * connection. */
	until = now_mono_ms() + 10000;
	while (atomic_load(&h->inflight) > 0 && now_mono_ms() < until)
		usleep(10000);
	MHD_stop_daemon(h->daemon);
	log_info("http", "stopped addr=%s", h->addr);
	pthread_mutex_destroy(&h->stats_lock);
	free(h->addr);
	free(h);
}
