/* libFuzzer target: bytes -> a gRPC health check's response body. Checks
 * what must hold for any input: a parse either succeeds or says why, never
 * reads past the message's declared length (ASan), and a response framed
 * around a status it reports decodes to that status again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned long long st = 0, again = 0;
	const char *why = NULL;
	unsigned char *copy = malloc(size ? size : 1), frame[16];
	char name[32];

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);   /* exactly size bytes: ASan sees any overread */
	if (grpc_health_response(copy, size, &st, &why) == 0) {
		size_t n = 0;
		unsigned long long v = st;

		/* the status alone, re-encoded: field 1, varint */
		frame[5 + n++] = 0x08;
		do {
			frame[5 + n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			v >>= 7;
		} while (v != 0);
		frame[0] = frame[1] = frame[2] = frame[3] = 0;
		frame[4] = (unsigned char)n;
		if (grpc_health_response(frame, 5 + n, &again, &why) != 0 || again != st)
			abort();
		grpc_serving_name(st, name, sizeof(name));
	} else if (why == NULL) {
		abort();
	}
	free(copy);
	return 0;
}
