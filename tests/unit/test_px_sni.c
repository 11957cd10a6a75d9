/* px_sni: the ClientHello parser on real hellos that OpenSSL writes at test
 * time (into a memory BIO), cut at every byte and re-framed into small
 * records; hellos without a name; other protocols; every length of the
 * hello made wrong; the size bound; names the parser must refuse; and the
 * route table (exact, case, "*." for one label, --route specs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "err.h"
#include "px_config.h"
#include "px_sni.h"

#define BIG (PX_SNI_MAX_BYTES * 2)

struct bytes {
	uint8_t d[BIG];
	size_t n;
};

/* The first flight of an OpenSSL client: the ClientHello record(s).
 * name NULL: no server_name. max_version 0: the default (TLS 1.3). */
static void real_hello(const char *name, int max_version, struct bytes *out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	BIO *rb, *wb;
	int n;

	assert_non_null(ctx);
	if (max_version)
		assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
	ssl = SSL_new(ctx);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	assert_non_null(ssl);
	SSL_set_bio(ssl, rb, wb);
	if (name)
		assert_int_equal(SSL_set_tlsext_host_name(ssl, name), 1);
	assert_int_equal(SSL_connect(ssl), -1);
	assert_int_equal(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
	n = BIO_read(wb, out->d, sizeof(out->d));
	assert_true(n > 0);
	out->n = (size_t)n;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

/* The handshake bytes of a one-record hello, re-framed into records of at
 * most frag bytes each. */
static void reframe(const struct bytes *in, size_t frag, struct bytes *out)
{
	size_t hs = (size_t)in->d[3] << 8 | in->d[4];

	assert_int_equal(hs + 5, in->n);
	out->n = 0;
	for (size_t p = 0; p < hs; p += frag) {
		size_t k = hs - p < frag ? hs - p : frag;

		assert_true(out->n + 5 + k <= sizeof(out->d));
		memcpy(out->d + out->n, in->d, 3);
		out->d[out->n + 3] = (uint8_t)(k >> 8);
		out->d[out->n + 4] = (uint8_t)k;
		memcpy(out->d + out->n + 5, in->d + 5 + p, k);
		out->n += 5 + k;
	}
}

static enum px_sni_result parse(const uint8_t *d, size_t n, char *name)
{
	/* an exact-size heap copy, so that a read past the end is seen */
	uint8_t *copy = malloc(n ? n : 1);
	enum px_sni_result r;
	char tmp[PX_SNI_NAME_MAX + 1];

	memcpy(copy, d, n);
	r = px_sni_parse(copy, n, name ? name : tmp, PX_SNI_NAME_MAX + 1);
	free(copy);
	return r;
}

/* Every strict prefix needs more; the whole gives name. */
static void check_prefixes(const struct bytes *b, enum px_sni_result want, const char *name)
{
	char out[PX_SNI_NAME_MAX + 1];

	for (size_t k = 0; k < b->n; k++) {
		enum px_sni_result r = parse(b->d, k, out);

		if (r != PX_SNI_NEED_MORE)
			fail_msg("prefix of %zu of %zu bytes: %s, want need-more", k, b->n,
				 px_sni_result_string(r));
		assert_string_equal(out, "");
	}
	assert_int_equal(parse(b->d, b->n, out), want);
	assert_string_equal(out, name);
}

static void test_real_hello_every_split(void **state)
{
	struct bytes b, r;

	(void)state;
	real_hello("API.Example.com", 0, &b);
	check_prefixes(&b, PX_SNI_FOUND, "api.example.com");
	/* TLS 1.2's hello too */
	real_hello("b.test", TLS1_2_VERSION, &b);
	check_prefixes(&b, PX_SNI_FOUND, "b.test");
	/* split across records, down to one byte each */
	real_hello("x.example.org", 0, &b);
	for (size_t frag = 1; frag <= 64; frag = frag * 2 + 1) {
		reframe(&b, frag, &r);
		check_prefixes(&r, PX_SNI_FOUND, "x.example.org");
	}
}

static void test_bytes_after_the_hello(void **state)
{
	struct bytes b;
	char out[PX_SNI_NAME_MAX + 1];

	(void)state;
	real_hello("a.test", 0, &b);
	/* whatever follows the hello (a record of another type) is not read */
	memcpy(b.d + b.n, "\x17\x03\x03\x00\x01X", 6);
	assert_int_equal(parse(b.d, b.n + 6, out), PX_SNI_FOUND);
	assert_string_equal(out, "a.test");
	/* the hello's record goes on after the hello: ignored too */
	memcpy(b.d + b.n, "\x00\x00\x00", 3);
	b.d[4] = (uint8_t)(b.d[4] + 3);
	assert_int_equal(parse(b.d, b.n + 3, out), PX_SNI_FOUND);
	assert_string_equal(out, "a.test");
}

static void test_no_sni(void **state)
{
	struct bytes b, r;

	(void)state;
	real_hello(NULL, 0, &b);
	check_prefixes(&b, PX_SNI_NONE, "");
	reframe(&b, 7, &r);
	check_prefixes(&r, PX_SNI_NONE, "");
	real_hello(NULL, TLS1_2_VERSION, &b);
	check_prefixes(&b, PX_SNI_NONE, "");
}

#define LIT(s) {(const uint8_t *)(s), sizeof(s) - 1}

static void test_not_tls(void **state)
{
	static const struct {
		const uint8_t *d;
		size_t n;
	} inputs[] = {
		LIT("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"),
		LIT("SSH-2.0-OpenSSH_9.2\r\n"),
		LIT("\x80\x2e\x01\x03\x01"),                 /* an SSLv2-framed hello */
		LIT("\x17\x03\x03\x00\x10"),                 /* application data first */
		LIT("\x15\x03\x03\x00\x02\x02\x28"),         /* an alert */
		LIT("\x16\x02\x00"),                         /* record version 2.0 */
		LIT("\x16\x03\x09"),                         /* record version 3.9 */
		LIT("\x16\x03\x01\x00\x00"),                 /* an empty record */
		LIT("\x16\x03\x01\x40\x01"),                 /* a record over 16 KiB */
		LIT("\x16\x03\x01\x00\x04\x02\x00\x00\x00"), /* a ServerHello */
		LIT("\x16\x03\x01\x00\x04\x01\x00\x00\x05"), /* a hello too short to be one */
		LIT("\x16\x03\x01\x00\x04\x01\x00\x40\x00"), /* a hello of 16 KiB: over the bound */
		/* a hello, then a record of another type before its end */
		LIT("\x16\x03\x01\x00\x04\x01\x00\x00\x40\x17\x03\x03\x00\x01"),
	};

	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		if (parse(inputs[i].d, inputs[i].n, NULL) != PX_SNI_ERROR)
			fail_msg("input %zu: not refused", i);
	/* the first byte says it, as soon as it has arrived */
	assert_int_equal(parse((const uint8_t *)"G", 1, NULL), PX_SNI_ERROR);
	assert_int_equal(parse((const uint8_t *)"", 0, NULL), PX_SNI_NEED_MORE);
	assert_int_equal(parse((const uint8_t *)"\x16\x03", 2, NULL), PX_SNI_NEED_MORE);
}

/* ---- synthetic hellos, to put each length wrong ---- */

struct hello {
	uint8_t b[BIG];
	size_t n;
	size_t ext_len_at;      /* where the extensions' length is */
};

static void put(struct hello *h, const void *p, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void put16(struct hello *h, size_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put(h, x, 2);
}

/* The body of a ClientHello up to the extensions' length. */
static void body_start(struct hello *h)
{
	static const uint8_t random[32];

	h->n = 0;
	put(h, "\x03\x03", 2);
	put(h, random, 32);
	put(h, "\x00", 1);                  /* no session ID */
	put(h, "\x00\x02\x13\x01", 4);      /* one suite */
	put(h, "\x01\x00", 2);              /* null compression */
	h->ext_len_at = h->n;
	put16(h, 0);
}

static void body_end(struct hello *h)
{
	size_t n = h->n - h->ext_len_at - 2;

	h->b[h->ext_len_at] = (uint8_t)(n >> 8);
	h->b[h->ext_len_at + 1] = (uint8_t)n;
}

/* server_name with the given host names */
static void ext_sni(struct hello *h, const char *a, const char *b)
{
	size_t la = strlen(a), lb = b ? strlen(b) : 0;
	size_t list = 3 + la + (b ? 3 + lb : 0);

	put16(h, 0);
	put16(h, list + 2);
	put16(h, list);
	put(h, "\x00", 1);
	put16(h, la);
	put(h, a, la);
	if (b) {
		put(h, "\x00", 1);
		put16(h, lb);
		put(h, b, lb);
	}
}

static void ext_other(struct hello *h, unsigned type, size_t len)
{
	put16(h, type);
	put16(h, len);
	for (size_t i = 0; i < len; i++)
		put(h, "\x00", 1);
}

/* body into one handshake message in records of frag bytes */
static void frame(const struct hello *h, size_t frag, struct bytes *out)
{
	uint8_t hdr[4] = {1, (uint8_t)(h->n >> 16), (uint8_t)(h->n >> 8), (uint8_t)h->n};
	size_t hs = h->n + 4;

	out->n = 0;
	for (size_t p = 0; p < hs; p += frag) {
		size_t k = hs - p < frag ? hs - p : frag;

		assert_true(out->n + 5 + k <= sizeof(out->d));
		out->d[out->n] = 0x16;
		out->d[out->n + 1] = 3;
		out->d[out->n + 2] = 1;
		out->d[out->n + 3] = (uint8_t)(k >> 8);
		out->d[out->n + 4] = (uint8_t)k;
		for (size_t i = 0; i < k; i++)
			out->d[out->n + 5 + i] = p + i < 4 ? hdr[p + i] : h->b[p + i - 4];
		out->n += 5 + k;
	}
}

static enum px_sni_result parse_hello(const struct hello *h, char *name)
{
	struct bytes b;

	frame(h, 16384, &b);
	return parse(b.d, b.n, name);
}

static void test_synthetic(void **state)
{
	struct hello h;
	char out[PX_SNI_NAME_MAX + 1];

	(void)state;
	body_start(&h);
	ext_other(&h, 10, 4);
	ext_sni(&h, "svc.zone.test", NULL);
	ext_other(&h, 43, 3);
	body_end(&h);
	assert_int_equal(parse_hello(&h, out), PX_SNI_FOUND);
	assert_string_equal(out, "svc.zone.test");
	/* a legacy_version that is not 3.x */
	h.b[0] = 2;
	assert_int_equal(parse_hello(&h, out), PX_SNI_ERROR);

	/* no extensions at all (allowed before TLS 1.3) */
	body_start(&h);
	h.n -= 2;
	assert_int_equal(parse_hello(&h, out), PX_SNI_NONE);

	/* a name type other than host_name is skipped */
	body_start(&h);
	put16(&h, 0);
	put16(&h, 2 + 3 + 2);
	put16(&h, 3 + 2);
	put(&h, "\x07\x00\x02xy", 5);
	body_end(&h);
	assert_int_equal(parse_hello(&h, out), PX_SNI_NONE);
}

/* Each length field of a valid hello, one off either way: refused. */
static void test_truncated_lengths(void **state)
{
	struct hello h, bad;
	size_t sni_at, at[5];

	(void)state;
	body_start(&h);
	ext_other(&h, 10, 4);
	sni_at = h.n;
	ext_sni(&h, "a.test", NULL);
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_FOUND);
	at[0] = h.ext_len_at;           /* extensions block */
	at[1] = sni_at + 2;             /* the extension's length */
	at[2] = sni_at + 4;             /* server name list */
	at[3] = sni_at + 7;             /* host name */
	at[4] = 2 + 32 + 1;             /* cipher suites */
	for (size_t i = 0; i < 5; i++) {
		for (int d = -1; d <= 1; d += 2) {
			bad = h;
			bad.b[at[i] + 1] = (uint8_t)(bad.b[at[i] + 1] + d);
			if (parse_hello(&bad, NULL) != PX_SNI_ERROR)
				fail_msg("length at %zu %+d: accepted", at[i], d);
		}
		/* and far too long */
		bad = h;
		bad.b[at[i]] = 0xff;
		assert_int_equal(parse_hello(&bad, NULL), PX_SNI_ERROR);
	}
	/* a session ID over 32 bytes */
	bad = h;
	bad.b[34] = 33;
	assert_int_equal(parse_hello(&bad, NULL), PX_SNI_ERROR);
	/* an odd suites length, no compression method */
	bad = h;
	bad.b[36] = 3;
	assert_int_equal(parse_hello(&bad, NULL), PX_SNI_ERROR);
	bad = h;
	bad.b[39] = 0;
	assert_int_equal(parse_hello(&bad, NULL), PX_SNI_ERROR);
	/* the body cut inside the extensions (the handshake length says so) */
	for (size_t cut = h.ext_len_at + 1; cut < h.n; cut++) {
		bad = h;
		bad.n = cut;
		assert_int_equal(parse_hello(&bad, NULL), PX_SNI_ERROR);
	}
	/* an empty server_name extension, an empty name list */
	body_start(&h);
	put(&h, "\x00\x00\x00\x00", 4);
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_ERROR);
	body_start(&h);
	put(&h, "\x00\x00\x00\x02\x00\x00", 6);
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_ERROR);
}

