/* HTTP/1.1 GET on evhttp, for px_fetch (px_httpget.h). */
#include "config.h"
#include "httpmsg.h"
#include "px_httpget.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "util.h"

#define MAX_ADDRS 8

/* How one exchange ended, besides WEFT_OK and the weft_err codes. */
#define RETRY 1          /* a reused connection failed before any reply */
#define NEXT_ADDR 2      /* a new connection could not be made: try the next address */

struct px_httpget {
	int https, host_is_ip;
	char *host;              /* no brackets */
	unsigned port;
	char *host_header;       /* host:port, [v6]:port */
	char *display;
	char *token;
	char *ca_file;
	long connect_timeout_ms;
	size_t max_body;
	struct event_base *base;
	struct evdns_base *dns;  /* made for the first name resolved */
	SSL_CTX *ssl_ctx;
	int wake[2];             /* px_httpget_interrupt writes a byte */
	struct event *wake_ev;
	atomic_int interrupted;
	unsigned n_connections;

	/* the connection */
	struct evhttp_connection *conn;
	struct bufferevent *bev; /* owned by conn */
	SSL *ssl;                /* owned by bev */
	int conn_closed;         /* evhttp closed it (server's close, Connection: close) */

	/* the exchange in progress (the callbacks write here) */
	int stop, done, timed_out, connect_timed_out;
	int req_error;           /* enum evhttp_request_error, -1: none */
	long status;
	char *body;
	size_t len;
	uint64_t index;
	int has_index;
	int body_too_big;
	char verify_err[1024];    /* the first certificate check that failed */

	/* name resolution in progress */
	struct evdns_getaddrinfo_request *dns_req;
	int dns_done, dns_result;
	struct evutil_addrinfo *dns_ai;
};

static int parse_port(const char *s, size_t n, unsigned *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = v;
	return 0;
}

int px_httpget_parse_address(const char *address, int *https, char **host, unsigned *port,
			     char **display, char **err)
{
	const char *p = address, *h, *colon = NULL, *end;
	size_t hlen, len;
	int rc;

	*https = 0;
	*host = *display = NULL;
	*port = PX_HTTPGET_DEFAULT_PORT;
	if (address == NULL || address[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "address: empty (use HOST:PORT)");
	if (strncasecmp(p, "http://", 7) == 0) {
		p += 7;
		*port = 80;
	} else if (strncasecmp(p, "https://", 8) == 0) {
		p += 8;
		*https = 1;
		*port = 443;
	} else if (strstr(p, "://")) {
		return weft_errf(err, WEFT_EINVAL,
				 "address \"%s\": only http:// and https:// are supported", address);
	}
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		len--;
	end = p + len;
	if (memchr(p, '/', len) || memchr(p, '?', len) || memchr(p, '@', len))
		return weft_errf(err, WEFT_EINVAL, "address \"%s\": expected HOST:PORT without a path",
				 address);
	h = p;
	if (*p == '[') {
		const char *rb = memchr(p, ']', len);

		if (rb == NULL)
			return weft_errf(err, WEFT_EINVAL, "address \"%s\": missing ']'", address);
		h = p + 1;
		hlen = (size_t)(rb - h);
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return weft_errf(err, WEFT_EINVAL, "address \"%s\": expected ':' after ']'",
						 address);
			colon = rb + 1;
		}
	} else {
		colon = memchr(p, ':', len);
		if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
			return weft_errf(err, WEFT_EINVAL,
					 "address \"%s\": write an IPv6 address in brackets: [::1]:8500",
					 address);
		hlen = colon ? (size_t)(colon - p) : len;
	}
	if (hlen == 0)
		return weft_errf(err, WEFT_EINVAL, "address \"%s\": no host", address);
	if (colon && parse_port(colon + 1, (size_t)(end - colon - 1), port) != 0)
		return weft_errf(err, WEFT_EINVAL,
				 "address \"%s\": the port must be a number from 1 to 65535", address);
	if ((*host = strndup(h, hlen)) == NULL)
		goto nomem;
	{
		int v6 = strchr(*host, ':') != NULL;

		rc = asprintf(display, "%s%s%s%s:%u", *https ? "https://" : "", v6 ? "[" : "", *host,
			      v6 ? "]" : "", *port);
		if (rc < 0) {
			*display = NULL;
			goto nomem;
		}
	}
	return WEFT_OK;
nomem:
	free(*host);
	*host = NULL;
	return weft_errf(err, WEFT_ENOMEM, "out of memory");
}

