/* px_cluster: weighted balancing (smooth round robin exactly, random and
 * least request by distribution, ring hash stable and minimally remapped),
 * passive health (ejection, return, longer ejections, the cap,
 * MaxEjectionPercent, panic), critical endpoints, avoid, state kept across
 * updates, removed endpoints living while referenced, the retry budget and
 * the hash's values. Seeded: every run draws the same numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "px_cluster.h"

#define MAX_EPS 16
#define ID(svc) "spiffe://td1.weft/ns/default/dc/dc1/svc/" svc

/* An upstream under test: endpoints 10.0.0.1 .. 10.0.0.n, port 8080. */
struct up {
	struct px_upstream u;
	struct px_endpoint e[MAX_EPS];
	char addr[MAX_EPS][16];
};

static void up_init(struct up *t, enum px_lb_policy policy, size_t n, const uint32_t *weights)
{
	memset(t, 0, sizeof(*t));
	t->u.name = "api";
	t->u.service = "api";
	t->u.lb_policy = policy;
	t->u.hash_header = policy == PX_LB_RING_HASH ? "x-user" : NULL;
	t->u.timeouts = (struct px_timeouts){ .connect_ms = 5000, .idle_ms = 300000, .request_ms = 15000 };
	t->u.retries = (struct px_retries){ .attempts = 2, .on = PX_RETRY_CONNECT_FAILURE,
					    .budget_percent = 20, .min_retry_concurrency = 3 };
	t->u.passive_health = (struct px_passive_health){ .consecutive_failures = 3,
							  .base_ejection_ms = 1000,
							  .max_ejection_percent = 100 };
	t->u.n_endpoints = n;
	t->u.endpoints = t->e;
	for (size_t i = 0; i < n; i++) {
		snprintf(t->addr[i], sizeof(t->addr[i]), "10.0.0.%u", (unsigned)(i + 1) & 0xff);
		t->e[i] = (struct px_endpoint){ .address = t->addr[i], .port = 8080,
						.weight = weights ? weights[i] : 1, .zone = "",
						.spiffe_id = ID("api"), .health = PX_HEALTH_PASSING };
	}
}

static struct px_cluster *cluster(struct up *t)
{
	struct px_cluster *c;
	char *err = NULL;

	assert_int_equal(px_cluster_new(&c, "api", &err), WEFT_OK);
	px_cluster_seed(c, 42);
	assert_int_equal(px_cluster_update(c, &t->u, &err), WEFT_OK);
	assert_null(err);
	return c;
}

/* Index (0-based) of the endpoint picked, its reference dropped. */
static int pick(struct px_cluster *c, uint64_t hash, bool has_hash, const struct px_ep *avoid, uint64_t now)
{
	struct px_ep *ep = px_cluster_pick(c, hash, has_hash, avoid, now);
	int i;

	if (ep == NULL)
		return -1;
	i = (int)(ntohl(px_ep_addr(ep)->sin_addr.s_addr) & 0xff) - 1;
	px_ep_unref(ep);
	return i;
}

/* The endpoint of index i, with a new reference: picked (at now) until
 * it comes. */
static struct px_ep *ep_at(struct px_cluster *c, int i, uint64_t now)
{
	for (int k = 0; k < 10000; k++) {
		struct px_ep *ep = px_cluster_pick(c, 0, false, NULL, now);

		assert_non_null(ep);
		if ((int)(ntohl(px_ep_addr(ep)->sin_addr.s_addr) & 0xff) - 1 == i)
			return ep;
		px_ep_unref(ep);
	}
	fail_msg("endpoint %d never picked", i);
	return NULL;
}

static struct px_ep *ep_of(struct px_cluster *c, int i)
{
	return ep_at(c, i, 0);
}

static void assert_share(unsigned got, unsigned total, double want, double tol)
{
	double share = (double)got / total;

	if (share < want - tol || share > want + tol)
		fail_msg("share %.4f, want %.4f +- %.4f", share, want, tol);
}

