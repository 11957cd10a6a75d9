/* H2PING checks (h2ping.h): the frames by hand (RFC 9113: a 9-byte header
 * of length, type, flags and stream; SETTINGS 0x4, PING 0x6, GOAWAY 0x7) and
 * one connection per run on a bufferevent, plaintext or OpenSSL. */
#include "h2ping.h"
#include "lookup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#define FRAME_HEADER 9
#define H2PING_ADDRS_MAX 8
#define T_SETTINGS 0x4
#define T_PING 0x6
#define T_GOAWAY 0x7
#define F_ACK 0x1

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* ---- frames ---- */

static size_t frame_header(unsigned char *o, size_t len, int type, int flags)
{
	o[0] = (unsigned char)(len >> 16);
	o[1] = (unsigned char)(len >> 8);
	o[2] = (unsigned char)len;
	o[3] = (unsigned char)type;
	o[4] = (unsigned char)flags;
	o[5] = o[6] = o[7] = o[8] = 0;   /* stream 0 */
	return FRAME_HEADER;
}

size_t h2ping_hello(const unsigned char ping[8], unsigned char *out, size_t size)
{
	size_t n = sizeof(PREFACE) - 1;

	if (size < n + 2 * FRAME_HEADER + 8)
		return 0;
	memcpy(out, PREFACE, n);
	n += frame_header(out + n, 0, T_SETTINGS, 0);
	n += frame_header(out + n, 8, T_PING, 0);
	memcpy(out + n, ping, 8);
	return n + 8;
}

