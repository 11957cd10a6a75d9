/* Secrets encrypted at rest: a 32-byte key in a file only its owner can
 * read, and crypto_secretbox (XSalsa20-Poly1305, libsodium) over each secret.
 *
 * A sealed secret is text, "weftseal1.<base64(nonce || box)>", safe to keep
 * in the database: without the key file it reveals nothing, and any change
 * to it is detected when it is opened. Keys and opened secrets live in
 * memory that is wiped when freed. */
#ifndef WEFT_SEALED_H
#define WEFT_SEALED_H

#include <stddef.h>

#define SEALED_PREFIX "weftseal1."
#define SEALED_MAX (64u * 1024u)   /* longest sealed text accepted by sealed_open */

struct sealed_key;

/* Creates a new random key in a new file (mode 0600; refuses an existing
 * file, so that a key is never replaced by accident). */
int sealed_key_create(struct sealed_key **out, const char *path, char **err);
/* Reads a key file; refuses one that group or others may read or write. */
int sealed_key_load(struct sealed_key **out, const char *path, char **err);
/* Loads path, or creates it when it does not exist. */
int sealed_key_open_or_create(struct sealed_key **out, const char *path, char **err);
void sealed_key_free(struct sealed_key *k);

/* Encrypts len bytes; *text_out is allocated (free()). */
int sealed_seal(const struct sealed_key *k, const void *plain, size_t len, char **text_out,
		char **err);
/* Decrypts a sealed text; *plain_out (NUL-terminated, *len_out bytes before
 * the NUL) must be released with sealed_plain_free, which wipes it.
 * WEFT_EAUTH when the text was altered or sealed under another key. */
int sealed_open(const struct sealed_key *k, const char *text, size_t text_len,
		unsigned char **plain_out, size_t *len_out, char **err);
void sealed_plain_free(unsigned char *plain, size_t len);

#endif
