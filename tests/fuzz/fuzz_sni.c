/* The passthrough listener's ClientHello parser (dataplane/px_sni.c) on
 * arbitrary bytes, as the listener feeds it: every prefix, as if the
 * bytes arrived one at a time. Each parse reads an exact-size copy, so a
 * read past the end is caught. Invariants: a prefix's result is
 * need-more or the whole input's; once a prefix has a result, every
 * longer one has the same (and the same name); a name found is 1..253
 * bytes of lowercase letters, digits, '-', '_', '.' and is a valid route
 * name; no name is written otherwise; a smaller out buffer gives the same
 * result or an error, never a cut name. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "px_sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum px_sni_result parse(const uint8_t *data, size_t n, char *out, size_t outsize)
{
	uint8_t *copy = malloc(n ? n : 1);
	enum px_sni_result r;

	if (copy == NULL)
		abort();
	memcpy(copy, data, n);
	r = px_sni_parse(copy, n, out, outsize);
	free(copy);
	return r;
}

static void check_name(enum px_sni_result r, const char *name)
{
	size_t len = strlen(name);

	if (r != PX_SNI_FOUND) {
		if (len != 0)
			abort();
		return;
	}
	if (len == 0 || len > PX_SNI_NAME_MAX || !px_sni_name_valid(name, false))
		abort();
	for (size_t i = 0; i < len; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char whole[PX_SNI_NAME_MAX + 1], name[PX_SNI_NAME_MAX + 1], small[16];
	enum px_sni_result r, rk, rs;
	bool decided = false;
	size_t step = size > 4096 ? size / 512 : 1;

	r = parse(data, size, whole, sizeof(whole));
	check_name(r, whole);
	if (size >= PX_SNI_MAX_BYTES && r == PX_SNI_NEED_MORE)
		abort();        /* the bound decides */
	for (size_t k = 0; k < size; k += step) {
		rk = parse(data, k, name, sizeof(name));
		check_name(rk, name);
		if (rk == PX_SNI_NEED_MORE) {
			if (decided)
				abort();
			continue;
		}
		if (rk != r || (r == PX_SNI_FOUND && strcmp(name, whole) != 0))
			abort();
		decided = true;
	}
	rs = parse(data, size, small, sizeof(small));
	check_name(rs, small);
	if (rs != r && !(r == PX_SNI_FOUND && rs == PX_SNI_ERROR && strlen(whole) >= sizeof(small)))
		abort();
	if (rs == PX_SNI_FOUND && strcmp(small, whole) != 0)
		abort();
	return 0;
}
