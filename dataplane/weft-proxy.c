/* weft-proxy, first cut: a plaintext HTTP/1.1 reverse proxy from one
 * loopback listener to one upstream, on libevent, built on px_http1. It
 * shows the parser's use in an event loop: each client connection gets
 * its own upstream connection; requests (pipelined too) are parsed, their
 * header section rewritten (docs/proxy-http.md), bodies streamed with the
 * framing they came with; responses likewise; Upgrade/CONNECT become a
 * byte tunnel. No TLS, workers, configuration or pools yet (issue 6).
 *
 *   weft-proxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT
 *              [--via NAME] [--by-id SPIFFE-ID] [--peer-id SPIFFE-ID]
 *
 * --peer-id stands in for the identity the caller's certificate will give:
 * it is sent as X-Forwarded-Client-Cert URI=. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "buf.h"
#include "log.h"
#include "px_http1.h"

#define PIPELINE_MAX 32            /* requests in flight on one connection */
#define HIGH_WATER (1u << 20)      /* stop reading a side when the other has this queued */
#define HEAD_MAX (PX_HTTP1_DEFAULT_MAX_LINE + PX_HTTP1_DEFAULT_MAX_HEADER_BYTES + 1024)

struct proxy {
	struct event_base *base;
	struct sockaddr_in upstream;
	char upstream_name[64];
	const char *via, *by_id, *peer_id;
	struct conn *conns;             /* every live connection, freed at exit */
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
	struct proxy *px;
	struct bufferevent *cli, *up;
	struct side rq, rs;
	char client_addr[INET_ADDRSTRLEN];
	enum px_http1_method q[PIPELINE_MAX];
	bool q_keep[PIPELINE_MAX];
	unsigned qh, qn;
	int pending_error;              /* status to answer once earlier responses are out */
	bool tunnel, closing, dead, response_started, up_connected;
	struct conn *next, **pprev;     /* in px->conns */
};

static void conn_free_cb(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	/* never free inside our own callbacks: from the loop, right after */
	event_base_once(c->px->base, -1, EV_TIMEOUT, conn_free_cb, c, NULL);
}

static void conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->pprev) {
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
	}
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
			     status == 502 ? "Bad Gateway" : "Internal Server Error";

	evbuffer_add_printf(bufferevent_get_output(c->cli),
			    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			    "Connection: close\r\n\r\n%s\n", status, reason, strlen(reason) + 1, reason);
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
		.via = c->px->via, .by_id = c->px->by_id, .peer_id = c->px->peer_id,
		.host = c->px->upstream_name,
	};

	if (c->qn == PIPELINE_MAX)
		return 1;
	c->q[(c->qh + c->qn) % PIPELINE_MAX] = m->method;
	c->q_keep[(c->qh + c->qn) % PIPELINE_MAX] = m->keep_alive;
	c->qn++;
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
	return side_headers(s, m, &fwd, final && !m->tunnel && (!keep || !m->keep_alive), out) != 0;
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
	keep = c->qn > 0 && c->q_keep[c->qh];
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
			int status = px_http1_status(PX_HTTP1_REQUEST, rc);

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

	if (!c->closing && c->pending_error == 0)
		bufferevent_enable(c->cli, EV_READ);
}

