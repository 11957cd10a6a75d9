/* px_httpget against a real HTTP/1.1 server in a thread (libevent's evhttp
 * server), a port nobody listens on, and a socket that listens but never
 * answers. The https side (certificates, host names) runs against a real
 * weft-server in tests/integration/test_proxy_snapshot.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "err.h"
#include "px_httpget.h"
#include "util.h"

struct srv {
	struct event_base *base;
	struct evhttp *http;
	unsigned port;
	pthread_t thread;
	pthread_mutex_t lock;
	char token[128];      /* the last X-Consul-Token seen */
	char host[128];       /* the last Host */
	int requests;
};

static void handle(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	const char *t = evhttp_find_header(in, "X-Consul-Token"), *h = evhttp_find_header(in, "Host");

	pthread_mutex_lock(&s->lock);
	snprintf(s->token, sizeof(s->token), "%s", t ? t : "");
	snprintf(s->host, sizeof(s->host), "%s", h ? h : "");
	s->requests++;
	pthread_mutex_unlock(&s->lock);
	if (strncmp(uri, "/ok", 3) == 0) {
		evhttp_add_header(out, "X-Consul-Index", "42");
		evbuffer_add_printf(b, "{\"uri\":\"%s\"}", uri);
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(uri, "/denied") == 0) {
		evbuffer_add_printf(b, "{\"error\":\"ACL not found\"}");
		evhttp_send_reply(req, 403, "Forbidden", b);
	} else if (strcmp(uri, "/big") == 0) {
		for (int i = 0; i < 100; i++)
			evbuffer_add_printf(b, "0123456789");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(uri, "/close") == 0) {
		evhttp_add_header(out, "Connection", "close");
		evbuffer_add_printf(b, "bye");
		evhttp_send_reply(req, 200, "OK", b);
	} else {
		evhttp_send_reply(req, 404, "Not Found", b);
	}
	evbuffer_free(b);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;

	event_base_dispatch(s->base);
	return NULL;
}

static struct srv *srv_start(int idle_timeout_s)
{
	struct srv *s = calloc(1, sizeof(*s));
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_non_null(s);
	pthread_mutex_init(&s->lock, NULL);
	s->base = event_base_new();
	s->http = evhttp_new(s->base);
	assert_non_null(s->http);
	if (idle_timeout_s)
		evhttp_set_timeout(s->http, idle_timeout_s);
	evhttp_set_gencb(s->http, handle, s);
	bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
	assert_non_null(bs);
	assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
	return s;
}

