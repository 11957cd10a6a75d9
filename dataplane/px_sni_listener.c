/* px_sni_listener: the passthrough listener (px_sni.h,
 * docs/proxy-passthrough.md): the hello is read and parsed (px_sni_parse),
 * the route picked, an endpoint connected, then a byte tunnel. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "err.h"
#include "log.h"
#include "px_sni.h"
#include "px_splice.h"
#include "px_stats.h"


struct px_sni_listener {
	struct event_base *base;
	struct evconnlistener *ev;
	struct px_sni_cfg cfg;
	struct sconn *conns;            /* open ones (and closed ones not yet freed) */
	size_t *rr;                     /* per route: the next endpoint to start with */
	int sid;                        /* px_stats listener index */
	bool draining;
	uint64_t refused[PX_SNI_REFUSED_N];
};

enum phase { PH_HELLO, PH_CONNECTING, PH_TUNNEL };

struct sconn {
	struct px_sni_listener *l;
	struct sconn *_prev, *_next;    /* in l->conns */
	struct bufferevent *cli, *up;
	struct bufferevent *failed;     /* the last endpoint that failed, freed on the next try */
	struct event *timer;            /* PH_HELLO: the deadline; PH_CONNECTING: the next try */
	enum phase phase;
	char peer[INET_ADDRSTRLEN + 8];
	char sni[PX_SNI_NAME_MAX + 1];
	char up_name[INET_ADDRSTRLEN + 8];
	int route;
	struct px_splice *sp;           /* PH_TUNNEL */
	size_t prefix;                  /* bytes read before the tunnel (the hello) */
	size_t start, tries;            /* round robin: the first endpoint, how many tried */
	bool dead;
};

static void nodelay(evutil_socket_t fd)
{
	int one = 1;

	/* small writes (a response head, a TLS record) go out now, not after
	 * the peer's delayed ACK: Nagle would add ~40 ms per request */
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static const char *const REFUSALS[PX_SNI_REFUSED_N] = {"no-route", "no-sni", "not-tls", "timeout"};

static void conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;

	(void)fd;
	(void)what;
	if (c->_prev)
		c->_prev->_next = c->_next;
	else if (c->l->conns == c)
		c->l->conns = c->_next;
	if (c->_next)
		c->_next->_prev = c->_prev;
	px_stats_conn_close(c->l->cfg.stats, c->l->sid);
	if (c->timer)
		event_free(c->timer);
	px_splice_free(c->sp);
	if (c->cli)
		bufferevent_free(c->cli);
	if (c->up)
		bufferevent_free(c->up);
	if (c->failed)
		bufferevent_free(c->failed);
	free(c);
}

static void conn_close(struct sconn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	event_del(c->timer);
	if (c->cli)
		bufferevent_disable(c->cli, EV_READ | EV_WRITE);
	if (c->up)
		bufferevent_disable(c->up, EV_READ | EV_WRITE);
	/* never free inside our own callbacks: from the loop, right after */
	event_base_once(c->l->base, -1, EV_TIMEOUT, conn_free_cb, c, NULL);
}

/* Closed with nothing sent: counted and logged once. */
static void refuse(struct sconn *c, enum px_sni_refusal why)
{
	c->l->refused[why]++;
	px_stats_sni_refused(c->l->cfg.stats, c->l->sid, REFUSALS[why]);
	log_info("proxy", "sni refused: listener=%s peer=%s sni=\"%s\" reason=%s", c->l->cfg.name,
		 c->peer, c->sni, REFUSALS[why]);
	conn_close(c);
}

static void count_bytes(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct sconn *c = arg;

	/* client input: what arrived; client output: what was written */
	if (b == bufferevent_get_input(c->cli))
		px_stats_bytes(c->l->cfg.stats, c->l->sid, info->n_added, 0);
	else
		px_stats_bytes(c->l->cfg.stats, c->l->sid, 0, info->n_deleted);
}

/* ---- the tunnel: px_splice moves the bytes in the kernel ---- */

static void tunnel_done(void *ud, const struct px_splice_result *r)
{
	struct sconn *c = ud;

	/* the hello came through the client bufferevent, counted there */
	px_stats_bytes(c->l->cfg.stats, c->l->sid, r->a_to_b > c->prefix ? r->a_to_b - c->prefix : 0,
		       r->b_to_a);
	log_debug("proxy", "sni tunnel closed: listener=%s peer=%s sni=\"%s\" upstream=%s "
		  "to-upstream=%llu to-client=%llu how=%s", c->l->cfg.name, c->peer, c->sni, c->up_name,
		  (unsigned long long)r->a_to_b, (unsigned long long)r->b_to_a,
		  r->error ? "error" : r->idle_timeout ? "idle" : "both-closed");
	conn_close(c);
}

/* The upstream is connected: the hello (and anything after it) goes first,
 * as it came, then both sockets go to px_splice (not duplicated: the
 * workers' epoll changelist would not survive a dup()). */
