/* The hub wakes a waiter for its own topics only, on deadline, and once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "hub.h"
#include "util.h"

struct probe {
	struct hub_waiter w;
	_Atomic int woken;
	_Atomic int timed_out;
};

static void on_wake(struct hub_waiter *w, int timed_out)
{
	struct probe *p = w->owner;

	p->woken++;
	p->timed_out = timed_out;
}

static void probe_init(struct probe *p)
{
	p->w.wake = on_wake;
	p->w.owner = p;
	p->woken = 0;
	p->timed_out = 0;
}

static void publish1(struct hub *h, const char *topic, uint64_t idx)
{
	const char *t[1] = { topic };
	uint64_t i[1] = { idx };

	hub_publish(h, t, i, 1);
}

static void test_unknown_topic_has_base_index(void **state)
{
	struct hub *h = hub_new(7);

	(void)state;
	assert_int_equal(hub_index(h, "svc:none"), 7);
	publish1(h, "svc:web", 9);
	assert_int_equal(hub_index(h, "svc:web"), 9);
	publish1(h, "svc:web", 8);      /* never goes backwards */
	assert_int_equal(hub_index(h, "svc:web"), 9);
	hub_free(h);
}

static void test_wakes_only_for_its_topic(void **state)
{
	struct hub *h = hub_new(1);
	struct probe p;
	const char *topics[] = { "svc:web" };

	(void)state;
	probe_init(&p);
	assert_int_equal(hub_wait(h, &p.w, topics, 1, 1, now_mono_ms() + 60000), 0);
	assert_int_equal(hub_waiting(h), 1);
	publish1(h, "svc:api", 2);
	assert_int_equal(p.woken, 0);
	publish1(h, "svc:web", 3);
	assert_int_equal(p.woken, 1);
	assert_int_equal(p.timed_out, 0);
	assert_int_equal(hub_waiting(h), 0);
	publish1(h, "svc:web", 4);      /* disarmed: not woken twice */
	assert_int_equal(p.woken, 1);
	hub_free(h);
}

static void test_already_moved_does_not_arm(void **state)
{
	struct hub *h = hub_new(1);
	struct probe p;
	const char *topics[] = { "kv:a/" };

	(void)state;
	probe_init(&p);
	publish1(h, "kv:a/", 5);
	assert_int_equal(hub_wait(h, &p.w, topics, 1, 4, now_mono_ms() + 60000), 1);
	assert_int_equal(hub_waiting(h), 0);
	assert_int_equal(p.woken, 0);
	hub_free(h);
}

static void test_deadline_wakes_in_order(void **state)
{
	struct hub *h = hub_new(1);
	struct probe a, b;
	const char *topics[] = { "nodes" };
	int64_t now = now_mono_ms();

	(void)state;
	probe_init(&a);
	probe_init(&b);
	assert_int_equal(hub_wait(h, &a.w, topics, 1, 1, now + 300), 0);
	assert_int_equal(hub_wait(h, &b.w, topics, 1, 1, now + 50), 0);
	for (int i = 0; i < 100 && !b.woken; i++)
		usleep(10000);
	assert_int_equal(b.woken, 1);
	assert_int_equal(b.timed_out, 1);
	assert_int_equal(a.woken, 0);
	for (int i = 0; i < 100 && !a.woken; i++)
		usleep(10000);
	assert_int_equal(a.woken, 1);
	assert_true(now_mono_ms() - now >= 300);
	hub_free(h);
}

static void test_cancel_and_wake_all(void **state)
{
	struct hub *h = hub_new(1);
	struct probe a, b;
	const char *topics[] = { "svc:x", "node:y" };

	(void)state;
	probe_init(&a);
	probe_init(&b);
	assert_int_equal(hub_wait(h, &a.w, topics, 2, 1, now_mono_ms() + 60000), 0);
	assert_int_equal(hub_wait(h, &b.w, topics, 2, 1, now_mono_ms() + 60000), 0);
	assert_int_equal(hub_cancel(h, &a.w), 1);
	assert_int_equal(hub_cancel(h, &a.w), 0);
	publish1(h, "node:y", 2);       /* the second topic wakes b */
	assert_int_equal(a.woken, 0);
	assert_int_equal(b.woken, 1);
	probe_init(&b);
	assert_int_equal(hub_wait(h, &b.w, topics, 1, 2, now_mono_ms() + 60000), 0);
	hub_wake_all(h);
	assert_int_equal(b.woken, 1);
	assert_int_equal(b.timed_out, 1);
	/* After wake_all the hub refuses to park anything (shutdown). */
	assert_int_equal(hub_wait(h, &a.w, topics, 1, 2, now_mono_ms() + 60000), 1);
	hub_free(h);
}