static void srv_stop(struct srv *s)
{
	event_base_loopexit(s->base, NULL);
	pthread_join(s->thread, NULL);
	evhttp_free(s->http);
	event_base_free(s->base);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static struct px_httpget *client(const char *addr, const char *token, size_t max_body)
{
	struct px_httpget_opts o = { .address = addr, .token = token, .max_body = max_body };
	struct px_httpget *g = NULL;
	char *err = NULL;

	assert_int_equal(px_httpget_new(&g, &o, &err), WEFT_OK);
	assert_null(err);
	return g;
}

/* A port with nothing on it (bound, then closed). */
static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void test_parse_address(void **state)
{
	struct { const char *in; int https; const char *host; unsigned port; const char *display; } ok[] = {
		{ "127.0.0.1:8500", 0, "127.0.0.1", 8500, "127.0.0.1:8500" },
		{ "weft.example", 0, "weft.example", 8500, "weft.example:8500" },
		{ "http://h:81/", 0, "h", 81, "h:81" },
		{ "HTTPS://h", 1, "h", 443, "https://h:443" },
		{ "https://[::1]:8501", 1, "::1", 8501, "https://[::1]:8501" },
		{ "[::1]", 0, "::1", 8500, "[::1]:8500" },
	};
	struct { const char *in, *want; } bad[] = {
		{ "", "empty" },
		{ "ftp://h:1", "only http:// and https://" },
		{ "h:1/v1", "without a path" },
		{ "h:0", "from 1 to 65535" },
		{ "h:65536", "from 1 to 65535" },
		{ "h:x", "from 1 to 65535" },
		{ "::1:8500", "in brackets" },
		{ "[::1", "missing ']'" },
		{ ":8500", "no host" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *host = NULL, *display = NULL, *err = NULL;
		unsigned port = 0;
		int https = -1;

		assert_int_equal(px_httpget_parse_address(ok[i].in, &https, &host, &port, &display, &err),
				 WEFT_OK);
		assert_int_equal(https, ok[i].https);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
		assert_string_equal(display, ok[i].display);
		free(host);
		free(display);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *host = NULL, *display = NULL, *err = NULL;
		unsigned port = 0;
		int https = 0;

		assert_int_equal(px_httpget_parse_address(bad[i].in, &https, &host, &port, &display, &err),
				 WEFT_EINVAL);
		assert_non_null(err);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("%s: %s (want %s)", bad[i].in, err, bad[i].want);
		assert_null(host);
		free(err);
	}
}

static void test_escape(void **state)
{
	char *e = px_httpget_escape("web-1_x.y~/ä ?");

	(void)state;
	assert_string_equal(e, "web-1_x.y~%2F%C3%A4%20%3F");
	free(e);
}

static void test_get_keeps_the_connection(void **state)
{
	struct srv *s = srv_start(0);
	char addr[64], *err = NULL;
	struct px_httpget *g;
	struct px_httpget_resp r;

	(void)state;
	snprintf(addr, sizeof(addr), "http://127.0.0.1:%u", s->port);
	g = client(addr, "s3cret", 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(px_httpget_get(g, "/ok?index=7&wait=1s", 5000, &r, &err), WEFT_OK);
		assert_int_equal(r.status, 200);
		assert_string_equal(r.body, "{\"uri\":\"/ok?index=7&wait=1s\"}");
		assert_int_equal(r.len, strlen(r.body));
		assert_true(r.has_index);
		assert_int_equal(r.index, 42);
		px_httpget_resp_free(&r);
	}
	assert_int_equal(px_httpget_connections(g), 1);
	pthread_mutex_lock(&s->lock);
	assert_string_equal(s->token, "s3cret");
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", s->port);
	assert_string_equal(s->host, addr);
	assert_int_equal(s->requests, 3);
	pthread_mutex_unlock(&s->lock);
	/* an error status is a reply; the message comes from the JSON */
	assert_int_equal(px_httpget_get(g, "/denied", 5000, &r, &err), WEFT_OK);
	assert_int_equal(r.status, 403);
	assert_false(r.has_index);
	{
		char *m = px_httpget_error_message(&r);

		assert_string_equal(m, "ACL not found");
		free(m);
	}
	px_httpget_resp_free(&r);
	/* Connection: close, then a new connection */
	assert_int_equal(px_httpget_get(g, "/close", 5000, &r, &err), WEFT_OK);
	assert_string_equal(r.body, "bye");
	px_httpget_resp_free(&r);
	assert_int_equal(px_httpget_get(g, "/ok", 5000, &r, &err), WEFT_OK);
	assert_int_equal(r.status, 200);
	px_httpget_resp_free(&r);
	assert_int_equal(px_httpget_connections(g), 2);
	assert_null(err);
	px_httpget_free(g);
	srv_stop(s);
}

static void test_server_closes_idle_connection(void **state)
{
	struct srv *s = srv_start(1);   /* the server drops idle connections after 1 s */
	char addr[64], *err = NULL;
	struct px_httpget *g;
	struct px_httpget_resp r;

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", s->port);
	g = client(addr, NULL, 0);
	assert_int_equal(px_httpget_get(g, "/ok", 5000, &r, &err), WEFT_OK);
	px_httpget_resp_free(&r);
	usleep(1600 * 1000);
	assert_int_equal(px_httpget_get(g, "/ok", 5000, &r, &err), WEFT_OK);
	assert_int_equal(r.status, 200);
	px_httpget_resp_free(&r);
	assert_int_equal(px_httpget_connections(g), 2);
	pthread_mutex_lock(&s->lock);
	assert_string_equal(s->token, "");   /* no token, no header */
	pthread_mutex_unlock(&s->lock);
	assert_null(err);
	px_httpget_free(g);
	srv_stop(s);
}

static void test_body_over_the_limit(void **state)
{
	struct srv *s = srv_start(0);
	char addr[64], *err = NULL, want[128];
	struct px_httpget *g;
	struct px_httpget_resp r;

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", s->port);
	g = client(addr, NULL, 999);
	assert_int_equal(px_httpget_get(g, "/big", 5000, &r, &err), WEFT_ETOOBIG);
	snprintf(want, sizeof(want), "the reply from weft-server at 127.0.0.1:%u is larger than 999 bytes",
		 s->port);
	assert_string_equal(err, want);
	assert_null(r.body);
	free(err);
	err = NULL;
	/* and the client still works */
	assert_int_equal(px_httpget_get(g, "/ok", 5000, &r, &err), WEFT_OK);
	px_httpget_resp_free(&r);
	px_httpget_free(g);
	srv_stop(s);
}

static void test_connection_refused(void **state)
{
	unsigned port = free_port();
	char addr[64], want[128], *err = NULL;
	struct px_httpget *g;
	struct px_httpget_resp r;
	int64_t t0 = now_mono_ms();

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	g = client(addr, NULL, 0);
	assert_int_equal(px_httpget_get(g, "/ok", 5000, &r, &err), WEFT_EIO);
	snprintf(want, sizeof(want), "cannot reach weft-server at 127.0.0.1:%u: Connection refused", port);
	assert_string_equal(err, want);
	assert_true(now_mono_ms() - t0 < 1000);
	free(err);
	px_httpget_free(g);
}

static void test_localhost_by_name(void **state)
{
	struct srv *s = srv_start(0);
	char addr[64], *err = NULL;
	struct px_httpget *g;
	struct px_httpget_resp r;

	(void)state;
	/* from /etc/hosts (no DNS query: the tests stay on 127.0.0.1); where
	 * localhost is ::1 first, nothing listens there and 127.0.0.1 is next */
	snprintf(addr, sizeof(addr), "localhost:%u", s->port);
	g = client(addr, NULL, 0);
	assert_int_equal(px_httpget_get(g, "/ok", 5000, &r, &err), WEFT_OK);
	assert_int_equal(r.status, 200);
	px_httpget_resp_free(&r);
	pthread_mutex_lock(&s->lock);
	assert_string_equal(s->host, addr);
	pthread_mutex_unlock(&s->lock);
	px_httpget_free(g);
	srv_stop(s);
}

/* A server that accepts connections (the kernel's backlog) and never answers. */
static int silent_listener(unsigned *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void test_timeout(void **state)
{
	unsigned port;
	int fd = silent_listener(&port);
	char addr[64], want[128], *err = NULL;
	struct px_httpget *g;
	struct px_httpget_resp r;
	int64_t t0 = now_mono_ms(), took;

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	g = client(addr, NULL, 0);
	assert_int_equal(px_httpget_get(g, "/ok", 300, &r, &err), WEFT_EIO);
	took = now_mono_ms() - t0;
	snprintf(want, sizeof(want), "weft-server at 127.0.0.1:%u did not answer within 300 ms", port);
	assert_string_equal(err, want);
	assert_true(took >= 290 && took < 1000);
	free(err);
	px_httpget_free(g);
	close(fd);
}

struct interrupter {
	struct px_httpget *g;
	long after_ms;
};

static void *interrupt_later(void *arg)
{
	struct interrupter *it = arg;

	usleep((useconds_t)it->after_ms * 1000);
	px_httpget_interrupt(it->g);
	return NULL;
}

static void test_interrupt(void **state)
{
	unsigned port;
	int fd = silent_listener(&port);
	char addr[64], *err = NULL;
	struct px_httpget *g;
	struct px_httpget_resp r;
	struct interrupter it;
	pthread_t t;
	int64_t t0 = now_mono_ms(), took;

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	g = client(addr, NULL, 0);
	it.g = g;
	it.after_ms = 200;
	assert_int_equal(pthread_create(&t, NULL, interrupt_later, &it), 0);
	/* a long poll: 330 s */
	assert_int_equal(px_httpget_get(g, "/ok?index=1&wait=300s", 330000, &r, &err), WEFT_ESHUTDOWN);
	took = now_mono_ms() - t0;
	pthread_join(t, NULL);
	assert_true(took >= 190 && took < 700);
	free(err);
	err = NULL;
	/* and later requests end at once too */
	assert_int_equal(px_httpget_get(g, "/ok", 5000, &r, &err), WEFT_ESHUTDOWN);
	free(err);
	px_httpget_free(g);
	close(fd);
}

static void test_bad_ca_file(void **state)
{
	struct px_httpget_opts o = { .address = "https://127.0.0.1:8501", .ca_file = "/nonexistent/ca.pem" };
	struct px_httpget *g = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(px_httpget_new(&g, &o, &err), WEFT_EIO);
	assert_null(g);
	assert_non_null(strstr(err, "--server-ca /nonexistent/ca.pem: cannot load the CA certificates"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_address),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_get_keeps_the_connection),
		cmocka_unit_test(test_server_closes_idle_connection),
		cmocka_unit_test(test_body_over_the_limit),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_localhost_by_name),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_interrupt),
		cmocka_unit_test(test_bad_ca_file),
	};

	if (evthread_use_pthreads() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
