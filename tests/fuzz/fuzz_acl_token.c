/* libFuzzer target: PUT /v1/acl/token bodies. */
#include <stdint.h>
#include <stdlib.h>

#include "auth.h"
#include "err.h"
#include "jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_create *c;
	char *err = NULL;
	json_t *doc = jx_parse((const char *)data, size, &err);

	if (doc) {
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			abort();
		auth_decode_create(doc, "dc1", c, &err);
		auth_create_free(c);
		json_decref(doc);
	}
	free(err);
	return 0;
}
