/* px_sni: the ClientHello parser and the route table (px_sni.h,
 * docs/proxy-passthrough.md). No libevent here: the config decoder and the
 * fuzzer link this alone; the listener is px_sni_listener.c. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "px_config.h"
#include "px_sni.h"

/* ---- the ClientHello parser ---- */

#define REC_HDR 5                       /* type, version, length */
#define REC_MAX 16384                   /* a record's largest plaintext (RFC 8446 5.1) */
#define HS_HDR 4                        /* type, 24-bit length */
#define CT_HANDSHAKE 22
#define HT_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define NAME_HOST 0
/* legacy_version, random, the session ID's length, one cipher suite with
 * its length, one compression method with its length */
#define HELLO_MIN (2 + 32 + 1 + 2 + 2 + 1 + 1)

static unsigned u16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static bool name_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.';
}

/* 1..253 bytes of name characters in labels of 1..63. */
static bool dns_name_ok(const uint8_t *p, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > PX_SNI_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (!name_char(p[i]) || ++label > 63) {
			return false;
		}
	}
	return label != 0;
}

bool px_sni_name_valid(const char *name, bool wildcard)
{
	if (name == NULL)
		return false;
	if (wildcard && name[0] == '*' && name[1] == '.')
		name += 2;
	return dns_name_ok((const uint8_t *)name, strlen(name));
}

/* The server_name extension's data (RFC 6066 section 3). */
static enum px_sni_result server_name(const uint8_t *d, size_t n, char *out, size_t outsize)
{
	bool have = false;
	size_t q = 2;

	if (n < 2 || u16(d) != n - 2 || n == 2)
		return PX_SNI_ERROR;
	while (q < n) {
		unsigned type;
		size_t len;

		if (n - q < 3)
			return PX_SNI_ERROR;
		type = d[q];
		len = u16(d + q + 1);
		q += 3;
		if (len > n - q)
			return PX_SNI_ERROR;
		if (type == NAME_HOST) {
			/* one host_name only: two would make the route ambiguous */
			if (have || !dns_name_ok(d + q, len) || len + 1 > outsize)
				return PX_SNI_ERROR;
			for (size_t i = 0; i < len; i++)
				out[i] = (char)(d[q + i] >= 'A' && d[q + i] <= 'Z' ? d[q + i] + 32 : d[q + i]);
			out[len] = '\0';
			have = true;
		}
		q += len;
	}
	return have ? PX_SNI_FOUND : PX_SNI_NONE;
}

/* The ClientHello's body (RFC 8446 section 4.1.2; TLS 1.0..1.2 alike). */
static enum px_sni_result hello(const uint8_t *b, size_t n, char *out, size_t outsize)
{
	enum px_sni_result r = PX_SNI_NONE;
	bool seen = false;
	size_t p, len;

	if (n < HELLO_MIN || b[0] != 3)
		return PX_SNI_ERROR;
	p = 2 + 32;
	len = b[p++];                                   /* legacy_session_id<0..32> */
	if (len > 32 || len > n - p)
		return PX_SNI_ERROR;
	p += len;
	if (n - p < 2)                                  /* cipher_suites<2..2^16-2> */
		return PX_SNI_ERROR;
	len = u16(b + p);
	p += 2;
	if (len < 2 || len % 2 != 0 || len > n - p)
		return PX_SNI_ERROR;
	p += len;
	if (n - p < 1)                                  /* legacy_compression_methods<1..2^8-1> */
		return PX_SNI_ERROR;
	len = b[p++];
	if (len < 1 || len > n - p)
		return PX_SNI_ERROR;
	p += len;
	if (p == n)                                     /* no extensions (TLS 1.2 and older) */
		return PX_SNI_NONE;
	if (n - p < 2)
		return PX_SNI_ERROR;
	len = u16(b + p);
	p += 2;
	if (len != n - p)                               /* the extensions fill the hello */
		return PX_SNI_ERROR;
	while (p < n) {
		unsigned type;

		if (n - p < 4)
			return PX_SNI_ERROR;
		type = u16(b + p);
		len = u16(b + p + 2);
		p += 4;
		if (len > n - p)
			return PX_SNI_ERROR;
		if (type == EXT_SERVER_NAME) {
			if (seen)
				return PX_SNI_ERROR;
			seen = true;
			r = server_name(b + p, len, out, outsize);
			if (r == PX_SNI_ERROR)
				return r;
		}
		p += len;
	}
	return r;
}

enum px_sni_result px_sni_parse(const uint8_t *data, size_t len, char *out, size_t outsize)
{
	uint8_t hs[PX_SNI_MAX_BYTES];           /* the handshake bytes, out of their records */
	size_t hs_len = 0, pos = 0, need = 0;   /* need: the hello with its header, once known */
	enum px_sni_result r;