char *px_httpget_escape(const char *s)
{
	return http_escape(s, 0);
}

char *px_httpget_error_message(const struct px_httpget_resp *r)
{
	return http_error_message(r->status, r->body, r->len);
}

void px_httpget_resp_free(struct px_httpget_resp *r)
{
	if (r == NULL)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

const char *px_httpget_display(const struct px_httpget *g)
{
	return g->display;
}

unsigned px_httpget_connections(const struct px_httpget *g)
{
	return g->n_connections;
}

void px_httpget_interrupt(struct px_httpget *g)
{
	ssize_t n;

	if (g == NULL)
		return;
	atomic_store(&g->interrupted, 1);
	n = write(g->wake[1], "x", 1);   /* a full pipe is as good */
	(void)n;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct px_httpget *g = arg;
	char b[16];

	(void)what;
	while (read(fd, b, sizeof(b)) > 0)
		;
	g->stop = 1;
	event_base_loopbreak(g->base);
}

/* The first certificate check that failed, with what it means here. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct px_httpget *g = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(xs);
	char subject[256] = "?";
	const char *hint = "";
	char why[300] = "";
	int e;

	if (ok || g == NULL || g->verify_err[0] != '\0')
		return ok;
	e = X509_STORE_CTX_get_error(xs);
	if (cert)
		X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
	switch (e) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(why, sizeof(why), "it is not for %s", g->host);
		hint = why;
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		snprintf(why, sizeof(why), "not signed by a CA of %s%s",
			 g->ca_file ? "--server-ca " : "the system's CAs", g->ca_file ? g->ca_file : "");
		hint = why;
		break;
	default:
		break;
	}
	snprintf(g->verify_err, sizeof(g->verify_err), "%s (%s%ssubject %s)",
		 X509_verify_cert_error_string(e), hint, hint[0] ? "; " : "", subject);
	return ok;
}

int px_httpget_new(struct px_httpget **out, const struct px_httpget_opts *o, char **err)
{
	struct px_httpget *g = calloc(1, sizeof(*g));
	struct event_config *ec = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	int rc = WEFT_ENOMEM;

	*out = NULL;
	if (g == NULL)
		return weft_errf(err, rc, "out of memory");
	g->wake[0] = g->wake[1] = -1;
	if ((rc = px_httpget_parse_address(o->address, &g->https, &g->host, &g->port, &g->display,
					   err)) != WEFT_OK)
		goto out;
	rc = WEFT_ENOMEM;
	g->host_is_ip = inet_pton(AF_INET, g->host, buf) == 1 || inet_pton(AF_INET6, g->host, buf) == 1;
	if (asprintf(&g->host_header, strchr(g->host, ':') ? "[%s]:%u" : "%s:%u", g->host,
		     g->port) < 0) {
		g->host_header = NULL;
		weft_errf(err, rc, "out of memory");
		goto out;
	}
	if ((o->token && (g->token = strdup(o->token)) == NULL) ||
	    (o->ca_file && (g->ca_file = strdup(o->ca_file)) == NULL)) {
		weft_errf(err, rc, "out of memory");
		goto out;
	}
	g->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
							  : PX_HTTPGET_CONNECT_TIMEOUT_MS;
	g->max_body = o->max_body > 0 ? o->max_body : (size_t)64 << 20;
	rc = WEFT_EIO;
	if (pipe2(g->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		weft_errf(err, rc, "http client: pipe: %s", strerror(errno));
		g->wake[0] = g->wake[1] = -1;
		goto out;
	}
	/* one thread at a time uses it: no locks */
	if ((ec = event_config_new()) == NULL ||
	    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK) != 0 ||
	    (g->base = event_base_new_with_config(ec)) == NULL ||
	    (g->wake_ev = event_new(g->base, g->wake[0], EV_READ | EV_PERSIST, on_wake, g)) == NULL ||
	    event_add(g->wake_ev, NULL) != 0) {
		weft_errf(err, rc, "http client: cannot make an event loop");
		goto out;
	}
	if (g->https) {
		unsigned long e;
		char ebuf[256];

		if ((g->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
		    SSL_CTX_set_min_proto_version(g->ssl_ctx, TLS1_2_VERSION) != 1) {
			weft_errf(err, rc, "https: cannot make a TLS context");
			goto out;
		}
		if (g->ca_file ? SSL_CTX_load_verify_locations(g->ssl_ctx, g->ca_file, NULL) != 1
			       : SSL_CTX_set_default_verify_paths(g->ssl_ctx) != 1) {
			e = ERR_peek_last_error();
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			ERR_clear_error();
			weft_errf(err, rc, "%s%s: cannot load the CA certificates: %s",
				  g->ca_file ? "--server-ca " : "the system's CAs",
				  g->ca_file ? g->ca_file : "", ebuf);
			goto out;
		}
		SSL_CTX_set_verify(g->ssl_ctx, SSL_VERIFY_PEER, verify_cb);
	}
	*out = g;
	g = NULL;
	rc = WEFT_OK;
out:
	if (ec)
		event_config_free(ec);
	px_httpget_free(g);
	return rc;
}

