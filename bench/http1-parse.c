/* HTTP/1.1 parse throughput: the proxy's parser (dataplane/px_http1.c)
 * against libhttp-parser 2.9 (nodejs), same input, same run. Not in CI.
 *
 *   bench/http1-parse [-t SECONDS]     (make -C build bench-http1)
 *
 * Each workload is a buffer of pipelined messages (about 1 MiB) parsed
 * over and over, whole, for SECONDS (default 2, at most 30) per parser;
 * callbacks count bytes so that both do the same work. Prints MB/s and
 * messages/s per parser and the ratio weft / http-parser. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "px_http1.h"

#ifdef HAVE_HTTP_PARSER
#include <http_parser.h>
#endif

static const struct { const char *name; const char *msg; } WORKLOADS[] = {
	{"small GET (curl)",
	 "GET /v1/catalog/service/web HTTP/1.1\r\nHost: 127.0.0.1:8500\r\n"
	 "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"},
	{"browser GET, 11 headers",
	 "GET /static/app/main.3f9a1c.js?v=20240101 HTTP/1.1\r\nHost: www.example.com\r\n"
	 "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
	 "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
	 "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
	 "Referer: https://www.example.com/dashboard/overview\r\n"
	 "Cookie: session=9f8e7d6c5b4a39281706f5e4d3c2b1a0; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n"
	 "Connection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: script\r\n"
	 "Sec-Fetch-Mode: no-cors\r\n\r\n"},
	{"POST, 1 KiB body", NULL},  /* built in main */
	{"chunked POST, 4 x 256 B", NULL},
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t sink;

static int w_span(void *ud, const char *at, size_t len) { (void)ud; (void)at; sink += len; return 0; }
static int w_msg(void *ud, const struct px_http1_msg *m) { (void)ud; sink += m->headers; return 0; }

/* Returns messages parsed per pass, or -1 on a parse error. */
static long weft_pass(struct px_http1 *p, const char *buf, size_t len)
{
	size_t pos = 0;
	long msgs = 0;

	while (pos < len) {
		size_t used;
		int rc = px_http1_feed(p, buf + pos, len - pos, &used);

		if (rc < 0)
			return -1;
		if (rc == PX_HTTP1_DONE)
			msgs++;
		pos += used;
	}
	return msgs;
}

#ifdef HAVE_HTTP_PARSER
static long hp_msgs;
static int h_span(http_parser *p, const char *at, size_t len) { (void)p; (void)at; sink += len; return 0; }
static int h_hc(http_parser *p) { (void)p; sink++; return 0; }
static int h_mc(http_parser *p) { (void)p; hp_msgs++; return 0; }

static long hp_pass(http_parser *p, const http_parser_settings *s, const char *buf, size_t len)
{
	hp_msgs = 0;
	if (http_parser_execute(p, s, buf, len) != len || HTTP_PARSER_ERRNO(p) != HPE_OK)
		return -1;
	return hp_msgs;
}
#endif

struct score { double mbs, msgs; };

int main(int argc, char **argv)
{
	static const struct px_http1_callbacks wcb = {
		.on_method = w_span, .on_target = w_span, .on_header_name = w_span,
		.on_header_value = w_span, .on_headers_complete = w_msg, .on_body = w_span,
		.on_message_complete = w_msg,
	};
	double secs = 2;
	int opt;

	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt == 't' && atof(optarg) > 0 && atof(optarg) <= 30) {
			secs = atof(optarg);
		} else {
			fprintf(stderr, "usage: http1-parse [-t SECONDS (0-30]]\n");
			return 2;
		}
	}
	printf("%-26s %10s %12s %10s %12s %8s %8s\n", "workload", "weft MB/s", "weft msg/s",
	       "hp MB/s", "hp msg/s", "MB/s x", "msg/s x");
	for (size_t w = 0; w < sizeof(WORKLOADS) / sizeof(WORKLOADS[0]); w++) {
		struct buf one, all;
		struct score sw = {0, 0}, sh = {0, 0};
		struct px_http1 *p;
		size_t reps;
		long per;
		double t0, t;
		unsigned long passes;

		buf_init(&one, 1 << 16);
		buf_init(&all, 4 << 20);
		if (WORKLOADS[w].msg != NULL) {
			buf_printf(&one, "%s", WORKLOADS[w].msg);
		} else if (w == 2) {
			buf_printf(&one, "POST /v1/kv/app/config HTTP/1.1\r\nHost: 127.0.0.1:8500\r\n"
				   "Content-Type: application/json\r\nContent-Length: 1024\r\n\r\n");
			for (int i = 0; i < 1024; i++)
				buf_append(&one, "x", 1);
		} else {
			buf_printf(&one, "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
			for (int c = 0; c < 4; c++) {
				buf_printf(&one, "100\r\n");
				for (int i = 0; i < 256; i++)
					buf_append(&one, "y", 1);
				buf_printf(&one, "\r\n");
			}
			buf_printf(&one, "0\r\n\r\n");
		}
		reps = (1u << 20) / one.len + 1;
		for (size_t i = 0; i < reps; i++)
			buf_append(&all, one.data, one.len);

		p = px_http1_new(PX_HTTP1_REQUEST, NULL, &wcb, NULL);
		passes = 0;
		t0 = now();
		do {
			if ((per = weft_pass(p, all.data, all.len)) != (long)reps) {
				fprintf(stderr, "weft: parse error in %s\n", WORKLOADS[w].name);
				return 1;
			}
			passes++;
		} while ((t = now() - t0) < secs);
		sw.mbs = (double)all.len * (double)passes / t / 1e6;
		sw.msgs = (double)reps * (double)passes / t;
		px_http1_free(p);
#ifdef HAVE_HTTP_PARSER
		{
			http_parser hp;
			http_parser_settings s = {
				.on_url = h_span, .on_header_field = h_span, .on_header_value = h_span,
				.on_headers_complete = h_hc, .on_body = h_span, .on_message_complete = h_mc,
			};

			http_parser_init(&hp, HTTP_REQUEST);
			passes = 0;
			t0 = now();
			do {
				if (hp_pass(&hp, &s, all.data, all.len) != (long)reps) {
					fprintf(stderr, "http-parser: parse error in %s\n", WORKLOADS[w].name);
					return 1;
				}
				passes++;
			} while ((t = now() - t0) < secs);
			sh.mbs = (double)all.len * (double)passes / t / 1e6;
			sh.msgs = (double)reps * (double)passes / t;
		}
#endif
		printf("%-26s %10.0f %12.0f %10.0f %12.0f %8.2f %8.2f\n", WORKLOADS[w].name, sw.mbs, sw.msgs,
		       sh.mbs, sh.msgs, sh.mbs > 0 ? sw.mbs / sh.mbs : 0, sh.msgs > 0 ? sw.msgs / sh.msgs : 0);
		buf_free(&one);
		buf_free(&all);
	}
#ifndef HAVE_HTTP_PARSER
	printf("(libhttp-parser not found at configure time: no comparison)\n");
#endif
	return sink == 0;
}
