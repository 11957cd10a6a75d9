/* The telemetry store: aggregation over proxies, p99 from merged
 * histograms, the hour-long ring, the bounds, the decoder's errors and the
 * index of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hub.h"
#include "jsonx.h"
#include "telemetry.h"

/* 2026-11-26T10:00:00Z, a multiple of 10 s */
#define T0 1795687200000LL

static struct telemetry *mk(size_t max_services, size_t max_edges)
{
	struct telemetry_opts o = { .max_services = max_services, .max_edges = max_edges };
	struct telemetry *t = NULL;
	char *err = NULL;

	assert_int_equal(telemetry_new(&t, &o, &err), WEFT_OK);
	return t;
}

/* Decodes text (which must be valid) and records it at now. */
static void put(struct telemetry *t, const char *text, int64_t now)
{
	json_t *doc = json_loads(text, 0, NULL);
	struct tm_sample s;
	char *err = NULL;

	assert_non_null(doc);
	if (telemetry_decode(doc, &s, &err) != WEFT_OK)
		fail_msg("decode: %s", err);
	json_decref(doc);
	telemetry_record(t, "n1", &s, now);
	telemetry_sample_clear(&s);
}

/* The decoder's error for text, or NULL when it decodes. */
static char *decode_err(const char *text)
{
	json_t *doc = json_loads(text, 0, NULL);
	struct tm_sample s;
	char *err = NULL;

	assert_non_null(doc);
	if (telemetry_decode(doc, &s, &err) == WEFT_OK) {
		telemetry_sample_clear(&s);
		err = NULL;
	}
	json_decref(doc);
	return err;
}

static double num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	assert_true(json_is_number(v));
	return json_number_value(v);
}

static void test_points_sum_over_proxies(void **state)
{
	struct telemetry *t = mk(0, 0);
	json_t *doc, *pts, *p;

	(void)state;
	/* two instances of api on two nodes, one interval each: 100 + 50
	 * requests in 10 s, 3 of them 5xx, 2 denied */
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"api-1-sidecar\", \"Service\": \"api\","
	       " \"Inbound\": {\"Requests\": 100, \"Responses\": {\"2xx\": 97, \"4xx\": 1, \"5xx\": 2},"
	       " \"Denied\": 2, \"LatencyBuckets\": [[0.001, 90], [0.005, 100], [\"+Inf\", 100]]}}]}",
	    T0 + 10000);
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"api-2-sidecar\", \"Service\": \"api\","
	       " \"Mesh\": \"default\", \"Inbound\": {\"Requests\": 50, \"Responses\": {\"2xx\": 49,"
	       " \"5xx\": 1}, \"LatencyBuckets\": [[0.001, 50], [\"+Inf\", 50]]}}]}",
	    T0 + 10020);
	doc = telemetry_service_json(t, "default", "api", T0 + 10500);
	assert_string_equal(json_string_value(json_object_get(doc, "Interval")), "10s");
	pts = json_object_get(doc, "Points");
	assert_int_equal(json_array_size(pts), 1);
	p = json_array_get(pts, 0);
	assert_string_equal(json_string_value(json_object_get(p, "Time")), "2026-11-26T10:00:00Z");
	assert_true(fabs(num(p, "RequestRate") - 15.0) < 1e-9);
	assert_true(fabs(num(p, "SuccessRate") - 147.0 / 150.0) < 1e-9);
	assert_int_equal(json_integer_value(json_object_get(p, "Denied")), 2);
	/* merged: 140 at <= 1 ms, 10 at <= 5 ms, which is the bucket (2.5, 5]
	 * ms of ours: rank 148.5 is 8.5/10 of the way through it */
	assert_true(fabs(num(p, "P99Ms") - (2.5 + 2.5 * 8.5 / 10.0)) < 1e-3);
	json_decref(doc);
	/* another service, and one nobody reported: empty */
	doc = telemetry_service_json(t, "default", "nobody", T0 + 10500);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 0);
	json_decref(doc);
	doc = telemetry_service_json(t, "other-mesh", "api", T0 + 10500);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 0);
	json_decref(doc);
	telemetry_free(t);
}

