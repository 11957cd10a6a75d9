/* px_http1: the proxy's HTTP/1.1 parser and framing rules, and the
 * forwarded header rewrite. Every message is parsed whole, one byte at a
 * time, cut at every byte position and in random pieces: the transcript
 * of callbacks must be the same each way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "px_http1.h"

/* ---- a recorder: the callbacks as one comparable text ---- */

enum ev { EV_NONE, EV_METHOD, EV_TARGET, EV_REASON, EV_NAME, EV_VALUE, EV_BODY };

struct rec {
	struct buf out;
	enum ev last;
	int stop_at;      /* callback number that returns non-zero (0: none) */
	int calls;
	int calls_after_error;
	bool errored;
};

static int piece(struct rec *r, enum ev e, const char *tag, const char *at, size_t len)
{
	r->calls++;
	if (r->errored)
		r->calls_after_error++;
	if (r->last != e || e == EV_NONE)
		buf_printf(&r->out, " %s=", tag);
	r->last = e;
	buf_append(&r->out, at, len);
	return r->stop_at != 0 && r->calls == r->stop_at;
}

static int on_method(void *ud, const char *at, size_t len) { return piece(ud, EV_METHOD, "M", at, len); }
static int on_target(void *ud, const char *at, size_t len) { return piece(ud, EV_TARGET, "T", at, len); }
static int on_reason(void *ud, const char *at, size_t len) { return piece(ud, EV_REASON, "R", at, len); }
static int on_name(void *ud, const char *at, size_t len) { return piece(ud, EV_NAME, "H", at, len); }
static int on_value(void *ud, const char *at, size_t len) { return piece(ud, EV_VALUE, "V", at, len); }
static int on_body(void *ud, const char *at, size_t len) { return piece(ud, EV_BODY, "B", at, len); }

static int on_hc(void *ud, const struct px_http1_msg *m)
{
	struct rec *r = ud;

	r->calls++;
	r->last = EV_NONE;
	buf_printf(&r->out, " |HC v=1.%d st=%d meth=%d body=%d cl=%llu ka=%d up=%d tun=%d exp=%d conn=%x n=%u",
		   m->version_minor, m->status, (int)m->method, (int)m->body,
		   (unsigned long long)m->content_length, m->keep_alive, m->upgrade, m->tunnel,
		   m->expect_continue, m->connection, m->headers);
	return r->stop_at != 0 && r->calls == r->stop_at;
}

static int on_mc(void *ud, const struct px_http1_msg *m)
{
	struct rec *r = ud;

	r->calls++;
	r->last = EV_NONE;
	buf_printf(&r->out, " |MC bytes=%llu", (unsigned long long)m->body_bytes);
	return 0;
}

static const struct px_http1_callbacks CB = {
	.on_method = on_method, .on_target = on_target, .on_reason = on_reason,
	.on_header_name = on_name, .on_header_value = on_value,
	.on_headers_complete = on_hc, .on_body = on_body, .on_message_complete = on_mc,
};

/* split: 0 whole, 1 one byte at a time, 2 random pieces (seed), 3 cut at seed */
struct run {
	enum px_http1_type type;
	enum px_http1_method expect;
	const struct px_http1_limits *lim;
	int split;
	unsigned seed;
	bool finish;
};

/* Parses every message of in (pipelined); returns the final code and the
 * transcript in *out (caller frees). */
static int run(const struct run *o, const char *in, size_t len, char **out)
{
	struct rec r = {0};
	struct px_http1 *p;
	size_t pos = 0;
	unsigned rnd = o->seed * 2654435761u + 1;
	int rc = 0;

	buf_init(&r.out, 1 << 20);
	p = px_http1_new(o->type, o->lim, &CB, &r);
	assert_non_null(p);
	px_http1_expect(p, o->expect);
	while (pos < len) {
		size_t n = len - pos, c = 0;

		if (o->split == 1)
			n = 1;
		else if (o->split == 2) {
			rnd = rnd * 1103515245u + 12345u;
			n = 1 + (rnd >> 16) % 17;
		} else if (o->split == 3 && pos < o->seed)
			n = o->seed - pos;
		if (n > len - pos)
			n = len - pos;
		rc = px_http1_feed(p, in + pos, n, &c);
		assert_true(c <= n);
		pos += c;
		if (rc == PX_HTTP1_DONE) {
			buf_printf(&r.out, " |DONE@%zu\n", pos);
			r.last = EV_NONE;
			continue;
		}
		if (rc == PX_HTTP1_EPASSTHROUGH) {
			assert_int_equal(c, 0);
			buf_printf(&r.out, " |TUNNEL rest=%zu", len - pos);
			break;
		}
		if (rc < 0) {
			size_t c2 = 99;

			r.errored = true;
			buf_printf(&r.out, " |ERR %s", px_http1_strerror(rc));
			/* an error sticks and consumes nothing */
			assert_int_equal(px_http1_feed(p, in, len, &c2), rc);
			assert_int_equal(c2, 0);
			break;
		}
		assert_int_equal(c, n);
	}
	if (rc >= 0 && rc != PX_HTTP1_EPASSTHROUGH && o->finish) {
		rc = px_http1_finish(p);
		buf_printf(&r.out, " |FIN %d", rc);
	}
	assert_int_equal(r.calls_after_error, 0);
	px_http1_free(p);
	*out = buf_steal(&r.out);
	if (*out == NULL)
		*out = strdup("");
	return rc;
}

/* Two transcripts of the same input agree: equal, or, when parsing failed,
 * equal up to the span in progress (a cut chunk hands out the pieces it
 * has before the byte that fails arrives; the whole input never does). */
