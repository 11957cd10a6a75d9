/* px_worker: the bounds on the worker count; threads stopped right after
 * they start (a break sent before a loop runs must not be lost); a port
 * taken by another socket refused with the listener's name; every worker
 * binding the same port (SO_REUSEPORT) and /drain's path: all listeners
 * closed when px_worker_drain() returns, the idle connections of every
 * worker closed and the count reported back to 0. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "px_stats.h"
#include "px_worker.h"

/* A port free a moment ago on 127.0.0.1. */
static uint16_t free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* The upstream: a socket that listens and never accepts (the proxy's
 * connections wait in its backlog; nothing is requested). */
static int upstream_fd = -1;
static struct sockaddr_in upstream_sa;

static int setup(void **state)
{
	socklen_t len = sizeof(upstream_sa);

	upstream_sa = (struct sockaddr_in){.sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	upstream_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (upstream_fd < 0 || bind(upstream_fd, (struct sockaddr *)&upstream_sa, len) != 0 ||
	    listen(upstream_fd, 128) != 0 ||
	    getsockname(upstream_fd, (struct sockaddr *)&upstream_sa, &len) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	close(upstream_fd);
	return 0;
}

static struct px_listener_cfg listener(uint16_t port)
{
	struct px_listener_cfg c = {.name = "listen", .mode = PX_MODE_HTTP, .via = "test"};

	c.listen.sin_family = AF_INET;
	c.listen.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c.listen.sin_port = htons(port);
	c.upstream = upstream_sa;
	snprintf(c.upstream_name, sizeof(c.upstream_name), "127.0.0.1:%u",
		 (unsigned)ntohs(upstream_sa.sin_port));
	return c;
}

static int dial(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_bounds(void **state)
{
	struct px_listener_cfg l = listener(free_port());
	struct px_worker_cfg cfg = {.listeners = &l, .nlisteners = 1};
	struct px_worker *w = (struct px_worker *)&cfg;
	char *err = NULL;

	for (unsigned n = 0; n <= PX_WORKERS_MAX + 1; n += PX_WORKERS_MAX + 1) {
		cfg.n = n;
		assert_int_equal(px_worker_new(&w, &cfg, &err), WEFT_EINVAL);
		assert_null(w);
		assert_non_null(strstr(err, "want 1..64"));
		free(err);
		err = NULL;
	}
	px_worker_free(NULL);
}

static void test_stop_right_after_start(void **state)
{
	struct px_listener_cfg l = listener(free_port());
	struct px_worker_cfg cfg = {.n = 4, .listeners = &l, .nlisteners = 1};
	struct px_worker *w = NULL;
	char *err = NULL;

	alarm(30);      /* a lost break would hang in the join */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(px_worker_new(&w, &cfg, &err), WEFT_OK);
		assert_int_equal(px_worker_start(w, &err), WEFT_OK);
		px_worker_stop(w);
		px_worker_stop(w);      /* idempotent */
		px_worker_free(w);
	}
	/* never started: free alone */
	assert_int_equal(px_worker_new(&w, &cfg, &err), WEFT_OK);
	px_worker_free(w);
	alarm(0);
}

static void test_port_taken(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct px_listener_cfg l;
	struct px_worker_cfg cfg = {.n = 2, .nlisteners = 1};
	struct px_worker *w = NULL;
	char *err = NULL;

	/* bound without SO_REUSEPORT: the workers may not share it */
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	l = listener(ntohs(sa.sin_port));
	cfg.listeners = &l;
	assert_int_not_equal(px_worker_new(&w, &cfg, &err), WEFT_OK);
	assert_null(w);
	assert_non_null(strstr(err, "listen listener: bind: "));
	free(err);
	close(fd);
}

static void test_drain(void **state)
{
	uint16_t port = free_port();
	struct px_listener_cfg l = listener(port);
	struct px_worker_cfg cfg = {.n = 3, .listeners = &l, .nlisteners = 1};
	struct px_worker *w = NULL;
	struct px_stats *const *st;
	int fds[24], nfd = 0;
	char *err = NULL, c;
	size_t n;
	struct buf text;

	alarm(30);
	assert_int_equal(px_worker_new(&w, &cfg, &err), WEFT_OK);
	assert_int_equal(px_worker_start(w, &err), WEFT_OK);
	st = px_worker_stats(w, &n);
	assert_int_equal(n, 3);
	/* every worker has its own socket on the one port */
	for (; nfd < 24; nfd++)
		assert_true((fds[nfd] = dial(port)) >= 0);
	for (int tries = 0; tries < 200; tries++) {   /* until every accept is counted */
		buf_init(&text, 1 << 20);
		assert_int_equal(px_stats_render(st, n, 0, &text), 0);
		if (strstr(text.data, "connections_opened_total{listener=\"listen\"} 24\n") != NULL)
			break;
		buf_free(&text);
		sleep_ms(10);
	}
	assert_non_null(strstr(text.data, "connections_opened_total{listener=\"listen\"} 24\n"));
	assert_non_null(strstr(text.data, "weft_proxy_workers 3\n"));
	buf_free(&text);
	assert_true(px_worker_conns(w) >= 3);  /* not drained: each worker counts as one */
	px_worker_drain(w);
	/* when it returns, no worker accepts */
	for (int i = 0; i < 8; i++)
		assert_int_equal(dial(port), -1);
	/* the idle connections are closed, on every worker, and reported */
	for (int i = 0; i < nfd; i++) {
		assert_int_equal(read(fds[i], &c, 1), 0);
		close(fds[i]);
	}
	for (int tries = 0; tries < 200 && px_worker_conns(w) != 0; tries++)
		sleep_ms(10);
	assert_int_equal(px_worker_conns(w), 0);
	px_worker_drain(w);     /* idempotent */
	px_worker_free(w);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_stop_right_after_start),
		cmocka_unit_test(test_port_taken),
		cmocka_unit_test(test_drain),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
