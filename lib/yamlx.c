#include "yamlx.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Positions form a tree beside the json values: one ypos per value, and for
 * a container one item per member (key and its position). Alias copies
 * share the anchored subtree's ypos; every ypos is owned by doc->all. */
struct yitem {
	char *key; /* NULL in sequences */
	int line, col;
	struct ypos *val;
};

struct ypos {
	int line, col;
	size_t n, cap;
	struct yitem *items;
};

struct yamlx_doc {
	char *file;
	size_t ndocs;
	json_t **roots;
	struct ypos **proots;
	struct ypos **all;
	size_t nall, capall;
};

struct anchor {
	char *name;
	json_t *val;
	struct ypos *pos;
	size_t nodes;
	int depth;
};

struct frame {
	json_t *val;
	struct ypos *pos;
	char *anchor;
	size_t nodes_at_start;
	int maxdepth;       /* depth of the deepest child subtree */
	char *key;          /* mapping: the key waiting for its value */
	int kline, kcol;
};

struct builder {
	struct yamlx_doc *doc;
	struct frame stack[YAMLX_MAX_DEPTH + 1];
	int depth;
	json_t *root;
	struct ypos *root_pos;
	struct anchor *anchors;
	size_t nanchors, capanchors;
	size_t nodes;
	char **err;
};

static struct ypos *pos_new(struct yamlx_doc *doc, int line, int col)
{
	struct ypos *p;

	if (doc->nall == doc->capall) {
		size_t cap = doc->capall ? doc->capall * 2 : 64;
		struct ypos **all = realloc(doc->all, cap * sizeof(*all));

		if (all == NULL)
			return NULL;
		doc->all = all;
		doc->capall = cap;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->line = line;
	p->col = col;
	doc->all[doc->nall++] = p;
	return p;
}

static int pos_add(struct ypos *parent, const char *key, int line, int col, struct ypos *val)
{
	struct yitem *it;

	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;

		it = realloc(parent->items, cap * sizeof(*it));
		if (it == NULL)
			return -1;
		parent->items = it;
		parent->cap = cap;
	}
	it = &parent->items[parent->n];
	it->key = key ? strdup(key) : NULL;
	if (key && it->key == NULL)
		return -1;
	it->line = line;
	it->col = col;
	it->val = val;
	parent->n++;
	return 0;
}

static int at(struct builder *b, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int at(struct builder *b, const yaml_mark_t *m, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return weft_errf(b->err, WEFT_EINVAL, "%s:%zu:%zu: %s", b->doc->file, m->line + 1,
			 m->column + 1, msg);
}

/* YAML 1.2 core schema for plain scalars. Returns NULL with *bad set when
 * the text looks like a number that cannot be represented. */
static int is_digits(const char *s, const char *set)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++) {
		if (strchr(set, *s) == NULL)
			return 0;
	}
	return 1;
}

static int is_core_float(const char *s)
{
	const char *p = s;
	int digits = 0;

	if (*p == '-' || *p == '+')
		p++;
	while (isdigit((unsigned char)*p)) {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			p++;
			digits++;
		}
	}
	if (digits == 0)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return *p == '\0';
}