static void test_many_waiters(void **state)
{
	enum { N = 5000 };
	struct hub *h = hub_new(1);
	struct probe *p = calloc(N, sizeof(*p));
	char names[4][16] = { "svc:a", "svc:b", "svc:c", "svc:d" };
	int woken = 0;

	(void)state;
	for (int i = 0; i < N; i++) {
		const char *t[1] = { names[i % 4] };
		probe_init(&p[i]);
		assert_int_equal(hub_wait(h, &p[i].w, t, 1, 1, now_mono_ms() + 60000 + i), 0);
	}
	publish1(h, "svc:c", 2);
	for (int i = 0; i < N; i++)
		woken += p[i].woken;
	assert_int_equal(woken, N / 4);
	assert_int_equal(hub_waiting(h), N - N / 4);
	hub_free(h);   /* wakes the rest */
	woken = 0;
	for (int i = 0; i < N; i++)
		woken += p[i].woken;
	assert_int_equal(woken, N);
	free(p);
}

/* Idle topics are forgotten past a bound; their indexes become the floor, so
 * a forgotten topic never reports an index lower than its last write. */
static void test_idle_topics_are_bounded(void **state)
{
	struct hub *h = hub_new(1);
	struct probe p;
	const char *keep[] = { "kv:keep" };
	char name[32];

	(void)state;
	probe_init(&p);
	assert_int_equal(hub_wait(h, &p.w, keep, 1, 1, now_mono_ms() + 60000), 0);
	for (int i = 0; i < 200000; i++) {
		snprintf(name, sizeof(name), "kv:key-%d", i);
		publish1(h, name, 10 + (uint64_t)i);
	}
	assert_true(hub_topic_count(h) <= 65536 + 8);
	assert_int_equal(p.woken, 0);              /* the watched topic survived */
	assert_true(hub_index(h, "kv:key-5") >= 15);
	publish1(h, "kv:keep", 300000);
	assert_int_equal(p.woken, 1);
	hub_free(h);
}

/* A waiter may watch many topics (a proxy's snapshot watches several per
 * upstream): a write to the last one wakes it, and only once. */
static void test_many_topics_per_waiter(void **state)
{
	struct hub *h = hub_new(1);
	struct probe p, q;
	static char names[300][32];
	const char *topics[300];

	(void)state;
	for (int i = 0; i < 300; i++) {
		snprintf(names[i], sizeof(names[i]), "svc:s%d", i);
		topics[i] = names[i];
	}
	probe_init(&p);
	probe_init(&q);
	assert_int_equal(hub_wait(h, &p.w, topics, 300, 1, now_mono_ms() + 60000), 0);
	assert_int_equal(hub_wait(h, &q.w, topics, 300, 1, now_mono_ms() + 60000), 0);
	publish1(h, "svc:other", 2);
	assert_int_equal(p.woken, 0);
	publish1(h, "svc:s299", 3);
	assert_int_equal(p.woken, 1);
	assert_int_equal(q.woken, 1);
	publish1(h, "svc:s0", 4);
	assert_int_equal(p.woken, 1);
	assert_int_equal(hub_waiting(h), 0);
	/* re-armed, then cancelled: its links go with it */
	assert_int_equal(hub_wait(h, &p.w, topics, 300, 4, now_mono_ms() + 60000), 0);
	assert_int_equal(hub_cancel(h, &p.w), 1);
	hub_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_topic_has_base_index),
		cmocka_unit_test(test_wakes_only_for_its_topic),
		cmocka_unit_test(test_already_moved_does_not_arm),
		cmocka_unit_test(test_deadline_wakes_in_order),
		cmocka_unit_test(test_cancel_and_wake_all),
		cmocka_unit_test(test_many_waiters),
		cmocka_unit_test(test_idle_topics_are_bounded),
		cmocka_unit_test(test_many_topics_per_waiter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
