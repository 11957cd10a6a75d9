/* px_proxy: listeners, connections, the HTTP/1.1 and byte relays
 * (px_proxy.h). Each client connection gets its own upstream connection;
 * requests (pipelined too) are parsed, their header section rewritten
 * (docs/proxy-http.md), bodies streamed with the framing they came with;
 * responses likewise; Upgrade/CONNECT and TCP mode are a byte tunnel.
 * Either side may be a bufferevent_openssl (docs/proxy-mtls.md): the relay
 * only sees bufferevents. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "px_accesslog.h"
#include "px_proxy.h"
#include "px_stats.h"
#include "px_tls.h"

#define PIPELINE_MAX 32            /* requests in flight on one connection */
#define HIGH_WATER (1u << 20)      /* stop reading a side when the other has this queued */
#define HEAD_MAX (PX_HTTP1_DEFAULT_MAX_LINE + PX_HTTP1_DEFAULT_MAX_HEADER_BYTES + 1024)
#define ID_MAX 512

struct px_listener {
	struct event_base *base;
	struct evconnlistener *ev;
	struct px_listener_cfg cfg;
	struct conn *conns;             /* open ones (and closed ones not yet freed) */
	int sid;                        /* px_stats listener index */
	bool draining;                  /* px_listener_drain() */
};

struct field {
	size_t name, name_len, value, value_len;
};

/* One direction: its parser and the head being collected. */
struct side {
	struct px_http1 *p;
	struct buf line;                /* request: method SP target; response: reason */
	struct buf store;               /* header names and values */
	struct field f[PX_HTTP1_DEFAULT_MAX_HEADERS + 1];
	size_t nf;
	bool in_value, in_target, chunked, head_only;
	struct conn *c;
};

struct conn {
	struct px_listener *l;
	struct conn *_prev, *_next;     /* in l->conns */
	struct bufferevent *cli, *up;
	struct side rq, rs;
	char client_addr[INET_ADDRSTRLEN];
	char peer[INET_ADDRSTRLEN + 8];     /* addr:port, for log lines */
	char peer_id[ID_MAX];               /* the caller's SPIFFE ID (or --peer-id) */
	char by_id[ID_MAX];                 /* ours, as of the accept */
	enum px_http1_method q[PIPELINE_MAX];
	bool q_keep[PIPELINE_MAX];
	unsigned qh, qn;
	int pending_error;              /* status to answer once earlier responses are out */
	char denied_by[PX_DENIED_BY_MAX];   /* with a 403: what decided (X-Weft-Denied-By) */
	bool tunnel, closing, dead, response_started, up_connected, cli_ready, denied;
	bool shut_up_pending;           /* half-close the upstream once its output drains */
	/* stats and access log (px_stats, px_accesslog): per request in flight */
	uint64_t q_start[PIPELINE_MAX], q_in[PIPELINE_MAX];
	char *q_line[PIPELINE_MAX];
	bool stats_open;
};

/* ---- stats and access log hooks ---- */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void count_bytes(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	/* client input: what arrived; client output: what was written */
	if (b == bufferevent_get_input(c->cli))
		px_stats_bytes(c->l->cfg.stats, c->l->sid, info->n_added, 0);
	else
		px_stats_bytes(c->l->cfg.stats, c->l->sid, 0, info->n_deleted);
}

/* The request just queued (slot (qh + qn - 1)) has its head. */
static void req_begin(struct conn *c, const char *line, size_t len)
{
	unsigned i = (c->qh + c->qn - 1) % PIPELINE_MAX;

	c->q_start[i] = now_us();
	c->q_in[i] = 0;
	free(c->q_line[i]);
	c->q_line[i] = c->l->cfg.access_log ? strndup(line, len < 4096 ? len : 4096) : NULL;
}

/* A response of status went to the client: for the oldest request in
 * flight, or for one refused before it was queued (qn == 0). */
