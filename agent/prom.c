#include "prom.h"
#include "err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const prom_class_names[PROM_NCLASS] = { "1xx", "2xx", "3xx", "4xx", "5xx", "other" };

#define LABEL_MAX 255
#define MAX_LABELS 8

struct label {
	char name[32];
	char value[LABEL_MAX + 1];
};

void prom_stats_clear(struct prom_stats *s)
{
	if (s == NULL)
		return;
	free(s->l);
	s->l = NULL;
	s->n = 0;
	s->denials = 0;
}

const struct prom_listener *prom_find(const struct prom_stats *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->l[i].name, name) == 0)
			return &s->l[i];
	return NULL;
}

static struct prom_listener *listener_get(struct prom_stats *s, const char *name)
{
	struct prom_listener *l = (struct prom_listener *)prom_find(s, name);

	if (l || s->n >= PROM_MAX_LISTENERS || strlen(name) > PROM_NAME_MAX)
		return l;
	if (s->l == NULL && (s->l = calloc(PROM_MAX_LISTENERS, sizeof(*s->l))) == NULL)
		return NULL;
	l = &s->l[s->n++];
	memset(l, 0, sizeof(*l));
	memcpy(l->name, name, strlen(name) + 1);
	return l;
}

static int is_name_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* Parses {a="x",b="y"} at *p (< end); advances *p past '}'. */
static int parse_labels(const char **p, const char *end, struct label *ls, size_t *n,
			size_t lineno, char **err)
{
	const char *s = *p + 1;   /* past '{' */

	*n = 0;
	for (;;) {
		struct label *l;
		size_t k = 0;

		if (s < end && *s == '}')
			break;
		if (*n >= MAX_LABELS)
			return weft_errf(err, WEFT_EINVAL, "line %zu: more than %d labels", lineno,
					 MAX_LABELS);
		l = &ls[(*n)++];
		while (s < end && is_name_char(*s, k == 0)) {
			if (k + 1 >= sizeof(l->name))
				return weft_errf(err, WEFT_EINVAL, "line %zu: label name too long", lineno);
			l->name[k++] = *s++;
		}
		l->name[k] = '\0';
		if (k == 0 || s + 1 >= end || s[0] != '=' || s[1] != '"')
			return weft_errf(err, WEFT_EINVAL, "line %zu: want name=\"value\" in the labels",
					 lineno);
		s += 2;
		k = 0;
		while (s < end && *s != '"') {
			char c = *s++;

			if (c == '\\') {
				if (s >= end)
					break;
				c = *s++;
				if (c == 'n')
					c = '\n';
				else if (c != '\\' && c != '"')
					return weft_errf(err, WEFT_EINVAL, "line %zu: bad escape \\%c in a "
							 "label value", lineno, c);
			}
			if (k >= LABEL_MAX)
				return weft_errf(err, WEFT_EINVAL, "line %zu: label value over %d bytes",
						 lineno, LABEL_MAX);
			l->value[k++] = c;
		}
		l->value[k] = '\0';
		if (s >= end)
			return weft_errf(err, WEFT_EINVAL, "line %zu: unterminated label value", lineno);
		s++;   /* past '"' */
		if (s < end && *s == ',') {
			s++;
			continue;
		}
		if (s < end && *s == '}')
			break;
		return weft_errf(err, WEFT_EINVAL, "line %zu: want ',' or '}' after a label", lineno);
	}
	*p = s + 1;
	return WEFT_OK;
}

static const char *label_get(const struct label *ls, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ls[i].name, name) == 0)
			return ls[i].value;
	return NULL;
}

/* A counter's value: a non-negative integer (Prometheus prints them as
 * floats at times: 1e+06). */
