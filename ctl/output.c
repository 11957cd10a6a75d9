#include "ctl.h"

#include <stdlib.h>
#include <string.h>

struct table {
	unsigned ncols;
	size_t nrows, cap;
	char **cells;   /* nrows * ncols */
};

void ctl_print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	fputc('\n', stdout);
}

const char *ctl_str(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return json_is_string(v) ? json_string_value(v) : "";
}

struct table *table_new(unsigned ncols)
{
	struct table *t = calloc(1, sizeof(*t));

	if (t)
		t->ncols = ncols;
	return t;
}

void table_add(struct table *t, const char *const *cells)
{
	char **nc;

	if (t == NULL)
		return;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		nc = realloc(t->cells, cap * t->ncols * sizeof(*nc));
		if (nc == NULL)
			return;
		t->cells = nc;
		t->cap = cap;
	}
	for (unsigned c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = strdup(cells[c] ? cells[c] : "");
	t->nrows++;
}

void table_print(struct table *t, FILE *out)
{
	size_t *w;

	if (t == NULL || (w = calloc(t->ncols, sizeof(*w))) == NULL)
		return;
	for (size_t r = 0; r < t->nrows; r++)
		for (unsigned c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t n = s ? strlen(s) : 0;
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;
		unsigned last = 0;
		/* No padding after the last non-empty cell. */
		for (unsigned c = 0; c < t->ncols; c++)
			if (row[c] && row[c][0])
				last = c;
		for (unsigned c = 0; c <= last; c++) {
			const char *s = row[c] ? row[c] : "";
			if (c < last)
				fprintf(out, "%-*s  ", (int)w[c], s);
			else
				fputs(s, out);
		}
		fputc('\n', out);
	}
	free(w);
}

void table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
