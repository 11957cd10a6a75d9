/* h2ping: the client's first bytes and the reading of a server's frames,
 * against frames made by hand (RFC 9113's 9-byte header). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "h2ping.h"

static const unsigned char PING[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

/* a frame: header (length, type, flags, stream 0) then payload */
static size_t frame(unsigned char *o, int type, int flags, const void *payload, size_t len)
{
	o[0] = (unsigned char)(len >> 16);
	o[1] = (unsigned char)(len >> 8);
	o[2] = (unsigned char)len;
	o[3] = (unsigned char)type;
	o[4] = (unsigned char)flags;
	o[5] = o[6] = o[7] = o[8] = 0;
	memcpy(o + 9, payload, len);
	return 9 + len;
}

static void test_hello(void **state)
{
	unsigned char b[128];
	size_t n = h2ping_hello(PING, b, sizeof(b));

	(void)state;
	assert_int_equal(n, 24 + 9 + 9 + 8);
	assert_memory_equal(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
	/* an empty SETTINGS, then PING with our 8 bytes, no ACK flag */
	assert_memory_equal(b + 24, "\0\0\0\x04\0\0\0\0\0", 9);
	assert_memory_equal(b + 33, "\0\0\x08\x06\0\0\0\0\0", 9);
	assert_memory_equal(b + 42, PING, 8);
	assert_int_equal(h2ping_hello(PING, b, 49), 0);
}

static enum h2ping_scan scan(struct h2ping_frames *st, const unsigned char *b, size_t n,
			     size_t *used, uint32_t *code, const char **why)
{
	*why = NULL;
	return h2ping_scan(st, b, n, PING, used, code, why);
}

static void test_acked(void **state)
{
	unsigned char b[256], settings[6] = { 0, 3, 0, 0, 0, 100 }, other[8] = { 9 };
	struct h2ping_frames st = { 0 };
	size_t n = 0, used;
	uint32_t code;
	const char *why;

	(void)state;
	n += frame(b + n, 0x4, 0, settings, 6);          /* the server's SETTINGS */
	n += frame(b + n, 0x8, 0, "\0\0\0\x10", 4);       /* WINDOW_UPDATE: skipped */
	n += frame(b + n, 0x4, 1, "", 0);                 /* the ACK of ours */
	n += frame(b + n, 0x6, 1, other, 8);              /* an ACK of another PING */
	n += frame(b + n, 0x6, 0, PING, 8);               /* the server's own PING, no ACK */
	/* cut short anywhere: no verdict, only whole frames taken */
	for (size_t cut = 0; cut < n; cut++) {
		memset(&st, 0, sizeof(st));
		assert_int_equal(scan(&st, b, cut, &used, &code, &why), H2PING_MORE);
		assert_true(used <= cut);
	}
	n += frame(b + n, 0x6, 1, PING, 8);               /* ours, acknowledged */
	memset(&st, 0, sizeof(st));
	assert_int_equal(scan(&st, b, n, &used, &code, &why), H2PING_ACKED);
	assert_int_equal(used, n);
	/* in two reads, the state carried over */
	memset(&st, 0, sizeof(st));
	assert_int_equal(scan(&st, b, 20, &used, &code, &why), H2PING_MORE);
	assert_int_equal(used, 15);
	assert_int_equal(scan(&st, b + used, n - used, &used, &code, &why), H2PING_ACKED);
}

static void test_goaway_and_bad(void **state)
{
	unsigned char b[256], ga[8] = { 0, 0, 0, 0, 0, 0, 0, 11 };
	struct h2ping_frames st = { 0 };
	size_t n = 0, used;
	uint32_t code = 0;
	const char *why;
	static const char http1[] = "HTTP/1.1 400 Bad Request\r\n\r\n";

	(void)state;
	n += frame(b + n, 0x4, 0, "", 0);
	n += frame(b + n, 0x7, 0, ga, 8);
	assert_int_equal(scan(&st, b, n, &used, &code, &why), H2PING_GOAWAY);
	assert_int_equal(code, 11);
	/* an HTTP/1.1 answer: its first bytes read as a huge frame */
	memset(&st, 0, sizeof(st));
	assert_int_equal(scan(&st, (const unsigned char *)http1, sizeof(http1) - 1, &used, &code,
			      &why), H2PING_BAD);
	assert_string_equal(why, "a frame is larger than the 16384 bytes allowed (not an HTTP/2 server?)");
	/* a first frame that is not SETTINGS */
	memset(&st, 0, sizeof(st));
	n = frame(b, 0x6, 1, PING, 8);
	assert_int_equal(scan(&st, b, n, &used, &code, &why), H2PING_BAD);
	assert_string_equal(why, "the server's first frame is not SETTINGS (not an HTTP/2 server?)");
	/* malformed frames */
	memset(&st, 0, sizeof(st));
	n = frame(b, 0x4, 0, "12345", 5);
	assert_int_equal(scan(&st, b, n, &used, &code, &why), H2PING_BAD);
	assert_string_equal(why, "a malformed SETTINGS frame");
	memset(&st, 0, sizeof(st));
	n = frame(b, 0x4, 0, "", 0);
	n += frame(b + n, 0x6, 1, PING, 7);
	assert_int_equal(scan(&st, b, n, &used, &code, &why), H2PING_BAD);
	assert_string_equal(why, "a malformed PING frame");
	memset(&st, 0, sizeof(st));
	n = frame(b, 0x4, 0, "", 0);
	n += frame(b + n, 0x7, 0, ga, 4);
	assert_int_equal(scan(&st, b, n, &used, &code, &why), H2PING_BAD);
	assert_string_equal(why, "a malformed GOAWAY frame");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_acked),
		cmocka_unit_test(test_goaway_and_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
