#include "token.h"
#include "err.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_HEADER "weft-ed25519-seed-v1 "
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define PAYLOAD_MAX 1024   /* decoded payload bytes */

_Static_assert(TOKEN_SEED_BYTES == crypto_sign_SEEDBYTES, "seed size");

struct token_key {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char seed[crypto_sign_SEEDBYTES];
};

static const char *const kind_names[] = { "admin", "operator", "agent", "service", "read-only" };

const char *token_kind_name(enum token_kind k)
{
	if ((unsigned)k >= sizeof(kind_names) / sizeof(kind_names[0]))
		return "unknown";
	return kind_names[k];
}

int token_kind_parse(const char *name, enum token_kind *out)
{
	for (size_t i = 0; name && i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
		if (strcmp(name, kind_names[i]) == 0) {
			*out = (enum token_kind)i;
			return 0;
		}
	}
	return -1;
}

int token_kind_scoped(enum token_kind k)
{
	return k == TOKEN_AGENT || k == TOKEN_SERVICE;
}

/* ---- keys ---- */

static struct token_key *key_alloc(void)
{
	/* sodium_malloc: guard pages, and the memory is locked out of swap. */
	struct token_key *k = sodium_malloc(sizeof(*k));

	if (k)
		sodium_memzero(k, sizeof(*k));
	return k;
}

void token_key_free(struct token_key *k)
{
	if (k)
		sodium_free(k);   /* wipes */
}

int token_key_generate(struct token_key **out, char **err)
{
	struct token_key *k = key_alloc();

	*out = NULL;
	if (k == NULL)
		return weft_errf(err, WEFT_ENOMEM, "token: cannot allocate a key");
	randombytes_buf(k->seed, sizeof(k->seed));
	crypto_sign_seed_keypair(k->pk, k->sk, k->seed);
	*out = k;
	return WEFT_OK;
}

int token_key_from_seed(struct token_key **out, const unsigned char seed[TOKEN_SEED_BYTES],
			char **err)
{
	struct token_key *k = key_alloc();

	*out = NULL;
	if (k == NULL)
		return weft_errf(err, WEFT_ENOMEM, "token: cannot allocate a key");
	memcpy(k->seed, seed, sizeof(k->seed));
	crypto_sign_seed_keypair(k->pk, k->sk, k->seed);
	*out = k;
	return WEFT_OK;
}

int token_key_save(const struct token_key *k, const char *path, char **err)
{
	char text[sizeof(KEY_HEADER) + 64 + 2];
	size_t hl = strlen(KEY_HEADER);
	int rc = WEFT_OK;

	memcpy(text, KEY_HEADER, hl);
	sodium_bin2base64(text + hl, sizeof(text) - hl - 1, k->seed, sizeof(k->seed),
			  sodium_base64_VARIANT_ORIGINAL);
	strcat(text, "\n");
	if (file_write_all(path, text, strlen(text), 0600) != 0)
		rc = weft_errf(err, WEFT_EIO, "token: cannot write the signing key %s: %s", path,
			       strerror(errno));
	sodium_memzero(text, sizeof(text));
	return rc;
}

int token_key_load(struct token_key **out, const char *path, char **err)
{
	struct token_key *k = NULL;
	struct stat stbuf;
	char *text = NULL;
	size_t len = 0, hl = strlen(KEY_HEADER), seedlen = 0, b64len;
	int rc;

	*out = NULL;
	if (stat(path, &stbuf) != 0)
		return weft_errf(err, errno == ENOENT ? WEFT_ENOENT : WEFT_EIO,
				 "token: cannot read the signing key %s: %s", path, strerror(errno));
	if (stbuf.st_mode & 077)
		return weft_errf(err, WEFT_EPERM,
				 "token: the signing key %s has mode %04o; it must be readable by its "
				 "owner only (chmod 600 %s)", path, (unsigned)(stbuf.st_mode & 07777), path);
	text = file_read_all(path, 1024, &len);
	if (text == NULL)
		return weft_errf(err, WEFT_EIO, "token: cannot read the signing key %s: %s", path,
				 strerror(errno));
	if ((k = key_alloc()) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "token: cannot allocate a key");
		goto out;
	}
	b64len = len > hl ? strcspn(text + hl, "\r\n") : 0;
	if (len <= hl || memcmp(text, KEY_HEADER, hl) != 0 ||
	    sodium_base642bin(k->seed, sizeof(k->seed), text + hl, b64len, NULL, &seedlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    seedlen != sizeof(k->seed)) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "token: %s is not a Weft signing key (expected \"%s<base64 seed>\")",
			       path, KEY_HEADER);
		goto out;
	}
	crypto_sign_seed_keypair(k->pk, k->sk, k->seed);
	*out = k;
	k = NULL;
	rc = WEFT_OK;
