/* Differential test: the proxy's HTTP/1.1 parser (dataplane/px_http1.c)
 * against an independent one, Debian's libhttp-parser (nodejs http-parser
 * 2.9), over tests/fuzz/corpus/http1/ and variants generated from it
 * (header case, whitespace, line endings, folding, every truncation, and
 * a set of byte substitutions at every position).
 *
 * Both must agree on accept/reject and, message by message, on method,
 * target, version, status, header list, trailers, body bytes and
 * keep-alive. Where they differ on purpose, the difference must match one
 * of the reviewed rules in DIFFS below (also in docs/proxy-http.md); any
 * other difference fails the test. Skipped (exit 77) without
 * libhttp-parser.
 *
 * DIFF_SHOW=<case label> prints that case; DIFF_KEYS=1 prints one line per
 * unexplained difference (DIFF_KEYS=2 with its label), to sort and count. */
#include "config.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "px_http1.h"

#ifndef HAVE_HTTP_PARSER
int main(void)
{
	printf("SKIP: libhttp-parser not found at configure time (Debian package libhttp-parser-dev): "
	       "the differential test of the HTTP/1.1 parser did not run\n");
	return 77;
}
#else
#include <http_parser.h>

/* ---- one transcript format for both parsers ---- */

enum field { F_NONE, F_METHOD, F_URL, F_NAME, F_VALUE, F_BODY };

struct tr {
	struct buf all;     /* completed messages */
	struct buf cur;     /* the message in progress */
	struct buf name, value;
	enum field last;
	bool head_done;
	uint64_t body_len;
	uint32_t body_hash;
	unsigned messages;
};

static void tr_init(struct tr *t)
{
	memset(t, 0, sizeof(*t));
	buf_init(&t->all, 1 << 22);
	buf_init(&t->cur, 1 << 22);
	buf_init(&t->name, 1 << 20);
	buf_init(&t->value, 1 << 20);
	t->body_hash = 2166136261u;
}

static void tr_free(struct tr *t)
{
	buf_free(&t->all);
	buf_free(&t->cur);
	buf_free(&t->name);
	buf_free(&t->value);
}

static void flush_header(struct tr *t)
{
	size_t vl = t->value.len;

	if (t->last != F_VALUE && t->last != F_NAME)
		return;
	/* http-parser keeps trailing whitespace in values; RFC 9112 §5 says it
	 * is not part of the value: compare without it */
	while (vl > 0 && (t->value.data[vl - 1] == ' ' || t->value.data[vl - 1] == '\t'))
		vl--;
	buf_printf(&t->cur, "%s %.*s: %.*s\n", t->head_done ? "T" : "H", (int)t->name.len,
		   t->name.data ? t->name.data : "", (int)vl, t->value.data ? t->value.data : "");
	buf_reset(&t->name);
	buf_reset(&t->value);
}

static void tr_piece(struct tr *t, enum field f, const char *at, size_t len)
{
	if (f == F_NAME && t->last == F_VALUE)
		flush_header(t);
	switch (f) {
	case F_METHOD:
		if (t->last != F_METHOD)
			buf_printf(&t->cur, "M ");
		buf_append(&t->cur, at, len);
		break;
	case F_URL:
		if (t->last != F_URL)
			buf_printf(&t->cur, "\nU ");
		buf_append(&t->cur, at, len);
		break;
	case F_NAME:
		if (t->last == F_URL || t->last == F_METHOD)
			buf_printf(&t->cur, "\n");
		buf_append(&t->name, at, len);
		break;
	case F_VALUE:
		buf_append(&t->value, at, len);
		break;
	case F_BODY:
		t->body_len += len;
		for (size_t i = 0; i < len; i++)
			t->body_hash = (t->body_hash ^ (unsigned char)at[i]) * 16777619u;
		break;
	default:
		break;
	}
	t->last = f;
}

static void tr_head_done(struct tr *t, int major, int minor, int status)
{
	flush_header(t);
	buf_printf(&t->cur, "\nV %d.%d S %d\n", major, minor, status);
	t->head_done = true;
	t->last = F_NONE;
}

