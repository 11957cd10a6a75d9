/* The reply cache serves a body only at the exact index it was cached at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rcache.h"

static void hit_only_at_the_same_index(void **state)
{
	struct rcache *c = rcache_new(1 << 20, 1 << 16);
	struct rcache_stats st;
	size_t len = 0;
	char *got;

	(void)state;
	assert_null(rcache_get(c, "catalog/service/web", 7, &len));
	rcache_put(c, "catalog/service/web", 7, "[1]", 3);
	got = rcache_get(c, "catalog/service/web", 7, &len);
	assert_non_null(got);
	assert_int_equal(len, 3);
	assert_string_equal(got, "[1]");
	free(got);
	/* The topic moved: the entry is stale, never served. */
	assert_null(rcache_get(c, "catalog/service/web", 8, &len));
	assert_null(rcache_get(c, "catalog/service/web", 6, &len));
	assert_null(rcache_get(c, "catalog/service/api", 7, &len));
	rcache_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, 3);
	rcache_free(c);
}

static void newer_entry_is_kept(void **state)
{
	struct rcache *c = rcache_new(1 << 20, 1 << 16);
	size_t len = 0;
	char *got;

	(void)state;
	rcache_put(c, "k", 9, "new", 3);
	rcache_put(c, "k", 8, "old", 3);     /* a slower reader finishing late */
	assert_null(rcache_get(c, "k", 8, &len));
	got = rcache_get(c, "k", 9, &len);
	assert_string_equal(got, "new");
	free(got);
	rcache_put(c, "k", 10, "newer", 5);
	got = rcache_get(c, "k", 10, &len);
	assert_string_equal(got, "newer");
	free(got);
	rcache_free(c);
}

static void bounded_in_bytes(void **state)
{
	struct rcache *c = rcache_new(100, 60);
	struct rcache_stats st;
	char body[80], key[32];
	size_t len = 0;

	(void)state;
	memset(body, 'x', sizeof(body));
	rcache_put(c, "big", 1, body, 61);   /* over max_entry: not cached */
	assert_null(rcache_get(c, "big", 1, &len));
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		rcache_put(c, key, 1, body, 30);
		rcache_stats(c, &st);
		assert_true(st.bytes <= 100);
	}
	/* The last one put is there. */
	free(rcache_get(c, "key-9", 1, &len));
	assert_int_equal(len, 30);
	rcache_free(c);
}

static void null_cache_is_a_miss(void **state)
{
	size_t len = 0;

	(void)state;
	rcache_put(NULL, "k", 1, "v", 1);
	assert_null(rcache_get(NULL, "k", 1, &len));
	rcache_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hit_only_at_the_same_index),
		cmocka_unit_test(newer_entry_is_kept),
		cmocka_unit_test(bounded_in_bytes),
		cmocka_unit_test(null_cache_is_a_miss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
