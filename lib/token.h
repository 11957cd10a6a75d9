/* Signed tokens: the secrets that authenticate API requests.
 *
 * A secret is self-contained: "weft1.<payload>.<signature>", both parts
 * base64url without padding. The payload is compact JSON
 * {"a": accessor UUID, "k": kind, "s": scope, "iat": ms, "exp": ms} and the
 * signature is Ed25519 (libsodium) over the bytes "weft1.<payload>", so a
 * server needs only its signing key to check a secret: nothing secret is
 * stored. The signature is checked before the payload is decoded, so that
 * unauthenticated bytes never reach the JSON parser.
 *
 * Secrets are never logged; error messages never repeat them. */
#ifndef WEFT_TOKEN_H
#define WEFT_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_PREFIX "weft1."
#define TOKEN_SECRET_MAX 2048   /* longer strings are refused unread */
#define TOKEN_SCOPE_MAX 255

enum token_kind {
	TOKEN_ADMIN,
	TOKEN_OPERATOR,
	TOKEN_AGENT,      /* scope: a node */
	TOKEN_SERVICE,    /* scope: a service */
	TOKEN_READ_ONLY,
};

const char *token_kind_name(enum token_kind k);
/* 0 and *out for "admin", "operator", "agent", "service", "read-only"; -1 otherwise. */
int token_kind_parse(const char *name, enum token_kind *out);
/* 1 when tokens of kind k are bound to a node (agent) or service (service). */
int token_kind_scoped(enum token_kind k);

struct token_claims {
	char accessor[37];
	enum token_kind kind;
	char scope[TOKEN_SCOPE_MAX + 1];  /* node or service name; "" for unscoped kinds */
	int64_t issued_ms;                /* wall clock, ms since the epoch */
	int64_t expires_ms;               /* 0: never */
};

/* An Ed25519 signing keypair (opaque; wiped when freed). */
struct token_key;

int token_key_generate(struct token_key **out, char **err);
/* The keypair of a known 32-byte seed: for tests and fuzzing, where a
 * signer outside this module must produce matching signatures. */
#define TOKEN_SEED_BYTES 32
int token_key_from_seed(struct token_key **out, const unsigned char seed[TOKEN_SEED_BYTES],
			char **err);
/* Writes the key to path with mode 0600 (atomically: tmp file + rename). */
int token_key_save(const struct token_key *k, const char *path, char **err);
/* Reads a key written by token_key_save; refuses a file that group or others
 * can read or write. */
int token_key_load(struct token_key **out, const char *path, char **err);
void token_key_free(struct token_key *k);

/* Checks the claims (UUID accessor, scope present exactly for scoped kinds)
 * and signs them; *secret_out is allocated, wipe it with token_secret_free. */
int token_sign(const struct token_key *k, const struct token_claims *c, char **secret_out,
	       char **err);
void token_secret_free(char *secret);

/* Checks format, signature and expiry (against now_ms) of the len bytes at
 * secret (any bytes: NUL included). WEFT_EAUTH with *err saying what is
 * wrong; once the signature holds, messages may name the accessor. */
int token_verify(const struct token_key *k, const char *secret, size_t len, int64_t now_ms,
		 struct token_claims *out, char **err);

#endif
