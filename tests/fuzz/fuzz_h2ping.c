/* libFuzzer target: bytes -> what an H2PING check reads from a server,
 * fed to h2ping_scan in pieces as reads bring them. Checks what must hold
 * for any input: the whole frames it takes never exceed what it was given,
 * a verdict (ACKED, GOAWAY, BAD) is final and BAD says why, and feeding the
 * same bytes at once or in pieces gives the same verdict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2ping.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char PING[8] = { 'w', 'e', 'f', 't', 'p', 'i', 'n', 'g' };

static enum h2ping_scan feed(const uint8_t *data, size_t size, size_t step)
{
	struct h2ping_frames st = { 0 };
	unsigned char *buf = malloc(size ? size : 1);
	size_t have = 0, next = 0, used;
	enum h2ping_scan r = H2PING_MORE;

	if (buf == NULL)
		return H2PING_MORE;
	while (next < size) {
		size_t n = size - next < step ? size - next : step;
		uint32_t code = 0;
		const char *why = NULL;

		memcpy(buf + have, data + next, n);
		have += n;
		next += n;
		r = h2ping_scan(&st, buf, have, PING, &used, &code, &why);
		if (used > have || (r == H2PING_BAD && why == NULL))
			abort();
		if (r != H2PING_MORE)
			break;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	free(buf);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum h2ping_scan whole = feed(data, size, size ? size : 1);
	enum h2ping_scan pieces = feed(data, size, 7);

	if (whole != pieces)
		abort();
	return 0;
}
