/* px_proxy: a listener and its connections: accept, optional mTLS on
 * either hop (px_tls, through libevent's public bufferevent_openssl API),
 * then an HTTP/1.1 relay (px_http1) or a byte relay to one upstream.
 * TLS stays below the relay: both see bufferevents (docs/proxy-mtls.md). */
#ifndef WEFT_PX_PROXY_H
#define WEFT_PX_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "px_http1.h"

struct event_base;
struct px_config_slot;
struct px_timeouts;
struct px_tls;
struct px_stats;
struct px_accesslog;

enum px_mode { PX_MODE_HTTP, PX_MODE_TCP };

/* The hook for intentions (px_enforce implements it): called once the
 * caller is known (L4: req NULL; nothing has reached the upstream yet) and,
 * in HTTP mode, for each request (its line and header fields). Return 0 to
 * allow. A denial writes what decided into denied_by (NUL-terminated, at
 * most denied_by_size bytes, header-safe) and closes the connection (L4)
 * or answers 403 with an X-Weft-Denied-By header carrying it and closes
 * (L7). peer_id is NULL on a plaintext listener. The hook logs the denial. */
struct px_request_info {
	const struct px_http1_msg *msg;
	const char *line;      /* "METHOD target" */
	size_t line_len;
	const struct px_http1_header *headers;
	size_t n_headers;
};
#define PX_DENIED_BY_MAX 256
typedef int (*px_authorize_fn)(void *ud, const char *peer_id, const struct px_request_info *req,
			       char *denied_by, size_t denied_by_size);

/* Where a listener's connections (TCP) or requests (HTTP) go: either one
 * fixed address (upstream, upstream_name, upstream_id: the inbound's app,
 * or the flags' --upstream), or, when slot is set, the endpoints of the
 * snapshot's upstream named upstream_cluster, balanced, retried and
 * ejected as its policy says (px_cluster), and followed as the slot
 * changes. Each worker's listener keeps its own px_cluster and pools. */
struct px_listener_cfg {
	const char *name;               /* "inbound", "outbound", "listen": for log lines */
	enum px_mode mode;
	struct sockaddr_in listen;
	struct sockaddr_in upstream;
	char upstream_name[64];         /* "host:port", the Host added to HTTP/1.0 requests */
	struct px_config_slot *slot;    /* non-NULL: the upstream comes from the snapshot */
	const char *upstream_cluster;   /* with slot: the upstream's Name */
	const struct px_timeouts *timeouts; /* fixed upstream: NULL for the defaults */
	uint32_t max_connections;       /* 0: no limit */
	uint32_t max_pending_requests;  /* in flight to the upstream at once; 0: no limit */
	uint64_t max_body_bytes;        /* request bodies; 0: no limit */
	uint32_t max_header_bytes;      /* a request's header section; 0: the parser's default */
	const char *via;
	const char *peer_id;            /* plaintext listener: XFCC URI= stand-in (tests) */
	const char *by_id;              /* plaintext listener: XFCC By= */
	struct px_tls *tls_in;          /* inbound mTLS server, or NULL */
	struct px_tls *tls_out;         /* outbound mTLS client, or NULL */
	const char *upstream_id;        /* with tls_out: the SPIFFE ID required */
	const char *sni;                /* with tls_out: server name sent */
	px_authorize_fn authorize;      /* NULL: allow all */
	void *authorize_ud;
	struct px_stats *stats;         /* NULL: none kept (px_stats.h) */
	struct px_accesslog *access_log; /* NULL: none written (px_accesslog.h) */
	bool reuse_port;                /* SO_REUSEPORT: one listener per worker on one port */
};

struct px_listener;

/* Binds and starts accepting on base. cfg is copied; its strings and
 * px_tls objects must outlive the listener. */
int px_listener_new(struct px_listener **out, struct event_base *base,
		    const struct px_listener_cfg *cfg, char **err);
void px_listener_free(struct px_listener *l);

/* Takes an accepted connection as if l had accepted it itself (the
 * transparent listener hands over what it routed to l's upstream:
 * px_transparent.h). Call on l's event loop; fd is owned by l from here
 * (closed at once while l drains). */
void px_listener_adopt(struct px_listener *l, int fd, const struct sockaddr_in *peer);

/* Graceful shutdown (px_admin's /drain): closes the listening socket (new
 * connections are refused), closes idle keep-alive connections, and ends
 * the others after the response in flight (sent with Connection: close).
 * TCP-mode connections go on until either side closes. */
void px_listener_drain(struct px_listener *l);
/* Connections still open. */
size_t px_listener_conns(const struct px_listener *l);

#endif
