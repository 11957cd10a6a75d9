/* px_proxy: listeners, client connections, upstream connections and
 * their pools, the HTTP/1.1 and byte relays (px_proxy.h).
 *
 * HTTP: a client connection carries one request at a time. Its head is
 * parsed and rewritten (docs/proxy-http.md), an endpoint is picked
 * (px_cluster), an idle pooled connection to it is taken or a new one is
 * opened, the request is streamed with the framing it came with, and the
 * response likewise; when the response ends the upstream connection goes
 * back to its endpoint's pool and the next (pipelined) request is parsed.
 * A connect failure moves the request, which has not left the proxy, to
 * another endpoint; a 5xx to an idempotent request kept whole (at most
 * REPLAY_MAX bytes) is replayed on another one; both within the retry
 * budget. TCP: one upstream connection per client connection, picked and
 * retried the same way. Upgrade/CONNECT turn the pair into a byte tunnel.
 * Either side may be a bufferevent_openssl (docs/proxy-mtls.md): the relay
 * only sees bufferevents. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "buf.h"
#include "err.h"
#include "httpmsg.h"
#include "log.h"
#include "px_accesslog.h"
#include "px_cluster.h"
#include "px_config.h"
#include "px_proxy.h"
#include "px_splice.h"
#include "px_stats.h"
#include "px_tls.h"

#define HIGH_WATER (1u << 20)      /* stop reading a side when the other has this queued */
#define HEAD_MAX (PX_HTTP1_DEFAULT_MAX_LINE + PX_HTTP1_DEFAULT_MAX_HEADER_BYTES + 1024)
#define ID_MAX 512
#define REPLAY_MAX (64u << 10)     /* a request kept for a 5xx retry */
#define POOL_IDLE_MAX 1024         /* idle connections kept per endpoint */
#define LINE_LOG_MAX 4096

struct upconn;

struct px_listener {
	struct event_base *base;
	struct evconnlistener *ev;
	struct px_listener_cfg cfg;
	struct conn *conns;             /* open ones (and closed ones not yet freed) */
	size_t nconns;
	size_t inflight;                /* attempts in progress (circuit breaker) */
	int sid;                        /* px_stats listener index */
	bool draining;                  /* px_listener_drain() */
	struct px_cluster *cluster;
	uint64_t gen;                   /* the slot generation the cluster follows */
	struct px_timeouts timeouts;    /* the cluster's, or the fixed upstream's */
	struct px_http1_limits rq_limits;
	size_t rq_head_max;             /* a request head collected, at most */
};

struct field {
	size_t name, name_len, value, value_len;
};

/* A head being collected (allocated only while one is). */
struct head {
	struct buf line;                /* request: method SP target; response: reason */
	struct buf store;               /* header names and values */
	struct field f[PX_HTTP1_DEFAULT_MAX_HEADERS + 1];
	size_t nf;
	bool in_value, in_target;
};

/* One direction: its parser and the head being collected. */
struct side {
	struct px_http1 *p;
	struct head *h;
	bool chunked;
	struct conn *c;
};

/* An upstream connection: owned by a client connection (c) or idle in
 * its endpoint's pool (c NULL). */
struct upconn {
	struct px_listener *l;
	struct bufferevent *bev;
	struct px_ep *ep;               /* a reference */
	struct conn *c;
	struct upconn *pool_prev, *pool_next;
	bool connected, reused, pooled;
	bool shut;                      /* our half of its stream ended (shut_up) */
};

struct conn {
	struct px_listener *l;
	struct conn *_prev, *_next;     /* in l->conns */
	struct bufferevent *cli;        /* NULL once spliced */
	struct upconn *u;               /* the attempt in progress, or NULL */
	struct px_splice *sp;           /* plaintext TCP: the kernel moves the bytes */
	size_t sp_prefix;               /* bytes read before it (counted already) */
	struct side rq, rs;
	struct event *timer;            /* idle, request timeout */
	struct event *resume;           /* runs cli_read from the loop (resume_reading) */
	struct event *eof_ev;           /* a TLS side's EOF, handled from the loop */
	short cli_eof_what, up_eof_what;
	struct upconn *eof_u;           /* the attempt whose EOF waits */
	char client_addr[INET_ADDRSTRLEN];
	char peer[INET_ADDRSTRLEN + 8];     /* addr:port, for log lines */
	char peer_id[ID_MAX];               /* the caller's SPIFFE ID (or --peer-id) */
	char by_id[ID_MAX];                 /* ours, as of the accept */
	char denied_by[PX_DENIED_BY_MAX];   /* with a 403: what decided (X-Weft-Denied-By) */
	char answered_by[64];               /* the endpoint of the current attempt */
	/* the request in flight (HTTP) */
	enum px_http1_method method;
	bool keep;                      /* the client lets the connection carry another */
	bool req_active;                /* head forwarded, response not finished */
	bool req_done;                  /* the client's message is all read */
	bool upgrade_req;               /* it asked for a tunnel */
	bool response_started;          /* a final response head went to the client */
	bool retrying;                  /* a 5xx head is being discarded for a retry */
	bool retry_counted;             /* holds a px_cluster_retry_begin */
	bool retry_pre;                 /* one taken for the retry about to start */
	bool resp_complete;             /* the response ended: finish_response() runs */
	bool resp_keep;                 /* and the upstream lets its connection be reused */
	struct evbuffer *replay;        /* the request as forwarded, for a 5xx retry */
	struct px_ep *tried;            /* the last endpoint tried (a reference) */
	unsigned attempts;              /* retries so far */
	uint64_t hash;
	bool has_hash;
	uint64_t start_us, body_in, last_active_ms;
	char *line;                     /* "METHOD target" for the access log */
	bool tunnel, closing, dead, cli_ready, denied, stats_open;
	bool shut_up_pending;           /* half-close the upstream once its output drains */
	bool cli_ended;                 /* the client half-closed a tunnel: never read again */
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000u;
}

static struct timeval tv_ms(uint32_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)(ms % 1000u) * 1000};

	return tv;
}