static json_t *resolve_plain(const char *s, size_t len, const char **bad)
{
	const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
	long long n;
	double f;
	char *end;

	*bad = NULL;
	if (len == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL"))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	if (strlen(s) != len)
		return json_stringn(s, len);
	if (is_digits(d, "0123456789") ||
	    (!strncmp(s, "0x", 2) && is_digits(s + 2, "0123456789abcdefABCDEF")) ||
	    (!strncmp(s, "0o", 2) && is_digits(s + 2, "01234567"))) {
		errno = 0;
		if (!strncmp(s, "0x", 2))
			n = strtoll(s + 2, &end, 16);
		else if (!strncmp(s, "0o", 2))
			n = strtoll(s + 2, &end, 8);
		else
			n = strtoll(s, &end, 10);
		if (errno == ERANGE || *end != '\0') {
			*bad = "integer out of range";
			return NULL;
		}
		return json_integer(n);
	}
	if (is_core_float(s)) {
		errno = 0;
		f = strtod(s, &end);
		if (*end != '\0' || !isfinite(f)) {
			*bad = "number out of range";
			return NULL;
		}
		return json_real(f);
	}
	if (!strcmp(d, ".inf") || !strcmp(d, ".Inf") || !strcmp(d, ".INF") ||
	    !strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) {
		*bad = "infinite and NaN numbers are not supported";
		return NULL;
	}
	return json_stringn(s, len);
}

#define TAG_PREFIX "tag:yaml.org,2002:"

static json_t *scalar_value(struct builder *b, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *bad = NULL;
	json_t *v;

	if (tag && strcmp(tag, "!") != 0) {
		if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0) {
			at(b, &ev->start_mark, "unsupported tag %s", tag);
			return NULL;
		}
		tag += strlen(TAG_PREFIX);
		if (!strcmp(tag, "str")) {
			v = json_stringn(s, len);
			goto out;
		}
		if (strcmp(tag, "int") && strcmp(tag, "float") && strcmp(tag, "bool") &&
		    strcmp(tag, "null")) {
			at(b, &ev->start_mark, "unsupported tag !!%s", tag);
			return NULL;
		}
		v = resolve_plain(s, len, &bad);
		if (v && ((!strcmp(tag, "int") && !json_is_integer(v)) ||
			  (!strcmp(tag, "float") && !json_is_number(v)) ||
			  (!strcmp(tag, "bool") && !json_is_boolean(v)) ||
			  (!strcmp(tag, "null") && !json_is_null(v)))) {
			json_decref(v);
			at(b, &ev->start_mark, "value does not match its tag !!%s", tag);
			return NULL;
		}
	} else if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || tag) {
		v = json_stringn(s, len);
	} else {
		v = resolve_plain(s, len, &bad);
	}
out:
	if (v == NULL)
		at(b, &ev->start_mark, "%s", bad ? bad : "string is not valid UTF-8");
	return v;
}

static struct anchor *anchor_find(struct builder *b, const char *name)
{
	size_t i;

	for (i = b->nanchors; i-- > 0;) {
		if (!strcmp(b->anchors[i].name, name))
			return &b->anchors[i];
	}
	return NULL;
}

static int anchor_add(struct builder *b, const char *name, json_t *v, struct ypos *p,
		      size_t nodes, int depth)
{
	struct anchor *a;

	if (b->nanchors == b->capanchors) {
		size_t cap = b->capanchors ? b->capanchors * 2 : 8;

		a = realloc(b->anchors, cap * sizeof(*a));
		if (a == NULL)
			return -1;
		b->anchors = a;
		b->capanchors = cap;
	}
	a = &b->anchors[b->nanchors];
	a->name = strdup(name);
	if (a->name == NULL)
		return -1;
	a->val = json_incref(v);
	a->pos = p;
	a->nodes = nodes;
	a->depth = depth;
	b->nanchors++;
	return 0;
}

static void anchors_clear(struct builder *b)
{
	size_t i;

	for (i = 0; i < b->nanchors; i++) {
		free(b->anchors[i].name);
		json_decref(b->anchors[i].val);
	}
	b->nanchors = 0;
}

/* Attaches a finished value (stolen) to the enclosing container or makes it
 * the document's root. depth is the height of its subtree. */
static int attach(struct builder *b, json_t *v, struct ypos *p, int depth,
		  const yaml_mark_t *m)
{
	struct frame *f;
	int rc = WEFT_OK;

	if (b->depth == 0) {
		b->root = v;
		b->root_pos = p;
		return WEFT_OK;
	}
	f = &b->stack[b->depth - 1];
	if (depth + 1 > f->maxdepth)
		f->maxdepth = depth + 1;
	if (json_is_array(f->val)) {
		if (json_array_append_new(f->val, v) != 0 || pos_add(f->pos, NULL, p->line, p->col, p))
			return weft_errf(b->err, WEFT_ENOMEM, "%s: out of memory", b->doc->file);
		return WEFT_OK;
	}
	if (json_object_get(f->val, f->key)) {
		rc = at(b, m, "duplicate key \"%s\"", f->key);
		json_decref(v);
		goto out;
	}
	if (json_object_set_new(f->val, f->key, v) != 0 ||
	    pos_add(f->pos, f->key, f->kline, f->kcol, p)) {
		rc = weft_errf(b->err, WEFT_ENOMEM, "%s: out of memory", b->doc->file);
		goto out;
	}
out:
	free(f->key);
	f->key = NULL;
	return rc;
}

