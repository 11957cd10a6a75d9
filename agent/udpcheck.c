/* UDP checks (udpcheck.h). */
#include "udpcheck.h"
#include "lookup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/util.h>

struct udpcheck {
	struct event_base *base;
	struct evdns_base *dns;
	char *host, *port, *target;
	int64_t timeout_ms;
	udpcheck_done_fn done;
	void *arg;
	int fd;
	struct lookup *lk;          /* the name being resolved */
	struct event *timer, *ev;
};

static void udpcheck_free(struct udpcheck *u)
{
	lookup_cancel(u->lk);
	if (u->ev != NULL)
		event_free(u->ev);
	if (u->timer != NULL)
		event_free(u->timer);
	if (u->fd >= 0)
		close(u->fd);
	free(u->host);
	free(u->port);
	free(u->target);
	free(u);
}

static void finish(struct udpcheck *u, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finish(struct udpcheck *u, int ok, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	u->done(u->arg, ok, msg);
	udpcheck_free(u);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct udpcheck *u = arg;
	char b[512];
	ssize_t n;

	if (what & EV_TIMEOUT) {
		finish(u, 1, "UDP connect %s: Success", u->target);
		return;
	}
	n = recv(fd, b, sizeof(b), 0);
	if (n >= 0)
		finish(u, 1, "UDP connect %s: Success", u->target);
	else if (errno != EAGAIN && errno != EINTR)
		finish(u, 0, "read udp %s: %s", u->target, strerror(errno));
}

static void send_to(struct udpcheck *u, const struct evutil_addrinfo *ai)
{
	struct timeval tv;

	u->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0 || connect(u->fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    send(u->fd, UDPCHECK_MESSAGE, sizeof(UDPCHECK_MESSAGE) - 1, 0) < 0) {
		finish(u, 0, "dial udp %s: %s", u->target, strerror(errno));
		return;
	}
	u->ev = event_new(u->base, u->fd, EV_READ | EV_PERSIST, on_read, u);
	if (u->ev == NULL) {
		finish(u, 0, "dial udp %s: out of memory", u->target);
		return;
	}
	/* from here on the wait for an answer is the timeout, which passes */
	evtimer_del(u->timer);
	tv.tv_sec = (time_t)(u->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(u->timeout_ms % 1000) * 1000;
	event_add(u->ev, &tv);
}

static void on_resolved(void *arg, int rc, const struct evutil_addrinfo *ai)
{
	struct udpcheck *u = arg;

	u->lk = NULL;   /* gone after this */
	if (rc != 0 || ai == NULL)
		finish(u, 0, "dial udp %s: lookup %s: %s", u->target, u->host, evutil_gai_strerror(rc));
	else
		send_to(u, ai);
}

/* The timeout while the name is still being resolved. */
static void on_lookup_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct udpcheck *u = arg;

	finish(u, 0, "dial udp %s: lookup %s: i/o timeout", u->target, u->host);
}

struct udpcheck *udpcheck_start(const struct udpcheck_req *req)
{
	struct udpcheck *u = calloc(1, sizeof(*u));
	struct timeval tv;

	if (u == NULL)
		return NULL;
	u->fd = -1;
	u->base = req->base;
	u->dns = req->dns;
	u->timeout_ms = req->timeout_ms;
	u->done = req->done;
	u->arg = req->arg;
	u->host = strdup(req->host);
	u->port = strdup(req->port);
	u->target = strdup(req->target);
	u->timer = evtimer_new(u->base, on_lookup_timeout, u);
	if (u->host == NULL || u->port == NULL || u->target == NULL || u->timer == NULL ||
	    (u->lk = lookup_start(u->base, u->dns, u->host, u->port, SOCK_DGRAM, on_resolved,
				  u)) == NULL) {
		udpcheck_free(u);
		return NULL;
	}
	tv.tv_sec = (time_t)(req->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(req->timeout_ms % 1000) * 1000;
	evtimer_add(u->timer, &tv);
	return u;
}

void udpcheck_cancel(struct udpcheck *u)
{
	if (u != NULL)
		udpcheck_free(u);
}
