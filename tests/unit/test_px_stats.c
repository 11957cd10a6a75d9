/* px_stats: counters per listener, status classes, histogram buckets
 * (cumulative in the exposition), TLS failure reasons, denials by triple,
 * the sum over several instances (workers), label escaping, and a scrape
 * while another thread counts; the certificate expiry gauge. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "px_stats.h"

static char *render(struct px_stats *const *s, size_t n, int draining)
{
	struct buf b;

	buf_init(&b, 1 << 22);
	assert_int_equal(px_stats_render(s, n, draining, &b), 0);
	return buf_steal(&b);
}

/* The value of the sample whose line starts with prefix (exactly one). */
static double value(const char *text, const char *prefix)
{
	const char *p = text, *hit = NULL;
	size_t len = strlen(prefix);

	while ((p = strstr(p, prefix)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[len] == ' ') {
			assert_null(hit);
			hit = p;
		}
		p += len;
	}
	if (hit == NULL)
		fail_msg("no sample %s in:\n%s", prefix, text);
	return strtod(hit + len + 1, NULL);
}

static void test_counters(void **state)
{
	struct px_stats *s = px_stats_new();
	int a = px_stats_listener(s, "inbound"), b = px_stats_listener(s, "outbound");
	char *t;

	assert_int_equal(a, 0);
	assert_int_equal(b, 1);
	px_stats_conn_open(s, a);
	px_stats_conn_open(s, a);
	px_stats_conn_open(s, b);
	px_stats_conn_close(s, a);
	px_stats_request(s, a, 200, 100);
	px_stats_request(s, a, 204, 100);
	px_stats_request(s, a, 503, 100);
	px_stats_request(s, a, 101, 100);
	px_stats_request(s, a, 99, 100);
	px_stats_request(s, b, 404, 100);
	px_stats_bytes(s, a, 10, 20);
	px_stats_bytes(s, a, 1, 2);
	px_stats_upstream_connect_failure(s, b);
	px_stats_request(s, 7, 200, 1);   /* unknown listener: ignored */
	px_stats_request(NULL, 0, 200, 1);
	t = render(&s, 1, 0);
	assert_true(value(t, "weft_proxy_connections_opened_total{listener=\"inbound\"}") == 2);
	assert_true(value(t, "weft_proxy_connections_active{listener=\"inbound\"}") == 1);
	assert_true(value(t, "weft_proxy_connections_active{listener=\"outbound\"}") == 1);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"inbound\",code=\"2xx\"}") == 2);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"inbound\",code=\"5xx\"}") == 1);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"inbound\",code=\"1xx\"}") == 1);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"inbound\",code=\"other\"}") == 1);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"inbound\",code=\"4xx\"}") == 0);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"outbound\",code=\"4xx\"}") == 1);
	assert_true(value(t, "weft_proxy_received_bytes_total{listener=\"inbound\"}") == 11);
	assert_true(value(t, "weft_proxy_sent_bytes_total{listener=\"inbound\"}") == 22);
	assert_true(value(t, "weft_proxy_upstream_connect_failures_total{listener=\"outbound\"}") == 1);
	assert_true(value(t, "weft_proxy_upstream_connect_failures_total{listener=\"inbound\"}") == 0);
	assert_true(value(t, "weft_proxy_draining") == 0);
	assert_non_null(strstr(t, "# TYPE weft_proxy_requests_total counter\n"));
	free(t);
	for (int i = 2; i < PX_STATS_MAX_LISTENERS; i++)
		assert_int_equal(px_stats_listener(s, "x"), i);
	assert_int_equal(px_stats_listener(s, "one too many"), -1);
	px_stats_free(s);
}

