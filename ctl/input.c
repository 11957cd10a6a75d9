#include "input.h"
#include "buf.h"
#include "duration.h"
#include "err.h"
#include "jsonx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Reads a whole stream (at most INPUT_MAX_FILE bytes). */
static int read_stream(FILE *f, const char *name, char **data, size_t *len, char **err)
{
	struct buf b;
	char chunk[8192];
	size_t n;
	int rc = WEFT_OK;

	buf_init(&b, INPUT_MAX_FILE);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n) != WEFT_OK) {
			rc = weft_errf(err, WEFT_ETOOBIG, "%s: larger than %zu bytes", name,
				       INPUT_MAX_FILE);
			goto out;
		}
	}
	if (ferror(f)) {
		rc = weft_errf(err, WEFT_EIO, "%s: %s", name, strerror(errno));
		goto out;
	}
	*len = b.len;
	*data = buf_steal(&b);
out:
	buf_free(&b);
	return rc;
}

int input_file(const char *path, char **data, size_t *len, char **err)
{
	FILE *f;
	int rc;

	if (strcmp(path, "-") == 0)
		return read_stream(stdin, "stdin", data, len, err);
	f = fopen(path, "rb");
	if (f == NULL)
		return weft_errf(err, WEFT_EIO, "%s: %s", path, strerror(errno));
	rc = read_stream(f, path, data, len, err);
	fclose(f);
	return rc;
}

json_t *input_json_file(const char *path, char **err)
{
	json_error_t jerr;
	json_t *doc = NULL;
	char *data = NULL;
	size_t len = 0;

	if (input_file(path, &data, &len, err) != WEFT_OK)
		return NULL;
	doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		if (jerr.line > 0)
			weft_errf(err, WEFT_EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column,
				  jerr.text);
		else
			weft_errf(err, WEFT_EINVAL, "%s: %s", path, jerr.text);
	}
	free(data);
	return doc;
}

int input_value(const char *arg, FILE *in, char **data, size_t *len, char **err)
{
	*data = NULL;
	*len = 0;
	if (strcmp(arg, "-") == 0)
		return read_stream(in, "stdin", data, len, err);
	if (arg[0] == '@')
		return input_file(arg + 1, data, len, err);
	*data = strdup(arg);
	if (*data == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	*len = strlen(arg);
	return WEFT_OK;
}

static int prefixed(char **err, const char *where, int rc)
{
	char *msg = err ? *err : NULL;

	if (err == NULL)
		return rc;
	*err = NULL;
	weft_errf(err, rc, "%s: %s", where, msg ? msg : weft_strerror(rc));
	free(msg);
	return rc;
}

int input_check_registration(json_t *doc, const char *where, char **err)
{
	const char *s = NULL;
	json_t *svc = NULL, *tags = NULL, *meta = NULL;
	long long port = 0;
	int skip = 0;

	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL,
				 "%s: expected a JSON object with Node and Address (a catalog registration)",
				 where);
	if (jx_req_str(doc, NULL, "Node", &s, 256, err) != WEFT_OK ||
	    jx_bool(doc, NULL, "SkipNodeUpdate", &skip, err) != WEFT_OK)
		return prefixed(err, where, WEFT_EINVAL);
	if (!skip && jx_req_str(doc, NULL, "Address", &s, 256, err) != WEFT_OK)
		return prefixed(err, where, WEFT_EINVAL);
	if (jx_object(doc, NULL, "Service", &svc, err) != WEFT_OK)
		return prefixed(err, where, WEFT_EINVAL);
	if (svc && (jx_req_str(svc, "Service", "Service", &s, 256, err) != WEFT_OK ||
		    jx_int(svc, "Service", "Port", &port, 0, 65535, err) != WEFT_OK ||
		    jx_str_array(svc, "Service", "Tags", &tags, 256, err) != WEFT_OK ||
		    jx_str_map(svc, "Service", "Meta", &meta, 512, err) != WEFT_OK))
		return prefixed(err, where, WEFT_EINVAL);
	return WEFT_OK;
}

json_t *input_registration_file(const char *path, char **err)
{
	json_t *doc = input_json_file(path, err);

	if (doc && input_check_registration(doc, path, err) != WEFT_OK) {
		json_decref(doc);
		doc = NULL;
	}
	return doc;
}