static int count_node(struct builder *b, const yaml_mark_t *m, size_t n)
{
	if (b->nodes + n > YAMLX_MAX_NODES)
		return weft_errf(b->err, WEFT_ETOOBIG,
				 "%s:%zu:%zu: more than %d values (aliases included)", b->doc->file,
				 m->line + 1, m->column + 1, YAMLX_MAX_NODES);
	b->nodes += n;
	return WEFT_OK;
}

static int want_key(const struct builder *b)
{
	return b->depth > 0 && json_is_object(b->stack[b->depth - 1].val) &&
	       b->stack[b->depth - 1].key == NULL;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const char *anchor = (const char *)ev->data.scalar.anchor;
	struct ypos *p;
	json_t *v;
	int rc;

	if (want_key(b)) {
		struct frame *f = &b->stack[b->depth - 1];

		if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
			return at(b, &ev->start_mark, "%s", "key contains a NUL character");
		f->key = strdup((const char *)ev->data.scalar.value);
		if (f->key == NULL)
			return WEFT_ENOMEM;
		f->kline = (int)ev->start_mark.line + 1;
		f->kcol = (int)ev->start_mark.column + 1;
		return WEFT_OK;
	}
	if ((rc = count_node(b, &ev->start_mark, 1)) != WEFT_OK)
		return rc;
	v = scalar_value(b, ev);
	if (v == NULL)
		return WEFT_EINVAL;
	p = pos_new(b->doc, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1);
	if (p == NULL || (anchor && anchor_add(b, anchor, v, p, 1, 0))) {
		json_decref(v);
		return WEFT_ENOMEM;
	}
	return attach(b, v, p, 0, &ev->start_mark);
}

static int on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct anchor *a = anchor_find(b, name);
	json_t *v;
	int rc;

	if (a == NULL)
		return at(b, &ev->start_mark, "unknown anchor \"%s\"", name);
	if (want_key(b))
		return at(b, &ev->start_mark, "alias *%s used as a mapping key", name);
	if (b->depth + a->depth > YAMLX_MAX_DEPTH)
		return at(b, &ev->start_mark, "alias *%s nests too deep", name);
	if ((rc = count_node(b, &ev->start_mark, a->nodes)) != WEFT_OK)
		return rc;
	v = json_deep_copy(a->val);
	if (v == NULL)
		return WEFT_ENOMEM;
	return attach(b, v, a->pos, a->depth, &ev->start_mark);
}

