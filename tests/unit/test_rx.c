/* rx: RE2-style patterns on glibc's POSIX regex, bounded for untrusted input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "rx.h"

static int matches(const char *pattern, const char *s, size_t len)
{
	regex_t re;
	char *err = NULL;
	int r;

	if (rx_compile(&re, pattern, strlen(pattern), NULL, &err) != WEFT_OK)
		fail_msg("%s: %s", pattern, err);
	r = rx_match(&re, s, len);
	regfree(&re);
	return r;
}

#define M(p, s) matches(p, s, strlen(s))

static void refused(const char *pattern, size_t len, const char *want)
{
	regex_t re;
	char *err = NULL;

	assert_int_equal(rx_compile(&re, pattern, len, NULL, &err), WEFT_EINVAL);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fail_msg("%s: \"%s\" lacks \"%s\"", pattern, err, want);
	free(err);
}

static void test_re2_syntax(void **state)
{
	(void)state;
	assert_true(M("^web-\\d+$", "web-12"));
	assert_false(M("^web-\\d+$", "web-x"));
	assert_true(M("^\\D+$", "abc"));
	assert_true(M("^[\\d.]+$", "1.2.3"));
	assert_true(M("^[\\w-]+$", "a_b-c9"));
	assert_false(M("^[\\w]+$", "a b"));
	assert_true(M("^a[\\s]b$", "a\tb"));
	assert_true(M("^[\\.\\*]+$", ".*"));
	assert_false(M("^[\\.]$", "\\"));       /* an escaped dot is only a dot */
	assert_true(M("(?i)^HeLLo$", "hello"));
	assert_true(M("^(?:ab)+$", "abab"));
	assert_true(M("\\bword\\b", "a word here"));
	assert_true(M("^[[:alpha:]]+$", "abc"));
	assert_true(M("^[]a]+$", "]a"));
	assert_true(M("^[^]a]$", "b"));
	assert_true(M("x+?y", "xxy"));
	assert_true(M("^a.{0,3}b$", "a12b"));
	/* unanchored, and over the whole length, NUL bytes included */
	assert_true(M("eb", "web"));
	assert_true(matches("b$", "a\0b", 3));
	assert_false(matches("^a$", "a\0b", 3));
}

static void test_refused(void **state)
{
	char big[RX_MAX_LEN + 2];

	(void)state;
	refused("(a)\\1", 5, "back-references are not supported");
	refused("a**", 3, "a repetition operator cannot follow another");
	refused("a{2}+", 5, "a repetition operator cannot follow another");
	refused("a+*", 3, "a repetition operator cannot follow another");
	refused("((((((((((((((((x+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+", 47, "too complex");
	refused("((a{100}){100}){100}", 20, "too complex");
	refused("a{1001}", 7, "too complex");
	refused("[\\-]", 4, "not supported inside [ ]");
	refused("a\0b", 3, "NUL");
	refused("(", 1, "Unmatched (");
	refused("a[", 2, "");
	refused("(?P<n>x)", 8, "");
	memset(big, 'a', sizeof(big));
	refused(big, RX_MAX_LEN + 1, "longer than 1024 bytes");
	/* Sequential repetitions add up, they do not multiply: this passes. */
	assert_true(M("^[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}$", "10.0.0.1"));
	assert_true(M("^a{1000}$", "aaaaaaaaaa") == 0);
}

/* The patterns of one document share one budget: each takes what it costs
 * off it, and the one that would overdraw it is refused by name. */
static void test_shared_budget(void **state)
{
	regex_t re[3];
	long budget = RX_MAX_COST;
	char *err = NULL;

	(void)state;
	assert_int_equal(rx_compile(&re[0], "(a{60}){80}", 11, &budget, &err), WEFT_OK);
	assert_true(budget < RX_MAX_COST - 4800 && budget > RX_MAX_COST - 5000);
	assert_int_equal(rx_compile(&re[1], "(a{60}){80}", 11, &budget, &err), WEFT_OK);
	assert_true(budget < 400);
	assert_int_equal(rx_compile(&re[2], "(a{60}){80}", 11, &budget, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "too complex (with the patterns before it"));
	free(err);
	err = NULL;
	/* What is left still takes small patterns; a refusal costs nothing. */
	assert_int_equal(rx_compile(&re[2], "^web-[0-9]+$", 12, &budget, &err), WEFT_OK);
	assert_true(budget > 0);
	regfree(&re[0]);
	regfree(&re[1]);
	regfree(&re[2]);
	/* Alone (no budget), the same pattern always passes. */
	assert_true(M("(a{60}){80}", "b") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_re2_syntax),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_shared_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
