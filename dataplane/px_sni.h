/* px_sni: the passthrough listener (docs/proxy-passthrough.md): routes TLS
 * connections by the server name of their ClientHello without decrypting
 * them, for a zone's ingress gateway.
 *
 * Three parts:
 *  - px_sni_parse(): a strict, bounded, stateless parser of the TLS records
 *    that carry a ClientHello, extracting its server_name (host_name);
 *  - a route table (struct px_sni_routes): exact names and "*." wildcards
 *    of one label, case-insensitive, each with endpoints (IPv4);
 *  - the listener: peeks the ClientHello (a deadline, a size bound), picks a
 *    route, connects to one of its endpoints (round robin, the next one on
 *    a connect failure), forwards the bytes already read, then relays both
 *    ways as a byte tunnel with half-close and backpressure.
 * A connection with an unknown name, no name, bytes that are not a TLS
 * ClientHello, or no ClientHello in time is closed with nothing sent, and
 * one info line says why ("sni refused: ... reason=..."). */
#ifndef WEFT_PX_SNI_H
#define WEFT_PX_SNI_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct px_stats;
struct px_passthrough;

/* ---- the ClientHello parser ---- */

/* The records carrying the ClientHello, headers included, must end within
 * this many bytes: a longer hello is refused (real ones are 200..2000). */
#define PX_SNI_MAX_BYTES 16384
/* A DNS name's longest text form, without a terminating NUL. */
#define PX_SNI_NAME_MAX 253

enum px_sni_result {
	PX_SNI_ERROR = -1,      /* not TLS, not a ClientHello, malformed, or too big */
	PX_SNI_NEED_MORE = 0,   /* a prefix of a valid hello: read more */
	PX_SNI_FOUND = 1,       /* out holds the host_name, lowercased */
	PX_SNI_NONE = 2,        /* a valid ClientHello without a host_name */
};

/* Parses data[0..len) (everything read from the client so far; the hello
 * may span several handshake records, which may end anywhere) without
 * reading outside it. Every length the peer sent is checked against its
 * container; the extensions must fill their block exactly; the server_name
 * extension may appear once, with one host_name of 1..253 bytes of
 * letters, digits, '-', '_' and '.' (no empty label, no trailing dot).
 * On PX_SNI_FOUND, out (outsize bytes, at least PX_SNI_NAME_MAX + 1 to
 * take any name) holds the name lowercased and NUL-terminated; a name that
 * does not fit is PX_SNI_ERROR. Bytes after the hello are ignored. */
enum px_sni_result px_sni_parse(const uint8_t *data, size_t len, char *out, size_t outsize);
/* "error", "need-more", "found", "none". */
const char *px_sni_result_string(enum px_sni_result r);

/* Whether name is a route name: a DNS name as px_sni_parse accepts (any
 * case), or, with wildcard, also "*." followed by one. */
bool px_sni_name_valid(const char *name, bool wildcard);

/* ---- the route table ---- */

#define PX_SNI_ROUTES_MAX 4096
#define PX_SNI_ENDPOINTS_MAX 256        /* per route */

/* Immutable once built: one table may serve several listeners (workers)
 * on several threads. */
struct px_sni_routes;

int px_sni_routes_new(struct px_sni_routes **out);
void px_sni_routes_free(struct px_sni_routes *t);
/* Adds a route (name copied, lowercased). WEFT_EINVAL with *err naming
 * the route for a bad name, a name given twice (any case), no endpoint
 * or too many. */
int px_sni_routes_add(struct px_sni_routes *t, const char *name, const struct sockaddr_in *eps,
		      size_t n, char **err);
/* Adds "NAME=IP:PORT[,IP:PORT...]" (weft-proxy --route). */
int px_sni_routes_add_spec(struct px_sni_routes *t, const char *spec, char **err);
/* Adds every route of a snapshot's Passthrough section (px_config.h);
 * *err names the field ("Passthrough.Routes[1].Endpoints[0].Address")
 * when an address is not IPv4. */
int px_sni_routes_add_config(struct px_sni_routes *t, const struct px_passthrough *p, char **err);
size_t px_sni_routes_count(const struct px_sni_routes *t);
/* The route for a server name (any case): the exact name, else "*."
 * followed by the name without its first label. Returns its index, or -1. */
int px_sni_routes_lookup(const struct px_sni_routes *t, const char *name);
const char *px_sni_routes_name(const struct px_sni_routes *t, int route);
size_t px_sni_routes_n_endpoints(const struct px_sni_routes *t, int route);
const struct sockaddr_in *px_sni_routes_endpoint(const struct px_sni_routes *t, int route, size_t i);

/* ---- the listener ---- */

#define PX_SNI_HELLO_TIMEOUT_MS 5000
#define PX_SNI_CONNECT_TIMEOUT_MS 5000

struct px_sni_cfg {
	const char *name;               /* "passthrough": for log lines and /stats */
	struct sockaddr_in listen;
	const struct px_sni_routes *routes;
	uint32_t hello_timeout_ms;      /* 0: PX_SNI_HELLO_TIMEOUT_MS */
	uint32_t connect_timeout_ms;    /* per endpoint tried; 0: PX_SNI_CONNECT_TIMEOUT_MS */
	struct px_stats *stats;         /* NULL: none kept (px_stats.h) */
	bool reuse_port;                /* SO_REUSEPORT: one listener per worker on one port */
};

struct px_sni_listener;

/* Binds and starts accepting on base. cfg is copied; its name, routes and
 * stats must outlive the listener. */
int px_sni_listener_new(struct px_sni_listener **out, struct event_base *base,
			const struct px_sni_cfg *cfg, char **err);
/* Closes every connection; call once base's loop has stopped. */
void px_sni_listener_free(struct px_sni_listener *l);
/* Stops accepting (the socket closes); tunnels go on until both sides
 * close, connections still sending their hello are closed. */
void px_sni_listener_drain(struct px_sni_listener *l);
/* Connections still open. */
size_t px_sni_listener_conns(const struct px_sni_listener *l);

/* Connections refused so far by this listener, by reason. */
enum px_sni_refusal {
	PX_SNI_REFUSED_NO_ROUTE = 0,
	PX_SNI_REFUSED_NO_SNI,
	PX_SNI_REFUSED_NOT_TLS,
	PX_SNI_REFUSED_TIMEOUT,
	PX_SNI_REFUSED_N
};
uint64_t px_sni_listener_refused(const struct px_sni_listener *l, enum px_sni_refusal r);

#endif