static void test_update_and_identity(void **state)
{
	struct up t;
	struct px_cluster *c;
	struct px_ep *ep;
	char *err = NULL;

	up_init(&t, PX_LB_ROUND_ROBIN, 2, NULL);
	c = cluster(&t);
	assert_int_equal(px_cluster_size(c), 2);
	assert_string_equal(px_cluster_name(c), "api");
	assert_int_equal(px_cluster_attempts(c), 2);
	assert_int_equal(px_cluster_timeouts(c)->connect_ms, 5000);
	assert_null(px_cluster_hash_header(c));
	ep = ep_of(c, 1);
	assert_string_equal(px_ep_name(ep), "10.0.0.2:8080");
	assert_int_equal(ntohs(px_ep_addr(ep)->sin_port), 8080);
	assert_int_equal(px_ep_addr(ep)->sin_family, AF_INET);
	assert_string_equal(px_ep_spiffe_id(ep), ID("api"));
	assert_string_equal(px_ep_sni(ep), "api.default.dc1.td1.weft");
	assert_null(*px_ep_slot(ep));
	assert_false(px_ep_removed(ep));

	/* IPv6 or a name: refused, naming the endpoint; the old state stays */
	t.e[0].address = "::1";
	t.u.n_endpoints = 1;
	assert_int_equal(px_cluster_update(c, &t.u, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Endpoints[0].Address"));
	assert_non_null(strstr(err, "::1"));
	free(err);
	err = NULL;
	t.e[0].address = t.addr[0];
	t.e[1].address = "api.internal";
	t.u.n_endpoints = 2;
	assert_int_equal(px_cluster_update(c, &t.u, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "Endpoints[1].Address"));
	free(err);
	assert_int_equal(px_cluster_size(c), 2);
	assert_false(px_ep_removed(ep));
	assert_int_not_equal(pick(c, 0, false, NULL, 0), -1);

	/* an ID that is not a service's has no SNI */
	t.e[1].address = t.addr[1];
	t.e[1].spiffe_id = "spiffe://td1.weft/agent/x";
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_string_equal(px_ep_sni(ep), "");
	assert_string_equal(px_ep_spiffe_id(ep), "spiffe://td1.weft/agent/x");

	/* ring_hash keeps its header */
	t.u.lb_policy = PX_LB_RING_HASH;
	t.u.hash_header = "x-user";
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_string_equal(px_cluster_hash_header(c), "x-user");
	px_ep_unref(ep);
	px_cluster_free(c);
}

static void test_round_robin_exact(void **state)
{
	static const uint32_t w1[] = { 5, 1, 1 }, w2[] = { 3, 2, 1 };
	static const int seq[] = { 0, 0, 1, 0, 2, 0, 0 };
	unsigned n[3] = { 0 };
	struct up t;
	struct px_cluster *c;

	/* nginx's smooth sequence for 5, 1, 1, twice over */
	up_init(&t, PX_LB_ROUND_ROBIN, 3, w1);
	c = cluster(&t);
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < 7; i++)
			assert_int_equal(pick(c, 0, false, NULL, 0), seq[i]);
	px_cluster_free(c);

	/* exact shares over 6000 picks */
	up_init(&t, PX_LB_ROUND_ROBIN, 3, w2);
	c = cluster(&t);
	for (int i = 0; i < 6000; i++)
		n[pick(c, 0, false, NULL, 0)]++;
	assert_int_equal(n[0], 3000);
	assert_int_equal(n[1], 2000);
	assert_int_equal(n[2], 1000);
	px_cluster_free(c);
}

static void test_random_weighted(void **state)
{
	static const uint32_t w[] = { 1, 2, 7 };
	unsigned n[3] = { 0 };
	struct up t;
	struct px_cluster *c;

	up_init(&t, PX_LB_RANDOM, 3, w);
	c = cluster(&t);
	for (int i = 0; i < 10000; i++)
		n[pick(c, 0, false, NULL, 0)]++;
	assert_share(n[0], 10000, 0.1, 0.02);
	assert_share(n[1], 10000, 0.2, 0.02);
	assert_share(n[2], 10000, 0.7, 0.02);
	px_cluster_free(c);
}

static void test_least_request(void **state)
{
	static const uint32_t w[] = { 1, 3 };
	unsigned n[3] = { 0 };
	struct up t;
	struct px_cluster *c;
	struct px_ep *a, *b;

	/* idle: by weight */
	up_init(&t, PX_LB_LEAST_REQUEST, 2, w);
	c = cluster(&t);
	for (int i = 0; i < 10000; i++)
		n[pick(c, 0, false, NULL, 0)]++;
	assert_share(n[0], 10000, 0.25, 0.02);
	/* loaded: fewer requests per unit of weight wins */
	a = ep_of(c, 0);
	b = ep_of(c, 1);
	px_ep_request_begin(a);              /* 1/1 against 2/3: b */
	px_ep_request_begin(b);
	px_ep_request_begin(b);
	for (int i = 0; i < 100; i++)
		assert_int_equal(pick(c, 0, false, NULL, 0), 1);
	px_ep_request_begin(b);              /* 1/1 against 4/3: a */
	px_ep_request_begin(b);
	for (int i = 0; i < 100; i++)
		assert_int_equal(pick(c, 0, false, NULL, 0), 0);
	px_ep_request_end(b);
	px_ep_request_end(b);
	px_ep_request_end(b);
	px_ep_request_end(b);
	px_ep_request_end(a);
	px_ep_unref(a);
	px_ep_unref(b);
	px_cluster_free(c);

	/* three equal endpoints, one busy: never chosen (always compared
	 * against an idle one) */
	up_init(&t, PX_LB_LEAST_REQUEST, 3, NULL);
	c = cluster(&t);
	a = ep_of(c, 2);
	px_ep_request_begin(a);
	memset(n, 0, sizeof(n));
	for (int i = 0; i < 3000; i++)
		n[pick(c, 0, false, NULL, 0)]++;
	assert_int_equal(n[2], 0);
	assert_share(n[0], 3000, 0.5, 0.05);
	px_ep_request_end(a);
	px_ep_unref(a);
	px_cluster_free(c);
}

static void test_ring_hash(void **state)
{
	static const uint32_t w[] = { 1, 1, 2 };
	enum { KEYS = 10000 };
	static int before[KEYS];
	unsigned n[MAX_EPS] = { 0 }, moved = 0;
	struct up t, t2;
	struct px_cluster *c, *c2;
	char key[32];

	/* the same hash, the same endpoint; shares by weight */
	up_init(&t, PX_LB_RING_HASH, 3, w);
	c = cluster(&t);
	for (int k = 0; k < KEYS; k++) {
		int len = snprintf(key, sizeof(key), "user-%d", k);
		uint64_t h = px_cluster_hash(key, (size_t)len);
		int i = pick(c, h, true, NULL, 0);

		assert_int_equal(pick(c, h, true, NULL, 0), i);
		n[i]++;
	}
	assert_share(n[0], KEYS, 0.25, 0.06);
	assert_share(n[2], KEYS, 0.5, 0.06);
	/* no hash: random */
	memset(n, 0, sizeof(n));
	for (int k = 0; k < 4000; k++)
		n[pick(c, 0, false, NULL, 0)]++;
	assert_true(n[0] > 0 && n[1] > 0 && n[2] > 0);
	px_cluster_free(c);

	/* the order of the endpoints does not matter */
	up_init(&t, PX_LB_RING_HASH, 3, w);
	up_init(&t2, PX_LB_RING_HASH, 3, w);
	t2.e[0] = t.e[2];
	t2.e[2] = t.e[0];
	c = cluster(&t);
	c2 = cluster(&t2);
	for (int k = 0; k < 1000; k++) {
		uint64_t h = px_cluster_hash(key, (size_t)snprintf(key, sizeof(key), "k%d", k));

		assert_int_equal(pick(c, h, true, NULL, 0), pick(c2, h, true, NULL, 0));
	}
	px_cluster_free(c);
	px_cluster_free(c2);

	/* removing one of 10 remaps only its keys, about a tenth */
	up_init(&t, PX_LB_RING_HASH, 10, NULL);
	c = cluster(&t);
	for (int k = 0; k < KEYS; k++)
		before[k] = pick(c, px_cluster_hash(key, (size_t)snprintf(key, sizeof(key), "u%d", k)), true,
				 NULL, 0);
	t.e[3] = t.e[9];                     /* drop 10.0.0.4 */
	t.u.n_endpoints = 9;
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	for (int k = 0; k < KEYS; k++) {
		int now = pick(c, px_cluster_hash(key, (size_t)snprintf(key, sizeof(key), "u%d", k)), true,
			       NULL, 0);

		assert_int_not_equal(now, 3);
		if (now != before[k]) {
			assert_int_equal(before[k], 3);
			moved++;
		}
	}
	assert_share(moved, KEYS, 0.1, 0.04);
	px_cluster_free(c);
}

static void test_ring_hash_skips(void **state)
{
	struct up t;
	struct px_cluster *c;
	struct px_ep *ep;
	uint64_t h = px_cluster_hash("alice", 5);
	int home, next;

	up_init(&t, PX_LB_RING_HASH, 5, NULL);
	c = cluster(&t);
	home = pick(c, h, true, NULL, 0);
	/* avoid: the next one clockwise, the same each time */
	ep = ep_of(c, home);
	next = pick(c, h, true, ep, 0);
	assert_int_not_equal(next, home);
	assert_int_equal(pick(c, h, true, ep, 0), next);
	/* ejected: the next one too, until it returns */
	for (int i = 0; i < 2; i++)
		assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 0));
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, 0));
	assert_int_equal(pick(c, h, true, NULL, 10), next);
	assert_int_equal(pick(c, h, true, NULL, 1000), home);
	px_ep_unref(ep);
	px_cluster_free(c);
}

