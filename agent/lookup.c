/* Cancellable lookups (lookup.h). */
#include "lookup.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

struct lookup {
	struct evdns_base *dns;
	struct event *kick;         /* starts the lookup from the loop */
	char *host, *port;
	int socktype;
	lookup_fn cb;
	void *arg;
	int resolving;              /* evdns will call back */
	int cancelled;
};

static void lookup_free(struct lookup *l)
{
	if (l->kick != NULL)
		event_free(l->kick);
	free(l->host);
	free(l->port);
	free(l);
}

static void on_resolved(int rc, struct evutil_addrinfo *res, void *arg)
{
	struct lookup *l = arg;

	if (!l->cancelled)
		l->cb(l->arg, rc, rc == 0 ? res : NULL);
	if (res != NULL)
		evutil_freeaddrinfo(res);
	lookup_free(l);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct lookup *l = arg;
	struct evutil_addrinfo hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = l->socktype;
	hints.ai_protocol = l->socktype == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP;
	l->resolving = 1;
	/* may call back before it returns (an address, /etc/hosts), and l be
	 * gone: l is not touched after */
	evdns_getaddrinfo(l->dns, l->host, l->port, &hints, on_resolved, l);
}

struct lookup *lookup_start(struct event_base *base, struct evdns_base *dns, const char *host,
			    const char *port, int socktype, lookup_fn cb, void *arg)
{
	struct lookup *l = calloc(1, sizeof(*l));
	struct timeval now = { 0, 0 };

	if (l == NULL)
		return NULL;
	l->dns = dns;
	l->socktype = socktype;
	l->cb = cb;
	l->arg = arg;
	l->host = strdup(host);
	l->port = strdup(port);
	l->kick = evtimer_new(base, on_kick, l);
	if (l->host == NULL || l->port == NULL || l->kick == NULL || evtimer_add(l->kick, &now) != 0) {
		lookup_free(l);
		return NULL;
	}
	return l;
}

void lookup_cancel(struct lookup *l)
{
	if (l == NULL)
		return;
	if (l->resolving)
		l->cancelled = 1;   /* freed when evdns calls back */
	else
		lookup_free(l);
}