out:
	sodium_memzero(text, len);
	free(text);
	token_key_free(k);
	return rc;
}

/* ---- signing ---- */

void token_secret_free(char *secret)
{
	if (secret == NULL)
		return;
	sodium_memzero(secret, strlen(secret));
	free(secret);
}

static int scope_valid(const char *s)
{
	return name_valid(s, TOKEN_SCOPE_MAX + 1);
}

static int claims_check(const struct token_claims *c, char **err)
{
	if (!uuid_valid(c->accessor))
		return weft_errf(err, WEFT_EINVAL, "token: the accessor is not a UUID");
	if ((unsigned)c->kind > TOKEN_READ_ONLY)
		return weft_errf(err, WEFT_EINVAL, "token: unknown kind %d", (int)c->kind);
	if (token_kind_scoped(c->kind) && !scope_valid(c->scope))
		return weft_errf(err, WEFT_EINVAL,
				 "token: a%s token needs a %s name (letters, digits, '-', '_', '.')",
				 c->kind == TOKEN_AGENT ? "n agent" : " service",
				 c->kind == TOKEN_AGENT ? "node" : "service");
	if (!token_kind_scoped(c->kind) && c->scope[0])
		return weft_errf(err, WEFT_EINVAL, "token: %s tokens have no scope",
				 token_kind_name(c->kind));
	if (c->issued_ms < 0 || c->expires_ms < 0)
		return weft_errf(err, WEFT_EINVAL, "token: negative time");
	return WEFT_OK;
}

int token_sign(const struct token_key *k, const struct token_claims *c, char **secret_out,
	       char **err)
{
	json_t *payload = NULL;
	char *json = NULL, *secret = NULL;
	size_t jl, pl, sl, pfx = strlen(TOKEN_PREFIX), total;
	unsigned char sig[crypto_sign_BYTES];
	int rc;

	*secret_out = NULL;
	if ((rc = claims_check(c, err)) != WEFT_OK)
		return rc;
	payload = json_pack("{s:s, s:s, s:I}", "a", c->accessor, "k", token_kind_name(c->kind),
			    "iat", (json_int_t)c->issued_ms);
	if (payload && c->scope[0])
		json_object_set_new(payload, "s", json_string(c->scope));
	if (payload && c->expires_ms > 0)
		json_object_set_new(payload, "exp", json_integer((json_int_t)c->expires_ms));
	json = payload ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (json == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "token: out of memory");
		goto out;
	}
	jl = strlen(json);
	pl = sodium_base64_encoded_len(jl, B64);            /* includes the NUL */
	sl = sodium_base64_encoded_len(sizeof(sig), B64);
	total = pfx + pl + sl;                               /* pfx + payload + '.' + sig + NUL */
	if ((secret = malloc(total)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "token: out of memory");
		goto out;
	}
	memcpy(secret, TOKEN_PREFIX, pfx);
	sodium_bin2base64(secret + pfx, pl, (const unsigned char *)json, jl, B64);
	pl = strlen(secret + pfx);
	crypto_sign_detached(sig, NULL, (const unsigned char *)secret, pfx + pl, k->sk);
	secret[pfx + pl] = '.';
	sodium_bin2base64(secret + pfx + pl + 1, sl, sig, sizeof(sig), B64);
	*secret_out = secret;
	secret = NULL;
	rc = WEFT_OK;
out:
	json_decref(payload);
	free(json);
	free(secret);
	return rc;
}

/* ---- verification ---- */

