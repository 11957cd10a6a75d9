#include "args.h"
#include "duration.h"
#include "err.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const struct arg_opt *find_opt(const struct arg_opt *const *tables, const char *name,
				      size_t len)
{
	for (size_t t = 0; tables[t]; t++) {
		for (const struct arg_opt *o = tables[t]; o->name; o++) {
			if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
				return o;
		}
	}
	return NULL;
}

static int set_value(const struct arg_opt *o, const char *val, char **err)
{
	long long n, lo = o->min, hi = o->max;
	struct arg_list *l;
	const char **nv;
	char *end;

	switch (o->type) {
	case ARG_BOOL:
		if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
			*(int *)o->dst = 1;
		else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
			*(int *)o->dst = 0;
		else
			return weft_errf(err, WEFT_EINVAL, "flag -%s: \"%s\" is not true or false",
					 o->name, val);
		return WEFT_OK;
	case ARG_STR:
		*(const char **)o->dst = val;
		return WEFT_OK;
	case ARG_INT:
		if (lo == 0 && hi == 0)
			hi = LLONG_MAX;
		errno = 0;
		n = strtoll(val, &end, 10);
		if (val[0] == '\0' || *end != '\0' || errno == ERANGE)
			return weft_errf(err, WEFT_EINVAL, "flag -%s: \"%s\" is not an integer",
					 o->name, val);
		if (n < lo || n > hi)
			return weft_errf(err, WEFT_EINVAL, "flag -%s: %lld is out of range [%lld, %lld]",
					 o->name, n, lo, hi);
		*(long long *)o->dst = n;
		return WEFT_OK;
	case ARG_DURATION:
		if (duration_parse_ms(val, &n) != 0)
			return weft_errf(err, WEFT_EINVAL,
					 "flag -%s: \"%s\" is not a duration (use a number with a unit: 500ms, 10s, 5m, 1h)",
					 o->name, val);
		*(long long *)o->dst = n;
		return WEFT_OK;
	case ARG_LIST:
		l = o->dst;
		nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
		if (nv == NULL)
			return weft_errf(err, WEFT_ENOMEM, "out of memory");
		nv[l->n++] = val;
		l->v = nv;
		return WEFT_OK;
	}
	return weft_errf(err, WEFT_EINVAL, "flag -%s: unknown type", o->name);
}

int args_parse(const struct arg_opt *const *tables, int argc, char **argv,
	       int stop_at_positional, const char ***pos, int *npos, char **err)
{
	const char **p = calloc((size_t)argc + 1, sizeof(*p));
	int n = 0, rc = WEFT_OK, i, flags_done = 0;

	*pos = NULL;
	*npos = 0;
	if (p == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *name, *eq;
		const struct arg_opt *o;
		size_t len;

		if (flags_done || a[0] != '-' || a[1] == '\0') {
			p[n++] = a;
			if (stop_at_positional)
				flags_done = 1;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			flags_done = 1;
			continue;
		}
		name = a + (a[1] == '-' ? 2 : 1);
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		o = find_opt(tables, name, len);
		if (o == NULL) {
			if ((len == 1 && name[0] == 'h') || (len == 4 && strncmp(name, "help", 4) == 0)) {
				rc = ARGS_HELP;
				goto out;
			}
			rc = weft_errf(err, WEFT_EINVAL, "unknown flag -%.*s", (int)len, name);
			goto out;
		}
		if (eq) {
			rc = set_value(o, eq + 1, err);
		} else if (o->type == ARG_BOOL) {
			rc = set_value(o, "true", err);
		} else if (i + 1 < argc) {
			rc = set_value(o, argv[++i], err);
		} else {
			rc = weft_errf(err, WEFT_EINVAL, "flag -%s needs a value (-%s %s)", o->name,
				       o->name, o->meta ? o->meta : "VALUE");
		}
		if (rc != WEFT_OK)
			goto out;
	}
	*pos = p;
	*npos = n;
	p = NULL;
out:
	free(p);
	return rc;
}

void args_list_free(struct arg_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void args_print_help(FILE *out, const struct arg_opt *opts)
{
	char left[64];

	for (const struct arg_opt *o = opts; o && o->name; o++) {
		if (o->type == ARG_BOOL)
			snprintf(left, sizeof(left), "-%s", o->name);
		else
			snprintf(left, sizeof(left), "-%s %s", o->name, o->meta ? o->meta : "VALUE");
		fprintf(out, "  %-22s %s\n", left, o->help ? o->help : "");
	}
}
