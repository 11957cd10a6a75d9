/* One name lookup on the caller's evdns base that can be cancelled, for the
 * UDP and H2PING checks. evdns calls back even after it is asked to cancel,
 * so a lookup is a small object of its own that outlives its caller's
 * interest and frees itself. The callback is never called from within
 * lookup_start, nor after lookup_cancel. */
#ifndef WEFT_LOOKUP_H
#define WEFT_LOOKUP_H

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

/* rc: 0, or an EVUTIL_EAI_* code (evutil_gai_strerror says it); ai: the
 * addresses, freed after the callback returns. The lookup is gone then. */
typedef void (*lookup_fn)(void *arg, int rc, const struct evutil_addrinfo *ai);

struct lookup;

/* host: a name or an address (no brackets); socktype: SOCK_STREAM or
 * SOCK_DGRAM. NULL when out of memory. */
struct lookup *lookup_start(struct event_base *base, struct evdns_base *dns, const char *host,
			    const char *port, int socktype, lookup_fn cb, void *arg);
void lookup_cancel(struct lookup *l);

#endif