static void req_end(struct conn *c, int status, uint64_t bytes_out)
{
	unsigned i = c->qh % PIPELINE_MAX;
	uint64_t dur = c->qn > 0 && c->q_start[i] ? now_us() - c->q_start[i] : 0;

	px_stats_request(c->l->cfg.stats, c->l->sid, status, dur);
	if (c->l->cfg.access_log != NULL) {
		const char *line = c->qn > 0 ? c->q_line[i] : c->rq.line.data;
		struct px_accesslog_entry e = {
			.listener = c->l->cfg.name, .source = c->peer_id[0] ? c->peer_id : c->client_addr,
			.line = line, .line_len = line ? strlen(line) : 0, .status = status,
			.bytes_in = c->qn > 0 ? c->q_in[i] : 0, .bytes_out = bytes_out,
			.duration_us = dur, .upstream = c->l->cfg.upstream_name,
		};

		px_accesslog_write(c->l->cfg.access_log, &e);
	}
	if (c->qn > 0) {
		free(c->q_line[i]);
		c->q_line[i] = NULL;
		c->q_start[i] = 0;
	}
}

static void conn_free_cb(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	/* never free inside our own callbacks: from the loop, right after */
	event_base_once(c->l->base, -1, EV_TIMEOUT, conn_free_cb, c, NULL);
}

static void conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->_prev)
		c->_prev->_next = c->_next;
	else if (c->l->conns == c)
		c->l->conns = c->_next;
	if (c->_next)
		c->_next->_prev = c->_prev;
	if (c->stats_open)
		px_stats_conn_close(c->l->cfg.stats, c->l->sid);
	for (unsigned i = 0; i < PIPELINE_MAX; i++)
		free(c->q_line[i]);

	if (c->cli)
		bufferevent_free(c->cli);
	if (c->up)
		bufferevent_free(c->up);
	px_http1_free(c->rq.p);
	px_http1_free(c->rs.p);
	buf_free(&c->rq.line);
	buf_free(&c->rq.store);
	buf_free(&c->rs.line);
	buf_free(&c->rs.store);
	free(c);
}

/* Close the client once what we queued for it has been written. */
static void close_after_flush(struct conn *c)
{
	c->closing = true;
	bufferevent_disable(c->cli, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->cli)) == 0)
		conn_close(c);
}

static void send_error(struct conn *c, int status)
{
	const char *reason = status == 400 ? "Bad Request" : status == 414 ? "URI Too Long" :
			     status == 417 ? "Expectation Failed" :
			     status == 431 ? "Request Header Fields Too Large" :
			     status == 501 ? "Not Implemented" : status == 505 ? "HTTP Version Not Supported" :
			     status == 502 ? "Bad Gateway" : status == 403 ? "Forbidden" :
			     "Internal Server Error";

	if (status == 403 && c->denied) {
		/* an intention denied the request: say so, and by which */
		evbuffer_add_printf(bufferevent_get_output(c->cli),
				    "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
				    "Content-Length: %zu\r\nX-Weft-Denied-By: %s\r\nConnection: close\r\n\r\n"
				    "denied by weft-proxy: %s\n", strlen(c->denied_by) + 23, c->denied_by,
				    c->denied_by);
		req_end(c, status, strlen(c->denied_by) + 23);
	} else {
		evbuffer_add_printf(bufferevent_get_output(c->cli),
				    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
				    "Connection: close\r\n\r\n%s\n", status, reason, strlen(reason) + 1, reason);
		req_end(c, status, strlen(reason) + 1);
	}
	close_after_flush(c);
}

/* ---- collecting a head from the parser's pieces ---- */

static int side_append(struct side *s, struct buf *b, const char *at, size_t len)
{
	return buf_append(b, at, len) != 0;
}

static int on_method(void *ud, const char *at, size_t len)
{
	return side_append(ud, &((struct side *)ud)->line, at, len);
}