static int parse_count(const char *s, const char *end, uint64_t *out)
{
	char buf[64], *e;
	size_t n = (size_t)(end - s);
	double v;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	v = strtod(buf, &e);
	/* a timestamp may follow the value */
	if (e == buf || (*e != '\0' && *e != ' ') || !(v >= 0) || v >= 1.8e19)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int parse_le(const char *s, double *out)
{
	char *e;

	if (strcmp(s, "+Inf") == 0) {
		*out = INFINITY;
		return 0;
	}
	*out = strtod(s, &e);
	return e == s || *e != '\0' || !isfinite(*out) || *out <= 0 ? -1 : 0;
}

static int parse_line(struct prom_stats *out, const char *s, const char *end, size_t lineno,
		      char **err)
{
	static const char REQ[] = "weft_proxy_requests_total";
	static const char BKT[] = "weft_proxy_request_duration_seconds_bucket";
	static const char DEN[] = "weft_proxy_intention_denials_total";
	struct label ls[MAX_LABELS];
	const char *name = s, *listener, *v;
	struct prom_listener *l;
	size_t nlen, nls = 0;
	uint64_t value;
	int rc, kind;

	while (s < end && is_name_char(*s, s == name))
		s++;
	nlen = (size_t)(s - name);
	if (nlen == 0)
		return weft_errf(err, WEFT_EINVAL, "line %zu: want a metric name", lineno);
	if (nlen == sizeof(REQ) - 1 && memcmp(name, REQ, nlen) == 0)
		kind = 'r';
	else if (nlen == sizeof(BKT) - 1 && memcmp(name, BKT, nlen) == 0)
		kind = 'b';
	else if (nlen == sizeof(DEN) - 1 && memcmp(name, DEN, nlen) == 0)
		kind = 'd';
	else
		return WEFT_OK;   /* a series we do not use */
	if (s < end && *s == '{' && (rc = parse_labels(&s, end, ls, &nls, lineno, err)) != WEFT_OK)
		return rc;
	while (s < end && *s == ' ')
		s++;
	if (parse_count(s, end, &value) != 0)
		return weft_errf(err, WEFT_EINVAL, "line %zu: the value is not a count", lineno);
	if (kind == 'd') {
		out->denials = out->denials > UINT64_MAX - value ? UINT64_MAX : out->denials + value;
		return WEFT_OK;
	}
	if ((listener = label_get(ls, nls, "listener")) == NULL)
		return weft_errf(err, WEFT_EINVAL, "line %zu: no listener label", lineno);
	if ((l = listener_get(out, listener)) == NULL)
		return weft_errf(err, WEFT_ETOOBIG, "line %zu: more than %d listeners, or a name over "
				 "%d bytes", lineno, PROM_MAX_LISTENERS, PROM_NAME_MAX);
	if (kind == 'r') {
		int c;

		if ((v = label_get(ls, nls, "code")) == NULL)
			return weft_errf(err, WEFT_EINVAL, "line %zu: no code label", lineno);
		for (c = 0; c < PROM_NCLASS; c++)
			if (strcmp(v, prom_class_names[c]) == 0)
				break;
		if (c == PROM_NCLASS)
			c = PROM_OTHER;
		l->responses[c] = value;
		return WEFT_OK;
	} else {
		double le;

		if ((v = label_get(ls, nls, "le")) == NULL || parse_le(v, &le) != 0)
			return weft_errf(err, WEFT_EINVAL, "line %zu: a bucket needs le, a positive "
					 "number or +Inf", lineno);
		if (l->nbuckets > 0 && !(le > l->le[l->nbuckets - 1]))
			return weft_errf(err, WEFT_EINVAL, "line %zu: buckets out of order", lineno);
		if (l->nbuckets > 0 && value < l->cum[l->nbuckets - 1])
			return weft_errf(err, WEFT_EINVAL, "line %zu: bucket counts are not cumulative",
					 lineno);
		if (l->nbuckets >= PROM_MAX_BUCKETS)
			return weft_errf(err, WEFT_ETOOBIG, "line %zu: more than %d buckets", lineno,
					 PROM_MAX_BUCKETS);
		l->le[l->nbuckets] = le;
		l->cum[l->nbuckets++] = value;
		return WEFT_OK;
	}
}

int prom_parse(const char *text, size_t len, struct prom_stats *out, char **err)
{
	const char *p = text, *end = text + len;
	size_t lineno = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > PROM_MAX_BYTES)
		return weft_errf(err, WEFT_ETOOBIG, "stats: %zu bytes, at most %u", len, PROM_MAX_BYTES);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;

		lineno++;
		if (le > p && le[-1] == '\r')
			le--;
		if (le > p && *p != '#' && (rc = parse_line(out, p, le, lineno, err)) != WEFT_OK)
			return rc;
		p = eol ? eol + 1 : end;
	}
	return WEFT_OK;
}
