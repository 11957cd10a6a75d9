/* libFuzzer target: bytes -> yamlx -> config_entry_decode for every
 * document, then the cross-entry checks of each decoded entry against all
 * the others of the same input (write and delete), and error locating.
 * Invariants (abort when broken): a refusal is WEFT_EINVAL with a message
 * "Field: what"; the canonical entry decodes to itself, so what the server
 * stores reads back unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_entry.h"
#include "err.h"
#include "yamlx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *get(void *arg, const char *kind, const char *name)
{
	json_t *e;
	size_t i;

	json_array_foreach((json_t *)arg, i, e) {
		if (!strcmp(config_entry_kind(e), kind) && !strcmp(config_entry_name(e), name))
			return json_incref(e);
	}
	return NULL;
}

static json_t *list(void *arg, const char *kind)
{
	json_t *out = json_array(), *e;
	size_t i;

	json_array_foreach((json_t *)arg, i, e) {
		if (!strcmp(config_entry_kind(e), kind))
			json_array_append(out, e);
	}
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yamlx_doc *doc = NULL;
	json_t *store, *e;
	char *err = NULL;
	size_t i;

	if (size > 256 * 1024)
		return 0;
	if (yamlx_parse((const char *)data, size, "fuzz.yaml", &doc, &err) != 0) {
		free(err);
		return 0;
	}
	store = json_array();
	for (i = 0; i < yamlx_count(doc) && i < 64; i++) {
		int rc = config_entry_decode(yamlx_root(doc, i), &e, &err);

		if (rc == WEFT_OK) {
			json_t *again = NULL;
			char *err2 = NULL;

			if (config_entry_decode(e, &again, &err2) != WEFT_OK || !json_equal(e, again))
				abort();
			json_decref(again);
			json_array_append_new(store, e);
		} else {
			char *m;

			if (rc != WEFT_EINVAL || err == NULL || strstr(err, ": ") == NULL)
				abort();
			m = yamlx_error(doc, i, err);
			free(m);
			free(err);
			err = NULL;
		}
	}
	{
		struct config_entry_lookup lk = { get, list, store };

		json_array_foreach(store, i, e) {
			config_entry_check_write(config_entry_kind(e), config_entry_name(e), e, &lk, &err);
			free(err);
			err = NULL;
			config_entry_check_delete(config_entry_kind(e), config_entry_name(e), &lk, &err);
			free(err);
			err = NULL;
		}
	}
	json_decref(store);
	yamlx_free(doc);
	return 0;
}
