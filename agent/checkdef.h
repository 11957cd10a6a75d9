/* Health-check definitions for the runner (checks.c): a chk_def checked
 * field by field and copied into a cdef, with what follows from it (the
 * floors and defaults applied, the URLs and request headers built). Errors
 * name the check and the field. Private to the agent's check modules. */
#ifndef WEFT_CHECKDEF_H
#define WEFT_CHECKDEF_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "checks.h"
#include "grpc_health.h"

/* Bounds on what a definition may hold. */
#define CHK_MAX_CHECKS 10000
#define CHK_ID_MAX 512
#define CHK_URL_MAX 8192
#define CHK_METHOD_MAX 32
#define CHK_HEADER_VALUES_MAX 128
#define CHK_HEADER_LINE_MAX 8192
#define CHK_BODY_MAX (64 * 1024)
#define CHK_ARGS_MAX 1024
#define CHK_ARG_MAX (64 * 1024)
#define CHK_DURATION_MAX (366LL * 24 * 3600 * 1000)   /* a year, in ms */

#define CHK_DEFAULT_TIMEOUT_MS 10000
#define CHK_DEFAULT_SCRIPT_TIMEOUT_MS 30000
#define CHK_DEFAULT_MIN_INTERVAL_MS 1000
#define CHK_DEFAULT_MIN_DEREGISTER_MS 60000
#define CHK_USER_AGENT "Weft Health Check"
#define CHK_THRESHOLD_MAX 1000       /* SuccessBeforePassing and the failures */

struct cdef {
	char *id;
	char *service_id;
	enum chk_type type;
	char *http;
	char *method;
	json_t *header;
	char *body;
	int tls_skip_verify;
	char *tcp;
	char *udp;
	char *grpc;
	int grpc_use_tls;
	char *h2ping;
	int h2ping_use_tls;
	char **args;
	size_t nargs;
	int64_t interval_ms, timeout_ms, ttl_ms, deregister_after_ms;
	enum chk_status initial;
	int success_before_passing, failures_before_warning, failures_before_critical;
	/* derived */
	int64_t run_interval_ms;     /* raised to the floor */
	int64_t run_timeout_ms;      /* defaulted */
	int64_t reap_after_ms;       /* raised to the floor; 0: never */
	int64_t floor_interval_ms, floor_reap_ms;   /* the floors, when they applied */
	char *tcp_url;               /* http://HOST:PORT/ for libcurl's connect-only mode */
	struct curl_slist *headers;  /* HTTP, gRPC request headers */
	char *grpc_url;              /* http(s)://HOST:PORT/grpc.health.v1.Health/Check */
	unsigned char grpc_req[GRPC_SERVICE_MAX + 8];   /* the framed request */
	size_t grpc_req_len;
	char *udp_host, *udp_port;   /* UDP, H2PING: HOST (no brackets), PORT, to resolve */
};

/* Checks in and copies out; index names a check without an ID in errors.
 * WEFT_OK, or WEFT_EINVAL/WEFT_ENOMEM with *err ("check \"web\": HTTP: ..."). */
int cdef_make(const struct chk_def *in, size_t index, const struct chk_runner_opts *o,
	      struct cdef **out, char **err);
void cdef_free(struct cdef *d);
/* The definitions as given are the same (the derived fields follow). */
int cdef_equal(const struct cdef *a, const struct cdef *b);
/* "HTTP", "TCP", "gRPC", ... for log lines and errors. */
const char *cdef_type_name(enum chk_type t);

#endif
