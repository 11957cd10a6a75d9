/* px_splice: a real tunnel between two loopback TCP connections. The
 * test's peers (client A, backend B) run in a thread with blocking
 * sockets; the tunnel runs on an event loop in the main thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "px_splice.h"

#define BIG (3u << 20)

struct pairs {
	int a_peer, a_proxy;   /* client side: the test's end, the proxy's end */
	int b_proxy, b_peer;   /* backend side */
};

/* Two connected loopback TCP sockets: *out_connect, *out_accept. */
static void tcp_pair(int *out_connect, int *out_accept)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	*out_connect = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*out_connect, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*out_accept = accept(l, NULL, NULL);
	assert_true(*out_accept >= 0);
	close(l);
}

static void make_pairs(struct pairs *p)
{
	tcp_pair(&p->a_peer, &p->a_proxy);
	tcp_pair(&p->b_proxy, &p->b_peer);
}

struct run {
	struct event_base *base;
	struct px_splice_result r;
	int done;
};

static void on_done(void *ud, const struct px_splice_result *r)
{
	struct run *run = ud;

	run->r = *r;
	run->done++;
	event_base_loopbreak(run->base);
}

static void write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/* Reads until EOF; returns the byte count and checks the pattern. */
static size_t read_to_eof(int fd, unsigned seed)
{
	unsigned char b[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, b, sizeof(b))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (b[i] != (unsigned char)((total + (size_t)i) * seed))
				return (size_t)-1;
		total += (size_t)n;
	}
	return total;
}

static unsigned char *pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n);

	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * seed);
	return p;
}

/* Client: sends BIG bytes after the prefix's, half-closes, reads the
 * backend's answer to EOF. Backend: reads to EOF (prefix + BIG), then
 * sends BIG/2 back and closes. */
struct peers {
	struct pairs *p;
	size_t prefix;
	size_t backend_got, client_got;
};

static void *backend(void *arg)
{
	struct peers *x = arg;
	unsigned char *out = pattern(BIG / 2, 7);

	x->backend_got = read_to_eof(x->p->b_peer, 3);
	write_all(x->p->b_peer, out, BIG / 2);
	close(x->p->b_peer);
	free(out);
	return NULL;
}

static void *client(void *arg)
{
	struct peers *x = arg;
	unsigned char *all = pattern(x->prefix + BIG, 3);

	write_all(x->p->a_peer, all + x->prefix, BIG);
	shutdown(x->p->a_peer, SHUT_WR);
	x->client_got = read_to_eof(x->p->a_peer, 7);
	close(x->p->a_peer);
	free(all);
	return NULL;
}

static void test_both_ways_with_prefix_and_half_close(void **state)
{
	struct pairs p;
	struct run run = {.base = event_base_new()};
	struct peers x = {.p = &p, .prefix = 1000};
	unsigned char *pre = pattern(1000, 3);
	struct px_splice *s = NULL;
	pthread_t tb, tc;
	char *err = NULL;

	make_pairs(&p);
	assert_int_equal(px_splice_new(&s, run.base, p.a_proxy, p.b_proxy, pre, 1000, 10000, on_done,
				       &run, &err), 0);
	pthread_create(&tb, NULL, backend, &x);
	pthread_create(&tc, NULL, client, &x);
	event_base_dispatch(run.base);
	pthread_join(tb, NULL);
	pthread_join(tc, NULL);
	assert_int_equal(run.done, 1);
	assert_int_equal(run.r.error, 0);
	assert_int_equal(run.r.idle_timeout, 0);
	/* the backend got the prefix first, then the client's bytes, in order */
	assert_int_equal(x.backend_got, 1000 + BIG);
	/* the client still got the answer after its half-close */
	assert_int_equal(x.client_got, BIG / 2);
	assert_int_equal(run.r.a_to_b, 1000 + BIG);
	assert_int_equal(run.r.b_to_a, BIG / 2);
	px_splice_free(s);
	event_base_free(run.base);
	free(pre);
}

static void test_idle_timeout(void **state)
{
	struct pairs p;
	struct run run = {.base = event_base_new()};
	struct px_splice *s = NULL;
	char buf[8];
	char *err = NULL;

	make_pairs(&p);
	assert_int_equal(px_splice_new(&s, run.base, p.a_proxy, p.b_proxy, NULL, 0, 200, on_done, &run,
				       &err), 0);
	write_all(p.a_peer, (const unsigned char *)"hi", 2);
	event_base_dispatch(run.base);
	assert_int_equal(run.done, 1);
	assert_int_equal(run.r.idle_timeout, 1);
	assert_int_equal(run.r.a_to_b, 2);
	assert_int_equal(read(p.b_peer, buf, sizeof(buf)), 2);
	px_splice_free(s);   /* closes both proxy ends: the peers see EOF */
	assert_int_equal(read(p.b_peer, buf, sizeof(buf)), 0);
	assert_int_equal(read(p.a_peer, buf, sizeof(buf)), 0);
	close(p.a_peer);
	close(p.b_peer);
	event_base_free(run.base);
}

static void test_reset_ends_the_tunnel(void **state)
{
	struct pairs p;
	struct run run = {.base = event_base_new()};
	struct px_splice *s = NULL;
	struct linger lg = {1, 0};
	char *err = NULL;

	make_pairs(&p);
	assert_int_equal(px_splice_new(&s, run.base, p.a_proxy, p.b_proxy, NULL, 0, 0, on_done, &run,
				       &err), 0);
	/* the backend resets; the client keeps its end open */
	setsockopt(p.b_peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(p.b_peer);
	event_base_dispatch(run.base);
	assert_int_equal(run.done, 1);
	assert_int_not_equal(run.r.error, 0);
	px_splice_free(s);
	close(p.a_peer);
	event_base_free(run.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_ways_with_prefix_and_half_close),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_reset_ends_the_tunnel),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
