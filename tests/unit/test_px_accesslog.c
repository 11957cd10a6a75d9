/* px_accesslog: the JSON line (fields, escaping, truncation), and the ring:
 * a sink that does not read never blocks the writer, lines past the ring
 * are dropped and counted (px_stats too), and what is queued comes out
 * whole once the sink reads again. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "buf.h"
#include "px_accesslog.h"
#include "px_stats.h"

static const struct px_accesslog_entry ENTRY = {
	.listener = "inbound", .source = "spiffe://td/ns/default/dc/dc1/svc/web",
	.line = "GET /a?b=\"c\"\\", .line_len = 13, .status = 201, .bytes_in = 3, .bytes_out = 12345,
	.duration_us = 1500, .upstream = "127.0.0.1:8080",
};

static void test_format(void **state)
{
	char out[4096];
	size_t n = px_accesslog_format(&ENTRY, 1764130000123456ull, out, sizeof(out));
	json_error_t je;
	json_t *j;

	assert_true(n > 0);
	assert_int_equal(out[n - 1], '\n');
	assert_null(memchr(out, '\n', n - 1));
	j = json_loadb(out, n, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "time")), "2025-11-26T04:06:40.123Z");
	assert_string_equal(json_string_value(json_object_get(j, "listener")), "inbound");
	assert_string_equal(json_string_value(json_object_get(j, "source")), ENTRY.source);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/a?b=\"c\"\\");
	assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
	assert_int_equal(json_integer_value(json_object_get(j, "bytes_in")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "bytes_out")), 12345);
	assert_float_equal(json_real_value(json_object_get(j, "duration_ms")), 1.5, 1e-9);
	assert_string_equal(json_string_value(json_object_get(j, "upstream")), "127.0.0.1:8080");
	json_decref(j);
	/* too small a buffer: nothing rather than half a line */
	assert_int_equal(px_accesslog_format(&ENTRY, 0, out, 40), 0);
}

static void test_format_odd_input(void **state)
{
	struct px_accesslog_entry e = ENTRY;
	char out[8192], line[6000];
	json_error_t je;
	json_t *j;
	size_t n;

	/* control and non-ASCII bytes escaped; a long path cut at 2048 */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PUT /\x01\n\xff", 8);
	e.line = line;
	e.line_len = sizeof(line);
	n = px_accesslog_format(&e, 0, out, sizeof(out));
	assert_true(n > 0);
	j = json_loadb(out, n, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "PUT");
	assert_int_equal(strlen(json_string_value(json_object_get(j, "path"))), 2048 + 1);
	json_decref(j);
	/* no line (a request refused before its head): "-" */
	e.line = NULL;
	e.line_len = 0;
	n = px_accesslog_format(&e, 0, out, sizeof(out));
	j = json_loadb(out, n, 0, &je);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "-");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "");
	json_decref(j);
}

static void test_full_sink_drops_without_blocking(void **state)
{
	struct event_base *base = event_base_new();
	struct px_stats *stats = px_stats_new();
	struct px_accesslog *a = NULL;
	char path[64], *err = NULL, *got;
	int fds[2], lines = 0, written = 3000;
	struct buf text;
	size_t len = 0;

	assert_int_equal(pipe(fds), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[1]);
	assert_int_equal(px_accesslog_open(&a, base, path, 16384, stats, &err), 0);
	alarm(20); /* a blocking write would hang here */
	for (int i = 0; i < written; i++) {
		px_accesslog_write(a, &ENTRY);
		if (i % 100 == 0)
			event_base_loop(base, EVLOOP_NONBLOCK);
	}
	{
		/* the pipe (64 KiB) and the ring (16 KiB) are full: the rest dropped */
		uint64_t dropped = px_accesslog_dropped(a);

		assert_true(dropped > 0);
		assert_true(dropped < (uint64_t)written);
		buf_init(&text, 1 << 24);
		assert_int_equal(px_stats_render(&stats, 1, 0, &text), 0);
		got = strstr(text.data, "\nweft_proxy_access_log_dropped_total ");
		assert_non_null(got);
		assert_int_equal(strtoull(got + strlen("\nweft_proxy_access_log_dropped_total "), NULL, 10),
				 dropped);
		buf_free(&text);
		/* the reader catches up: every line not dropped comes out whole */
		fcntl(fds[0], F_SETFL, O_NONBLOCK);
		got = malloc(1 << 22);
		for (int round = 0; round < 200; round++) {
			ssize_t r;

			while ((r = read(fds[0], got + len, (1 << 22) - len)) > 0)
				len += (size_t)r;
			event_base_loop(base, EVLOOP_NONBLOCK);
			usleep(5000);
		}
		for (size_t i = 0; i < len; i++)
			lines += got[i] == '\n';
		assert_int_equal(lines, written - (int)dropped);
		assert_int_equal(got[len - 1], '\n');
		for (char *p = got; p < got + len;) {
			char *nl = memchr(p, '\n', (size_t)(got + len - p));
			json_error_t je;
			json_t *j = json_loadb(p, (size_t)(nl - p), 0, &je);

			assert_non_null(j);
			json_decref(j);
			p = nl + 1;
		}
		free(got);
	}
	alarm(0);
	px_accesslog_free(a);
	px_stats_free(stats);
	event_base_free(base);
	close(fds[0]);
	close(fds[1]);
}

static void test_bad_path(void **state)
{
	struct event_base *base = event_base_new();
	struct px_accesslog *a = NULL;
	char *err = NULL;

	assert_int_not_equal(px_accesslog_open(&a, base, "/nonexistent/dir/access.log", 0, NULL, &err), 0);
	assert_null(a);
	assert_non_null(strstr(err, "/nonexistent/dir/access.log"));
	free(err);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_odd_input),
		cmocka_unit_test(test_full_sink_drops_without_blocking),
		cmocka_unit_test(test_bad_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