static void test_no_request_is_null(void **state)
{
	struct telemetry *t = mk(0, 0);
	json_t *doc, *p;

	(void)state;
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"a\", \"Service\": \"api\","
	       " \"Inbound\": {\"Requests\": 0}}]}", T0 + 10000);
	doc = telemetry_service_json(t, "default", "api", T0 + 10000);
	p = json_array_get(json_object_get(doc, "Points"), 0);
	assert_non_null(p);
	assert_true(num(p, "RequestRate") == 0);
	assert_true(json_is_null(json_object_get(p, "SuccessRate")));
	assert_true(json_is_null(json_object_get(p, "P99Ms")));
	json_decref(doc);
	telemetry_free(t);
}

static void test_quantile(void **state)
{
	uint64_t b[TELEMETRY_NBUCKETS] = { 0 };

	(void)state;
	assert_true(telemetry_quantile(b, 0.99) < 0);
	/* all in the first bucket: interpolated from 0 */
	b[0] = 100;
	assert_true(fabs(telemetry_quantile(b, 0.99) - 0.0005 * 0.99) < 1e-12);
	assert_true(fabs(telemetry_quantile(b, 0.5) - 0.0005 * 0.5) < 1e-12);
	/* p99 beyond the last finite bound: that bound */
	memset(b, 0, sizeof(b));
	b[0] = 98;
	b[TELEMETRY_NBUCKETS - 1] = 2;
	assert_true(telemetry_quantile(b, 0.99) == 10.0);
	/* exactly at a bucket's top */
	memset(b, 0, sizeof(b));
	b[3] = 99;   /* (2.5, 5] ms */
	b[4] = 1;    /* (5, 10] ms */
	assert_true(fabs(telemetry_quantile(b, 0.99) - 0.005) < 1e-12);
}

static void test_buckets_of_other_bounds(void **state)
{
	struct telemetry *t = mk(0, 0);
	json_t *doc, *p;

	(void)state;
	/* 0.003 s is no bound of ours: it counts in (2.5, 5] ms */
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"a\", \"Service\": \"api\","
	       " \"Inbound\": {\"Requests\": 10, \"Responses\": {\"2xx\": 10},"
	       " \"LatencyBuckets\": [[0.003, 10]]}}]}", T0 + 10000);
	doc = telemetry_service_json(t, "default", "api", T0 + 10000);
	p = json_array_get(json_object_get(doc, "Points"), 0);
	assert_true(num(p, "P99Ms") > 2.5 && num(p, "P99Ms") <= 5.0);
	json_decref(doc);
	telemetry_free(t);
}

static void test_ring_keeps_the_last_hour(void **state)
{
	struct telemetry *t = mk(0, 0);
	json_t *doc, *pts;
	char body[256];

	(void)state;
	/* one sample every 10 s for 2 hours: 720 intervals, request count i */
	for (int i = 1; i <= 720; i++) {
		snprintf(body, sizeof(body), "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"a\","
			 " \"Service\": \"api\", \"Inbound\": {\"Requests\": %d}}]}", i * 10);
		put(t, body, T0 + (int64_t)i * 10000 + 5);
	}
	doc = telemetry_service_json(t, "default", "api", T0 + 720 * 10000 + 5);
	pts = json_object_get(doc, "Points");
	/* the last hour: 360 slots with the current one (still empty), oldest
	 * first, 10 s apart */
	assert_int_equal(json_array_size(pts), 359);
	assert_true(num(json_array_get(pts, 358), "RequestRate") == 720);
	assert_true(num(json_array_get(pts, 0), "RequestRate") == 362);
	assert_string_equal(json_string_value(json_object_get(json_array_get(pts, 358), "Time")),
			    "2026-11-26T11:59:50Z");
	json_decref(doc);
	/* an hour later, nothing is left */
	doc = telemetry_service_json(t, "default", "api", T0 + 720 * 10000 + 3600 * 1000 + 10000);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 0);
	json_decref(doc);
	telemetry_free(t);
}