static void nodelay(evutil_socket_t fd)
{
	int one = 1;

	/* small writes (a response head, a TLS record) go out now, not after
	 * the peer's delayed ACK: Nagle would add ~40 ms per request */
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static SSL *bev_ssl(struct bufferevent *bev)
{
	return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

/* A TLS bufferevent on fd (-1: to connect). On failure fd is closed, ssl
 * freed, NULL returned. */
static struct bufferevent *tls_bev_new(struct event_base *base, evutil_socket_t fd, SSL *ssl,
				       enum bufferevent_ssl_state state)
{
	struct bufferevent *b = ssl ? bufferevent_openssl_socket_new(base, fd, ssl, state,
								     BEV_OPT_CLOSE_ON_FREE) : NULL;

	if (b == NULL) {
		if (fd >= 0)
			evutil_closesocket(fd);
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(b, 1);
	/* one read() brings a record's header and body (two without) */
	SSL_set_read_ahead(ssl, 1);
	return b;
}

/* OpenSSL reads ahead on a TLS side, but libevent's TLS bufferevent asks
 * only SSL_pending (bytes decrypted) before it waits for the socket again:
 * records read but not decrypted yet would wait for more bytes from the
 * peer, maybe forever (a request that came with the handshake's Finished,
 * the second of two records read at once, a close_notify). Wherever
 * reading may go on, libevent's read handler runs again while OpenSSL
 * holds such records. */
static void tls_read_more(struct bufferevent *bev)
{
	SSL *ssl = bev_ssl(bev);

	if (ssl != NULL && SSL_has_pending(ssl) && (bufferevent_get_enabled(bev) & EV_READ))
		event_active(&bev->ev_read, EV_READ, 1);
}

/* Reading (again) on a side: bufferevent_enable, and what OpenSSL has
 * read ahead. */
static void read_on(struct bufferevent *bev)
{
	bufferevent_enable(bev, EV_READ);
	tls_read_more(bev);
}

/* Sockets are written at once by the callbacks that queue the bytes (a
 * speculative send, as HAProxy does), instead of libevent's way: add the
 * write event, wait a loop turn for EPOLLOUT, write, remove the event
 * (two epoll_ctl calls and a loop turn per response, on the critical path
 * of every request). EV_WRITE stays disabled on a connected bufferevent
 * while its output is empty; a write that leaves bytes behind enables it
 * and libevent sends the rest (and reports an error).
 *
 * TLS (bufferevent_openssl, once the handshake is done): SSL_write of at
 * most one record's worth from the front of the output, then drained.
 * When OpenSSL cannot finish (WANT_WRITE: the socket is full), the bytes
 * stay at the front of the output and EV_WRITE is enabled: libevent's
 * writer calls SSL_write again with them (a retry OpenSSL accepts: the
 * same bytes, at least as many, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). Once
 * all is written, disabling EV_WRITE cancels, within the same loop turn,
 * the write event libevent's output callback added (the epoll changelist
 * makes no system call for it).
 *
 * true: bytes were written and none is left, so libevent's writer will not
 * run and its write callback will not come: the caller does what that
 * callback does (up_drained, cli_drained), or a side whose reading stopped
 * for backpressure would wait for it forever. */
#define TLS_WRITE_MAX 16384

static bool write_now(struct bufferevent *bev)
{
	struct evbuffer *out;
	SSL *ssl;
	int wr;

	if (bev == NULL)
		return false;
	out = bufferevent_get_output(bev);
	ssl = bev_ssl(bev);
	if (ssl != NULL) {
		size_t len;

		if (evbuffer_get_length(out) == 0)
			return false;
		if ((bufferevent_get_enabled(bev) & EV_WRITE) || !SSL_is_init_finished(ssl)) {
			/* libevent writes (handshake, or a write in progress):
			 * it sends one TLS record per buffer chain, so a small
			 * message made contiguous goes out as one record */
			if (evbuffer_get_length(out) <= TLS_WRITE_MAX)
				evbuffer_pullup(out, -1);
			return false;
		}
		while ((len = evbuffer_get_length(out)) > 0) {
			int n = len > TLS_WRITE_MAX ? TLS_WRITE_MAX : (int)len;
			unsigned char *p = evbuffer_pullup(out, n);

			ERR_clear_error();
			wr = p != NULL ? SSL_write(ssl, p, n) : -1;
			if (wr <= 0) {
				/* blocked, or an error libevent's writer meets again
				 * and reports (BEV_EVENT_ERROR) */
				ERR_clear_error();
				bufferevent_enable(bev, EV_WRITE);
				return false;
			}
			evbuffer_drain(out, (size_t)wr);
		}
		bufferevent_disable(bev, EV_WRITE);
		return true;
	}
	if (evbuffer_get_length(out) == 0 || (bufferevent_get_enabled(bev) & EV_WRITE))
		return false;
	/* (bufferevent_socket keeps its output's start frozen but in its
	 * own write callback) */
	evbuffer_unfreeze(out, 1);
	wr = evbuffer_write(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
	if (wr < 0 && errno != EAGAIN && errno != EINTR) {
		bufferevent_enable(bev, EV_WRITE);
		return false;
	}
	if (evbuffer_get_length(out) > 0) {
		bufferevent_enable(bev, EV_WRITE);
		return false;
	}
	return true;
}

/* A write callback found the output empty (or a handshake just ended):
 * back to writing at once. */
static void write_idle(struct bufferevent *bev)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

/* ---- the cluster: fixed, or followed from the snapshot ---- */

static const struct px_timeouts DEFAULT_TIMEOUTS = {
	.connect_ms = 5000, .idle_ms = 300000, .request_ms = 15000,
};

static void pool_close_ep(struct px_ep *ep, void *ud);

/* The snapshot's upstream for this listener, if the slot moved on. */
static void cluster_follow(struct px_listener *l)
{
	struct px_config *cfg;
	const struct px_upstream *u;
	uint64_t gen;
	char *err = NULL;

	if (l->cfg.slot == NULL)
		return;
	gen = px_config_slot_generation(l->cfg.slot);
	if (gen == l->gen)
		return;
	l->gen = gen;
	cfg = px_config_slot_get(l->cfg.slot);
	u = cfg ? px_config_upstream(cfg, l->cfg.upstream_cluster) : NULL;
	if (u == NULL) {
		log_warnx("proxy", "listener %s: upstream \"%s\" is not in the snapshot any more: its "
			  "last endpoints stay in use", l->cfg.name, l->cfg.upstream_cluster);
	} else if (px_cluster_update(l->cluster, u, &err) != 0) {
		log_warnx("proxy", "listener %s: upstream \"%s\" refused: %s (its last endpoints stay "
			  "in use)", l->cfg.name, l->cfg.upstream_cluster, err ? err : "?");
		free(err);
	} else {
		l->timeouts = *px_cluster_timeouts(l->cluster);
	}
	px_config_unref(cfg);
}

static int cluster_init(struct px_listener *l, char **err)
{
	char addr[INET_ADDRSTRLEN];
	const struct px_timeouts *t = l->cfg.timeouts ? l->cfg.timeouts : &DEFAULT_TIMEOUTS;
	int rc;

	rc = px_cluster_new(&l->cluster, l->cfg.slot ? l->cfg.upstream_cluster : l->cfg.name, err);
	if (rc != WEFT_OK)
		return rc;
	px_cluster_set_on_remove(l->cluster, pool_close_ep, l);
	l->timeouts = *t;
	if (l->cfg.slot != NULL) {
		cluster_follow(l);
		return WEFT_OK;
	}
	/* one fixed endpoint: nothing to retry on or eject */
	inet_ntop(AF_INET, &l->cfg.upstream.sin_addr, addr, sizeof(addr));
	{
		struct px_endpoint ep = {
			.address = addr, .port = ntohs(l->cfg.upstream.sin_port), .weight = 1,
			.zone = "", .spiffe_id = l->cfg.upstream_id ? l->cfg.upstream_id : "",
		};
		struct px_upstream u = {
			.name = l->cfg.name, .service = l->cfg.name, .lb_policy = PX_LB_ROUND_ROBIN,
			.timeouts = *t,
			.n_endpoints = 1, .endpoints = &ep,
			.protocol = l->cfg.mode == PX_MODE_HTTP ? PX_PROTO_HTTP : PX_PROTO_TCP,
		};

		return px_cluster_update(l->cluster, &u, err);
	}
}

static void cli_read(struct bufferevent *bev, void *arg);

/* cli_read again from the loop, for bytes already read (a pipelined
 * request, bytes after an upgrade). Our own event, not
 * bufferevent_trigger(..., BEV_TRIG_DEFER_CALLBACKS): a deferred
 * bufferevent callback holds a reference that a loop stopped before it
 * runs would never drop (the bufferevent and its SSL would leak). */
static void resume_reading(struct conn *c)
{
	if (c->cli != NULL && !c->dead)
		event_active(c->resume, EV_READ, 1);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->cli != NULL && !c->dead)
		cli_read(c->cli, c);
}

/* ---- stats and access log hooks ---- */

static void count_bytes(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	/* client input: what arrived; client output: what was written */
	if (b == bufferevent_get_input(c->cli))
		px_stats_bytes(c->l->cfg.stats, c->l->sid, info->n_added, 0);
	else
		px_stats_bytes(c->l->cfg.stats, c->l->sid, 0, info->n_deleted);
}

/* A request's head arrived. */
static void req_begin(struct conn *c, const char *line, size_t len)
{
	c->start_us = now_us();
	c->body_in = 0;
	free(c->line);
	c->line = c->l->cfg.access_log ? strndup(line, len < LINE_LOG_MAX ? len : LINE_LOG_MAX) : NULL;
}

/* A response of status went to the client (for the request in flight, or
 * for one refused before it was forwarded). */
static void req_end(struct conn *c, int status, uint64_t bytes_out)
{
	uint64_t dur = c->start_us ? now_us() - c->start_us : 0;

	px_stats_request(c->l->cfg.stats, c->l->sid, status, dur);
	if (c->l->cfg.access_log != NULL) {
		const char *line = c->line ? c->line : c->rq.h ? c->rq.h->line.data : NULL;
		struct px_accesslog_entry e = {
			.listener = c->l->cfg.name, .source = c->peer_id[0] ? c->peer_id : c->client_addr,
			.line = line, .line_len = line ? strlen(line) : 0, .status = status,
			.bytes_in = c->body_in, .bytes_out = bytes_out, .duration_us = dur,
			.upstream = c->answered_by[0] ? c->answered_by : c->l->cfg.upstream_name,
		};

		px_accesslog_write(c->l->cfg.access_log, &e);
	}
	free(c->line);
	c->line = NULL;
	c->start_us = 0;
}

/* ---- upstream connections and pools ---- */

static void start_splice(struct conn *c);
static void up_read(struct bufferevent *bev, void *arg);
static void up_write(struct bufferevent *bev, void *arg);
static void up_drained(struct upconn *u);
static void up_event(struct bufferevent *bev, short what, void *arg);
static void conn_close(struct conn *c);

static void upconn_free(struct upconn *u)
{
	if (u == NULL)
		return;
	if (u->bev) {
		SSL *ssl = bev_ssl(u->bev);

		if (ssl != NULL && u->connected) {
			/* close_notify: a connection ended without one makes
			 * OpenSSL drop its session, and the next connection
			 * could not resume it */
			SSL_shutdown(ssl);
			ERR_clear_error();
		}
		bufferevent_setcb(u->bev, NULL, NULL, NULL, NULL);
		bufferevent_free(u->bev);
	}
	px_ep_unref(u->ep);
	free(u);
}

static void pool_unlink(struct upconn *u)
{
	void **head = px_ep_slot(u->ep);

	if (u->pool_prev)
		u->pool_prev->pool_next = u->pool_next;
	else if (*head == u)
		*head = u->pool_next;
	if (u->pool_next)
		u->pool_next->pool_prev = u->pool_prev;
	u->pool_prev = u->pool_next = NULL;
	u->pooled = false;
}

/* An idle pooled connection spoke or closed (or idled out): drop it. */
static void pool_read(struct bufferevent *bev, void *arg)
{
	struct upconn *u = arg;

	pool_unlink(u);
	upconn_free(u);
}

static void pool_event(struct bufferevent *bev, short what, void *arg)
{
	pool_read(bev, arg);
}

static void pool_close_ep(struct px_ep *ep, void *ud)
{
	void **head = px_ep_slot(ep);

	while (*head != NULL) {
		struct upconn *u = *head;

		pool_unlink(u);
		upconn_free(u);
	}
}

static size_t pool_len(struct px_ep *ep)
{
	size_t n = 0;

	for (struct upconn *u = *px_ep_slot(ep); u != NULL && n < POOL_IDLE_MAX; u = u->pool_next)
		n++;
	return n;
}

static void pool_put(struct upconn *u)
{
	void **head = px_ep_slot(u->ep);
	struct timeval idle = tv_ms(u->l->timeouts.idle_ms);

	if (px_ep_removed(u->ep) || u->l->draining || pool_len(u->ep) >= POOL_IDLE_MAX ||
	    evbuffer_get_length(bufferevent_get_input(u->bev)) > 0) {
		upconn_free(u);
		return;
	}
	u->c = NULL;
	u->pooled = true;
	u->pool_prev = NULL;
	u->pool_next = *head;
	if (u->pool_next)
		u->pool_next->pool_prev = u;
	*head = u;
	bufferevent_setcb(u->bev, pool_read, NULL, pool_event, u);
	bufferevent_set_timeouts(u->bev, &idle, NULL);
	read_on(u->bev);
}

static struct upconn *pool_take(struct px_ep *ep)
{
	struct upconn *u = *px_ep_slot(ep);

	if (u == NULL)
		return NULL;
	pool_unlink(u);
	bufferevent_set_timeouts(u->bev, NULL, NULL);
	u->reused = true;
	return u;
}

static struct upconn *upconn_open(struct px_listener *l, struct px_ep *ep)
{
	const struct px_listener_cfg *cfg = &l->cfg;
	struct upconn *u = calloc(1, sizeof(*u));
	struct timeval ct = tv_ms(l->timeouts.connect_ms);

	if (u == NULL)
		return NULL;
	u->l = l;
	u->ep = px_ep_ref(ep);
	if (cfg->tls_out != NULL) {
		const char *id = px_ep_spiffe_id(ep)[0] ? px_ep_spiffe_id(ep) : cfg->upstream_id;
		const char *sni = cfg->sni ? cfg->sni : px_ep_sni(ep)[0] ? px_ep_sni(ep) : NULL;
		SSL *ssl = px_tls_ssl_new(cfg->tls_out, id, sni);

		u->bev = tls_bev_new(l->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING);
	} else {
		u->bev = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (u->bev == NULL) {
		upconn_free(u);
		return NULL;
	}
	bufferevent_setwatermark(u->bev, EV_WRITE, HIGH_WATER / 4, 0);
	bufferevent_set_timeouts(u->bev, &ct, &ct);
	return u;
}

/* ---- closing ---- */

static void conn_free_cb(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	/* never free inside our own callbacks: from the loop, right after */
	event_base_once(c->l->base, -1, EV_TIMEOUT, conn_free_cb, c, NULL);
}

static void head_free(struct head *h)
{
	if (h == NULL)
		return;
	buf_free(&h->line);
	buf_free(&h->store);
	free(h);
}

/* The attempt in progress ends: the upstream connection goes back to the
 * pool (reuse) or is closed. */
static void attempt_end(struct conn *c, bool reuse)
{
	struct upconn *u = c->u;

	if (u == NULL)
		return;
	c->u = NULL;
	if (c->eof_u == u) {
		c->eof_u = NULL;
		c->up_eof_what = 0;
	}
	c->l->inflight--;
	px_ep_request_end(u->ep);
	if (c->retry_counted) {
		px_cluster_retry_end(c->l->cluster);
		c->retry_counted = false;
	}
	if (reuse && u->connected && !c->dead)
		pool_put(u);
	else
		upconn_free(u);
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
	c->l->nconns--;
	if (c->stats_open)
		px_stats_conn_close(c->l->cfg.stats, c->l->sid);
	attempt_end(c, false);
	px_ep_unref(c->tried);
	if (c->replay)
		evbuffer_free(c->replay);
	free(c->line);
	if (c->timer)
		event_free(c->timer);
	if (c->resume)
		event_free(c->resume);
	if (c->eof_ev)
		event_free(c->eof_ev);
	px_splice_free(c->sp);
	if (c->cli && c->cli_ready && bev_ssl(c->cli) != NULL) {
		/* a clean end for the caller (a bare FIN reads as an
		 * "unexpected eof" to OpenSSL 3 peers) */
		SSL_shutdown(bev_ssl(c->cli));
		ERR_clear_error();
	}
	if (c->cli)
		bufferevent_free(c->cli);
	px_http1_free(c->rq.p);
	px_http1_free(c->rs.p);
	head_free(c->rq.h);
	head_free(c->rs.h);
	free(c);
}

/* Close the client once what we queued for it has been written. */
static size_t queued(struct bufferevent *bev)
{
	return evbuffer_get_length(bufferevent_get_output(bev));
}

static void close_after_flush(struct conn *c)
{
	c->closing = true;
	bufferevent_disable(c->cli, EV_READ);
	write_now(c->cli);
	if (queued(c->cli) == 0)
		conn_close(c);
}

/* The proxy answers only statuses http_reason knows; anything else would
 * be a bug of ours, said as a 500's phrase. */
static const char *reason_phrase(int status)
{
	const char *r = http_reason(status);

	return r[0] ? r : "Internal Server Error";
}

/* Answers status ourselves and closes. */
static void send_error(struct conn *c, int status)
{
	const char *reason = reason_phrase(status);
	struct evbuffer *out = bufferevent_get_output(c->cli);

	if (status == 403 && c->denied) {
		/* an intention denied the request: say so, and by which */
		evbuffer_add_printf(out, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
				    "Content-Length: %zu\r\nX-Weft-Denied-By: %s\r\nConnection: close\r\n\r\n"
				    "denied by weft-proxy: %s\n", strlen(c->denied_by) + 23, c->denied_by,
				    c->denied_by);
		req_end(c, status, strlen(c->denied_by) + 23);
	} else {
		evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
				    "Connection: close\r\n\r\n%s\n", status, reason, strlen(reason) + 1, reason);
		req_end(c, status, strlen(reason) + 1);
	}
	c->req_active = false;
	attempt_end(c, false);
	close_after_flush(c);
}

/* The request cannot be answered by an upstream: an error response if
 * nothing of one was sent yet, else the connection ends. */
static void fail_request(struct conn *c, int status)
{
	if (c->l->cfg.mode == PX_MODE_HTTP && !c->tunnel && !c->response_started && !c->closing)
		send_error(c, status);
	else
		conn_close(c);
}

/* ---- collecting a head from the parser's pieces ---- */

static struct head *side_head(struct side *s)
{
	if (s->h == NULL) {
		s->h = calloc(1, sizeof(*s->h));
		if (s->h == NULL)
			return NULL;
		buf_init(&s->h->line, PX_HTTP1_DEFAULT_MAX_LINE + 16);
		buf_init(&s->h->store, s == &s->c->rq ? s->c->l->rq_head_max : HEAD_MAX);
	}
	return s->h;
}

static void side_head_done(struct side *s)
{
	head_free(s->h);
	s->h = NULL;
}

static int on_method(void *ud, const char *at, size_t len)
{
	struct head *h = side_head(ud);

	return h == NULL || buf_append(&h->line, at, len) != 0;
}

static int on_target(void *ud, const char *at, size_t len)
{
	struct head *h = side_head(ud);

	if (h == NULL || (!h->in_target && buf_append(&h->line, " ", 1) != 0))
		return 1;
	h->in_target = true;
	return buf_append(&h->line, at, len) != 0;
}

static int on_name(void *ud, const char *at, size_t len)
{
	struct head *h = side_head(ud);

	if (h == NULL)
		return 1;
	if (h->in_value || h->nf == 0) {
		if (h->nf == sizeof(h->f) / sizeof(h->f[0]))
			return 1;
		h->f[h->nf++] = (struct field){.name = h->store.len};
		h->in_value = false;
	}
	h->f[h->nf - 1].name_len += len;
	return buf_append(&h->store, at, len) != 0;
}

static int on_value(void *ud, const char *at, size_t len)
{
	struct head *h = side_head(ud);

	if (h == NULL || h->nf == 0)
		return 1;
	if (!h->in_value)
		h->f[h->nf - 1].value = h->store.len;
	h->in_value = true;
	h->f[h->nf - 1].value_len += len;
	return buf_append(&h->store, at, len) != 0;
}

static size_t head_fields(const struct head *h, struct px_http1_header *out)
{
	for (size_t i = 0; h != NULL && i < h->nf; i++)
		out[i] = (struct px_http1_header){
			h->store.data + h->f[i].name, h->f[i].name_len,
			h->store.data + h->f[i].value, h->f[i].value_len,
		};
	return h ? h->nf : 0;
}

/* The forwarded header section of the head collected in s, into out. */
static int side_headers(struct side *s, const struct px_http1_msg *m,
			const struct px_http1_forward *fwd, bool add_close, struct evbuffer *out)
{
	struct px_http1_header hdr[PX_HTTP1_DEFAULT_MAX_HEADERS + 1];
	size_t n = head_fields(s->h, hdr);
	struct buf b;
	char *err = NULL;
	int rc;

	buf_init(&b, s == &s->c->rq ? s->c->l->rq_head_max + 4096 : HEAD_MAX);
	rc = px_http1_forward_headers(m, hdr, n, fwd, &b, &err);
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
	return 0;
}

/* A copy of b's bytes appended to to. */
static void evbuffer_copy_into(struct evbuffer *to, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);

	if (n > 0)
		evbuffer_add(to, evbuffer_pullup(b, -1), n);
}

/* ---- attempts: pick, connect or take from the pool ---- */

static void log_ejection(struct conn *c, struct px_ep *ep, const char *why)
{
	px_stats_upstream_event(c->l->cfg.stats, c->l->sid, PX_STATS_EJECTION);
	log_warnx("proxy", "endpoint ejected: listener=%s upstream=%s endpoint=%s after=%s "
		  "ejected-now=%zu/%zu", c->l->cfg.name, px_cluster_name(c->l->cluster),
		  px_ep_name(ep), why, px_cluster_ejected(c->l->cluster, now_ms()),
		  px_cluster_size(c->l->cluster));
}

/* Starts an attempt: an endpoint other than the last one tried when there
 * is one, a pooled connection to it (HTTP) or a new one. pending: bytes
 * the attempt must send first (moved out), or NULL. 0, or -1 when there
 * is no endpoint (the caller answers). */
static int attempt_start(struct conn *c, struct evbuffer *pending)
{
	struct px_listener *l = c->l;
	struct px_ep *ep;
	struct upconn *u = NULL;

	cluster_follow(l);
	if (l->cfg.max_pending_requests > 0 && l->inflight >= l->cfg.max_pending_requests) {
		px_stats_upstream_event(l->cfg.stats, l->sid, PX_STATS_OVERFLOW);
		log_warnx("proxy", "overflow: listener=%s upstream=%s client=%s (%zu in flight, "
			  "Limits.MaxPendingRequests)", l->cfg.name, px_cluster_name(l->cluster), c->peer,
			  l->inflight);
		return -1;
	}
	ep = px_cluster_pick(l->cluster, c->hash, c->has_hash, c->tried, now_ms());
	if (ep == NULL) {
		px_stats_upstream_event(l->cfg.stats, l->sid, PX_STATS_NO_ENDPOINT);
		log_warnx("proxy", "no endpoint: listener=%s upstream=%s client=%s (none known, or all "
			  "critical)", l->cfg.name, px_cluster_name(l->cluster), c->peer);
		return -1;
	}
	px_ep_unref(c->tried);
	c->tried = px_ep_ref(ep);
	if (l->cfg.mode == PX_MODE_HTTP && !c->tunnel && (u = pool_take(ep)) != NULL)
		px_stats_upstream_event(l->cfg.stats, l->sid, PX_STATS_POOL_REUSE);
	if (u == NULL && (u = upconn_open(l, ep)) != NULL &&
	    bufferevent_socket_connect(u->bev, (struct sockaddr *)(void *)px_ep_addr(ep),
				       sizeof(struct sockaddr_in)) != 0) {
		/* (an immediate failure: let the event path handle it alike) */
		upconn_free(u);
		u = NULL;
	}
	if (u != NULL && !u->reused)
		nodelay(bufferevent_getfd(u->bev));
	px_ep_unref(ep);
	if (u == NULL) {
		px_stats_upstream_connect_failure(l->cfg.stats, l->sid);
		log_warnx("proxy", "upstream %s: cannot connect: listener=%s", px_ep_name(c->tried),
			  l->cfg.name);
		if (px_cluster_report(l->cluster, c->tried, PX_OUTCOME_CONNECT_FAILURE, now_ms()))
			log_ejection(c, c->tried, "connect-failure");
		return -1;
	}
	u->c = c;
	c->u = u;
	l->inflight++;
	px_ep_request_begin(u->ep);
	snprintf(c->answered_by, sizeof(c->answered_by), "%s", px_ep_name(u->ep));
	bufferevent_setcb(u->bev, up_read, up_write, up_event, u);
	/* (a new connection needs EV_WRITE to learn that it connected) */
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	if (u->connected)
		bufferevent_disable(u->bev, EV_WRITE);
	if (pending != NULL)
		evbuffer_add_buffer(bufferevent_get_output(u->bev), pending);
	if (u->connected && write_now(u->bev))
		up_drained(u);
	if (c->tunnel && evbuffer_get_length(bufferevent_get_input(c->cli)) > 0)
		resume_reading(c);
	return 0;
}

/* The attempt in progress failed with o before anything of a response
 * reached the client: retry on another endpoint if the policy, the
 * attempts left and the budget allow, else answer. unsent: what must be
 * resent (the request not yet written, or the replay copy), or NULL. */
static void attempt_failed(struct conn *c, enum px_outcome o, struct evbuffer *unsent, int status)
{
	struct px_listener *l = c->l;
	struct evbuffer *pending = evbuffer_new();
	bool retry;

	if (c->u != NULL && px_cluster_report(l->cluster, c->u->ep, o, now_ms()))
		log_ejection(c, c->u->ep, o == PX_OUTCOME_5XX ? "5xx" : "connect-failure");
	if (pending != NULL && unsent != NULL)
		evbuffer_copy_into(pending, unsent);
	attempt_end(c, false);
	retry = pending != NULL && unsent != NULL && c->attempts < px_cluster_attempts(l->cluster) &&
		!c->closing && !c->dead && (c->retry_pre || px_cluster_retry_begin(l->cluster, o));
	if (c->retry_pre && !retry)
		px_cluster_retry_end(l->cluster);
	c->retry_pre = false;
	if (retry) {
		c->attempts++;
		px_stats_upstream_event(l->cfg.stats, l->sid, PX_STATS_RETRY);
		log_info("proxy", "retry: listener=%s upstream=%s after=%s attempt=%u client=%s",
			 l->cfg.name, px_cluster_name(l->cluster),
			 o == PX_OUTCOME_5XX ? "5xx" : "connect-failure", c->attempts + 1, c->peer);
		if (attempt_start(c, pending) == 0) {
			c->retry_counted = true;
			if (c->rs.p)
				px_http1_reset(c->rs.p);
			side_head_done(&c->rs);
			evbuffer_free(pending);
			return;
		}
		px_cluster_retry_end(l->cluster);
		status = 503;
	}
	if (pending)
		evbuffer_free(pending);
	fail_request(c, status);
}

/* ---- request side ---- */

static bool idempotent(enum px_http1_method m)
{
	return m == PX_HTTP1_M_GET || m == PX_HTTP1_M_HEAD || m == PX_HTTP1_M_OPTIONS ||
	       m == PX_HTTP1_M_TRACE || m == PX_HTTP1_M_PUT || m == PX_HTTP1_M_DELETE;
}

/* The ring hash of the request: its hash header's value, if any. */
static void request_hash(struct conn *c, const struct px_http1_header *h, size_t n)
{
	const char *name = px_cluster_hash_header(c->l->cluster);

	c->has_hash = false;
	for (size_t i = 0; name != NULL && i < n; i++)
		if (h[i].name_len == strlen(name) && strncasecmp(h[i].name, name, h[i].name_len) == 0) {
			c->hash = px_cluster_hash(h[i].value, h[i].value_len);
			c->has_hash = true;
			return;
		}
}

static void arm_timer(struct conn *c, uint32_t ms)
{
	struct timeval tv = tv_ms(ms);

	if (ms == 0)
		event_del(c->timer);
	else
		event_add(c->timer, &tv);
}

static int rq_headers_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;
	struct conn *c = s->c;
	struct px_http1_header hdr[PX_HTTP1_DEFAULT_MAX_HEADERS + 1];
	size_t n = head_fields(s->h, hdr);
	struct evbuffer *head = NULL;
	struct px_http1_forward fwd = {
		.client_addr = c->client_addr, .xff_append = true, .proto = "http",
		.via = c->l->cfg.via, .by_id = c->by_id[0] ? c->by_id : NULL,
		.peer_id = c->peer_id[0] ? c->peer_id : NULL,
	};
	int rc = 1;

	if (s->h == NULL)
		return 1;
	if (c->l->cfg.authorize != NULL) {
		struct px_request_info ri = {m, s->h->line.data, s->h->line.len, hdr, n};

		if (c->l->cfg.authorize(c->l->cfg.authorize_ud, c->peer_id[0] ? c->peer_id : NULL,
					&ri, c->denied_by, sizeof(c->denied_by)) != 0) {
			c->denied = true;
			return 1;
		}
	}
	if (c->l->cfg.max_body_bytes > 0 && m->body == PX_HTTP1_BODY_LENGTH &&
	    m->content_length > c->l->cfg.max_body_bytes)
		return 1; /* cli_read answers 413 */
	c->method = m->method;
	c->keep = m->keep_alive;
	c->upgrade_req = m->tunnel;
	c->req_active = true;
	c->req_done = false;
	c->response_started = false;
	c->attempts = 0;
	px_ep_unref(c->tried);
	c->tried = NULL;
	req_begin(c, s->h->line.data, s->h->line.len);
	request_hash(c, hdr, n);
	if (attempt_start(c, NULL) != 0) {
		send_error(c, 503);
		side_head_done(s);
		return 0;
	}
	fwd.host = c->answered_by;
	head = evbuffer_new();
	if (head == NULL)
		goto out;
	evbuffer_add_printf(head, "%.*s HTTP/1.1\r\n", (int)s->h->line.len, s->h->line.data);
	s->chunked = m->body == PX_HTTP1_BODY_CHUNKED;
	if (side_headers(s, m, &fwd, false, head) != 0)
		goto out;
	if (c->replay) {
		evbuffer_free(c->replay);
		c->replay = NULL;
	}
	/* kept whole for a 5xx retry when small and safe to send twice */
	if (idempotent(m->method) && !m->tunnel && !m->expect_continue &&
	    (m->body == PX_HTTP1_BODY_NONE ||
	     (m->body == PX_HTTP1_BODY_LENGTH && m->content_length <= REPLAY_MAX)) &&
	    (c->replay = evbuffer_new()) != NULL)
		evbuffer_copy_into(c->replay, head);
	evbuffer_add_buffer(bufferevent_get_output(c->u->bev), head);
	arm_timer(c, c->l->timeouts.request_ms);
	rc = 0;
out:
	if (head)
		evbuffer_free(head);
	side_head_done(s);
	return rc;
}

static int rq_body(void *ud, const char *at, size_t len)
{
	struct side *s = ud;
	struct conn *c = s->c;
	struct evbuffer *out;

	c->body_in += len;
	if (c->l->cfg.max_body_bytes > 0 && c->body_in > c->l->cfg.max_body_bytes)
		return 1;
	if (c->u == NULL)
		return 0; /* the attempt ended (an early response): the rest is dropped */
	out = bufferevent_get_output(c->u->bev);
	if (s->chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, at, len);
	if (s->chunked)
		evbuffer_add(out, "\r\n", 2);
	if (c->replay) {
		if (evbuffer_get_length(c->replay) + len > REPLAY_MAX + HEAD_MAX) {
			evbuffer_free(c->replay);
			c->replay = NULL;
		} else {
			evbuffer_add(c->replay, at, len);
		}
	}
	return 0;
}

static int rq_message_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;
	struct conn *c = s->c;

	if (s->chunked && c->u != NULL)
		evbuffer_add(bufferevent_get_output(c->u->bev), "0\r\n\r\n", 5);
	c->body_in = m->body_bytes;
	c->req_done = true;
	side_head_done(s); /* trailers are not forwarded */
	return 0;
}