static void tunnel_start(struct sconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	evutil_socket_t fa = bufferevent_getfd(c->cli), fb = bufferevent_getfd(c->up);
	char *err = NULL;

	c->phase = PH_TUNNEL;
	log_debug("proxy", "sni tunnel: listener=%s peer=%s sni=\"%s\" route=%s upstream=%s",
		  c->l->cfg.name, c->peer, c->sni, px_sni_routes_name(c->l->cfg.routes, c->route),
		  c->up_name);
	c->prefix = evbuffer_get_length(in);
	bufferevent_setfd(c->cli, -1);
	bufferevent_setfd(c->up, -1);
	if (px_splice_new(&c->sp, c->l->base, fa, fb, evbuffer_pullup(in, -1), c->prefix, 0,
			  tunnel_done, c, &err) != WEFT_OK) {
		log_warnx("proxy", "sni tunnel: listener=%s peer=%s: %s", c->l->cfg.name, c->peer,
			  err ? err : "splice failed");
		free(err);
		conn_close(c);
		return;
	}
	event_del(c->timer);
	bufferevent_free(c->cli);
	bufferevent_free(c->up);
	c->cli = c->up = NULL;
}

/* ---- connecting: round robin over the route's endpoints ---- */

static void up_connect_event(struct bufferevent *bev, short what, void *arg);

static void connect_failed(struct sconn *c, const char *why)
{
	px_stats_upstream_connect_failure(c->l->cfg.stats, c->l->sid);
	log_warnx("proxy", "sni upstream %s: cannot connect: listener=%s peer=%s sni=\"%s\" "
		  "error=\"%s\"%s", c->up_name, c->l->cfg.name, c->peer, c->sni, why,
		  c->tries < px_sni_routes_n_endpoints(c->l->cfg.routes, c->route) ?
		  " (trying the next endpoint)" : "");
}