static void agree(const char *ref, const char *t)
{
	const char *e1 = strstr(ref, " |ERR "), *e2 = strstr(t, " |ERR ");
	size_t n;

	if (e1 == NULL || e2 == NULL) {
		assert_string_equal(t, ref);
		return;
	}
	assert_string_equal(e2, e1);
	n = (size_t)(e1 - ref);
	if (strncmp(t, ref, n) != 0 || (size_t)(e2 - t) < n || memchr(t + n, '|', (size_t)(e2 - t) - n) != NULL)
		fail_msg("transcripts differ:\n%s\n%s", ref, t);
}

/* Runs whole, byte by byte, cut at every position and in 50 random splits;
 * all must agree. Returns the final code; *out the transcript. */
static int parse_all_ways(const struct run *base, const char *in, char **out)
{
	size_t len = strlen(in);
	struct run o = *base;
	char *ref, *t;
	int rc, rc2;

	o.split = 0;
	rc = run(&o, in, len, &ref);
	o.split = 1;
	rc2 = run(&o, in, len, &t);
	assert_int_equal(rc2, rc);
	agree(ref, t);
	free(t);
	for (size_t k = 1; k < len; k++) {
		o.split = 3;
		o.seed = (unsigned)k;
		rc2 = run(&o, in, len, &t);
		assert_int_equal(rc2, rc);
		agree(ref, t);
		free(t);
	}
	for (unsigned s = 1; s <= 50; s++) {
		o.split = 2;
		o.seed = s;
		rc2 = run(&o, in, len, &t);
		assert_int_equal(rc2, rc);
		agree(ref, t);
		free(t);
	}
	*out = ref;
	return rc;
}

static int req(const char *in, char **out)
{
	struct run o = {.type = PX_HTTP1_REQUEST};

	return parse_all_ways(&o, in, out);
}

static int resp(enum px_http1_method m, bool finish, const char *in, char **out)
{
	struct run o = {.type = PX_HTTP1_RESPONSE, .expect = m, .finish = finish};

	return parse_all_ways(&o, in, out);
}

#define EXPECT_REQ(in, code, transcript) \
	do { \
		char *t_; \
		assert_int_equal(req((in), &t_), (code)); \
		assert_string_equal(t_, (transcript)); \
		free(t_); \
	} while (0)
/* only the outcome matters */
#define EXPECT_REQ_RC(in, code) \
	do { \
		char *t_; \
		int rc_ = req((in), &t_); \
		if (rc_ != (code)) \
			fail_msg("%s: got %d (%s), want %d\n%s", (in), rc_, px_http1_strerror(rc_), (code), t_); \
		free(t_); \
	} while (0)

/* ---- request line, headers ---- */

static void test_simple_get(void **state)
{
	EXPECT_REQ("GET /a?b=c HTTP/1.1\r\nHost: example\r\nAccept:  */*  \r\nX-Empty:\r\n\r\n",
		   PX_HTTP1_DONE,
		   " M=GET T=/a?b=c H=Host V=example H=Accept V=*/* H=X-Empty V="
		   " |HC v=1.1 st=0 meth=1 body=0 cl=0 ka=1 up=0 tun=0 exp=0 conn=0 n=3 |MC bytes=0 |DONE@64\n");
}

static void test_value_whitespace(void **state)
{
	/* interior whitespace kept, leading and trailing OWS dropped, even when
	 * a chunk ends inside the trailing run */
	EXPECT_REQ("GET / HTTP/1.1\r\nHost: h\r\nX-A: \t a \t b \t \r\n\r\n", PX_HTTP1_DONE,
		   " M=GET T=/ H=Host V=h H=X-A V=a \t b"
		   " |HC v=1.1 st=0 meth=1 body=0 cl=0 ka=1 up=0 tun=0 exp=0 conn=0 n=2 |MC bytes=0 |DONE@44\n");
	/* runs of whitespace inside a value are bounded */
	{
		char big[300];

		snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\nX: a%65sb\r\n\r\n", "");
		EXPECT_REQ_RC(big, PX_HTTP1_EHEADER_VALUE);
		snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\nX: a%64sb\r\n\r\n", "");
		EXPECT_REQ_RC(big, PX_HTTP1_DONE);
	}
	/* obs-text passes, control bytes do not */
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n", PX_HTTP1_EHEADER_VALUE);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", PX_HTTP1_EHEADER_VALUE);
}