	if (outsize > 0)
		out[0] = '\0';
	if (len > PX_SNI_MAX_BYTES)
		len = PX_SNI_MAX_BYTES;         /* the hello must end within the bound */
	while (need == 0 || hs_len < need) {
		size_t rlen, take;

		if (pos == len)
			goto more;
		/* the record header, checked as far as it has arrived, so that
		 * other protocols are refused at their first bytes */
		if (data[pos] != CT_HANDSHAKE || (len - pos > 1 && data[pos + 1] != 3) ||
		    (len - pos > 2 && data[pos + 2] > 4))
			return PX_SNI_ERROR;
		if (len - pos < REC_HDR)
			goto more;
		rlen = u16(data + pos + 3);
		if (rlen == 0 || rlen > REC_MAX)
			return PX_SNI_ERROR;
		pos += REC_HDR;
		take = rlen < len - pos ? rlen : len - pos;
		if (need != 0 && take > need - hs_len)
			take = need - hs_len;   /* what follows the hello is not ours to read */
		if (take > sizeof(hs) - hs_len)
			return PX_SNI_ERROR;    /* cannot happen: len is bounded */
		memcpy(hs + hs_len, data + pos, take);
		hs_len += take;
		pos += take;
		if (hs_len > 0 && hs[0] != HT_CLIENT_HELLO)
			return PX_SNI_ERROR;
		if (need == 0 && hs_len >= HS_HDR) {
			size_t body = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];

			if (body < HELLO_MIN || REC_HDR + HS_HDR + body > PX_SNI_MAX_BYTES)
				return PX_SNI_ERROR;
			need = HS_HDR + body;
		}
		if (need != 0 && hs_len >= need)
			break;
		if (take < rlen)
			goto more;              /* the rest of this record has not arrived */
	}
	r = hello(hs + HS_HDR, need - HS_HDR, out, outsize);
	if (r != PX_SNI_FOUND && outsize > 0)
		out[0] = '\0';
	return r;
more:
	return len >= PX_SNI_MAX_BYTES ? PX_SNI_ERROR : PX_SNI_NEED_MORE;
}

const char *px_sni_result_string(enum px_sni_result r)
{
	switch (r) {
	case PX_SNI_NEED_MORE: return "need-more";
	case PX_SNI_FOUND: return "found";
	case PX_SNI_NONE: return "none";
	default: return "error";
	}
}

/* ---- the route table ---- */

struct route {
	char *name;                     /* lowercased; "*.rest" for a wildcard */
	bool wildcard;
	struct sockaddr_in *eps;
	size_t n;
};

struct px_sni_routes {
	struct route *r;
	size_t n, cap;
};

int px_sni_routes_new(struct px_sni_routes **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? WEFT_OK : WEFT_ENOMEM;
}

void px_sni_routes_free(struct px_sni_routes *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->r[i].name);
		free(t->r[i].eps);
	}
	free(t->r);
	free(t);
}

int px_sni_routes_add(struct px_sni_routes *t, const char *name, const struct sockaddr_in *eps,
		      size_t n, char **err)
{
	struct route r = {0};

	if (!px_sni_name_valid(name, true))
		return weft_errf(err, WEFT_EINVAL, "route \"%s\": not a server name (letters, digits, "
				 "'-', '_' and '.', optionally after \"*.\")", name ? name : "");
	if (n == 0 || n > PX_SNI_ENDPOINTS_MAX)
		return weft_errf(err, WEFT_EINVAL, "route \"%s\": want 1..%d endpoints, got %zu", name,
				 PX_SNI_ENDPOINTS_MAX, n);
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->r[i].name, name) == 0)
			return weft_errf(err, WEFT_EINVAL, "route \"%s\": given twice (names ignore case)",
					 name);
	if (t->n == PX_SNI_ROUTES_MAX)
		return weft_errf(err, WEFT_EINVAL, "route \"%s\": more than %d routes", name,
				 PX_SNI_ROUTES_MAX);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct route *nr = realloc(t->r, cap * sizeof(*nr));

		if (nr == NULL)
			return weft_errf(err, WEFT_ENOMEM, "route \"%s\": out of memory", name);
		t->r = nr;
		t->cap = cap;
	}
	r.name = strdup(name);
	r.eps = malloc(n * sizeof(*eps));
	if (r.name == NULL || r.eps == NULL) {
		free(r.name);
		free(r.eps);
		return weft_errf(err, WEFT_ENOMEM, "route \"%s\": out of memory", name);
	}
	for (char *p = r.name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	r.wildcard = r.name[0] == '*';
	memcpy(r.eps, eps, n * sizeof(*eps));
	r.n = n;
	t->r[t->n++] = r;
	return WEFT_OK;
}

