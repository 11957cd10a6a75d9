/* Filter expressions: the subset of go-bexpr (Consul's ?filter=) that
 * clients use. A recursive-descent parser builds a small tree; matching
 * walks it over a JSON object. docs/api.md ("Filtering") describes the
 * language; this file follows it.
 *
 * Untrusted input: the expression length, the nesting depth, the number of
 * path segments and the size of regular expressions are bounded, and the
 * parser and the matcher recurse only as deep as the nesting allows. */
#include "filter.h"
#include "err.h"
#include "rx.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum node_kind { N_AND, N_OR, N_NOT, N_MATCH };
enum match_op { OP_EQ, OP_IN, OP_EMPTY, OP_MATCHES };

struct seg {
	char *s;
	size_t len;
};

struct node {
	enum node_kind kind;
	struct node **kids;       /* N_AND, N_OR (n-ary), N_NOT (one) */
	size_t nkids;
	/* N_MATCH */
	enum match_op op;
	int negate;
	struct seg *path;
	size_t npath;
	char *val;                /* the raw value, as bexpr keeps it */
	size_t vlen;
	int has_int, has_float, has_bool, bval;
	long long ival;
	double fval;
	regex_t re;
	int has_re;
};

struct filter {
	struct node *root;
};

struct parser {
	const char *s;
	size_t len, pos;
	int depth;
	char **err;
	int failed;
	long rx_budget; /* the expression's regexes share it (lib/rx.h) */
};

/* ---- errors ---- */

/* Appends s[0..n) to out (size outsz) with non-printable and non-ASCII bytes
 * as \xNN, so that the message is valid UTF-8 for the JSON reply. */
static void quote_bytes(char *out, size_t outsz, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else {
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
		}
	}
	out[o] = '\0';
}

static void perr(struct parser *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	weft_errf(p->err, WEFT_EINVAL, "position %zu: %s", pos + 1, msg);
}

/* What the parser found at pos, for "found ..." in messages. */
static const char *found(struct parser *p, size_t pos, char *buf, size_t bufsz)
{
	size_t n = 0;

	if (pos >= p->len)
		return "end of expression";
	while (pos + n < p->len && n < 24 && !isspace((unsigned char)p->s[pos + n]))
		n++;
	if (n == 0)
		n = 1;
	buf[0] = '"';
	quote_bytes(buf + 1, bufsz - 3, p->s + pos, n);
	strcat(buf, "\"");
	return buf;
}

/* ---- tree ---- */

static void node_free(struct node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	for (size_t i = 0; i < n->npath; i++)
		free(n->path[i].s);
	free(n->path);
	free(n->val);
	if (n->has_re)
		regfree(&n->re);
	free(n);
}

static struct node *node_new(struct parser *p, enum node_kind kind)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n == NULL)
		perr(p, p->pos, "out of memory");
	else
		n->kind = kind;
	return n;
}

static int node_add(struct parser *p, struct node *parent, struct node *kid)
{
	struct node **k = realloc(parent->kids, (parent->nkids + 1) * sizeof(*k));

	if (k == NULL) {
		perr(p, p->pos, "out of memory");
		return -1;
	}
	parent->kids = k;
	k[parent->nkids++] = kid;
	return 0;
}

/* ---- lexing ---- */

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]))
		p->pos++;
}

static int is_ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '/';
}

static int is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Consumes word at the current position if it stands alone. */
static int keyword(struct parser *p, const char *word)
{
	size_t n = strlen(word);

	if (p->pos + n > p->len || memcmp(p->s + p->pos, word, n) != 0)
		return 0;
	if (p->pos + n < p->len && is_ident_char(p->s[p->pos + n]))
		return 0;
	p->pos += n;
	return 1;
}

static int peek_keyword(struct parser *p, const char *word)
{
	size_t save = p->pos;
	int r = keyword(p, word);

	p->pos = save;
	return r;
}