json_t *input_registration_flags(const struct reg_flags *f, char **err)
{
	json_t *doc = NULL, *svc, *tags, *meta;
	size_t i;

	if (f->node == NULL || f->node[0] == '\0') {
		weft_errf(err, WEFT_EINVAL, "-node is required (or -file FILE)");
		return NULL;
	}
	if (f->address == NULL || f->address[0] == '\0') {
		weft_errf(err, WEFT_EINVAL, "-address is required with -node");
		return NULL;
	}
	if (f->service == NULL &&
	    (f->service_id || f->service_address || f->port >= 0 || f->tags.n || f->meta.n)) {
		weft_errf(err, WEFT_EINVAL,
			  "-service is required with -service-id, -service-address, -port, -tag and -meta");
		return NULL;
	}
	doc = json_pack("{s:s, s:s}", "Node", f->node, "Address", f->address);
	if (doc == NULL)
		goto nomem;
	if (f->service == NULL)
		return doc;
	if (f->service[0] == '\0') {
		weft_errf(err, WEFT_EINVAL, "-service: must not be empty");
		goto fail;
	}
	svc = json_pack("{s:s}", "Service", f->service);
	if (svc == NULL || json_object_set_new(doc, "Service", svc) != 0)
		goto nomem;
	if (f->service_id && json_object_set_new(svc, "ID", json_string(f->service_id)) != 0)
		goto nomem;
	if (f->service_address &&
	    json_object_set_new(svc, "Address", json_string(f->service_address)) != 0)
		goto nomem;
	if (f->port >= 0 && json_object_set_new(svc, "Port", json_integer(f->port)) != 0)
		goto nomem;
	if (f->tags.n) {
		tags = json_array();
		if (tags == NULL || json_object_set_new(svc, "Tags", tags) != 0)
			goto nomem;
		for (i = 0; i < f->tags.n; i++)
			if (json_array_append_new(tags, json_string(f->tags.v[i])) != 0)
				goto nomem;
	}
	if (f->meta.n) {
		meta = json_object();
		if (meta == NULL || json_object_set_new(svc, "Meta", meta) != 0)
			goto nomem;
		for (i = 0; i < f->meta.n; i++) {
			const char *kv = f->meta.v[i], *eq = strchr(kv, '=');
			char *k;
			if (eq == NULL || eq == kv) {
				weft_errf(err, WEFT_EINVAL, "-meta \"%s\": expected KEY=VALUE", kv);
				goto fail;
			}
			k = strndup(kv, (size_t)(eq - kv));
			if (k == NULL || json_object_set_new(meta, k, json_string(eq + 1)) != 0) {
				free(k);
				goto nomem;
			}
			free(k);
		}
	}
	return doc;
nomem:
	weft_errf(err, WEFT_ENOMEM, "out of memory");
fail:
	json_decref(doc);
	return NULL;
}

json_t *input_token_body(const char *kind, const char *service, const char *node,
			 const char *description, long long ttl_ms, char **err)
{
	static const char *const kinds[] = { "admin", "operator", "agent", "service", "read-only" };
	json_t *doc = NULL;
	char ttl[64];
	size_t i;

	if (kind == NULL || kind[0] == '\0') {
		weft_errf(err, WEFT_EINVAL,
			  "-kind is required: admin, operator, agent, service or read-only");
		return NULL;
	}
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i]) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0])) {
		weft_errf(err, WEFT_EINVAL,
			  "-kind \"%s\": expected admin, operator, agent, service or read-only", kind);
		return NULL;
	}
	if (strcmp(kind, "service") == 0 && (service == NULL || service[0] == '\0')) {
		weft_errf(err, WEFT_EINVAL, "-kind service needs -service NAME");
		return NULL;
	}
	if (strcmp(kind, "agent") == 0 && (node == NULL || node[0] == '\0')) {
		weft_errf(err, WEFT_EINVAL, "-kind agent needs -node NAME");
		return NULL;
	}
	if (service && strcmp(kind, "service") != 0) {
		weft_errf(err, WEFT_EINVAL, "-service is only for -kind service");
		return NULL;
	}
	if (node && strcmp(kind, "agent") != 0) {
		weft_errf(err, WEFT_EINVAL, "-node is only for -kind agent");
		return NULL;
	}
	doc = json_pack("{s:s}", "Kind", kind);
	if (doc == NULL)
		goto nomem;
	if (description && json_object_set_new(doc, "Description", json_string(description)) != 0)
		goto nomem;
	if (service && json_object_set_new(doc, "ServiceIdentities",
					   json_pack("[{s:s}]", "ServiceName", service)) != 0)
		goto nomem;
	if (node && json_object_set_new(doc, "NodeIdentities",
					json_pack("[{s:s}]", "NodeName", node)) != 0)
		goto nomem;
	if (ttl_ms > 0) {
		duration_format(ttl_ms, ttl, sizeof(ttl));
		if (json_object_set_new(doc, "ExpirationTTL", json_string(ttl)) != 0)
			goto nomem;
	}
	return doc;
nomem:
	weft_errf(err, WEFT_ENOMEM, "out of memory");
	json_decref(doc);
	return NULL;
}