/* "A.B.C.D:PORT" into sa. */
static int ipv4_port(const char *s, size_t len, struct sockaddr_in *sa)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = memchr(s, ':', len);
	unsigned long port = 0;
	size_t i;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host) || colon + 1 == s + len)
		return -1;
	for (i = (size_t)(colon - s) + 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || (port = port * 10 + (unsigned long)(s[i] - '0')) > 65535)
			return -1;
	}
	if (port == 0)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int px_sni_routes_add_spec(struct px_sni_routes *t, const char *spec, char **err)
{
	const char *eq = strchr(spec, '='), *p;
	struct sockaddr_in *eps = NULL;
	char name[PX_SNI_NAME_MAX + 3];
	size_t n = 0;
	int rc;

	if (eq == NULL || eq == spec || (size_t)(eq - spec) >= sizeof(name))
		return weft_errf(err, WEFT_EINVAL, "route \"%s\": want NAME=IP:PORT[,IP:PORT...]", spec);
	memcpy(name, spec, (size_t)(eq - spec));
	name[eq - spec] = '\0';
	if ((eps = calloc(PX_SNI_ENDPOINTS_MAX, sizeof(*eps))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "route \"%s\": out of memory", name);
	for (p = eq + 1;; p++) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (n == PX_SNI_ENDPOINTS_MAX) {
			rc = weft_errf(err, WEFT_EINVAL, "route \"%s\": more than %d endpoints", name,
				       PX_SNI_ENDPOINTS_MAX);
			goto out;
		}
		if (ipv4_port(p, len, &eps[n]) != 0) {
			rc = weft_errf(err, WEFT_EINVAL, "route \"%s\": endpoint \"%.*s\": want "
				       "IPv4-ADDRESS:PORT", name, (int)len, p);
			goto out;
		}
		n++;
		if (end == NULL)
			break;
		p = end;
	}
	rc = px_sni_routes_add(t, name, eps, n, err);
out:
	free(eps);
	return rc;
}

int px_sni_routes_add_config(struct px_sni_routes *t, const struct px_passthrough *pt, char **err)
{
	struct sockaddr_in *eps = NULL;
	char *e = NULL;
	int rc = WEFT_OK;

	for (size_t i = 0; i < pt->n_routes && rc == WEFT_OK; i++) {
		const struct px_passthrough_route *r = &pt->routes[i];

		free(eps);
		if ((eps = calloc(r->n_endpoints ? r->n_endpoints : 1, sizeof(*eps))) == NULL)
			return weft_errf(err, WEFT_ENOMEM, "Passthrough.Routes[%zu]: out of memory", i);
		for (size_t j = 0; j < r->n_endpoints; j++) {
			eps[j].sin_family = AF_INET;
			eps[j].sin_port = htons(r->endpoints[j].port);
			if (inet_pton(AF_INET, r->endpoints[j].address, &eps[j].sin_addr) != 1) {
				rc = weft_errf(err, WEFT_EINVAL, "Passthrough.Routes[%zu].Endpoints[%zu]."
					       "Address: \"%s\": this proxy connects on IPv4 only", i, j,
					       r->endpoints[j].address);
				goto out;
			}
		}
		if ((rc = px_sni_routes_add(t, r->sni, eps, r->n_endpoints, &e)) != WEFT_OK)
			rc = weft_errf(err, rc, "Passthrough.Routes[%zu].SNI: %s", i, e);
		free(e);
		e = NULL;
	}
out:
	free(eps);
	return rc;
}

size_t px_sni_routes_count(const struct px_sni_routes *t)
{
	return t->n;
}

int px_sni_routes_lookup(const struct px_sni_routes *t, const char *name)
{
	const char *dot = strchr(name, '.');

	for (size_t i = 0; i < t->n; i++)
		if (!t->r[i].wildcard && strcasecmp(t->r[i].name, name) == 0)
			return (int)i;
	if (dot == NULL || dot == name)
		return -1;
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i].wildcard && strcasecmp(t->r[i].name + 2, dot + 1) == 0)
			return (int)i;
	return -1;
}

const char *px_sni_routes_name(const struct px_sni_routes *t, int route)
{
	return t->r[route].name;
}

size_t px_sni_routes_n_endpoints(const struct px_sni_routes *t, int route)
{
	return t->r[route].n;
}

const struct sockaddr_in *px_sni_routes_endpoint(const struct px_sni_routes *t, int route, size_t i)
{
	return &t->r[route].eps[i];
}