static int payload_decode(const unsigned char *p, size_t n, struct token_claims *out, char **err)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr), *v;
	const char *s;
	int rc = WEFT_EAUTH;

	if (!json_is_object(doc)) {
		weft_errf(err, rc, "malformed token: the payload is not a JSON object");
		goto out;
	}
	v = json_object_get(doc, "a");
	s = json_string_value(v);
	if (s == NULL || !uuid_valid(s)) {
		weft_errf(err, rc, "malformed token: the accessor is not a UUID");
		goto out;
	}
	memcpy(out->accessor, s, 37);
	if (token_kind_parse(json_string_value(json_object_get(doc, "k")), &out->kind) != 0) {
		weft_errf(err, rc, "malformed token %s: unknown kind", out->accessor);
		goto out;
	}
	v = json_object_get(doc, "s");
	s = v ? json_string_value(v) : "";
	if (s == NULL || strlen(s) > TOKEN_SCOPE_MAX ||
	    (token_kind_scoped(out->kind) ? !scope_valid(s) : s[0] != '\0')) {
		weft_errf(err, rc, "malformed token %s: bad scope", out->accessor);
		goto out;
	}
	strcpy(out->scope, s);
	v = json_object_get(doc, "iat");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		weft_errf(err, rc, "malformed token %s: bad issue time", out->accessor);
		goto out;
	}
	out->issued_ms = (int64_t)json_integer_value(v);
	v = json_object_get(doc, "exp");
	if (v && (!json_is_integer(v) || json_integer_value(v) <= 0)) {
		weft_errf(err, rc, "malformed token %s: bad expiry", out->accessor);
		goto out;
	}
	out->expires_ms = v ? (int64_t)json_integer_value(v) : 0;
	rc = WEFT_OK;
out:
	json_decref(doc);
	return rc;
}

int token_verify(const struct token_key *k, const char *secret, size_t len, int64_t now_ms,
		 struct token_claims *out, char **err)
{
	struct token_claims c;
	unsigned char sig[crypto_sign_BYTES + 1], payload[PAYLOAD_MAX];
	size_t pfx = strlen(TOKEN_PREFIX), siglen = 0, plen = 0;
	const char *body, *dot;
	char ts[40];
	int rc;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return weft_errf(err, WEFT_EAUTH, "empty token");
	if (len > TOKEN_SECRET_MAX)
		return weft_errf(err, WEFT_EAUTH, "malformed token: longer than %d bytes",
				 TOKEN_SECRET_MAX);
	if (len < pfx || memcmp(secret, TOKEN_PREFIX, pfx) != 0)
		return weft_errf(err, WEFT_EAUTH,
				 "malformed token: not a Weft token (they start with \"%s\")",
				 TOKEN_PREFIX);
	body = secret + pfx;
	dot = memchr(body, '.', len - pfx);
	if (dot == NULL || dot == body || dot == secret + len - 1 ||
	    memchr(dot + 1, '.', (size_t)(secret + len - dot - 1)) != NULL)
		return weft_errf(err, WEFT_EAUTH,
				 "malformed token: expected weft1.<payload>.<signature>");
	/* Strict base64url: any character outside the alphabet (NUL included)
	 * or non-zero trailing bits fails the decoding. */
	if (sodium_base642bin(sig, sizeof(sig), dot + 1, (size_t)(secret + len - dot - 1), NULL,
			      &siglen, NULL, B64) != 0 || siglen != crypto_sign_BYTES)
		return weft_errf(err, WEFT_EAUTH, "malformed token: the signature is not valid base64url");
	if (crypto_sign_verify_detached(sig, (const unsigned char *)secret, (size_t)(dot - secret),
					k->pk) != 0)
		return weft_errf(err, WEFT_EAUTH,
				 "the token's signature does not verify (forged, altered, or signed by "
				 "another server's key)");
	if (sodium_base642bin(payload, sizeof(payload), body, (size_t)(dot - body), NULL, &plen,
			      NULL, B64) != 0)
		return weft_errf(err, WEFT_EAUTH, "malformed token: the payload is not valid base64url, or over %d bytes",
				 PAYLOAD_MAX);
	if ((rc = payload_decode(payload, plen, &c, err)) != WEFT_OK)
		return rc;
	if (c.expires_ms > 0 && now_ms >= c.expires_ms) {
		time_format_rfc3339(c.expires_ms, ts, sizeof(ts));
		return weft_errf(err, WEFT_EAUTH, "token %s expired at %s", c.accessor, ts);
	}
	*out = c;
	return WEFT_OK;
}
