/* YAML (and JSON, which is YAML 1.2) documents decoded into jansson values,
 * with the line and column of every value kept beside them so that an error
 * found later ("Routes[0].Destination.Service: ...") can be reported as
 * FILE:LINE:COL: Routes[0].Destination.Service: ...
 *
 * Plain scalars resolve with the YAML 1.2 core schema: null (~, null, empty),
 * booleans (true/false in three casings), integers (decimal, 0x, 0o), floats
 * (with .inf and .nan refused, as JSON has neither); yes/no/on/off stay
 * strings. Quoted scalars are always strings. Tags !!str, !!int, !!float,
 * !!bool, !!null, !!map, !!seq are honoured; other tags are refused.
 * Anchors and aliases are resolved by copying, within a budget of nodes and a
 * maximum depth, so "billion laughs" documents fail instead of exhausting
 * memory. Duplicate keys in a mapping are refused, and keys must be scalars. */
#ifndef WEFT_YAMLX_H
#define WEFT_YAMLX_H

#include <jansson.h>
#include <stddef.h>

#define YAMLX_MAX_DEPTH 64        /* nested mappings/sequences */
#define YAMLX_MAX_NODES 100000    /* values, counting alias expansions */
#define YAMLX_MAX_DOCS 1000       /* documents in one stream */

struct yamlx_doc;

/* Parses a YAML stream (one or more documents, "---" separated). file names
 * the input in error messages ("<stdin>" if NULL). On a syntax error, returns
 * WEFT_EINVAL and *err = "FILE:LINE:COL: libyaml's problem (context)". */
int yamlx_parse(const char *data, size_t len, const char *file, struct yamlx_doc **out,
		char **err);
void yamlx_free(struct yamlx_doc *doc);

/* Number of documents in the stream (0 for an empty file). */
size_t yamlx_count(const struct yamlx_doc *doc);
/* The i-th document's value, borrowed (valid until yamlx_free). */
json_t *yamlx_root(const struct yamlx_doc *doc, size_t i);
const char *yamlx_file(const struct yamlx_doc *doc);

/* Finds the position (1-based) of a field path in document i. Path segments
 * are keys separated by '.', and [N] for sequence items: "Routes[0].Match".
 * Keys match exactly, then ignoring case and '_' (so "MeshGateway" finds
 * "mesh_gateway", as config entries accept both). For a mapping member the
 * position is its key's. Returns 1 if the whole path was found, 0 if only a
 * prefix was (the position is then the deepest one found, at worst the
 * document's). */
int yamlx_locate(const struct yamlx_doc *doc, size_t i, const char *path, int *line,
		 int *col);

/* Formats "FILE:LINE:COL: msg" for an error message that starts with a field
 * path ("Routes[0].Destination: ..."), locating the path in document i.
 * Caller frees. */
char *yamlx_error(const struct yamlx_doc *doc, size_t i, const char *msg);

/* Serialises a JSON value as one YAML document in block style (empty
 * containers as {} and []), object keys in their order, no line folding,
 * text of the Basic Multilingual Plane unescaped (libyaml writes other
 * characters as \U escapes in a quoted string). Strings that would read back as another type
 * ("true", "1.0", "null", "", and YAML 1.1's yes/no/on/off) are quoted, and
 * multi-line strings are literal blocks where YAML allows, so parsing the
 * output with yamlx_parse gives back an equal value. Returns a new
 * NUL-terminated string, or NULL (out of memory, or a real that is not
 * finite). */
char *yamlx_dump(const json_t *v);

#endif
