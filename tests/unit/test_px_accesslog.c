/* px_accesslog: the JSON line (fields, escaping, truncation), and the ring:
 * a sink that does not read never blocks the writer, lines past the ring
 * are dropped and counted (px_stats too), and what is queued comes out
 * whole once the sink reads again; several instances (workers, each on
 * its own thread) appending to one pipe or file never interleave lines. */
#include <fcntl.h>
#include <pthread.h>
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

/* One worker: its own loop and instance on the shared sink path. */
#define W_THREADS 4
#define W_LINES 400
struct wjob {
	const char *path;
	char listener[16];
	int rc;
};

static void *worker(void *arg)
{
	struct wjob *j = arg;
	struct event_base *base = event_base_new();
	struct px_accesslog *a = NULL;
	struct px_accesslog_entry e = ENTRY;
	char line[1500];
	char *err = NULL;

	/* long lines: several of them pass PIPE_BUF together */
	memset(line, 'p', sizeof(line));
	memcpy(line, "GET /", 5);
	e.line = line;
	e.line_len = sizeof(line);
	e.listener = j->listener;
	j->rc = base ? px_accesslog_open(&a, base, j->path, 1 << 20, NULL, &err) : -1;
	free(err);
	for (int i = 0; j->rc == 0 && i < W_LINES; i++) {
		px_accesslog_write(a, &e);
		if (i % 7 == 0)
			event_base_loop(base, EVLOOP_NONBLOCK);
	}
	for (int round = 0; j->rc == 0 && round < 100; round++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(2000);
	}
	px_accesslog_free(a);   /* the last flush */
	if (base)
		event_base_free(base);
	return NULL;
}

/* Every line of text[0..len) is a JSON object; counts them per listener. */
static void check_lines(const char *text, size_t len, int *per)
{
	for (const char *p = text; p < text + len;) {
		const char *nl = memchr(p, '\n', (size_t)(text + len - p));
		json_error_t je;
		json_t *j;
		const char *l;

		assert_non_null(nl);
		j = json_loadb(p, (size_t)(nl - p), 0, &je);
		if (j == NULL)
			fail_msg("not one JSON line (interleaved?): %.*s", (int)(nl - p > 200 ? 200 : nl - p), p);
		l = json_string_value(json_object_get(j, "listener"));
		assert_non_null(l);
		assert_true(l[0] == 'w' && l[1] >= '0' && l[1] < '0' + W_THREADS);
		per[l[1] - '0']++;
		json_decref(j);
		p = nl + 1;
	}
}

static void run_workers(const char *path)
{
	struct wjob jobs[W_THREADS];
	pthread_t th[W_THREADS];

	for (int i = 0; i < W_THREADS; i++) {
		jobs[i] = (struct wjob){.path = path};
		snprintf(jobs[i].listener, sizeof(jobs[i].listener), "w%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
	}
	for (int i = 0; i < W_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].rc, 0);
	}
}

struct reader {
	int fd;
	struct buf got;
};

static void *pipe_reader(void *arg)
{
	struct reader *r = arg;
	char chunk[65536];
	ssize_t n;

	while ((n = read(r->fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(&r->got, chunk, (size_t)n) != 0)
			break;
	return NULL;
}

static void test_workers_share_a_pipe(void **state)
{
	char path[64];
	int fds[2], per[W_THREADS] = {0};
	struct reader r;
	pthread_t rd;

	assert_int_equal(pipe(fds), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[1]);
	r.fd = fds[0];
	buf_init(&r.got, 1 << 26);
	alarm(30);
	assert_int_equal(pthread_create(&rd, NULL, pipe_reader, &r), 0);
	run_workers(path);
	close(fds[1]);          /* the last writer: the reader sees EOF */
	assert_int_equal(pthread_join(rd, NULL), 0);
	alarm(0);
	assert_non_null(r.got.data);
	check_lines(r.got.data, r.got.len, per);
	for (int i = 0; i < W_THREADS; i++)
		assert_int_equal(per[i], W_LINES);
	buf_free(&r.got);
	close(fds[0]);
}

static void test_workers_share_a_file(void **state)
{
	char path[] = "/tmp/test_px_accesslog.XXXXXX", *text;
	int fd = mkstemp(path), per[W_THREADS] = {0};
	off_t len;

	assert_true(fd >= 0);
	alarm(30);
	run_workers(path);
	alarm(0);
	len = lseek(fd, 0, SEEK_END);
	assert_true(len > 0);
	text = malloc((size_t)len);
	assert_int_equal(pread(fd, text, (size_t)len, 0), len);
	check_lines(text, (size_t)len, per);
	for (int i = 0; i < W_THREADS; i++)
		assert_int_equal(per[i], W_LINES);
	free(text);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_odd_input),
		cmocka_unit_test(test_full_sink_drops_without_blocking),
		cmocka_unit_test(test_bad_path),
		cmocka_unit_test(test_workers_share_a_pipe),
		cmocka_unit_test(test_workers_share_a_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