static void test_histogram(void **state)
{
	struct px_stats *s = px_stats_new();
	char *t;

	px_stats_listener(s, "listen");
	px_stats_request(s, 0, 200, 500);       /* exactly 0.5 ms: in le=0.0005 */
	px_stats_request(s, 0, 200, 501);       /* le=0.001 */
	px_stats_request(s, 0, 200, 30000);     /* 30 ms: le=0.05 */
	px_stats_request(s, 0, 200, 60000000);  /* 60 s: only +Inf */
	t = render(&s, 1, 1);
	assert_true(value(t, "weft_proxy_request_duration_seconds_bucket{listener=\"listen\",le=\"0.0005\"}") == 1);
	assert_true(value(t, "weft_proxy_request_duration_seconds_bucket{listener=\"listen\",le=\"0.001\"}") == 2);
	assert_true(value(t, "weft_proxy_request_duration_seconds_bucket{listener=\"listen\",le=\"0.025\"}") == 2);
	assert_true(value(t, "weft_proxy_request_duration_seconds_bucket{listener=\"listen\",le=\"0.05\"}") == 3);
	assert_true(value(t, "weft_proxy_request_duration_seconds_bucket{listener=\"listen\",le=\"10\"}") == 3);
	assert_true(value(t, "weft_proxy_request_duration_seconds_bucket{listener=\"listen\",le=\"+Inf\"}") == 4);
	assert_true(value(t, "weft_proxy_request_duration_seconds_count{listener=\"listen\"}") == 4);
	assert_float_equal(value(t, "weft_proxy_request_duration_seconds_sum{listener=\"listen\"}"),
			   60.031001, 1e-6);
	assert_true(value(t, "weft_proxy_draining") == 1);
	assert_non_null(strstr(t, "# TYPE weft_proxy_request_duration_seconds histogram\n"));
	free(t);
	px_stats_free(s);
}

static void test_tls(void **state)
{
	struct px_stats *s = px_stats_new();
	char *t;

	px_stats_listener(s, "inbound");
	px_stats_tls(s, 0, PX_STATS_CLIENT, NULL);
	px_stats_tls(s, 0, PX_STATS_CLIENT, "foreign-ca");
	px_stats_tls(s, 0, PX_STATS_CLIENT, "foreign-ca");
	px_stats_tls(s, 0, PX_STATS_CLIENT, "expired");
	px_stats_tls(s, 0, PX_STATS_UPSTREAM, "wrong-spiffe-id");
	px_stats_tls(s, 0, PX_STATS_UPSTREAM, "something new");
	t = render(&s, 1, 0);
	assert_true(value(t, "weft_proxy_tls_handshakes_total{listener=\"inbound\",side=\"client\"}") == 1);
	assert_true(value(t, "weft_proxy_tls_handshakes_total{listener=\"inbound\",side=\"upstream\"}") == 0);
	assert_true(value(t, "weft_proxy_tls_handshake_failures_total{listener=\"inbound\",side=\"client\",reason=\"foreign-ca\"}") == 2);
	assert_true(value(t, "weft_proxy_tls_handshake_failures_total{listener=\"inbound\",side=\"client\",reason=\"expired\"}") == 1);
	assert_true(value(t, "weft_proxy_tls_handshake_failures_total{listener=\"inbound\",side=\"upstream\",reason=\"wrong-spiffe-id\"}") == 1);
	assert_true(value(t, "weft_proxy_tls_handshake_failures_total{listener=\"inbound\",side=\"upstream\",reason=\"other\"}") == 1);
	free(t);
	px_stats_free(s);
}

/* px_sni's refusals, by reason, summed over workers; an unknown reason
 * is not counted. */
static void test_sni_refused(void **state)
{
	struct px_stats *w[2] = {px_stats_new(), px_stats_new()};
	char *t;

	for (int i = 0; i < 2; i++) {
		px_stats_listener(w[i], "inbound");
		px_stats_listener(w[i], "passthrough");
		px_stats_sni_refused(w[i], 1, "no-route");
		px_stats_sni_refused(w[i], 1, "surprise");
	}
	px_stats_sni_refused(w[0], 1, "timeout");
	px_stats_sni_refused(w[1], 1, "not-tls");
	px_stats_sni_refused(w[1], 1, "not-tls");
	px_stats_sni_refused(w[1], 7, "no-sni");
	px_stats_sni_refused(NULL, 1, "no-sni");
	t = render(w, 2, 0);
	assert_true(value(t, "weft_proxy_sni_refused_total{listener=\"passthrough\",reason=\"no-route\"}") == 2);
	assert_true(value(t, "weft_proxy_sni_refused_total{listener=\"passthrough\",reason=\"not-tls\"}") == 2);
	assert_true(value(t, "weft_proxy_sni_refused_total{listener=\"passthrough\",reason=\"timeout\"}") == 1);
	assert_true(value(t, "weft_proxy_sni_refused_total{listener=\"passthrough\",reason=\"no-sni\"}") == 0);
	assert_true(value(t, "weft_proxy_sni_refused_total{listener=\"inbound\",reason=\"no-route\"}") == 0);
	free(t);
	px_stats_free(w[0]);
	px_stats_free(w[1]);
}