/* Appends the UTF-8 encoding of cp. */
static size_t utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reports the escape at p->pos as invalid. */
static void bad_escape(struct parser *p)
{
	char esc[40], c = p->pos + 1 < p->len ? p->s[p->pos + 1] : '\0';
	size_t n = 2;

	while (strchr("xuU01234567", c) && c && n < 10 && p->pos + n < p->len && isalnum((unsigned char)p->s[p->pos + n]))
		n++;
	quote_bytes(esc, sizeof(esc), p->s + p->pos, n < p->len - p->pos ? n : p->len - p->pos);
	perr(p, p->pos, "invalid escape \"%s\" in string (Go's escapes; \\\\ for a backslash)", esc);
}

/* The escape at p->pos (a backslash) into out; returns the bytes written,
 * or -1 after reporting it. The output is never longer than the escape. */
static int parse_escape(struct parser *p, char *out)
{
	static const char simple_in[] = "abfnrtv\\\"", simple_out[] = "\a\b\f\n\r\t\v\\\"";
	const char *hit;
	char c = p->pos + 1 < p->len ? p->s[p->pos + 1] : '\0';
	int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
	uint32_t cp = 0;

	if (c != '\0' && (hit = strchr(simple_in, c)) != NULL) {
		out[0] = simple_out[hit - simple_in];
		p->pos += 2;
		return 1;
	}
	if (c >= '0' && c <= '7') {
		/* \ooo: exactly three octal digits, at most 255 */
		for (int i = 1; i <= 3; i++) {
			char d = p->pos + (size_t)i < p->len ? p->s[p->pos + (size_t)i] : '\0';
			if (d < '0' || d > '7')
				goto bad;
			cp = cp * 8 + (uint32_t)(d - '0');
		}
		if (cp > 255)
			goto bad;
		out[0] = (char)cp;
		p->pos += 4;
		return 1;
	}
	if (digits == 0 || p->pos + 2 + (size_t)digits > p->len)
		goto bad;
	for (int i = 0; i < digits; i++) {
		int h = hexval(p->s[p->pos + 2 + (size_t)i]);
		if (h < 0)
			goto bad;
		cp = cp * 16 + (uint32_t)h;
	}
	p->pos += 2 + (size_t)digits;
	if (c == 'x') {
		out[0] = (char)cp;
		return 1;
	}
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
		p->pos -= 2 + (size_t)digits;
		goto bad;
	}
	/* \uXXXX (6 bytes) gives at most 3, \UXXXXXXXX (10) at most 4 */
	return (int)utf8_put(out, cp);
bad:
	bad_escape(p);
	return -1;
}

/* A string literal: "..." with Go's escapes, or `...` taken as it is (less
 * carriage returns, as Go does). Returns an allocated buffer (NUL added). */
static char *parse_string(struct parser *p, size_t *len_out)
{
	size_t start = p->pos, o = 0;
	char q = p->s[p->pos++];
	char *out = malloc(p->len - start + 1);   /* the output is never longer */

	if (out == NULL) {
		perr(p, start, "out of memory");
		return NULL;
	}
	while (p->pos < p->len && p->s[p->pos] != q) {
		char c = p->s[p->pos];
		int n;

		if (q == '`' || c != '\\') {
			if (!(q == '`' && c == '\r'))
				out[o++] = c;
			p->pos++;
			continue;
		}
		if ((n = parse_escape(p, out + o)) < 0)
			goto fail;
		o += (size_t)n;
	}
	if (p->pos >= p->len) {
		perr(p, start, "unterminated string (no closing %c)", q);
		goto fail;
	}
	p->pos++;
	out[o] = '\0';
	*len_out = o;
	return out;
fail:
	free(out);
	return NULL;
}

/* ---- selectors ---- */

#define MAX_PATH 32

static int path_add(struct parser *p, struct node *n, const char *s, size_t len, size_t at)
{
	struct seg *segs;
	char *copy;

	if (n->npath == MAX_PATH) {
		perr(p, at, "selector has more than %d parts", MAX_PATH);
		return -1;
	}
	segs = realloc(n->path, (n->npath + 1) * sizeof(*segs));
	copy = malloc(len + 1);
	if (segs)
		n->path = segs;
	if (segs == NULL || copy == NULL) {
		free(copy);
		perr(p, at, "out of memory");
		return -1;
	}
	memcpy(copy, s, len);
	copy[len] = '\0';
	n->path[n->npath].s = copy;
	n->path[n->npath].len = len;
	n->npath++;
	return 0;
}