static int on_target(void *ud, const char *at, size_t len)
{
	struct side *s = ud;

	if (!s->in_target && buf_append(&s->line, " ", 1) != 0)
		return 1;
	s->in_target = true;
	return side_append(s, &s->line, at, len);
}

static int on_reason(void *ud, const char *at, size_t len)
{
	return side_append(ud, &((struct side *)ud)->line, at, len);
}

static int on_name(void *ud, const char *at, size_t len)
{
	struct side *s = ud;

	if (s->in_value || s->nf == 0) {
		if (s->nf == sizeof(s->f) / sizeof(s->f[0]))
			return 1;
		s->f[s->nf++] = (struct field){.name = s->store.len};
		s->in_value = false;
	}
	s->f[s->nf - 1].name_len += len;
	return side_append(s, &s->store, at, len);
}

static int on_value(void *ud, const char *at, size_t len)
{
	struct side *s = ud;

	if (!s->in_value)
		s->f[s->nf - 1].value = s->store.len;
	s->in_value = true;
	s->f[s->nf - 1].value_len += len;
	return side_append(s, &s->store, at, len);
}

/* The forwarded header section of the head collected in s. */
static int side_headers(struct side *s, const struct px_http1_msg *m,
			const struct px_http1_forward *fwd, bool add_close, struct evbuffer *out)
{
	struct px_http1_header h[sizeof(s->f) / sizeof(s->f[0])];
	struct buf b;
	char *err = NULL;
	int rc;

	for (size_t i = 0; i < s->nf; i++)
		h[i] = (struct px_http1_header){
			s->store.data + s->f[i].name, s->f[i].name_len,
			s->store.data + s->f[i].value, s->f[i].value_len,
		};
	buf_init(&b, HEAD_MAX);
	rc = px_http1_forward_headers(m, h, s->nf, fwd, &b, &err);
	if (rc != 0) {
		log_warnx("proxy", "forward: %s", err ? err : "failed");
		free(err);
		buf_free(&b);
		return -1;
	}
	/* "...\r\n\r\n": our own Connection: close goes before the empty line */
	evbuffer_add(out, b.data, b.len - 2);
	if (add_close)
		evbuffer_add_printf(out, "Connection: close\r\n");
	evbuffer_add(out, "\r\n", 2);
	buf_free(&b);
	s->nf = 0;
	s->in_value = false;
	buf_reset(&s->store);
	return 0;
}

static int on_body(void *ud, const char *at, size_t len)
{
	struct side *s = ud;
	struct bufferevent *to = s == &s->c->rq ? s->c->up : s->c->cli;
	struct evbuffer *out = bufferevent_get_output(to);

	if (s->chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, at, len);
	if (s->chunked)
		evbuffer_add(out, "\r\n", 2);
	return 0;
}

static int rq_headers_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;
	struct conn *c = s->c;
	struct evbuffer *out = bufferevent_get_output(c->up);
	struct px_http1_forward fwd = {
		.client_addr = c->client_addr, .xff_append = true, .proto = "http",
		.via = c->l->cfg.via, .by_id = c->by_id[0] ? c->by_id : NULL,
		.peer_id = c->peer_id[0] ? c->peer_id : NULL, .host = c->l->cfg.upstream_name,
	};

	if (c->qn == PIPELINE_MAX)
		return 1;
	if (c->l->cfg.authorize != NULL) {
		struct px_http1_header h[sizeof(s->f) / sizeof(s->f[0])];
		struct px_request_info ri = {m, s->line.data, s->line.len, h, s->nf};

		for (size_t i = 0; i < s->nf; i++)
			h[i] = (struct px_http1_header){
				s->store.data + s->f[i].name, s->f[i].name_len,
				s->store.data + s->f[i].value, s->f[i].value_len,
			};
		if (c->l->cfg.authorize(c->l->cfg.authorize_ud, c->peer_id[0] ? c->peer_id : NULL,
					&ri, c->denied_by, sizeof(c->denied_by)) != 0) {
			c->denied = true;
			return 1;
		}
	}
	c->q[(c->qh + c->qn) % PIPELINE_MAX] = m->method;
	c->q_keep[(c->qh + c->qn) % PIPELINE_MAX] = m->keep_alive;
	c->qn++;
	req_begin(c, s->line.data, s->line.len);
	evbuffer_add_printf(out, "%.*s HTTP/1.1\r\n", (int)s->line.len, s->line.data);
	buf_reset(&s->line);
	s->in_target = false;
	s->chunked = m->body == PX_HTTP1_BODY_CHUNKED;
	return side_headers(s, m, &fwd, false, out) != 0;
}