/* ---- response side ---- */

static int on_reason(void *ud, const char *at, size_t len)
{
	struct head *h = side_head(ud);

	return h == NULL || buf_append(&h->line, at, len) != 0;
}

/* Draining: a connection ends after its response unless requests it
 * sent before (pipelined, already received) wait. */
static bool drain_now(const struct conn *c)
{
	return c->l->draining && evbuffer_get_length(bufferevent_get_input(c->cli)) == 0;
}

static int rs_headers_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;
	struct conn *c = s->c;
	struct evbuffer *out = bufferevent_get_output(c->cli);
	struct px_http1_forward fwd = {0};
	bool final = m->status >= 200 || m->status == 101;
	bool close;

	if (final && m->status >= 500 && c->replay != NULL && c->req_done &&
	    c->attempts < px_cluster_attempts(c->l->cluster) &&
	    px_cluster_retry_begin(c->l->cluster, PX_OUTCOME_5XX)) {
		c->retrying = true;   /* cut here; up_read retries */
		c->retry_pre = true;
		return 1;
	}
	if (final && c->u != NULL &&
	    px_cluster_report(c->l->cluster, c->u->ep, m->status >= 500 ? PX_OUTCOME_5XX :
			      PX_OUTCOME_SUCCESS, now_ms()))
		log_ejection(c, c->u->ep, "5xx");
	if (final)
		c->response_started = true;
	/* the connection ends after this response when the client or the
	 * upstream wants it, when the request is not all read (an early
	 * answer), after a refused upgrade, or while draining */
	close = final && !m->tunnel &&
		(!c->keep || !m->keep_alive || !c->req_done || c->upgrade_req || drain_now(c));
	evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", m->status, s->h ? (int)s->h->line.len : 0,
			    s->h && s->h->line.data ? s->h->line.data : "");
	s->chunked = m->body == PX_HTTP1_BODY_CHUNKED;
	if (side_headers(s, m, &fwd, close, out) != 0)
		return 1;
	side_head_done(s);
	return 0;
}

