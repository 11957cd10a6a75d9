/* The config-file parser: settings_parse_text, as --config FILE runs it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "settings.h"

static int parse(struct settings *s, const char *text, size_t len, char **err)
{
	memset(s, 0, sizeof(*s));
	return settings_parse_text(s, "test.conf", text, len, err);
}

static void test_good_file(void **state)
{
	static const char text[] = "# comment\n\n  data_dir = /tmp/x  \r\nhttp-addr = \"127.0.0.1:9500\"\n"
				   "max_body = 2048\ndev = yes\ndatacenter=dc2";   /* no final newline */
	struct settings s;
	char *err = NULL;

	(void)state;
	assert_int_equal(parse(&s, text, strlen(text), &err), WEFT_OK);
	assert_null(err);
	assert_string_equal(s.data_dir, "/tmp/x");
	assert_string_equal(s.http_addr, "127.0.0.1:9500");
	assert_int_equal(s.max_body, 2048);
	assert_int_equal(s.dev, 1);
	assert_string_equal(s.datacenter, "dc2");
	settings_free(&s);
}

static void expect_error(const char *text, size_t len, const char *want)
{
	struct settings s;
	char *err = NULL;

	assert_int_equal(parse(&s, text, len, &err), WEFT_EINVAL);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	free(err);
	settings_free(&s);
}

#define EXPECT(lit, want) expect_error(lit, sizeof(lit) - 1, want)

static void test_errors_name_file_and_line(void **state)
{
	char *longl;

	(void)state;
	EXPECT("dev = true\n\nbogus = 1\n", "test.conf:3: unknown setting \"bogus\"");
	EXPECT("max_body = lots\n", "test.conf:1: max-body: \"lots\" is not a number");
	EXPECT("max_body = 99999999999999999999\n", "test.conf:1: max-body:");
	EXPECT("http_addr\n", "test.conf:1: expected \"key = value\"");
	EXPECT("dev = maybe", "test.conf:1: dev: \"maybe\" is not true or false");
	EXPECT("dev = true\ndatacenter = d\0c\n", "test.conf:2: NUL byte in line");
	/* A line longer than the limit is refused, not split into two. */
	longl = malloc(SETTINGS_MAX_LINE + 32);
	memset(longl, 'x', SETTINGS_MAX_LINE + 31);
	memcpy(longl, "data-dir = ", 11);
	expect_error(longl, SETTINGS_MAX_LINE + 31, "test.conf:1: line longer than 4096 bytes");
	free(longl);
}

static void test_empty_and_blank(void **state)
{
	struct settings s;
	char *err = NULL;

	(void)state;
	assert_int_equal(parse(&s, "", 0, &err), WEFT_OK);
	settings_free(&s);
	assert_int_equal(parse(&s, "\n\n   \t\n# only comments\n", 23, &err), WEFT_OK);
	settings_free(&s);
	assert_null(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_empty_and_blank),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