static int rq_message_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;

	if (s->chunked)
		evbuffer_add(bufferevent_get_output(s->c->up), "0\r\n\r\n", 5);
	if (s->c->qn > 0)
		s->c->q_in[(s->c->qh + s->c->qn - 1) % PIPELINE_MAX] = m->body_bytes;
	s->nf = 0; /* trailers are not forwarded */
	buf_reset(&s->store);
	return 0;
}

static int rs_headers_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;
	struct conn *c = s->c;
	struct evbuffer *out = bufferevent_get_output(c->cli);
	struct px_http1_forward fwd = {0};
	bool keep = c->qn > 0 && c->q_keep[c->qh];
	bool final = m->status >= 200 || m->status == 101;

	c->response_started = true;
	evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", m->status, (int)s->line.len,
			    s->line.data ? s->line.data : "");
	buf_reset(&s->line);
	s->chunked = m->body == PX_HTTP1_BODY_CHUNKED;
	return side_headers(s, m, &fwd, final && !m->tunnel &&
			    (!keep || !m->keep_alive || (c->l->draining && c->qn <= 1)), out) != 0;
}

static int rs_message_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;
	struct conn *c = s->c;
	bool keep;

	if (s->chunked)
		evbuffer_add(bufferevent_get_output(c->cli), "0\r\n\r\n", 5);
	s->nf = 0;
	buf_reset(&s->store);
	if (m->status < 200 && m->status != 101)
		return 0; /* interim: the final response follows */
	c->response_started = false;
	req_end(c, m->status, m->body_bytes);
	keep = c->qn > 0 && c->q_keep[c->qh] && !(c->l->draining && c->qn <= 1);
	if (c->qn > 0) {
		c->qh = (c->qh + 1) % PIPELINE_MAX;
		c->qn--;
	}
	if (m->tunnel) {
		c->tunnel = true;
	} else if (!keep || !m->keep_alive || (c->qn == 0 && px_http1_msg(c->rq.p)->tunnel)) {
		/* (an upgrade the upstream refused: the client's next bytes were
		 * already sent on as a tunnel, so this connection is done) */
		close_after_flush(c);
	} else if (c->qn == 0 && c->pending_error != 0) {
		send_error(c, c->pending_error);
	}
	return 0;
}

static const struct px_http1_callbacks RQ_CB = {
	.on_method = on_method, .on_target = on_target, .on_header_name = on_name,
	.on_header_value = on_value, .on_headers_complete = rq_headers_complete,
	.on_body = on_body, .on_message_complete = rq_message_complete,
};
static const struct px_http1_callbacks RS_CB = {
	.on_reason = on_reason, .on_header_name = on_name, .on_header_value = on_value,
	.on_headers_complete = rs_headers_complete, .on_body = on_body,
	.on_message_complete = rs_message_complete,
};

/* ---- TLS hand-off ---- */