static int rs_body(void *ud, const char *at, size_t len)
{
	struct side *s = ud;
	struct evbuffer *out = bufferevent_get_output(s->c->cli);

	if (s->chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, at, len);
	if (s->chunked)
		evbuffer_add(out, "\r\n", 2);
	return 0;
}


static int rs_message_complete(void *ud, const struct px_http1_msg *m)
{
	struct side *s = ud;
	struct conn *c = s->c;

	if (s->chunked)
		evbuffer_add(bufferevent_get_output(c->cli), "0\r\n\r\n", 5);
	side_head_done(s);
	if (m->status < 200 && m->status != 101)
		return 0; /* interim: the final response follows */
	req_end(c, m->status, m->body_bytes);
	c->req_active = false;
	event_del(c->timer);
	if (c->replay) {
		evbuffer_free(c->replay);
		c->replay = NULL;
	}
	if (m->tunnel) {
		c->tunnel = true;
		arm_timer(c, c->l->timeouts.idle_ms);
		c->last_active_ms = now_ms();
		/* what the client sent after its request goes on as it is */
		if (evbuffer_get_length(bufferevent_get_input(c->cli)) > 0)
			resume_reading(c);
		return 0;
	}
	/* the upstream connection is released once its bytes are consumed */
	c->resp_complete = true;
	c->resp_keep = m->keep_alive && c->req_done;
	return 0;
}