static void test_ambiguous_and_bad_names(void **state)
{
	static const char *const bad_names[] = {
		"a.test.", ".a.test", "a..test", "", "a test", "a/b", "\xc3\xa9.test", "*.a.test",
		"a:443",
	};
	char long_label[80], long_name[300], out[PX_SNI_NAME_MAX + 1];
	struct hello h;

	(void)state;
	/* two host names, two server_name extensions */
	body_start(&h);
	ext_sni(&h, "a.test", "b.test");
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_ERROR);
	body_start(&h);
	ext_sni(&h, "a.test", NULL);
	ext_sni(&h, "a.test", NULL);
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_ERROR);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		body_start(&h);
		ext_sni(&h, bad_names[i], NULL);
		body_end(&h);
		if (parse_hello(&h, NULL) != PX_SNI_ERROR)
			fail_msg("name \"%s\": accepted", bad_names[i]);
	}
	/* a NUL inside */
	body_start(&h);
	ext_sni(&h, "a.test", NULL);
	body_end(&h);
	h.b[h.n - 3] = 0;
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_ERROR);
	/* labels up to 63, names up to 253 */
	memset(long_label, 'x', 63);
	strcpy(long_label + 63, ".test");
	body_start(&h);
	ext_sni(&h, long_label, NULL);
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_FOUND);
	memmove(long_label + 1, long_label, strlen(long_label) + 1);
	body_start(&h);
	ext_sni(&h, long_label, NULL);
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_ERROR);
	for (size_t i = 0; i < 253; i++)
		long_name[i] = i % 2 ? '.' : 'a';
	long_name[252] = 'z';
	long_name[253] = '\0';
	body_start(&h);
	ext_sni(&h, long_name, NULL);
	body_end(&h);
	assert_int_equal(parse_hello(&h, out), PX_SNI_FOUND);
	assert_string_equal(out, long_name);
	/* an out buffer too small for the name: refused, not cut */
	{
		struct bytes b;

		frame(&h, 16384, &b);
		assert_int_equal(px_sni_parse(b.d, b.n, out, 100), PX_SNI_ERROR);
		assert_string_equal(out, "");
	}
	long_name[253] = 'a';
	long_name[254] = '\0';
	body_start(&h);
	ext_sni(&h, long_name, NULL);
	body_end(&h);
	assert_int_equal(parse_hello(&h, NULL), PX_SNI_ERROR);
	/* underscores and digits are fine */
	body_start(&h);
	ext_sni(&h, "_svc-1.Zone_2.test", NULL);
	body_end(&h);
	assert_int_equal(parse_hello(&h, out), PX_SNI_FOUND);
	assert_string_equal(out, "_svc-1.zone_2.test");
}

