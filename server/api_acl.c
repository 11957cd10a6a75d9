/* /v1/acl/token... : Consul's token endpoints on Weft's signed tokens.
 *
 * Weft tokens carry a Kind (admin, operator, agent, service, read-only)
 * instead of policies; Consul's ServiceIdentities and NodeIdentities map to
 * the service and agent kinds. The SecretID is returned once, by create:
 * it is a signed string the server does not keep. */
#include "api.h"
#include "auth.h"
#include "err.h"
#include "http.h"
#include "jsonx.h"
#include "server.h"
#include "store.h"
#include "token.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KIND_LIST "admin, operator, agent, service, read-only"

static int acl_disabled(struct req *r)
{
	return req_error(r, 401, "ACL support disabled: this server runs with --dev");
}

/* RFC 3339 ("2026-01-02T15:04:05Z", fraction and offset optional) to ms. */
static int rfc3339_parse_ms(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, n = 0, oh, om;
	int64_t ms = 0, t;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    y < 1970)
		return -1;
	p = s + n;
	if (*p == '.') {
		int digits = 0;
		for (p++; isdigit((unsigned char)*p); p++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
		   isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
		   isdigit((unsigned char)p[5])) {
		oh = (p[1] - '0') * 10 + (p[2] - '0');
		om = (p[4] - '0') * 10 + (p[5] - '0');
		if (oh > 23 || om > 59)
			return -1;
		t += (*p == '+' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	*out = t * 1000 + ms;
	return 0;
}

/* The one identity of ServiceIdentities / NodeIdentities, or NULL. */
static int one_identity(json_t *doc, const char *field, const char *namefield, const char *dc,
			const char **out, char **err)
{
	json_t *arr = NULL, *e;
	const char *edc = NULL;
	char ctx[64];

	*out = NULL;
	if (jx_array(doc, NULL, field, &arr, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (arr == NULL || json_array_size(arr) == 0)
		return WEFT_OK;
	if (json_array_size(arr) > 1)
		return weft_errf(err, WEFT_EINVAL,
				 "%s: a Weft token is bound to one %s; create one token for each",
				 field, strcmp(namefield, "NodeName") == 0 ? "node" : "service");
	e = json_array_get(arr, 0);
	snprintf(ctx, sizeof(ctx), "%s[0]", field);
	if (!json_is_object(e))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx);
	if (jx_req_str(e, ctx, namefield, out, TOKEN_SCOPE_MAX, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (strcmp(namefield, "NodeName") == 0 &&
	    jx_str(e, ctx, "Datacenter", &edc, 256, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (edc && edc[0] && strcmp(edc, dc) != 0)
		return weft_errf(err, WEFT_EINVAL,
				 "%s.Datacenter: \"%s\" is not this server's datacenter \"%s\"", ctx, edc,
				 dc);
	return WEFT_OK;
}

static int nonempty_array(json_t *doc, const char *field)
{
	json_t *v = jx_field(doc, field);

	return json_is_array(v) && json_array_size(v) > 0;
}

/* Decodes a create request into c (claims, description); validates it all. */
int auth_decode_create(json_t *doc, const char *dc, struct auth_create *c, char **err)
{
	const char *desc = "", *kind = NULL, *svc = NULL, *node = NULL, *svc_id = NULL,
		   *node_id = NULL, *accessor = NULL, *secret = NULL, *exptime = NULL, *scope = NULL;
	long long ttl_ms = 0;
	int64_t now = now_wall_ms(), exp_ms = 0;
	enum token_kind k;

	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
	if (jx_str(doc, NULL, "Description", &desc, AUTH_DESCRIPTION_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "Kind", &kind, 32, err) != WEFT_OK ||
	    jx_str(doc, NULL, "ServiceName", &svc, TOKEN_SCOPE_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "NodeName", &node, TOKEN_SCOPE_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "AccessorID", &accessor, 64, err) != WEFT_OK ||
	    jx_str(doc, NULL, "SecretID", &secret, TOKEN_SECRET_MAX, err) != WEFT_OK ||
	    jx_str(doc, NULL, "ExpirationTime", &exptime, 64, err) != WEFT_OK ||
	    jx_duration_ms(doc, NULL, "ExpirationTTL", &ttl_ms, err) != WEFT_OK ||
	    one_identity(doc, "ServiceIdentities", "ServiceName", dc, &svc_id, err) != WEFT_OK ||
	    one_identity(doc, "NodeIdentities", "NodeName", dc, &node_id, err) != WEFT_OK)
		return WEFT_EINVAL;
	if (secret && secret[0])
		return weft_errf(err, WEFT_EINVAL,
				 "SecretID: Weft signs secrets itself; it cannot be given");
	if (nonempty_array(doc, "Policies") || nonempty_array(doc, "Roles"))
		return weft_errf(err, WEFT_EINVAL,
				 "%s: Weft tokens have a Kind (" KIND_LIST ") instead of policies and roles",
				 nonempty_array(doc, "Policies") ? "Policies" : "Roles");
	if (svc && svc[0] == '\0')
		svc = NULL;
	if (node && node[0] == '\0')
		node = NULL;
	if (kind && kind[0] == '\0')
		kind = NULL;
	/* The kind: given, or implied by an identity. */
	if (svc_id && node_id)
		return weft_errf(err, WEFT_EINVAL,
				 "NodeIdentities: cannot be combined with ServiceIdentities in one token");
	if (kind) {
		if (token_kind_parse(kind, &k) != 0)
			return weft_errf(err, WEFT_EINVAL, "Kind: \"%s\" is not one of " KIND_LIST, kind);
	} else if (svc_id || svc) {
		k = TOKEN_SERVICE;
	} else if (node_id || node) {
		k = TOKEN_AGENT;
	} else {
		return weft_errf(err, WEFT_EINVAL,
				 "Kind: is required (" KIND_LIST "), or give ServiceIdentities or "
				 "NodeIdentities");
	}
	if (svc_id && k != TOKEN_SERVICE)
		return weft_errf(err, WEFT_EINVAL, "ServiceIdentities: only service tokens have one, "
				 "and Kind is \"%s\"", token_kind_name(k));
	if (node_id && k != TOKEN_AGENT)
		return weft_errf(err, WEFT_EINVAL, "NodeIdentities: only agent tokens have one, "
				 "and Kind is \"%s\"", token_kind_name(k));
	if (svc_id && svc && strcmp(svc_id, svc) != 0)
		return weft_errf(err, WEFT_EINVAL,
				 "ServiceName: \"%s\" differs from ServiceIdentities[0].ServiceName \"%s\"",
				 svc, svc_id);
	if (node_id && node && strcmp(node_id, node) != 0)
		return weft_errf(err, WEFT_EINVAL,
				 "NodeName: \"%s\" differs from NodeIdentities[0].NodeName \"%s\"", node,
				 node_id);
	if (svc && k != TOKEN_SERVICE)
		return weft_errf(err, WEFT_EINVAL, "ServiceName: only service tokens have one, and "
				 "Kind is \"%s\"", token_kind_name(k));
	if (node && k != TOKEN_AGENT)
		return weft_errf(err, WEFT_EINVAL, "NodeName: only agent tokens have one, and Kind "
				 "is \"%s\"", token_kind_name(k));
	if (k == TOKEN_SERVICE) {
		scope = svc_id ? svc_id : svc;
		if (scope == NULL)
			return weft_errf(err, WEFT_EINVAL,
					 "ServiceName: is required for a service token");
		if (!name_valid(scope, TOKEN_SCOPE_MAX + 1))
			return weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not a valid service name "
					 "(letters, digits, '-', '_', '.')",
					 svc_id ? "ServiceIdentities[0].ServiceName" : "ServiceName", scope);
	} else if (k == TOKEN_AGENT) {
		scope = node_id ? node_id : node;
		if (scope == NULL)
			return weft_errf(err, WEFT_EINVAL, "NodeName: is required for an agent token");
		if (!name_valid(scope, TOKEN_SCOPE_MAX + 1))
			return weft_errf(err, WEFT_EINVAL, "%s: \"%s\" is not a valid node name "
					 "(letters, digits, '-', '_', '.')",
					 node_id ? "NodeIdentities[0].NodeName" : "NodeName", scope);
	}
	/* Expiry. */
	if (ttl_ms != 0 && exptime && exptime[0])
		return weft_errf(err, WEFT_EINVAL,
				 "ExpirationTTL: cannot be combined with ExpirationTime");
	if (ttl_ms < 0)
		return weft_errf(err, WEFT_EINVAL, "ExpirationTTL: must be positive");
	if (ttl_ms > 0)
		exp_ms = now + ttl_ms;
	if (exptime && exptime[0]) {
		if (rfc3339_parse_ms(exptime, &exp_ms) != 0)
			return weft_errf(err, WEFT_EINVAL,
					 "ExpirationTime: \"%s\" is not an RFC 3339 time "
					 "(2026-01-02T15:04:05Z)", exptime);
		if (exp_ms <= now)
			return weft_errf(err, WEFT_EINVAL, "ExpirationTime: \"%s\" is in the past",
					 exptime);
	}
	/* The accessor. */
	if (accessor && accessor[0]) {
		if (!uuid_valid(accessor))
			return weft_errf(err, WEFT_EINVAL, "AccessorID: \"%s\" is not a UUID", accessor);
		snprintf(c->claims.accessor, sizeof(c->claims.accessor), "%s", accessor);
	} else {
		uuid_generate(c->claims.accessor);
	}
	c->claims.kind = k;
	snprintf(c->claims.scope, sizeof(c->claims.scope), "%s", scope ? scope : "");
	c->claims.issued_ms = now;
	c->claims.expires_ms = exp_ms;
	c->description = strdup(desc ? desc : "");
	if (c->description == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	return WEFT_OK;
}

static void free_create(void *p) { auth_create_free(p); }

static int h_create(struct req *r)
{
	struct server *srv = req_server(r);
	struct auth_create *c;
	const struct identity *me;
	char *err = NULL;
	json_t *doc;
	int rc;

	if (srv->auth == NULL)
		return acl_disabled(r);
	if (!req_authorize(r, AUTH_ACL_WRITE, NULL))
		return 403;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return req_error(r, 500, "out of memory");
	c->datacenter = srv->datacenter;
	if ((doc = req_body_json(r)) == NULL) {
		free(c);
		return 400;
	}
	rc = auth_decode_create(doc, srv->datacenter, c, &err);
	json_decref(doc);
	if (rc != WEFT_OK) {
		auth_create_free(c);
		return api_bad(r, rc, err);
	}
	me = req_identity(r);
	if ((c->claims.kind == TOKEN_ADMIN || c->claims.kind == TOKEN_OPERATOR) && me &&
	    me->kind != TOKEN_ADMIN) {
		auth_create_free(c);
		return req_error(r, 403,
				 "permission denied: token %s (kind %s) cannot create %s tokens: only an "
				 "admin token can", me->accessor, token_kind_name(me->kind),
				 token_kind_name(c->claims.kind));
	}
	if ((rc = auth_mint(srv->auth, c, &err)) != WEFT_OK) {
		auth_create_free(c);
		return api_bad(r, rc, err);
	}
	return req_write(r, auth_apply_create, c, free_create);
}

/* The accessor in the path, or NULL after a 400. */
static const char *path_accessor(struct req *r)
{
	const char *id = req_tail(r);

	if (id[0] == '\0') {
		req_error(r, 400, "AccessorID: missing from the path: /v1/acl/token/ACCESSOR");
		return NULL;
	}
	if (!uuid_valid(id)) {
		req_error(r, 400, "AccessorID: \"%s\" is not a UUID", id);
		return NULL;
	}
	return id;
}

static int reply_token(struct req *r, const char *accessor)
{
	struct db *db;
	json_t *out;

	req_watch(r, "acl:tokens");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = auth_token_json(db, accessor, req_server(r)->datacenter);
	store_read_end(db);
	if (out == NULL)
		return req_error(r, 404, "token %s does not exist (or was revoked)", accessor);
	return req_reply_json(r, 200, out);
}

static int h_read(struct req *r)
{
	const char *id;

	if (req_server(r)->auth == NULL)
		return acl_disabled(r);
	if (!req_authorize(r, AUTH_ACL_READ, NULL))
		return 403;
	if ((id = path_accessor(r)) == NULL)
		return 400;
	return reply_token(r, id);
}

static int h_self(struct req *r)
{
	const struct identity *me;

	if (req_server(r)->auth == NULL)
		return acl_disabled(r);
	/* Any valid token may read itself (and every kind holds read). */
	if (!req_authenticate(r, AUTH_READ, NULL))
		return 403;
	me = req_identity(r);
	return reply_token(r, me->accessor);
}

static int h_list(struct req *r)
{
	struct db *db;
	json_t *out;

	if (req_server(r)->auth == NULL)
		return acl_disabled(r);
	if (!req_authorize(r, AUTH_ACL_READ, NULL))
		return 403;
	req_watch(r, "acl:tokens");
	if ((db = api_read_begin(r)) == NULL)
		return 500;
	out = auth_token_list(db, req_server(r)->datacenter);
	store_read_end(db);
	out = api_filter(r, out);
	if (out == NULL)
		return 400;
	return req_reply_json(r, 200, out);
}

static int h_revoke(struct req *r)
{
	struct server *srv = req_server(r);
	const struct identity *me;
	struct auth_revoke *rv;
	const char *id;

	if (srv->auth == NULL)
		return acl_disabled(r);
	if (!req_authorize(r, AUTH_ACL_WRITE, NULL))
		return 403;
	if ((id = path_accessor(r)) == NULL)
		return 400;
	me = req_identity(r);
	if (me && strcmp(me->accessor, id) == 0)
		return req_error(r, 400, "AccessorID: %s is the token of this request; revoke it "
				 "with another token", id);
	if ((rv = calloc(1, sizeof(*rv))) == NULL)
		return req_error(r, 500, "out of memory");
	rv->auth = srv->auth;
	rv->datacenter = srv->datacenter;
	snprintf(rv->accessor, sizeof(rv->accessor), "%s", id);
	return req_write(r, auth_apply_revoke, rv, free);
}

const struct route api_acl_routes[] = {
	{ M_PUT, "/v1/acl/token", 0, h_create },
	{ M_GET, "/v1/acl/token/self", ROUTE_BLOCKING, h_self },
	{ M_GET, "/v1/acl/token/", ROUTE_PREFIX | ROUTE_BLOCKING, h_read },
	{ M_DELETE, "/v1/acl/token/", ROUTE_PREFIX, h_revoke },
	{ M_GET, "/v1/acl/tokens", ROUTE_BLOCKING, h_list },
	{ 0, NULL, 0, NULL },
};