static void tr_message_done(struct tr *t, int keep_alive)
{
	flush_header(t);
	buf_printf(&t->cur, "B %llu %08x\nK %d\n--\n", (unsigned long long)t->body_len, t->body_hash,
		   keep_alive);
	buf_append(&t->all, t->cur.data ? t->cur.data : "", t->cur.len);
	buf_reset(&t->cur);
	t->head_done = false;
	t->last = F_NONE;
	t->body_len = 0;
	t->body_hash = 2166136261u;
	t->messages++;
}

/* ---- the outcome of one parse ---- */

enum outcome { O_OK, O_ERR, O_TUNNEL };

struct result {
	struct tr t;
	enum outcome o;
	size_t tunnel_rest;
	int code;             /* weft: px_http1 code; hp: http_errno */
};

/* ---- http-parser side ---- */

struct hp_ctx {
	struct result *r;
	int expect;           /* response: 1 HEAD, 2 CONNECT */
};

static int hp_url(http_parser *p, const char *at, size_t n)
{
	struct hp_ctx *c = p->data;

	if (c->r->t.last == F_NONE && p->type == HTTP_REQUEST) {
		const char *m = http_method_str((enum http_method)p->method);

		tr_piece(&c->r->t, F_METHOD, m, strlen(m));
	}
	tr_piece(&c->r->t, F_URL, at, n);
	return 0;
}
static int hp_field(http_parser *p, const char *at, size_t n)
{
	struct hp_ctx *c = p->data;

	tr_piece(&c->r->t, F_NAME, at, n);
	return 0;
}
static int hp_value(http_parser *p, const char *at, size_t n)
{
	struct hp_ctx *c = p->data;

	tr_piece(&c->r->t, F_VALUE, at, n);
	return 0;
}
static int hp_body(http_parser *p, const char *at, size_t n)
{
	struct hp_ctx *c = p->data;

	tr_piece(&c->r->t, F_BODY, at, n);
	return 0;
}
static int hp_headers_complete(http_parser *p)
{
	struct hp_ctx *c = p->data;

	tr_head_done(&c->r->t, p->http_major, p->http_minor, p->type == HTTP_RESPONSE ? p->status_code : 0);
	if (p->type == HTTP_RESPONSE) {
		if (c->expect == 2 && p->status_code >= 200 && p->status_code < 300)
			return 2; /* a tunnel, no body */
		if (c->expect == 1)
			return 1; /* HEAD: no body */
	}
	return 0;
}
static int hp_message_complete(http_parser *p)
{
	struct hp_ctx *c = p->data;

	tr_message_done(&c->r->t, http_should_keep_alive(p));
	return 0;
}

static void run_hp(bool response, int expect, const char *in, size_t len, struct result *r)
{
	http_parser_settings s = {
		.on_url = hp_url, .on_header_field = hp_field, .on_header_value = hp_value,
		.on_headers_complete = hp_headers_complete, .on_body = hp_body,
		.on_message_complete = hp_message_complete,
	};
	struct hp_ctx c = {.r = r, .expect = expect};
	http_parser p;
	size_t n;

	http_parser_init(&p, response ? HTTP_RESPONSE : HTTP_REQUEST);
	p.data = &c;
	n = http_parser_execute(&p, &s, in, len);
	r->code = HTTP_PARSER_ERRNO(&p);
	if (r->code == HPE_OK && p.upgrade) {
		r->o = O_TUNNEL;
		r->tunnel_rest = len - n;
		return;
	}
	if (r->code == HPE_OK) {
		http_parser_execute(&p, &s, NULL, 0); /* EOF */
		r->code = HTTP_PARSER_ERRNO(&p);
	}
	r->o = r->code == HPE_OK ? O_OK : O_ERR;
}

/* ---- weft side ---- */

static int w_method(void *u, const char *at, size_t n) { tr_piece(u, F_METHOD, at, n); return 0; }
static int w_target(void *u, const char *at, size_t n) { tr_piece(u, F_URL, at, n); return 0; }
static int w_name(void *u, const char *at, size_t n) { tr_piece(u, F_NAME, at, n); return 0; }
static int w_value(void *u, const char *at, size_t n) { tr_piece(u, F_VALUE, at, n); return 0; }
static int w_body(void *u, const char *at, size_t n) { tr_piece(u, F_BODY, at, n); return 0; }
static int w_hc(void *u, const struct px_http1_msg *m)
{
	tr_head_done(u, 1, m->version_minor, m->type == PX_HTTP1_RESPONSE ? m->status : 0);
	return 0;
}
static int w_mc(void *u, const struct px_http1_msg *m)
{
	tr_message_done(u, m->keep_alive);
	return 0;
}