static void test_ejection(void **state)
{
	struct up t;
	struct px_cluster *c;
	struct px_ep *ep;
	unsigned n[4];

	up_init(&t, PX_LB_ROUND_ROBIN, 4, NULL);
	c = cluster(&t);
	ep = ep_of(c, 0);
	/* a success resets the count */
	assert_false(px_cluster_report(c, ep, PX_OUTCOME_CONNECT_FAILURE, 0));
	assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 0));
	assert_false(px_cluster_report(c, ep, PX_OUTCOME_SUCCESS, 0));
	assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 0));
	assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 0));
	assert_int_equal(px_cluster_ejected(c, 0), 0);
	/* the third in a row ejects, for 1 s */
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_CONNECT_FAILURE, 100));
	assert_int_equal(px_cluster_ejected(c, 100), 1);
	assert_int_equal(px_cluster_ejected(c, 1099), 1);
	assert_int_equal(px_cluster_ejected(c, 1100), 0);
	memset(n, 0, sizeof(n));
	for (int i = 0; i < 300; i++)
		n[pick(c, 0, false, NULL, 1099)]++;
	assert_int_equal(n[0], 0);
	assert_in_range(n[1], 98, 102);
	/* back at 1100 */
	memset(n, 0, sizeof(n));
	for (int i = 0; i < 400; i++)
		n[pick(c, 0, false, NULL, 1100)]++;
	assert_in_range(n[0], 96, 104);
	/* the second ejection lasts 2 s, the third 3 s */
	for (int i = 0; i < 2; i++)
		assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 2000));
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, 2000));
	assert_int_equal(px_cluster_ejected(c, 3999), 1);
	assert_int_equal(px_cluster_ejected(c, 4000), 0);
	memset(n, 0, sizeof(n));
	for (int i = 0; i < 40; i++)
		n[pick(c, 0, false, NULL, 4000)]++;
	assert_in_range(n[0], 8, 12);                          /* back */
	for (int i = 0; i < 2; i++)
		assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 5000));
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, 5000));
	assert_int_equal(px_cluster_ejected(c, 7999), 1);
	assert_int_equal(px_cluster_ejected(c, 8000), 0);
	/* failures while ejected do not extend it */
	for (int i = 0; i < 2; i++)
		assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 5000 + (uint64_t)i));
	assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 5002));
	assert_int_equal(px_cluster_ejected(c, 8000), 0);
	/* ConsecutiveFailures 0: off */
	t.u.passive_health.consecutive_failures = 0;
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	for (int i = 0; i < 50; i++)
		assert_false(px_cluster_report(c, ep, PX_OUTCOME_5XX, 9000));
	px_ep_unref(ep);
	px_cluster_free(c);
}