static void test_denials_and_escaping(void **state)
{
	struct px_stats *s = px_stats_new();
	char *t, src[64];

	px_stats_listener(s, "in\"bound");
	px_stats_denial(s, "spiffe://td/ns/default/dc/dc1/svc/web", "api", "ixn-1");
	px_stats_denial(s, "spiffe://td/ns/default/dc/dc1/svc/web", "api", "ixn-1");
	px_stats_denial(s, "spiffe://td/ns/default/dc/dc1/svc/web", "api", "");
	px_stats_denial(s, "we\"b\\x\ny", "api", "ixn-2");
	t = render(&s, 1, 0);
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"spiffe://td/ns/default/dc/dc1/svc/web\",destination=\"api\",intention=\"ixn-1\"}") == 2);
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"spiffe://td/ns/default/dc/dc1/svc/web\",destination=\"api\",intention=\"\"}") == 1);
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"we\\\"b\\\\x\\ny\",destination=\"api\",intention=\"ixn-2\"}") == 1);
	assert_true(value(t, "weft_proxy_connections_active{listener=\"in\\\"bound\"}") == 0);
	free(t);
	/* past the table's capacity: counted, under _other */
	for (int i = 0; i < 2 * PX_STATS_MAX_DENIALS; i++) {
		snprintf(src, sizeof(src), "svc-%d", i);
		px_stats_denial(s, src, "api", "ixn-3");
	}
	t = render(&s, 1, 0);
	{
		double total = 0;
		const char *p = t;

		while ((p = strstr(p, "\nweft_proxy_intention_denials_total{")) != NULL) {
			p = strchr(p, '}') + 1;
			total += strtod(p, NULL);
		}
		assert_true(total == 2 * PX_STATS_MAX_DENIALS + 4);
	}
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"_other\",destination=\"_other\",intention=\"_other\"}") > 0);
	free(t);
	px_stats_free(s);
}

/* Two workers: every counter is the sum; a denial triple in both is one sample. */
static void test_sum(void **state)
{
	struct px_stats *w[3] = {px_stats_new(), px_stats_new(), px_stats_new()};
	char *t;

	for (int i = 0; i < 3; i++) {
		px_stats_listener(w[i], "listen");
		px_stats_listener(w[i], "other");
		px_stats_conn_open(w[i], 0);
		px_stats_request(w[i], 0, 200, 1000);
		px_stats_denial(w[i], "web", "api", "ixn-1");
	}
	px_stats_conn_open(w[2], 1);
	px_stats_conn_open(w[2], 1);
	px_stats_denial(w[1], "db", "api", "ixn-2");
	px_stats_denial(w[2], "db", "api", "ixn-2");
	px_stats_denial(w[2], "cache", "api", "");
	px_stats_accesslog_dropped(w[1], 5);
	t = render(w, 3, 0);
	assert_true(value(t, "weft_proxy_connections_active{listener=\"listen\"}") == 3);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"listen\",code=\"2xx\"}") == 3);
	assert_true(value(t, "weft_proxy_request_duration_seconds_bucket{listener=\"listen\",le=\"0.001\"}") == 3);
	/* a triple counted by several workers is one series with the sum */
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"web\",destination=\"api\",intention=\"ixn-1\"}") == 3);
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"db\",destination=\"api\",intention=\"ixn-2\"}") == 2);
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"cache\",destination=\"api\",intention=\"\"}") == 1);
	/* sorted by triple */
	assert_true(strstr(t, "source=\"cache\"") < strstr(t, "source=\"db\""));
	assert_true(strstr(t, "source=\"db\"") < strstr(t, "source=\"web\""));
	assert_true(value(t, "weft_proxy_access_log_dropped_total") == 5);
	/* the workers, and how the connections were spread among them */
	assert_true(value(t, "weft_proxy_workers") == 3);
	assert_true(value(t, "weft_proxy_worker_connections_opened_total{worker=\"0\"}") == 1);
	assert_true(value(t, "weft_proxy_worker_connections_opened_total{worker=\"2\"}") == 3);
	assert_null(strstr(t, "worker=\"3\""));
	free(t);
	for (int i = 0; i < 3; i++)
		px_stats_free(w[i]);
	px_stats_free(NULL);
}

