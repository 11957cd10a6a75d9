/* The agent's side of telemetry: the /stats parser on what weft-proxy
 * really renders (px_stats), its refusals of bad input, and the deltas
 * between two scrapes (a restart is a new start, never a negative delta). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/telemetry.h"
#include "buf.h"
#include "err.h"
#include "prom.h"
#include "px_stats.h"

/* What a proxy with an inbound and two upstreams renders. */
static char *render(struct px_stats *s)
{
	struct px_stats *v[1] = { s };
	struct buf b;

	buf_init(&b, 1 << 22);
	assert_int_equal(px_stats_render(v, 1, 0, &b), 0);
	return buf_steal(&b);
}

static struct px_stats *proxy(void)
{
	struct px_stats *s = px_stats_new();

	assert_int_equal(px_stats_listener(s, "inbound"), 0);
	assert_int_equal(px_stats_listener(s, "outbound:api"), 1);
	assert_int_equal(px_stats_listener(s, "outbound:api-9191"), 2);
	return s;
}

static void parse_ok(const char *text, struct prom_stats *out)
{
	char *err = NULL;

	if (prom_parse(text, strlen(text), out, &err) != WEFT_OK)
		fail_msg("prom_parse: %s", err);
}

static void test_parses_what_the_proxy_renders(void **state)
{
	struct px_stats *s = proxy();
	const struct prom_listener *in, *up;
	struct prom_stats st;
	char *text;

	(void)state;
	for (int i = 0; i < 10; i++)
		px_stats_request(s, 0, 200, 800);      /* 0.8 ms */
	px_stats_request(s, 0, 503, 3000);
	px_stats_request(s, 0, 404, 20000);
	px_stats_request(s, 1, 200, 400);
	px_stats_denial(s, "spiffe://x/ns/default/dc/dc1/svc/evil", "web", "4c1e");
	px_stats_denial(s, "spiffe://x/ns/default/dc/dc1/svc/evil", "web", "4c1e");
	text = render(s);
	parse_ok(text, &st);
	in = prom_find(&st, "inbound");
	assert_non_null(in);
	assert_int_equal(in->responses[PROM_2XX], 10);
	assert_int_equal(in->responses[PROM_5XX], 1);
	assert_int_equal(in->responses[PROM_4XX], 1);
	assert_int_equal(in->nbuckets, PX_STATS_BUCKETS + 1);
	assert_true(isinf(in->le[PX_STATS_BUCKETS]));
	assert_true(in->le[0] == px_stats_bucket_le[0]);
	assert_int_equal(in->cum[1], 10);                   /* <= 1 ms */
	assert_int_equal(in->cum[PX_STATS_BUCKETS], 12);    /* +Inf */
	up = prom_find(&st, "outbound:api");
	assert_non_null(up);
	assert_int_equal(up->responses[PROM_2XX], 1);
	assert_non_null(prom_find(&st, "outbound:api-9191"));
	assert_int_equal(st.denials, 2);
	prom_stats_clear(&st);
	free(text);
	px_stats_free(s);
}

static void test_refuses_bad_input(void **state)
{
	static const char *const bad[] = {
		"weft_proxy_requests_total{listener=\"inbound\",code=\"2xx\"} -1\n",
		"weft_proxy_requests_total{listener=\"inbound\",code=\"2xx\"} many\n",
		"weft_proxy_requests_total{listener=\"inbound\",code=\"2xx} 1\n",
		"weft_proxy_requests_total{listener=\"inbound\" code=\"2xx\"} 1\n",
		"weft_proxy_requests_total{code=\"2xx\"} 1\n",
		"weft_proxy_request_duration_seconds_bucket{listener=\"a\",le=\"0.5\"} 3\n"
		"weft_proxy_request_duration_seconds_bucket{listener=\"a\",le=\"0.1\"} 4\n",
		"weft_proxy_request_duration_seconds_bucket{listener=\"a\",le=\"0.1\"} 3\n"
		"weft_proxy_request_duration_seconds_bucket{listener=\"a\",le=\"0.5\"} 2\n",
		"weft_proxy_request_duration_seconds_bucket{listener=\"a\",le=\"-3\"} 3\n",
		"weft_proxy_requests_total{listener=\"inbound\",code=\"2xx\"} NaN\n",
		"{} 1\n",
	};
	struct prom_stats st;
	char *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (prom_parse(bad[i], strlen(bad[i]), &st, &err) == WEFT_OK)
			fail_msg("case %zu parsed: %s", i, bad[i]);
		assert_non_null(strstr(err, "line "));
		free(err);
		err = NULL;
		prom_stats_clear(&st);
	}
	/* too many listeners */
	{
		struct buf b;

		buf_init(&b, 1 << 22);
		for (int i = 0; i <= PROM_MAX_LISTENERS; i++)
			buf_printf(&b, "weft_proxy_requests_total{listener=\"l%d\",code=\"2xx\"} 1\n", i);
		assert_int_equal(prom_parse(b.data, b.len, &st, &err), WEFT_ETOOBIG);
		free(err);
		err = NULL;
		prom_stats_clear(&st);
		buf_free(&b);
	}
	/* what it does not use is skipped, whatever it looks like */
	parse_ok("# HELP x y\nsomething_else{a=\"b\"} 12\nweft_proxy_workers 1\n\n", &st);
	assert_int_equal(st.n, 0);
	prom_stats_clear(&st);
	/* no newline at the end, CRLF, a timestamp */
	parse_ok("weft_proxy_requests_total{listener=\"inbound\",code=\"5xx\"} 7 1700000000\r\n"
		 "weft_proxy_requests_total{listener=\"inbound\",code=\"2xx\"} 3", &st);
	assert_int_equal(prom_find(&st, "inbound")->responses[PROM_5XX], 7);
	assert_int_equal(prom_find(&st, "inbound")->responses[PROM_2XX], 3);
	prom_stats_clear(&st);
}