static SSL *bev_ssl(struct bufferevent *bev)
{
	return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

/* One line per refused or failed handshake: who, what, why. */
/* The first OpenSSL error the bufferevent saw (0: none); clears them. */
static unsigned long ssl_error(struct bufferevent *bev)
{
	unsigned long e, first = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (first == 0)
			first = e;
	return first;
}

static void log_tls_failure_err(struct conn *c, struct bufferevent *bev, const char *side,
				unsigned long first)
{
	const char *reason, *presented;
	char detail[256];

	px_tls_failure(bev_ssl(bev), first, &reason, detail, sizeof(detail), &presented);
	px_stats_tls(c->l->cfg.stats, c->l->sid, strcmp(side, "client") == 0 ? PX_STATS_CLIENT :
		     PX_STATS_UPSTREAM, reason);
	if (strcmp(side, "client") == 0)
		log_warnx("proxy", "tls refused: listener=%s side=client peer=%s presented=\"%s\" "
			  "reason=%s detail=\"%s\"", c->l->cfg.name, c->peer, presented, reason, detail);
	else
		log_warnx("proxy", "tls refused: listener=%s side=upstream upstream=%s expected=\"%s\" "
			  "presented=\"%s\" reason=%s detail=\"%s\" client=%s", c->l->cfg.name,
			  c->l->cfg.upstream_name, c->l->cfg.upstream_id ? c->l->cfg.upstream_id : "",
			  presented, reason, detail, c->peer);
}

static void log_tls_failure(struct conn *c, struct bufferevent *bev, const char *side)
{
	log_tls_failure_err(c, bev, side, ssl_error(bev));
}

/* The caller is known (or there is none to know): authorize, then open
 * the upstream. Nothing reaches the upstream before this. */
static void conn_start(struct conn *c)
{
	const struct px_listener_cfg *cfg = &c->l->cfg;

	c->cli_ready = true;
	if (cfg->authorize != NULL &&
	    cfg->authorize(cfg->authorize_ud, c->peer_id[0] ? c->peer_id : NULL, NULL, c->denied_by,
			   sizeof(c->denied_by)) != 0) {
		log_debug("proxy", "closed after denial: listener=%s peer=%s layer=4 denied-by=\"%s\"",
			  cfg->name, c->peer, c->denied_by);
		conn_close(c);
		return;
	}
	if (bufferevent_socket_connect(c->up, (struct sockaddr *)&cfg->upstream, sizeof(cfg->upstream)) != 0) {
		px_stats_upstream_connect_failure(cfg->stats, c->l->sid);
		log_warnx("proxy", "upstream %s: cannot connect: listener=%s", cfg->upstream_name, cfg->name);
		if (cfg->mode == PX_MODE_HTTP)
			send_error(c, 502);
		else
			conn_close(c);
	}
}

/* Our half of the upstream stream ends (TCP FIN or TLS close_notify). */
static void shut_up(struct conn *c)
{
	SSL *ssl = bev_ssl(c->up);

	c->shut_up_pending = false;
	if (ssl != NULL)
		SSL_shutdown(ssl);
	else
		shutdown(bufferevent_getfd(c->up), SHUT_WR);
}

/* ---- event callbacks ---- */

static void backpressure(struct bufferevent *from, struct bufferevent *to)
{
	if (evbuffer_get_length(bufferevent_get_output(to)) > HIGH_WATER)
		bufferevent_disable(from, EV_READ);
}

static void cli_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->dead && !c->closing && c->pending_error == 0 && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc;

		if (c->tunnel) {
			bufferevent_write_buffer(c->up, in);
			break;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = px_http1_feed(c->rq.p, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == PX_HTTP1_EPASSTHROUGH) {
			/* after an Upgrade or CONNECT request: bytes go on as they are */
			bufferevent_write_buffer(c->up, in);
			break;
		}
		if (rc < 0) {
			int status = c->denied ? 403 : px_http1_status(PX_HTTP1_REQUEST, rc);

			if (c->denied)
				log_debug("proxy", "403 after denial: listener=%s peer=%s layer=7 "
					  "denied-by=\"%s\"", c->l->cfg.name, c->peer, c->denied_by);
			else
				log_info("proxy", "request refused: client=%s status=%d error=\"%s\" offset=%llu",
					 c->client_addr, status, px_http1_strerror(rc),
					 (unsigned long long)px_http1_error_offset(c->rq.p));
			if (c->qn == 0)
				send_error(c, status);
			else
				c->pending_error = status; /* after the responses before it */
			bufferevent_disable(c->cli, EV_READ);
			break;
		}
	}
	if (!c->dead)
		backpressure(c->cli, c->up);
}

