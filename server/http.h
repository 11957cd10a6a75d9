/* The HTTP layer: libmicrohttpd glue, routing, request decoding, replies,
 * blocking queries and asynchronous writes.
 *
 * A handler returns an HTTP status after replying, or REQ_SUSPEND when it
 * handed a write to the store (req_write). Blocking reads need nothing
 * special: a handler of a ROUTE_BLOCKING route calls req_watch() for what it
 * reads *before* reading it; when the request carries ?index=N and no watched
 * topic has moved past N, the layer parks the connection (no thread) and
 * runs the handler again when one moves or the wait ends. */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "store.h"

struct server;
struct req;
struct http;

#define REQ_SUSPEND 0

typedef int (*route_fn)(struct req *r);

enum {
	M_GET = 1, M_PUT = 2, M_POST = 4, M_DELETE = 8, M_HEAD = 16,
};

enum {
	ROUTE_PREFIX = 1,     /* path is a prefix; the rest is req_tail() */
	ROUTE_BLOCKING = 2,   /* supports ?index= & ?wait= */
};

struct route {
	unsigned methods;
	const char *path;
	unsigned flags;
	route_fn fn;
};

/* NULL-terminated tables from each API module (api_*.c). */
extern const struct route api_catalog_routes[];
extern const struct route api_ui_routes[];   /* the web UI's files, / */
extern const struct route api_health_routes[];
extern const struct route api_status_routes[];
extern const struct route api_acl_routes[];
extern const struct route api_kv_routes[];
extern const struct route api_session_routes[];
extern const struct route api_agent_routes[];
extern const struct route api_intentions_routes[];
extern const struct route api_mesh_routes[];
extern const struct route api_config_routes[];
extern const struct route api_ca_routes[];
extern const struct route api_proxy_routes[];   /* /v1/weft/proxy/:id/snapshot */
extern const struct route api_telemetry_routes[];   /* /v1/weft/telemetry/... */

struct http_opts {
	const char *addr;        /* host:port */
	const char *tls_cert;    /* PEM files for HTTPS, or NULL */
	const char *tls_key;
	unsigned threads;
	unsigned max_connections;
};

int http_start(struct http **out, struct server *srv, const struct http_opts *opts, char **err);
/* Stops accepting, wakes blocking queries, waits (bounded) for requests in
 * flight, then stops. */
void http_stop(struct http *h);
/* Prometheus text for the HTTP layer's own metrics. */
void http_metrics(struct http *h, struct buf *out);

/* ---- requests ---- */
struct server *req_server(struct req *r);
const char *req_method(struct req *r);
const char *req_path(struct req *r);
const char *req_tail(struct req *r);
/* NULL when absent, "" when present without a value (?recurse). */
const char *req_query(struct req *r, const char *name);
/* 1 when every query parameter's name is in the NULL-terminated list. */
int req_query_only(struct req *r, const char *const *names);
/* Every value of a repeatable parameter (?tag=a&tag=b), as a new array. */
json_t *req_query_list(struct req *r, const char *name);
const char *req_header(struct req *r, const char *name);
const char *req_body(struct req *r, size_t *len);
/* Parses the body as JSON; NULL with a 400 already sent on failure. */
json_t *req_body_json(struct req *r);
/* Reads ?name= as an unsigned integer; -1 with a 400 sent if malformed,
 * 0 when absent (and *out unchanged). */
int req_query_u64(struct req *r, const char *name, uint64_t *out);

/* ---- replies (each returns the status) ---- */
int req_reply_json(struct req *r, int status, json_t *body);    /* steals body */
int req_reply_raw(struct req *r, int status, const char *content_type, char *data, size_t len);
int req_error(struct req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Maps a weft_err code to its HTTP status and replies with msg. */
int req_errcode(struct req *r, int code, const char *msg);
void req_add_header(struct req *r, const char *name, const char *value);

/* ---- blocking queries ---- */
void req_watch(struct req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Watches a topic of another hub than the store's: in-memory data with an
 * index of its own (telemetry.h). The topics of one request must all be on
 * one hub. */
struct hub;
void req_watch_hub(struct req *r, struct hub *hub, const char *topic);
/* Raises the reply's index (X-Consul-Index) to at least idx. */
void req_index_at_least(struct req *r, uint64_t idx);
uint64_t req_index(struct req *r);

/* ---- writes ---- */
/* Queues apply(arg) on the store and returns REQ_SUSPEND. When it is
 * durable the reply is w->result (or `true`) with 200, or the error mapped
 * to its status; then arg_free(arg). */
int req_write(struct req *r, store_apply_fn apply, void *arg, void (*arg_free)(void *));

/* ---- authorisation ---- */
/* 1 when allowed; otherwise a 403 naming the token's accessor, where it came
 * from, the missing permission and the resource has been sent, and 0. */
int req_authorize(struct req *r, enum auth_perm perm, const char *resource);
/* 1 when the request carries a valid token (or in dev mode), whatever it
 * may do; otherwise a 403 saying what is wrong has been sent (naming perm
 * on resource as what the request needs), and 0. */
int req_authenticate(struct req *r, enum auth_perm perm, const char *resource);
/* The identity behind the request (NULL in dev mode or before req_authorize). */
const struct identity *req_identity(struct req *r);

#endif