static void test_ejection_cap_and_decay(void **state)
{
	struct up t;
	struct px_cluster *c;
	struct px_ep *ep;
	uint64_t now = 0;

	/* base 200 s: the 2nd ejection would be 400 s, capped at 300 s */
	up_init(&t, PX_LB_ROUND_ROBIN, 2, NULL);
	t.u.passive_health.consecutive_failures = 1;
	t.u.passive_health.base_ejection_ms = 200000;
	c = cluster(&t);
	ep = ep_of(c, 0);
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, now));
	now += 200000;
	assert_int_equal(px_cluster_ejected(c, now), 0);
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, now));
	assert_int_equal(px_cluster_ejected(c, now + 299999), 1);
	assert_int_equal(px_cluster_ejected(c, now + 300000), 0);
	now += 300000;
	/* in for the cap since it came back: the next ejection is the first again */
	now += 300000;
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, now));
	assert_int_equal(px_cluster_ejected(c, now + 199999), 1);
	assert_int_equal(px_cluster_ejected(c, now + 200000), 0);
	px_ep_unref(ep);
	px_cluster_free(c);

	/* a base longer than the cap is the cap */
	up_init(&t, PX_LB_ROUND_ROBIN, 2, NULL);
	t.u.passive_health.consecutive_failures = 1;
	t.u.passive_health.base_ejection_ms = 3600000;
	c = cluster(&t);
	ep = ep_of(c, 0);
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, 0));
	assert_int_equal(px_cluster_ejected(c, 3599999), 1);
	assert_int_equal(px_cluster_ejected(c, 3600000), 0);
	assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, 3600000));
	assert_int_equal(px_cluster_ejected(c, 7199999), 1);
	assert_int_equal(px_cluster_ejected(c, 7200000), 0);
	px_ep_unref(ep);
	px_cluster_free(c);
}