static void conn_drop(struct px_httpget *g)
{
	if (g->conn)
		evhttp_connection_free(g->conn);   /* frees bev, SSL, any pending request */
	g->conn = NULL;
	g->bev = NULL;
	g->ssl = NULL;
	g->conn_closed = 0;
}

static void dns_clear(struct px_httpget *g)
{
	if (g->dns_req && !g->dns_done)
		evdns_getaddrinfo_cancel(g->dns_req);
	g->dns_req = NULL;
	if (g->dns_ai)
		evutil_freeaddrinfo(g->dns_ai);
	g->dns_ai = NULL;
	g->dns_done = 0;
}

void px_httpget_free(struct px_httpget *g)
{
	if (g == NULL)
		return;
	conn_drop(g);
	dns_clear(g);
	if (g->dns)
		evdns_base_free(g->dns, 0);
	if (g->wake_ev)
		event_free(g->wake_ev);
	if (g->base)
		event_base_free(g->base);
	if (g->wake[0] >= 0)
		close(g->wake[0]);
	if (g->wake[1] >= 0)
		close(g->wake[1]);
	SSL_CTX_free(g->ssl_ctx);
	if (g->token)
		memset(g->token, 0, strlen(g->token));
	free(g->token);
	free(g->ca_file);
	free(g->host);
	free(g->host_header);
	free(g->display);
	free(g->body);
	free(g);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	int *flag = arg;

	(void)fd;
	(void)what;
	*flag = 1;
}

/* Runs the loop until the callbacks set one of the flags or the deadline. */
static void run_until(struct px_httpget *g, const int *flag, int64_t deadline, int *expired)
{
	struct timeval tv;
	struct event *t;
	int64_t left = deadline - now_mono_ms();

	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	t = evtimer_new(g->base, on_timer, expired);
	if (t)
		evtimer_add(t, &tv);
	while (!*flag && !*expired && !g->stop) {
		if (atomic_load(&g->interrupted)) {
			g->stop = 1;
			break;
		}
		if (t == NULL && now_mono_ms() >= deadline) {
			*expired = 1;
			break;
		}
		event_base_loop(g->base, EVLOOP_ONCE);
	}
	if (t)
		event_free(t);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct px_httpget *g = arg;

	/* a lookup given up (dns_clear) may report late: not this one */
	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	g->dns_done = 1;
	g->dns_result = result;
	g->dns_ai = res;
}

/* The server's addresses into addrs (IP literals need no lookup). */
static int resolve(struct px_httpget *g, int64_t deadline, struct sockaddr_storage *addrs,
		   socklen_t *lens, int *n, char **err)
{
	struct evutil_addrinfo hints = { 0 }, *ai;
	char port[8];
	int expired = 0;

	*n = 0;
	if (g->host_is_ip) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&addrs[0];
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&addrs[0];

		memset(&addrs[0], 0, sizeof(addrs[0]));
		if (inet_pton(AF_INET, g->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)g->port);
			lens[0] = sizeof(*s4);
		} else {
			inet_pton(AF_INET6, g->host, &s6->sin6_addr);
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)g->port);
			lens[0] = sizeof(*s6);
		}
		*n = 1;
		return WEFT_OK;
	}
	if (g->dns == NULL) {
		if ((g->dns = evdns_base_new(g->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL)
			return weft_errf(err, WEFT_ENOMEM, "http client: out of memory");
		/* /etc/hosts, then resolv.conf's servers (127.0.0.1 without
		 * one); a missing resolv.conf leaves the defaults */
		evdns_base_resolv_conf_parse(g->dns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
	}
	dns_clear(g);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%u", g->port);
	g->dns_req = evdns_getaddrinfo(g->dns, g->host, port, &hints, on_resolved, g);
	if (g->dns_req == NULL && !g->dns_done)
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: cannot resolve %s",
				 g->display, g->host);
	run_until(g, &g->dns_done, deadline, &expired);
	if (!g->dns_done) {
		dns_clear(g);
		if (g->stop)
			return weft_errf(err, WEFT_ESHUTDOWN, "interrupted");
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: no answer for the "
				 "name %s within %ld ms", g->display, g->host, g->connect_timeout_ms);
	}
	g->dns_req = NULL;
	if (g->dns_result != 0 || g->dns_ai == NULL) {
		int r = g->dns_result;

		dns_clear(g);
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: unknown host (%s)",
				 g->display, r ? evutil_gai_strerror(r) : "no address");
	}
	for (ai = g->dns_ai; ai && *n < MAX_ADDRS; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(addrs[0]))
			continue;
		memcpy(&addrs[*n], ai->ai_addr, ai->ai_addrlen);
		lens[*n] = (socklen_t)ai->ai_addrlen;
		(*n)++;
	}
	dns_clear(g);
	if (*n == 0)
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: unknown host (no "
				 "IPv4 or IPv6 address)", g->display);
	return WEFT_OK;
}

