/* px_admin: /ready, /stats, /config, /drain on 127.0.0.1 (px_admin.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "px_admin.h"
#include "px_http1.h"
#include "px_stats.h"
#include "px_tls.h"

#define TARGET_MAX 1024
#define BODY_MAX 4096
#define READ_TIMEOUT_S 10
#define STATS_MAX (16u << 20)
#define IDLE_CHECK_MS 50

struct px_admin {
	struct event_base *base;
	struct evconnlistener *ev;
	struct px_admin_cfg cfg;
	struct event *tick;             /* while draining: are we idle yet? */
	struct timeval drain_until;
	bool draining;
	struct aconn *conns;
};

struct aconn {
	struct px_admin *a;
	struct aconn *_prev, *_next;
	struct bufferevent *bev;
	struct px_http1 *p;
	struct buf method, target;
	const char *allow;              /* for a 405: the method allowed (default GET) */
	bool answered, dead, head;      /* head: a HEAD request, no body in the answer */
};

/* weft_proxy_certificate_expiry_seconds, from the contexts in use now */
static int render_certificate(const struct px_admin *a, struct buf *b)
{
	long long na[4] = { 0 };
	size_t n = a->cfg.certs == NULL ? 0 : a->cfg.ncerts < 4 ? a->cfg.ncerts : 4;

	for (size_t i = 0; i < n; i++)
		if (a->cfg.certs[i] != NULL)
			na[i] = px_tls_not_after(a->cfg.certs[i]);
	return px_stats_render_certificate(na, n, (long long)time(NULL), b);
}

static void aconn_free(struct aconn *c)
{
	if (c->_prev)
		c->_prev->_next = c->_next;
	else if (c->a->conns == c)
		c->a->conns = c->_next;
	if (c->_next)
		c->_next->_prev = c->_prev;
	if (c->bev)
		bufferevent_free(c->bev);
	px_http1_free(c->p);
	buf_free(&c->method);
	buf_free(&c->target);
	free(c);
}

static void aconn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	aconn_free(arg);
}

/* never free inside our own callbacks: from the loop, right after */
static void aconn_close(struct aconn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	event_base_once(c->a->base, -1, EV_TIMEOUT, aconn_free_cb, c, NULL);
}

static void reply(struct aconn *c, int status, const char *ctype, const char *body, size_t len)
{
	const char *reason = status == 200 ? "OK" : status == 202 ? "Accepted" :
			     status == 400 ? "Bad Request" : status == 404 ? "Not Found" :
			     status == 405 ? "Method Not Allowed" : status == 408 ? "Request Timeout" :
			     status == 413 ? "Content Too Large" : status == 431 ?
			     "Request Header Fields Too Large" : status == 503 ? "Service Unavailable" :
			     "Internal Server Error";
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->answered = true;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			    "Cache-Control: no-store\r\nConnection: close\r\n%s%s%s\r\n", status, reason,
			    ctype, len, status == 405 ? "Allow: " : "",
			    status == 405 ? (c->allow ? c->allow : "GET") : "", status == 405 ? "\r\n" : "");
	if (!c->head)
		evbuffer_add(out, body, len);
	bufferevent_disable(c->bev, EV_READ);
}