static json_t *sample(struct px_stats *prev_s, struct prom_stats *prev, struct px_stats *s,
		      json_t *map)
{
	struct prom_stats cur;
	char *text = render(s);
	json_t *o;

	(void)prev_s;
	parse_ok(text, &cur);
	free(text);
	o = tele_proxy_json("web-sidecar-proxy", "web", "default", prev, &cur, map);
	prom_stats_clear(prev);
	*prev = cur;
	return o;
}

static json_int_t ival(json_t *o, const char *path)
{
	char *p = strdup(path), *save = NULL;
	json_t *v = o;

	for (char *k = strtok_r(p, ".", &save); k; k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	free(p);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void test_deltas_and_restarts(void **state)
{
	struct px_stats *s = proxy();
	struct prom_stats prev = { 0 };
	json_t *o, *ups, *map = json_pack("{s:s, s:s}", "api", "api", "api-9191", "api");
	json_t *b;

	(void)state;
	for (int i = 0; i < 5; i++)
		px_stats_request(s, 0, 200, 800);
	px_stats_request(s, 1, 500, 800);
	o = sample(NULL, &prev, s, map);     /* first sight: from the start */
	assert_int_equal(ival(o, "Inbound.Requests"), 5);
	assert_int_equal(ival(o, "Inbound.Responses.2xx"), 5);
	assert_int_equal(ival(o, "Inbound.Denied"), 0);
	json_decref(o);
	for (int i = 0; i < 3; i++)
		px_stats_request(s, 0, 200, 800);
	px_stats_request(s, 0, 502, 30000);
	px_stats_request(s, 2, 200, 800);
	px_stats_denial(s, "spiffe://x/ns/default/dc/dc1/svc/evil", "web", "");
	o = sample(NULL, &prev, s, map);
	assert_string_equal(json_string_value(json_object_get(o, "Mesh")), "default");
	assert_int_equal(ival(o, "Inbound.Requests"), 4);
	assert_int_equal(ival(o, "Inbound.Responses.2xx"), 3);
	assert_int_equal(ival(o, "Inbound.Responses.5xx"), 1);
	assert_int_equal(ival(o, "Inbound.Denied"), 1);
	b = json_object_get(json_object_get(o, "Inbound"), "LatencyBuckets");
	assert_int_equal(json_array_size(b), PX_STATS_BUCKETS + 1);
	assert_string_equal(json_string_value(json_array_get(json_array_get(b, PX_STATS_BUCKETS), 0)),
			    "+Inf");
	assert_int_equal(json_integer_value(json_array_get(json_array_get(b, PX_STATS_BUCKETS), 1)), 4);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(b, 1), 1)), 3);  /* <= 1 ms */
	/* both upstream listeners of api are reported under api: the second
	 * entry's Name is api-9191 */
	ups = json_object_get(o, "Upstreams");
	assert_int_equal(json_array_size(ups), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ups, 0), "Service")), "api");
	assert_int_equal(ival(json_array_get(ups, 0), "Requests"), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ups, 1), "Service")), "api");
	assert_int_equal(ival(json_array_get(ups, 1), "Requests"), 1);
	json_decref(o);
	/* the proxy restarts: its counters start again from zero */
	px_stats_free(s);
	s = proxy();
	px_stats_request(s, 0, 200, 800);
	px_stats_request(s, 0, 200, 800);
	o = sample(NULL, &prev, s, map);
	assert_int_equal(ival(o, "Inbound.Requests"), 2);
	assert_int_equal(ival(o, "Inbound.Denied"), 0);
	json_decref(o);
	/* without a map, the Name is the destination */
	o = sample(NULL, &prev, s, NULL);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(o, "Upstreams"), 1), "Service")), "api-9191");
	assert_int_equal(ival(o, "Inbound.Requests"), 0);
	json_decref(o);
	prom_stats_clear(&prev);
	json_decref(map);
	px_stats_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parses_what_the_proxy_renders),
		cmocka_unit_test(test_refuses_bad_input),
		cmocka_unit_test(test_deltas_and_restarts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