static void up_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->dead && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc;

		if (c->l->cfg.mode == PX_MODE_TCP) {
			bufferevent_write_buffer(c->cli, in);
			break;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		px_http1_expect(c->rs.p, c->qn > 0 ? c->q[c->qh] : PX_HTTP1_M_GET);
		rc = px_http1_feed(c->rs.p, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == PX_HTTP1_EPASSTHROUGH) {
			bufferevent_write_buffer(c->cli, in);
			break;
		}
		if (rc < 0) {
			log_info("proxy", "upstream response refused: error=\"%s\"", px_http1_strerror(rc));
			if (!c->response_started)
				send_error(c, 502);
			else
				conn_close(c);
			return;
		}
		if (c->closing)
			break;
	}
	if (!c->dead)
		backpressure(c->up, c->cli);
}

static void cli_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_close(c);
	else if (!c->closing && c->up)
		bufferevent_enable(c->up, EV_READ);
}

static void up_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->shut_up_pending && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		shut_up(c);
	if (!c->closing && c->pending_error == 0 && !c->shut_up_pending)
		bufferevent_enable(c->cli, EV_READ);
}

static void cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* the mTLS handshake with the caller is done */
		const char *id = px_tls_peer_id(bev_ssl(bev));

		if (id == NULL) {
			log_tls_failure(c, bev, "client");
			conn_close(c);
			return;
		}
		snprintf(c->peer_id, sizeof(c->peer_id), "%s", id);
		px_stats_tls(c->l->cfg.stats, c->l->sid, PX_STATS_CLIENT, NULL);
		log_debug("proxy", "tls handshake: listener=%s side=client peer=%s id=%s version=%s "
			  "resumed=%s", c->l->cfg.name, c->peer, id, SSL_get_version(bev_ssl(bev)),
			  SSL_session_reused(bev_ssl(bev)) ? "yes" : "no");
		conn_start(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (!c->cli_ready) {
		log_tls_failure(c, bev, "client");
		conn_close(c);
		return;
	}
	if (c->tunnel && c->up != NULL && (what & BEV_EVENT_EOF)) {
		/* half-close: the upstream still may answer (once connected
		 * and its output is sent) */
		bufferevent_disable(c->cli, EV_READ);
		if (c->up_connected && evbuffer_get_length(bufferevent_get_output(c->up)) == 0) {
			shut_up(c);
		} else {
			c->shut_up_pending = true;
			bufferevent_setwatermark(c->up, EV_WRITE, 0, 0);
		}
		return;
	}
	conn_close(c);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (bev_ssl(bev) != NULL && px_tls_peer_id(bev_ssl(bev)) == NULL) {
			/* a resumed session whose identity no longer fits */
			log_tls_failure(c, bev, "upstream");
			goto fail;
		}
		if (bev_ssl(bev) != NULL)
			px_stats_tls(c->l->cfg.stats, c->l->sid, PX_STATS_UPSTREAM, NULL);
		if (bev_ssl(bev) != NULL)
			log_debug("proxy", "tls handshake: listener=%s side=upstream upstream=%s id=%s "
				  "version=%s resumed=%s", c->l->cfg.name, c->l->cfg.upstream_name,
				  px_tls_peer_id(bev_ssl(bev)), SSL_get_version(bev_ssl(bev)),
				  SSL_session_reused(bev_ssl(bev)) ? "yes" : "no");
		c->up_connected = true;
		if (c->shut_up_pending && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			shut_up(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (!c->up_connected) {
		if (bev_ssl(bev) != NULL && !SSL_in_before(bev_ssl(bev)))
			log_tls_failure(c, bev, "upstream");
		else
			log_warnx("proxy", "upstream %s: cannot connect: listener=%s", c->l->cfg.upstream_name,
				  c->l->cfg.name);
		if (bev_ssl(bev) == NULL || SSL_in_before(bev_ssl(bev)))
			px_stats_upstream_connect_failure(c->l->cfg.stats, c->l->sid);
		goto fail;
	}
	if ((what & BEV_EVENT_ERROR) && bev_ssl(bev) != NULL) {
		/* TLS 1.3: the upstream refuses our certificate after our side
		 * of the handshake is done; its alert arrives here */
		unsigned long e = ssl_error(bev);

		if (e != 0)
			log_tls_failure_err(c, bev, "upstream", e);
	}
	if (bev_ssl(bev) != NULL && !c->response_started && c->qn > 0 &&
	    (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && ERR_peek_error() == 0) {
		/* The alert can be lost when our write meets the reset first:
		 * say what is known rather than nothing. */
		log_warnx("proxy", "tls refused: listener=%s side=upstream upstream=%s expected=\"%s\" "
			  "presented=\"%s\" reason=closed-after-handshake detail=\"the upstream closed "
			  "the connection after the TLS handshake without answering: it may have "
			  "refused this proxy's certificate (see its log)\" client=%s", c->l->cfg.name,
			  c->l->cfg.upstream_name, c->l->cfg.upstream_id ? c->l->cfg.upstream_id : "",
			  px_tls_peer_id(bev_ssl(bev)) ? px_tls_peer_id(bev_ssl(bev)) : "", c->peer);
	}
	if (c->tunnel) {
		close_after_flush(c);
		return;
	}
	/* a body read until close ends here */
	if (px_http1_finish(c->rs.p) == PX_HTTP1_DONE || !c->response_started) {
		if (c->qn > 0 && !c->response_started && !c->closing)
			send_error(c, 502);
		else
			close_after_flush(c);
		return;
	}
	conn_close(c);
	return;
fail:
	if (c->l->cfg.mode == PX_MODE_HTTP && !c->closing)
		send_error(c, 502);
	else
		conn_close(c);
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct px_listener *l = arg;
	const struct px_listener_cfg *cfg = &l->cfg;
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl;

	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->l = l;
	inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->client_addr, sizeof(c->client_addr));
	snprintf(c->peer, sizeof(c->peer), "%s:%u", c->client_addr,
		 (unsigned)ntohs(((struct sockaddr_in *)sa)->sin_port));
	c->rq.c = c->rs.c = c;
	buf_init(&c->rq.line, PX_HTTP1_DEFAULT_MAX_LINE + 16);
	buf_init(&c->rq.store, HEAD_MAX);
	buf_init(&c->rs.line, PX_HTTP1_DEFAULT_MAX_LINE + 16);
	buf_init(&c->rs.store, HEAD_MAX);
	c->tunnel = cfg->mode == PX_MODE_TCP;
	c->rq.p = px_http1_new(PX_HTTP1_REQUEST, NULL, &RQ_CB, &c->rq);
	c->rs.p = px_http1_new(PX_HTTP1_RESPONSE, NULL, &RS_CB, &c->rs);
	if (cfg->tls_in != NULL) {
		snprintf(c->by_id, sizeof(c->by_id), "%s", px_tls_self_id(cfg->tls_in));
		ssl = px_tls_ssl_new(cfg->tls_in, NULL, NULL);
		c->cli = ssl ? bufferevent_openssl_socket_new(l->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							      BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (c->cli == NULL)
			SSL_free(ssl);
	} else {
		snprintf(c->by_id, sizeof(c->by_id), "%s", cfg->by_id ? cfg->by_id : "");
		snprintf(c->peer_id, sizeof(c->peer_id), "%s", cfg->peer_id ? cfg->peer_id : "");
		c->cli = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (cfg->tls_out != NULL) {
		ssl = px_tls_ssl_new(cfg->tls_out, cfg->upstream_id, cfg->sni);
		c->up = ssl ? bufferevent_openssl_socket_new(l->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
							     BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (c->up == NULL)
			SSL_free(ssl);
	} else {
		c->up = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->rq.p == NULL || c->rs.p == NULL || c->cli == NULL || c->up == NULL) {
		if (c->cli == NULL)
			evutil_closesocket(fd);
		c->dead = true;
		conn_free_cb(-1, 0, c);
		return;
	}
	c->_next = l->conns;
	if (l->conns)
		l->conns->_prev = c;
	l->conns = c;
	c->stats_open = true;
	px_stats_conn_open(cfg->stats, l->sid);
	if (cfg->stats != NULL) {
		evbuffer_add_cb(bufferevent_get_input(c->cli), count_bytes, c);
		evbuffer_add_cb(bufferevent_get_output(c->cli), count_bytes, c);
	}
	if (bev_ssl(c->cli) != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(c->cli, 1);
	if (bev_ssl(c->up) != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(c->up, 1);
	bufferevent_setcb(c->cli, cli_read, cli_write, cli_event, c);
	bufferevent_setcb(c->up, up_read, up_write, up_event, c);
	bufferevent_setwatermark(c->cli, EV_WRITE, HIGH_WATER / 4, 0);
	bufferevent_setwatermark(c->up, EV_WRITE, HIGH_WATER / 4, 0);
	bufferevent_enable(c->cli, EV_READ | EV_WRITE);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	if (cfg->tls_in == NULL)
		conn_start(c);
}

int px_listener_new(struct px_listener **out, struct event_base *base,
		    const struct px_listener_cfg *cfg, char **err)
{
	struct px_listener *l = calloc(1, sizeof(*l));
	char msg[160];

	*out = NULL;
	if (l == NULL)
		return WEFT_ENOMEM;
	l->base = base;
	l->cfg = *cfg;
	l->sid = px_stats_listener(cfg->stats, cfg->name);
	l->ev = evconnlistener_new_bind(base, on_accept, l, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					(cfg->reuse_port ? LEV_OPT_REUSEABLE_PORT : 0), 512,
					(struct sockaddr *)&l->cfg.listen, sizeof(l->cfg.listen));
	if (l->ev == NULL) {
		snprintf(msg, sizeof(msg), "%s listener: bind: %s", cfg->name, strerror(errno));
		if (err)
			*err = strdup(msg);
		free(l);
		return WEFT_EIO;
	}
	*out = l;
	return WEFT_OK;
}

void px_listener_free(struct px_listener *l)
{
	if (l == NULL)
		return;
	/* the loop has stopped: pending frees will not run, do them here */
	while (l->conns != NULL)
		conn_free_cb(-1, 0, l->conns);
	if (l->ev)
		evconnlistener_free(l->ev);
	free(l);
}

void px_listener_drain(struct px_listener *l)
{
	if (l->draining)
		return;
	l->draining = true;
	evconnlistener_free(l->ev);     /* the socket closes: new connections are refused */
	l->ev = NULL;
	for (struct conn *c = l->conns; c != NULL; c = c->_next)
		if (!c->dead && !c->closing && !c->tunnel && c->qn == 0 && c->rq.line.len == 0 &&
		    c->rq.nf == 0 && c->cli_ready)
			close_after_flush(c);   /* idle between requests */
}

size_t px_listener_conns(const struct px_listener *l)
{
	size_t n = 0;

	for (const struct conn *c = l->conns; c != NULL; c = c->_next)
		if (!c->dead)
			n++;
	return n;
}