static void test_edges_and_neighbours(void **state)
{
	struct telemetry *t = mk(0, 0);
	json_t *doc, *e;

	(void)state;
	/* web's proxy called api 100 times (4 5xx) and db 0 times in 10 s */
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"web-1\", \"Service\": \"web\","
	       " \"Inbound\": {\"Requests\": 1}, \"Upstreams\": ["
	       " {\"Service\": \"api\", \"Requests\": 100, \"Responses\": {\"2xx\": 96, \"5xx\": 4}},"
	       " {\"Service\": \"db\", \"Requests\": 0}]}]}", T0 + 10000);
	doc = telemetry_edges_json(t, "default", T0 + 10000);
	assert_int_equal(json_array_size(doc), 1);   /* no call to db: no edge */
	e = json_array_get(doc, 0);
	assert_string_equal(json_string_value(json_object_get(e, "Source")), "web");
	assert_string_equal(json_string_value(json_object_get(e, "Destination")), "api");
	assert_true(fabs(num(e, "RequestRate") - 10.0) < 1e-9);
	assert_true(fabs(num(e, "SuccessRate") - 0.96) < 1e-9);
	assert_string_equal(json_string_value(json_object_get(e, "LastSeen")), "2026-11-26T10:00:10Z");
	json_decref(doc);
	doc = telemetry_service_json(t, "default", "api", T0 + 10000);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 0);
	e = json_array_get(json_object_get(doc, "Downstreams"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "Service")), "web");
	assert_int_equal(json_array_size(json_object_get(doc, "Upstreams")), 0);
	json_decref(doc);
	doc = telemetry_service_json(t, "default", "web", T0 + 10000);
	e = json_array_get(json_object_get(doc, "Upstreams"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "Service")), "api");
	json_decref(doc);
	/* another mesh sees none; 5 minutes later neither does this one */
	doc = telemetry_edges_json(t, "other", T0 + 10000);
	assert_int_equal(json_array_size(doc), 0);
	json_decref(doc);
	doc = telemetry_edges_json(t, "default", T0 + 10000 + 300 * 1000 + 1);
	assert_int_equal(json_array_size(doc), 0);
	json_decref(doc);
	telemetry_free(t);
}

static void test_bounds_drop_least_recent(void **state)
{
	struct telemetry *t = mk(3, 2);
	char body[512];
	json_t *doc;

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\","
			 " \"Service\": \"s%d\", \"Inbound\": {\"Requests\": 1}, \"Upstreams\": "
			 "[{\"Service\": \"d%d\", \"Requests\": 1}]}]}", i, i);
		put(t, body, T0 + 10000 + i);
	}
	assert_int_equal(telemetry_service_count(t), 3);
	assert_int_equal(telemetry_edge_count(t), 2);
	/* s0 and s1 went first; s2..s4 stay */
	doc = telemetry_service_json(t, "default", "s1", T0 + 10010);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 0);
	json_decref(doc);
	doc = telemetry_service_json(t, "default", "s2", T0 + 10010);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 1);
	json_decref(doc);
	doc = telemetry_edges_json(t, "default", T0 + 10010);
	assert_int_equal(json_array_size(doc), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "Source")), "s3");
	assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "Source")), "s4");
	json_decref(doc);
	/* a service updated again is recent: s2 survives the next newcomer */
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"s2\"}]}",
	    T0 + 10020);
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"s5\"}]}",
	    T0 + 10030);
	doc = telemetry_service_json(t, "default", "s2", T0 + 10030);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 1);
	json_decref(doc);
	doc = telemetry_service_json(t, "default", "s3", T0 + 10030);
	assert_int_equal(json_array_size(json_object_get(doc, "Points")), 0);
	json_decref(doc);
	telemetry_free(t);
}

static void test_index_moves_on_topics(void **state)
{
	struct telemetry *t = mk(0, 0);
	struct hub *h = telemetry_hub(t);
	uint64_t before;

	(void)state;
	before = hub_index(h, "svc:default/api");
	assert_true(before >= 1);
	put(t, "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"w\", \"Service\": \"web\","
	       " \"Upstreams\": [{\"Service\": \"api\", \"Requests\": 1}]}]}", T0 + 10000);
	/* api's page (its downstreams), web's and the mesh's edges moved */
	assert_true(hub_index(h, "svc:default/api") > before);
	assert_true(hub_index(h, "svc:default/web") > before);
	assert_true(hub_index(h, "edges:default") > before);
	assert_int_equal(hub_index(h, "edges:other"), before);
	telemetry_free(t);
}