static void run_weft(bool response, int expect, const char *in, size_t len, struct result *r)
{
	static const struct px_http1_callbacks cb = {
		.on_method = w_method, .on_target = w_target, .on_header_name = w_name,
		.on_header_value = w_value, .on_headers_complete = w_hc, .on_body = w_body,
		.on_message_complete = w_mc,
	};
	struct px_http1 *p = px_http1_new(response ? PX_HTTP1_RESPONSE : PX_HTTP1_REQUEST, NULL, &cb, &r->t);
	size_t pos = 0;
	int rc = 0;

	px_http1_expect(p, expect == 1 ? PX_HTTP1_M_HEAD : expect == 2 ? PX_HTTP1_M_CONNECT : PX_HTTP1_M_GET);
	while (pos < len) {
		size_t used;

		rc = px_http1_feed(p, in + pos, len - pos, &used);
		pos += used;
		if (rc == PX_HTTP1_EPASSTHROUGH) {
			r->o = O_TUNNEL;
			r->tunnel_rest = len - pos;
			r->code = 0;
			goto out;
		}
		if (rc < 0)
			break;
	}
	if (rc == PX_HTTP1_DONE && px_http1_msg(p)->tunnel) {
		r->o = O_TUNNEL; /* the input ended with the head that starts a tunnel */
		r->tunnel_rest = 0;
		r->code = 0;
		goto out;
	}
	if (rc >= 0)
		rc = px_http1_finish(p);
	r->code = rc < 0 ? rc : 0;
	r->o = rc < 0 ? O_ERR : O_OK;
out:
	px_http1_free(p);
}

/* ---- the reviewed differences ---- */

/* Where the two parsers may disagree, and why (docs/proxy-http.md has the
 * same list). A difference is explained when one side refused a message
 * with the code a rule names while the other accepted it, or when the
 * rule's own test says so. Anything else fails. */
enum side { WEFT_REFUSES, HP_REFUSES, OTHER };

struct diff_rule {
	const char *name;
	enum side side;
	int code;             /* WEFT_REFUSES: a px_http1 code; HP_REFUSES: an http_errno */
	bool (*when)(const struct result *w, const struct result *h);
	const char *why;
	unsigned seen;
};

/* Everything but the K (keep-alive) lines is the same. */
static bool same_but_keep_alive(const struct result *w, const struct result *h)
{
	const char *a = w->t.all.data ? w->t.all.data : "", *b = h->t.all.data ? h->t.all.data : "";

	if (w->o != h->o || w->t.messages != h->t.messages || w->t.all.len != h->t.all.len)
		return false;
	for (size_t i = 0; i < w->t.all.len; i++) {
		if (a[i] == b[i])
			continue;
		if (i < 2 || a[i - 2] != 'K' || a[i - 1] != ' ')
			return false;
	}
	return true;
}

static bool conn_list(const struct result *w, const struct result *h)
{
	const char *c = w->t.all.data ? strstr(w->t.all.data, "H Connection: ") : NULL;

	if (c == NULL)
		c = w->t.all.data ? strcasestr(w->t.all.data, "\nH connection: ") : NULL;
	return c != NULL && same_but_keep_alive(w, h);
}

/* "Transfer-Encoding: ,chunked" in a response: weft reads chunks,
 * http-parser does not see chunked and reads until close */
static bool te_list_response(const struct result *w, const struct result *h)
{
	return w->t.all.data != NULL && strcasestr(w->t.all.data, "H Transfer-Encoding: ,") != NULL &&
	       strstr(w->t.all.data, "\nV 1.1 S 0\n") == NULL;
}

/* weft: any 101 switches protocols; http-parser wants Upgrade headers too
 * and otherwise reads the new protocol's bytes as HTTP */
static bool status_101(const struct result *w, const struct result *h)
{
	return w->o == O_TUNNEL && h->o == O_ERR && w->t.all.data != NULL &&
	       strstr(w->t.all.data, " S 101\n") != NULL;
}

