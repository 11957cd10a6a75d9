/* grpc_health: the health-checking messages as bytes, against hand-made
 * frames (the wire format of protobuf and gRPC's 5-byte framing). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "grpc_health.h"

static void test_request(void **state)
{
	unsigned char b[300], big[GRPC_SERVICE_MAX + 2];
	const unsigned char empty[] = { 0, 0, 0, 0, 0 };
	const unsigned char web[] = { 0, 0, 0, 0, 5, 0x0a, 3, 'w', 'e', 'b' };
	char name[201];

	(void)state;
	assert_int_equal(grpc_health_request(NULL, b, sizeof(b)), sizeof(empty));
	assert_memory_equal(b, empty, sizeof(empty));
	assert_int_equal(grpc_health_request("", b, sizeof(b)), sizeof(empty));
	assert_int_equal(grpc_health_request("web", b, sizeof(b)), sizeof(web));
	assert_memory_equal(b, web, sizeof(web));
	/* past 127 bytes the length takes two varint bytes: 200 = 0xc8 0x01 */
	memset(name, 'a', 200);
	name[200] = '\0';
	assert_int_equal(grpc_health_request(name, b, sizeof(b)), 5 + 3 + 200);
	assert_int_equal(b[4], 203);
	assert_int_equal(b[5], 0x0a);
	assert_int_equal(b[6], 0xc8);
	assert_int_equal(b[7], 0x01);
	/* too long, or no room */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(grpc_health_request((char *)big, b, sizeof(b)), 0);
	assert_int_equal(grpc_health_request("web", b, 9), 0);
}

static int parse(const unsigned char *p, size_t n, unsigned long long *st, const char **why)
{
	*why = NULL;
	return grpc_health_response(p, n, st, why);
}

static void test_response(void **state)
{
	const unsigned char serving[] = { 0, 0, 0, 0, 2, 0x08, 0x01 };
	const unsigned char not_serving[] = { 0, 0, 0, 0, 2, 0x08, 0x02 };
	const unsigned char empty[] = { 0, 0, 0, 0, 0 };      /* proto3: UNKNOWN */
	/* unknown fields of each wire type before the status: skipped */
	const unsigned char extra[] = { 0, 0, 0, 0, 20, 0x12, 2, 'h', 'i', 0x19, 1, 2, 3, 4, 5, 6,
					7, 8, 0x25, 1, 2, 3, 4, 0x08, 0x01 };
	const unsigned char big_status[] = { 0, 0, 0, 0, 3, 0x08, 0xac, 0x02 };   /* 300 */
	const unsigned char two_messages[] = { 0, 0, 0, 0, 2, 0x08, 0x01, 0, 0, 0, 0, 2, 0x08, 0x02 };
	unsigned long long st;
	const char *why;
	char buf[32];

	(void)state;
	assert_int_equal(parse(serving, sizeof(serving), &st, &why), 0);
	assert_int_equal(st, GRPC_STATUS_SERVING);
	assert_int_equal(parse(not_serving, sizeof(not_serving), &st, &why), 0);
	assert_int_equal(st, GRPC_STATUS_NOT_SERVING);
	assert_string_equal(grpc_serving_name(st, buf, sizeof(buf)), "NOT_SERVING");
	assert_int_equal(parse(empty, sizeof(empty), &st, &why), 0);
	assert_int_equal(st, GRPC_STATUS_UNKNOWN);
	assert_int_equal(parse(extra, sizeof(extra), &st, &why), 0);
	assert_int_equal(st, GRPC_STATUS_SERVING);
	assert_int_equal(parse(big_status, sizeof(big_status), &st, &why), 0);
	assert_int_equal(st, 300);
	assert_string_equal(grpc_serving_name(st, buf, sizeof(buf)), "status 300");
	/* the first message counts */
	assert_int_equal(parse(two_messages, sizeof(two_messages), &st, &why), 0);
	assert_int_equal(st, GRPC_STATUS_SERVING);
}

static void test_bad_responses(void **state)
{
	static const struct {
		unsigned char b[20];
		size_t n;
		const char *why;
	} cases[] = {
		{ { 0 }, 0, "the response has no message" },
		{ { 0, 0, 0 }, 3, "the response's message is cut short" },
		{ { 0, 0, 0, 0, 3, 0x08, 0x01 }, 7, "the response's message is cut short" },
		{ { 0, 0xff, 0xff, 0xff, 0xff, 0x08 }, 6, "the response's message is cut short" },
		{ { 1, 0, 0, 0, 2, 0x08, 0x01 }, 7, "the response's message is compressed (none was accepted)" },
		/* a varint cut by the message's end, not by the buffer's */
		{ { 0, 0, 0, 0, 2, 0x08, 0x81, 0x01 }, 8, "the response's message is not a HealthCheckResponse" },
		/* wire types 3 and 4 (groups), 6 and 7 do not exist here */
		{ { 0, 0, 0, 0, 2, 0x0b, 0x01 }, 7, "the response's message is not a HealthCheckResponse" },
		{ { 0, 0, 0, 0, 2, 0x0f, 0x01 }, 7, "the response's message is not a HealthCheckResponse" },
		/* a length past the message */
		{ { 0, 0, 0, 0, 3, 0x12, 0x09, 'a' }, 8, "the response's message is not a HealthCheckResponse" },
		/* fixed64 with 3 bytes */
		{ { 0, 0, 0, 0, 4, 0x19, 1, 2, 3 }, 9, "the response's message is not a HealthCheckResponse" },
		/* a varint of 11 bytes */
		{ { 0, 0, 0, 0, 12, 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 },
		  17, "the response's message is not a HealthCheckResponse" },
	};
	unsigned long long st;
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse(cases[i].b, cases[i].n, &st, &why) != -1 || why == NULL)
			fail_msg("case %zu: accepted", i);
		if (strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu: \"%s\", want \"%s\"", i, why, cases[i].why);
	}
}

static void test_code_names(void **state)
{
	(void)state;
	assert_string_equal(grpc_code_name(0), "OK");
	assert_string_equal(grpc_code_name(5), "NotFound");
	assert_string_equal(grpc_code_name(12), "Unimplemented");
	assert_string_equal(grpc_code_name(16), "Unauthenticated");
	assert_string_equal(grpc_code_name(17), "Code");
	assert_string_equal(grpc_code_name(-1), "Code");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_bad_responses),
		cmocka_unit_test(test_code_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
