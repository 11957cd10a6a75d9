/* Consul's H2PING check: open an HTTP/2 connection (h2c, or TLS with ALPN
 * "h2"), send the client preface and a PING, and wait for the server to
 * acknowledge it. One h2ping is one run, driven by the caller's libevent
 * loop; names are resolved through the caller's evdns base. What the server
 * sends is untrusted: frames are read by h2ping_scan (fuzzed), at most
 * H2PING_READ_MAX bytes of them. */
#ifndef WEFT_H2PING_H
#define WEFT_H2PING_H

#include <stddef.h>
#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#define H2PING_READ_MAX (64 * 1024)   /* bytes read before the ACK must have come */
#define H2PING_FRAME_MAX 16384         /* SETTINGS_MAX_FRAME_SIZE we leave at its default */

/* ---- the frames (no I/O) ---- */

enum h2ping_scan {
	H2PING_MORE,      /* no verdict yet: read more */
	H2PING_ACKED,     /* our PING came back with ACK */
	H2PING_GOAWAY,    /* the server closes: *code says why */
	H2PING_BAD,       /* not HTTP/2 as a server speaks it: *why */
};

struct h2ping_frames {
	int seen_settings;          /* the server's preface (a SETTINGS frame) came */
};

/* Reads the whole frames at p[0..n) (a frame cut short waits for more):
 * *used is what they took. ping: the 8 bytes our PING carried. */
enum h2ping_scan h2ping_scan(struct h2ping_frames *st, const unsigned char *p, size_t n,
			     const unsigned char ping[8], size_t *used, uint32_t *code,
			     const char **why);

/* The bytes a client sends first: the preface, an empty SETTINGS, the PING. */
size_t h2ping_hello(const unsigned char ping[8], unsigned char *out, size_t size);

/* ---- a run ---- */

/* ok: 1 acknowledged; msg: Consul's wording, "HTTP2 ping was successful" or
 * what failed. Called once, from the loop, never from h2ping_start. */
typedef void (*h2ping_done_fn)(void *arg, int ok, const char *msg);

struct h2ping_req {
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *tls;               /* NULL: h2c. Its ALPN must offer "h2" */
	int verify;                 /* check the certificate's name (host or IP) */
	const char *host, *port;    /* a name or an address (no brackets) */
	const char *target;         /* HOST:PORT as the user wrote it, for messages */
	int64_t timeout_ms;         /* the whole run */
	h2ping_done_fn done;
	void *arg;
};

struct h2ping;

/* NULL when out of memory. */
struct h2ping *h2ping_start(const struct h2ping_req *req);
/* Ends a run that has not called back; done is not called. */
void h2ping_cancel(struct h2ping *p);

#endif