/* Ejects endpoints 0, 1, ... of c in turn; returns how many were ejected. */
static size_t eject_all(struct px_cluster *c, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct px_ep *ep = ep_of(c, (int)i);

		k += px_cluster_report(c, ep, PX_OUTCOME_5XX, 0);
		px_ep_unref(ep);
	}
	return k;
}

static void test_max_ejection_percent(void **state)
{
	struct up t;
	struct px_cluster *c;

	/* 20% of 10: two */
	up_init(&t, PX_LB_RANDOM, 10, NULL);
	t.u.passive_health.consecutive_failures = 1;
	t.u.passive_health.max_ejection_percent = 20;
	c = cluster(&t);
	assert_int_equal(eject_all(c, 10), 2);
	assert_int_equal(px_cluster_ejected(c, 0), 2);
	px_cluster_free(c);
	/* 10% of 5: one, the one always allowed */
	up_init(&t, PX_LB_RANDOM, 5, NULL);
	t.u.passive_health.consecutive_failures = 1;
	t.u.passive_health.max_ejection_percent = 10;
	c = cluster(&t);
	assert_int_equal(eject_all(c, 5), 1);
	px_cluster_free(c);
	/* 0%: none */
	t.u.passive_health.max_ejection_percent = 0;
	c = cluster(&t);
	assert_int_equal(eject_all(c, 5), 0);
	px_cluster_free(c);
	/* a single endpoint is never ejected (nowhere else to go) */
	up_init(&t, PX_LB_RANDOM, 1, NULL);
	t.u.passive_health.consecutive_failures = 1;
	c = cluster(&t);
	assert_int_equal(eject_all(c, 1), 0);
	px_cluster_free(c);
}