static struct diff_rule DIFFS[] = {
	{"bare-lf", WEFT_REFUSES, PX_HTTP1_EBARE_LF, NULL,
	 "a line ended by LF alone (or CR alone): http-parser accepts it; peers that disagree "
	 "on line ends can be made to see different messages. RFC 9112 §2.2 allows refusing", 0},
	{"obs-fold", WEFT_REFUSES, PX_HTTP1_EOBS_FOLD, NULL,
	 "line folding: http-parser joins the lines; RFC 9112 §5.2 lets a server refuse with 400", 0},
	{"header-name", WEFT_REFUSES, PX_HTTP1_EHEADER_NAME, NULL,
	 "whitespace or another non-token byte in a field name or before the colon: http-parser "
	 "takes it into the name (\"Transfer-Encoding \" smuggling); RFC 9112 §5.1 requires 400", 0},
	{"header-value", WEFT_REFUSES, PX_HTTP1_EHEADER_VALUE, NULL,
	 "DEL or another control byte in a field value (RFC 9110 §5.5)", 0},
	{"request-line", WEFT_REFUSES, PX_HTTP1_EVERSION, NULL,
	 "an HTTP/0.9 request (no version) or more than one SP between the parts of the "
	 "request line (RFC 9112 §3)", 0},
	{"target", WEFT_REFUSES, PX_HTTP1_ETARGET, NULL,
	 "a request-target byte outside VCHAR, or a target in none of the four forms of "
	 "RFC 9112 §3.2 (\"*\" only for OPTIONS, host:port only for CONNECT)", 0},
	{"host", WEFT_REFUSES, PX_HTTP1_EHOST, NULL,
	 "an HTTP/1.1 request needs exactly one Host (RFC 9112 §3.2); http-parser does not check", 0},
	{"expect", WEFT_REFUSES, PX_HTTP1_EEXPECT, NULL,
	 "an expectation other than 100-continue gets 417 (RFC 9110 §10.1.1)", 0},
	{"te-unknown", WEFT_REFUSES, PX_HTTP1_ETE_UNKNOWN, NULL,
	 "a transfer coding we cannot frame (identity, a typo) is 501, never ignored", 0},
	{"status-line", WEFT_REFUSES, PX_HTTP1_ESTATUS, NULL,
	 "a control byte in the reason phrase or a malformed status code", 0},
	{"chunk-line", WEFT_REFUSES, PX_HTTP1_ECHUNK, NULL,
	 "a control byte in a chunk extension, or whitespace after a chunk size with no extension", 0},
	{"version", WEFT_REFUSES, PX_HTTP1_EVERSION_UNSUPPORTED, NULL,
	 "HTTP/0.x or 2 and up in an HTTP/1 message: 505", 0},
	{"any-method", HP_REFUSES, HPE_INVALID_METHOD, NULL,
	 "http-parser knows a fixed list of methods; a proxy forwards any token (RFC 9110 §9.1)", 0},
	{"cl-repeat", HP_REFUSES, HPE_UNEXPECTED_CONTENT_LENGTH, NULL,
	 "the same Content-Length twice is one value (RFC 9110 §8.6); values that differ are "
	 "refused by both", 0},
	{"cl-ows", HP_REFUSES, HPE_INVALID_CONTENT_LENGTH, NULL,
	 "HTAB after the Content-Length digits is OWS (RFC 9110 §5.6.3); http-parser allows only SP", 0},
	{"te-list", HP_REFUSES, HPE_INVALID_TRANSFER_ENCODING, NULL,
	 "an empty list element in Transfer-Encoding (\",chunked\") is allowed (RFC 9110 §5.6.1)", 0},
	{"te-list-response", OTHER, 0, te_list_response,
	 "the same in a response: http-parser misses chunked and reads until close", 0},
	{"url-syntax", HP_REFUSES, HPE_INVALID_URL, NULL,
	 "http-parser parses more of the URL (e.g. the host of a CONNECT target); weft checks "
	 "the form and bytes and leaves the rest to routing", 0},
	{"connection-list", OTHER, 0, conn_list,
	 "Connection is a list: weft finds \"close\" in \",close\" or \"foo, close\" where "
	 "http-parser sometimes does not, and then keep-alive differs", 0},
	{"status-101", OTHER, 0, status_101,
	 "a 101 response switches protocols even without Upgrade headers (RFC 9110 §15.2.2)", 0},
};