static void test_request_line(void **state)
{
	EXPECT_REQ_RC("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_DONE); /* leading CRLFs */
	EXPECT_REQ_RC("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_EBARE_LF);
	EXPECT_REQ_RC("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_EMETHOD);
	EXPECT_REQ_RC("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("GET /\r\n\r\n", PX_HTTP1_EVERSION); /* HTTP/0.9 */
	EXPECT_REQ_RC("GET / http/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_EVERSION);
	EXPECT_REQ_RC("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", PX_HTTP1_EVERSION);
	EXPECT_REQ_RC("GET / HTTP/1.10\r\nHost: h\r\n\r\n", PX_HTTP1_EVERSION);
	EXPECT_REQ_RC("GET / HTTP/2.0\r\nHost: h\r\n\r\n", PX_HTTP1_EVERSION_UNSUPPORTED);
	EXPECT_REQ_RC("GET / HTTP/0.9\r\nHost: h\r\n\r\n", PX_HTTP1_EVERSION_UNSUPPORTED);
	EXPECT_REQ_RC("GET / HTTP/1.1\nHost: h\r\n\r\n", PX_HTTP1_EBARE_LF);
	EXPECT_REQ_RC("GET / HTTP/1.1\rHost: h\r\n\r\n", PX_HTTP1_EBARE_LF);
	/* HTTP/1.2 is read as 1.1 (RFC 9110 §2.5); any token is a method */
	EXPECT_REQ("PURGE /x HTTP/1.2\r\nHost: h\r\n\r\n", PX_HTTP1_DONE,
		   " M=PURGE T=/x H=Host V=h"
		   " |HC v=1.1 st=0 meth=0 body=0 cl=0 ka=1 up=0 tun=0 exp=0 conn=0 n=1 |MC bytes=0 |DONE@30\n");
	/* the four forms of request-target (RFC 9112 §3.2) */
	EXPECT_REQ_RC("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("GET * HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("GET http://h/a?b HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("GET svn+ssh:x HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("GET h/a HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("GET h HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("GET :x HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	/* found by fuzz_http1: a colon after a non-scheme byte does not make a scheme,
	 * whatever the chunk boundaries */
	EXPECT_REQ_RC("GET a?b:c HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", PX_HTTP1_ETARGET);
	EXPECT_REQ_RC("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", PX_HTTP1_DONE);
	/* methods are case-sensitive: "get" is not GET */
	{
		char *t;

		assert_int_equal(req("get / HTTP/1.1\r\nHost: h\r\n\r\n", &t), PX_HTTP1_DONE);
		assert_non_null(strstr(t, "meth=0 "));
		free(t);
	}
}

static void test_header_syntax(void **state)
{
	/* whitespace before the colon (RFC 9112 §5.1: must be rejected) */
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost : h\r\n\r\n", PX_HTTP1_EHEADER_NAME);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello", PX_HTTP1_EHEADER_NAME);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n", PX_HTTP1_EHEADER_NAME);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", PX_HTTP1_EHEADER_NAME);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", PX_HTTP1_EHEADER_NAME);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", PX_HTTP1_EHEADER_NAME);
	/* obs-fold, also as a way to hide Transfer-Encoding */
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", PX_HTTP1_EOBS_FOLD);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tTransfer-Encoding: chunked\r\n\r\n", PX_HTTP1_EOBS_FOLD);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\n Host: h\r\n\r\n", PX_HTTP1_EOBS_FOLD);
	/* bare LF and bare CR, in values and at the end of the head */
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", PX_HTTP1_EBARE_LF);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\n\n", PX_HTTP1_EBARE_LF);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", PX_HTTP1_EBARE_LF);
	{
		static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
		struct run o = {.type = PX_HTTP1_REQUEST};
		char *t;

		assert_int_equal(run(&o, nul, sizeof(nul) - 1, &t), PX_HTTP1_EHEADER_VALUE);
		free(t);
	}
}

static void test_host(void **state)
{
	EXPECT_REQ_RC("GET / HTTP/1.1\r\n\r\n", PX_HTTP1_EHOST);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", PX_HTTP1_EHOST);
	EXPECT_REQ_RC("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", PX_HTTP1_EHOST);
	EXPECT_REQ_RC("GET / HTTP/1.0\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("GET / HTTP/1.1\r\nHost:\r\n\r\n", PX_HTTP1_DONE); /* empty Host is allowed */
}

/* ---- Content-Length ---- */

static void test_content_length(void **state)
{
	/* the body ends at Content-Length; what follows is the next message */
	EXPECT_REQ("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET", 0,
		   " M=POST T=/p H=Host V=h H=Content-Length V=5"
		   " |HC v=1.1 st=0 meth=3 body=1 cl=5 ka=1 up=0 tun=0 exp=0 conn=0 n=2 B=hello |MC bytes=5 |DONE@53\n"
		   " M=GET");
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n1234567", PX_HTTP1_DONE);
	/* the same value twice is one value (RFC 9110 §8.6); different ones are refused */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", PX_HTTP1_DONE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", PX_HTTP1_ECL_CONFLICT);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 03\r\n\r\nabc", PX_HTTP1_DONE);
	/* only 1*DIGIT */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 3\r\n\r\nabc", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3a\r\n\r\nabc", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  3 \t\r\n\r\nabc", PX_HTTP1_DONE);
	/* overflow: 2^63 and beyond */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", PX_HTTP1_ECONTENT_LENGTH);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n", 0);
}

/* ---- Transfer-Encoding, chunked ---- */

static void test_chunked(void **state)
{
	EXPECT_REQ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "5;name=val;x=\"q\"\r\nhello\r\nA \t; ext\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
		   PX_HTTP1_DONE,
		   " M=POST T=/ H=Host V=h H=Transfer-Encoding V=chunked"
		   " |HC v=1.1 st=0 meth=3 body=2 cl=0 ka=1 up=0 tun=0 exp=0 conn=0 n=2"
		   " B=hello0123456789 H=X-Trailer V=t |MC bytes=15 |DONE@122\n");
	/* case-insensitive coding names, other codings before chunked, several lines */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD\r\n\r\n0\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", PX_HTTP1_DONE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked,\r\n\r\n0\r\n\r\n", PX_HTTP1_DONE);
	/* a request whose last coding is not chunked has no length: 400 */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", PX_HTTP1_ETE_CHUNKED);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", PX_HTTP1_ETE_CHUNKED);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", PX_HTTP1_ETE_CHUNKED);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", PX_HTTP1_ETE_CHUNKED);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", PX_HTTP1_ETE_CHUNKED);
	/* codings we do not know: 501 (identity is gone since RFC 7230) */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", PX_HTTP1_ETE_UNKNOWN);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", PX_HTTP1_ETE_UNKNOWN);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", PX_HTTP1_ETE_UNKNOWN);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", PX_HTTP1_ETE_UNKNOWN);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked x\r\n\r\n", PX_HTTP1_ETE_UNKNOWN);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", PX_HTTP1_ETE_UNKNOWN);
	/* chunk framing */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", PX_HTTP1_ECHUNK);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", PX_HTTP1_ECHUNK);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", PX_HTTP1_EBARE_LF);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", PX_HTTP1_ECHUNK);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", PX_HTTP1_ECHUNK);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", PX_HTTP1_ECHUNK);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", PX_HTTP1_ECHUNK);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n", PX_HTTP1_ECHUNK);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX : y\r\n\r\n", PX_HTTP1_EHEADER_NAME);
	/* overflow: 16 hex digits fit (below 2^63 with 15), 17 do not */
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nab", 0);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", PX_HTTP1_ECHUNK_SIZE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff0\r\n", PX_HTTP1_ECHUNK_SIZE);
	/* the chunk size line is bounded */
	{
		struct buf b;

		buf_init(&b, 1 << 20);
		buf_printf(&b, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;");
		for (int i = 0; i < PX_HTTP1_DEFAULT_MAX_LINE; i++)
			buf_append(&b, "x", 1);
		buf_printf(&b, "\r\na\r\n0\r\n\r\n");
		{
			struct run o = {.type = PX_HTTP1_REQUEST};
			char *t;

			assert_int_equal(run(&o, b.data, b.len, &t), PX_HTTP1_ECHUNK);
			free(t);
		}
		buf_free(&b);
	}
}

