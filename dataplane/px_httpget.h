/* px_httpget: the small HTTP/1.1 GET client of weft-proxy's snapshot
 * thread (px_fetch), on libevent's evhttp and bufferevent_openssl, so that
 * the data plane does not load libcurl (docs/proxy-config.md "From the
 * control plane").
 *
 * Synchronous: px_httpget_get runs the client's own event_base until the
 * reply, a timeout or px_httpget_interrupt. Use one client from one thread
 * at a time. The connection stays open between requests (HTTP/1.1
 * keep-alive); a request that fails on a reused connection before any
 * reply (the server closed it meanwhile) is sent once more on a new one.
 *
 * Addresses: http://HOST:PORT, https://HOST:PORT, HOST:PORT or HOST (http,
 * port 8500), as lib/httpc takes them. Names are resolved with evdns
 * (/etc/hosts, then /etc/resolv.conf's servers), without blocking, each
 * address tried in turn. https verifies the server's certificate against
 * ca_file (or the system's CAs) and the host name (or IP address), sends
 * the name as SNI, and speaks TLS 1.2 or later.
 *
 * Errors say where and why, as lib/httpc's: "cannot reach weft-server at
 * 127.0.0.1:8500: Connection refused", "... TLS: the server's certificate
 * is refused: IP address mismatch (...)". evhttp does not hand back the
 * socket error of a failed request; when a new connection fails before any
 * reply, one connect() to the same address (bounded by the connect
 * timeout) finds it. */
#ifndef WEFT_PX_HTTPGET_H
#define WEFT_PX_HTTPGET_H

#include <stddef.h>
#include <stdint.h>

#define PX_HTTPGET_DEFAULT_PORT 8500
#define PX_HTTPGET_CONNECT_TIMEOUT_MS 5000
#define PX_HTTPGET_MAX_HEADERS (64 * 1024)

struct px_httpget_opts {
	const char *address;      /* see above */
	const char *token;        /* X-Consul-Token, or NULL */
	const char *ca_file;      /* PEM bundle for an https server, or NULL: the system's */
	long connect_timeout_ms;  /* name, TCP and TLS handshake; 0: 5 s */
	size_t max_body;          /* largest reply body; 0: 64 MiB */
};

struct px_httpget_resp {
	long status;        /* HTTP status */
	char *body;         /* NUL-terminated, NULL when empty */
	size_t len;
	uint64_t index;     /* X-Consul-Index, 0 when absent */
	int has_index;
};

struct px_httpget;

/* Parses the address, loads the CA bundle (an unreadable --server-ca is an
 * error here), makes the event_base. No connection yet. */
int px_httpget_new(struct px_httpget **out, const struct px_httpget_opts *o, char **err);

/* Closes the connection and frees. NULL is fine. */
void px_httpget_free(struct px_httpget *g);

/* The address as shown in messages: "127.0.0.1:8500", "https://host:8501". */
const char *px_httpget_display(const struct px_httpget *g);

/* GET path (it begins with "/" and carries the escaped query) within
 * timeout_ms for the whole request. A reply of any status is WEFT_OK with
 * resp filled (free it with px_httpget_resp_free). Otherwise: WEFT_EIO
 * (cannot connect, TLS, timeout, a reply that does not parse),
 * WEFT_ETOOBIG (body over max_body), WEFT_ESHUTDOWN (interrupted), with
 * *err saying what. */
int px_httpget_get(struct px_httpget *g, const char *path, long timeout_ms,
		   struct px_httpget_resp *resp, char **err);

/* From any thread: the request in progress, and every later one, ends at
 * once with WEFT_ESHUTDOWN. */
void px_httpget_interrupt(struct px_httpget *g);

void px_httpget_resp_free(struct px_httpget_resp *r);

/* TCP connections opened so far (keep-alive shows as 1 for many requests). */
unsigned px_httpget_connections(const struct px_httpget *g);

/* The server's message from an error reply: the "error" member of a JSON
 * body, else the body's text (trimmed), else the status. Allocated. */
char *px_httpget_error_message(const struct px_httpget_resp *r);

/* Percent-encodes s for a path segment or a query value. Allocated. */
char *px_httpget_escape(const char *s);

/* Splits an address: *https, *host (allocated, no brackets), *port,
 * *display (allocated). */
int px_httpget_parse_address(const char *address, int *https, char **host, unsigned *port,
			     char **display, char **err);

#endif