/* After rs_message_complete, once the parser's input is drained: the
 * upstream connection goes back to the pool (or closes), and the client
 * connection waits for its next request (or closes). */
static void finish_response(struct conn *c)
{
	bool reuse = c->resp_keep, next;

	c->resp_complete = false;
	if (c->u != NULL && evbuffer_get_length(bufferevent_get_input(c->u->bev)) > 0)
		reuse = false;  /* bytes past the response: not a clean connection */
	next = c->keep && c->resp_keep && !c->upgrade_req && !drain_now(c);
	attempt_end(c, reuse);
	if (!next) {
		close_after_flush(c);
		return;
	}
	/* the next request, pipelined or to come */
	c->last_active_ms = now_ms();
	arm_timer(c, c->l->timeouts.idle_ms);
	read_on(c->cli);
	resume_reading(c);
}

static const struct px_http1_callbacks RQ_CB = {
	.on_method = on_method, .on_target = on_target, .on_header_name = on_name,
	.on_header_value = on_value, .on_headers_complete = rq_headers_complete,
	.on_body = rq_body, .on_message_complete = rq_message_complete,
};
static const struct px_http1_callbacks RS_CB = {
	.on_reason = on_reason, .on_header_name = on_name, .on_header_value = on_value,
	.on_headers_complete = rs_headers_complete, .on_body = rs_body,
	.on_message_complete = rs_message_complete,
};

/* ---- TLS failures ---- */

/* The first OpenSSL error the bufferevent saw (0: none); clears them. */
static unsigned long ssl_error(struct bufferevent *bev)
{
	unsigned long e, first = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (first == 0)
			first = e;
	return first;
}

