/* A small HTTP client for weft-server's API (libcurl underneath), shared by
 * weftctl and the agent.
 *
 * One struct httpc per base address. Requests are synchronous; a reply of
 * any status is a success of the transport (WEFT_OK with resp->status set),
 * a failure to connect or a timeout is WEFT_EIO with *err saying
 * "cannot reach weft-server at ADDR: Connection refused".
 *
 * The token travels as X-Consul-Token. Blocking queries: append
 * ?index=N&wait=Ds to the path, pass a timeout longer than the wait, and
 * read resp->index (X-Consul-Index) back.
 *
 * A struct httpc keeps its connection open between requests; use one per
 * thread. Programs that link httpc add $(CURL_LIBS). Call
 * httpc_global_init() once before any thread starts. */
#ifndef WEFT_HTTPC_H
#define WEFT_HTTPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct httpc;

struct httpc_opts {
	const char *address;     /* HOST:PORT, HOST, http://HOST:PORT or https://HOST:PORT */
	const char *token;       /* X-Consul-Token, or NULL */
	const char *ca_file;     /* PEM bundle to verify an https server, or NULL (system CAs) */
	long connect_timeout_ms; /* 0: 5 s */
	long timeout_ms;         /* default for a whole request; 0: 60 s */
	size_t max_body;         /* largest reply kept; 0: 64 MiB */
	/* Polled during transfers (about once a second and on signals); a
	 * non-zero return aborts the request with WEFT_ESHUTDOWN. */
	int (*abort_fn)(void *arg);
	void *abort_arg;
};

struct httpc_resp {
	long status;        /* HTTP status, 0 before a reply */
	char *body;         /* NUL-terminated, NULL when empty */
	size_t len;
	uint64_t index;     /* X-Consul-Index, 0 when absent */
	int has_index;
};

#define HTTPC_DEFAULT_PORT 8500

int httpc_global_init(char **err);

/* Parses an address into a base URL ("http://127.0.0.1:8500") and the form
 * shown in messages ("127.0.0.1:8500", or the https URL). Both allocated. */
int httpc_parse_address(const char *address, char **base_url, char **display, char **err);

int httpc_new(struct httpc **out, const struct httpc_opts *opts, char **err);
void httpc_free(struct httpc *c);
/* The address as shown in messages. */
const char *httpc_display(const struct httpc *c);

/* path begins with "/" and carries the query string, already escaped
 * (httpc_escape). body may be NULL (no body); content_type NULL sends
 * application/octet-stream with a body. timeout_ms 0 takes the default. */
int httpc_request(struct httpc *c, const char *method, const char *path,
		  const void *body, size_t body_len, const char *content_type,
		  long timeout_ms, struct httpc_resp *resp, char **err);
void httpc_resp_free(struct httpc_resp *r);

/* A JSON request (body may be NULL) whose reply is expected to be 2xx.
 * On 2xx: WEFT_OK and *out holds the parsed reply (NULL if the body was
 * empty; out may be NULL to ignore it). Otherwise the weft_err matching
 * the status (400 EINVAL, 401 EAUTH, 403 EPERM, 404 ENOENT, 409 ECONFLICT,
 * 413 ETOOBIG, else EIO) with *err holding the server's message
 * (its JSON "error", or its text) and " (HTTP 400)". resp may be NULL. */
int httpc_json(struct httpc *c, const char *method, const char *path, json_t *body,
	       long timeout_ms, json_t **out, struct httpc_resp *resp, char **err);

/* The server's message from an error reply: the "error" member of a JSON
 * body, else the body's text (trimmed), else the status line. Allocated. */
char *httpc_error_message(const struct httpc_resp *r);

/* 1 for a 404 that means "no such object" (Consul's KV answers a missing
 * key with an empty 404), 0 for other replies, including weft-server's
 * "no such endpoint" 404 from a server that lacks the API. */
int httpc_missing_object(const struct httpc_resp *r);

/* Percent-encodes s for a URL path (keep_slash) or a query value. Allocated. */
char *httpc_escape(const char *s, int keep_slash);

#endif