/* Identifier ( "." Identifier | "." digits | "[" string "]" )* into n->path. */
static int parse_dotted(struct parser *p, struct node *n)
{
	size_t start = p->pos;
	char buf[64];

	while (p->pos < p->len && is_ident_char(p->s[p->pos]))
		p->pos++;
	if (path_add(p, n, p->s + start, p->pos - start, start) < 0)
		return -1;
	for (;;) {
		if (p->pos < p->len && p->s[p->pos] == '.') {
			p->pos++;
			start = p->pos;
			if (p->pos < p->len && is_ident_start(p->s[p->pos])) {
				while (p->pos < p->len && is_ident_char(p->s[p->pos]))
					p->pos++;
			} else if (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) {
				while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos]))
					p->pos++;
			} else {
				perr(p, p->pos, "expected a name after \".\" in a selector, found %s",
				     found(p, p->pos, buf, sizeof(buf)));
				return -1;
			}
			if (path_add(p, n, p->s + start, p->pos - start, start) < 0)
				return -1;
		} else if (p->pos < p->len && p->s[p->pos] == '[') {
			size_t open = p->pos, klen;
			char *key;
			p->pos++;
			skip_ws(p);
			if (p->pos >= p->len || (p->s[p->pos] != '"' && p->s[p->pos] != '`')) {
				perr(p, p->pos, "expected a quoted key after \"[\", found %s",
				     found(p, p->pos, buf, sizeof(buf)));
				return -1;
			}
			key = parse_string(p, &klen);
			if (key == NULL)
				return -1;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ']') {
				free(key);
				perr(p, p->pos, "expected \"]\" to close the \"[\" at position %zu, found %s",
				     open + 1, found(p, p->pos, buf, sizeof(buf)));
				return -1;
			}
			p->pos++;
			if (path_add(p, n, key, klen, open) < 0) {
				free(key);
				return -1;
			}
			free(key);
		} else {
			return 0;
		}
	}
}

/* A double-quoted JSON Pointer ("/Service/Meta/version") as a selector. */
static int pointer_to_path(struct parser *p, struct node *n, const char *s, size_t len, size_t at)
{
	size_t i = 0;
	char *seg = malloc(len + 1);

	if (seg == NULL) {
		perr(p, at, "out of memory");
		return -1;
	}
	while (i < len) {
		size_t o = 0;
		i++; /* the '/' */
		while (i < len && s[i] != '/') {
			if (s[i] == '~' && i + 1 < len && (s[i + 1] == '0' || s[i + 1] == '1')) {
				seg[o++] = s[i + 1] == '0' ? '~' : '/';
				i += 2;
			} else {
				seg[o++] = s[i++];
			}
		}
		if (path_add(p, n, seg, o, at) < 0) {
			free(seg);
			return -1;
		}
	}
	free(seg);
	return 0;
}

static int is_pointer(const char *s, size_t len)
{
	if (len < 2 || s[0] != '/')
		return 0;
	for (size_t i = 1; i < len; i++)
		if (s[i] == '/' && s[i - 1] == '/')
			return 0;
	return s[len - 1] != '/';
}

/* ---- values ---- */

/* strconv.ParseInt(s, 0, 64): sign, 0x/0o/0b prefixes, a leading 0 for
 * octal, underscores between digits once a prefix is given. */
static int go_parse_int(const char *s, size_t len, long long *out)
{
	size_t i = 0;
	int neg = 0, base = 10, prefixed = 0, ndig = 0, last_us = 0;
	unsigned long long v = 0, lim;

	if (len == 0)
		return -1;
	if (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-';
		i++;
	}
	if (i + 1 < len && s[i] == '0') {
		char b = (char)tolower((unsigned char)s[i + 1]);
		if (b == 'x' || b == 'o' || b == 'b') {
			base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
			i += 2;
			prefixed = 1;
			last_us = 1;   /* "0x_1" is allowed */
		} else {
			base = 8;
			i++;
			prefixed = 1;
			ndig = 1;
		}
	}
	lim = neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX;
	for (; i < len; i++) {
		int d;
		if (s[i] == '_') {
			if (!prefixed || (last_us && ndig > 0) || i + 1 == len)
				return -1;
			last_us = 1;
			continue;
		}
		d = hexval(s[i]);
		if (d < 0 || d >= base)
			return -1;
		if (v > (lim - (unsigned)d) / (unsigned)base)
			return -1;
		v = v * (unsigned)base + (unsigned)d;
		ndig++;
		last_us = 0;
	}
	if (ndig == 0)
		return -1;
	*out = neg ? (long long)(0 - v) : (long long)v;
	return 0;
}