/* One line per refused or failed handshake: who, what, why. */
static void log_tls_failure_err(struct conn *c, struct bufferevent *bev, const char *side,
				unsigned long first, const struct px_ep *ep)
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
			  px_ep_name(ep), px_ep_spiffe_id(ep)[0] ? px_ep_spiffe_id(ep) :
			  c->l->cfg.upstream_id ? c->l->cfg.upstream_id : "", presented, reason, detail,
			  c->peer);
}

/* ---- the caller is known ---- */

/* Authorize (L4), then: HTTP reads requests; TCP opens the upstream.
 * Nothing reaches an upstream before this. */
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
	c->last_active_ms = now_ms();
	arm_timer(c, c->l->timeouts.idle_ms);
	if (cfg->mode == PX_MODE_TCP) {
		if (attempt_start(c, NULL) != 0)
			conn_close(c);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(c->cli)) > 0)
		resume_reading(c);
}

/* Our half of the upstream stream ends (TCP FIN or TLS close_notify), once:
 * a second SSL_shutdown would wait for the peer's close_notify by reading
 * the socket behind libevent's back, and drop the answer's records. */
static void shut_up(struct conn *c)
{
	SSL *ssl = bev_ssl(c->u->bev);

	c->shut_up_pending = false;
	if (c->u->shut)
		return;
	c->u->shut = true;
	if (ssl != NULL)
		SSL_shutdown(ssl);
	else
		shutdown(bufferevent_getfd(c->u->bev), SHUT_WR);
}

/* ---- event callbacks ---- */

/* Decided after the write attempt (write_now), never before: reading
 * stops only while the other side's output stays over HIGH_WATER, which
 * leaves bytes behind and so a write event, whose callback (cli_write,
 * up_write) starts reading again once below the low-water mark. Stopped
 * before a write that then took everything, it would never start again. */
static void backpressure(struct bufferevent *from, struct bufferevent *to)
{
	if (evbuffer_get_length(bufferevent_get_output(to)) > HIGH_WATER)
		bufferevent_disable(from, EV_READ);
}

/* A side's output went below its low-water mark (libevent's write
 * callback, or write_now took it all): the other side may read again. */
static void up_drained(struct upconn *u)
{
	struct conn *c = u->c;

	if (c->shut_up_pending && queued(u->bev) == 0)
		shut_up(c);
	/* (a client that half-closed is not read again: its EOF would come
	 * once more) */
	if (!c->closing && !c->shut_up_pending && !c->cli_ended && !(c->req_active && c->req_done))
		read_on(c->cli);
}

static void cli_drained(struct conn *c)
{
	if (c->closing && queued(c->cli) == 0)
		conn_close(c);
	else if (!c->closing && c->u)
		read_on(c->u->bev);
}

static void flush_up(struct conn *c)
{
	if (c->u == NULL || !c->u->connected || c->u->bev == NULL)
		return;
	if (write_now(c->u->bev))
		up_drained(c->u);
	else if (c->shut_up_pending && queued(c->u->bev) == 0)
		shut_up(c);
}

static void flush_cli(struct conn *c)
{
	if (c->cli == NULL || c->dead)
		return;
	if (write_now(c->cli))
		cli_drained(c);
	else if (c->closing && queued(c->cli) == 0)
		conn_close(c);
}

static void cli_read_(struct bufferevent *bev, struct conn *c);
static void up_read_(struct bufferevent *bev, struct upconn *u);

static void cli_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	cli_read_(bev, c);
	if (c->dead)
		return;
	flush_up(c);
	if (!c->dead && c->u != NULL)
		backpressure(c->cli, c->u->bev);
	if (!c->dead)
		tls_read_more(c->cli);
}

static void up_read(struct bufferevent *bev, void *arg)
{
	struct upconn *u = arg;
	struct conn *c = u->c;

	up_read_(bev, u);
	flush_cli(c);
	if (!c->dead && c->u == u) {
		backpressure(u->bev, c->cli);
		tls_read_more(u->bev);
	}
}

static void cli_read_(struct bufferevent *bev, struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	if (!c->cli_ready || c->dead)
		return;
	c->last_active_ms = now_ms();
	while (!c->dead && !c->closing && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc;

		if (c->tunnel) {
			if (c->u == NULL)
				return;
			bufferevent_write_buffer(c->u->bev, in);
			break;
		}
		if (c->req_active && c->req_done) {
			/* the next request waits for this response */
			if (evbuffer_get_length(in) > HIGH_WATER)
				bufferevent_disable(bev, EV_READ);
			return;
		}
		if (c->req_active && c->upgrade_req)
			return; /* tunnel bytes wait for the 101 */
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = px_http1_feed(c->rq.p, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == PX_HTTP1_EPASSTHROUGH)
			return; /* bytes after an Upgrade/CONNECT wait for the answer */
		if (rc < 0) {
			int status = c->denied ? 403 : rc == PX_HTTP1_ECALLBACK && !c->req_active &&
				     c->l->cfg.max_body_bytes > 0 ? 413 : px_http1_status(PX_HTTP1_REQUEST, rc);

			if (c->denied)
				log_debug("proxy", "403 after denial: listener=%s peer=%s layer=7 "
					  "denied-by=\"%s\"", c->l->cfg.name, c->peer, c->denied_by);
			else
				log_info("proxy", "request refused: client=%s status=%d error=\"%s\" offset=%llu",
					 c->client_addr, status, px_http1_strerror(rc),
					 (unsigned long long)px_http1_error_offset(c->rq.p));
			if (c->req_active && c->body_in > c->l->cfg.max_body_bytes &&
			    c->l->cfg.max_body_bytes > 0)
				status = 413;
			bufferevent_disable(c->cli, EV_READ);
			if (c->req_active && c->response_started)
				conn_close(c);  /* the response is under way: cut it */
			else
				send_error(c, status);
			return;
		}
	}
}

