/* JSON field decoding with errors that name the field.
 * Field names match case-insensitively, as Go's encoding/json (and so
 * Consul) does. Absent or null optional fields leave *out unchanged.
 * ctx is the path of the enclosing object ("Service", "Checks[2]") or NULL. */
#ifndef WEFT_JSONX_H
#define WEFT_JSONX_H

#include <jansson.h>
#include <stddef.h>

json_t *jx_field(json_t *obj, const char *name);
int jx_str(json_t *obj, const char *ctx, const char *name, const char **out,
	   size_t maxlen, char **err);
int jx_req_str(json_t *obj, const char *ctx, const char *name, const char **out,
	       size_t maxlen, char **err);
int jx_int(json_t *obj, const char *ctx, const char *name, long long *out,
	   long long min, long long max, char **err);
int jx_bool(json_t *obj, const char *ctx, const char *name, int *out, char **err);
/* An array of strings (each at most maxlen); *out borrows the array. */
int jx_str_array(json_t *obj, const char *ctx, const char *name, json_t **out,
		 size_t maxlen, char **err);
/* An object whose values are all strings; *out borrows it. */
int jx_str_map(json_t *obj, const char *ctx, const char *name, json_t **out,
	       size_t maxlen, char **err);
int jx_object(json_t *obj, const char *ctx, const char *name, json_t **out, char **err);
int jx_array(json_t *obj, const char *ctx, const char *name, json_t **out, char **err);
/* A duration given as a Go duration string ("10s") or a number of nanoseconds. */
int jx_duration_ms(json_t *obj, const char *ctx, const char *name, long long *out_ms,
		   char **err);

/* Parses a request body; the error says where the syntax broke. */
json_t *jx_parse(const char *data, size_t len, char **err);
/* Compact serialisation; caller frees. */
char *jx_dump(const json_t *v);
/* A new reference to json_string(s) or json_null() when s is NULL. */
json_t *jx_str_or_null(const char *s);
/* Parses a JSON text kept in the store; returns an empty value of the given
 * type ({} or []) if text is NULL or broken. */
json_t *jx_load_or(const char *text, json_type fallback);

#endif