enum h2ping_scan h2ping_scan(struct h2ping_frames *st, const unsigned char *p, size_t n,
			     const unsigned char ping[8], size_t *used, uint32_t *code,
			     const char **why)
{
	size_t at = 0;

	*used = 0;
	while (n - at >= FRAME_HEADER) {
		const unsigned char *h = p + at;
		size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		int type = h[3], flags = h[4];
		uint32_t stream = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 |
				   (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu;

		if (len > H2PING_FRAME_MAX) {
			*why = "a frame is larger than the 16384 bytes allowed (not an HTTP/2 server?)";
			return H2PING_BAD;
		}
		if (!st->seen_settings && (type != T_SETTINGS || stream != 0 || (flags & F_ACK))) {
			*why = "the server's first frame is not SETTINGS (not an HTTP/2 server?)";
			return H2PING_BAD;
		}
		if (n - at - FRAME_HEADER < len)
			break;   /* the rest of this frame has not come yet */
		switch (type) {
		case T_SETTINGS:
			if (stream != 0 || len % 6 != 0 || ((flags & F_ACK) && len != 0)) {
				*why = "a malformed SETTINGS frame";
				return H2PING_BAD;
			}
			st->seen_settings = 1;
			break;
		case T_PING:
			if (stream != 0 || len != 8) {
				*why = "a malformed PING frame";
				return H2PING_BAD;
			}
			if ((flags & F_ACK) && memcmp(h + FRAME_HEADER, ping, 8) == 0) {
				*used = at + FRAME_HEADER + len;
				return H2PING_ACKED;
			}
			break;
		case T_GOAWAY:
			if (stream != 0 || len < 8) {
				*why = "a malformed GOAWAY frame";
				return H2PING_BAD;
			}
			*code = (uint32_t)h[13] << 24 | (uint32_t)h[14] << 16 |
				(uint32_t)h[15] << 8 | h[16];
			*used = at + FRAME_HEADER + len;
			return H2PING_GOAWAY;
		default:
			break;   /* WINDOW_UPDATE and the rest: not ours to act on */
		}
		at += FRAME_HEADER + len;
	}
	*used = at;
	return H2PING_MORE;
}

/* ---- a run ---- */

struct h2ping {
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *tls;
	int verify;
	char *host, *port, *target;
	h2ping_done_fn done;
	void *arg;
	struct lookup *lk;          /* the name being resolved */
	struct event *timer;
	struct bufferevent *bev;
	struct h2ping_frames st;
	unsigned char ping[8];
	size_t drained;             /* bytes of whole frames read so far */
	int connected;
	/* the name's addresses, tried in turn until one connects */
	struct sockaddr_storage addrs[H2PING_ADDRS_MAX];
	socklen_t addr_len[H2PING_ADDRS_MAX];
	size_t naddrs, next_addr;
};

static void h2ping_free(struct h2ping *p)
{
	lookup_cancel(p->lk);
	if (p->bev != NULL)
		bufferevent_free(p->bev);
	if (p->timer != NULL)
		event_free(p->timer);
	free(p->host);
	free(p->port);
	free(p->target);
	free(p);
}

static void finish(struct h2ping *p, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finish(struct h2ping *p, int ok, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->done(p->arg, ok, msg);
	h2ping_free(p);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct h2ping *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in), used = 0;
	uint32_t code = 0;
	const char *why = NULL;
	enum h2ping_scan r;

	/* a whole frame is at most FRAME_HEADER + H2PING_FRAME_MAX bytes */
	r = h2ping_scan(&p->st, evbuffer_pullup(in, -1), n, p->ping, &used, &code, &why);
	evbuffer_drain(in, used);
	p->drained += used;
	switch (r) {
	case H2PING_ACKED:
		finish(p, 1, "HTTP2 ping was successful");
		return;
	case H2PING_GOAWAY:
		finish(p, 0, "Failed to ping to %s: the server sent GOAWAY (error code %u)", p->target,
		       (unsigned)code);
		return;
	case H2PING_BAD:
		finish(p, 0, "Failed to ping to %s: %s", p->target, why);
		return;
	case H2PING_MORE:
		break;
	}
	if (p->drained + evbuffer_get_length(in) > H2PING_READ_MAX)
		finish(p, 0, "Failed to ping to %s: no PING acknowledgement in the first %d bytes",
		       p->target, H2PING_READ_MAX);
}

static void connect_next(struct h2ping *p);

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct h2ping *p = arg;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		p->connected = 1;
		if (ssl != NULL) {
			const unsigned char *proto = NULL;
			unsigned int len = 0;

			SSL_get0_alpn_selected(ssl, &proto, &len);
			if (len != 2 || memcmp(proto, "h2", 2) != 0)
				finish(p, 0, "Failed to dial to %s: the server did not agree to "
				       "HTTP/2 (ALPN h2)", p->target);
		}
		return;
	}
	if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) && !p->connected && p->next_addr < p->naddrs) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);

		/* (the TCP connection was never made: refused, unreachable;
		 * a TLS bufferevent reports that as an error or, allowing
		 * dirty shutdowns, an EOF: the socket says which) */
		if (getpeername(bufferevent_getfd(bev), (struct sockaddr *)&peer, &len) != 0) {
			/* no connection at this address: the name's next one
			 * (localhost as ::1 first, the service on 127.0.0.1) */
			bufferevent_free(p->bev);
			p->bev = NULL;
			connect_next(p);
			return;
		}
	}
	if (ssl != NULL && (e = bufferevent_get_openssl_error(bev)) != 0) {
		char ebuf[256];

		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		if (SSL_get_verify_result(ssl) != X509_V_OK)
			finish(p, 0, "Failed to dial to %s: tls: %s", p->target,
			       X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
		else
			finish(p, 0, "Failed to dial to %s: tls: %s", p->target, ebuf);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();

		finish(p, 0, "Failed to dial to %s: %s", p->target,
		       err ? evutil_socket_error_to_string(err) : "connection failed");
		return;
	}
	if (what & BEV_EVENT_EOF)
		finish(p, 0, "Failed to ping to %s: the server closed the connection before "
		       "acknowledging the PING", p->target);
}

