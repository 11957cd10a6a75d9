/* libFuzzer target: bytes -> yamlx (YAML/JSON to json with positions),
 * then serialisation (JSON, and YAML that must parse back equal), path
 * lookups and error formatting on every document. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "yamlx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = { "", "Kind", "Routes[0].Destination.Service",
					     "a.b.c", "[0]", "[99999999999999999999]", "x[", "..", NULL };
	struct yamlx_doc *doc = NULL;
	char *err = NULL;
	size_t i, j;

	if (size > 256 * 1024)
		return 0;
	if (yamlx_parse((const char *)data, size, "fuzz.yaml", &doc, &err) != 0) {
		free(err);
		return 0;
	}
	for (i = 0; i < yamlx_count(doc); i++) {
		char *s = json_dumps(yamlx_root(doc, i), JSON_ENCODE_ANY | JSON_COMPACT);
		int line, col;

		free(s);
		if ((s = yamlx_dump(yamlx_root(doc, i))) != NULL) {
			struct yamlx_doc *back = NULL;

			if (yamlx_parse(s, strlen(s), "dump.yaml", &back, &err) != 0 ||
			    yamlx_count(back) != 1 || !json_equal(yamlx_root(back, 0), yamlx_root(doc, i)))
				abort();
			yamlx_free(back);
			free(s);
		}
		for (j = 0; paths[j]; j++)
			yamlx_locate(doc, i, paths[j], &line, &col);
		s = yamlx_error(doc, i, "Routes[0].Match: fuzz");
		free(s);
	}
	yamlx_free(doc);
	return 0;
}
