/* /v1/kv/... */
#include "api.h"
#include "err.h"
#include "http.h"
#include "kv.h"
#include "server.h"
#include "store.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void free_kv_write(void *p) { kv_write_free(p); }

static int has(struct req *r, const char *name)
{
	return req_query(r, name) != NULL;
}

/* Consul refuses non-composable flags with 400 "Conflicting flags". */
static int conflicting(struct req *r, const char *a, const char *b, const char *c)
{
	int n = has(r, a) + has(r, b) + (c ? has(r, c) : 0);

	if (n < 2)
		return 0;
	req_error(r, 400, "Conflicting flags: only one of ?%s, ?%s%s%s may be given", a, b,
		  c ? ", ?" : "", c ? c : "");
	return 1;
}

static int reply_not_found(struct req *r)
{
	/* Consul answers a miss with 404 and an empty body. */
	return req_reply_raw(r, 404, "text/plain; charset=utf-8", strdup(""), 0);
}

static int h_get(struct req *r)
{
	const char *key = req_tail(r), *sep;
	int recurse = has(r, "recurse"), keys = has(r, "keys");
	struct db *db;
	json_t *out;

	if (!keys && !recurse && key[0] == '\0')
		return req_error(r, 400, "key: Missing key name");
	if (strlen(key) > KV_KEY_MAX)
		return req_error(r, 400, "key: %zu bytes is over the limit of %d bytes", strlen(key),
				 KV_KEY_MAX);
	if (api_check_dc(r) || !req_authorize(r, AUTH_KV_READ, key))
		return 403;
	if (keys || recurse)
		req_watch(r, "kv:%s", key);
	else
		req_watch(r, "kvx:%s", key);
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	if (keys) {
		sep = req_query(r, "separator");
		if (sep == NULL)
			sep = req_query(r, "seperator");   /* Consul's historic spelling */
		out = kv_keys(db, key, sep && sep[0] ? sep : NULL);
		store_read_end(db);
		if (json_array_size(out) == 0 && key[0] != '\0') {
			json_decref(out);
			return reply_not_found(r);
		}
		return req_reply_json(r, 200, out);
	}
	if (!recurse && has(r, "raw")) {
		char *val;
		size_t len;
		int found = kv_get_raw(db, key, &val, &len);

		store_read_end(db);
		if (!found)
			return reply_not_found(r);
		req_add_header(r, "X-Content-Type-Options", "nosniff");
		req_add_header(r, "Content-Security-Policy", "sandbox");
		return req_reply_raw(r, 200, "text/plain", val, len);
	}
	out = recurse ? kv_list(db, key) : kv_get(db, key);
	store_read_end(db);
	if (json_array_size(out) == 0) {
		json_decref(out);
		return reply_not_found(r);
	}
	return req_reply_json(r, 200, out);
}

static int h_put(struct req *r)
{
	const char *key = req_tail(r), *body;
	struct kv_write *k;
	uint64_t flags = 0, cas = 0;
	size_t len;
	char *err = NULL;
	int has_cas;

	if (kv_check_key(key, &err) != WEFT_OK)
		return api_bad(r, WEFT_EINVAL, err);
	if (conflicting(r, "cas", "acquire", "release"))
		return 400;
	if (req_query_u64(r, "flags", &flags) < 0 || (has_cas = req_query_u64(r, "cas", &cas)) < 0)
		return 400;
	if (flags > INT64_MAX)
		return req_error(r, 400, "flags: %" PRIu64 " is over the limit of %" PRId64, flags,
				 INT64_MAX);
	if (has(r, "cas") && !has_cas)
		return req_error(r, 400, "cas: a modify index is required (?cas=0 to create only)");
	body = req_body(r, &len);
	if (len > KV_VALUE_MAX)
		return req_error(r, 413, "Request body(%zu bytes) too large, max size: %d bytes",
				 len, KV_VALUE_MAX);
	if (api_check_dc(r) || !req_authorize(r, AUTH_KV_WRITE, key))
		return 403;
	k = kv_write_new(KV_SET, key, body, len);
	if (k == NULL)
		return req_error(r, 500, "out of memory");
	k->flags = (int64_t)flags;
	k->cas = cas;
	k->now_ms = store_now_ms(req_server(r)->store);
	if (has(r, "cas")) {
		k->op = KV_CAS;
	} else if (has(r, "acquire") || has(r, "release")) {
		k->op = has(r, "acquire") ? KV_LOCK : KV_UNLOCK;
		k->session = strdup(req_query(r, has(r, "acquire") ? "acquire" : "release"));
		if (k->session == NULL) {
			kv_write_free(k);
			return req_error(r, 500, "out of memory");
		}
	}
	return req_write(r, kv_apply, k, free_kv_write);
}

static int h_delete(struct req *r)
{
	const char *key = req_tail(r);
	int recurse = has(r, "recurse"), has_cas;
	struct kv_write *k;
	uint64_t cas = 0;

	if (conflicting(r, "recurse", "cas", NULL))
		return 400;
	if (!recurse && key[0] == '\0')
		return req_error(r, 400, "key: Missing key name");
	if (strlen(key) > KV_KEY_MAX)
		return req_error(r, 400, "key: %zu bytes is over the limit of %d bytes", strlen(key),
				 KV_KEY_MAX);
	if ((has_cas = req_query_u64(r, "cas", &cas)) < 0)
		return 400;
	if (has(r, "cas") && !has_cas)
		return req_error(r, 400, "cas: a modify index is required");
	if (api_check_dc(r) || !req_authorize(r, AUTH_KV_WRITE, key))
		return 403;
	k = kv_write_new(recurse ? KV_DELETE_TREE : has(r, "cas") ? KV_DELETE_CAS : KV_DELETE, key,
			 NULL, 0);
	if (k == NULL)
		return req_error(r, 500, "out of memory");
	k->cas = cas;
	k->now_ms = store_now_ms(req_server(r)->store);
	return req_write(r, kv_apply, k, free_kv_write);
}

const struct route api_kv_routes[] = {
	{ M_GET, "/v1/kv/", ROUTE_PREFIX | ROUTE_BLOCKING, h_get },
	{ M_PUT, "/v1/kv/", ROUTE_PREFIX, h_put },
	{ M_DELETE, "/v1/kv/", ROUTE_PREFIX, h_delete },
	{ 0, NULL, 0, NULL },
};
