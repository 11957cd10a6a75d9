/* weftctl kv get|put|delete: /v1/kv/..., with consul kv's output. */
#include "buf.h"
#include "ctl.h"
#include "err.h"
#include "input.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* "/v1/kv/KEY" with the key escaped and its leading '/' dropped, plus query. */
static char *kv_path(const char *key, const char *query)
{
	char *esc, *out = NULL;

	while (*key == '/')
		key++;
	esc = httpc_escape(key, 1);
	if (esc && asprintf(&out, "/v1/kv/%s%s%s", esc, query && query[0] ? "?" : "",
			    query ? query : "") < 0)
		out = NULL;
	free(esc);
	return out;
}

static const char *trim_key(const char *key)
{
	while (*key == '/')
		key++;
	return key;
}

/* The decoded value of a KV entry (NULL value: empty). */
static int entry_value(json_t *e, unsigned char **val, size_t *len)
{
	json_t *v = json_object_get(e, "Value");

	*val = NULL;
	*len = 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		*val = (unsigned char *)strdup("");
		return *val ? 0 : -1;
	}
	return base64_decode(json_string_value(v), val, len);
}

static long long entry_int(json_t *e, const char *name)
{
	json_t *v = json_object_get(e, name);

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void print_value(json_t *e, int b64)
{
	unsigned char *val = NULL;
	size_t len = 0;

	if (b64) {
		fputs(ctl_str(e, "Value"), stdout);
		return;
	}
	if (entry_value(e, &val, &len) != 0) {
		fputs(ctl_str(e, "Value"), stdout);
		return;
	}
	fwrite(val, 1, len, stdout);
	free(val);
}

/* consul kv get -detailed: one aligned "Name  value" line per field. */
static void print_detailed(json_t *e, int b64)
{
	const char *session = ctl_str(e, "Session");

	printf("%-17s%lld\n", "CreateIndex", entry_int(e, "CreateIndex"));
	printf("%-17s%lld\n", "Flags", entry_int(e, "Flags"));
	printf("%-17s%s\n", "Key", ctl_str(e, "Key"));
	printf("%-17s%lld\n", "LockIndex", entry_int(e, "LockIndex"));
	printf("%-17s%lld\n", "ModifyIndex", entry_int(e, "ModifyIndex"));
	printf("%-17s%s\n", "Session", session[0] ? session : "-");
	printf("%-17s", "Value");
	print_value(e, b64);
	fputc('\n', stdout);
}

static int run_kv_get(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int recurse = 0, detailed = 0, keys = 0, b64 = 0, npos, rc;
	const char *separator = "/";
	const struct arg_opt opts[] = {
		{ "recurse", ARG_BOOL, &recurse, NULL, "every key under the prefix, as KEY:VALUE lines", 0, 0 },
		{ "detailed", ARG_BOOL, &detailed, NULL, "every field of the entry (indexes, flags, session)", 0, 0 },
		{ "keys", ARG_BOOL, &keys, NULL, "list the keys under the prefix, up to -separator", 0, 0 },
		{ "separator", ARG_STR, &separator, "SEP", "with -keys: group keys at SEP (default /; \"\" for none)", 0, 0 },
		{ "base64", ARG_BOOL, &b64, NULL, "print values base64-encoded", 0, 0 },
		{ 0 },
	};
	struct httpc_resp resp = { 0 };
	const char **pos = NULL;
	const char *key = "";
	char *path = NULL, *query = NULL, *err = NULL, *sep = NULL;
	json_t *doc = NULL, *e;
	size_t i;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos > 1) {
		rc = ctl_usage(cmd, "too many arguments (one KEY)");
		goto out;
	}
	if (npos == 1)
		key = pos[0];
	if (npos == 0 && !recurse && !keys) {
		rc = ctl_usage(cmd, "KEY is required");
		goto out;
	}
	if (keys) {
		sep = httpc_escape(separator, 0);
		if (sep == NULL || asprintf(&query, "keys&separator=%s", sep) < 0) {
			query = NULL;
			rc = ctl_fail("out of memory");
			goto out;
		}
	} else if (recurse && (query = strdup("recurse")) == NULL) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	path = kv_path(key, query);
	if (path == NULL || ctl_http(g) == NULL) {
		rc = path ? CTL_ERR : ctl_fail("out of memory");
		goto out;
	}
	rc = httpc_json(g->http, "GET", path, NULL, 0, &doc, &resp, &err);
	if (rc == WEFT_ENOENT && httpc_missing_object(&resp)) {
		/* Consul answers 404 for a missing key and for an empty prefix. */
		if (recurse || keys) {
			if (g->json)
				printf("[]\n");
			rc = CTL_OK;
		} else {
			rc = ctl_fail("no key exists at: %s", trim_key(key));
		}
		goto out;
	}
	if (rc != WEFT_OK) {
		rc = ctl_fail("%s", err);
		goto out;
	}
	rc = CTL_OK;
	if (g->json) {
		ctl_print_json(doc);
		goto out;
	}
	if (!json_is_array(doc)) {
		rc = ctl_fail("unexpected reply to GET %s: not an array", path);
		goto out;
	}
	json_array_foreach(doc, i, e) {
		if (keys) {
			if (json_is_string(e))
				puts(json_string_value(e));
		} else if (detailed) {
			if (i > 0)
				fputc('\n', stdout);
			print_detailed(e, b64);
		} else if (recurse) {
			printf("%s:", ctl_str(e, "Key"));
			print_value(e, b64);
			fputc('\n', stdout);
		} else {
			print_value(e, b64);
			fputc('\n', stdout);
			break;
		}
	}
out:
	free(pos);
	free(path);
	free(query);
	free(sep);
	free(err);
	json_decref(doc);
	httpc_resp_free(&resp);
	return rc;
}