static int on_start(struct builder *b, const yaml_event_t *ev, int is_map)
{
	const char *anchor, *tag;
	struct frame *f;
	int rc;

	if (want_key(b))
		return at(b, &ev->start_mark, "%s", "mapping keys must be scalars");
	if (b->depth >= YAMLX_MAX_DEPTH)
		return at(b, &ev->start_mark, "nesting deeper than %d levels", YAMLX_MAX_DEPTH);
	if (is_map) {
		anchor = (const char *)ev->data.mapping_start.anchor;
		tag = (const char *)ev->data.mapping_start.tag;
	} else {
		anchor = (const char *)ev->data.sequence_start.anchor;
		tag = (const char *)ev->data.sequence_start.tag;
	}
	if (tag && strcmp(tag, "!") && strcmp(tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq"))
		return at(b, &ev->start_mark, "unsupported tag %s", tag);
	if ((rc = count_node(b, &ev->start_mark, 1)) != WEFT_OK)
		return rc;
	f = &b->stack[b->depth];
	memset(f, 0, sizeof(*f));
	f->val = is_map ? json_object() : json_array();
	f->pos = pos_new(b->doc, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1);
	f->anchor = anchor ? strdup(anchor) : NULL;
	f->nodes_at_start = b->nodes - 1;
	b->depth++;
	if (f->val == NULL || f->pos == NULL || (anchor && f->anchor == NULL))
		return WEFT_ENOMEM;
	return WEFT_OK;
}

static int on_end(struct builder *b, const yaml_event_t *ev)
{
	struct frame *f = &b->stack[b->depth - 1];
	json_t *v = f->val;
	struct ypos *p = f->pos;
	int depth = f->maxdepth ? f->maxdepth : 1;
	char *anchor = f->anchor;
	size_t nodes = b->nodes - f->nodes_at_start;
	int rc = WEFT_OK;

	free(f->key);
	f->key = NULL;
	f->val = NULL;
	f->anchor = NULL;
	b->depth--;
	if (anchor && anchor_add(b, anchor, v, p, nodes, depth))
		rc = WEFT_ENOMEM;
	free(anchor);
	if (rc != WEFT_OK) {
		json_decref(v);
		return rc;
	}
	return attach(b, v, p, depth, &ev->start_mark);
}

static int doc_push(struct yamlx_doc *doc, json_t *root, struct ypos *p)
{
	json_t **roots;
	struct ypos **proots;

	roots = realloc(doc->roots, (doc->ndocs + 1) * sizeof(*roots));
	if (roots == NULL)
		return -1;
	doc->roots = roots;
	proots = realloc(doc->proots, (doc->ndocs + 1) * sizeof(*proots));
	if (proots == NULL)
		return -1;
	doc->proots = proots;
	doc->roots[doc->ndocs] = root;
	doc->proots[doc->ndocs] = p;
	doc->ndocs++;
	return 0;
}

static void builder_reset(struct builder *b)
{
	while (b->depth > 0) {
		struct frame *f = &b->stack[--b->depth];

		json_decref(f->val);
		free(f->key);
		free(f->anchor);
	}
	json_decref(b->root);
	b->root = NULL;
	b->root_pos = NULL;
	anchors_clear(b);
}

int yamlx_parse(const char *data, size_t len, const char *file, struct yamlx_doc **out,
		char **err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct builder b;
	struct yamlx_doc *doc;
	int rc = WEFT_OK, done = 0;

	*out = NULL;
	doc = calloc(1, sizeof(*doc));
	if (doc == NULL || (doc->file = strdup(file ? file : "<stdin>")) == NULL) {
		free(doc);
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	memset(&b, 0, sizeof(b));
	b.doc = doc;
	b.err = err;
	if (!yaml_parser_initialize(&parser)) {
		yamlx_free(doc);
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (!done && rc == WEFT_OK) {
		if (!yaml_parser_parse(&parser, &ev)) {
			const yaml_mark_t *m = parser.problem ? &parser.problem_mark : &parser.mark;

			rc = weft_errf(err, WEFT_EINVAL, "%s:%zu:%zu: %s%s%s", doc->file,
				       m->line + 1, m->column + 1,
				       parser.problem ? parser.problem : "out of memory",
				       parser.context ? " " : "",
				       parser.context ? parser.context : "");
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (doc->ndocs >= YAMLX_MAX_DOCS)
				rc = at(&b, &ev.start_mark, "more than %d documents", YAMLX_MAX_DOCS);
			break;
		case YAML_DOCUMENT_END_EVENT:
			if (b.root == NULL) {
				b.root = json_null();
				b.root_pos = pos_new(doc, (int)ev.start_mark.line + 1,
						     (int)ev.start_mark.column + 1);
			}
			if (b.root_pos == NULL || doc_push(doc, b.root, b.root_pos)) {
				rc = WEFT_ENOMEM;
				break;
			}
			b.root = NULL;
			b.root_pos = NULL;
			anchors_clear(&b);
			break;
		case YAML_SCALAR_EVENT:
			rc = on_scalar(&b, &ev);
			break;
		case YAML_ALIAS_EVENT:
			rc = on_alias(&b, &ev);
			break;
		case YAML_MAPPING_START_EVENT:
			rc = on_start(&b, &ev, 1);
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = on_start(&b, &ev, 0);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			rc = on_end(&b, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	builder_reset(&b);
	free(b.anchors);
	if (rc == WEFT_ENOMEM && err && *err == NULL)
		weft_errf(err, WEFT_ENOMEM, "%s: out of memory", doc->file);
	if (rc != WEFT_OK) {
		yamlx_free(doc);
		return rc;
	}
	*out = doc;
	return WEFT_OK;
}

void yamlx_free(struct yamlx_doc *doc)
{
	size_t i, j;

	if (doc == NULL)
		return;
	for (i = 0; i < doc->ndocs; i++)
		json_decref(doc->roots[i]);
	for (i = 0; i < doc->nall; i++) {
		for (j = 0; j < doc->all[i]->n; j++)
			free(doc->all[i]->items[j].key);
		free(doc->all[i]->items);
		free(doc->all[i]);
	}
	free(doc->all);
	free(doc->roots);
	free(doc->proots);
	free(doc->file);
	free(doc);
}

size_t yamlx_count(const struct yamlx_doc *doc)
{
	return doc ? doc->ndocs : 0;
}

json_t *yamlx_root(const struct yamlx_doc *doc, size_t i)
{
	return doc && i < doc->ndocs ? doc->roots[i] : NULL;
}

const char *yamlx_file(const struct yamlx_doc *doc)
{
	return doc ? doc->file : NULL;
}

/* Compares ignoring ASCII case and '_' ("mesh_gateway" == "MeshGateway"). */
static int key_fold_eq(const char *a, const char *b, size_t blen)
{
	size_t j = 0;

	for (;;) {
		while (*a == '_')
			a++;
		while (j < blen && b[j] == '_')
			j++;
		if (*a == '\0' || j == blen)
			return *a == '\0' && j == blen;
		if (tolower((unsigned char)*a) != tolower((unsigned char)b[j]))
			return 0;
		a++;
		j++;
	}
}

static struct yitem *find_key(struct ypos *p, const char *key, size_t klen)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		if (p->items[i].key && strlen(p->items[i].key) == klen &&
		    !strncmp(p->items[i].key, key, klen))
			return &p->items[i];
	}
	for (i = 0; i < p->n; i++) {
		if (p->items[i].key && key_fold_eq(p->items[i].key, key, klen))
			return &p->items[i];
	}
	return NULL;
}

int yamlx_locate(const struct yamlx_doc *doc, size_t i, const char *path, int *line,
		 int *col)
{
	struct ypos *p;
	const char *s = path;
	int found = 1, bounded = 0;

	*line = 1;
	*col = 1;
	if (doc == NULL || i >= doc->ndocs)
		return 0;
	p = doc->proots[i];
	*line = p->line;
	*col = p->col;
	while (s && *s && bounded++ < 256) {
		struct yitem *it = NULL;

		if (*s == '.') {
			s++;
			continue;
		}
		if (*s == '[') {
			char *end;
			unsigned long idx = strtoul(s + 1, &end, 10);

			if (*end != ']') {
				found = 0;
				break;
			}
			s = end + 1;
			if (idx < p->n && p->items[idx].key == NULL)
				it = &p->items[idx];
		} else {
			size_t klen = strcspn(s, ".[");

			it = find_key(p, s, klen);
			s += klen;
		}
		if (it == NULL) {
			found = 0;
			break;
		}
		*line = it->line;
		*col = it->col;
		p = it->val;
	}
	return found;
}

char *yamlx_error(const struct yamlx_doc *doc, size_t i, const char *msg)
{
	const char *sep = strstr(msg, ": ");
	char *path = NULL, *out = NULL;
	int line = 1, col = 1;

	if (sep && strcspn(msg, " \"'") > (size_t)(sep - msg))
		path = strndup(msg, (size_t)(sep - msg));
	yamlx_locate(doc, i, path ? path : "", &line, &col);
	if (asprintf(&out, "%s:%d:%d: %s", doc ? doc->file : "<stdin>", line, col, msg) < 0)
		out = NULL;
	free(path);
	return out;
}

/* ---- Emitting ---- */

struct outbuf {
	char *data;
	size_t len, cap;
};

static int out_write(void *arg, unsigned char *buf, size_t n)
{
	struct outbuf *o = arg;

	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		char *p;

		while (cap < o->len + n + 1)
			cap *= 2;
		if ((p = realloc(o->data, cap)) == NULL)
			return 0;
		o->data = p;
		o->cap = cap;
	}
	memcpy(o->data + o->len, buf, n);
	o->len += n;
	o->data[o->len] = '\0';
	return 1;
}

/* 1 when s, written plain, would read back as the string s: not a null,
 * boolean or number of the core schema, nor a YAML 1.1 boolean that other
 * readers would take for one. */
static int plain_is_string(const char *s, size_t len)
{
	static const char *const yaml11[] = { "y", "n", "yes", "no", "on", "off", NULL };
	const char *bad = NULL;
	json_t *v;
	int is_str;
	size_t i;

	if (len == 0 || strlen(s) != len)
		return 0;
	for (i = 0; yaml11[i]; i++) {
		if (strcasecmp(s, yaml11[i]) == 0)
			return 0;
	}
	v = resolve_plain(s, len, &bad);
	is_str = v != NULL && json_is_string(v);
	json_decref(v);
	return is_str && bad == NULL;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t len, int is_string)
{
	yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
	int plain = 1;
	yaml_event_t ev;

	if (is_string && !plain_is_string(s, len)) {
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		plain = 0;
	} else if (is_string && memchr(s, '\n', len)) {
		/* libyaml falls back to quoting when a literal block cannot hold s. */
		style = YAML_LITERAL_SCALAR_STYLE;
	}
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, plain,
					  is_string, style))
		return 0;
	return yaml_emitter_emit(em, &ev);
}

static int emit_value(yaml_emitter_t *em, const json_t *v)
{
	yaml_event_t ev;
	const char *key;
	size_t i, klen;
	json_t *item;
	char num[64];

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 json_object_size(v) ? YAML_BLOCK_MAPPING_STYLE :
									       YAML_FLOW_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return 0;
		json_object_keylen_foreach((json_t *)v, key, klen, item) {
			if (!emit_scalar(em, key, klen, 1) || !emit_value(em, item))
				return 0;
		}
		return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
	case JSON_ARRAY:
		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  json_array_size(v) ? YAML_BLOCK_SEQUENCE_STYLE :
									       YAML_FLOW_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return 0;
		json_array_foreach(v, i, item) {
			if (!emit_value(em, item))
				return 0;
		}
		return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
	case JSON_STRING:
		return emit_scalar(em, json_string_value(v), json_string_length(v), 1);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(em, num, strlen(num), 0);
	case JSON_REAL: {
		/* The shortest form that reads back as the same double, with a
		 * '.' or an exponent so that it stays a float. */
		double f = json_real_value(v);
		int prec;

		for (prec = 1; prec < 17; prec++) {
			snprintf(num, sizeof(num), "%.*g", prec, f);
			if (strtod(num, NULL) == f)
				break;
		}
		snprintf(num, sizeof(num), "%.*g", prec, f);
		if (strpbrk(num, ".eE") == NULL)
			strcat(num, ".0");
		return emit_scalar(em, num, strlen(num), 0);
	}
	case JSON_TRUE:
		return emit_scalar(em, "true", 4, 0);
	case JSON_FALSE:
		return emit_scalar(em, "false", 5, 0);
	case JSON_NULL:
		return emit_scalar(em, "null", 4, 0);
	}
	return 0;
}

char *yamlx_dump(const json_t *v)
{
	struct outbuf o = { NULL, 0, 0 };
	yaml_emitter_t em;
	yaml_event_t ev;
	int ok;

	if (v == NULL || !yaml_emitter_initialize(&em))
		return NULL;
	yaml_emitter_set_output(&em, out_write, &o);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_emitter_set_indent(&em, 2);
	ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
	     yaml_emitter_emit(&em, &ev) &&
	     yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
	     yaml_emitter_emit(&em, &ev) && emit_value(&em, v) &&
	     yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
	     yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev) &&
	     yaml_emitter_flush(&em);
	yaml_emitter_delete(&em);
	if (!ok) {
		free(o.data);
		return NULL;
	}
	return o.data;
}
