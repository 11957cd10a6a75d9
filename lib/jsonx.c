#include "jsonx.h"
#include "duration.h"
#include "err.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

json_t *jx_field(json_t *obj, const char *name)
{
	const char *key;
	json_t *val;

	if (!json_is_object(obj))
		return NULL;
	val = json_object_get(obj, name);
	if (val)
		return val;
	json_object_foreach(obj, key, val) {
		if (strcasecmp(key, name) == 0)
			return val;
	}
	return NULL;
}

static int bad(char **err, const char *ctx, const char *name, const char *what)
{
	return weft_errf(err, WEFT_EINVAL, "%s%s%s: %s", ctx ? ctx : "", ctx ? "." : "",
			 name, what);
}

int jx_str(json_t *obj, const char *ctx, const char *name, const char **out,
	   size_t maxlen, char **err)
{
	json_t *v = jx_field(obj, name);

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (!json_is_string(v))
		return bad(err, ctx, name, "must be a string");
	if (json_string_length(v) > maxlen)
		return weft_errf(err, WEFT_EINVAL, "%s%s%s: longer than %zu bytes",
				 ctx ? ctx : "", ctx ? "." : "", name, maxlen);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, ctx, name, "must not contain NUL characters");
	*out = json_string_value(v);
	return WEFT_OK;
}

int jx_req_str(json_t *obj, const char *ctx, const char *name, const char **out,
	       size_t maxlen, char **err)
{
	const char *s = NULL;
	int rc = jx_str(obj, ctx, name, &s, maxlen, err);

	if (rc != WEFT_OK)
		return rc;
	if (s == NULL || s[0] == '\0')
		return bad(err, ctx, name, "is required");
	*out = s;
	return WEFT_OK;
}

int jx_int(json_t *obj, const char *ctx, const char *name, long long *out,
	   long long min, long long max, char **err)
{
	json_t *v = jx_field(obj, name);
	long long n;

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_real(v) && json_real_value(v) >= -0x1p63 && json_real_value(v) < 0x1p63 &&
		   json_real_value(v) == (double)(long long)json_real_value(v)) {
		/* In range before the cast: converting 1e300 is undefined. */
		n = (long long)json_real_value(v);
	} else {
		return bad(err, ctx, name, "must be an integer");
	}
	if (n < min || n > max)
		return weft_errf(err, WEFT_EINVAL, "%s%s%s: %lld is out of range [%lld, %lld]",
				 ctx ? ctx : "", ctx ? "." : "", name, n, min, max);
	*out = n;
	return WEFT_OK;
}

int jx_bool(json_t *obj, const char *ctx, const char *name, int *out, char **err)
{
	json_t *v = jx_field(obj, name);

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (!json_is_boolean(v))
		return bad(err, ctx, name, "must be true or false");
	*out = json_is_true(v);
	return WEFT_OK;
}

int jx_str_array(json_t *obj, const char *ctx, const char *name, json_t **out,
		 size_t maxlen, char **err)
{
	json_t *v = jx_field(obj, name), *e;
	size_t i;

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (!json_is_array(v))
		return bad(err, ctx, name, "must be an array of strings");
	json_array_foreach(v, i, e) {
		if (!json_is_string(e))
			return weft_errf(err, WEFT_EINVAL, "%s%s%s[%zu]: must be a string",
					 ctx ? ctx : "", ctx ? "." : "", name, i);
		if (json_string_length(e) > maxlen)
			return weft_errf(err, WEFT_EINVAL, "%s%s%s[%zu]: longer than %zu bytes",
					 ctx ? ctx : "", ctx ? "." : "", name, i, maxlen);
	}
	*out = v;
	return WEFT_OK;
}

int jx_str_map(json_t *obj, const char *ctx, const char *name, json_t **out,
	       size_t maxlen, char **err)
{
	json_t *v = jx_field(obj, name), *e;
	const char *k;

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (!json_is_object(v))
		return bad(err, ctx, name, "must be an object of strings");
	json_object_foreach(v, k, e) {
		if (!json_is_string(e))
			return weft_errf(err, WEFT_EINVAL, "%s%s%s.%s: must be a string",
					 ctx ? ctx : "", ctx ? "." : "", name, k);
		if (json_string_length(e) > maxlen || strlen(k) > maxlen)
			return weft_errf(err, WEFT_EINVAL, "%s%s%s.%s: longer than %zu bytes",
					 ctx ? ctx : "", ctx ? "." : "", name, k, maxlen);
	}
	*out = v;
	return WEFT_OK;
}

int jx_object(json_t *obj, const char *ctx, const char *name, json_t **out, char **err)
{
	json_t *v = jx_field(obj, name);

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (!json_is_object(v))
		return bad(err, ctx, name, "must be an object");
	*out = v;
	return WEFT_OK;
}

int jx_array(json_t *obj, const char *ctx, const char *name, json_t **out, char **err)
{
	json_t *v = jx_field(obj, name);

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (!json_is_array(v))
		return bad(err, ctx, name, "must be an array");
	*out = v;
	return WEFT_OK;
}

int jx_duration_ms(json_t *obj, const char *ctx, const char *name, long long *out_ms,
		   char **err)
{
	json_t *v = jx_field(obj, name);
	long long ms;

	if (v == NULL || json_is_null(v))
		return WEFT_OK;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return bad(err, ctx, name, "must not be negative");
		*out_ms = json_integer_value(v) / 1000000; /* Go: nanoseconds */
		return WEFT_OK;
	}
	if (!json_is_string(v))
		return bad(err, ctx, name, "must be a duration such as \"10s\"");
	if (json_string_value(v)[0] == '\0')
		return WEFT_OK;
	if (duration_parse_ms(json_string_value(v), &ms) != 0)
		return weft_errf(err, WEFT_EINVAL,
				 "%s%s%s: \"%s\" is not a duration (use a number with a unit: 500ms, 10s, 5m, 1h)",
				 ctx ? ctx : "", ctx ? "." : "", name, json_string_value(v));
	*out_ms = ms;
	return WEFT_OK;
}

json_t *jx_parse(const char *data, size_t len, char **err)
{
	json_error_t jerr;
	json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);

	if (v == NULL)
		weft_errf(err, WEFT_EINVAL, "body: invalid JSON at line %d column %d: %s",
			  jerr.line, jerr.column, jerr.text);
	return v;
}

char *jx_dump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

json_t *jx_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *jx_load_or(const char *text, json_type fallback)
{
	json_t *v = NULL;

	if (text && text[0])
		v = json_loads(text, JSON_DECODE_ANY, NULL);
	if (v == NULL || json_typeof(v) != fallback) {
		json_decref(v);
		v = fallback == JSON_ARRAY ? json_array() : json_object();
	}
	return v;
}
