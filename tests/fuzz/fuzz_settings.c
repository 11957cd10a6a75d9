/* weft-server's config file parser on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings s;
	char *err = NULL;

	memset(&s, 0, sizeof(s));
	if (settings_parse_text(&s, "fuzz.conf", (const char *)data, size, &err) != 0 && err == NULL)
		abort();   /* an error always names the file and line */
	free(err);
	settings_free(&s);
	return 0;
}