/* ---- request smuggling: both framings, and how they are disguised ---- */

static void test_smuggling(void **state)
{
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", PX_HTTP1_ECL_AND_TE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX", PX_HTTP1_ECL_AND_TE);
	EXPECT_REQ_RC("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX", PX_HTTP1_ECL_AND_TE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: identity\r\n\r\n", PX_HTTP1_ETE_UNKNOWN);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: \r\n\r\n", PX_HTTP1_ECL_AND_TE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding : chunked\r\n\r\n", PX_HTTP1_EHEADER_NAME);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n", PX_HTTP1_EHEADER_VALUE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\nX", PX_HTTP1_DONE);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n Transfer-Encoding: chunked\r\n\r\n", PX_HTTP1_EOBS_FOLD);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\nTransfer-Encoding: chunked\r\n\r\n", PX_HTTP1_EBARE_LF);
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 6\r\n\r\n", PX_HTTP1_ECL_CONFLICT);
	/* trailers cannot change the framing after the fact */
	{
		char *t;

		assert_int_equal(req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
				     "Content-Length: 5\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", &t), PX_HTTP1_DONE);
		assert_non_null(strstr(t, "|DONE@80\n M=GET"));
		free(t);
	}
}

/* ---- connection management ---- */

static const char *hc_of(const char *t)
{
	const char *h = strstr(t, "|HC ");

	return h != NULL ? h : "";
}

static void expect_ka(const char *in, const char *want)
{
	char *t;

	assert_true(req(in, &t) > 0);
	if (strstr(hc_of(t), want) == NULL)
		fail_msg("%s\nwant %s in\n%s", in, want, t);
	free(t);
}