/* The records up to the hello's end must fit in 16 KiB. */
static void test_oversized(void **state)
{
	struct hello h;
	struct bytes b;
	size_t fits;

	(void)state;
	/* padding that brings the framed hello to exactly the bound */
	body_start(&h);
	ext_sni(&h, "a.test", NULL);
	fits = PX_SNI_MAX_BYTES - 5 - 4 - h.n - 4;
	ext_other(&h, 21, fits);
	body_end(&h);
	frame(&h, 16384, &b);
	assert_int_equal(b.n, PX_SNI_MAX_BYTES);
	assert_int_equal(parse(b.d, b.n, NULL), PX_SNI_FOUND);
	/* one byte more: refused on its header alone */
	body_start(&h);
	ext_sni(&h, "a.test", NULL);
	ext_other(&h, 21, fits + 1);
	body_end(&h);
	frame(&h, 16384, &b);
	assert_int_equal(parse(b.d, 9, NULL), PX_SNI_ERROR);
	assert_int_equal(parse(b.d, b.n, NULL), PX_SNI_ERROR);
	/* small records: the headers count, so the same hello no longer fits */
	body_start(&h);
	ext_sni(&h, "a.test", NULL);
	ext_other(&h, 21, fits);
	body_end(&h);
	frame(&h, 1000, &b);
	assert_true(b.n > PX_SNI_MAX_BYTES);
	assert_int_equal(parse(b.d, PX_SNI_MAX_BYTES - 1, NULL), PX_SNI_NEED_MORE);
	assert_int_equal(parse(b.d, PX_SNI_MAX_BYTES, NULL), PX_SNI_ERROR);
	assert_int_equal(parse(b.d, b.n, NULL), PX_SNI_ERROR);
	/* a stream of one-byte records: the bound comes first */
	body_start(&h);
	ext_sni(&h, "a.test", NULL);
	ext_other(&h, 21, 3000);
	body_end(&h);
	frame(&h, 1, &b);
	assert_true(b.n > PX_SNI_MAX_BYTES);
	assert_int_equal(parse(b.d, PX_SNI_MAX_BYTES - 1, NULL), PX_SNI_NEED_MORE);
	assert_int_equal(parse(b.d, PX_SNI_MAX_BYTES, NULL), PX_SNI_ERROR);
}

