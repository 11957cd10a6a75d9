/* Consul's UDP check, one run: resolve HOST (the caller's evdns base), send
 * a datagram from a connected socket, wait for the timeout. UDP has no
 * handshake: an answer passes at once, silence until the timeout passes
 * too; an error the kernel reports for the socket (above all ECONNREFUSED,
 * an ICMP port unreachable) is critical, as is a name that does not
 * resolve. Driven by the caller's libevent loop. */
#ifndef WEFT_UDPCHECK_H
#define WEFT_UDPCHECK_H

#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>

/* What a UDP check sends (a datagram the service may answer or ignore). */
#define UDPCHECK_MESSAGE "weft-agent health check"

/* ok: 1 passing, 0 critical; msg: Consul's wording ("UDP connect
 * 127.0.0.1:53: Success", "read udp 127.0.0.1:53: Connection refused").
 * Called once, from the loop, never from udpcheck_start. */
typedef void (*udpcheck_done_fn)(void *arg, int ok, const char *msg);

struct udpcheck_req {
	struct event_base *base;
	struct evdns_base *dns;
	const char *host, *port;    /* a name or an address (no brackets) */
	const char *target;         /* HOST:PORT as the user wrote it, for messages */
	int64_t timeout_ms;
	udpcheck_done_fn done;
	void *arg;
};

struct udpcheck;

/* NULL when out of memory. */
struct udpcheck *udpcheck_start(const struct udpcheck_req *req);
/* Ends a run that has not called back; done is not called. */
void udpcheck_cancel(struct udpcheck *u);

#endif