static void test_panic_and_critical(void **state)
{
	static const enum px_lb_policy policies[] = { PX_LB_ROUND_ROBIN, PX_LB_LEAST_REQUEST,
						      PX_LB_RANDOM, PX_LB_RING_HASH };
	struct up t;
	struct px_cluster *c;
	unsigned n[3];

	for (size_t p = 0; p < 4; p++) {
		up_init(&t, policies[p], 3, NULL);
		t.u.passive_health.consecutive_failures = 1;
		/* critical: never */
		t.e[2].health = PX_HEALTH_CRITICAL;
		t.e[1].health = PX_HEALTH_WARNING;
		c = cluster(&t);
		memset(n, 0, sizeof(n));
		for (int k = 0; k < 600; k++)
			n[pick(c, px_cluster_hash((char *)&k, sizeof(k)), k & 1, NULL, 0)]++;
		assert_int_equal(n[2], 0);
		assert_true(n[0] > 0 && n[1] > 0);
		/* every non-critical one ejected: panic, still never the critical one */
		assert_int_equal(eject_all(c, 2), 2);
		memset(n, 0, sizeof(n));
		for (int k = 0; k < 600; k++)
			n[pick(c, px_cluster_hash((char *)&k, sizeof(k)), k & 1, NULL, 0)]++;
		assert_int_equal(n[2], 0);
		assert_true(n[0] > 0 && n[1] > 0);
		/* all critical: nothing */
		t.e[0].health = t.e[1].health = PX_HEALTH_CRITICAL;
		assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
		assert_int_equal(pick(c, 1, true, NULL, 0), -1);
		assert_int_equal(pick(c, 1, false, NULL, 0), -1);
		px_cluster_free(c);
	}
	/* no endpoints: nothing */
	up_init(&t, PX_LB_ROUND_ROBIN, 0, NULL);
	c = cluster(&t);
	assert_int_equal(pick(c, 0, false, NULL, 0), -1);
	px_cluster_free(c);
}

static void test_avoid(void **state)
{
	static const enum px_lb_policy policies[] = { PX_LB_ROUND_ROBIN, PX_LB_LEAST_REQUEST,
						      PX_LB_RANDOM, PX_LB_RING_HASH };
	struct up t;
	struct px_cluster *c;
	struct px_ep *ep;

	for (size_t p = 0; p < 4; p++) {
		up_init(&t, policies[p], 3, NULL);
		t.u.passive_health.consecutive_failures = 1;
		c = cluster(&t);
		ep = ep_of(c, 1);
		for (int k = 0; k < 300; k++)
			assert_int_not_equal(pick(c, px_cluster_hash((char *)&k, sizeof(k)), k & 1, ep, 0), 1);
		/* the others ejected: the avoided one (not ejected) rather than them */
		{
			struct px_ep *e0 = ep_of(c, 0), *e2 = ep_of(c, 2);

			assert_true(px_cluster_report(c, e0, PX_OUTCOME_5XX, 0));
			assert_true(px_cluster_report(c, e2, PX_OUTCOME_5XX, 0));
			for (int k = 0; k < 50; k++)
				assert_int_equal(pick(c, (uint64_t)k * 7919, k & 1, ep, 0), 1);
			/* all ejected (panic): avoid holds again */
			assert_true(px_cluster_report(c, ep, PX_OUTCOME_5XX, 0));
			for (int k = 0; k < 100; k++)
				assert_int_not_equal(pick(c, (uint64_t)k * 7919, k & 1, ep, 0), 1);
			px_ep_unref(e0);
			px_ep_unref(e2);
		}
		px_ep_unref(ep);
		px_cluster_free(c);
	}
	/* one endpoint: it, avoided or not */
	up_init(&t, PX_LB_ROUND_ROBIN, 1, NULL);
	c = cluster(&t);
	ep = ep_of(c, 0);
	assert_int_equal(pick(c, 0, false, ep, 0), 0);
	px_ep_unref(ep);
	px_cluster_free(c);
}