static void on_close(struct evhttp_connection *conn, void *arg)
{
	struct px_httpget *g = arg;

	(void)conn;
	g->conn_closed = 1;
}

static int conn_new(struct px_httpget *g, const struct sockaddr_storage *sa, char **err)
{
	char ip[INET6_ADDRSTRLEN];
	const void *a = sa->ss_family == AF_INET
				? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
				: (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	SSL *ssl = NULL;

	if (evutil_inet_ntop(sa->ss_family, a, ip, sizeof(ip)) == NULL)
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: bad address", g->display);
	if (g->https) {
		X509_VERIFY_PARAM *vp;

		if ((ssl = SSL_new(g->ssl_ctx)) == NULL)
			goto tls_fail;
		SSL_set_app_data(ssl, g);
		vp = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (g->host_is_ip) {
			if (X509_VERIFY_PARAM_set1_ip_asc(vp, g->host) != 1)
				goto tls_fail;
		} else if (X509_VERIFY_PARAM_set1_host(vp, g->host, 0) != 1 ||
			   SSL_set_tlsext_host_name(ssl, g->host) != 1) {
			goto tls_fail;
		}
		/* frees ssl when it fails */
		g->bev = bufferevent_openssl_socket_new(g->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
							BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		ssl = NULL;
		if (g->bev == NULL)
			goto tls_fail;
		bufferevent_openssl_set_allow_dirty_shutdown(g->bev, 1);
		g->ssl = bufferevent_openssl_get_ssl(g->bev);
	} else {
		g->bev = bufferevent_socket_new(g->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (g->bev == NULL ||
	    (g->conn = evhttp_connection_base_bufferevent_new(g->base, NULL, g->bev, ip,
							      (unsigned short)g->port)) == NULL) {
		if (g->bev)
			bufferevent_free(g->bev);
		g->bev = NULL;
		g->ssl = NULL;
		return weft_errf(err, WEFT_ENOMEM, "http client: out of memory");
	}
	evhttp_connection_set_retries(g->conn, 0);
	evhttp_connection_set_max_body_size(g->conn, (ev_ssize_t)g->max_body);
	evhttp_connection_set_max_headers_size(g->conn, PX_HTTPGET_MAX_HEADERS);
	evhttp_connection_set_closecb(g->conn, on_close, g);
	g->conn_closed = 0;
	g->n_connections++;
	return WEFT_OK;
tls_fail:
	SSL_free(ssl);
	ERR_clear_error();
	return weft_errf(err, WEFT_EIO, "https: cannot set up TLS for %s", g->display);
}

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct px_httpget *g = arg;

	g->req_error = (int)e;
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct px_httpget *g = arg;
	struct evbuffer *in;
	const char *ix;
	size_t len;

	g->done = 1;
	event_base_loopbreak(g->base);
	if (req == NULL || evhttp_request_get_response_code(req) <= 0)
		return;
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	if (len > g->max_body) {
		g->body_too_big = 1;
		return;
	}
	if (len > 0) {
		if ((g->body = malloc(len + 1)) == NULL) {
			g->body_too_big = 1;
			return;
		}
		evbuffer_remove(in, g->body, len);
		g->body[len] = '\0';
		g->len = len;
	}
	ix = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Consul-Index");
	if (ix && isdigit((unsigned char)ix[0])) {
		g->index = strtoull(ix, NULL, 10);
		g->has_index = 1;
	}
	g->status = evhttp_request_get_response_code(req);
}

/* Whether a TCP connection to sa can be made now: 0, or the errno. Only
 * to name the reason of a failed request (evhttp keeps it to itself). */
static int probe(struct px_httpget *g, const struct sockaddr_storage *sa, socklen_t len,
		 int64_t deadline)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), e = 0;
	socklen_t elen = sizeof(e);

	if (fd < 0)
		return errno;
	if (connect(fd, (const struct sockaddr *)sa, len) != 0) {
		e = errno;
		if (e == EINPROGRESS) {
			struct pollfd p[2] = { { .fd = fd, .events = POLLOUT },
					       { .fd = g->wake[0], .events = POLLIN } };
			int64_t left = deadline - now_mono_ms();
			int r;

			if (left > g->connect_timeout_ms)
				left = g->connect_timeout_ms;
			r = poll(p, 2, left > 0 ? (int)left : 0);
			if (r <= 0 || !(p[0].revents & (POLLOUT | POLLERR | POLLHUP)))
				e = atomic_load(&g->interrupted) ? EINTR : ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
				e = errno;
		}
	}
	close(fd);
	return e;
}

static void exchange_reset(struct px_httpget *g)
{
	g->done = g->timed_out = g->connect_timed_out = 0;
	g->req_error = -1;
	g->status = 0;
	free(g->body);
	g->body = NULL;
	g->len = 0;
	g->index = 0;
	g->has_index = 0;
	g->body_too_big = 0;
	g->verify_err[0] = '\0';
}

static void on_connect_check(evutil_socket_t fd, short what, void *arg)
{
	struct px_httpget *g = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t s = g->bev ? bufferevent_getfd(g->bev) : -1;

	(void)fd;
	(void)what;
	if (s < 0 || getpeername(s, (struct sockaddr *)&ss, &len) != 0 ||
	    (g->ssl && !SSL_is_init_finished(g->ssl))) {
		g->connect_timed_out = 1;
		event_base_loopbreak(g->base);
	}
}

/* One request on g->conn: WEFT_OK with the reply in g, RETRY, NEXT_ADDR
 * or an error. */
static int exchange(struct px_httpget *g, const char *path, int reused, int64_t deadline,
		    long timeout_ms, const struct sockaddr_storage *sa, socklen_t salen, char **err)
{
	struct evhttp_request *req;
	struct evkeyvalq *h;
	struct event *cev = NULL;
	struct timeval tv;
	int64_t left = deadline - now_mono_ms();
	unsigned long ssl_err = 0;
	char ebuf[256];
	int e;

	exchange_reset(g);
	if (left <= 0)
		return weft_errf(err, WEFT_EIO, "weft-server at %s did not answer within %ld ms",
				 g->display, timeout_ms);
	tv.tv_sec = (time_t)(left / 1000 + 2);   /* ours fires first */
	tv.tv_usec = 0;
	evhttp_connection_set_timeout_tv(g->conn, &tv);
	if ((req = evhttp_request_new(on_done, g)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "http client: out of memory");
	evhttp_request_set_error_cb(req, on_error);
	h = evhttp_request_get_output_headers(req);
	if (evhttp_add_header(h, "Host", g->host_header) != 0 ||
	    evhttp_add_header(h, "User-Agent", "weft-proxy/" PACKAGE_VERSION) != 0 ||
	    (g->token && g->token[0] && evhttp_add_header(h, "X-Consul-Token", g->token) != 0)) {
		evhttp_request_free(req);
		return weft_errf(err, WEFT_ENOMEM, "http client: out of memory");
	}
	if (evhttp_make_request(g->conn, req, EVHTTP_REQ_GET, path) != 0)
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: cannot start the "
				 "request", g->display);
	if (!reused) {
		int64_t cl = g->connect_timeout_ms < left ? g->connect_timeout_ms : left;
		struct timeval ct = { (time_t)(cl / 1000), (suseconds_t)(cl % 1000) * 1000 };

		if ((cev = evtimer_new(g->base, on_connect_check, g)) != NULL)
			evtimer_add(cev, &ct);
	}
	run_until(g, &g->done, deadline, &g->timed_out);
	if (cev)
		event_free(cev);
	if (g->stop)
		return weft_errf(err, WEFT_ESHUTDOWN, "interrupted");
	if (g->done && g->status > 0 && !g->body_too_big)
		return WEFT_OK;
	/* The request failed; what follows reads the connection's remains. */
	if (g->bev && g->https) {
		unsigned long x;

		/* libevent queues SSL_get_error() codes (library 0) beside
		 * OpenSSL's: SSL_ERROR_SYSCALL is a socket error, named below */
		while ((x = bufferevent_get_openssl_error(g->bev)) != 0)
			if (ssl_err == 0 && ERR_GET_LIB(x) != 0)
				ssl_err = x;
	}
	if (g->connect_timed_out)
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: %s within %ld ms",
				 g->display, g->ssl && bufferevent_getfd(g->bev) >= 0 &&
				 !SSL_is_init_finished(g->ssl) ? "no TLS handshake" : "no connection",
				 g->connect_timeout_ms);
	if (!g->done)
		return weft_errf(err, WEFT_EIO, "weft-server at %s did not answer within %ld ms",
				 g->display, timeout_ms);
	if (g->req_error == EVREQ_HTTP_DATA_TOO_LONG || g->body_too_big)
		return weft_errf(err, WEFT_ETOOBIG, "the reply from weft-server at %s is larger than %zu "
				 "bytes", g->display, g->max_body);
	if (g->verify_err[0])
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: TLS: the server's "
				 "certificate is refused: %s", g->display, g->verify_err);
	if (ssl_err) {
		ERR_error_string_n(ssl_err, ebuf, sizeof(ebuf));
		return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: TLS handshake failed: %s",
				 g->display, ebuf);
	}
	if (g->req_error == EVREQ_HTTP_INVALID_HEADER)
		return weft_errf(err, WEFT_EIO, "weft-server at %s sent a reply that is not HTTP/1.x "
				 "(or with headers over %d bytes)", g->display, PX_HTTPGET_MAX_HEADERS);
	if (reused)
		return RETRY;
	if ((e = probe(g, sa, salen, deadline)) != 0) {
		if (e == EINTR)
			return weft_errf(err, WEFT_ESHUTDOWN, "interrupted");
		weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: %s", g->display, strerror(e));
		return NEXT_ADDR;
	}
	return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: the connection closed "
			 "before a reply%s", g->display,
			 g->https ? " (a TLS server? check the scheme, https://)" : "");
}