static int go_parse_float(const char *s, size_t len, double *out)
{
	char buf[64], *end;

	if (len == 0 || len >= sizeof(buf) || isspace((unsigned char)s[0]) || memchr(s, '\0', len))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	if (*end != '\0' || (errno == ERANGE && !isfinite(*out)))
		return -1;
	return 0;
}

static int go_parse_bool(const char *s, size_t len, int *out)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < 6; i++) {
		if (strlen(yes[i]) == len && memcmp(s, yes[i], len) == 0) {
			*out = 1;
			return 0;
		}
		if (strlen(no[i]) == len && memcmp(s, no[i], len) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static void set_value(struct node *n, char *val, size_t len)
{
	n->val = val;
	n->vlen = len;
	n->has_int = go_parse_int(val, len, &n->ival) == 0;
	n->has_float = go_parse_float(val, len, &n->fval) == 0;
	n->has_bool = go_parse_bool(val, len, &n->bval) == 0;
}

/* Number: -?(0|[1-9][0-9]*)(.[0-9]+)? followed by a blank, ")" or the end,
 * kept as text (bexpr compares it as the field's type). */
static char *parse_number(struct parser *p, size_t *len_out)
{
	size_t i = p->pos, e;
	char buf[64], *v;

	if (p->s[i] == '-')
		i++;
	if (i < p->len && p->s[i] == '0') {
		i++;
	} else {
		while (i < p->len && isdigit((unsigned char)p->s[i]))
			i++;
	}
	if (i + 1 < p->len && p->s[i] == '.' && isdigit((unsigned char)p->s[i + 1])) {
		i++;
		while (i < p->len && isdigit((unsigned char)p->s[i]))
			i++;
	}
	if (!isdigit((unsigned char)p->s[i - 1]) || (i < p->len && !strchr(" \t\r\n)", p->s[i]))) {
		e = p->pos + 1;
		while (e < p->len && !strchr(" \t\r\n)", p->s[e]) && e - p->pos < 24)
			e++;
		quote_bytes(buf, sizeof(buf), p->s + p->pos, e - p->pos);
		perr(p, p->pos, "invalid number \"%s\" (quote it if it is text)", buf);
		return NULL;
	}
	v = strndup(p->s + p->pos, i - p->pos);
	if (v == NULL) {
		perr(p, p->pos, "out of memory");
		return NULL;
	}
	*len_out = i - p->pos;
	p->pos = i;
	return v;
}

/* An unquoted name: a selector to bexpr, whose dotted text is the value. */
static char *parse_word(struct parser *p, size_t *len_out)
{
	struct node tmp = { 0 };
	size_t total = 1, o = 0;
	char *v = NULL;

	if (parse_dotted(p, &tmp) < 0)
		goto out;
	for (size_t i = 0; i < tmp.npath; i++)
		total += tmp.path[i].len + 1;
	v = malloc(total);
	if (v == NULL) {
		perr(p, p->pos, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < tmp.npath; i++) {
		if (i)
			v[o++] = '.';
		memcpy(v + o, tmp.path[i].s, tmp.path[i].len);
		o += tmp.path[i].len;
	}
	v[o] = '\0';
	*len_out = o;
out:
	for (size_t i = 0; i < tmp.npath; i++)
		free(tmp.path[i].s);
	free(tmp.path);
	return v;
}

/* Value: a quoted string, a number, or an unquoted name (taken as text). */
static int parse_value(struct parser *p, struct node *n, const char *after)
{
	char buf[64], *v = NULL, c;
	size_t len = 0;

	skip_ws(p);
	c = p->pos < p->len ? p->s[p->pos] : '\0';
	if (c == '"' || c == '`')
		v = parse_string(p, &len);
	else if (c == '-' || isdigit((unsigned char)c))
		v = parse_number(p, &len);
	else if (is_ident_start(c))
		v = parse_word(p, &len);
	else
		perr(p, p->pos, "expected a value after \"%s\", found %s", after,
		     found(p, p->pos, buf, sizeof(buf)));
	if (v == NULL)
		return -1;
	set_value(n, v, len);
	return 0;
}

/* ---- regular expressions ---- */

static int compile_regex(struct parser *p, struct node *n, size_t at)
{
	char shown[80], *why = NULL;

	quote_bytes(shown, sizeof(shown), n->val, n->vlen > 48 ? 48 : n->vlen);
	if (rx_compile(&n->re, n->val, n->vlen, &p->rx_budget, &why) != WEFT_OK) {
		perr(p, at, "invalid regular expression \"%s%s\": %s", shown, n->vlen > 48 ? "..." : "",
		     why ? why : "out of memory");
		free(why);
		return -1;
	}
	n->has_re = 1;
	return 0;
}

/* ---- grammar ---- */

#define MAX_DEPTH 32

static struct node *parse_or(struct parser *p);

static const char OPERATORS[] =
	"==, !=, contains, not contains, matches, not matches, is empty, is not empty, in, not in";

/* What follows a selector: == != contains matches is [not] empty, and the
 * negated forms. The selector is already in n->path. */
static int parse_selector_op(struct parser *p, struct node *n, const char *sel_shown)
{
	size_t at;
	char buf[64];
	const char *opname;

	skip_ws(p);
	at = p->pos;
	if (p->pos + 1 < p->len && p->s[p->pos + 1] == '=' &&
	    (p->s[p->pos] == '=' || p->s[p->pos] == '!')) {
		n->op = OP_EQ;
		n->negate = p->s[p->pos] == '!';
		opname = n->negate ? "!=" : "==";
		p->pos += 2;
		return parse_value(p, n, opname);
	}
	if (keyword(p, "is")) {
		skip_ws(p);
		if (keyword(p, "not")) {
			n->negate = 1;
			skip_ws(p);
		}
		if (!keyword(p, "empty")) {
			perr(p, p->pos, "expected \"empty\" after \"%s\", found %s",
			     n->negate ? "is not" : "is", found(p, p->pos, buf, sizeof(buf)));
			return -1;
		}
		n->op = OP_EMPTY;
		return 0;
	}
	if (keyword(p, "not")) {
		n->negate = 1;
		skip_ws(p);
	}
	if (keyword(p, "contains")) {
		n->op = OP_IN;
		return parse_value(p, n, n->negate ? "not contains" : "contains");
	}
	if (keyword(p, "matches")) {
		size_t vat;
		n->op = OP_MATCHES;
		skip_ws(p);
		vat = p->pos;
		if (parse_value(p, n, n->negate ? "not matches" : "matches") < 0)
			return -1;
		return compile_regex(p, n, vat);
	}
	if (n->negate) {
		perr(p, p->pos, "expected \"contains\" or \"matches\" after \"not\", found %s",
		     found(p, p->pos, buf, sizeof(buf)));
		return -1;
	}
	perr(p, at, "expected an operator (%s) after selector \"%s\", found %s", OPERATORS,
	     sel_shown, found(p, at, buf, sizeof(buf)));
	return -1;
}

/* After a value: "in" or "not in" and a selector. */
static int parse_in_selector(struct parser *p, struct node *n)
{
	char buf[64];

	skip_ws(p);
	if (keyword(p, "not")) {
		n->negate = 1;
		skip_ws(p);
	}
	if (!keyword(p, "in")) {
		perr(p, p->pos, "expected \"%s\" after a value, found %s",
		     n->negate ? "in" : "in\" or \"not in", found(p, p->pos, buf, sizeof(buf)));
		return -1;
	}
	n->op = OP_IN;
	skip_ws(p);
	if (p->pos < p->len && is_ident_start(p->s[p->pos]))
		return parse_dotted(p, n);
	if (p->pos < p->len && p->s[p->pos] == '"') {
		size_t at = p->pos, len;
		char *s = parse_string(p, &len);
		int rc;
		if (s == NULL)
			return -1;
		if (!is_pointer(s, len)) {
			free(s);
			perr(p, at, "expected a selector after \"%s\" (a quoted selector is a JSON Pointer such as \"/Service/Tags\")",
			     n->negate ? "not in" : "in");
			return -1;
		}
		rc = pointer_to_path(p, n, s, len, at);
		free(s);
		return rc;
	}
	perr(p, p->pos, "expected a selector after \"%s\", found %s", n->negate ? "not in" : "in",
	     found(p, p->pos, buf, sizeof(buf)));
	return -1;
}

static struct node *parse_match(struct parser *p)
{
	struct node *n = node_new(p, N_MATCH);
	size_t start = p->pos;
	char buf[64], shown[64];

	if (n == NULL)
		return NULL;
	if (p->pos >= p->len) {
		perr(p, p->pos, "expected an expression, found end of expression");
		goto fail;
	}
	if (is_ident_start(p->s[p->pos])) {
		/* A selector, or an unquoted value before "in". */
		size_t save, end;
		if (parse_dotted(p, n) < 0)
			goto fail;
		end = p->pos;
		save = p->pos;
		skip_ws(p);
		if (peek_keyword(p, "in") ||
		    (keyword(p, "not") && (skip_ws(p), peek_keyword(p, "in")))) {
			p->pos = save;
			/* The text is the value; the selector comes after "in". */
			for (size_t i = 0; i < n->npath; i++)
				free(n->path[i].s);
			free(n->path);
			n->path = NULL;
			n->npath = 0;
			p->pos = start;
			if (parse_value(p, n, "") < 0 || parse_in_selector(p, n) < 0)
				goto fail;
			return n;
		}
		p->pos = save;
		quote_bytes(shown, sizeof(shown), p->s + start, end - start > 40 ? 40 : end - start);
		if (parse_selector_op(p, n, shown) < 0)
			goto fail;
		return n;
	}
	if (p->s[p->pos] == '"' || p->s[p->pos] == '`') {
		size_t len, save;
		char *s = parse_string(p, &len);
		int selector_op;
		if (s == NULL)
			goto fail;
		save = p->pos;
		skip_ws(p);
		selector_op = (p->pos + 1 < p->len && p->s[p->pos + 1] == '=' &&
			       (p->s[p->pos] == '=' || p->s[p->pos] == '!')) ||
			      peek_keyword(p, "is") || peek_keyword(p, "contains") ||
			      peek_keyword(p, "matches") ||
			      (keyword(p, "not") && (skip_ws(p), !peek_keyword(p, "in")));
		p->pos = save;
		if (selector_op && p->s[start] == '"' && is_pointer(s, len)) {
			int rc = pointer_to_path(p, n, s, len, start);
			free(s);
			quote_bytes(shown, sizeof(shown), p->s + start,
				    p->pos - start > 40 ? 40 : p->pos - start);
			if (rc < 0 || parse_selector_op(p, n, shown) < 0)
				goto fail;
			return n;
		}
		if (selector_op) {
			free(s);
			perr(p, start, "a quoted selector must be a JSON Pointer such as \"/Service/Meta/version\"; "
				       "the value goes on the right: Selector == \"value\"");
			goto fail;
		}
		set_value(n, s, len);
		if (parse_in_selector(p, n) < 0)
			goto fail;
		return n;
	}
	if (p->s[p->pos] == '-' || isdigit((unsigned char)p->s[p->pos])) {
		if (parse_value(p, n, "") < 0 || parse_in_selector(p, n) < 0)
			goto fail;
		return n;
	}
	if (p->s[p->pos] == ')')
		perr(p, p->pos, "unexpected \")\": expected an expression");
	else
		perr(p, p->pos, "expected a selector, a value or \"(\", found %s",
		     found(p, p->pos, buf, sizeof(buf)));
fail:
	node_free(n);
	return NULL;
}

static int deeper(struct parser *p)
{
	if (++p->depth > MAX_DEPTH) {
		perr(p, p->pos, "expression nests deeper than %d levels", MAX_DEPTH);
		return -1;
	}
	return 0;
}

static struct node *parse_primary(struct parser *p)
{
	struct node *n;
	size_t open;
	char buf[64];

	skip_ws(p);
	if (p->pos >= p->len || p->s[p->pos] != '(')
		return parse_match(p);
	open = p->pos++;
	if (deeper(p) < 0)
		return NULL;
	n = parse_or(p);
	p->depth--;
	if (n == NULL)
		return NULL;
	skip_ws(p);
	if (p->pos >= p->len || p->s[p->pos] != ')') {
		perr(p, p->pos, "expected \")\" to close the \"(\" at position %zu, found %s", open + 1,
		     found(p, p->pos, buf, sizeof(buf)));
		node_free(n);
		return NULL;
	}
	p->pos++;
	return n;
}

static struct node *parse_not(struct parser *p)
{
	struct node *n, *kid;
	size_t save;

	skip_ws(p);
	save = p->pos;
	if (!keyword(p, "not"))
		return parse_primary(p);
	skip_ws(p);
	/* "not" followed by an operator is a selector named "not". */
	if (p->pos < p->len && strchr("=!.[", p->s[p->pos])) {
		p->pos = save;
		return parse_primary(p);
	}
	if (deeper(p) < 0)
		return NULL;
	kid = parse_not(p);
	p->depth--;
	if (kid == NULL)
		return NULL;
	if (kid->kind == N_NOT) {
		/* not not X is X */
		n = kid->kids[0];
		kid->nkids = 0;
		node_free(kid);
		return n;
	}
	n = node_new(p, N_NOT);
	if (n == NULL || node_add(p, n, kid) < 0) {
		node_free(kid);
		node_free(n);
		return NULL;
	}
	return n;
}

static struct node *parse_binary(struct parser *p, enum node_kind kind)
{
	const char *word = kind == N_OR ? "or" : "and";
	struct node *first, *n = NULL, *kid;

	first = kind == N_OR ? parse_binary(p, N_AND) : parse_not(p);
	if (first == NULL)
		return NULL;
	for (;;) {
		skip_ws(p);
		if (!keyword(p, word))
			break;
		if (n == NULL) {
			n = node_new(p, kind);
			if (n == NULL || node_add(p, n, first) < 0) {
				node_free(first);
				node_free(n);
				return NULL;
			}
		}
		kid = kind == N_OR ? parse_binary(p, N_AND) : parse_not(p);
		if (kid == NULL || node_add(p, n, kid) < 0) {
			node_free(kid);
			node_free(n);
			return NULL;
		}
	}
	return n ? n : first;
}

static struct node *parse_or(struct parser *p)
{
	return parse_binary(p, N_OR);
}

int filter_compile(const char *expr, struct filter **out, char **err)
{
	struct parser p = { .s = expr, .err = err, .rx_budget = RX_MAX_COST };
	struct filter *f = NULL;
	struct node *root;
	char buf[64];

	*out = NULL;
	if (expr == NULL)
		return weft_errf(err, WEFT_EINVAL, "no expression");
	p.len = strlen(expr);
	if (p.len > FILTER_MAX_LEN)
		return weft_errf(err, WEFT_EINVAL, "expression is longer than %d bytes", FILTER_MAX_LEN);
	root = parse_or(&p);
	if (root) {
		skip_ws(&p);
		if (p.pos < p.len) {
			if (p.s[p.pos] == ')')
				perr(&p, p.pos, "unexpected \")\" with no \"(\" before it");
			else
				perr(&p, p.pos, "expected \"and\", \"or\" or the end of the expression, found %s",
				     found(&p, p.pos, buf, sizeof(buf)));
			node_free(root);
			root = NULL;
		}
	}
	if (root == NULL) {
		if (!p.failed)
			perr(&p, p.pos, "invalid expression");
		return WEFT_EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		node_free(root);
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	f->root = root;
	*out = f;
	return WEFT_OK;
}

/* ---- matching ---- */

static int value_equal(const struct node *n, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_string_length(v) == n->vlen &&
		       memcmp(json_string_value(v), n->val, n->vlen) == 0;
	case JSON_INTEGER:
		return n->has_int && n->ival == (long long)json_integer_value(v);
	case JSON_REAL:
		return n->has_float && n->fval == json_real_value(v);
	case JSON_TRUE:
	case JSON_FALSE:
		return n->has_bool && n->bval == json_is_true(v);
	default:
		return 0;
	}
}

static int leaf(const struct node *n, json_t *v)
{
	size_t i;
	json_t *e;

	switch (n->op) {
	case OP_EQ:
		return value_equal(n, v);
	case OP_IN:
		if (json_is_object(v))
			return json_object_getn(v, n->val, n->vlen) != NULL;
		if (json_is_array(v)) {
			json_array_foreach(v, i, e)
				if (value_equal(n, e))
					return 1;
			return 0;
		}
		if (json_is_string(v))
			return n->vlen == 0 || memmem(json_string_value(v), json_string_length(v),
						      n->val, n->vlen) != NULL;
		return 0;
	case OP_EMPTY:
		if (json_is_string(v))
			return json_string_length(v) == 0;
		if (json_is_array(v))
			return json_array_size(v) == 0;
		if (json_is_object(v))
			return json_object_size(v) == 0;
		return 0;
	case OP_MATCHES:
		if (json_is_string(v)) {
			return rx_match(&n->re, json_string_value(v), json_string_length(v));
		}
		return 0;
	}
	return 0;
}

static int is_index(const struct seg *s, size_t *idx)
{
	size_t v = 0;

	if (s->len == 0 || s->len > 9)
		return 0;
	for (size_t i = 0; i < s->len; i++) {
		if (!isdigit((unsigned char)s->s[i]))
			return 0;
		v = v * 10 + (size_t)(s->s[i] - '0');
	}
	*idx = v;
	return 1;
}

/* Follows the selector from part i; a list met before the end applies the
 * rest of the selector to each element (true when any is). */
static int match_path(const struct node *n, json_t *v, size_t i, int depth)
{
	size_t k, idx;
	json_t *e;

	if (v == NULL || json_is_null(v))
		return n->negate ^ (n->op == OP_EMPTY);   /* absent: empty, equal to nothing */
	if (i == n->npath)
		return n->negate ^ leaf(n, v);
	if (json_is_object(v))
		return match_path(n, json_object_getn(v, n->path[i].s, n->path[i].len), i + 1, depth);
	if (json_is_array(v)) {
		if (is_index(&n->path[i], &idx))
			return match_path(n, json_array_get(v, idx), i + 1, depth);
		if (depth > 8)
			return 0;
		json_array_foreach(v, k, e)
			if (match_path(n, e, i, depth + 1))
				return 1;
		return 0;
	}
	return n->negate ^ (n->op == OP_EMPTY);
}

static int eval(const struct node *n, json_t *obj)
{
	switch (n->kind) {
	case N_AND:
		for (size_t i = 0; i < n->nkids; i++)
			if (!eval(n->kids[i], obj))
				return 0;
		return 1;
	case N_OR:
		for (size_t i = 0; i < n->nkids; i++)
			if (eval(n->kids[i], obj))
				return 1;
		return 0;
	case N_NOT:
		return !eval(n->kids[0], obj);
	case N_MATCH:
		return match_path(n, obj, 0, 0);
	}
	return 0;
}

int filter_match(const struct filter *f, json_t *obj)
{
	if (f == NULL)
		return 1;
	return eval(f->root, obj);
}

void filter_free(struct filter *f)
{
	if (f == NULL)
		return;
	node_free(f->root);
	free(f);
}

void filter_keep(const struct filter *f, json_t *items)
{
	const char *k;
	json_t *v;
	void *tmp;
	size_t i = 0;

	if (json_is_array(items)) {
		while (i < json_array_size(items)) {
			if (filter_match(f, json_array_get(items, i)))
				i++;
			else
				json_array_remove(items, i);
		}
	} else if (json_is_object(items)) {
		json_object_foreach_safe(items, tmp, k, v) {
			if (!filter_match(f, v))
				json_object_del(items, k);
		}
	}
}