static void on_remove(struct px_ep *ep, void *ud)
{
	struct px_ep **seen = ud;

	assert_true(px_ep_removed(ep));
	for (; *seen != NULL; seen++)
		;
	*seen = ep;
}

static void test_update_keeps_state(void **state)
{
	struct px_ep *seen[MAX_EPS + 1] = { NULL };
	struct up t;
	struct px_cluster *c;
	struct px_ep *a, *b, *a2;
	unsigned n[3] = { 0 };

	up_init(&t, PX_LB_LEAST_REQUEST, 3, NULL);
	c = cluster(&t);
	px_cluster_set_on_remove(c, on_remove, seen);
	a = ep_of(c, 0);
	b = ep_of(c, 1);
	*px_ep_slot(b) = &n;
	px_ep_request_begin(a);
	px_ep_request_begin(a);
	assert_true(px_cluster_report(c, a, PX_OUTCOME_5XX, 0) == false);
	assert_false(px_cluster_report(c, a, PX_OUTCOME_5XX, 0));
	/* a new order, new weights, 10.0.0.2 gone, 10.0.0.5 new */
	t.e[1] = t.e[2];
	strcpy(t.addr[3], "10.0.0.5");
	t.e[2] = (struct px_endpoint){ .address = t.addr[3], .port = 8080, .weight = 1, .zone = "",
				       .spiffe_id = ID("api") };
	t.e[0].weight = 4;
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_int_equal(px_cluster_size(c), 3);
	/* b removed: reported once, still readable while referenced, never picked */
	assert_ptr_equal(seen[0], b);
	assert_null(seen[1]);
	assert_true(px_ep_removed(b));
	assert_string_equal(px_ep_name(b), "10.0.0.2:8080");
	assert_ptr_equal(*px_ep_slot(b), &n);
	px_ep_request_begin(b);              /* a request on it ends after the removal */
	px_ep_request_end(b);
	assert_false(px_cluster_report(c, b, PX_OUTCOME_5XX, 0));
	for (int k = 0; k < 1000; k++)
		assert_int_not_equal(pick(c, 0, false, NULL, 0), 1);
	/* a kept: its requests (2/4 loses to 0/1 every time) and its
	 * failure count */
	assert_false(px_ep_removed(a));
	for (int k = 0; k < 300; k++)
		assert_int_not_equal(pick(c, 0, false, NULL, 0), 0);
	assert_true(px_cluster_report(c, a, PX_OUTCOME_5XX, 0));   /* the third in a row */
	assert_int_equal(px_cluster_ejected(c, 0), 1);
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_int_equal(px_cluster_ejected(c, 0), 1);              /* ejection kept too */
	/* once back and idle, the same object, with its new weight 4 */
	px_ep_request_end(a);
	px_ep_request_end(a);
	a2 = ep_at(c, 0, 1000);
	assert_ptr_equal(a2, a);
	px_ep_unref(a2);
	for (int k = 0; k < 3000; k++) {
		int i = pick(c, 0, false, NULL, 1000);

		n[i == 4 ? 1 : i]++;
	}
	assert_share(n[0], 3000, 4.0 / 6, 0.03);
	px_ep_unref(a);
	px_ep_unref(b);                      /* freed here: ASan checks */
	px_cluster_free(c);                  /* reports the rest */
	assert_non_null(seen[1]);
	assert_non_null(seen[2]);
	assert_non_null(seen[3]);
	assert_null(seen[4]);
}