/* ---- the route table ---- */

static struct sockaddr_in ep(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};

	sa.sin_addr.s_addr = htonl(0x7f000001);
	return sa;
}

static void test_routes(void **state)
{
	struct px_sni_routes *t;
	struct sockaddr_in e[2] = {ep(1), ep(2)};
	char *err = NULL;
	int a, w, x;

	(void)state;
	assert_int_equal(px_sni_routes_new(&t), WEFT_OK);
	assert_int_equal(px_sni_routes_add(t, "Api.Example.com", e, 1, &err), WEFT_OK);
	assert_int_equal(px_sni_routes_add(t, "*.example.com", e, 2, &err), WEFT_OK);
	assert_int_equal(px_sni_routes_add_spec(t, "x.test=127.0.0.1:8443,10.0.0.2:9443", &err), WEFT_OK);
	assert_int_equal(px_sni_routes_count(t), 3);
	a = px_sni_routes_lookup(t, "api.example.com");
	w = px_sni_routes_lookup(t, "web.EXAMPLE.com");
	x = px_sni_routes_lookup(t, "X.TEST");
	assert_int_equal(a, 0);
	assert_int_equal(w, 1);
	assert_int_equal(x, 2);
	assert_int_equal(px_sni_routes_lookup(t, "API.example.COM"), 0);    /* exact beats * */
	assert_string_equal(px_sni_routes_name(t, a), "api.example.com");
	/* "*." stands for one label: not the apex, not two */
	assert_int_equal(px_sni_routes_lookup(t, "example.com"), -1);
	assert_int_equal(px_sni_routes_lookup(t, "a.b.example.com"), -1);
	assert_int_equal(px_sni_routes_lookup(t, "y.test"), -1);
	assert_int_equal(px_sni_routes_lookup(t, "test"), -1);
	assert_int_equal(px_sni_routes_n_endpoints(t, x), 2);
	assert_int_equal(ntohs(px_sni_routes_endpoint(t, x, 1)->sin_port), 9443);
	assert_int_equal(ntohl(px_sni_routes_endpoint(t, x, 1)->sin_addr.s_addr), 0x0a000002);

	/* refused: twice (any case), bad names, no or bad endpoints */
	assert_int_equal(px_sni_routes_add(t, "API.example.com", e, 1, &err), WEFT_EINVAL);
	assert_non_null(strstr(err, "given twice"));
	free(err);
	err = NULL;
	static const char *const specs[] = {
		"x.test", "=127.0.0.1:1", "y.test=", "y.test=127.0.0.1", "y.test=127.0.0.1:0",
		"y.test=127.0.0.1:65536", "y.test=::1:80", "y.test=localhost:80", "y.test=127.0.0.1:80,",
		"a.*.test=127.0.0.1:1", "**.test=127.0.0.1:1", "*=127.0.0.1:1", "y.test.=127.0.0.1:1",
		"y.test=127.0.0.1:8x",
	};
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		if (px_sni_routes_add_spec(t, specs[i], &err) != WEFT_EINVAL)
			fail_msg("spec \"%s\": accepted", specs[i]);
		assert_non_null(err);
		free(err);
		err = NULL;
	}
	assert_int_equal(px_sni_routes_add(t, "z.test", e, 0, &err), WEFT_EINVAL);
	free(err);
	assert_int_equal(px_sni_routes_count(t), 3);
	px_sni_routes_free(t);
}

