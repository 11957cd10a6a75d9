/* libFuzzer target: PUT /v1/session/create bodies. */
#include <stdint.h>
#include <stdlib.h>

#include "err.h"
#include "jsonx.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session_create *c;
	char *err = NULL;
	json_t *doc = jx_parse((const char *)data, size, &err);

	if (doc) {
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			abort();
		if (session_decode_create(doc, "server-1", c, &err) == WEFT_OK && c->node == NULL)
			abort();   /* a decoded session always has a node */
		session_create_free(c);
		json_decref(doc);
	}
	free(err);
	return 0;
}