static int run_kv_put(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int cas = 0, npos, rc;
	long long modify_index = -1, flags = -1;
	const struct arg_opt opts[] = {
		{ "cas", ARG_BOOL, &cas, NULL, "write only if the key's ModifyIndex is -modify-index (0: only if absent)", 0, 0 },
		{ "modify-index", ARG_INT, &modify_index, "N", "the ModifyIndex for -cas", 0, INT64_MAX },
		{ "flags", ARG_INT, &flags, "N", "an opaque unsigned integer kept with the key", 0, INT64_MAX },
		{ 0 },
	};
	const char **pos = NULL;
	char *data = NULL, *path = NULL, *err = NULL;
	struct buf q;
	size_t len = 0;
	json_t *reply = NULL;
	struct httpc_resp resp = { 0 };

	buf_init(&q, 256);
	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos < 1 || npos > 2) {
		rc = ctl_usage(cmd, npos < 1 ? "KEY is required" : "too many arguments (KEY [VALUE])");
		goto out;
	}
	if (trim_key(pos[0])[0] == '\0') {
		rc = ctl_usage(cmd, "KEY must not be empty");
		goto out;
	}
	if (cas && modify_index < 0) {
		rc = ctl_usage(cmd, "-cas needs -modify-index N");
		goto out;
	}
	if (!cas && modify_index >= 0) {
		rc = ctl_usage(cmd, "-modify-index is only used with -cas");
		goto out;
	}
	if (npos == 2 && input_value(pos[1], stdin, &data, &len, &err) != WEFT_OK) {
		rc = ctl_fail("%s", err);
		goto out;
	}
	if (flags >= 0)
		buf_printf(&q, "flags=%lld", flags);
	if (cas)
		buf_printf(&q, "%scas=%lld", q.len ? "&" : "", modify_index);
	path = kv_path(pos[0], q.data);
	if (path == NULL || ctl_http(g) == NULL) {
		rc = path ? CTL_ERR : ctl_fail("out of memory");
		goto out;
	}
	if (httpc_request(g->http, "PUT", path, data ? data : "", len, NULL, 0, &resp, &err)
	    != WEFT_OK) {
		rc = ctl_fail("%s", err);
		goto out;
	}
	if (resp.status != 200) {
		char *msg = httpc_error_message(&resp);
		rc = ctl_fail("cannot write %s: %s (HTTP %ld)", trim_key(pos[0]),
			      msg ? msg : "error", resp.status);
		free(msg);
		goto out;
	}
	reply = resp.body ? json_loads(resp.body, JSON_DECODE_ANY, NULL) : NULL;
	if (json_is_false(reply)) {
		if (cas)
			rc = ctl_fail("did not write to %s: the check-and-set failed "
				      "(its ModifyIndex is not %lld)", trim_key(pos[0]), modify_index);
		else
			rc = ctl_fail("did not write to %s: the server refused it", trim_key(pos[0]));
		goto out;
	}
	if (g->json)
		ctl_print_json(reply ? reply : json_true());
	else
		printf("Success! Data written to: %s\n", trim_key(pos[0]));
	rc = CTL_OK;