static void test_decode_errors_name_the_field(void **state)
{
	static const struct { const char *body, *err; } cases[] = {
		{ "[]", "body: must be a JSON object" },
		{ "{\"Proxies\": []}", "Interval: is required" },
		{ "{\"Interval\": \"soon\", \"Proxies\": []}", "Interval" },
		{ "{\"Interval\": \"0s\", \"Proxies\": []}", "Interval: must be from 1s to 1h" },
		{ "{\"Interval\": \"10s\"}", "Proxies: is required" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"Service\": \"a\"}]}", "Proxies[0].ProxyID" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a b\"}]}",
		  "Proxies[0].Service: \"a b\" is not a valid service name" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a\","
		  " \"Mesh\": \"Big\"}]}", "Proxies[0].Mesh" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a\","
		  " \"Inbound\": {\"Requests\": -1}}]}", "Proxies[0].Inbound.Requests" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a\","
		  " \"Inbound\": {\"Responses\": {\"2xx\": \"many\"}}}]}",
		  "Proxies[0].Inbound.Responses.2xx" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a\","
		  " \"Upstreams\": [{\"Service\": \"b\", \"LatencyBuckets\": [[0.1, 5], [0.2, 4]]}]}]}",
		  "Proxies[0].Upstreams[0].LatencyBuckets[1]: counts are cumulative" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a\","
		  " \"Upstreams\": [{\"Service\": \"b\", \"LatencyBuckets\": [[-1, 5]]}]}]}",
		  "Proxies[0].Upstreams[0].LatencyBuckets[0]: le must be" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a\","
		  " \"Upstreams\": [{\"Requests\": 1}]}]}", "Proxies[0].Upstreams[0].Service" },
		{ "{\"Interval\": \"10s\", \"Proxies\": [{\"ProxyID\": \"p\", \"Service\": \"a\","
		  " \"Upstreams\": {}}]}", "Proxies[0].Upstreams" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = decode_err(cases[i].body);

		if (err == NULL || strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err ? err : "(none)",
				 cases[i].err);
		free(err);
	}
}

static void test_decode_bounds(void **state)
{
	json_t *doc = json_object(), *proxies = json_array(), *ups = json_array(), *p;
	struct tm_sample s;
	char *err = NULL;

	(void)state;
	json_object_set_new(doc, "Interval", json_string("10s"));
	for (int i = 0; i < TELEMETRY_MAX_PROXIES + 1; i++)
		json_array_append_new(proxies, json_pack("{s:s, s:s}", "ProxyID", "p", "Service", "a"));
	json_object_set_new(doc, "Proxies", proxies);
	assert_int_equal(telemetry_decode(doc, &s, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Proxies: 1025 proxies, at most 1024"));
	free(err);
	err = NULL;
	json_array_remove(proxies, 0);
	assert_int_equal(telemetry_decode(doc, &s, &err), WEFT_OK);
	assert_int_equal(s.nproxies, TELEMETRY_MAX_PROXIES);
	telemetry_sample_clear(&s);
	for (int i = 0; i < TELEMETRY_MAX_UPSTREAMS + 1; i++)
		json_array_append_new(ups, json_pack("{s:s}", "Service", "b"));
	p = json_array_get(proxies, 3);
	json_object_set_new(p, "Upstreams", ups);
	assert_int_equal(telemetry_decode(doc, &s, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Proxies[3].Upstreams: 1025 upstreams, at most 1024"));
	free(err);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_points_sum_over_proxies),
		cmocka_unit_test(test_no_request_is_null),
		cmocka_unit_test(test_quantile),
		cmocka_unit_test(test_buckets_of_other_bounds),
		cmocka_unit_test(test_ring_keeps_the_last_hour),
		cmocka_unit_test(test_edges_and_neighbours),
		cmocka_unit_test(test_bounds_drop_least_recent),
		cmocka_unit_test(test_index_moves_on_topics),
		cmocka_unit_test(test_decode_errors_name_the_field),
		cmocka_unit_test(test_decode_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