/* A worker counts while another thread renders (the admin scraping):
 * every scrape is consistent with a moment of the counting (never more
 * than was counted, never going back), and the last one has it all.
 * Built with -fsanitize=thread this is the data-race check. */
#define COUNT_N 200000
static void *count_thread(void *arg)
{
	struct px_stats *s = arg;

	for (int i = 0; i < COUNT_N; i++) {
		px_stats_conn_open(s, 0);
		px_stats_request(s, 0, 200, 10);
		if (i % 1000 == 0)
			px_stats_denial(s, "web", "api", i % 2000 ? "odd" : "even");
		px_stats_conn_close(s, 0);
	}
	return NULL;
}

/* The certificate gauge: the earliest leaf, negative once expired, absent
 * without TLS. */
static void test_certificate_expiry(void **state)
{
	long long na[3] = { 0, 2000, 1500 };
	struct buf b;

	buf_init(&b, 1 << 16);
	assert_int_equal(px_stats_render_certificate(na, 3, 1000, &b), 0);
	assert_non_null(b.data);
	assert_non_null(strstr(b.data, "# TYPE weft_proxy_certificate_expiry_seconds gauge\n"));
	assert_true(value(b.data, "weft_proxy_certificate_expiry_seconds") == 500);
	buf_reset(&b);
	assert_int_equal(px_stats_render_certificate(na, 3, 1600, &b), 0);
	assert_true(value(b.data, "weft_proxy_certificate_expiry_seconds") == -100);
	buf_reset(&b);
	assert_int_equal(px_stats_render_certificate(na, 1, 1000, &b), 0);
	assert_true(b.data == NULL || strstr(b.data, "certificate_expiry") == NULL);
	buf_free(&b);
}

static void test_concurrent_scrape(void **state)
{
	struct px_stats *s = px_stats_new();
	pthread_t th;
	double last = 0, v;
	char *t;

	px_stats_listener(s, "listen");
	assert_int_equal(pthread_create(&th, NULL, count_thread, s), 0);
	for (int i = 0; i < 50; i++) {
		t = render(&s, 1, 0);
		v = value(t, "weft_proxy_connections_opened_total{listener=\"listen\"}");
		assert_true(v >= last && v <= COUNT_N);
		last = v;
		free(t);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	t = render(&s, 1, 0);
	assert_true(value(t, "weft_proxy_connections_opened_total{listener=\"listen\"}") == COUNT_N);
	assert_true(value(t, "weft_proxy_connections_active{listener=\"listen\"}") == 0);
	assert_true(value(t, "weft_proxy_requests_total{listener=\"listen\",code=\"2xx\"}") == COUNT_N);
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"web\",destination=\"api\",intention=\"even\"}") == COUNT_N / 2000);
	assert_true(value(t, "weft_proxy_intention_denials_total{source=\"web\",destination=\"api\",intention=\"odd\"}") == COUNT_N / 2000);
	free(t);
	px_stats_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_sni_refused),
		cmocka_unit_test(test_denials_and_escaping),
		cmocka_unit_test(test_sum),
		cmocka_unit_test(test_concurrent_scrape),
		cmocka_unit_test(test_certificate_expiry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