static void reply_text(struct aconn *c, int status, const char *text)
{
	reply(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- /config ---- */

static const char *mode_name(enum px_mode m)
{
	return m == PX_MODE_TCP ? "tcp" : "http";
}

static json_t *addr_json(const struct sockaddr_in *sa)
{
	char ip[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN + 8];

	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	snprintf(s, sizeof(s), "%s:%u", ip, (unsigned)ntohs(sa->sin_port));
	return json_string(s);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The effective settings. Only file paths of the key: px_tls holds the
 * key material and nothing here reads it. */
static char *config_json(const struct px_admin *a)
{
	const struct px_admin_cfg *cfg = &a->cfg;
	json_t *root = json_object(), *ls = json_array(), *tls = json_null();
	char *s;

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct px_listener_cfg *l = &cfg->lcfg[i];
		struct px_tls *t = l->tls_in ? l->tls_in : l->tls_out;

		json_array_append_new(ls, json_pack(
			"{s:s, s:s, s:o, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o}",
			"Name", l->name, "Mode", mode_name(l->mode), "Listen", addr_json(&l->listen),
			"Upstream", l->upstream_name, "MTLS",
			json_string(l->tls_in ? "in" : l->tls_out ? "out" : "none"),
			"Via", l->via ? l->via : "",
			"SelfID", str_or_null(t ? px_tls_self_id(t) : l->by_id),
			"PeerID", str_or_null(l->tls_in ? NULL : l->peer_id),
			"UpstreamID", str_or_null(l->upstream_id), "SNI", str_or_null(l->sni),
			"Intentions", json_string(l->authorize ? "enforced" : "off")));
	}
	if (cfg->tls != NULL)
		tls = json_pack("{s:o, s:o, s:o, s:o}", "CertFile", str_or_null(cfg->tls->cert),
				"KeyFile", str_or_null(cfg->tls->key),
				"TrustBundleFile", str_or_null(cfg->tls->bundle),
				"TrustDomain", str_or_null(cfg->tls->trust_domain));
	json_object_set_new(root, "Admin", addr_json(&cfg->listen));
	json_object_set_new(root, "Listeners", ls);
	json_object_set_new(root, "TLS", tls);
	json_object_set_new(root, "AccessLog", str_or_null(cfg->access_log));
	json_object_set_new(root, "DrainTimeoutMs", json_integer(cfg->drain_timeout_ms));
	json_object_set_new(root, "Workers", json_integer(cfg->workers ? cfg->workers : 1));
	json_object_set_new(root, "Draining", json_boolean(a->draining));
	s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return s;
}

/* ---- drain ---- */

static size_t open_conns(const struct px_admin *a)
{
	size_t n = 0;

	if (a->cfg.open_conns != NULL)
		return a->cfg.open_conns(a->cfg.ud);
	for (size_t i = 0; i < a->cfg.nlisteners; i++)
		n += px_listener_conns(a->cfg.listeners[i]);
	return n;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct px_admin *a = arg;
	struct timeval now;
	size_t n = open_conns(a);

	event_base_gettimeofday_cached(a->base, &now);
	if (n == 0) {
		log_info("proxy", "drained: no connection left, exiting");
		event_base_loopexit(a->base, NULL);
	} else if (evutil_timercmp(&now, &a->drain_until, >=)) {
		log_warnx("proxy", "drain deadline (%u ms) passed with %zu connections open, exiting",
			  a->cfg.drain_timeout_ms, n);
		event_base_loopexit(a->base, NULL);
	}
}

void px_admin_drain(struct px_admin *a)
{
	struct timeval now, d = {a->cfg.drain_timeout_ms / 1000, (a->cfg.drain_timeout_ms % 1000) * 1000};
	struct timeval tv = {0, IDLE_CHECK_MS * 1000};

	if (a->draining)
		return;
	a->draining = true;
	if (a->cfg.drain != NULL)
		a->cfg.drain(a->cfg.ud);
	for (size_t i = 0; a->cfg.drain == NULL && i < a->cfg.nlisteners; i++)
		px_listener_drain(a->cfg.listeners[i]);
	event_base_gettimeofday_cached(a->base, &now);
	evutil_timeradd(&now, &d, &a->drain_until);
	log_info("proxy", "draining: listeners closed, %zu connections open, deadline %u ms",
		 open_conns(a), a->cfg.drain_timeout_ms);
	/* a->tick checks from the next loop turn: the /drain reply goes out first */
	event_add(a->tick, &tv);
}

int px_admin_draining(const struct px_admin *a)
{
	return a != NULL && a->draining;
}

/* ---- requests ---- */

static void route(struct aconn *c, const struct px_http1_msg *m)
{
	struct px_admin *a = c->a;
	const char *path = c->target.data ? c->target.data : "";
	size_t plen = strcspn(path, "?");
	bool get = m->method == PX_HTTP1_M_GET || m->method == PX_HTTP1_M_HEAD;
	char *s;

	c->head = m->method == PX_HTTP1_M_HEAD;
#define IS(p) (plen == strlen(p) && strncmp(path, (p), plen) == 0)
	if (IS("/ready")) {
		if (!get)
			reply_text(c, 405, "method not allowed\n");
		else if (a->draining)
			reply_text(c, 503, "draining\n");
		else
			reply_text(c, 200, "ready\n");
	} else if (IS("/stats")) {
		struct buf b;

		if (!get) {
			reply_text(c, 405, "method not allowed\n");
			return;
		}
		buf_init(&b, STATS_MAX);
		if (px_stats_render(a->cfg.stats, a->cfg.nstats, a->draining, &b) != 0 ||
		    render_certificate(a, &b) != 0)
			reply_text(c, 500, "stats: too large\n");
		else if (a->cfg.more_stats && (a->cfg.more_stats(a->cfg.more_stats_arg, &b),
						b.len >= STATS_MAX))
			reply_text(c, 500, "stats: too large\n");
		else
			reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
		buf_free(&b);
	} else if (IS("/config")) {
		if (!get) {
			reply_text(c, 405, "method not allowed\n");
			return;
		}
		s = config_json(a);
		if (s == NULL) {
			reply_text(c, 500, "config: out of memory\n");
			return;
		}
		reply(c, 200, "application/json", s, strlen(s));
		free(s);
	} else if (IS("/drain")) {
		if (m->method != PX_HTTP1_M_POST) {
			c->allow = "POST";
			reply_text(c, 405, "method not allowed\n");
			return;
		}
		px_admin_drain(a);
		reply_text(c, 202, "draining\n");
	} else {
		reply_text(c, 404, "not found\n");
	}
#undef IS
}

static int on_method(void *ud, const char *at, size_t len)
{
	return buf_append(&((struct aconn *)ud)->method, at, len) != 0;
}

static int on_target(void *ud, const char *at, size_t len)
{
	return buf_append(&((struct aconn *)ud)->target, at, len) != 0;
}

static int on_headers(void *ud, const struct px_http1_msg *m)
{
	struct aconn *c = ud;

	if (m->body == PX_HTTP1_BODY_CHUNKED || m->content_length > BODY_MAX) {
		reply_text(c, 413, "body too large\n");
		return 1;
	}
	return 0;
}

static int on_complete(void *ud, const struct px_http1_msg *m)
{
	route(ud, m);
	return 1; /* one request per connection: stop here */
}

static const struct px_http1_callbacks CB = {
	.on_method = on_method, .on_target = on_target, .on_headers_complete = on_headers,
	.on_message_complete = on_complete,
};

static void on_read(struct bufferevent *bev, void *arg)
{
	struct aconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->answered && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = px_http1_feed(c->p, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc < 0 && !c->answered) {
			int st = c->target.len >= TARGET_MAX ? 414 : px_http1_status(PX_HTTP1_REQUEST, rc);

			reply_text(c, st == 414 ? 400 : st, "bad request\n");
		}
	}
	if (c->answered)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct aconn *c = arg;

	if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		aconn_close(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct aconn *c = arg;

	if ((what & BEV_EVENT_TIMEOUT) && !c->answered) {
		reply_text(c, 408, "request timeout\n");
		bufferevent_set_timeouts(bev, NULL, NULL);
		return;
	}
	aconn_close(c);
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	static const struct px_http1_limits lim = {.max_line = TARGET_MAX + 64, .max_headers = 32,
						   .max_header_bytes = 8192};
	struct px_admin *a = arg;
	struct aconn *c = calloc(1, sizeof(*c));
	struct timeval rt = {READ_TIMEOUT_S, 0};

	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->a = a;
	buf_init(&c->method, 32);
	buf_init(&c->target, TARGET_MAX);
	c->p = px_http1_new(PX_HTTP1_REQUEST, &lim, &CB, c);
	c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		evutil_closesocket(fd);
	if (c->p == NULL || c->bev == NULL) {
		aconn_free(c);
		return;
	}
	c->_next = a->conns;
	if (a->conns)
		a->conns->_prev = c;
	a->conns = c;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &rt, &rt);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

int px_admin_new(struct px_admin **out, struct event_base *base, const struct px_admin_cfg *cfg,
		 char **err)
{
	struct px_admin *a = NULL;
	char msg[160];
	int rc;

	*out = NULL;
	if (cfg->listen.sin_family != AF_INET || cfg->listen.sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
		snprintf(msg, sizeof(msg), "admin listener: only 127.0.0.1 is allowed");
		rc = WEFT_EINVAL;
		goto out;
	}
	a = calloc(1, sizeof(*a));
	rc = WEFT_ENOMEM;
	snprintf(msg, sizeof(msg), "admin listener: out of memory");
	if (a == NULL)
		goto out;
	a->base = base;
	a->cfg = *cfg;
	a->tick = event_new(base, -1, EV_PERSIST, on_tick, a);
	if (a->tick == NULL)
		goto out;
	a->ev = evconnlistener_new_bind(base, on_accept, a, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 16,
					(struct sockaddr *)&a->cfg.listen, sizeof(a->cfg.listen));
	if (a->ev == NULL) {
		snprintf(msg, sizeof(msg), "admin listener: bind: %s", strerror(errno));
		rc = WEFT_EIO;
		goto out;
	}
	*out = a;
	a = NULL;
	rc = WEFT_OK;
out:
	if (rc != WEFT_OK && err)
		*err = strdup(msg);
	px_admin_free(a);
	return rc;
}

void px_admin_free(struct px_admin *a)
{
	if (a == NULL)
		return;
	while (a->conns != NULL)
		aconn_free(a->conns);
	if (a->ev)
		evconnlistener_free(a->ev);
	if (a->tick)
		event_free(a->tick);
	free(a);
}
