/* Placeholder until the expression engine lands: refuses every filter. */
#include "filter.h"
#include "err.h"

int filter_compile(const char *expr, struct filter **out, char **err)
{
	(void)expr;
	*out = NULL;
	return weft_errf(err, WEFT_EINVAL, "filter expressions are not supported yet");
}

int filter_match(const struct filter *f, json_t *obj)
{
	(void)f;
	(void)obj;
	return 1;
}

void filter_free(struct filter *f)
{
	(void)f;
}
