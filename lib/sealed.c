/* Secrets encrypted at rest (see sealed.h). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "sealed.h"

#define KEY_HEADER "weft-seal-key-v1 "

struct sealed_key {
	unsigned char k[crypto_secretbox_KEYBYTES];
};

static struct sealed_key *key_alloc(void)
{
	if (sodium_init() < 0)
		return NULL;
	return sodium_malloc(sizeof(struct sealed_key));
}

void sealed_key_free(struct sealed_key *k)
{
	if (k != NULL)
		sodium_free(k);   /* wipes */
}

static int write_new(const char *path, const char *text, size_t len, char **err)
{
	int fd, rc = WEFT_OK;
	size_t off = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return weft_errf(err, errno == EEXIST ? WEFT_EEXIST : WEFT_EIO,
				 "sealed: cannot create the key file %s: %s", path, strerror(errno));
	if (fchmod(fd, 0600) != 0)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	close(fd);
	return WEFT_OK;
fail:
	rc = weft_errf(err, WEFT_EIO, "sealed: cannot write the key file %s: %s", path,
		       strerror(errno));
	close(fd);
	unlink(path);
	return rc;
}

int sealed_key_create(struct sealed_key **out, const char *path, char **err)
{
	struct sealed_key *k = key_alloc();
	char text[sizeof(KEY_HEADER) + 64 + 2];
	size_t hl = strlen(KEY_HEADER);
	int rc;

	*out = NULL;
	if (k == NULL)
		return weft_errf(err, WEFT_ENOMEM, "sealed: cannot allocate a key");
	randombytes_buf(k->k, sizeof(k->k));
	memcpy(text, KEY_HEADER, hl);
	sodium_bin2base64(text + hl, sizeof(text) - hl - 1, k->k, sizeof(k->k),
			  sodium_base64_VARIANT_ORIGINAL);
	strcat(text, "\n");
	rc = write_new(path, text, strlen(text), err);
	sodium_memzero(text, sizeof(text));
	if (rc != WEFT_OK) {
		sealed_key_free(k);
		return rc;
	}
	*out = k;
	return WEFT_OK;
}

int sealed_key_load(struct sealed_key **out, const char *path, char **err)
{
	struct sealed_key *k = NULL;
	struct stat st;
	char text[256];
	size_t hl = strlen(KEY_HEADER), n = 0, b64len, klen = 0;
	int fd = -1, rc;
	ssize_t r;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return weft_errf(err, errno == ENOENT ? WEFT_ENOENT : WEFT_EIO,
				 "sealed: cannot read the key file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = weft_errf(err, WEFT_EIO, "sealed: cannot read the key file %s: %s", path,
			       strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = weft_errf(err, WEFT_EINVAL, "sealed: the key file %s is not a regular file",
			       path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = weft_errf(err, WEFT_EPERM,
			       "sealed: the key file %s has mode %04o; it must be readable by its "
			       "owner only (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	while (n < sizeof(text) - 1) {
		r = read(fd, text + n, sizeof(text) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = weft_errf(err, WEFT_EIO, "sealed: cannot read the key file %s: %s", path,
				       strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	text[n] = '\0';
	if ((k = key_alloc()) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "sealed: cannot allocate a key");
		goto out;
	}
	b64len = n > hl ? strcspn(text + hl, "\r\n") : 0;
	if (n <= hl || memcmp(text, KEY_HEADER, hl) != 0 ||
	    sodium_base642bin(k->k, sizeof(k->k), text + hl, b64len, NULL, &klen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    klen != sizeof(k->k) || hl + b64len + 2 < n) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "sealed: %s is not a Weft sealing key (expected \"%s<base64 of 32 "
			       "bytes>\")", path, KEY_HEADER);
		goto out;
	}
	*out = k;
	k = NULL;
	rc = WEFT_OK;
out:
	sodium_memzero(text, sizeof(text));
	sealed_key_free(k);
	if (fd >= 0)
		close(fd);
	return rc;
}

int sealed_key_open_or_create(struct sealed_key **out, const char *path, char **err)
{
	int rc = sealed_key_load(out, path, err);

	if (rc != WEFT_ENOENT)
		return rc;
	if (err != NULL) {
		free(*err);
		*err = NULL;
	}
	return sealed_key_create(out, path, err);
}

int sealed_seal(const struct sealed_key *k, const void *plain, size_t len, char **text_out,
		char **err)
{
	size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len, pl;
	size_t tlen;
	unsigned char *box = NULL;
	char *text = NULL;
	int rc;

	*text_out = NULL;
	if (len > SEALED_MAX / 2)
		return weft_errf(err, WEFT_ETOOBIG, "sealed: a secret of %zu bytes is too big", len);
	box = malloc(blen);
	pl = strlen(SEALED_PREFIX);
	tlen = pl + sodium_base64_encoded_len(blen, sodium_base64_VARIANT_ORIGINAL);
	text = malloc(tlen);
	if (box == NULL || text == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "sealed: out of memory");
		goto out;
	}
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, plain, len, box, k->k);
	memcpy(text, SEALED_PREFIX, pl);
	sodium_bin2base64(text + pl, tlen - pl, box, blen, sodium_base64_VARIANT_ORIGINAL);
	*text_out = text;
	text = NULL;
	rc = WEFT_OK;
out:
	free(box);
	free(text);
	return rc;
}

int sealed_open(const struct sealed_key *k, const char *text, size_t text_len,
		unsigned char **plain_out, size_t *len_out, char **err)
{
	size_t pl = strlen(SEALED_PREFIX), blen = 0, plen = 0;
	unsigned char *box = NULL, *plain = NULL;
	int rc;

	*plain_out = NULL;
	*len_out = 0;
	if (text_len > SEALED_MAX)
		return weft_errf(err, WEFT_ETOOBIG, "sealed: a sealed text of %zu bytes is too big "
				 "(at most %u)", text_len, SEALED_MAX);
	if (text_len < pl || memcmp(text, SEALED_PREFIX, pl) != 0)
		return weft_errf(err, WEFT_EINVAL, "sealed: not a sealed secret (expected \"%s...\")",
				 SEALED_PREFIX);
	if ((box = malloc(text_len)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "sealed: out of memory");
	if (sodium_base642bin(box, text_len, text + pl, text_len - pl, NULL, &blen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
		rc = weft_errf(err, WEFT_EINVAL, "sealed: the sealed secret is not valid base64 of "
			       "a nonce and a box");
		goto out;
	}
	plen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	if ((plain = malloc(plen + 1)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "sealed: out of memory");
		goto out;
	}
	if (crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES,
				       blen - crypto_secretbox_NONCEBYTES, box, k->k) != 0) {
		rc = weft_errf(err, WEFT_EAUTH, "sealed: the sealed secret was altered or sealed "
			       "under another key");
		goto out;
	}
	plain[plen] = '\0';
	*plain_out = plain;
	*len_out = plen;
	plain = NULL;
	rc = WEFT_OK;
out:
	free(box);
	if (plain != NULL)
		sealed_plain_free(plain, plen);
	return rc;
}

void sealed_plain_free(unsigned char *plain, size_t len)
{
	if (plain == NULL)
		return;
	sodium_memzero(plain, len + 1);
	free(plain);
}