static struct diff_rule *explain(const struct result *w, const struct result *h)
{
	for (size_t i = 0; i < sizeof(DIFFS) / sizeof(DIFFS[0]); i++) {
		struct diff_rule *d = &DIFFS[i];

		/* one side refused a message the other accepted (and maybe went on
		 * to refuse a later one) */
		if (d->side == WEFT_REFUSES && w->o == O_ERR && w->code == d->code &&
		    (h->o != O_ERR || h->t.messages > w->t.messages))
			return d;
		if (d->side == HP_REFUSES && h->o == O_ERR && h->code == d->code &&
		    (w->o != O_ERR || w->t.messages > h->t.messages))
			return d;
		if (d->side == OTHER && d->when(w, h))
			return d;
	}
	return NULL;
}

/* ---- driver ---- */

static unsigned n_cases, n_agree_ok, n_agree_err, n_explained, n_failed;

static void print_escaped(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r')
			fputs("\\r", f);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

static void check_case(const char *label, bool response, int expect, const char *in, size_t len)
{
	struct result w, h;
	bool same;

	memset(&w, 0, sizeof(w));
	memset(&h, 0, sizeof(h));
	tr_init(&w.t);
	tr_init(&h.t);
	run_weft(response, expect, in, len, &w);
	run_hp(response, expect, in, len, &h);
	n_cases++;
	/* completed messages must match; on error only those before it */
	same = w.o == h.o && w.tunnel_rest == h.tunnel_rest && w.t.all.len == h.t.all.len &&
	       (w.t.all.len == 0 || memcmp(w.t.all.data, h.t.all.data, w.t.all.len) == 0);
	if (same) {
		if (w.o == O_ERR)
			n_agree_err++;
		else
			n_agree_ok++;
	} else {
		struct diff_rule *d = explain(&w, &h);
		/* an explained refusal: the messages before it still agree */
		size_t k = w.t.all.len < h.t.all.len ? w.t.all.len : h.t.all.len;
		bool prefix = k == 0 || memcmp(w.t.all.data, h.t.all.data, k) == 0;

		if (d != NULL && (prefix || d->side == OTHER)) {
			d->seen++;
			n_explained++;
		} else {
			n_failed++;
			if (getenv("DIFF_KEYS"))
				fprintf(stderr, "KEY w=%d/%d h=%d/%s same_msgs=%d %s\n", w.o, w.code, h.o, http_errno_name((enum http_errno)h.code), prefix, getenv("DIFF_KEYS")[0]=='2' ? label : "");
			if ((n_failed <= 20 && !getenv("DIFF_KEYS")) ||
			    (getenv("DIFF_SHOW") && strcmp(getenv("DIFF_SHOW"), label) == 0)) {
				fprintf(stderr, "DIFF %s (%s): weft %s %d (%s), http-parser %s %d (%s)\n  input: ",
					label, response ? "response" : "request",
					w.o == O_OK ? "ok" : w.o == O_ERR ? "error" : "tunnel", w.code,
					px_http1_strerror(w.code),
					h.o == O_OK ? "ok" : h.o == O_ERR ? "error" : "tunnel", h.code,
					http_errno_name((enum http_errno)h.code));
				print_escaped(stderr, in, len);
				fprintf(stderr, "\n  weft:\n%.*s  http-parser:\n%.*s\n", (int)w.t.all.len,
					w.t.all.data ? w.t.all.data : "", (int)h.t.all.len,
					h.t.all.data ? h.t.all.data : "");
			}
		}
	}
	tr_free(&w.t);
	tr_free(&h.t);
}

/* Variants of one corpus message. */
static void variants(const char *name, bool response, int expect, const char *in, size_t len)
{
	static const char subst[] = {'\0', ' ', '\t', '\r', '\n', ':', ',', ';', 'x', '0', '\x7f', '\xff', '"'};
	char *v = malloc(len * 2 + 64), label[300];
	size_t n;

	check_case(name, response, expect, in, len);
	/* header names in lower and upper case */
	for (int up = 0; up < 2; up++) {
		bool line_start = false, in_name = false;

		memcpy(v, in, len);
		for (size_t i = 0; i < len; i++) {
			if (line_start && v[i] != '\r')
				in_name = true;
			if (v[i] == ':' || v[i] == '\r')
				in_name = false;
			if (in_name && v[i] >= 'A' && v[i] <= 'z')
				v[i] = up ? (char)(v[i] & ~0x20) : (char)(v[i] | 0x20);
			line_start = i > 0 && v[i] == '\n' && v[i - 1] == '\r';
		}
		snprintf(label, sizeof(label), "%s/names-%s", name, up ? "upper" : "lower");
		check_case(label, response, expect, v, len);
	}
	/* whitespace around every field value */
	n = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n' && n > 0 && memchr(in, ':', i) != NULL) {
			v[n++] = ' ';
			v[n++] = '\t';
		}
		v[n++] = in[i];
		if (in[i] == ':' && i + 1 < len && in[i + 1] == ' ')
			v[n++] = '\t';
	}
	snprintf(label, sizeof(label), "%s/ows", name);
	check_case(label, response, expect, v, n);
	/* bare LF line ends */
	n = 0;
	for (size_t i = 0; i < len; i++)
		if (!(in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
			v[n++] = in[i];
	snprintf(label, sizeof(label), "%s/bare-lf", name);
	check_case(label, response, expect, v, n);
	/* the first header folded onto two lines */
	{
		const char *colon = memchr(in, ':', len);

		if (colon != NULL) {
			size_t at = (size_t)(colon - in) + 2;

			if (at < len) {
				memcpy(v, in, at);
				memcpy(v + at, "x\r\n ", 4);
				memcpy(v + at + 4, in + at, len - at);
				snprintf(label, sizeof(label), "%s/fold", name);
				check_case(label, response, expect, v, len + 4);
			}
		}
	}
	/* every truncation */
	for (size_t k = 0; k < len; k++) {
		snprintf(label, sizeof(label), "%s/cut@%zu", name, k);
		check_case(label, response, expect, in, k);
	}
	/* byte substitutions at every position */
	for (size_t k = 0; k < len; k++)
		for (size_t s = 0; s < sizeof(subst); s++) {
			if (in[k] == subst[s])
				continue;
			memcpy(v, in, len);
			v[k] = subst[s];
			snprintf(label, sizeof(label), "%s/byte@%zu=0x%02x", name, k, (unsigned char)subst[s]);
			check_case(label, response, expect, v, len);
		}
	free(v);
}

static int load_corpus(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int files = 0;

	if (d == NULL) {
		fprintf(stderr, "cannot open %s\n", dir);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char path[8192], *data;
		FILE *f;
		long size;

		if (e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path))
			continue;
		f = fopen(path, "rb");
		if (f == NULL)
			continue;
		fseek(f, 0, SEEK_END);
		size = ftell(f);
		fseek(f, 0, SEEK_SET);
		data = malloc((size_t)size + 1);
		if (size > 0 && fread(data, 1, (size_t)size, f) == (size_t)size && size < 65536) {
			/* first byte as in fuzz_http1.c: bit 0 response, bits 1-2 the
			 * request method (GET, HEAD, CONNECT, POST); bit 3 (small
			 * limits) is not used here */
			unsigned char ctl = (unsigned char)data[0];
			int m = (ctl >> 1) & 3;

			variants(e->d_name, ctl & 1, m == 1 ? 1 : m == 2 ? 2 : 0, data + 1, (size_t)size - 1);
			files++;
		}
		free(data);
		fclose(f);
	}
	closedir(d);
	return files;
}

int main(void)
{
	const char *src = getenv("WEFT_SRCDIR");
	char dir[4096];
	int files;

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/http1", src ? src : ".");
	files = load_corpus(dir);
	if (files <= 0) {
		fprintf(stderr, "no corpus in %s\n", dir);
		return 1;
	}
	printf("%d corpus files, %u cases: %u agree (accepted), %u agree (refused), "
	       "%u differ as reviewed, %u differ unexplained\n",
	       files, n_cases, n_agree_ok, n_agree_err, n_explained, n_failed);
	for (size_t i = 0; i < sizeof(DIFFS) / sizeof(DIFFS[0]); i++)
		printf("  %-16s %6u  %s\n", DIFFS[i].name, DIFFS[i].seen, DIFFS[i].why);
	/* a corpus that no longer parses would make agreement vacuous */
	if (n_agree_ok < (unsigned)files) {
		fprintf(stderr, "only %u cases accepted by both: is the corpus broken?\n", n_agree_ok);
		return 1;
	}
	return n_failed == 0 ? 0 : 1;
}
#endif