static void connect_next(struct h2ping *p)
{
	unsigned char hello[64];
	size_t n = h2ping_hello(p->ping, hello, sizeof(hello)), at = p->next_addr++;

	if (p->tls != NULL) {
		SSL *ssl = SSL_new(p->tls);
		unsigned char ip[16];
		int is_ip = evutil_inet_pton(AF_INET, p->host, ip) == 1 ||
			    evutil_inet_pton(AF_INET6, p->host, ip) == 1;

		if (ssl == NULL ||
		    (!is_ip && SSL_set_tlsext_host_name(ssl, p->host) != 1) ||
		    (p->verify && (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), p->host)
				   : SSL_set1_host(ssl, p->host)) != 1)) {
			SSL_free(ssl);
			finish(p, 0, "Failed to dial to %s: tls: cannot set up the connection",
			       p->target);
			return;
		}
		/* frees ssl when it fails. Callbacks deferred to the loop: a
		 * connect that fails at once reports it by its return value
		 * only, not also by a callback that would end the run first. */
		p->bev = bufferevent_openssl_socket_new(p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
							BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (p->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(p->bev, 1);
	} else {
		p->bev = bufferevent_socket_new(p->base, -1,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	if (p->bev == NULL) {
		finish(p, 0, "Failed to dial to %s: out of memory", p->target);
		return;
	}
	bufferevent_setcb(p->bev, on_read, NULL, on_event, p);
	if (bufferevent_write(p->bev, hello, n) != 0 ||
	    bufferevent_enable(p->bev, EV_READ | EV_WRITE) != 0 ||
	    bufferevent_socket_connect(p->bev, (struct sockaddr *)&p->addrs[at],
				       (int)p->addr_len[at]) != 0) {
		int err = EVUTIL_SOCKET_ERROR();

		finish(p, 0, "Failed to dial to %s: %s", p->target,
		       err ? evutil_socket_error_to_string(err) : "cannot connect");
	}
}

static void on_resolved(void *arg, int rc, const struct evutil_addrinfo *ai)
{
	struct h2ping *p = arg;

	p->lk = NULL;   /* gone after this */
	if (rc != 0 || ai == NULL) {
		finish(p, 0, "Failed to dial to %s: lookup %s: %s", p->target, p->host,
		       evutil_gai_strerror(rc));
		return;
	}
	for (; ai != NULL && p->naddrs < H2PING_ADDRS_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(p->addrs[0]))
			continue;
		memcpy(&p->addrs[p->naddrs], ai->ai_addr, ai->ai_addrlen);
		p->addr_len[p->naddrs++] = (socklen_t)ai->ai_addrlen;
	}
	if (p->naddrs == 0)
		finish(p, 0, "Failed to dial to %s: lookup %s: no usable address", p->target, p->host);
	else
		connect_next(p);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct h2ping *p = arg;

	if (p->lk != NULL)
		finish(p, 0, "Failed to dial to %s: lookup %s: i/o timeout", p->target, p->host);
	else
		finish(p, 0, "Failed to %s to %s: i/o timeout", p->connected ? "ping" : "dial",
		       p->target);
}

struct h2ping *h2ping_start(const struct h2ping_req *req)
{
	struct h2ping *p = calloc(1, sizeof(*p));
	struct timeval tv;

	if (p == NULL)
		return NULL;
	p->base = req->base;
	p->dns = req->dns;
	p->tls = req->tls;
	p->verify = req->verify;
	p->done = req->done;
	p->arg = req->arg;
	p->host = strdup(req->host);
	p->port = strdup(req->port);
	p->target = strdup(req->target);
	p->timer = evtimer_new(p->base, on_timeout, p);
	if (getrandom(p->ping, sizeof(p->ping), 0) != (ssize_t)sizeof(p->ping))
		memcpy(p->ping, "weftping", 8);
	if (p->host == NULL || p->port == NULL || p->target == NULL || p->timer == NULL ||
	    (p->lk = lookup_start(p->base, p->dns, p->host, p->port, SOCK_STREAM, on_resolved,
				  p)) == NULL) {
		h2ping_free(p);
		return NULL;
	}
	tv.tv_sec = (time_t)(req->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(req->timeout_ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
	return p;
}

void h2ping_cancel(struct h2ping *p)
{
	if (p != NULL)
		h2ping_free(p);
}
