/* The proxy's HTTP/1.1 parser (dataplane/px_http1.c) on arbitrary bytes.
 * The first byte picks request or response parsing, the method a response
 * answers and the seed that splits the rest into chunks. The input is
 * parsed whole and again in random chunks. Invariants: consumed <= fed;
 * every span lies in the chunk fed (or is held-back whitespace); no
 * callback after an error or the end of a message; body bytes <= input;
 * both parses give the same result and the same callbacks, up to the span
 * in progress when an error is found. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOG_MAX 65536

struct ctx {
	const char *chunk;
	size_t chunk_len;
	char log[LOG_MAX];
	size_t log_len;
	int last;
	bool stopped;         /* an error or DONE was returned: no callback until the next feed */
	size_t span_bytes;
	uint64_t body;
};

static void log_bytes(struct ctx *c, const void *p, size_t n)
{
	if (n > LOG_MAX - c->log_len)
		n = LOG_MAX - c->log_len;
	memcpy(c->log + c->log_len, p, n);
	c->log_len += n;
}

static int span(struct ctx *c, int kind, const char *at, size_t len)
{
	char tag[2] = {'|', (char)('a' + kind)};

	if (c->stopped)
		abort();
	if (at < c->chunk || at + len > c->chunk + c->chunk_len) {
		/* whitespace the parser held back across a chunk end */
		if (kind != 4 || len > 64)
			abort();
		for (size_t i = 0; i < len; i++)
			if (at[i] != ' ' && at[i] != '\t')
				abort();
	}
	if (kind != c->last)
		log_bytes(c, tag, 2);
	c->last = kind;
	log_bytes(c, at, len);
	c->span_bytes += len;
	if (kind == 5)
		c->body += len;
	return 0;
}

static int s_method(void *u, const char *a, size_t n) { return span(u, 0, a, n); }
static int s_target(void *u, const char *a, size_t n) { return span(u, 1, a, n); }
static int s_reason(void *u, const char *a, size_t n) { return span(u, 2, a, n); }
static int s_name(void *u, const char *a, size_t n) { return span(u, 3, a, n); }
static int s_value(void *u, const char *a, size_t n) { return span(u, 4, a, n); }
static int s_body(void *u, const char *a, size_t n) { return span(u, 5, a, n); }

static int s_hc(void *u, const struct px_http1_msg *m)
{
	struct ctx *c = u;
	char line[64];
	int n;

	if (c->stopped)
		abort();
	n = snprintf(line, sizeof(line), "|HC%d,%d,%d,%d,%d", (int)m->body, m->keep_alive, m->tunnel,
		     m->status, m->version_minor);
	log_bytes(c, line, (size_t)n);
	c->last = -1;
	return 0;
}

static int s_mc(void *u, const struct px_http1_msg *m)
{
	struct ctx *c = u;

	if (c->stopped || m->body_bytes > c->body)
		abort();
	log_bytes(c, "|MC", 3);
	c->last = -1;
	return 0;
}

static const struct px_http1_callbacks CB = {
	.on_method = s_method, .on_target = s_target, .on_reason = s_reason,
	.on_header_name = s_name, .on_header_value = s_value, .on_headers_complete = s_hc,
	.on_body = s_body, .on_message_complete = s_mc,
};

/* Returns the final code; c->log holds the transcript. */
static int parse(struct ctx *c, enum px_http1_type type, enum px_http1_method m,
		 const char *in, size_t len, uint32_t seed, const struct px_http1_limits *lim)
{
	struct px_http1 *p = px_http1_new(type, lim, &CB, c);
	size_t pos = 0;
	int rc = 0;

	if (p == NULL)
		return 0;
	px_http1_expect(p, m);
	while (pos < len) {
		size_t n = len - pos, used = 0;

		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % ((seed & 1) ? 4 : 64);
			if (n > len - pos)
				n = len - pos;
		}
		c->chunk = in + pos;
		c->chunk_len = n;
		c->stopped = false;
		rc = px_http1_feed(p, in + pos, n, &used);
		if (used > n)
			abort();
		pos += used;
		if (rc == PX_HTTP1_DONE) {
			c->stopped = true;
			log_bytes(c, "|DONE", 5);
			c->last = -1;
			continue;
		}
		if (rc < 0) {
			size_t again = 1;

			c->stopped = true;
			/* the error sticks, consumes nothing, calls nothing */
			if (px_http1_feed(p, in, len, &again) != rc || again != 0)
				abort();
			break;
		}
		if (used != n)
			abort();
	}
	if (rc >= 0 && rc != PX_HTTP1_EPASSTHROUGH) {
		c->stopped = false;
		rc = px_http1_finish(p);
		if (rc == PX_HTTP1_DONE)
			log_bytes(c, "|FIN", 4);
	}
	if (rc < 0) {
		char e[16];
		int n = snprintf(e, sizeof(e), "|ERR%d", rc);

		log_bytes(c, e, (size_t)n);
	}
	if (c->body > len || c->span_bytes > len + 64 * (len / 2 + 1))
		abort();
	px_http1_free(p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctx a, b;
	static const enum px_http1_method methods[] = {PX_HTTP1_M_GET, PX_HTTP1_M_HEAD,
						       PX_HTTP1_M_CONNECT, PX_HTTP1_M_POST};
	struct px_http1_limits small = {.max_line = 64, .max_headers = 4, .max_header_bytes = 256};
	const struct px_http1_limits *lim = NULL;
	enum px_http1_type type;
	enum px_http1_method m;
	uint32_t seed;
	int ra, rb;

	if (size < 1)
		return 0;
	type = (data[0] & 1) ? PX_HTTP1_RESPONSE : PX_HTTP1_REQUEST;
	m = methods[(data[0] >> 1) & 3];
	if (data[0] & 8)
		lim = &small;
	seed = (uint32_t)data[0] * 2654435761u | 1u;
	data++;
	size--;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.last = b.last = -1;
	ra = parse(&a, type, m, (const char *)data, size, 0, lim);
	rb = parse(&b, type, m, (const char *)data, size, seed, lim);
	if (ra != rb)
		abort();
	if (a.log_len < LOG_MAX && b.log_len < LOG_MAX) {
		if (ra >= 0 || ra == PX_HTTP1_EPASSTHROUGH) {
			if (a.log_len != b.log_len || memcmp(a.log, b.log, a.log_len) != 0)
				abort();
		} else {
			/* a's transcript before "|ERR" (complete spans only) is a prefix
			 * of b's: the split parse may have handed out more of the span
			 * in progress before the failing byte came */
			size_t cut = a.log_len;

			while (cut >= 4 && memcmp(a.log + cut - 4, "|ERR", 4) != 0)
				cut--;
			if (cut < 4 || b.log_len < cut - 4 || memcmp(a.log, b.log, cut - 4) != 0)
				abort();
		}
	}
	return 0;
}