static void up_read_(struct bufferevent *bev, struct upconn *u)
{
	struct conn *c = u->c;
	struct evbuffer *in = bufferevent_get_input(bev);

	c->last_active_ms = now_ms();
	while (!c->dead && c->u == u && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc;

		if (c->l->cfg.mode == PX_MODE_TCP || c->tunnel) {
			bufferevent_write_buffer(c->cli, in);
			break;
		}
		if (!c->req_active) {
			/* bytes nobody asked for: this connection is not reusable */
			log_info("proxy", "upstream %s sent bytes without a request: listener=%s",
				 px_ep_name(u->ep), c->l->cfg.name);
			attempt_end(c, false);
			return;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		px_http1_expect(c->rs.p, c->method);
		rc = px_http1_feed(c->rs.p, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (c->resp_complete && !c->tunnel) {
			finish_response(c);
			return;
		}
		if (rc == PX_HTTP1_EPASSTHROUGH)
			continue; /* a tunnel now: the rest goes on as it is */
		if (rc < 0 && c->retrying) {
			c->retrying = false;
			attempt_failed(c, PX_OUTCOME_5XX, c->replay, 502);
			return;
		}
		if (rc < 0) {
			log_info("proxy", "upstream response refused: upstream=%s error=\"%s\"",
				 px_ep_name(u->ep), px_http1_strerror(rc));
			attempt_end(c, false);
			fail_request(c, 502);
			return;
		}
		if (c->closing)
			break;
	}
}

static void cli_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	write_idle(bev);
	cli_drained(c);
}

static void up_write(struct bufferevent *bev, void *arg)
{
	struct upconn *u = arg;

	if (u->connected)
		write_idle(bev);
	up_drained(u);
}

/* The mTLS handshake with the caller is done. */
static void cli_connected(struct conn *c, struct bufferevent *bev)
{
	const char *id = px_tls_peer_id(bev_ssl(bev));

	if (id == NULL) {
		log_tls_failure_err(c, bev, "client", ssl_error(bev), NULL);
		conn_close(c);
		return;
	}
	snprintf(c->peer_id, sizeof(c->peer_id), "%s", id);
	px_stats_tls(c->l->cfg.stats, c->l->sid, PX_STATS_CLIENT, NULL);
	log_debug("proxy", "tls handshake: listener=%s side=client peer=%s id=%s version=%s "
		  "resumed=%s", c->l->cfg.name, c->peer, id, SSL_get_version(bev_ssl(bev)),
		  SSL_session_reused(bev_ssl(bev)) ? "yes" : "no");
	write_idle(bev);   /* from now on, written at once (write_now) */
	conn_start(c);
	if (!c->dead)
		tls_read_more(bev);   /* (a request that came with the Finished) */
}

static void cli_event_now(struct bufferevent *bev, short what, struct conn *c)
{
	if (c->dead)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (!c->cli_ready)
			cli_connected(c, bev);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (!c->cli_ready && (what & BEV_EVENT_EOF) && bev_ssl(bev) != NULL &&
	    SSL_is_init_finished(bev_ssl(bev))) {
		/* (a TLS bufferevent that read the handshake's end, data and
		 * the close_notify in one go may report the close first) */
		cli_connected(c, bev);
		if (c->dead)
			return;
	}
	if ((what & BEV_EVENT_EOF) && c->cli_ready &&
	    evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		/* the bytes that came before the close first */
		cli_read(bev, c);
		if (c->dead)
			return;
	}
	if (!c->cli_ready) {
		log_tls_failure_err(c, bev, "client", ssl_error(bev), NULL);
		conn_close(c);
		return;
	}
	if (c->tunnel && c->u != NULL && (what & BEV_EVENT_EOF)) {
		/* half-close: the upstream still may answer (once connected
		 * and its output is sent) */
		c->cli_ended = true;
		bufferevent_disable(c->cli, EV_READ);
		if (c->u->connected && evbuffer_get_length(bufferevent_get_output(c->u->bev)) == 0) {
			shut_up(c);
		} else {
			c->shut_up_pending = true;
			bufferevent_setwatermark(c->u->bev, EV_WRITE, 0, 0);
		}
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->req_active && c->req_done && !c->upgrade_req) {
		/* the client half-closed after its request: answer it first */
		bufferevent_disable(c->cli, EV_READ);
		c->keep = false;
		return;
	}
	conn_close(c);
}

/* The upstream connection is up (and its TLS handshake done): 0; -1 when
 * it must count as a connect failure; 1 when the tunnel went to splice. */
static int up_connected(struct upconn *u, struct bufferevent *bev)
{
	struct conn *c = u->c;
	struct px_listener *l = c->l;

	if (bev_ssl(bev) != NULL && px_tls_peer_id(bev_ssl(bev)) == NULL) {
		/* a resumed session whose identity no longer fits */
		log_tls_failure_err(c, bev, "upstream", ssl_error(bev), u->ep);
		return -1;
	}
	if (bev_ssl(bev) != NULL) {
		px_stats_tls(l->cfg.stats, l->sid, PX_STATS_UPSTREAM, NULL);
		log_debug("proxy", "tls handshake: listener=%s side=upstream upstream=%s id=%s "
			  "version=%s resumed=%s", l->cfg.name, px_ep_name(u->ep),
			  px_tls_peer_id(bev_ssl(bev)), SSL_get_version(bev_ssl(bev)),
			  SSL_session_reused(bev_ssl(bev)) ? "yes" : "no");
	}
	u->connected = true;
	bufferevent_set_timeouts(bev, NULL, NULL);
	if (bev_ssl(bev) != NULL) {
		/* what was queued during the handshake leaves now (write_now) */
		bufferevent_disable(bev, EV_WRITE);
		if (write_now(bev))
			up_drained(u);
	} else {
		write_idle(bev);
	}
	if (l->cfg.mode == PX_MODE_TCP &&
	    px_cluster_report(l->cluster, u->ep, PX_OUTCOME_SUCCESS, now_ms()))
		log_ejection(c, u->ep, "?");
	if (l->cfg.mode == PX_MODE_TCP && l->cfg.tls_in == NULL && l->cfg.tls_out == NULL &&
	    !c->shut_up_pending) {
		start_splice(c);
		return 1;
	}
	if (c->shut_up_pending && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		shut_up(c);
	tls_read_more(bev);
	return 0;
}

static void up_event_now(struct bufferevent *bev, short what, struct upconn *u)
{
	struct conn *c = u->c;
	struct px_listener *l = c->l;
	int r;

	if (what & BEV_EVENT_CONNECTED) {
		if (u->connected)
			return;
		if (up_connected(u, bev) < 0)
			goto connect_failed;
		return;
	}
	if (!u->connected && (what & BEV_EVENT_EOF) && bev_ssl(bev) != NULL &&
	    SSL_is_init_finished(bev_ssl(bev))) {
		/* (as in cli_event: the close reported before CONNECTED) */
		r = up_connected(u, bev);
		if (r < 0)
			goto connect_failed;
		if (r > 0 || c->dead || c->u != u)
			return;
	}
	if (!u->connected) {
		if (what & BEV_EVENT_TIMEOUT) {
			px_stats_upstream_event(l->cfg.stats, l->sid, PX_STATS_TIMEOUT);
			log_warnx("proxy", "upstream %s: connect timed out after %u ms: listener=%s",
				  px_ep_name(u->ep), l->timeouts.connect_ms, l->cfg.name);
		} else if (bev_ssl(bev) != NULL && !SSL_in_before(bev_ssl(bev))) {
			log_tls_failure_err(c, bev, "upstream", ssl_error(bev), u->ep);
		} else {
			log_warnx("proxy", "upstream %s: cannot connect: listener=%s", px_ep_name(u->ep),
				  l->cfg.name);
		}
		if (bev_ssl(bev) == NULL || SSL_in_before(bev_ssl(bev)))
			px_stats_upstream_connect_failure(l->cfg.stats, l->sid);
		goto connect_failed;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	if ((what & BEV_EVENT_EOF) && evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		/* (as in cli_event: the bytes before the close first) */
		up_read(bev, u);
		if (c->dead || c->u != u)
			return;
	}
	if ((what & BEV_EVENT_ERROR) && bev_ssl(bev) != NULL) {
		/* TLS 1.3: the upstream refuses our certificate after our side
		 * of the handshake is done; its alert arrives here */
		unsigned long e = ssl_error(bev);

		if (e != 0)
			log_tls_failure_err(c, bev, "upstream", e, u->ep);
	}
	if (c->tunnel || l->cfg.mode == PX_MODE_TCP) {
		close_after_flush(c);
		return;
	}
	if (c->req_active && !c->response_started && u->reused && c->replay != NULL && c->req_done &&
	    evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
		/* a pooled connection the upstream had closed: send again on a
		 * new one (not an endpoint failure; no budget spent) */
		struct evbuffer *again = evbuffer_new();

		attempt_end(c, false);
		if (again != NULL)
			evbuffer_copy_into(again, c->replay);
		if (again == NULL || attempt_start(c, again) != 0)
			fail_request(c, 503);
		if (again)
			evbuffer_free(again);
		return;
	}
	if (bev_ssl(bev) != NULL && !c->response_started && c->req_active &&
	    (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && ERR_peek_error() == 0 && !u->reused) {
		/* The alert can be lost when our write meets the reset first:
		 * say what is known rather than nothing. */
		log_warnx("proxy", "tls refused: listener=%s side=upstream upstream=%s expected=\"%s\" "
			  "presented=\"%s\" reason=closed-after-handshake detail=\"the upstream closed "
			  "the connection after the TLS handshake without answering: it may have "
			  "refused this proxy's certificate (see its log)\" client=%s", l->cfg.name,
			  px_ep_name(u->ep), px_ep_spiffe_id(u->ep),
			  px_tls_peer_id(bev_ssl(bev)) ? px_tls_peer_id(bev_ssl(bev)) : "", c->peer);
	}
	/* a body read until close ends here */
	if (c->req_active && px_http1_finish(c->rs.p) == PX_HTTP1_DONE) {
		c->resp_keep = false;
		finish_response(c);
		return;
	}
	attempt_end(c, false);
	if (c->req_active)
		fail_request(c, 502);
	return;
connect_failed:
	{
		/* nothing left the proxy: what was queued goes to the next try */
		struct evbuffer *unsent = evbuffer_new();

		if (unsent != NULL)
			evbuffer_add_buffer(unsent, bufferevent_get_output(bev));
		attempt_failed(c, PX_OUTCOME_CONNECT_FAILURE, unsent, 502);
		if (unsent)
			evbuffer_free(unsent);
	}
}

/* libevent's TLS bufferevent reports the peer's close_notify, FIN or
 * reset from inside its read loop, before it hands over the bytes it
 * decrypted in the same turn: once the connection is up, the end is
 * handled from the loop, after them. */
static void cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && bev_ssl(bev) != NULL && c->cli_ready &&
	    !c->dead) {
		c->cli_eof_what = what;
		event_active(c->eof_ev, EV_READ, 1);
		return;
	}
	cli_event_now(bev, what, c);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
	struct upconn *u = arg;
	struct conn *c = u->c;

	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && bev_ssl(bev) != NULL && u->connected &&
	    !c->dead) {
		c->up_eof_what = what;
		c->eof_u = u;
		event_active(c->eof_ev, EV_READ, 1);
		return;
	}
	up_event_now(bev, what, u);
}

static void on_eof(evutil_socket_t fd, short ev, void *arg)
{
	struct conn *c = arg;
	short what;

	if (c->dead)
		return;
	if (c->up_eof_what != 0 && c->eof_u != NULL && c->eof_u == c->u) {
		struct upconn *u = c->eof_u;

		what = c->up_eof_what;
		c->up_eof_what = 0;
		c->eof_u = NULL;
		up_event_now(u->bev, what, u);
	}
	if (c->cli_eof_what != 0 && !c->dead && c->cli != NULL) {
		what = c->cli_eof_what;
		c->cli_eof_what = 0;
		cli_event_now(c->cli, what, c);
	}
}

static void splice_done(void *ud, const struct px_splice_result *r)
{
	struct conn *c = ud;

	/* the prefix came through the client bufferevent, counted there */
	px_stats_bytes(c->l->cfg.stats, c->l->sid, r->a_to_b > c->sp_prefix ? r->a_to_b - c->sp_prefix : 0,
		       r->b_to_a);
	log_debug("proxy", "tunnel closed: listener=%s peer=%s upstream=%s sent=%llu received=%llu%s%s",
		  c->l->cfg.name, c->peer, c->answered_by, (unsigned long long)r->a_to_b,
		  (unsigned long long)r->b_to_a, r->idle_timeout ? " reason=idle" : "",
		  r->error ? " reason=error" : "");
	conn_close(c);
}

/* Plaintext on both sides (TCP mode): hand both sockets to px_splice,
 * with what the client sent before the upstream connected as the prefix.
 * The bufferevents go; the conn keeps its upstream attempt (the endpoint
 * reference and the counts) until the tunnel ends. */
static void start_splice(struct conn *c)
{
	struct evbuffer *early = evbuffer_new();
	int fa = -1, fb = -1;
	char *err = NULL;

	if (early == NULL)
		return;
	evbuffer_add_buffer(early, bufferevent_get_output(c->u->bev));
	evbuffer_add_buffer(early, bufferevent_get_input(c->cli));
	/* the sockets change hands, not duplicated (px_worker's epoll
	 * changelist does not survive dup()): the bufferevents let go of them */
	fa = bufferevent_getfd(c->cli);
	fb = bufferevent_getfd(c->u->bev);
	bufferevent_setfd(c->cli, -1);
	bufferevent_setfd(c->u->bev, -1);
	if (px_splice_new(&c->sp, c->l->base, fa, fb, evbuffer_pullup(early, -1),
			  evbuffer_get_length(early), c->l->timeouts.idle_ms, splice_done, c, &err) != 0) {
		log_warnx("proxy", "listener=%s peer=%s: %s", c->l->cfg.name, c->peer, err ? err : "splice");
		free(err);
		evbuffer_free(early);
		conn_close(c);
		return;
	}
	c->sp_prefix = evbuffer_get_length(early);
	evbuffer_free(early);
	event_del(c->timer);
	bufferevent_free(c->cli);
	c->cli = NULL;
	bufferevent_setcb(c->u->bev, NULL, NULL, NULL, NULL);
	bufferevent_free(c->u->bev);
	c->u->bev = NULL;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t idle = c->l->timeouts.idle_ms, now = now_ms();

	if (c->dead)
		return;
	if (c->req_active && !c->tunnel) {
		px_stats_upstream_event(c->l->cfg.stats, c->l->sid, PX_STATS_TIMEOUT);
		log_warnx("proxy", "request timed out after %u ms: listener=%s upstream=%s client=%s",
			  c->l->timeouts.request_ms, c->l->cfg.name, c->answered_by, c->peer);
		attempt_end(c, false);
		fail_request(c, 504);
		return;
	}
	if (idle > 0 && now - c->last_active_ms < idle) {
		arm_timer(c, (uint32_t)(idle - (now - c->last_active_ms)));
		return;
	}
	log_debug("proxy", "idle connection closed: listener=%s peer=%s", c->l->cfg.name, c->peer);
	conn_close(c);
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct px_listener *l = arg;
	const struct px_listener_cfg *cfg = &l->cfg;
	struct conn *c;
	SSL *ssl;

	if (cfg->max_connections > 0 && l->nconns >= cfg->max_connections) {
		log_warnx("proxy", "connection refused: listener=%s reason=max-connections limit=%u",
			  cfg->name, cfg->max_connections);
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->l = l;
	l->nconns++;
	nodelay(fd);
	inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->client_addr, sizeof(c->client_addr));
	snprintf(c->peer, sizeof(c->peer), "%s:%u", c->client_addr,
		 (unsigned)ntohs(((struct sockaddr_in *)sa)->sin_port));
	c->rq.c = c->rs.c = c;
	c->tunnel = cfg->mode == PX_MODE_TCP;
	if (cfg->mode == PX_MODE_HTTP) {
		c->rq.p = px_http1_new(PX_HTTP1_REQUEST, &l->rq_limits, &RQ_CB, &c->rq);
		c->rs.p = px_http1_new(PX_HTTP1_RESPONSE, NULL, &RS_CB, &c->rs);
	}
	c->timer = event_new(l->base, -1, 0, on_timer, c);
	c->resume = event_new(l->base, -1, 0, on_resume, c);
	c->eof_ev = event_new(l->base, -1, 0, on_eof, c);
	if (cfg->tls_in != NULL) {
		snprintf(c->by_id, sizeof(c->by_id), "%s", px_tls_self_id(cfg->tls_in));
		ssl = px_tls_ssl_new(cfg->tls_in, NULL, NULL);
		c->cli = tls_bev_new(l->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING);
		fd = -1; /* (closed with it on failure) */
	} else {
		snprintf(c->by_id, sizeof(c->by_id), "%s", cfg->by_id ? cfg->by_id : "");
		snprintf(c->peer_id, sizeof(c->peer_id), "%s", cfg->peer_id ? cfg->peer_id : "");
		c->cli = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	c->_next = l->conns;
	if (l->conns)
		l->conns->_prev = c;
	l->conns = c;
	if ((cfg->mode == PX_MODE_HTTP && (c->rq.p == NULL || c->rs.p == NULL)) || c->cli == NULL ||
	    c->timer == NULL || c->resume == NULL || c->eof_ev == NULL) {
		if (c->cli == NULL && fd >= 0)
			evutil_closesocket(fd);
		c->dead = true;
		conn_free_cb(-1, 0, c);
		return;
	}
	c->stats_open = true;
	px_stats_conn_open(cfg->stats, l->sid);
	if (cfg->stats != NULL) {
		evbuffer_add_cb(bufferevent_get_input(c->cli), count_bytes, c);
		evbuffer_add_cb(bufferevent_get_output(c->cli), count_bytes, c);
	}
	if (bev_ssl(c->cli) != NULL) {
		bufferevent_openssl_set_allow_dirty_shutdown(c->cli, 1);
		/* the handshake must finish in the connect timeout */
		arm_timer(c, l->timeouts.connect_ms);
	}
	bufferevent_setcb(c->cli, cli_read, cli_write, cli_event, c);
	bufferevent_setwatermark(c->cli, EV_WRITE, HIGH_WATER / 4, 0);
	/* plaintext: EV_WRITE only while a write left bytes behind (write_now) */
	bufferevent_enable(c->cli, EV_READ | EV_WRITE);
	if (cfg->tls_in == NULL)
		bufferevent_disable(c->cli, EV_WRITE);
	if (cfg->tls_in == NULL)
		conn_start(c);
}

void px_listener_adopt(struct px_listener *l, int fd, const struct sockaddr_in *peer)
{
	if (l->draining) {
		evutil_closesocket(fd);
		return;
	}
	on_accept(NULL, fd, (struct sockaddr *)peer, (int)sizeof(*peer), l);
}

int px_listener_new(struct px_listener **out, struct event_base *base,
		    const struct px_listener_cfg *cfg, char **err)
{
	struct px_listener *l = calloc(1, sizeof(*l));
	char msg[160];
	int rc;

	*out = NULL;
	if (l == NULL)
		return WEFT_ENOMEM;
	l->base = base;
	l->cfg = *cfg;
	l->gen = UINT64_MAX;
	l->rq_limits.max_header_bytes = cfg->max_header_bytes;
	l->rq_head_max = PX_HTTP1_DEFAULT_MAX_LINE + 1024 +
			 (cfg->max_header_bytes ? cfg->max_header_bytes : PX_HTTP1_DEFAULT_MAX_HEADER_BYTES);
	l->sid = px_stats_listener(cfg->stats, cfg->name);
	if ((rc = cluster_init(l, err)) != WEFT_OK) {
		px_cluster_free(l->cluster);
		free(l);
		return rc;
	}
	l->ev = evconnlistener_new_bind(base, on_accept, l, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					(cfg->reuse_port ? LEV_OPT_REUSEABLE_PORT : 0), 512,
					(struct sockaddr *)&l->cfg.listen, sizeof(l->cfg.listen));
	if (l->ev == NULL) {
		snprintf(msg, sizeof(msg), "%s listener: bind: %s", cfg->name, strerror(errno));
		if (err)
			*err = strdup(msg);
		px_cluster_free(l->cluster);
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
	px_cluster_free(l->cluster);   /* closes the pools (pool_close_ep) */
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
		if (!c->dead && !c->closing && !c->tunnel && !c->req_active && c->rq.h == NULL &&
		    c->cli_ready)
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
