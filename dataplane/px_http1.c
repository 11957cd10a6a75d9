/* px_http1: incremental HTTP/1.1 parser and framing rules (see px_http1.h
 * and docs/proxy-http.md). One byte-driven state machine; spans are handed
 * out as pointers into the caller's chunk, cut where the chunk ends. */
#include "px_http1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "err.h"

enum state {
	S_START, S_START_LF,
	/* request line */
	S_METHOD, S_TARGET_START, S_TARGET, S_VERSION, S_LINE_CR, S_LINE_LF,
	/* status line */
	S_RVERSION, S_STATUS, S_STATUS_AFTER, S_REASON,
	/* header (and trailer) section */
	S_HDR_START, S_HDR_NAME, S_HDR_LWS, S_HDR_VALUE, S_HDR_VALUE_LF, S_HDR_END_LF,
	/* bodies */
	S_BODY_LENGTH, S_BODY_CLOSE,
	S_CHUNK_SIZE_START, S_CHUNK_SIZE, S_CHUNK_BWS, S_CHUNK_EXT, S_CHUNK_SIZE_LF,
	S_CHUNK_DATA, S_CHUNK_DATA_CR, S_CHUNK_DATA_LF,
	S_TUNNEL, S_ERROR,
};

/* Header fields the framing depends on. */
enum hkind { H_OTHER, H_CONTENT_LENGTH, H_TRANSFER_ENCODING, H_CONNECTION, H_UPGRADE,
	     H_EXPECT, H_HOST };

/* The form of the request-target (RFC 9112 §3.2), checked as it streams. */
enum tkind { TK_ORIGIN, TK_ASTERISK, TK_SCHEME, TK_ABSOLUTE, TK_AUTHORITY };

#define WS_MAX 64   /* longest run of SP/HTAB inside a field value */
#define TOK_MAX 24  /* longest list token we interpret (longer ones are "other") */

struct px_http1 {
	enum px_http1_type type;
	struct px_http1_limits lim;
	struct px_http1_callbacks cb;
	void *ud;
	enum state state;
	int err;
	bool fresh;                     /* no byte of the next message seen yet */
	struct px_http1_msg m;
	enum px_http1_method expect_method;
	uint64_t offset;                /* bytes into the current message */
	size_t line_len, head_bytes, chunk_line;
	unsigned nfields;
	bool in_trailers;
	unsigned idx;                   /* position in "HTTP/x.y" or status digits */
	enum tkind tk;
	char meth[8];
	size_t meth_len;
	char name[24];
	size_t name_len;
	enum hkind hkind;
	bool value_emitted;
	char ws[WS_MAX];
	size_t nws;
	char tok[TOK_MAX];
	size_t tok_len;
	bool tok_bad, tok_ws;
	uint64_t cl_cur;
	bool cl_digits, cl_end;
	bool te_chunked, te_last_chunked;
	unsigned hosts;
	bool upgrade_hdr;
	uint64_t remaining;
};