static void test_keep_alive(void **state)
{
	expect_ka("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "ka=1 up=0 tun=0 exp=0 conn=0 ");
	expect_ka("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "ka=0 up=0 tun=0 exp=0 conn=1 ");
	expect_ka("GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Foo, CLOSE\r\n\r\n", "ka=0 up=0 tun=0 exp=0 conn=9 ");
	expect_ka("GET / HTTP/1.0\r\n\r\n", "ka=0 ");
	expect_ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "ka=1 up=0 tun=0 exp=0 conn=2 ");
	expect_ka("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", "ka=0 ");
	expect_ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", "ka=0 ");
	/* chunked in HTTP/1.0: read it, then close (RFC 9112 §6.1) */
	expect_ka("POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "ka=0 ");
}

static void test_upgrade_connect(void **state)
{
	EXPECT_REQ("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
		   PX_HTTP1_EPASSTHROUGH,
		   " M=GET T=/ws H=Host V=h H=Connection V=Upgrade H=Upgrade V=websocket"
		   " |HC v=1.1 st=0 meth=1 body=0 cl=0 ka=1 up=1 tun=1 exp=0 conn=4 n=3 |MC bytes=0 |DONE@70\n |TUNNEL rest=7");
	/* Upgrade without Connection: upgrade is only a header */
	expect_ka("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", "up=0 tun=0 ");
	/* an upgrade request with a body: the body first, then the tunnel */
	{
		char *t;

		assert_int_equal(req("POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
				     "Content-Length: 2\r\n\r\nhiTUNNEL", &t), PX_HTTP1_EPASSTHROUGH);
		assert_non_null(strstr(t, "B=hi |MC bytes=2 |DONE@84\n |TUNNEL rest=6"));
		free(t);
	}
	EXPECT_REQ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01",
		   PX_HTTP1_EPASSTHROUGH,
		   " M=CONNECT T=example.com:443 H=Host V=example.com:443"
		   " |HC v=1.1 st=0 meth=6 body=0 cl=0 ka=1 up=0 tun=1 exp=0 conn=0 n=1 |MC bytes=0 |DONE@59\n |TUNNEL rest=3");
	/* after reset (the upstream refused the upgrade) parsing goes on */
	{
		static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
					 "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
		struct px_http1 *p = px_http1_new(PX_HTTP1_REQUEST, NULL, NULL, NULL);
		size_t c, c2;

		assert_int_equal(px_http1_feed(p, in, sizeof(in) - 1, &c), PX_HTTP1_DONE);
		assert_true(px_http1_msg(p)->tunnel);
		assert_int_equal(px_http1_feed(p, in + c, sizeof(in) - 1 - c, &c2), PX_HTTP1_EPASSTHROUGH);
		px_http1_reset(p);
		assert_int_equal(px_http1_feed(p, in + c, sizeof(in) - 1 - c, &c2), PX_HTTP1_DONE);
		assert_int_equal(c + c2, sizeof(in) - 1);
		assert_false(px_http1_msg(p)->tunnel);
		px_http1_free(p);
	}
}

static void test_expect(void **state)
{
	expect_ka("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", "exp=1 ");
	expect_ka("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx", "exp=1 ");
	EXPECT_REQ_RC("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", PX_HTTP1_EEXPECT);
	expect_ka("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", "exp=0 ");
	assert_int_equal(px_http1_status(PX_HTTP1_REQUEST, PX_HTTP1_EEXPECT), 417);
	/* the headers-complete callback sees the flag before any body byte is
	 * wanted, so the proxy can answer 100 or forward the expectation */
}

static void test_pipelining(void **state)
{
	static const char in[] =
		"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
		"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
		"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
		"\r\nGET /4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
	char *t;

	assert_int_equal(req(in, &t), PX_HTTP1_DONE);
	assert_string_equal(t,
		" M=GET T=/1 H=Host V=h |HC v=1.1 st=0 meth=1 body=0 cl=0 ka=1 up=0 tun=0 exp=0 conn=0 n=1 |MC bytes=0 |DONE@28\n"
		" M=POST T=/2 H=Host V=h H=Content-Length V=3 |HC v=1.1 st=0 meth=3 body=1 cl=3 ka=1 up=0 tun=0 exp=0 conn=0 n=2 B=abc |MC bytes=3 |DONE@79\n"
		" M=POST T=/3 H=Host V=h H=Transfer-Encoding V=chunked |HC v=1.1 st=0 meth=3 body=2 cl=0 ka=1 up=0 tun=0 exp=0 conn=0 n=2 B=de |MC bytes=2 |DONE@148\n"
		" M=GET T=/4 H=Host V=h H=Connection V=close |HC v=1.1 st=0 meth=1 body=0 cl=0 ka=0 up=0 tun=0 exp=0 conn=1 n=2 |MC bytes=0 |DONE@197\n");
	free(t);
	/* an error in the second message leaves the first one delivered */
	assert_int_equal(req("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", &t), PX_HTTP1_EHOST);
	assert_non_null(strstr(t, "|DONE@28\n M=GET T=/2"));
	free(t);
}

/* ---- responses ---- */

static void test_responses(void **state)
{
	char *t;

	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &t), PX_HTTP1_DONE);
	assert_string_equal(t, " R=OK H=Content-Length V=2"
			    " |HC v=1.1 st=200 meth=1 body=1 cl=2 ka=1 up=0 tun=0 exp=0 conn=0 n=1 B=ok |MC bytes=2 |DONE@40\n");
	free(t);
	/* HEAD, 204 and 304 have no body whatever the headers say */
	assert_int_equal(resp(PX_HTTP1_M_HEAD, false, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", &t), PX_HTTP1_DONE);
	assert_non_null(strstr(t, "body=0 cl=20 ka=1"));
	assert_non_null(strstr(t, "|DONE@39\n R=No Content"));
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", &t), PX_HTTP1_DONE);
	assert_non_null(strstr(t, "body=0 "));
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", &t), PX_HTTP1_DONE);
	assert_non_null(strstr(t, "body=0 "));
	free(t);
	/* 1xx: its own message, no body; the final response follows */
	assert_int_equal(resp(PX_HTTP1_M_POST, false, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
			      "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", &t), PX_HTTP1_DONE);
	assert_non_null(strstr(t, "st=100 meth=3 body=0"));
	assert_non_null(strstr(t, "|DONE@25\n R=Early Hints"));
	assert_non_null(strstr(t, "st=201 meth=3 body=0"));
	free(t);
	/* 101: the rest is the upgraded protocol */
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05", &t),
			 PX_HTTP1_EPASSTHROUGH);
	assert_non_null(strstr(t, "up=1 tun=1 "));
	assert_non_null(strstr(t, "|TUNNEL rest=2"));
	free(t);
	/* a 2xx to CONNECT is a tunnel, a 407 is not */
	assert_int_equal(resp(PX_HTTP1_M_CONNECT, false, "HTTP/1.1 200 Connection established\r\n\r\nxx", &t), PX_HTTP1_EPASSTHROUGH);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_CONNECT, false, "HTTP/1.1 407 Auth\r\nContent-Length: 1\r\n\r\nx", &t), PX_HTTP1_DONE);
	free(t);
	/* no length: the body runs until the connection closes */
	assert_int_equal(resp(PX_HTTP1_M_GET, true, "HTTP/1.1 200 OK\r\n\r\nall of it", &t), PX_HTTP1_DONE);
	assert_string_equal(t, " R=OK |HC v=1.1 st=200 meth=1 body=3 cl=0 ka=0 up=0 tun=0 exp=0 conn=0 n=0 B=all of it |MC bytes=9 |FIN 1");
	free(t);
	/* a response whose last coding is not chunked: until close too */
	assert_int_equal(resp(PX_HTTP1_M_GET, true, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", &t), PX_HTTP1_DONE);
	assert_non_null(strstr(t, "body=3 "));
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &t), PX_HTTP1_DONE);
	assert_non_null(strstr(t, "B=abc |MC bytes=3"));
	free(t);
	/* status line forms */
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", &t), PX_HTTP1_DONE);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.0 200 \r\nContent-Length: 0\r\n\r\n", &t), PX_HTTP1_DONE);
	assert_non_null(strstr(t, "v=1.0 st=200 meth=1 body=0 cl=0 ka=0"));
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 20 OK\r\n\r\n", &t), PX_HTTP1_ESTATUS);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 099 Low\r\n\r\n", &t), PX_HTTP1_ESTATUS);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 2000 OK\r\n\r\n", &t), PX_HTTP1_ESTATUS);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "ICY 200 OK\r\n\r\n", &t), PX_HTTP1_ESTATUS);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, false, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", &t), PX_HTTP1_ECL_AND_TE);
	free(t);
	assert_int_equal(px_http1_status(PX_HTTP1_RESPONSE, PX_HTTP1_ECL_AND_TE), 502);
	/* closed in the middle */
	assert_int_equal(resp(PX_HTTP1_M_GET, true, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", &t), PX_HTTP1_EEOF);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, true, "HTTP/1.1 200 OK\r\nContent-Le", &t), PX_HTTP1_EEOF);
	free(t);
	assert_int_equal(resp(PX_HTTP1_M_GET, true, "", &t), 0);
	free(t);
}

/* ---- limits ---- */

static char *make_req(size_t target_len, size_t nheaders, size_t value_len)
{
	struct buf b;

	buf_init(&b, 1 << 24);
	buf_printf(&b, "GET /");
	for (size_t i = 1; i < target_len; i++)
		buf_append(&b, "a", 1);
	buf_printf(&b, " HTTP/1.1\r\nHost: h\r\n");
	for (size_t i = 1; i < nheaders; i++) {
		buf_printf(&b, "X-%zu: ", i);
		for (size_t j = 0; j < value_len; j++)
			buf_append(&b, "v", 1);
		buf_printf(&b, "\r\n");
	}
	buf_printf(&b, "\r\n");
	return buf_steal(&b);
}

static int parse_lim(const struct px_http1_limits *lim, const char *in)
{
	struct run o = {.type = PX_HTTP1_REQUEST, .lim = lim};
	char *t;
	int rc;

	o.split = 0;
	rc = run(&o, in, strlen(in), &t);
	free(t);
	o.split = 2;
	o.seed = 7;
	{
		int rc2 = run(&o, in, strlen(in), &t);

		free(t);
		assert_int_equal(rc2, rc);
	}
	return rc;
}

static void test_limits(void **state)
{
	struct px_http1_limits lim = {.max_line = 100, .max_headers = 5, .max_header_bytes = 200};
	char *in;

	/* request line: "GET " + target + " HTTP/1.1" is 13 + target bytes */
	in = make_req(87, 1, 0);
	assert_int_equal(parse_lim(&lim, in), PX_HTTP1_DONE);
	free(in);
	in = make_req(88, 1, 0);
	assert_int_equal(parse_lim(&lim, in), PX_HTTP1_ELINE_TOO_LONG);
	free(in);
	assert_int_equal(px_http1_status(PX_HTTP1_REQUEST, PX_HTTP1_ELINE_TOO_LONG), 414);
	/* header count: Host plus 4 is 5 */
	in = make_req(1, 5, 1);
	assert_int_equal(parse_lim(&lim, in), PX_HTTP1_DONE);
	free(in);
	in = make_req(1, 6, 1);
	assert_int_equal(parse_lim(&lim, in), PX_HTTP1_ETOO_MANY_HEADERS);
	free(in);
	/* header bytes: "Host: h\r\n" (9) + "X-1: " + v + "\r\n" (7 + v) + "\r\n" (2) */
	in = make_req(1, 2, 182);
	assert_int_equal(parse_lim(&lim, in), PX_HTTP1_DONE);
	free(in);
	in = make_req(1, 2, 183);
	assert_int_equal(parse_lim(&lim, in), PX_HTTP1_EHEADERS_TOO_BIG);
	free(in);
	assert_int_equal(px_http1_status(PX_HTTP1_REQUEST, PX_HTTP1_ETOO_MANY_HEADERS), 431);
	assert_int_equal(px_http1_status(PX_HTTP1_REQUEST, PX_HTTP1_EHEADERS_TOO_BIG), 431);
	/* defaults */
	in = make_req(PX_HTTP1_DEFAULT_MAX_LINE - 13, 1, 0);
	assert_int_equal(parse_lim(NULL, in), PX_HTTP1_DONE);
	free(in);
	in = make_req(PX_HTTP1_DEFAULT_MAX_LINE - 12, 1, 0);
	assert_int_equal(parse_lim(NULL, in), PX_HTTP1_ELINE_TOO_LONG);
	free(in);
	in = make_req(1, PX_HTTP1_DEFAULT_MAX_HEADERS + 1, 1);
	assert_int_equal(parse_lim(NULL, in), PX_HTTP1_ETOO_MANY_HEADERS);
	free(in);
	in = make_req(1, 3, PX_HTTP1_DEFAULT_MAX_HEADER_BYTES / 2);
	assert_int_equal(parse_lim(NULL, in), PX_HTTP1_EHEADERS_TOO_BIG);
	free(in);
	/* trailers have the same limits */
	lim.max_headers = 2;
	assert_int_equal(parse_lim(&lim, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n\r\n"),
			 PX_HTTP1_DONE);
	assert_int_equal(parse_lim(&lim, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
			 PX_HTTP1_ETOO_MANY_HEADERS);
}

static void test_status_map(void **state)
{
	static const struct { int code, status; } tab[] = {
		{PX_HTTP1_EMETHOD, 400}, {PX_HTTP1_ETARGET, 400}, {PX_HTTP1_EVERSION, 400},
		{PX_HTTP1_EVERSION_UNSUPPORTED, 505}, {PX_HTTP1_ELINE_TOO_LONG, 414},
		{PX_HTTP1_EHEADER_NAME, 400}, {PX_HTTP1_EOBS_FOLD, 400}, {PX_HTTP1_EBARE_LF, 400},
		{PX_HTTP1_ECONTENT_LENGTH, 400}, {PX_HTTP1_ECL_CONFLICT, 400}, {PX_HTTP1_ECL_AND_TE, 400},
		{PX_HTTP1_ETE_UNKNOWN, 501}, {PX_HTTP1_ETE_CHUNKED, 400}, {PX_HTTP1_ECHUNK, 400},
		{PX_HTTP1_ECHUNK_SIZE, 400}, {PX_HTTP1_ETOO_MANY_HEADERS, 431},
		{PX_HTTP1_EHEADERS_TOO_BIG, 431}, {PX_HTTP1_EHOST, 400}, {PX_HTTP1_EEXPECT, 417},
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		assert_int_equal(px_http1_status(PX_HTTP1_REQUEST, tab[i].code), tab[i].status);
		assert_int_equal(px_http1_status(PX_HTTP1_RESPONSE, tab[i].code), 502);
		assert_string_not_equal(px_http1_strerror(tab[i].code), "unknown error");
	}
}

static void test_callback_stop(void **state)
{
	static const char in[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
	/* stop at each callback in turn: the parser reports it and calls no more */
	for (int k = 1; k <= 7; k++) {
		struct rec r = {0};
		struct px_http1 *p = px_http1_new(PX_HTTP1_REQUEST, NULL, &CB, &r);
		size_t c;
		int rc;

		buf_init(&r.out, 4096);
		r.stop_at = k;
		rc = px_http1_feed(p, in, sizeof(in) - 1, &c);
		if (k <= 6)
			assert_int_equal(rc, PX_HTTP1_ECALLBACK);
		assert_int_equal(r.calls, k);
		r.errored = true;
		assert_int_equal(px_http1_feed(p, in, sizeof(in) - 1, &c), rc);
		assert_int_equal(c, 0);
		assert_int_equal(r.calls_after_error, 0);
		buf_free(&r.out);
		px_http1_free(p);
	}
}

/* ---- forwarded headers ---- */

struct hcoll {
	struct px_http1_header h[32];
	char store[4096];
	size_t used, n;
	bool in_value;
};

static int hc_name(void *ud, const char *at, size_t len)
{
	struct hcoll *c = ud;

	if (c->in_value || c->n == 0) {
		c->n++;
		c->h[c->n - 1].name = c->store + c->used;
		c->in_value = false;
	}
	memcpy(c->store + c->used, at, len);
	c->used += len;
	c->h[c->n - 1].name_len += len;
	return 0;
}

static int hc_value(void *ud, const char *at, size_t len)
{
	struct hcoll *c = ud;

	if (!c->in_value)
		c->h[c->n - 1].value = c->store + c->used;
	c->in_value = true;
	memcpy(c->store + c->used, at, len);
	c->used += len;
	c->h[c->n - 1].value_len += len;
	return 0;
}

static char *forward(const char *in, const struct px_http1_forward *f, int *rc_out)
{
	struct px_http1_callbacks cb = {.on_header_name = hc_name, .on_header_value = hc_value};
	struct hcoll c;
	struct px_http1 *p;
	struct buf out;
	char *err = NULL;
	size_t used;
	int rc;

	memset(&c, 0, sizeof(c));
	p = px_http1_new(PX_HTTP1_REQUEST, NULL, &cb, &c);
	/* one byte at a time: the collector joins the pieces */
	for (size_t i = 0; in[i] != '\0'; i++) {
		rc = px_http1_feed(p, in + i, 1, &used);
		assert_true(rc >= 0);
	}
	buf_init(&out, 4096);
	rc = px_http1_forward_headers(px_http1_msg(p), c.h, c.n, f, &out, &err);
	px_http1_free(p);
	*rc_out = rc;
	if (rc != 0) {
		buf_free(&out);
		return err;
	}
	free(err);
	return out.data != NULL ? buf_steal(&out) : strdup("");
}

static void test_forward(void **state)
{
	struct px_http1_forward f = {
		.client_addr = "10.0.0.7", .xff_append = true, .proto = "https", .via = "weft-proxy",
		.by_id = "spiffe://example.org/ns/default/dc/dc1/svc/api",
		.peer_id = "spiffe://example.org/ns/default/dc/dc1/svc/web",
	};
	char *o;
	int rc;

	o = forward("GET / HTTP/1.1\r\nHost: api\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n"
		    "X-Secret: s\r\nTE: trailers\r\nProxy-Connection: x\r\nUpgrade: websocket\r\nAccept: */*\r\n"
		    "X-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\nX-Forwarded-Proto: http\r\n"
		    "X-Forwarded-Client-Cert: By=spiffe://evil;URI=spiffe://example.org/ns/default/dc/dc1/svc/admin\r\n"
		    "Via: 1.1 other\r\n\r\n", &f, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(o,
		"Host: api\r\nAccept: */*\r\nVia: 1.1 other\r\n"
		"Via: 1.1 weft-proxy\r\n"
		"X-Forwarded-For: 1.2.3.4, 5.6.7.8, 10.0.0.7\r\n"
		"X-Forwarded-Proto: https\r\n"
		"X-Forwarded-Client-Cert: By=spiffe://example.org/ns/default/dc/dc1/svc/api;"
		"URI=spiffe://example.org/ns/default/dc/dc1/svc/web\r\n\r\n");
	free(o);

	/* replace X-Forwarded-For; no identity: any XFCC the client sent is
	 * still removed; Connection cannot remove the framing or Host */
	f.xff_append = false;
	f.peer_id = NULL;
	f.proto = NULL;
	f.via = NULL;
	o = forward("POST / HTTP/1.0\r\nHost: api\r\nConnection: Content-Length, Host, keep-alive\r\n"
		    "Content-Length: 2\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http\r\n"
		    "X-FORWARDED-CLIENT-CERT: URI=spiffe://forged\r\n\r\nhi", &f, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(o, "Host: api\r\nContent-Length: 2\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n");
	free(o);
	/* Host is added only when the request has none */
	f.host = "api.local";
	o = forward("GET / HTTP/1.0\r\n\r\n", &f, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(o, "Host: api.local\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n");
	free(o);
	o = forward("GET / HTTP/1.0\r\nHost: x\r\n\r\n", &f, &rc);
	assert_string_equal(o, "Host: x\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n");
	free(o);
	f.host = NULL;

	/* upgrades keep Upgrade and say so in Connection */
	memset(&f, 0, sizeof(f));
	o = forward("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &f, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(o, "Host: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
	free(o);

	/* an identity that would add XFCC elements or header lines is refused */
	f.peer_id = "spiffe://a;URI=spiffe://admin";
	o = forward("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f, &rc);
	assert_int_equal(rc, WEFT_EINVAL);
	assert_non_null(strstr(o, "XFCC"));
	free(o);
	f.peer_id = "spiffe://a\r\nX-Admin: 1";
	o = forward("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f, &rc);
	assert_int_equal(rc, WEFT_EINVAL);
	free(o);
	f.peer_id = NULL;
	f.client_addr = "1.2.3.4\r\nX: y";
	o = forward("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f, &rc);
	assert_int_equal(rc, WEFT_EINVAL);
	free(o);
}

/* ---- round trip: what a proxy built on this module sends is itself one
 * well-framed message with the same body ---- */

struct relay {
	struct hcoll h;
	struct buf line, body, out;
	struct px_http1_forward f;
	bool chunked, in_target;
	int messages;
};

static int rl_method(void *ud, const char *at, size_t len)
{
	return buf_append(&((struct relay *)ud)->line, at, len) != 0;
}

static int rl_target(void *ud, const char *at, size_t len)
{
	struct relay *r = ud;

	if (!r->in_target)
		buf_append(&r->line, " ", 1);
	r->in_target = true;
	return buf_append(&r->line, at, len) != 0;
}

static int rl_hc(void *ud, const struct px_http1_msg *m)
{
	struct relay *r = ud;
	char *err = NULL;

	buf_printf(&r->out, "%.*s HTTP/1.1\r\n", (int)r->line.len, r->line.data);
	if (px_http1_forward_headers(m, r->h.h, r->h.n, &r->f, &r->out, &err) != 0) {
		free(err);
		return 1;
	}
	r->chunked = m->body == PX_HTTP1_BODY_CHUNKED;
	/* trailers come through the same callbacks: drop them (a proxy may) */
	r->h.n = 0;
	return 0;
}

static int rl_body(void *ud, const char *at, size_t len)
{
	struct relay *r = ud;

	buf_append(&r->body, at, len);
	if (r->chunked)
		buf_printf(&r->out, "%zx\r\n", len);
	buf_append(&r->out, at, len);
	if (r->chunked)
		buf_printf(&r->out, "\r\n");
	return 0;
}

static int rl_mc(void *ud, const struct px_http1_msg *m)
{
	struct relay *r = ud;

	if (r->chunked)
		buf_printf(&r->out, "0\r\n\r\n");
	r->messages++;
	return 0;
}

static void test_forward_roundtrip(void **state)
{
	static const char *const reqs[] = {
		"POST /a HTTP/1.1\r\nHost: h\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 11\r\n\r\nhello world",
		"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\nTE: trailers\r\n\r\n"
		"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nDigest: z\r\n\r\n",
		"GET /c HTTP/1.0\r\nConnection: keep-alive\r\nX-Forwarded-Client-Cert: URI=spiffe://forged\r\n\r\n",
	};
	struct px_http1_callbacks cb = {
		.on_method = rl_method, .on_target = rl_target, .on_header_name = hc_name,
		.on_header_value = hc_value, .on_headers_complete = rl_hc, .on_body = rl_body,
		.on_message_complete = rl_mc,
	};

	for (size_t k = 0; k < sizeof(reqs) / sizeof(reqs[0]); k++)
		for (unsigned seed = 0; seed < 20; seed++) {
			struct relay r;
			struct px_http1 *p, *q;
			struct run o = {.type = PX_HTTP1_REQUEST};
			size_t pos = 0, len = strlen(reqs[k]), used;
			unsigned rnd = seed * 7919u + 1;
			char *t1, *t2;
			int rc = 0;

			memset(&r, 0, sizeof(r));
			buf_init(&r.line, 4096);
			buf_init(&r.body, 4096);
			buf_init(&r.out, 1 << 16);
			r.f.peer_id = "spiffe://td/svc/web";
			r.f.via = "weft-proxy";
			r.f.host = "h"; /* the HTTP/1.0 request has none */
			/* the hcoll callbacks take the relay: hcoll is its first member */
			p = px_http1_new(PX_HTTP1_REQUEST, NULL, &cb, &r);
			while (pos < len) {
				size_t n = 1 + (rnd = rnd * 1103515245u + 12345u) % 9;

				if (seed == 0 || n > len - pos)
					n = len - pos;
				rc = px_http1_feed(p, reqs[k] + pos, n, &used);
				assert_true(rc >= 0);
				pos += used;
			}
			assert_int_equal(rc, PX_HTTP1_DONE);
			assert_int_equal(r.messages, 1);
			/* the forwarded bytes parse as exactly one message, with the same
			 * body, no hop-by-hop field, and our XFCC only */
			q = px_http1_new(PX_HTTP1_REQUEST, NULL, NULL, NULL);
			assert_int_equal(px_http1_feed(q, r.out.data, r.out.len, &used), PX_HTTP1_DONE);
			assert_int_equal(used, r.out.len);
			assert_int_equal(px_http1_msg(q)->body_bytes, r.body.len);
			px_http1_free(q);
			assert_null(strstr(r.out.data, "X-Hop"));
			assert_null(strstr(r.out.data, "\r\nTE:"));
			assert_null(strstr(r.out.data, "forged"));
			assert_non_null(strstr(r.out.data, "X-Forwarded-Client-Cert: URI=spiffe://td/svc/web\r\n"));
			/* same method, target and body as the original */
			assert_true(run(&o, reqs[k], len, &t1) > 0);
			assert_true(run(&o, r.out.data, r.out.len, &t2) > 0);
			{
				const char *h1 = strstr(t1, " H=");

				assert_non_null(h1);
				assert_memory_equal(t1, t2, (size_t)(h1 - t1) + 1);
			}
			{
				const char *b1 = strstr(t1, " B="), *b2 = strstr(t2, " B=");

				if (r.body.len > 0) {
					assert_non_null(b1);
					assert_non_null(b2);
					assert_memory_equal(b1 + 3, r.body.data, r.body.len);
					assert_memory_equal(b2 + 3, r.body.data, r.body.len);
				}
			}
			free(t1);
			free(t2);
			px_http1_free(p);
			buf_free(&r.line);
			buf_free(&r.body);
			buf_free(&r.out);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_value_whitespace),
		cmocka_unit_test(test_request_line),
		cmocka_unit_test(test_header_syntax),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_upgrade_connect),
		cmocka_unit_test(test_expect),
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_status_map),
		cmocka_unit_test(test_callback_stop),
		cmocka_unit_test(test_forward),
		cmocka_unit_test(test_forward_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