int px_httpget_get(struct px_httpget *g, const char *path, long timeout_ms,
		   struct px_httpget_resp *resp, char **err)
{
	struct sockaddr_storage addrs[MAX_ADDRS];
	socklen_t lens[MAX_ADDRS];
	int64_t deadline = now_mono_ms() + (timeout_ms > 0 ? timeout_ms : 60000);
	int rc = WEFT_EIO, n = 0;
	char *e = NULL;

	memset(resp, 0, sizeof(*resp));
	if (timeout_ms <= 0)
		timeout_ms = 60000;
	g->stop = 0;
	if (atomic_load(&g->interrupted))
		return weft_errf(err, WEFT_ESHUTDOWN, "interrupted");
	if (g->conn) {
		/* a close by the server while we were away */
		event_base_loop(g->base, EVLOOP_NONBLOCK);
		event_base_loop(g->base, EVLOOP_NONBLOCK);
		if (g->conn_closed)
			conn_drop(g);
	}
	if (g->conn) {
		rc = exchange(g, path, 1, deadline, timeout_ms, NULL, 0, err);
		if (rc != RETRY)
			goto out;
		conn_drop(g);
	}
	{
		int64_t cd = now_mono_ms() + g->connect_timeout_ms;

		if ((rc = resolve(g, cd < deadline ? cd : deadline, addrs, lens, &n, err)) != WEFT_OK)
			goto out;
	}
	for (int i = 0; i < n; i++) {
		free(e);
		e = NULL;
		if ((rc = conn_new(g, &addrs[i], err)) != WEFT_OK)
			goto out;
		rc = exchange(g, path, 0, deadline, timeout_ms, &addrs[i], lens[i], &e);
		if (rc != NEXT_ADDR || i + 1 == n || now_mono_ms() >= deadline)
			break;
		conn_drop(g);
	}
	if (rc == NEXT_ADDR)
		rc = WEFT_EIO;
	if (rc != WEFT_OK && err) {
		free(*err);
		*err = e;
		e = NULL;
	}
out:
	free(e);
	if (rc == WEFT_OK) {
		resp->status = g->status;
		resp->body = g->body;
		resp->len = g->len;
		resp->index = g->index;
		resp->has_index = g->has_index;
		g->body = NULL;
		g->len = 0;
		if (g->conn_closed)
			conn_drop(g);
	} else {
		conn_drop(g);
	}
	return rc;
}