static void test_routes_from_config(void **state)
{
	struct px_hostport eps[2] = {{"127.0.0.1", 8443}, {"::1", 8443}};
	struct px_passthrough_route r[2] = {{"a.test", 1, eps}, {"b.test", 2, eps}};
	struct px_passthrough pt = {.configured = 1, .bind_address = "0.0.0.0", .bind_port = 443,
				    .n_routes = 1, .routes = r};
	struct px_sni_routes *t;
	char *err = NULL;

	(void)state;
	assert_int_equal(px_sni_routes_new(&t), WEFT_OK);
	assert_int_equal(px_sni_routes_add_config(t, &pt, &err), WEFT_OK);
	assert_int_equal(px_sni_routes_lookup(t, "a.test"), 0);
	pt.n_routes = 2;
	px_sni_routes_free(t);
	assert_int_equal(px_sni_routes_new(&t), WEFT_OK);
	assert_int_equal(px_sni_routes_add_config(t, &pt, &err), WEFT_EINVAL);
	assert_string_equal(err, "Passthrough.Routes[1].Endpoints[1].Address: \"::1\": this proxy "
			    "connects on IPv4 only");
	free(err);
	px_sni_routes_free(t);
}

static void test_name_valid(void **state)
{
	(void)state;
	assert_true(px_sni_name_valid("a", false));
	assert_true(px_sni_name_valid("A.b-c_d.test", false));
	assert_false(px_sni_name_valid("*.a.test", false));
	assert_true(px_sni_name_valid("*.a.test", true));
	assert_true(px_sni_name_valid("*.a", true));
	assert_false(px_sni_name_valid("*.", true));
	assert_false(px_sni_name_valid("*", true));
	assert_false(px_sni_name_valid("*.*.a", true));
	assert_false(px_sni_name_valid("a*.test", true));
	assert_false(px_sni_name_valid("", true));
	assert_false(px_sni_name_valid(NULL, true));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hello_every_split),
		cmocka_unit_test(test_bytes_after_the_hello),
		cmocka_unit_test(test_no_sni),
		cmocka_unit_test(test_not_tls),
		cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_truncated_lengths),
		cmocka_unit_test(test_ambiguous_and_bad_names),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_routes_from_config),
		cmocka_unit_test(test_name_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
