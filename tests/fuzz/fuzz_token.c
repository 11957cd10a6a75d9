/* libFuzzer target: token verification on arbitrary bytes.
 *
 * Each input is tried twice:
 *  1. as a secret, exactly as it would arrive in a header or ?token=;
 *  2. as a payload, signed here with the target's own key (a fixed seed),
 *     so that the claim checks behind the signature are reached too.
 * Whatever verifies must hold sane claims; anything else is a finding.
 * Seeds: tests/fuzz/corpus/token/ (valid secrets are signed with the seed
 * below: 32 bytes of 0x01..0x20). */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "token.h"
#include "util.h"

#define NOW_MS 1800000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct token_key *key;
static unsigned char sk[crypto_sign_SECRETKEYBYTES];

static void init(void)
{
	unsigned char seed[TOKEN_SEED_BYTES], pk[crypto_sign_PUBLICKEYBYTES];

	if (sodium_init() < 0)
		abort();
	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (unsigned char)(i + 1);
	crypto_sign_seed_keypair(pk, sk, seed);
	if (token_key_from_seed(&key, seed, NULL) != WEFT_OK)
		abort();
}

static void check_claims(const struct token_claims *c)
{
	if (!uuid_valid(c->accessor) || (unsigned)c->kind > TOKEN_READ_ONLY ||
	    strlen(c->scope) > TOKEN_SCOPE_MAX || c->issued_ms < 0 || c->expires_ms < 0 ||
	    (c->expires_ms > 0 && c->expires_ms <= NOW_MS))
		abort();
	if (token_kind_scoped(c->kind) ? !name_valid(c->scope, TOKEN_SCOPE_MAX + 1) : c->scope[0])
		abort();
}

static void verify(const char *s, size_t n)
{
	struct token_claims c;
	char *err = NULL;

	if (token_verify(key, s, n, NOW_MS, &c, &err) == WEFT_OK) {
		check_claims(&c);
		if (err != NULL)
			abort();
	} else if (err == NULL) {
		abort();   /* every refusal says why */
	}
	free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[TOKEN_SECRET_MAX + 256];
	unsigned char sig[crypto_sign_BYTES];
	size_t pfx = strlen(TOKEN_PREFIX), pl;

	if (key == NULL)
		init();
	verify((const char *)data, size);

	if (sodium_base64_encoded_len(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + pfx + 90 >
	    sizeof(buf))
		return 0;
	memcpy(buf, TOKEN_PREFIX, pfx);
	sodium_bin2base64(buf + pfx, sizeof(buf) - pfx, data, size,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	pl = strlen(buf);
	crypto_sign_detached(sig, NULL, (const unsigned char *)buf, pl, sk);
	buf[pl] = '.';
	sodium_bin2base64(buf + pl + 1, sizeof(buf) - pl - 1, sig, sizeof(sig),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	verify(buf, strlen(buf));
	return 0;
}