static void cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (c->tunnel && c->up != NULL && (what & BEV_EVENT_EOF)) {
			/* half-close: the upstream still may answer */
			shutdown(bufferevent_getfd(c->up), SHUT_WR);
			bufferevent_disable(c->cli, EV_READ);
			return;
		}
		conn_close(c);
	}
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		c->up_connected = true;
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (!c->up_connected) {
		log_warnx("proxy", "upstream %s: cannot connect", c->px->upstream_name);
		send_error(c, 502);
		return;
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
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct proxy *px = arg;
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->px = px;
	c->next = px->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &px->conns;
	px->conns = c;
	inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->client_addr, sizeof(c->client_addr));
	c->rq.c = c->rs.c = c;
	buf_init(&c->rq.line, PX_HTTP1_DEFAULT_MAX_LINE + 16);
	buf_init(&c->rq.store, HEAD_MAX);
	buf_init(&c->rs.line, PX_HTTP1_DEFAULT_MAX_LINE + 16);
	buf_init(&c->rs.store, HEAD_MAX);
	c->rq.p = px_http1_new(PX_HTTP1_REQUEST, NULL, &RQ_CB, &c->rq);
	c->rs.p = px_http1_new(PX_HTTP1_RESPONSE, NULL, &RS_CB, &c->rs);
	c->cli = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->up = bufferevent_socket_new(px->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->rq.p == NULL || c->rs.p == NULL || c->cli == NULL || c->up == NULL) {
		if (c->cli == NULL)
			evutil_closesocket(fd);
		c->dead = true;
		conn_free_cb(-1, 0, c);
		return;
	}
	bufferevent_setcb(c->cli, cli_read, cli_write, cli_event, c);
	bufferevent_setcb(c->up, up_read, up_write, up_event, c);
	bufferevent_setwatermark(c->cli, EV_WRITE, HIGH_WATER / 4, 0);
	bufferevent_setwatermark(c->up, EV_WRITE, HIGH_WATER / 4, 0);
	bufferevent_enable(c->cli, EV_READ | EV_WRITE);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->up, (struct sockaddr *)&px->upstream, sizeof(px->upstream)) != 0) {
		send_error(c, 502);
		return;
	}
}

/* Only loopback: "127.0.0.1:PORT". */
static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char host[32];
	char *end;
	long port;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535 || strcmp(host, "127.0.0.1") != 0)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'}, {"upstream", required_argument, NULL, 'u'},
		{"via", required_argument, NULL, 'v'}, {"by-id", required_argument, NULL, 'b'},
		{"peer-id", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0},
	};
	struct proxy px = {.via = "weft-proxy"};
	struct sockaddr_in listen_sa;
	const char *listen_s = NULL, *up_s = NULL;
	struct evconnlistener *l;
	struct event *sigint, *sigterm;
	int o;

	log_setup(LOG_LVL_INFO, stderr);
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'l': listen_s = optarg; break;
		case 'u': up_s = optarg; break;
		case 'v': px.via = optarg; break;
		case 'b': px.by_id = optarg; break;
		case 'p': px.peer_id = optarg; break;
		default:
			fprintf(stderr, "usage: weft-proxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT "
				"[--via NAME] [--by-id ID] [--peer-id ID]\n");
			return 2;
		}
	}
	if (listen_s == NULL || parse_addr(listen_s, &listen_sa) != 0)
		fatalx("proxy", "--listen: want 127.0.0.1:PORT, got \"%s\"", listen_s ? listen_s : "");
	if (up_s == NULL || parse_addr(up_s, &px.upstream) != 0)
		fatalx("proxy", "--upstream: want 127.0.0.1:PORT, got \"%s\"", up_s ? up_s : "");
	snprintf(px.upstream_name, sizeof(px.upstream_name), "%s", up_s);
	signal(SIGPIPE, SIG_IGN);
	px.base = event_base_new();
	if (px.base == NULL)
		fatalx("proxy", "event_base_new failed");
	l = evconnlistener_new_bind(px.base, on_accept, &px, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 128,
				    (struct sockaddr *)&listen_sa, sizeof(listen_sa));
	if (l == NULL)
		fatalx("proxy", "listen %s: %s", listen_s, strerror(errno));
	sigint = evsignal_new(px.base, SIGINT, on_signal, px.base);
	sigterm = evsignal_new(px.base, SIGTERM, on_signal, px.base);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	log_info("proxy", "listening on %s, upstream %s", listen_s, up_s);
	event_base_dispatch(px.base);
	/* Connections still open (and those whose free was queued when the loop
	 * stopped) go with the process, cleanly. */
	while (px.conns)
		conn_free_cb(-1, 0, px.conns);
	evconnlistener_free(l);
	event_free(sigint);
	event_free(sigterm);
	event_base_free(px.base);
	return 0;
}