out:
	free(pos);
	free(data);
	free(path);
	free(err);
	buf_free(&q);
	json_decref(reply);
	httpc_resp_free(&resp);
	return rc;
}

static int run_kv_delete(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int recurse = 0, cas = 0, npos, rc;
	long long modify_index = -1;
	const struct arg_opt opts[] = {
		{ "recurse", ARG_BOOL, &recurse, NULL, "delete every key under the prefix", 0, 0 },
		{ "cas", ARG_BOOL, &cas, NULL, "delete only if the key's ModifyIndex is -modify-index", 0, 0 },
		{ "modify-index", ARG_INT, &modify_index, "N", "the ModifyIndex for -cas", 0, INT64_MAX },
		{ 0 },
	};
	const char **pos = NULL;
	char *path = NULL, query[64] = "";
	json_t *reply = NULL;
	const char *key;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos > 1) {
		rc = ctl_usage(cmd, "too many arguments (one KEY)");
		goto out;
	}
	key = npos ? trim_key(pos[0]) : "";
	if (key[0] == '\0' && !recurse) {
		rc = ctl_usage(cmd, "KEY is required (an empty prefix needs -recurse)");
		goto out;
	}
	if (cas && (modify_index < 0 || recurse)) {
		rc = ctl_usage(cmd, recurse ? "-cas cannot be used with -recurse"
					    : "-cas needs -modify-index N");
		goto out;
	}
	if (!cas && modify_index >= 0) {
		rc = ctl_usage(cmd, "-modify-index is only used with -cas");
		goto out;
	}
	if (recurse)
		snprintf(query, sizeof(query), "recurse");
	else if (cas)
		snprintf(query, sizeof(query), "cas=%lld", modify_index);
	path = kv_path(key, query);
	if (path == NULL) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	reply = ctl_call(g, "DELETE", path, NULL, NULL, &rc);
	if (reply == NULL)
		goto out;
	if (json_is_false(reply)) {
		rc = ctl_fail("did not delete %s: the check-and-set failed (its ModifyIndex is not %lld)",
			      key, modify_index);
		goto out;
	}
	if (g->json)
		ctl_print_json(json_is_null(reply) ? json_true() : reply);
	else if (recurse)
		printf("Success! Deleted keys with prefix: %s\n", key);
	else
		printf("Success! Deleted key: %s\n", key);
out:
	free(pos);
	free(path);
	json_decref(reply);
	return rc;
}

const struct ctl_command ctl_cmds_kv[] = {
	{ "kv get", "[flags] KEY", "Print the value of a key",
	  "Prints the raw value followed by a newline. With -recurse, KEY is a\n"
	  "prefix and every key under it prints as KEY:VALUE, one per line (as\n"
	  "consul kv get -recurse). -detailed prints every field of the entry.\n"
	  "A missing key is an error (exit 1); an empty prefix prints nothing.",
	  run_kv_get },
	{ "kv put", "[flags] KEY [VALUE | - | @FILE]", "Write a key",
	  "VALUE is stored as given; \"-\" reads it from stdin and @FILE from FILE\n"
	  "(byte for byte). Without VALUE the key is written empty.\n"
	  "-cas -modify-index N writes only if the key's ModifyIndex is N (0: only\n"
	  "if the key does not exist yet); when it is not, weftctl exits 1.",
	  run_kv_put },
	{ "kv delete", "[flags] KEY", "Delete a key, or every key under a prefix",
	  "With -recurse, KEY is a prefix and every key under it is deleted.",
	  run_kv_delete },
	{ 0 },
};