static void connect_next(struct sconn *c)
{
	const struct px_sni_routes *t = c->l->cfg.routes;
	size_t n = px_sni_routes_n_endpoints(t, c->route);
	uint32_t ms = c->l->cfg.connect_timeout_ms ? c->l->cfg.connect_timeout_ms :
		      PX_SNI_CONNECT_TIMEOUT_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	while (c->tries < n) {
		const struct sockaddr_in *sa = px_sni_routes_endpoint(t, c->route, (c->start + c->tries) % n);
		char ip[INET_ADDRSTRLEN];

		c->tries++;
		inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
		snprintf(c->up_name, sizeof(c->up_name), "%s:%u", ip, (unsigned)ntohs(sa->sin_port));
		c->up = bufferevent_socket_new(c->l->base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (c->up == NULL) {
			connect_failed(c, "out of memory");
			continue;
		}
		bufferevent_setcb(c->up, NULL, NULL, up_connect_event, c);
		bufferevent_set_timeouts(c->up, NULL, &tv);     /* a connect waits for writability */
		if (bufferevent_socket_connect(c->up, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
			nodelay(bufferevent_getfd(c->up));
			return;
		}
		connect_failed(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(c->up);
		c->up = NULL;
	}
	log_warnx("proxy", "sni upstream unreachable: listener=%s peer=%s sni=\"%s\" route=%s "
		  "endpoints=%zu (closing the client)", c->l->cfg.name, c->peer, c->sni,
		  px_sni_routes_name(t, c->route), n);
	conn_close(c);
}

static void up_connect_event(struct bufferevent *bev, short what, void *arg)
{
	struct sconn *c = arg;

	if (c->dead)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		tunnel_start(c);
		return;
	}
	connect_failed(c, (what & BEV_EVENT_TIMEOUT) ? "timed out" :
		       evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	/* the next try runs from the loop: bev is freed outside its callback */
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	c->failed = bev;
	c->up = NULL;
	event_active(c->timer, EV_TIMEOUT, 0);
}

/* ---- the hello ---- */

static void conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;

	(void)fd;
	(void)what;
	if (c->dead)
		return;
	if (c->phase == PH_HELLO) {
		refuse(c, PX_SNI_REFUSED_TIMEOUT);
		return;
	}
	if (c->failed) {
		bufferevent_free(c->failed);
		c->failed = NULL;
	}
	connect_next(c);
}

static void hello_read(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	const uint8_t *p;

	if (c->dead || c->phase != PH_HELLO)
		return;
	if (n > PX_SNI_MAX_BYTES)
		n = PX_SNI_MAX_BYTES;
	p = evbuffer_pullup(in, (ev_ssize_t)n);
	switch (px_sni_parse(p, n, c->sni, sizeof(c->sni))) {
	case PX_SNI_NEED_MORE:
		return;
	case PX_SNI_NONE:
		refuse(c, PX_SNI_REFUSED_NO_SNI);
		return;
	case PX_SNI_ERROR:
		refuse(c, PX_SNI_REFUSED_NOT_TLS);
		return;
	case PX_SNI_FOUND:
		break;
	}
	c->route = px_sni_routes_lookup(c->l->cfg.routes, c->sni);
	if (c->route < 0) {
		refuse(c, PX_SNI_REFUSED_NO_ROUTE);
		return;
	}
	/* the client waits for the server's answer: nothing more is read
	 * until the upstream is there */
	event_del(c->timer);
	bufferevent_disable(c->cli, EV_READ);
	c->phase = PH_CONNECTING;
	c->start = c->l->rr[c->route]++ % px_sni_routes_n_endpoints(c->l->cfg.routes, c->route);
	connect_next(c);
}

static void hello_event(struct bufferevent *bev, short what, void *arg)
{
	struct sconn *c = arg;

	if (c->dead)
		return;
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		/* the client gave up (or failed) within its hello */
		refuse(c, PX_SNI_REFUSED_NOT_TLS);
		return;
	}
	log_debug("proxy", "sni closed before any byte: listener=%s peer=%s", c->l->cfg.name, c->peer);
	conn_close(c);
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct px_sni_listener *l = arg;
	struct sconn *c = calloc(1, sizeof(*c));
	uint32_t ms = l->cfg.hello_timeout_ms ? l->cfg.hello_timeout_ms : PX_SNI_HELLO_TIMEOUT_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	char ip[INET_ADDRSTRLEN] = "?";

	(void)ev;
	(void)len;
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->l = l;
	c->route = -1;
	nodelay(fd);
	inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	snprintf(c->peer, sizeof(c->peer), "%s:%u", ip,
		 (unsigned)ntohs(((struct sockaddr_in *)sa)->sin_port));
	c->cli = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = event_new(l->base, -1, 0, conn_timer, c);
	if (c->cli == NULL || c->timer == NULL) {
		if (c->cli == NULL)
			evutil_closesocket(fd);
		else
			bufferevent_free(c->cli);
		if (c->timer)
			event_free(c->timer);
		free(c);
		return;
	}
	c->_next = l->conns;
	if (l->conns)
		l->conns->_prev = c;
	l->conns = c;
	px_stats_conn_open(l->cfg.stats, l->sid);
	if (l->cfg.stats != NULL) {
		evbuffer_add_cb(bufferevent_get_input(c->cli), count_bytes, c);
		evbuffer_add_cb(bufferevent_get_output(c->cli), count_bytes, c);
	}
	bufferevent_setcb(c->cli, hello_read, NULL, hello_event, c);
	/* the hello is bounded: reading stops there, and the parser says so */
	bufferevent_setwatermark(c->cli, EV_READ, 0, PX_SNI_MAX_BYTES);
	bufferevent_enable(c->cli, EV_READ);
	event_add(c->timer, &tv);
}

int px_sni_listener_new(struct px_sni_listener **out, struct event_base *base,
			const struct px_sni_cfg *cfg, char **err)
{
	struct px_sni_listener *l = calloc(1, sizeof(*l));
	size_t nr = cfg->routes ? px_sni_routes_count(cfg->routes) : 0;
	int rc = WEFT_OK;

	*out = NULL;
	if (l == NULL || (l->rr = calloc(nr ? nr : 1, sizeof(*l->rr))) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "%s listener: out of memory", cfg->name);
		goto out;
	}
	if (cfg->routes == NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "%s listener: no route table", cfg->name);
		goto out;
	}
	l->base = base;
	l->cfg = *cfg;
	l->sid = px_stats_listener(cfg->stats, cfg->name);
	l->ev = evconnlistener_new_bind(base, on_accept, l, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					(cfg->reuse_port ? LEV_OPT_REUSEABLE_PORT : 0), 512,
					(const struct sockaddr *)&l->cfg.listen, sizeof(l->cfg.listen));
	if (l->ev == NULL) {
		rc = weft_errf(err, WEFT_EIO, "%s listener: bind: %s", cfg->name, strerror(errno));
		goto out;
	}
	*out = l;
	l = NULL;
out:
	if (l != NULL)
		free(l->rr);
	free(l);
	return rc;
}

void px_sni_listener_free(struct px_sni_listener *l)
{
	if (l == NULL)
		return;
	/* the loop has stopped: pending frees will not run, do them here */
	while (l->conns != NULL)
		conn_free_cb(-1, 0, l->conns);
	if (l->ev)
		evconnlistener_free(l->ev);
	free(l->rr);
	free(l);
}

void px_sni_listener_drain(struct px_sni_listener *l)
{
	if (l->draining)
		return;
	l->draining = true;
	evconnlistener_free(l->ev);     /* the socket closes: new connections are refused */
	l->ev = NULL;
	for (struct sconn *c = l->conns; c != NULL; c = c->_next)
		if (!c->dead && c->phase == PH_HELLO)
			conn_close(c);
}

size_t px_sni_listener_conns(const struct px_sni_listener *l)
{
	size_t n = 0;

	for (const struct sconn *c = l->conns; c != NULL; c = c->_next)
		if (!c->dead)
			n++;
	return n;
}

uint64_t px_sni_listener_refused(const struct px_sni_listener *l, enum px_sni_refusal r)
{
	return r < PX_SNI_REFUSED_N ? l->refused[r] : 0;
}