static void test_retry_budget(void **state)
{
	struct up t;
	struct px_cluster *c;
	struct px_ep *ep;
	int k;

	up_init(&t, PX_LB_ROUND_ROBIN, 2, NULL);
	c = cluster(&t);
	/* idle: MinRetryConcurrency (3) */
	for (k = 0; k < 3; k++)
		assert_true(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	px_cluster_retry_end(c);
	assert_true(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	for (k = 0; k < 3; k++)
		px_cluster_retry_end(c);
	/* 100 requests in flight: 20% of them */
	ep = ep_of(c, 0);
	for (k = 0; k < 100; k++)
		px_ep_request_begin(ep);
	for (k = 0; k < 20; k++)
		assert_true(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	/* 19 in flight: 3 (max(3, 19 * 20 / 100)) */
	for (k = 0; k < 81; k++)
		px_ep_request_end(ep);
	for (k = 0; k < 17; k++)
		px_cluster_retry_end(c);
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	for (k = 0; k < 19; k++)
		px_ep_request_end(ep);
	px_ep_request_end(ep);               /* one too many: no underflow */
	for (k = 0; k < 3; k++)
		px_cluster_retry_end(c);
	px_cluster_retry_end(c);
	/* Retries.On, Attempts, success */
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_5XX));
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_SUCCESS));
	t.u.retries.on = PX_RETRY_5XX;
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_true(px_cluster_retry_begin(c, PX_OUTCOME_5XX));
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	px_cluster_retry_end(c);
	t.u.retries.attempts = 0;
	t.u.retries.on = PX_RETRY_5XX | PX_RETRY_CONNECT_FAILURE;
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_5XX));
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_CONNECT_FAILURE));
	/* BudgetPercent 0, MinRetryConcurrency 0: none */
	t.u.retries = (struct px_retries){ .attempts = 1, .on = PX_RETRY_5XX };
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_5XX));
	/* requests on an endpoint removed since stop counting */
	t.u.retries = (struct px_retries){ .attempts = 1, .on = PX_RETRY_5XX, .budget_percent = 100 };
	for (k = 0; k < 5; k++)
		px_ep_request_begin(ep);
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_true(px_cluster_retry_begin(c, PX_OUTCOME_5XX));
	px_cluster_retry_end(c);
	t.e[0] = t.e[1];
	t.u.n_endpoints = 1;
	assert_int_equal(px_cluster_update(c, &t.u, NULL), WEFT_OK);
	assert_false(px_cluster_retry_begin(c, PX_OUTCOME_5XX));
	for (k = 0; k < 5; k++)
		px_ep_request_end(ep);
	px_ep_unref(ep);
	px_cluster_free(c);
}

static void test_hash(void **state)
{
	/* FNV-1a 64 then fmix64: fixed values, the same on every proxy */
	assert_true(px_cluster_hash("", 0) == 0xefd01f60ba992926ull);
	assert_true(px_cluster_hash("a", 1) == 0x82a2a958a9bece5bull);
	assert_true(px_cluster_hash("user-42", 7) == 0xa39532c7ab051e8dull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_update_and_identity),
		cmocka_unit_test(test_round_robin_exact),
		cmocka_unit_test(test_random_weighted),
		cmocka_unit_test(test_least_request),
		cmocka_unit_test(test_ring_hash),
		cmocka_unit_test(test_ring_hash_skips),
		cmocka_unit_test(test_ejection),
		cmocka_unit_test(test_ejection_cap_and_decay),
		cmocka_unit_test(test_max_ejection_percent),
		cmocka_unit_test(test_panic_and_critical),
		cmocka_unit_test(test_avoid),
		cmocka_unit_test(test_update_keeps_state),
		cmocka_unit_test(test_retry_budget),
		cmocka_unit_test(test_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