static const char tchar_tab[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
	['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
	['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
	['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
	['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
	['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
	['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
	['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline bool is_tchar(unsigned char c) { return tchar_tab[c]; }
static inline bool is_ws(unsigned char c) { return c == ' ' || c == '\t'; }
/* field-vchar: VCHAR / obs-text */
static inline bool is_fvchar(unsigned char c) { return (c > 0x20 && c != 0x7f); }
static inline bool is_target(unsigned char c) { return c > 0x20 && c < 0x7f; }
static inline char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c; }

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

struct px_http1 *px_http1_new(enum px_http1_type type, const struct px_http1_limits *limits,
			      const struct px_http1_callbacks *cb, void *ud)
{
	struct px_http1 *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->type = type;
	if (limits != NULL)
		p->lim = *limits;
	if (p->lim.max_line == 0)
		p->lim.max_line = PX_HTTP1_DEFAULT_MAX_LINE;
	if (p->lim.max_headers == 0)
		p->lim.max_headers = PX_HTTP1_DEFAULT_MAX_HEADERS;
	if (p->lim.max_header_bytes == 0)
		p->lim.max_header_bytes = PX_HTTP1_DEFAULT_MAX_HEADER_BYTES;
	if (cb != NULL)
		p->cb = *cb;
	p->ud = ud;
	px_http1_reset(p);
	return p;
}

void px_http1_free(struct px_http1 *p)
{
	free(p);
}

static void msg_begin(struct px_http1 *p)
{
	memset(&p->m, 0, sizeof(p->m));
	p->m.type = p->type;
	p->m.method = p->type == PX_HTTP1_RESPONSE ? p->expect_method : PX_HTTP1_M_OTHER;
	p->fresh = false;
	p->offset = 0;
	p->line_len = p->head_bytes = p->chunk_line = 0;
	p->nfields = 0;
	p->in_trailers = false;
	p->idx = 0;
	p->meth_len = 0;
	p->te_chunked = p->te_last_chunked = false;
	p->hosts = 0;
	p->upgrade_hdr = false;
	p->remaining = 0;
}

void px_http1_reset(struct px_http1 *p)
{
	p->state = S_START;
	p->err = 0;
	msg_begin(p);
	p->fresh = true;
}

void px_http1_expect(struct px_http1 *p, enum px_http1_method request_method)
{
	p->expect_method = request_method;
}

const struct px_http1_msg *px_http1_msg(const struct px_http1 *p)
{
	return &p->m;
}

uint64_t px_http1_error_offset(const struct px_http1 *p)
{
	return p->offset;
}

static enum px_http1_method method_of(const char *s, size_t n)
{
	static const struct { const char *name; enum px_http1_method m; } tab[] = {
		{"GET", PX_HTTP1_M_GET}, {"HEAD", PX_HTTP1_M_HEAD}, {"POST", PX_HTTP1_M_POST},
		{"PUT", PX_HTTP1_M_PUT}, {"DELETE", PX_HTTP1_M_DELETE},
		{"CONNECT", PX_HTTP1_M_CONNECT}, {"OPTIONS", PX_HTTP1_M_OPTIONS},
		{"TRACE", PX_HTTP1_M_TRACE}, {"PATCH", PX_HTTP1_M_PATCH},
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == n && memcmp(tab[i].name, s, n) == 0)
			return tab[i].m;
	return PX_HTTP1_M_OTHER;
}

static enum hkind hkind_of(const struct px_http1 *p)
{
	static const struct { const char *name; enum hkind k; } tab[] = {
		{"content-length", H_CONTENT_LENGTH}, {"transfer-encoding", H_TRANSFER_ENCODING},
		{"connection", H_CONNECTION}, {"upgrade", H_UPGRADE}, {"expect", H_EXPECT},
		{"host", H_HOST},
	};
	if (p->in_trailers || p->name_len > sizeof(p->name))
		return H_OTHER;
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == p->name_len && memcmp(tab[i].name, p->name, p->name_len) == 0)
			return tab[i].k;
	return H_OTHER;
}

static bool tok_is(const struct px_http1 *p, const char *s)
{
	return !p->tok_bad && strlen(s) == p->tok_len && memcmp(s, p->tok, p->tok_len) == 0;
}

/* One element of a comma-separated list value ended. */
static int tok_end(struct px_http1 *p)
{
	int rc = 0;

	if (p->tok_len == 0 && !p->tok_bad)
		goto out; /* empty list element: allowed and ignored */
	switch (p->hkind) {
	case H_TRANSFER_ENCODING:
		if (tok_is(p, "chunked")) {
			if (p->te_chunked) {
				rc = PX_HTTP1_ETE_CHUNKED;
				goto out;
			}
			p->te_chunked = p->te_last_chunked = true;
		} else if (tok_is(p, "gzip") || tok_is(p, "x-gzip") || tok_is(p, "deflate") ||
			   tok_is(p, "compress") || tok_is(p, "x-compress")) {
			p->te_last_chunked = false;
		} else {
			rc = PX_HTTP1_ETE_UNKNOWN;
			goto out;
		}
		break;
	case H_CONNECTION:
		if (tok_is(p, "close"))
			p->m.connection |= PX_HTTP1_CONN_CLOSE;
		else if (tok_is(p, "keep-alive"))
			p->m.connection |= PX_HTTP1_CONN_KEEP_ALIVE;
		else if (tok_is(p, "upgrade"))
			p->m.connection |= PX_HTTP1_CONN_UPGRADE;
		else
			p->m.connection |= PX_HTTP1_CONN_OTHER;
		break;
	case H_EXPECT:
		if (tok_is(p, "100-continue"))
			p->m.expect_continue = true;
		else
			rc = PX_HTTP1_EEXPECT;
		break;
	default:
		break;
	}
out:
	p->tok_len = 0;
	p->tok_bad = p->tok_ws = false;
	return rc;
}

/* A byte of a field value that the framing depends on (after leading OWS). */
static int value_byte(struct px_http1 *p, unsigned char c)
{
	switch (p->hkind) {
	case H_CONTENT_LENGTH:
		if (c >= '0' && c <= '9') {
			if (p->cl_end || p->cl_cur > (UINT64_C(0x7fffffffffffffff) - (c - '0')) / 10)
				return PX_HTTP1_ECONTENT_LENGTH;
			p->cl_cur = p->cl_cur * 10 + (uint64_t)(c - '0');
			p->cl_digits = true;
		} else if (is_ws(c)) {
			p->cl_end = true;
		} else {
			return PX_HTTP1_ECONTENT_LENGTH;
		}
		return 0;
	case H_TRANSFER_ENCODING:
	case H_CONNECTION:
	case H_EXPECT:
		if (c == ',')
			return tok_end(p);
		if (is_ws(c)) {
			if (p->tok_len > 0 || p->tok_bad)
				p->tok_ws = true;
			return 0;
		}
		if (p->tok_ws || p->tok_len == sizeof(p->tok))
			p->tok_bad = true;
		else
			p->tok[p->tok_len++] = lower(c);
		return 0;
	default:
		return 0;
	}
}

static int value_end(struct px_http1 *p)
{
	switch (p->hkind) {
	case H_CONTENT_LENGTH:
		if (!p->cl_digits)
			return PX_HTTP1_ECONTENT_LENGTH;
		if (p->m.has_content_length && p->m.content_length != p->cl_cur)
			return PX_HTTP1_ECL_CONFLICT;
		p->m.has_content_length = true;
		p->m.content_length = p->cl_cur;
		return 0;
	case H_TRANSFER_ENCODING:
	case H_CONNECTION:
	case H_EXPECT:
		return tok_end(p);
	default:
		return 0;
	}
}

/* The header section ended: decide the framing (RFC 9112 §6). */
static int head_done(struct px_http1 *p)
{
	struct px_http1_msg *m = &p->m;
	bool v11 = m->version_minor >= 1;

	m->headers = p->nfields;
	if (m->has_content_length && m->has_transfer_encoding)
		return PX_HTTP1_ECL_AND_TE;
	if (v11)
		m->keep_alive = !(m->connection & PX_HTTP1_CONN_CLOSE);
	else
		m->keep_alive = (m->connection & PX_HTTP1_CONN_KEEP_ALIVE) &&
				!(m->connection & PX_HTTP1_CONN_CLOSE);
	if (m->has_transfer_encoding && !v11)
		m->keep_alive = false; /* RFC 9112 §6.1: close after it */
	if (!v11)
		m->expect_continue = false; /* RFC 9110 §10.1.1: ignored from HTTP/1.0 */
	if (p->type == PX_HTTP1_REQUEST) {
		if (p->hosts > 1 || (v11 && p->hosts == 0))
			return PX_HTTP1_EHOST;
		if (m->has_transfer_encoding) {
			if (!p->te_last_chunked)
				return PX_HTTP1_ETE_CHUNKED;
			m->body = PX_HTTP1_BODY_CHUNKED;
		} else if (m->has_content_length && m->content_length > 0) {
			m->body = PX_HTTP1_BODY_LENGTH;
		}
		m->upgrade = (m->connection & PX_HTTP1_CONN_UPGRADE) && p->upgrade_hdr;
		if (m->method == PX_HTTP1_M_CONNECT) {
			m->body = PX_HTTP1_BODY_NONE;
			m->tunnel = true;
		}
		if (m->upgrade)
			m->tunnel = true;
		return 0;
	}
	/* response */
	if (m->status < 200) {
		m->body = PX_HTTP1_BODY_NONE;
		if (m->status == 101)
			m->upgrade = m->tunnel = true;
	} else if (m->method == PX_HTTP1_M_CONNECT && m->status < 300) {
		m->body = PX_HTTP1_BODY_NONE;
		m->tunnel = true;
	} else if (m->method == PX_HTTP1_M_HEAD || m->status == 204 || m->status == 304) {
		m->body = PX_HTTP1_BODY_NONE;
	} else if (m->has_transfer_encoding) {
		m->body = p->te_last_chunked ? PX_HTTP1_BODY_CHUNKED : PX_HTTP1_BODY_CLOSE;
	} else if (m->has_content_length) {
		m->body = m->content_length > 0 ? PX_HTTP1_BODY_LENGTH : PX_HTTP1_BODY_NONE;
	} else {
		m->body = PX_HTTP1_BODY_CLOSE;
	}
	if (m->body == PX_HTTP1_BODY_CLOSE)
		m->keep_alive = false;
	return 0;
}

#define CB_SPAN(name, at, n) \
	do { \
		if (p->cb.name != NULL && p->cb.name(p->ud, (at), (n)) != 0) { \
			rc = PX_HTTP1_ECALLBACK; \
			goto fail; \
		} \
	} while (0)
#define CB_MSG(name) \
	do { \
		if (p->cb.name != NULL && p->cb.name(p->ud, &p->m) != 0) { \
			rc = PX_HTTP1_ECALLBACK; \
			goto fail; \
		} \
	} while (0)
#define FAIL(code) \
	do { \
		rc = (code); \
		goto fail; \
	} while (0)

int px_http1_feed(struct px_http1 *p, const char *data, size_t len, size_t *consumed)
{
	const unsigned char *d = (const unsigned char *)data;
	size_t i = 0, mark = 0;
	bool marked = false;
	int rc = 0;

	*consumed = 0;
	if (p->state == S_ERROR)
		return p->err;
	if (p->state == S_TUNNEL)
		return PX_HTTP1_EPASSTHROUGH;
	if (p->fresh && len > 0)
		msg_begin(p);
	/* a span the previous chunk ended inside goes on from our first byte */
	switch (p->state) {
	case S_METHOD:
	case S_TARGET:
	case S_REASON:
	case S_HDR_NAME:
		marked = true;
		break;
	case S_HDR_VALUE:
		marked = p->nws == 0;
		break;
	default:
		break;
	}

	for (i = 0; i < len; i++) {
		unsigned char c = d[i];

again:
		switch (p->state) {
		case S_START:
			if (c == '\r') {
				p->state = S_START_LF;
				break;
			}
			if (c == '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			if (p->type == PX_HTTP1_RESPONSE) {
				p->state = S_RVERSION;
				p->idx = 0;
				goto again;
			}
			if (!is_tchar(c))
				FAIL(PX_HTTP1_EMETHOD);
			p->state = S_METHOD;
			mark = i;
			marked = true;
			goto again;
		case S_START_LF:
			/* RFC 9112 §2.2: empty lines (CRLF) before a request are ignored */
			if (c != '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			p->state = S_START;
			break;

		/* ---- request line ---- */
		case S_METHOD:
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (is_tchar(c)) {
				if (p->meth_len < sizeof(p->meth))
					p->meth[p->meth_len] = (char)c;
				p->meth_len++;
				break;
			}
			if (c != ' ')
				FAIL(PX_HTTP1_EMETHOD);
			CB_SPAN(on_method, data + mark, i - mark);
			marked = false;
			p->m.method = p->meth_len <= sizeof(p->meth) ? method_of(p->meth, p->meth_len)
								     : PX_HTTP1_M_OTHER;
			p->state = S_TARGET_START;
			break;
		case S_TARGET_START:
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (!is_target(c))
				FAIL(PX_HTTP1_ETARGET);
			if (p->m.method == PX_HTTP1_M_CONNECT && (c == '/' || c == '*'))
				FAIL(PX_HTTP1_ETARGET); /* CONNECT takes host:port */
			else if (p->m.method == PX_HTTP1_M_CONNECT)
				p->tk = TK_AUTHORITY;
			else if (c == '/')
				p->tk = TK_ORIGIN;
			else if (c == '*')
				p->tk = TK_ASTERISK;
			else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
				p->tk = TK_SCHEME;
			else
				FAIL(PX_HTTP1_ETARGET);
			mark = i;
			marked = true;
			p->state = S_TARGET;
			break;
		case S_TARGET: {
			size_t j = i;

			/* absolute-form: scheme ":" ...; asterisk-form: "*" alone */
			while (j < len && p->tk == TK_SCHEME) {
				unsigned char s = d[j];

				if (s == ':')
					p->tk = TK_ABSOLUTE;
				else if (!(((s | 0x20) >= 'a' && (s | 0x20) <= 'z') || (s >= '0' && s <= '9') ||
					   s == '+' || s == '-' || s == '.')) {
					/* neither a scheme nor a path; the line limit is
					 * checked first, as when the bytes come apart */
					p->line_len += j - i + 1;
					i = j;
					FAIL(p->line_len > p->lim.max_line ? PX_HTTP1_ELINE_TOO_LONG
									   : PX_HTTP1_ETARGET);
				}
				j++;
			}
			if (p->tk != TK_ASTERISK)
				while (j < len && is_target(d[j]))
					j++;
			p->line_len += j - i;
			if (p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (j == len) {
				i = len - 1;
				break;
			}
			i = j;
			c = d[i];
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (c == '\r' || c == '\n')
				FAIL(PX_HTTP1_EVERSION); /* HTTP/0.9 request */
			if (c != ' ' || p->tk == TK_SCHEME ||
			    (p->tk == TK_ASTERISK && p->m.method != PX_HTTP1_M_OPTIONS))
				FAIL(PX_HTTP1_ETARGET);
			CB_SPAN(on_target, data + mark, i - mark);
			marked = false;
			p->state = S_VERSION;
			p->idx = 0;
			break;
		}
		case S_VERSION:
		case S_RVERSION:
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (p->idx < 5) {
				if (c != (unsigned char)"HTTP/"[p->idx])
					FAIL(p->type == PX_HTTP1_RESPONSE ? PX_HTTP1_ESTATUS : PX_HTTP1_EVERSION);
			} else if (p->idx == 5 || p->idx == 7) {
				if (c < '0' || c > '9')
					FAIL(PX_HTTP1_EVERSION);
				if (p->idx == 5 && c != '1')
					p->m.version_minor = -1 - (c - '0'); /* remembered: unsupported major */
				else if (p->idx == 7 && p->m.version_minor >= 0)
					p->m.version_minor = c > '1' ? 1 : c - '0';
			} else if (c != '.') {
				FAIL(PX_HTTP1_EVERSION);
			}
			if (++p->idx == 8) {
				if (p->m.version_minor < 0)
					FAIL(PX_HTTP1_EVERSION_UNSUPPORTED);
				if (p->state == S_VERSION) {
					p->state = S_LINE_CR;
				} else {
					p->state = S_STATUS;
					p->idx = 0;
				}
			}
			break;
		case S_LINE_CR:
			if (c == '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			if (c != '\r')
				FAIL(PX_HTTP1_EVERSION);
			p->state = S_LINE_LF;
			break;
		case S_LINE_LF:
			if (c != '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			p->state = S_HDR_START;
			break;

		/* ---- status line ---- */
		case S_STATUS:
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (p->idx == 0) {
				if (c != ' ')
					FAIL(PX_HTTP1_ESTATUS);
				p->idx = 1;
				break;
			}
			if (c < '0' || c > '9')
				FAIL(PX_HTTP1_ESTATUS);
			p->m.status = p->m.status * 10 + (c - '0');
			if (++p->idx == 4) {
				if (p->m.status < 100)
					FAIL(PX_HTTP1_ESTATUS);
				p->state = S_STATUS_AFTER;
			}
			break;
		case S_STATUS_AFTER:
			if (c == '\r') {
				p->state = S_LINE_LF;
				break;
			}
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (c != ' ')
				FAIL(c == '\n' ? PX_HTTP1_EBARE_LF : PX_HTTP1_ESTATUS);
			p->state = S_REASON;
			mark = i + 1;
			marked = true;
			break;
		case S_REASON:
			if (c == '\r') {
				CB_SPAN(on_reason, data + mark, i - mark);
				marked = false;
				p->state = S_LINE_LF;
				break;
			}
			if (++p->line_len > p->lim.max_line)
				FAIL(PX_HTTP1_ELINE_TOO_LONG);
			if (c == '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			if (!is_fvchar(c) && !is_ws(c))
				FAIL(PX_HTTP1_ESTATUS);
			break;

		/* ---- header / trailer section ---- */
		case S_HDR_START:
			if (++p->head_bytes > p->lim.max_header_bytes)
				FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
			if (c == '\r') {
				p->state = S_HDR_END_LF;
				break;
			}
			if (c == '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			if (is_ws(c))
				FAIL(PX_HTTP1_EOBS_FOLD);
			if (!is_tchar(c))
				FAIL(PX_HTTP1_EHEADER_NAME);
			if (++p->nfields > p->lim.max_headers)
				FAIL(PX_HTTP1_ETOO_MANY_HEADERS);
			p->name_len = 0;
			p->state = S_HDR_NAME;
			mark = i;
			marked = true;
			p->head_bytes--;
			goto again;
		case S_HDR_NAME: {
			size_t j = i;

			/* a run of token characters; the first bytes kept lowercased */
			while (j < len && is_tchar(d[j])) {
				if (p->name_len < sizeof(p->name))
					p->name[p->name_len] = lower(d[j]);
				p->name_len++;
				j++;
			}
			p->head_bytes += j - i;
			if (j == len) {
				if (p->head_bytes > p->lim.max_header_bytes)
					FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
				i = len - 1;
				break;
			}
			i = j;
			c = d[i];
			if (++p->head_bytes > p->lim.max_header_bytes)
				FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
			if (c != ':')
				FAIL(PX_HTTP1_EHEADER_NAME); /* includes whitespace before the colon */
			CB_SPAN(on_header_name, data + mark, i - mark);
			marked = false;
			p->hkind = hkind_of(p);
			p->value_emitted = false;
			p->nws = 0;
			p->tok_len = 0;
			p->tok_bad = p->tok_ws = false;
			p->cl_cur = 0;
			p->cl_digits = p->cl_end = false;
			switch (p->hkind) {
			case H_TRANSFER_ENCODING:
				p->m.has_transfer_encoding = true;
				break;
			case H_HOST:
				p->hosts++;
				break;
			case H_UPGRADE:
				p->upgrade_hdr = true;
				break;
			case H_EXPECT:
				if (p->type == PX_HTTP1_RESPONSE)
					p->hkind = H_OTHER;
				break;
			default:
				break;
			}
			p->state = S_HDR_LWS;
			break;
		}
		case S_HDR_LWS:
			if (is_ws(c)) {
				if (++p->head_bytes > p->lim.max_header_bytes)
					FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
				break;
			}
			p->state = S_HDR_VALUE;
			goto again;
		case S_HDR_VALUE: {
			size_t j = i;

			/* the common case: a run of visible characters */
			if ((p->hkind == H_OTHER || p->hkind == H_HOST || p->hkind == H_UPGRADE) &&
			    p->nws == 0) {
				while (j < len && is_fvchar(d[j]))
					j++;
				if (j > i) {
					if (!marked) {
						mark = i;
						marked = true;
					}
					p->head_bytes += j - i;
					if (p->head_bytes > p->lim.max_header_bytes)
						FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
					if (j == len) {
						i = len - 1;
						break;
					}
					i = j;
					c = d[i];
				}
			}
			if (++p->head_bytes > p->lim.max_header_bytes)
				FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
			if (c == '\r') {
				if (marked) {
					CB_SPAN(on_header_value, data + mark, i - mark);
					marked = false;
					p->value_emitted = true;
				}
				if (!p->value_emitted)
					CB_SPAN(on_header_value, data + i, 0);
				p->nws = 0; /* trailing OWS is not part of the value */
				if ((rc = value_end(p)) != 0)
					goto fail;
				p->state = S_HDR_VALUE_LF;
				break;
			}
			if (is_ws(c)) {
				if (p->nws == 0 && marked) {
					CB_SPAN(on_header_value, data + mark, i - mark);
					marked = false;
					p->value_emitted = true;
				}
				if (p->nws == WS_MAX)
					FAIL(PX_HTTP1_EHEADER_VALUE);
				p->ws[p->nws++] = (char)c;
			} else if (is_fvchar(c)) {
				if (p->nws > 0) {
					CB_SPAN(on_header_value, p->ws, p->nws);
					p->nws = 0;
					p->value_emitted = true;
				}
				if (!marked) {
					mark = i;
					marked = true;
				}
			} else if (c == '\n') {
				FAIL(PX_HTTP1_EBARE_LF);
			} else {
				FAIL(PX_HTTP1_EHEADER_VALUE);
			}
			if (p->hkind != H_OTHER && (rc = value_byte(p, c)) != 0)
				goto fail;
			break;
		}
		case S_HDR_VALUE_LF:
			if (++p->head_bytes > p->lim.max_header_bytes)
				FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
			if (c != '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			p->state = S_HDR_START;
			break;
		case S_HDR_END_LF:
			if (c != '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			if (++p->head_bytes > p->lim.max_header_bytes)
				FAIL(PX_HTTP1_EHEADERS_TOO_BIG);
			if (p->in_trailers) {
				i++;
				goto complete;
			}
			if ((rc = head_done(p)) != 0)
				goto fail;
			CB_MSG(on_headers_complete);
			switch (p->m.body) {
			case PX_HTTP1_BODY_NONE:
				i++;
				goto complete;
			case PX_HTTP1_BODY_LENGTH:
				p->remaining = p->m.content_length;
				p->state = S_BODY_LENGTH;
				break;
			case PX_HTTP1_BODY_CHUNKED:
				p->state = S_CHUNK_SIZE_START;
				p->chunk_line = 0;
				break;
			case PX_HTTP1_BODY_CLOSE:
				p->state = S_BODY_CLOSE;
				break;
			}
			break;

		/* ---- bodies ---- */
		case S_BODY_LENGTH:
		case S_CHUNK_DATA: {
			size_t n = len - i;

			if (n > p->remaining)
				n = (size_t)p->remaining;
			p->remaining -= n;
			p->m.body_bytes += n;
			CB_SPAN(on_body, data + i, n);
			i += n - 1;
			if (p->remaining == 0) {
				if (p->state == S_BODY_LENGTH) {
					i++;
					goto complete;
				}
				p->state = S_CHUNK_DATA_CR;
			}
			break;
		}
		case S_BODY_CLOSE:
			p->m.body_bytes += len - i;
			CB_SPAN(on_body, data + i, len - i);
			i = len - 1;
			break;
		case S_CHUNK_SIZE_START:
		case S_CHUNK_SIZE:
		case S_CHUNK_BWS:
		case S_CHUNK_EXT:
			if (++p->chunk_line > p->lim.max_line)
				FAIL(PX_HTTP1_ECHUNK);
			if (p->state == S_CHUNK_SIZE_START || p->state == S_CHUNK_SIZE) {
				int v = hexval(c);

				if (v >= 0) {
					if (p->state == S_CHUNK_SIZE_START) {
						p->remaining = 0;
						p->state = S_CHUNK_SIZE;
					}
					if (p->remaining >> 59)
						FAIL(PX_HTTP1_ECHUNK_SIZE);
					p->remaining = p->remaining * 16 + (uint64_t)v;
					break;
				}
				if (p->state == S_CHUNK_SIZE_START)
					FAIL(c == '\n' ? PX_HTTP1_EBARE_LF : PX_HTTP1_ECHUNK);
			}
			if (p->state == S_CHUNK_EXT) {
				/* chunk-ext: skipped, but only printable bytes */
				if (c == '\r')
					p->state = S_CHUNK_SIZE_LF;
				else if (c == '\n')
					FAIL(PX_HTTP1_EBARE_LF);
				else if (!is_fvchar(c) && !is_ws(c))
					FAIL(PX_HTTP1_ECHUNK);
				break;
			}
			if (c == ';')
				p->state = S_CHUNK_EXT;
			else if (is_ws(c))
				p->state = S_CHUNK_BWS;
			else if (c == '\r' && p->state == S_CHUNK_SIZE)
				p->state = S_CHUNK_SIZE_LF;
			else if (c == '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			else
				FAIL(PX_HTTP1_ECHUNK);
			break;
		case S_CHUNK_SIZE_LF:
			if (c != '\n')
				FAIL(PX_HTTP1_EBARE_LF);
			p->chunk_line = 0;
			if (p->remaining == 0) {
				p->in_trailers = true;
				p->nfields = 0;
				p->head_bytes = 0;
				p->state = S_HDR_START;
			} else {
				p->state = S_CHUNK_DATA;
			}
			break;
		case S_CHUNK_DATA_CR:
			if (c != '\r')
				FAIL(PX_HTTP1_ECHUNK);
			p->state = S_CHUNK_DATA_LF;
			break;
		case S_CHUNK_DATA_LF:
			if (c != '\n')
				FAIL(PX_HTTP1_ECHUNK);
			p->state = S_CHUNK_SIZE_START;
			break;
		case S_TUNNEL:
		case S_ERROR:
			FAIL(PX_HTTP1_EPASSTHROUGH); /* not reached: handled on entry */
		}
	}
	/* the chunk ended inside a span: hand out the piece we have */
	if (marked && len > mark) {
		switch (p->state) {
		case S_METHOD:
			CB_SPAN(on_method, data + mark, len - mark);
			break;
		case S_TARGET:
			CB_SPAN(on_target, data + mark, len - mark);
			break;
		case S_REASON:
			CB_SPAN(on_reason, data + mark, len - mark);
			break;
		case S_HDR_NAME:
			CB_SPAN(on_header_name, data + mark, len - mark);
			break;
		case S_HDR_VALUE:
			CB_SPAN(on_header_value, data + mark, len - mark);
			p->value_emitted = true;
			break;
		default:
			break;
		}
	}
	*consumed = len;
	p->offset += len;
	return 0;

complete:
	p->fresh = true;
	p->state = p->m.tunnel ? S_TUNNEL : S_START;
	*consumed = i;
	p->offset += i;
	if (p->cb.on_message_complete != NULL && p->cb.on_message_complete(p->ud, &p->m) != 0) {
		rc = PX_HTTP1_ECALLBACK;
		goto fail;
	}
	return PX_HTTP1_DONE;

fail:
	p->state = S_ERROR;
	p->err = rc;
	*consumed = i < len ? i : len;
	p->offset += *consumed;
	return rc;
}

int px_http1_finish(struct px_http1 *p)
{
	switch (p->state) {
	case S_START:
	case S_START_LF: /* half an empty line between messages */
		return 0;
	case S_TUNNEL:
		return 0;
	case S_ERROR:
		return p->err;
	case S_BODY_CLOSE:
		p->fresh = true;
		p->state = S_START;
		if (p->cb.on_message_complete != NULL && p->cb.on_message_complete(p->ud, &p->m) != 0) {
			p->state = S_ERROR;
			p->err = PX_HTTP1_ECALLBACK;
			return p->err;
		}
		return PX_HTTP1_DONE;
	default:
		p->state = S_ERROR;
		p->err = PX_HTTP1_EEOF;
		return p->err;
	}
}

const char *px_http1_strerror(int code)
{
	switch (code) {
	case PX_HTTP1_OK: return "no error";
	case PX_HTTP1_DONE: return "message complete";
	case PX_HTTP1_EMETHOD: return "method is not a token";
	case PX_HTTP1_ETARGET: return "bad character in the request-target";
	case PX_HTTP1_EVERSION: return "malformed HTTP version";
	case PX_HTTP1_EVERSION_UNSUPPORTED: return "HTTP version not supported";
	case PX_HTTP1_ESTATUS: return "malformed status line";
	case PX_HTTP1_ELINE_TOO_LONG: return "request line too long";
	case PX_HTTP1_EHEADER_NAME: return "bad header field name";
	case PX_HTTP1_EHEADER_VALUE: return "bad header field value";
	case PX_HTTP1_EOBS_FOLD: return "header line folding (obs-fold) refused";
	case PX_HTTP1_EBARE_LF: return "line not ended by CRLF";
	case PX_HTTP1_ECONTENT_LENGTH: return "invalid Content-Length";
	case PX_HTTP1_ECL_CONFLICT: return "conflicting Content-Length values";
	case PX_HTTP1_ECL_AND_TE: return "both Content-Length and Transfer-Encoding";
	case PX_HTTP1_ETE_UNKNOWN: return "unsupported transfer coding";
	case PX_HTTP1_ETE_CHUNKED: return "chunked is not the last transfer coding, or is repeated";
	case PX_HTTP1_ECHUNK: return "malformed chunk";
	case PX_HTTP1_ECHUNK_SIZE: return "chunk size too large";
	case PX_HTTP1_ETOO_MANY_HEADERS: return "too many header fields";
	case PX_HTTP1_EHEADERS_TOO_BIG: return "header section too large";
	case PX_HTTP1_EHOST: return "HTTP/1.1 request without exactly one Host";
	case PX_HTTP1_EEXPECT: return "unsupported expectation";
	case PX_HTTP1_ECALLBACK: return "stopped by a callback";
	case PX_HTTP1_EEOF: return "connection closed inside a message";
	case PX_HTTP1_EPASSTHROUGH: return "stream is passthrough after upgrade or CONNECT";
	case PX_HTTP1_ENOMEM: return "out of memory";
	default: return "unknown error";
	}
}

int px_http1_status(enum px_http1_type type, int code)
{
	if (code >= 0)
		return 200;
	if (type == PX_HTTP1_RESPONSE)
		return 502;
	switch (code) {
	case PX_HTTP1_EVERSION_UNSUPPORTED: return 505;
	case PX_HTTP1_ELINE_TOO_LONG: return 414;
	case PX_HTTP1_ETOO_MANY_HEADERS:
	case PX_HTTP1_EHEADERS_TOO_BIG: return 431;
	case PX_HTTP1_ETE_UNKNOWN: return 501;
	case PX_HTTP1_EEXPECT: return 417;
	case PX_HTTP1_ECALLBACK:
	case PX_HTTP1_ENOMEM: return 500;
	default: return 400;
	}
}

/* ---- forwarding: the header section sent on ---- */

static bool name_is(const struct px_http1_header *h, const char *s)
{
	return h->name_len == strlen(s) && strncasecmp(h->name, s, h->name_len) == 0;
}

/* Is h named by one of the options of the Connection fields? */
static bool named_by_connection(const struct px_http1_header *hs, size_t n,
				const struct px_http1_header *h)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = hs[i].value;
		size_t vl = hs[i].value_len, k = 0;

		if (!name_is(&hs[i], "connection"))
			continue;
		while (k < vl) {
			size_t a, b;

			while (k < vl && (v[k] == ',' || is_ws((unsigned char)v[k])))
				k++;
			a = k;
			while (k < vl && v[k] != ',')
				k++;
			b = k;
			while (b > a && is_ws((unsigned char)v[b - 1]))
				b--;
			if (b > a && b - a == h->name_len && strncasecmp(v + a, h->name, b - a) == 0)
				return true;
		}
	}
	return false;
}

/* A parameter we put in a header: no control bytes, no separators that
 * would let it add fields or XFCC elements. */
static bool safe_param(const char *s, const char *forbid)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr(forbid, c) != NULL)
			return false;
	}
	return true;
}

static int put3(struct buf *b, const char *a, const char *s, const char *z)
{
	int rc = buf_append(b, a, strlen(a));

	rc = rc ? rc : buf_append(b, s, strlen(s));
	return rc ? rc : buf_append(b, z, strlen(z));
}

int px_http1_forward_headers(const struct px_http1_msg *m, const struct px_http1_header *h,
			     size_t n, const struct px_http1_forward *f, struct buf *out, char **err)
{
	bool xff_seen = false, has_host = false;
	int rc = 0;

	if (f->client_addr != NULL && (f->client_addr[0] == '\0' || !safe_param(f->client_addr, ",;\"")))
		return weft_errf(err, WEFT_EINVAL, "forward: client address \"%s\" is not an address",
				 f->client_addr);
	if (f->proto != NULL && (f->proto[0] == '\0' || !safe_param(f->proto, ",;\"=")))
		return weft_errf(err, WEFT_EINVAL, "forward: proto \"%s\" is not a token", f->proto);
	if (f->via != NULL && (f->via[0] == '\0' || !safe_param(f->via, ",;\"()")))
		return weft_errf(err, WEFT_EINVAL, "forward: via \"%s\" is not a token", f->via);
	if (f->by_id != NULL && (f->by_id[0] == '\0' || !safe_param(f->by_id, ",;\"=")))
		return weft_errf(err, WEFT_EINVAL, "forward: identity \"%s\" has a character XFCC cannot carry unquoted", f->by_id);
	if (f->host != NULL && (f->host[0] == '\0' || !safe_param(f->host, ",;\"")))
		return weft_errf(err, WEFT_EINVAL, "forward: host \"%s\" is not a host", f->host);
	if (f->peer_id != NULL && (f->peer_id[0] == '\0' || !safe_param(f->peer_id, ",;\"=")))
		return weft_errf(err, WEFT_EINVAL, "forward: identity \"%s\" has a character XFCC cannot carry unquoted", f->peer_id);

	for (size_t i = 0; i < n; i++) {
		const struct px_http1_header *x = &h[i];

		if (name_is(x, "host"))
			has_host = true;
		/* hop-by-hop (RFC 9110 §7.6.1) */
		if (name_is(x, "connection") || name_is(x, "keep-alive") ||
		    name_is(x, "proxy-connection") || name_is(x, "te") ||
		    (name_is(x, "upgrade") && !m->upgrade))
			continue;
		/* a caller must not choose the identity the app sees */
		if (name_is(x, "x-forwarded-client-cert"))
			continue;
		if (f->proto != NULL && name_is(x, "x-forwarded-proto"))
			continue;
		if (f->client_addr != NULL && name_is(x, "x-forwarded-for"))
			continue; /* rewritten below as one field */
		/* fields the Connection header names, but never the framing or Host:
		 * dropping those would change how the next hop reads the message */
		if (!name_is(x, "content-length") && !name_is(x, "transfer-encoding") &&
		    !name_is(x, "host") && !(m->upgrade && name_is(x, "upgrade")) &&
		    named_by_connection(h, n, x))
			continue;
		if ((rc = buf_append(out, x->name, x->name_len)) != 0 ||
		    (rc = buf_append(out, ": ", 2)) != 0 ||
		    (rc = buf_append(out, x->value, x->value_len)) != 0 ||
		    (rc = buf_append(out, "\r\n", 2)) != 0)
			goto out;
	}
	/* (pieces appended, not printf'd: this runs for every request) */
	if (!has_host && f->host != NULL &&
	    (rc = put3(out, "Host: ", f->host, "\r\n")) != 0)
		goto out;
	if (m->upgrade && (rc = put3(out, "Connection: upgrade\r\n", "", "")) != 0)
		goto out;
	if (f->via != NULL &&
	    (rc = put3(out, m->version_minor == 0 ? "Via: 1.0 " : "Via: 1.1 ", f->via, "\r\n")) != 0)
		goto out;
	if (f->client_addr != NULL) {
		if ((rc = put3(out, "X-Forwarded-For: ", "", "")) != 0)
			goto out;
		for (size_t i = 0; f->xff_append && i < n; i++) {
			if (!name_is(&h[i], "x-forwarded-for") || h[i].value_len == 0)
				continue;
			if ((xff_seen && (rc = buf_append(out, ", ", 2)) != 0) ||
			    (rc = buf_append(out, h[i].value, h[i].value_len)) != 0)
				goto out;
			xff_seen = true;
		}
		if ((rc = put3(out, xff_seen ? ", " : "", f->client_addr, "\r\n")) != 0)
			goto out;
	}
	if (f->proto != NULL && (rc = put3(out, "X-Forwarded-Proto: ", f->proto, "\r\n")) != 0)
		goto out;
	if (f->peer_id != NULL &&
	    ((rc = put3(out, "X-Forwarded-Client-Cert: ", "", "")) != 0 ||
	     (f->by_id != NULL && (rc = put3(out, "By=", f->by_id, ";")) != 0) ||
	     (rc = put3(out, "URI=", f->peer_id, "\r\n")) != 0))
		goto out;
	rc = buf_append(out, "\r\n", 2);
out:
	if (rc != 0)
		return weft_errf(err, rc, "forward: header section over %zu bytes", out->limit);
	return 0;
}
